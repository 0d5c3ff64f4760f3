//! pop3d - one POP3 session on stdin/stdout (inetd, systemd Accept=yes,
//! tcpserver) over the user's Maildir INBOX. See pop3d(8).
//!
//! Distrusted, in this order: the file descriptors and umask we were
//! given (harden), the command line, the client (everything it sends goes
//! through command.rs under a cap, and session.rs decides what it may do).
//! Started as root, it keeps root only in the saved uid until the password
//! is checked, and gives it up for good before opening any mailbox.

#![forbid(unsafe_code)]

mod command;
mod listing;
mod maildrop;
mod serve;
mod session;
mod stream;
mod uidlist;

use posthorn_mail::config::{Config, LogSink, Source};
use posthorn_sys::exit::{self, Exit};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: pop3d [-C file] [--tls] [--no-flag-updates]";

/// Command line, as in pop3d(8).
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    tls: bool,
    /// RETR leaves messages in new/ and their flags alone.
    no_flag_updates: bool,
}

/// parse_args - `-C file`, `--tls`, `--no-flag-updates`, nothing else.
fn parse_args(mut it: impl Iterator<Item = std::ffi::OsString>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-C") => a.config = Some(it.next().ok_or("-C needs a file")?.into()),
            Some("--tls") => a.tls = true,
            Some("--no-flag-updates") => a.no_flag_updates = true,
            Some(s) if s.starts_with("-C") && s.len() > 2 => a.config = Some(s[2..].into()),
            _ => return Err(format!("unexpected argument {:?}", arg)),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    posthorn_sys::fsio::harden(0o077);
    // Under inetd, stderr is the client's socket: nothing of ours goes there.
    posthorn_sys::fsio::stderr_off_sockets();
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pop3d: {e}\n{USAGE}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            posthorn_sys::error!("{}", e.message);
            // The client hears about it too, unless TLS was to come first.
            if !args.tls {
                let _ = std::io::stdout()
                    .write_all(b"-ERR [SYS/TEMP] server unavailable, try again later\r\n");
            }
            ExitCode::from(e.code)
        }
    }
}

/// run - configuration, logging, TLS, privileges, then the session.
fn run(args: &Args) -> Result<(), Exit> {
    let cfg = Config::load(&Source::choose(args.config.as_deref(), true))?;
    posthorn_sys::log::init("pop3d", cfg.log == LogSink::Stderr);
    let peer = posthorn_net::peer::Peer::detect();
    // Read the key while we may (it is root's), before giving anything up.
    let tls = posthorn_net::tls::from_config(&cfg, args.tls)?;
    // As root: run as the `user` account before login, keeping root only
    // in the saved uid for the password check and the final switch.
    let pre_login = if posthorn_sys::privs::euid() == 0 {
        let a = cfg.mail_account()?;
        posthorn_sys::privs::drop_effective(a.uid, a.gid)
            .map_err(|e| Exit::from_io(format!("switching to {}", a.name), &e))?;
        Some(a)
    } else {
        None
    };
    serve::serve(&cfg, peer, tls, args.tls, !args.no_flag_updates, pre_login)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| std::ffi::OsString::from(*s)))
    }

    #[test]
    fn usage() {
        assert!(p(&[]).is_ok());
        let a = p(&["-C", "x.toml", "--tls"]).unwrap();
        assert_eq!(a.config.as_deref(), Some(std::path::Path::new("x.toml")));
        assert!(a.tls && !a.no_flag_updates);
        assert!(p(&["--no-flag-updates"]).unwrap().no_flag_updates);
        assert!(p(&["-Cx.toml"]).unwrap().config.is_some());
        assert!(p(&["-C"]).is_err());
        assert!(p(&["-x"]).is_err());
    }
}
