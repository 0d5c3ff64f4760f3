//! qrun - the queue runner: a foreground daemon (for a systemd
//! Type=simple unit or an rc script) or a single pass (`-o`, `sendmail -q`).
//!
//! Started as root it keeps root only to start `deliver` as each
//! recipient: everything else runs as the `user` account, with the saved
//! uid as the one way back.

#![forbid(unsafe_code)]

mod admin;
mod agent;
mod bounce;
mod dkim;
mod process;
mod remote;
mod resolve;
mod schedule;
mod throttle;

use agent::{Agent, RootIds};
use clap::Parser;
use posthorn_mail::config::{Config, Source};
use posthorn_spool::Spool;
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::privs::{self, Ids};
use std::path::PathBuf;
use std::process::ExitCode;

/// Command line, as in qrun(8).
#[derive(Parser, Debug)]
#[command(
    name = "qrun",
    about = "Posthorn queue runner",
    disable_version_flag = true,
    group(clap::ArgGroup::new("job").multiple(false)),
    override_usage = "qrun [-C file] [-o]\n       qrun [-C file] --verify address ...\n       qrun [-C file] -i queue-id ... | -d domain\n       qrun [-C file] --hold | --release | --delete queue-id ... | ALL"
)]
struct Args {
    /// Configuration file.
    #[arg(short = 'C', value_name = "FILE")]
    config: Option<PathBuf>,
    /// One pass over the whole queue, deferred mail included, then exit.
    #[arg(short = 'o', long = "once", group = "job")]
    once: bool,
    /// Print what each address expands to and whether it is deliverable; send nothing.
    #[arg(long = "verify", value_name = "ADDRESS", num_args = 1.., group = "job")]
    verify: Vec<String>,
    /// Deliver these messages now, deferred or not (postqueue -i).
    #[arg(short = 'i', long = "id", value_name = "QUEUE-ID", num_args = 1.., group = "job")]
    ids: Vec<String>,
    /// Deliver now every message with a recipient at this domain (postqueue -s).
    #[arg(short = 'd', long = "domain", value_name = "DOMAIN", group = "job")]
    domain: Option<String>,
    /// Put messages on hold: kept, but not tried until released (postsuper -h).
    #[arg(long = "hold", value_name = "QUEUE-ID", num_args = 1.., group = "job")]
    hold: Vec<String>,
    /// Release held messages, to be tried now (postsuper -H).
    #[arg(long = "release", value_name = "QUEUE-ID", num_args = 1.., group = "job")]
    release: Vec<String>,
    /// Delete messages, queued or held, without a bounce (postsuper -d).
    #[arg(long = "delete", value_name = "QUEUE-ID", num_args = 1.., group = "job")]
    delete: Vec<String>,
}

fn main() -> ExitCode {
    posthorn_sys::fsio::harden(0o027);
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.kind() == clap::error::ErrorKind::DisplayHelp {
                0
            } else {
                exit::USAGE
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qrun: {e}");
            if posthorn_sys::log::is_initialized() && !posthorn_sys::log::to_stderr() {
                posthorn_sys::error!("fatal: {e}");
            }
            ExitCode::from(e.code)
        }
    }
}

/// run - set up, then verify, run once, or run as a daemon.
fn run(args: Args) -> Result<(), Exit> {
    let cfg = Config::load(&Source::choose(args.config.as_deref(), true))?;
    posthorn_sys::log::init("qrun", cfg.log == posthorn_mail::config::LogSink::Stderr);
    let spool = Spool::new(&cfg.spool);
    // The signing keys are read while qrun may still be root (dkim.rs);
    // as root a key that cannot be read is a configuration error.
    let keys = dkim::Keys::load(&cfg);
    if privs::euid() == 0
        && let Some(e) = keys.first_error()
    {
        return Err(Exit::new(exit::CONFIG, e));
    }
    let root = if privs::euid() == 0 {
        Some(become_mail_user(&cfg, &spool)?)
    } else {
        None
    };
    if root.is_none() {
        spool.create().map_err(|e| {
            Exit::new(
                exit::CANTCREAT,
                format!("cannot create the spool {}: {e}", spool.root.display()),
            )
        })?;
    }
    let agent = Agent {
        deliver: cfg.helper("deliver"),
        config_args: cfg.args(),
        root,
        command_limit: cfg.local.command_time_limit,
        remote_limit: cfg.remote.message_timeout + std::time::Duration::from_secs(60),
    };
    if !args.verify.is_empty() {
        return verify(&cfg, &agent, &args.verify);
    }
    let ctx = process::Ctx::new(cfg, spool, agent, keys);
    if !args.ids.is_empty() || args.domain.is_some() {
        return admin::flush(&ctx, &args.ids, args.domain.as_deref());
    }
    for (what, ids) in [
        (admin::Move::Hold, &args.hold),
        (admin::Move::Release, &args.release),
        (admin::Move::Delete, &args.delete),
    ] {
        if !ids.is_empty() {
            return admin::change(&ctx, what, ids);
        }
    }
    if args.once {
        schedule::once(&ctx)
    } else {
        schedule::daemon(&ctx)
    }
}

/// become_mail_user - as root: make the spool belong to `user`, then run as
/// `user` with the saved uid kept for starting deliveries.
fn become_mail_user(cfg: &Config, spool: &Spool) -> Result<RootIds, Exit> {
    let a = cfg.mail_account()?;
    let nobody = privs::lookup_user("nobody").ok().flatten();
    spool.create().map_err(|e| {
        Exit::new(
            exit::CANTCREAT,
            format!("cannot create the spool {}: {e}", spool.root.display()),
        )
    })?;
    for p in [
        spool.root.clone(),
        spool.tmp(),
        spool.incoming(),
        spool.state(),
        spool.hold(),
        spool.uids(),
        spool.dkim(),
        spool.trigger(),
    ] {
        let _ = nix::unistd::chown(
            &p,
            Some(nix::unistd::Uid::from_raw(a.uid)),
            Some(nix::unistd::Gid::from_raw(a.gid)),
        );
    }
    let mail = Ids::for_user(&a.name, a.uid, a.gid);
    let nobody = match nobody {
        Some(n) => Ids::for_user(&n.name, n.uid, n.gid),
        None => mail.clone(),
    };
    privs::drop_effective(a.uid, a.gid).map_err(|e| {
        Exit::new(
            exit::OSERR,
            format!("cannot switch to user {}: {e}", a.name),
        )
    })?;
    Ok(RootIds { mail, nobody })
}

/// verify - `sendmail -bv`: expand each address and say where it goes.
fn verify(cfg: &Config, agent: &Agent, addrs: &[String]) -> Result<(), Exit> {
    use resolve::Target;
    let aliases = match &cfg.aliases {
        Some(p) => posthorn_mail::aliases::Aliases::load(p)
            .map_err(|e| Exit::from_io(format!("{}", p.display()), &e))?,
        None => posthorn_mail::aliases::Aliases::default(),
    };
    let r = resolve::Resolver {
        cfg,
        aliases: &aliases,
        aliases_run_as: resolve::RunAs::Qrun,
        forward: agent,
    };
    let mut bad = false;
    for a in addrs {
        for e in r.expand(a) {
            let line = match &e.target {
                Target::Mailbox { user, address, .. } => {
                    format!("{a}: deliverable: {address} -> {}", user.mailbox)
                }
                Target::Pipe { command, .. } => format!("{a}: deliverable: command \"{command}\""),
                Target::File { path, .. } => format!("{a}: deliverable: file {}", path.display()),
                Target::Remote { address } => {
                    let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                    let how = match (cfg.transport_for(domain), &cfg.relayhost) {
                        (Some(r), _) => format!("transport {r}"),
                        (None, Some(r)) => format!("relayhost {r}"),
                        (None, None) => "MX lookup".to_string(),
                    };
                    format!("{a}: deliverable: {address} -> smtp ({how})")
                }
                Target::Fail { address, dsn, text } => {
                    bad = true;
                    format!("{a}: undeliverable: {address}: {dsn} {text}")
                }
                Target::Defer { address, dsn, text } => {
                    format!("{a}: deferred: {address}: {dsn} {text}")
                }
            };
            println!("{line}");
        }
    }
    if bad {
        Err(Exit::new(exit::NOUSER, "some addresses are undeliverable"))
    } else {
        Ok(())
    }
}
