//! deliver - the local delivery agent: one message on stdin, delivered to
//! each USER's mailbox (Maildir or mbox), or to a file or a command named
//! by qrun from aliases(5) or ~/.forward.
//!
//! It never runs as root: started as root with one user, it becomes that
//! user before touching anything. Usable as Postfix's mailbox_command and
//! fetchmail's mda.

#![forbid(unsafe_code)]

mod input;
mod sieve;
mod target;

use clap::Parser;
use posthorn_mail::config::{Config, Source};
use posthorn_sys::exit::{self, Exit};
use std::path::PathBuf;
use std::process::ExitCode;

/// Command line, as in deliver(8).
#[derive(Parser, Debug)]
#[command(
    name = "deliver",
    about = "Posthorn local delivery agent",
    disable_version_flag = true,
    override_usage = "deliver [-C file] [-f sender] [-a original-recipient] user ..."
)]
pub struct Args {
    /// Configuration file.
    #[arg(short = 'C', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Envelope sender (Return-Path); empty for <>.
    #[arg(short = 'f', value_name = "SENDER")]
    pub sender: Option<String>,
    /// The original recipient address, for the log and Delivered-To.
    #[arg(short = 'a', value_name = "ORIGINAL-RECIPIENT")]
    pub original: Option<String>,
    /// Queue ID for log lines (set by qrun).
    #[arg(short = 'q', value_name = "QUEUEID", hide = true)]
    pub queue_id: Option<String>,
    /// Arrival time in Unix seconds, for delay= in log lines (set by qrun).
    #[arg(long = "arrival", value_name = "SECS", hide = true)]
    pub arrival: Option<f64>,
    /// The mailbox, already resolved by qrun: no users-file lookup here.
    #[arg(long = "mailbox", value_name = "PATH", hide = true)]
    pub mailbox: Option<String>,
    /// The home directory, already resolved by qrun.
    #[arg(long = "home", value_name = "DIR", hide = true)]
    pub home: Option<PathBuf>,
    /// Run this command with the message on stdin (from aliases or .forward).
    #[arg(long = "pipe", value_name = "COMMAND", conflicts_with = "file")]
    pub pipe: Option<String>,
    /// Append to this file in mbox format (from aliases or .forward).
    #[arg(long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Print the user's ~/.forward (checked) and exit: how qrun, running as
    /// root, reads a file in a home directory only its owner may enter.
    #[arg(long = "show-forward", hide = true, requires = "home")]
    pub show_forward: bool,
    /// The message's size as queued (set by qrun): fewer bytes on stdin is
    /// a writer that died, and nothing is delivered.
    #[arg(long = "size", value_name = "BYTES", hide = true)]
    pub size: Option<u64>,
    /// The user's quota as qrun found it: `STORAGE:MESSAGES`, 0 for no limit.
    #[arg(long = "quota", value_name = "BYTES:COUNT", hide = true, value_parser = parse_quota)]
    pub quota: Option<posthorn_mail::users::Quota>,
    /// Recipient users (user or user+detail, optionally @domain).
    #[arg(value_name = "USER", required = true)]
    pub users: Vec<String>,
}

fn main() -> ExitCode {
    posthorn_sys::fsio::harden(0o077);
    posthorn_sys::fsio::ignore_sigxfsz();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp => 0,
                _ => exit::USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deliver: {e}");
            ExitCode::from(e.code)
        }
    }
}

/// run - load the configuration, read the message once, deliver to each
/// user; the exit code is the worst outcome (temporary beats permanent, so
/// a sender retries rather than bounces when any part may still succeed).
fn run(args: Args) -> Result<(), Exit> {
    let cfg = Config::load(&Source::choose(args.config.as_deref(), true))?;
    posthorn_sys::log::init("deliver", cfg.log == posthorn_mail::config::LogSink::Stderr);
    for (what, v) in [
        ("-f", args.sender.as_deref()),
        ("-a", args.original.as_deref()),
    ] {
        if v.is_some_and(posthorn_mail::address::has_control) {
            return Err(Exit::new(
                exit::USAGE,
                format!("{what}: CR, LF or NUL is not allowed"),
            ));
        }
    }
    if args
        .users
        .iter()
        .any(|u| posthorn_mail::address::has_control(u) || u.is_empty())
    {
        return Err(Exit::new(exit::USAGE, "USER: empty, or CR, LF or NUL"));
    }
    if args.show_forward {
        let home = args.home.clone().unwrap_or_default();
        let me = Some(posthorn_sys::privs::euid());
        return match posthorn_mail::users::read_forward_file(&home.join(".forward"), me) {
            Ok(Some(t)) => {
                print!("{t}");
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(m) => Err(Exit::new(exit::TEMPFAIL, m)),
        };
    }
    if args.users.len() > 1 && posthorn_sys::privs::euid() == 0 {
        return Err(Exit::new(
            exit::USAGE,
            "as root, deliver takes one USER (it becomes that user)",
        ));
    }
    let msg = input::Message::read_stdin(args.size)
        .map_err(|e| Exit::from_io("reading the message", &e))?;
    let mut worst: Option<Exit> = None;
    for user in &args.users {
        if let Err(e) = target::deliver_one(&cfg, &args, user, &msg) {
            let replace = match &worst {
                None => true,
                Some(w) => e.is_temporary() && !w.is_temporary(),
            };
            if replace {
                worst = Some(e);
            }
        }
    }
    match worst {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// parse_quota - `--quota BYTES:COUNT` (0: no limit on that one).
fn parse_quota(v: &str) -> Result<posthorn_mail::users::Quota, String> {
    let (b, c) = v.split_once(':').ok_or("expected BYTES:COUNT")?;
    let n = |x: &str| x.parse::<u64>().map_err(|_| format!("not a number: {x}"));
    let lim = |x: u64| if x == 0 { None } else { Some(x) };
    Ok(posthorn_mail::users::Quota {
        storage: lim(n(b)?),
        messages: lim(n(c)?),
    })
}
