//! imapd - one IMAP4rev1 session on stdin/stdout (inetd, systemd
//! Accept=yes, tcpserver) over the user's Maildir++ folders. See imapd(8).
//!
//! Distrusted, in this order: the file descriptors and umask we were
//! given (harden), the command line, the client (everything it sends goes
//! through serve.rs's caps and command.rs's grammar, and session.rs
//! decides what it may do). Started as root, it keeps root only in the
//! saved uid until the password is checked, and gives it up for good
//! before opening any mailbox.

#![forbid(unsafe_code)]

use posthorn_imapd::serve;

use posthorn_mail::config::{Config, LogSink, Source};
use posthorn_sys::exit::{self, Exit};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: imapd [-C file] [--tls]";

/// Address space for a session beside its messages (RLIMIT_AS).
const MEMORY_BASE: u64 = 1024 * 1024 * 1024;

/// Command line, as in imapd(8).
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    tls: bool,
}

/// parse_args - `-C file`, `--tls`, nothing else.
fn parse_args(mut it: impl Iterator<Item = std::ffi::OsString>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-C") => a.config = Some(it.next().ok_or("-C needs a file")?.into()),
            Some("--tls") => a.tls = true,
            Some(s) if s.starts_with("-C") && s.len() > 2 => a.config = Some(s[2..].into()),
            _ => return Err(format!("unexpected argument {:?}", arg)),
        }
    }
    Ok(a)
}

/// main - harden, parse the command line, run, map the outcome to an exit code.
fn main() -> ExitCode {
    posthorn_sys::fsio::harden(0o077);
    // Under inetd, stderr is the client's socket: nothing of ours goes there.
    posthorn_sys::fsio::stderr_off_sockets();
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("imapd: {e}\n{USAGE}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            posthorn_sys::error!("{}", e.message);
            if !args.tls {
                let _ = std::io::stdout()
                    .write_all(b"* BYE [UNAVAILABLE] server unavailable, try again later\r\n");
            }
            ExitCode::from(e.code)
        }
    }
}

/// run - configuration, logging, TLS, privileges, then the session.
fn run(args: &Args) -> Result<(), Exit> {
    let cfg = Config::load(&Source::choose(args.config.as_deref(), true))?;
    posthorn_sys::log::init("imapd", cfg.log == LogSink::Stderr);
    let peer = posthorn_net::peer::Peer::detect();
    // Read the key while we may (it is root's), before giving anything up.
    let tls = posthorn_net::tls::from_config(&cfg, args.tls)?;
    // One session's memory: the largest message (APPEND holds its
    // literal; FETCH and SEARCH hold a message, its CRLF form and its
    // decoded text) several times over, and room for a big folder.
    let cap = MEMORY_BASE.saturating_add(cfg.message_size_limit.saturating_mul(6));
    if let Err(e) = posthorn_sys::fsio::limit_memory(cap) {
        posthorn_sys::warning!("cannot limit memory to {cap} bytes: {e}");
    }
    let pre_login = if posthorn_sys::privs::euid() == 0 {
        let a = cfg.mail_account()?;
        posthorn_sys::privs::drop_effective(a.uid, a.gid)
            .map_err(|e| Exit::from_io(format!("switching to {}", a.name), &e))?;
        Some(a)
    } else {
        None
    };
    serve::serve(&cfg, peer, tls, args.tls, pre_login)
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
        assert!(a.tls && a.config.is_some());
        assert!(p(&["-Cx.toml"]).unwrap().config.is_some());
        assert!(p(&["-C"]).is_err());
        assert!(p(&["-x"]).is_err());
    }
}
