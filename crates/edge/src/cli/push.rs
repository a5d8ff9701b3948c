//! `portico config push FILE …`: validate, store the version, start its rollout, print the
//! version and the plan; with `--wait`, follow it to its end.

use super::args::PushArgs;
use super::output::print_errors;
use super::{refuse, rollout, view};
use portico::config::push::{PushError, PushOptions, start_push};
use portico_core::config::Overrides;
use portico_core::rollout::State;
use portico_store::{Store, StoreUrl};
use std::process::ExitCode;

/// Runs `config push`.
pub async fn push(store: &Store, url: &StoreUrl, args: &PushArgs) -> anyhow::Result<ExitCode> {
    let file = &args.file;
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => return refuse(format_args!("cannot read {}: {e}", file.display())),
    };
    let opts = PushOptions {
        if_version: args.if_version.clone(),
        message: args.message.clone(),
        author: args.author.or_default(),
        canary: args.canary.clone(),
        waves: args.waves.clone(),
        bake_secs: args.bake,
        min_requests: args.min_requests,
        max_error_increase: args.max_error_increase,
        min_errors: args.min_errors,
    };
    let started = match start_push(store, &text, &opts, &Overrides::default()).await {
        Ok(started) => started,
        Err(PushError::Invalid(errors)) => {
            eprintln!("{}: invalid, nothing written:", file.display());
            print_errors(&errors);
            return Ok(ExitCode::from(super::REFUSED));
        }
        Err(e) => return refuse(format_args!("{e}; nothing written")),
    };
    sayln!(
        "pushed version {} to {url} ({})",
        started.version,
        url.config_key()
    )?;
    let r = &started.rollout;
    if r.state == State::Promoted {
        let why = match (&r.stable, started.left_out.is_empty()) {
            (None, _) => "the store had no stable version".to_string(),
            (Some(_), true) => "no node is registered".to_string(),
            (Some(_), false) => format!(
                "no live node is registered ({} look dead)",
                started.left_out.join(", ")
            ),
        };
        sayln!("promoted at once ({why}: nothing to judge it against); it is the stable version")?;
        return Ok(ExitCode::SUCCESS);
    }
    sayln!(
        "rollout started from stable {}; {}",
        r.stable.as_deref().unwrap_or("none"),
        view::settings_line(r)
    )?;
    sayln!("plan:")?;
    for line in view::plan_lines(&started.plan) {
        sayln!("{line}")?;
    }
    if !started.left_out.is_empty() {
        sayln!(
            "left out (stale: no report and no lease renewal lately; they run stable if they \
             come back): {}",
            started.left_out.join(", ")
        )?;
    }
    if !args.wait {
        sayln!("follow it:  portico config rollout --wait 600 --store {url}")?;
        return Ok(ExitCode::SUCCESS);
    }
    for rec in &r.log {
        sayln!("{}", view::verdict(r, rec))?;
    }
    rollout::follow(store, &started.version, r.started_at_ms, r.log.len()).await
}
