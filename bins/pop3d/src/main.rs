//! pop3d - one POP3 session on stdin/stdout (inetd, systemd Accept=yes,
//! tcpserver) over the user's Maildir INBOX. See pop3d(8).
//!
//! Distrusted, in this order: the file descriptors and umask we were
//! given (harden), the command line, the client (everything it sends goes
//! through command.rs under a cap, and session.rs decides what it may do).
//!
//! Three processes (posthorn-auth's split): this first one checks
//! passwords and never reads the network; the pre-login process it forks
//! speaks to the client until a login, shut in (chroot, the `login_user`
//! account, no groups, no core dumps) when started as root; after a good
//! login this first process becomes the mailbox owner and runs pop3d
//! afresh as the session (`--session`).

#![forbid(unsafe_code)]

mod command;
mod listing;
mod maildrop;
mod serve;
mod session;
mod stream;
mod uidlist;

use posthorn_auth::request::Service;
use posthorn_auth::split;
use posthorn_mail::config::{Config, LogSink, Source};
use posthorn_sys::exit::{self, Exit};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: pop3d [-C file] [--tls] [--no-flag-updates]";

/// How long a session waits for its relay to send the last replies.
const RELAY_END: std::time::Duration = std::time::Duration::from_secs(15);

/// Command line, as in pop3d(8).
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    tls: bool,
    /// RETR leaves messages in new/ and their flags alone.
    no_flag_updates: bool,
    /// Started by pop3d itself after a login (see pop3d(8), PROCESSES).
    session: bool,
}

/// parse_args - `-C file`, `--tls`, `--no-flag-updates`, nothing else.
fn parse_args(mut it: impl Iterator<Item = std::ffi::OsString>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-C") => a.config = Some(it.next().ok_or("-C needs a file")?.into()),
            Some("--tls") => a.tls = true,
            Some("--no-flag-updates") => a.no_flag_updates = true,
            Some("--session") => a.session = true,
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
            if !args.tls || args.session {
                let _ = std::io::stdout()
                    .write_all(b"-ERR [SYS/TEMP] server unavailable, try again later\r\n");
            }
            ExitCode::from(e.code)
        }
    }
}

/// run - configuration, logging, TLS, the split into processes, then
/// the pre-login session; or, with --session, the session after login.
fn run(args: &Args) -> Result<(), Exit> {
    let cfg = Config::load(&Source::choose(args.config.as_deref(), true))?;
    posthorn_sys::log::init("pop3d", cfg.log == LogSink::Stderr);
    if args.session {
        let record = split::session_record()?;
        let handoff = posthorn_net::handoff::receive()
            .map_err(|e| Exit::from_io("taking over the connection", &e))?;
        let r = serve::session(&cfg, record, handoff, !args.no_flag_updates);
        split::finish(RELAY_END);
        return r;
    }
    let peer = posthorn_net::peer::Peer::detect();
    // Read the key while we may (it is root's), before giving anything up.
    let tls = posthorn_net::tls::from_config(&cfg, args.tls)?;
    let mut session_args = vec!["pop3d".to_string()];
    if args.no_flag_updates {
        session_args.push("--no-flag-updates".into());
    }
    let plan = split::Plan {
        service: Service::Pop3,
        session_args,
        client: (!peer.is_proxy(&cfg.proxy_trusted)).then(|| peer.log_name()),
    };
    let checker = split::split(&cfg, plan)?;
    serve::serve(&cfg, peer, tls, args.tls, checker)
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
        assert!(p(&["--session"]).unwrap().session);
    }
}
