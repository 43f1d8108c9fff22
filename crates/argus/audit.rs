//! `argus audit verify`: the chain of hashes of the legal record recomputed, ticket by ticket,
//! then the chains of staff acknowledgements and silences, in the configured store; exit 1
//! naming the first line of each broken record.

use std::process::ExitCode;

use anyhow::Context;
use argus_config::Settings;
use argus_store::{Backend, Store};

/// Verify one ticket's record, or every ticket's; print what was checked and what broke.
pub async fn verify(settings: &Settings, ticket: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = Backend::from_settings(settings).context("cannot open the store")?;
    let audit = argus_store::audit::audit(&store, ticket)
        .await
        .with_context(|| format!("cannot read the ticket records of {}", store.describe()))?;
    if audit.tickets.is_empty() {
        match ticket {
            Some(id) => anyhow::bail!("no ticket {id} is stored in {}", store.describe()),
            None => println!("no tickets in {}", store.describe()),
        }
    }
    let (mut lines, mut unchained) = (0, 0);
    for (id, result) in &audit.tickets {
        match result {
            Ok(chain) => {
                lines += chain.lines;
                unchained += chain.unchained;
                let head = if chain.head.is_empty() {
                    "-"
                } else {
                    &chain.head
                };
                println!("ok      {id}  {:>4} lines  head {head}", chain.lines);
            }
            Err(e) => println!("BROKEN  {id}  {e}"),
        }
    }
    for (name, result) in &audit.staff {
        match result {
            Ok(chain) => {
                let head = if chain.head.is_empty() {
                    "-"
                } else {
                    &chain.head
                };
                println!(
                    "ok      {name:<16}  {:>4} lines  head {head}  ({} written before the chain)",
                    chain.lines, chain.unchained
                );
            }
            Err(e) => println!("BROKEN  {name:<16}  {e}"),
        }
    }
    let broken = audit.breaks().count();
    println!(
        "{} tickets, {lines} lines verified ({unchained} written before the chain), {broken} broken",
        audit.tickets.len()
    );
    Ok(if broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
