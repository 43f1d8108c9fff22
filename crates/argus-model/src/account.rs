//! Who may use Argus: users with a role scoped to a jurisdiction, and the credentials they (or
//! their machines) present. Pure vocabulary: hashing, storage and checking live elsewhere.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Registry, Timestamp};

/// What a user does at the supervision center, and so what they may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Manages users and tokens; reads the whole county.
    Admin,
    /// Monitoring staff: reads the whole county, acknowledges alerts, sets silences.
    Monitor,
    /// Dispatches new tickets; reads the whole county.
    Dispatcher,
    /// A member of one enforcement team (town + department): its tickets and what is behind
    /// them.
    Team,
    /// The head of a department: that department's tickets in every town, escalations.
    Head,
}

impl UserRole {
    /// Every role, in the order of the documentation.
    pub const ALL: [UserRole; 5] = [
        UserRole::Admin,
        UserRole::Monitor,
        UserRole::Dispatcher,
        UserRole::Team,
        UserRole::Head,
    ];

    /// The snake_case name used in storage and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Monitor => "monitor",
            UserRole::Dispatcher => "dispatcher",
            UserRole::Team => "team",
            UserRole::Head => "head",
        }
    }

    /// The role named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What part of the county a user answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Jurisdiction {
    /// The whole county (admin, monitor, dispatcher).
    County,
    /// One department in every town (head).
    Department(String),
    /// One team: a department in one town (team).
    Team {
        /// Town id.
        town: String,
        /// Department id.
        department: String,
    },
}

impl Jurisdiction {
    /// Whether a ticket of `town` and `department` lies within it.
    pub fn covers(&self, town: &str, department: &str) -> bool {
        match self {
            Jurisdiction::County => true,
            Jurisdiction::Department(d) => d == department,
            Jurisdiction::Team {
                town: t,
                department: d,
            } => t == town && d == department,
        }
    }

    /// The town it is bound to, if any.
    pub fn town(&self) -> Option<&str> {
        match self {
            Jurisdiction::Team { town, .. } => Some(town),
            _ => None,
        }
    }

    /// The department it is bound to, if any.
    pub fn department(&self) -> Option<&str> {
        match self {
            Jurisdiction::County => None,
            Jurisdiction::Department(d) | Jurisdiction::Team { department: d, .. } => Some(d),
        }
    }
}

/// A person (or a machine account) known to Argus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name: 1 to 64 characters of `a-z 0-9 . _ -`.
    pub name: String,
    /// The name shown in the legal record (`孙检查员`, `Inspector Sun`).
    pub display_name: String,
    /// What they do.
    pub role: UserRole,
    /// What they answer for (consistent with `role`, see [`User::check`]).
    pub jurisdiction: Jurisdiction,
    /// Argon2id hash of the password in PHC form; empty: no password (token only).
    pub password_hash: String,
    /// A disabled user cannot log in, and their sessions and tokens stop working.
    pub disabled: bool,
    /// When the user was created.
    pub created: Timestamp,
    /// When the user was last changed.
    pub changed: Timestamp,
    /// Increases with every change (the store keeps the highest).
    pub version: u64,
}

/// Why a user cannot be as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The login name is not one.
    #[error("user name {0:?} must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'")]
    BadName(String),
    /// The display name is empty or too long.
    #[error("display name must be 1 to 128 characters")]
    BadDisplayName,
    /// The role needs a jurisdiction it was not given, or was given one it cannot have.
    #[error("{0}")]
    BadJurisdiction(String),
    /// A password too short or too long.
    #[error("password must be 12 to 1024 characters")]
    BadPassword,
}

/// Whether `name` is a valid login name.
pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Check a new password against the length rules (OWASP: at least 12, long ones allowed).
pub fn check_password(password: &str) -> Result<(), AccountError> {
    if (12..=1024).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(AccountError::BadPassword)
    }
}

impl Jurisdiction {
    /// The jurisdiction of `role` given a town and department (empty: none), checked against
    /// the registry: a team member names a team of the registry, a head a department, the
    /// others neither.
    pub fn for_role(
        role: UserRole,
        town: &str,
        department: &str,
        registry: &Registry,
    ) -> Result<Self, AccountError> {
        let bad = |m: String| Err(AccountError::BadJurisdiction(m));
        match role {
            UserRole::Admin | UserRole::Monitor | UserRole::Dispatcher => {
                if !town.is_empty() || !department.is_empty() {
                    return bad(format!(
                        "a {role} answers for the whole county: give no town or department"
                    ));
                }
                Ok(Jurisdiction::County)
            }
            UserRole::Head => {
                if !town.is_empty() {
                    return bad(
                        "a head answers for a department in every town: give no town".to_owned(),
                    );
                }
                if registry.department(department).is_none() {
                    return bad(format!(
                        "a head needs a department of the registry, got {department:?}"
                    ));
                }
                Ok(Jurisdiction::Department(department.to_owned()))
            }
            UserRole::Team => {
                if registry.team(town, department).is_none() {
                    return bad(format!(
                        "a team member needs a team of the registry (town and department), \
                         got town {town:?} and department {department:?}"
                    ));
                }
                Ok(Jurisdiction::Team {
                    town: town.to_owned(),
                    department: department.to_owned(),
                })
            }
        }
    }
}

impl User {
    /// Check the names of a user (the jurisdiction is checked when it is made).
    pub fn check(&self) -> Result<(), AccountError> {
        if !valid_user_name(&self.name) {
            return Err(AccountError::BadName(self.name.clone()));
        }
        if self.display_name.trim().is_empty() || self.display_name.chars().count() > 128 {
            return Err(AccountError::BadDisplayName);
        }
        Ok(())
    }
}

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A browser session (cookie), from a login: idle and absolute expiry.
    Session,
    /// A named API token for a machine: an expiry of its own.
    Token,
}

impl CredentialKind {
    /// As stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Session => "session",
            CredentialKind::Token => "token",
        }
    }

    /// From its stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "session" => Some(CredentialKind::Session),
            "token" => Some(CredentialKind::Token),
            _ => None,
        }
    }
}

/// A session or API token, as kept: never the secret itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// SHA-256 of the secret, 64 hex digits: how a presented secret is found.
    pub secret_hash: String,
    /// A short public id (the first 16 hex digits of the hash): how it is listed and revoked.
    pub id: String,
    /// Session or token.
    pub kind: CredentialKind,
    /// Whose.
    pub user: String,
    /// A token's name (`grafana`, `city-platform`); empty for a session.
    pub name: String,
    /// When it was made.
    pub created: Timestamp,
    /// When it stops working (a session's absolute expiry, a token's expiry).
    pub expires: Timestamp,
    /// When it was last used (to the minute): a session idle too long stops working.
    pub last_used: Timestamp,
    /// When it was revoked (logout, password change, by hand); none while valid.
    pub revoked: Option<Timestamp>,
}

/// The store's replacing version of a credential row: a later use replaces an earlier one, a
/// revocation replaces every use.
pub fn credential_version(c: &Credential) -> u64 {
    const REVOKED: u64 = 1 << 62;
    let ms = |t: Timestamp| u64::try_from(t.as_millis()).unwrap_or(0);
    match c.revoked {
        Some(at) => REVOKED + ms(at),
        None => ms(c.last_used),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_follow_the_rules() {
        assert!(valid_user_name("sun.li-2"));
        assert!(!valid_user_name("Sun"));
        assert!(!valid_user_name(""));
        assert!(!valid_user_name(&"a".repeat(65)));
        assert!(check_password("short").is_err());
        assert!(check_password("十二个汉字的密码是可以用的吗").is_ok());
    }

    #[test]
    fn a_jurisdiction_covers_what_its_role_answers_for() {
        let team = Jurisdiction::Team {
            town: "T1".into(),
            department: "environment".into(),
        };
        assert!(team.covers("T1", "environment"));
        assert!(!team.covers("T2", "environment"));
        assert!(!team.covers("T1", "safety"));
        let head = Jurisdiction::Department("safety".into());
        assert!(head.covers("T2", "safety") && !head.covers("T2", "coal"));
        assert!(Jurisdiction::County.covers("T9", "traffic"));
    }

    #[test]
    fn a_revocation_outranks_every_use() {
        let mut c = Credential {
            secret_hash: "0".repeat(64),
            id: "0".repeat(16),
            kind: CredentialKind::Session,
            user: "sun".into(),
            name: String::new(),
            created: Timestamp(1),
            expires: Timestamp(10),
            last_used: Timestamp(5_000_000_000_000),
            revoked: None,
        };
        let used = credential_version(&c);
        c.revoked = Some(Timestamp(2));
        assert!(credential_version(&c) > used);
    }
}
