//! Who is calling and what they may do: Argon2id passwords, the secrets of sessions and API
//! tokens (kept only as their SHA-256), the [`Caller`] of a request found from its cookie or
//! bearer token, the one place roles and jurisdictions are checked ([`Caller::allow`],
//! [`Caller::sees`]), and the lockout of repeated failed logins ([`LoginGuard`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use argus_model::{Credential, CredentialKind, Jurisdiction, Timestamp, User, UserRole};
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use crate::{Accounts, ApiError};

/// The cookie that carries a browser session's secret.
pub const SESSION_COOKIE: &str = "argus_session";

/// How sessions live and how failed logins are held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// A session unused this long stops working.
    pub session_idle: Duration,
    /// A session stops working this long after the login, used or not.
    pub session_max: Duration,
    /// Mark the cookie `Secure` (the API is served over TLS).
    pub secure_cookie: bool,
    /// Failed logins (per user, and per address) before further attempts are refused.
    pub lockout_failures: u32,
    /// How long failures count, and how long attempts are refused once there are too many.
    pub lockout: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            secure_cookie: false,
            lockout_failures: 5,
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).
fn argon2() -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| ApiError::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The Argon2id hash of a password, in PHC form (salt and parameters included).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0_u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| ApiError::Internal(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ApiError::Internal(format!("cannot encode a salt: {e}")))?;
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("cannot hash a password: {e}")))
}

/// Whether `password` is the one `hash` was made from (false for an empty or foreign hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash to verify against when no user has the name given, so that an unknown name takes
/// as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("argus decoy password").unwrap_or_default())
}

/// The SHA-256 of a secret, 64 hex digits: how a session or token is kept and found.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new credential and its secret (256 random bits, `argus_` + 64 hex digits), which is
/// shown once and never kept.
pub fn new_credential(
    kind: CredentialKind,
    user: &str,
    name: &str,
    now: Timestamp,
    lifetime: Duration,
) -> Result<(String, Credential), ApiError> {
    let mut bytes = [0_u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("no randomness for a secret: {e}")))?;
    let secret: String = std::iter::once("argus_".to_owned())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect();
    let hash = secret_hash(&secret);
    let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    let credential = Credential {
        id: hash[..16].to_owned(),
        secret_hash: hash,
        kind,
        user: user.to_owned(),
        name: name.to_owned(),
        created: now,
        expires: Timestamp(now.as_millis().saturating_add(lifetime_ms)),
        last_used: now,
        revoked: None,
    };
    Ok((secret, credential))
}

/// The secret a request presents: `Authorization: Bearer <token>`, else the session cookie.
fn presented_secret(headers: &HeaderMap) -> Option<(&str, CredentialKind)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
        return Some((token, CredentialKind::Token));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .map(|s| (s, CredentialKind::Session))
}

/// How often a session's last use is written (a session's idle expiry is this coarse).
const TOUCH_EVERY_MS: i64 = 60_000;

/// The caller of a request, from its bearer token or session cookie: 401 when there is none,
/// it is unknown, revoked or expired (a session also when idle too long), or its user is
/// disabled.
pub async fn authenticate<A: Accounts>(
    accounts: &A,
    settings: &AuthSettings,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Caller, ApiError> {
    let refused = |why: &str| ApiError::Unauthorized(format!("not authenticated: {why}"));
    let (secret, kind) =
        presented_secret(headers).ok_or_else(|| refused("log in, or send a bearer token"))?;
    let mut credential = accounts
        .credential(&secret_hash(secret))
        .await?
        .filter(|c| c.kind == kind)
        .ok_or_else(|| refused("unknown session or token"))?;
    if credential.revoked.is_some() {
        return Err(refused("the session or token was revoked"));
    }
    if now >= credential.expires {
        return Err(refused("the session or token has expired"));
    }
    let idle_ms = i64::try_from(settings.session_idle.as_millis()).unwrap_or(i64::MAX);
    if kind == CredentialKind::Session
        && now.as_millis() - credential.last_used.as_millis() > idle_ms
    {
        return Err(refused("the session was idle too long; log in again"));
    }
    let user = accounts
        .user(&credential.user)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| refused("the user is disabled"))?;
    if now.as_millis() - credential.last_used.as_millis() >= TOUCH_EVERY_MS {
        credential.last_used = now;
        accounts.put_credential(&credential).await?;
    }
    Ok(Caller { user, credential })
}

/// Something only some roles may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Acknowledge an alert.
    Acknowledge,
    /// Set a silence.
    Silence,
    /// Move tickets through their states (which states: the ticket book decides by role).
    MoveTickets,
    /// Create, disable and reset users.
    ManageUsers,
}

impl Action {
    /// The roles that may.
    pub const fn roles(self) -> &'static [UserRole] {
        match self {
            Action::Acknowledge | Action::Silence => &[UserRole::Monitor],
            Action::MoveTickets => &[UserRole::Dispatcher, UserRole::Team, UserRole::Head],
            Action::ManageUsers => &[UserRole::Admin],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge alerts",
            Action::Silence => "set silences",
            Action::MoveTickets => "move tickets",
            Action::ManageUsers => "manage users",
        }
    }
}

/// The authenticated user of a request and the credential they came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub user: User,
    /// With which session or token.
    pub credential: Credential,
}

impl Caller {
    /// The name written into the legal record: display name and login name.
    pub fn actor(&self) -> String {
        format!("{} ({})", self.user.display_name, self.user.name)
    }

    /// 403 unless the caller's role may do `action`.
    pub fn allow(&self, action: Action) -> Result<(), ApiError> {
        if action.roles().contains(&self.user.role) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "a {} may not {}",
            self.user.role,
            action.describe()
        )))
    }

    /// Whether the caller answers for the whole county (sees every alert and ticket).
    pub fn sees_county(&self) -> bool {
        self.user.jurisdiction == Jurisdiction::County
    }

    /// Whether a ticket of `town` and `department` (and what is behind it) lies within the
    /// caller's jurisdiction.
    pub fn sees(&self, town: &str, department: &str) -> bool {
        self.user.jurisdiction.covers(town, department)
    }

    /// The role the ticket book knows the caller by (403 for roles that move no tickets).
    pub fn ticket_role(&self) -> Result<argus_tickets::Role, ApiError> {
        self.allow(Action::MoveTickets)?;
        Ok(match self.user.role {
            UserRole::Dispatcher => argus_tickets::Role::Dispatcher,
            UserRole::Head => argus_tickets::Role::Head,
            _ => argus_tickets::Role::Team,
        })
    }
}

/// Failed logins counted per user name and per address: after `lockout_failures` within
/// `lockout`, attempts are refused (429) until the window has passed, whatever the password.
#[derive(Debug)]
pub struct LoginGuard {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    limit: u32,
    window: Duration,
}

/// Keys the guard remembers at most (beyond, expired ones are forgotten, then the oldest).
const MAX_GUARDED: usize = 10_000;

impl LoginGuard {
    /// A guard for these settings.
    pub fn new(settings: &AuthSettings) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            limit: settings.lockout_failures.max(1),
            window: settings.lockout,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// 429 when any of `keys` has failed too often within the window.
    pub fn check(&self, keys: &[String]) -> Result<(), ApiError> {
        let now = Instant::now();
        let map = self.map();
        let wait = keys
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(n, since)| *n >= self.limit && now.duration_since(*since) < self.window)
            .map(|(_, since)| self.window.saturating_sub(now.duration_since(*since)))
            .max();
        match wait {
            None => Ok(()),
            Some(wait) => Err(ApiError::TooManyRequests {
                message: format!(
                    "too many failed logins; try again in {} s",
                    wait.as_secs().max(1)
                ),
                retry_after_secs: wait.as_secs().max(1),
            }),
        }
    }

    /// Count a failure against each of `keys`.
    pub fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.map();
        if map.len() + keys.len() > MAX_GUARDED {
            map.retain(|_, (_, since)| now.duration_since(*since) < self.window);
            while map.len() + keys.len() > MAX_GUARDED {
                let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, s))| *s)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        for key in keys {
            let entry = map.entry(key.clone()).or_insert((0, now));
            if now.duration_since(entry.1) >= self.window {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    /// Forget the failures of `keys` (a successful login).
    pub fn succeeded(&self, keys: &[String]) {
        let mut map = self.map();
        for key in keys {
            map.remove(key);
        }
    }
}

/// Verify a login: the user's password, or (no such user, or disabled) a decoy so that the
/// answer takes as long either way. Runs on a blocking thread.
pub async fn verify_login(user: Option<User>, password: String) -> Result<Option<User>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let hash = user
            .as_ref()
            .filter(|u| !u.disabled && !u.password_hash.is_empty())
            .map_or_else(|| decoy_hash().to_owned(), |u| u.password_hash.clone());
        let ok = verify_password(&hash, &password);
        user.filter(|u| ok && !u.disabled && !u.password_hash.is_empty())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check failed: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterz"));
        assert!(!verify_password("", "correct horse battery"));
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn secrets_are_random_and_kept_as_their_hash() {
        let token = || {
            let life = Duration::from_secs(60);
            new_credential(CredentialKind::Token, "sun", "grafana", Timestamp(0), life).unwrap()
        };
        let ((a, ca), (b, _)) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 6 + 64);
        assert_eq!(ca.secret_hash, secret_hash(&a));
        assert_eq!(ca.id, ca.secret_hash[..16]);
        assert_eq!(ca.expires, Timestamp(60_000));
    }

    #[test]
    fn the_secret_comes_from_a_bearer_header_or_the_session_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "lang=zh; argus_session=abc; x=1".parse().unwrap(),
        );
        assert_eq!(presented_secret(&h), Some(("abc", CredentialKind::Session)));
        h.insert(header::AUTHORIZATION, "Bearer argus_xyz".parse().unwrap());
        assert_eq!(
            presented_secret(&h),
            Some(("argus_xyz", CredentialKind::Token))
        );
        h.insert(header::AUTHORIZATION, "Basic Zm9v".parse().unwrap());
        assert_eq!(presented_secret(&h), None);
    }

    #[test]
    fn failed_logins_lock_a_key_out_for_the_window() {
        let guard = LoginGuard::new(&AuthSettings {
            lockout_failures: 3,
            ..AuthSettings::default()
        });
        let keys = ["user:sun".to_owned(), "addr:127.0.0.1".to_owned()];
        for _ in 0..2 {
            guard.failed(&keys);
        }
        assert!(guard.check(&keys).is_ok());
        guard.failed(&keys[..1]);
        let refused = guard.check(&keys).unwrap_err();
        assert!(
            matches!(refused, ApiError::TooManyRequests { retry_after_secs, .. } if retry_after_secs > 800)
        );
        assert!(
            guard.check(&keys[1..]).is_ok(),
            "the address failed twice only"
        );
        guard.succeeded(&keys);
        assert!(guard.check(&keys).is_ok());
    }
}
