//! Accounts: what can be done to users and their credentials ([`add_user`], [`set_password`],
//! [`disable_user`], [`issue_token`]: the same operations for the API and for `argus user`),
//! and the routes that log in and out, show the caller, manage users (admins) and API tokens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use argus_model::account::check_password;
use argus_model::{
    Credential, CredentialKind, CredentialView, Jurisdiction, Registry, Timestamp, User, UserRole,
    UserView,
};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::auth::{self, Action, Caller, SESSION_COOKIE};
use crate::{Accounts, ApiError, ApiState, Records};

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name (`a-z 0-9 . _ -`, at most 64).
    pub name: String,
    /// The name the legal record shows.
    pub display_name: String,
    /// `admin`, `monitor`, `dispatcher`, `team` or `head`.
    pub role: UserRole,
    /// A team member's town (registry id).
    #[serde(default)]
    pub town: String,
    /// A team member's or head's department (registry id).
    #[serde(default)]
    pub department: String,
    /// The password (12 to 1024 characters).
    pub password: String,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Create a user: 400 for a bad name, role, jurisdiction or password, 409 when the name is
/// taken.
pub async fn add_user<A: Accounts>(
    accounts: &A,
    registry: &Registry,
    new: NewUser,
    at: Timestamp,
) -> Result<User, ApiError> {
    check_password(&new.password).map_err(bad)?;
    let jurisdiction =
        Jurisdiction::for_role(new.role, &new.town, &new.department, registry).map_err(bad)?;
    let mut user = User {
        name: new.name,
        display_name: new.display_name.trim().to_owned(),
        role: new.role,
        jurisdiction,
        password_hash: String::new(),
        disabled: false,
        created: at,
        changed: at,
        version: 1,
    };
    user.check().map_err(bad)?;
    if accounts.user(&user.name).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "a user named {:?} exists",
            user.name
        )));
    }
    user.password_hash = hash(new.password).await?;
    accounts.put_user(&user).await?;
    tracing::info!(user = %user.name, role = %user.role, "user created");
    Ok(user)
}

/// Argon2id on a blocking thread.
async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))?
}

async fn existing<A: Accounts>(accounts: &A, name: &str) -> Result<User, ApiError> {
    accounts
        .user(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user named {name:?}")))
}

/// Revoke a user's credentials of `kinds` that still work.
async fn revoke_all<A: Accounts>(
    accounts: &A,
    user: &str,
    kinds: &[CredentialKind],
    at: Timestamp,
) -> Result<usize, ApiError> {
    let mut revoked = 0;
    for mut c in accounts.credentials_of(user).await? {
        if c.revoked.is_none() && kinds.contains(&c.kind) {
            c.revoked = Some(at);
            accounts.put_credential(&c).await?;
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// Give a user a new password; every session of theirs is revoked (tokens stay).
pub async fn set_password<A: Accounts>(
    accounts: &A,
    name: &str,
    password: String,
    at: Timestamp,
) -> Result<User, ApiError> {
    check_password(&password).map_err(bad)?;
    let mut user = existing(accounts, name).await?;
    user.password_hash = hash(password).await?;
    user.changed = at;
    user.version += 1;
    accounts.put_user(&user).await?;
    let sessions = revoke_all(accounts, name, &[CredentialKind::Session], at).await?;
    tracing::info!(user = %name, sessions_revoked = sessions, "password changed");
    Ok(user)
}

/// Disable a user: they cannot log in, and every session and token of theirs is revoked.
pub async fn disable_user<A: Accounts>(
    accounts: &A,
    name: &str,
    at: Timestamp,
) -> Result<User, ApiError> {
    let mut user = existing(accounts, name).await?;
    if !user.disabled {
        user.disabled = true;
        user.changed = at;
        user.version += 1;
        accounts.put_user(&user).await?;
    }
    let kinds = [CredentialKind::Session, CredentialKind::Token];
    let revoked = revoke_all(accounts, name, &kinds, at).await?;
    tracing::info!(user = %name, credentials_revoked = revoked, "user disabled");
    Ok(user)
}

/// Longest life of an API token.
pub const MAX_TOKEN_DAYS: u32 = 3_650;

/// Make an API token for a user; its secret is returned once and never kept.
pub async fn issue_token<A: Accounts>(
    accounts: &A,
    user: &str,
    name: &str,
    days: u32,
    at: Timestamp,
) -> Result<(String, Credential), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(bad("a token's name must be 1 to 64 characters"));
    }
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(bad(format!(
            "a token lives 1 to {MAX_TOKEN_DAYS} days, got {days}"
        )));
    }
    let user = existing(accounts, user).await?;
    if user.disabled {
        return Err(ApiError::Conflict(format!(
            "user {:?} is disabled",
            user.name
        )));
    }
    let life = Duration::from_secs(u64::from(days) * 86_400);
    let (secret, credential) =
        auth::new_credential(CredentialKind::Token, &user.name, name.trim(), at, life)?;
    accounts.put_credential(&credential).await?;
    tracing::info!(user = %user.name, token = %credential.id, name = %credential.name, "api token issued");
    Ok((secret, credential))
}

type Shared<R> = State<Arc<ApiState<R>>>;

/// A JSON body, or a 400 saying why not.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

/// Largest login body taken.
const MAX_LOGIN_BODY: usize = 4_096;

/// `POST /api/login` `{"name", "password"}`: the user, and a session cookie.
pub(crate) async fn login<R: Records>(
    State(state): Shared<R>,
    request: Request,
) -> Result<Response, ApiError> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let bytes = axum::body::to_bytes(request.into_body(), MAX_LOGIN_BODY)
        .await
        .map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))?;
    let body: LoginBody = json_body(&bytes)?;
    let keys = [format!("user:{}", body.name), format!("addr:{address}")];
    if let Err(locked) = state.login_guard.check(&keys) {
        state
            .telemetry
            .api
            .logins
            .with_label_values(&["locked_out"])
            .inc();
        tracing::warn!(user = ?body.name, %address, "login refused: too many failures");
        return Err(locked);
    }
    let user = state.records.user(&body.name).await?;
    let Some(user) = auth::verify_login(user, body.password).await? else {
        state.login_guard.failed(&keys);
        state
            .telemetry
            .api
            .logins
            .with_label_values(&["refused"])
            .inc();
        tracing::warn!(user = ?body.name, %address, "login refused");
        return Err(ApiError::Unauthorized(
            "wrong user name or password, or the user is disabled".to_owned(),
        ));
    };
    state.login_guard.succeeded(&keys);
    let at = now();
    let (secret, session) = auth::new_credential(
        CredentialKind::Session,
        &user.name,
        "",
        at,
        state.auth.session_max,
    )?;
    state.records.put_credential(&session).await?;
    state
        .telemetry
        .api
        .logins
        .with_label_values(&["accepted"])
        .inc();
    tracing::info!(user = %user.name, %address, "logged in");
    let secure = if state.auth.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        state.auth.session_max.as_secs()
    );
    let mut response = Json(serde_json::json!({ "user": UserView::of(&user) })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// `POST /api/logout`: the caller's session (or token) revoked, the cookie cleared.
pub(crate) async fn logout<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let mut credential = caller.credential;
    credential.revoked = Some(now());
    state.records.put_credential(&credential).await?;
    tracing::info!(user = %caller.user.name, "logged out");
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// `GET /api/me`: the caller's profile.
pub(crate) async fn me(caller: Caller) -> Response {
    Json(serde_json::json!({ "user": UserView::of(&caller.user) })).into_response()
}

/// `GET /api/users` (admins): every user.
pub(crate) async fn list_users<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.allow(Action::ManageUsers)?;
    let users = state.records.users().await?;
    let views: Vec<UserView> = users.iter().map(UserView::of).collect();
    Ok(Json(serde_json::json!({ "users": views })).into_response())
}

/// `POST /api/users` (admins) [`NewUser`]: the user created, 201.
pub(crate) async fn create_user<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.allow(Action::ManageUsers)?;
    let new: NewUser = json_body(&body)?;
    let user = add_user(&state.records, &state.registry, new, now()).await?;
    tracing::info!(user = %user.name, by = %caller.user.name, "user created through the api");
    Ok((StatusCode::CREATED, Json(UserView::of(&user))).into_response())
}

/// `POST /api/users/{name}/disable` (admins): the user, disabled.
pub(crate) async fn disable<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.allow(Action::ManageUsers)?;
    let user = disable_user(&state.records, &name, now()).await?;
    Ok(Json(UserView::of(&user)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
    /// The caller's present password, when changing their own.
    #[serde(default)]
    current_password: Option<String>,
}

/// `POST /api/users/{name}/password` `{"password", "current_password"}`: an admin sets anyone's;
/// a user their own, giving the present one. Sessions of that user end.
pub(crate) async fn change_password<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: PasswordBody = json_body(&body)?;
    if name == caller.user.name {
        let current = body.current_password.unwrap_or_default();
        if auth::verify_login(Some(caller.user.clone()), current)
            .await?
            .is_none()
        {
            return Err(ApiError::Forbidden(
                "current_password does not match".to_owned(),
            ));
        }
    } else {
        caller.allow(Action::ManageUsers)?;
    }
    let user = set_password(&state.records, &name, body.password, now()).await?;
    Ok(Json(UserView::of(&user)).into_response())
}

/// `GET /api/tokens`: the caller's API tokens.
pub(crate) async fn list_tokens<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let tokens: Vec<CredentialView> = state
        .records
        .credentials_of(&caller.user.name)
        .await?
        .iter()
        .filter(|c| c.kind == CredentialKind::Token)
        .map(CredentialView::of)
        .collect();
    Ok(Json(serde_json::json!({ "tokens": tokens })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    #[serde(default = "default_token_days", deserialize_with = "whole_number")]
    days: u32,
}

/// A whole number however JSON writes it (`30` or `30.0`).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = f64::deserialize(d)?;
    if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        // Whole and in range: the conversion is exact.
        Ok(n as u32)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a whole number of days, got {n}"
        )))
    }
}

fn default_token_days() -> u32 {
    90
}

/// `POST /api/tokens` `{"name", "days"}`: a token of the caller's, 201 with its secret (shown
/// this once).
pub(crate) async fn create_token<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: TokenBody = json_body(&body)?;
    let (secret, credential) = issue_token(
        &state.records,
        &caller.user.name,
        &body.name,
        body.days,
        now(),
    )
    .await?;
    let body =
        serde_json::json!({ "token": secret, "credential": CredentialView::of(&credential) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/tokens/{id}`: one of the caller's tokens revoked (an admin may revoke anyone's).
pub(crate) async fn revoke_token<R: Records>(
    State(state): Shared<R>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let users = if caller.user.role == UserRole::Admin {
        state
            .records
            .users()
            .await?
            .into_iter()
            .map(|u| u.name)
            .collect()
    } else {
        vec![caller.user.name.clone()]
    };
    for user in users {
        let found = state
            .records
            .credentials_of(&user)
            .await?
            .into_iter()
            .find(|c| c.id == id && c.kind == CredentialKind::Token);
        if let Some(mut token) = found {
            if token.revoked.is_none() {
                token.revoked = Some(now());
                state.records.put_credential(&token).await?;
                tracing::info!(token = %id, user = %user, by = %caller.user.name, "api token revoked");
            }
            return Ok(Json(CredentialView::of(&token)).into_response());
        }
    }
    Err(ApiError::NotFound(format!("no token {id:?} of yours")))
}
