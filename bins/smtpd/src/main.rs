//! smtpd - one SMTP session on stdin/stdout (inetd, xinetd, systemd
//! Accept=yes, tcpserver), as an MX (port 25), a submission server (587,
//! and 465 with --tls), or for `sendmail -bs`. See smtpd(8).
//!
//! Distrusted, in this order: the file descriptors and umask we were
//! given (harden), the command line, the client. In submission mode it
//! first forks the password check (posthorn-auth's checker: root when
//! started as root, it alone reads /etc/shadow, and it never reads the
//! network). Started as root, it then opens the users file (for
//! recipients) and reads the TLS key, and becomes the `user` account for
//! good, with no supplementary groups and no core dumps, before the first
//! octet from the client is read: smtpd never needs root again, since
//! accepted mail goes to the setgid enqueue and AUTH to the check.

#![forbid(unsafe_code)]

mod mailauth;
mod queue;
mod session;

use posthorn_auth::checker;
use posthorn_auth::request::Service;
use posthorn_mail::config::{Config, LogSink, Source};
use posthorn_net::wire::Wire;
use posthorn_smtpd::{body, command};
use posthorn_sys::confine;
use posthorn_sys::exit::{self, Exit};
use session::{MAX_COMMAND, Mode, Session};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: smtpd [-C file] [--submission] [--tls] | smtpd [-C file] --local";

/// Command line, as in smtpd(8).
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    submission: bool,
    tls: bool,
    /// `sendmail -bs`: the calling user's session on a pipe.
    local: bool,
}

/// parse_args - `-C file`, `--submission`, `--tls`, `--local`.
fn parse_args(mut it: impl Iterator<Item = std::ffi::OsString>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-C") => a.config = Some(it.next().ok_or("-C needs a file")?.into()),
            Some("--submission") => a.submission = true,
            Some("--tls") => a.tls = true,
            Some("--local") => a.local = true,
            Some(s) if s.starts_with("-C") && s.len() > 2 => a.config = Some(s[2..].into()),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    if a.local && (a.submission || a.tls) {
        return Err("--local goes alone".into());
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
            eprintln!("smtpd: {e}\n{USAGE}");
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
                    .write_all(b"421 4.3.0 Error: server unavailable, try again later\r\n");
            }
            ExitCode::from(e.code)
        }
    }
}

/// run - configuration, logging, secrets, privileges, then the session.
fn run(args: &Args) -> Result<(), Exit> {
    let root = posthorn_sys::privs::euid() == 0;
    // --local runs as the caller, who chose the config as sendmail's does.
    let mut cfg = Config::load(&Source::choose(args.config.as_deref(), true))?;
    posthorn_sys::log::init("smtpd", cfg.log == LogSink::Stderr);
    let mode = if args.local {
        Mode::Local {
            uid: posthorn_sys::privs::uid(),
        }
    } else if args.submission {
        Mode::Submission
    } else {
        Mode::Mx
    };
    let peer = posthorn_net::peer::Peer::detect();
    // --local trusts its caller as sendmail does: never a network client
    // (an inetd line pointing at it would be an open relay).
    if matches!(mode, Mode::Local { .. }) && peer.remote.is_some() {
        return Err(Exit::new(
            exit::USAGE,
            "--local is for sendmail -bs on a pipe, not for network clients",
        ));
    }
    // The password check, before anything secret is loaded: it needs
    // none of it, and keeps root (for /etc/shadow) when we have it.
    let checker = if mode == Mode::Submission {
        let client = (!peer.is_proxy(&cfg.proxy_trusted)).then(|| peer.log_name());
        Some(checker::spawn(&cfg, Service::Smtp, client)?)
    } else {
        None
    };
    // Read the key while we may (it is root's); --local offers no TLS.
    let tls = match mode {
        Mode::Local { .. } => None,
        _ => posthorn_net::tls::from_config(&cfg, args.tls)?,
    };
    // Open what only root may read (the users file, for recipients), then
    // stop being root for good.
    cfg.hold_secrets()?;
    if root {
        let a = cfg.mail_account()?;
        confine::drop_to(a.uid, a.gid)
            .map_err(|e| Exit::from_io(format!("switching to {}", a.name), &e))?;
    }
    // Started by inetd, smtpd never runs a program that needs a core dump
    // of it; enqueue, which it runs, is setgid and dumps none either.
    if !matches!(mode, Mode::Local { .. }) {
        confine::no_core().map_err(|e| Exit::from_io("turning core dumps off", &e))?;
    }
    let mut wire = Wire::new(cfg.smtpd.idle_timeout, MAX_COMMAND - 2);
    wire.set_deadline(Instant::now() + cfg.smtpd.session_timeout);
    let implicit = if args.tls { tls.clone() } else { None };
    let Some(peer) = wire.accept(peer, &cfg.proxy_trusted, implicit) else {
        return Ok(());
    };
    Session::new(&cfg, &peer, mode, tls, wire, checker).run();
    Ok(())
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
        let a = p(&["-C", "x.toml", "--submission", "--tls"]).unwrap();
        assert!(a.submission && a.tls && !a.local);
        assert!(p(&["--local"]).unwrap().local);
        assert!(p(&["--local", "--tls"]).is_err());
        assert!(p(&["-C"]).is_err());
        assert!(p(&["-x"]).is_err());
    }
}
