//! `argus user`: users of the API and console managed in the configured store, through the same
//! account operations as the API (`argus_api::accounts`).

use std::io::BufRead;
use std::time::SystemTime;

use anyhow::Context;
use argus_api::accounts::{self, NewUser};
use argus_api::Accounts;
use argus_config::Settings;
use argus_model::{Registry, Timestamp, UserRole, UserView};
use argus_service::StoreAccounts;
use argus_store::{Backend, Store};

use crate::cli::UserCommand;

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// The password: the first line of standard input, or a new random one (printed).
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        return Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false));
    }
    // 24 characters from an alphabet without look-alikes (about 139 bits), without modulo
    // bias: bytes at or above the largest multiple of the alphabet's length are passed over.
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let limit = 256 - 256 % ALPHABET.len();
    let mut made = String::new();
    while made.len() < 24 {
        let mut bytes = [0_u8; 32];
        getrandom::getrandom(&mut bytes).context("no randomness for a password")?;
        made.extend(
            bytes
                .iter()
                .map(|&b| usize::from(b))
                .filter(|&b| b < limit)
                .map(|b| char::from(ALPHABET[b % ALPHABET.len()]))
                .take(24 - made.len()),
        );
    }
    Ok((made, true))
}

fn describe(u: &UserView) -> String {
    let place = match (&u.town, &u.department) {
        (Some(t), Some(d)) => format!("{t}/{d}"),
        (None, Some(d)) => format!("*/{d}"),
        _ => "county".to_owned(),
    };
    let state = if u.disabled { "  disabled" } else { "" };
    format!(
        "{:<20} {:<10} {:<24} {}{state}",
        u.name, u.role, place, u.display_name
    )
}

/// Run one `argus user` command against the store of `settings`.
pub async fn run(
    settings: &Settings,
    registry: &Registry,
    command: UserCommand,
) -> anyhow::Result<()> {
    let store = Backend::from_settings(settings).context("cannot open the store")?;
    store
        .prepare()
        .await
        .with_context(|| format!("cannot prepare {}", store.describe()))?;
    let accounts = StoreAccounts(store);
    match command {
        UserCommand::Add {
            name,
            display_name,
            role,
            town,
            department,
            password_stdin,
        } => {
            let role = UserRole::parse(&role).with_context(|| {
                format!("unknown role {role:?} (admin, monitor, dispatcher, team, head)")
            })?;
            let (password, made) = password(password_stdin)?;
            let new = NewUser {
                name,
                display_name,
                role,
                town,
                department,
                password: password.clone(),
            };
            let user = accounts::add_user(&accounts, registry, new, now()).await?;
            println!("created {}", describe(&UserView::of(&user)));
            if made {
                println!("password: {password}");
            }
        }
        UserCommand::List => {
            for user in accounts.users().await? {
                println!("{}", describe(&UserView::of(&user)));
            }
        }
        UserCommand::Disable { name } => {
            let user = accounts::disable_user(&accounts, &name, now()).await?;
            println!("disabled {}", describe(&UserView::of(&user)));
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (password, made) = password(password_stdin)?;
            let user = accounts::set_password(&accounts, &name, password.clone(), now()).await?;
            println!("password set for {} (sessions ended)", user.name);
            if made {
                println!("password: {password}");
            }
        }
        UserCommand::Token {
            name,
            token_name,
            days,
        } => {
            let (secret, credential) =
                accounts::issue_token(&accounts, &name, &token_name, days, now()).await?;
            println!(
                "token {} ({}) for {}, expires {}",
                credential.id,
                credential.name,
                credential.user,
                credential.expires.to_rfc3339()
            );
            println!("{secret}");
        }
    }
    Ok(())
}
