//! enqueue - put one message into the spool, durably, and wake qrun.
//!
//! Runs setgid to the spool group when installed, so it distrusts its
//! caller: the environment and `-C` are ignored unless the caller is root
//! or enqueue is not privileged at all; the umask is fixed; fds 0-2 are
//! made safe; stdin is a record stream (enqueue(8)) checked line by line
//! with caps on every length. It parses no mail headers and runs nothing.
//! It puts its own trace field on top of every message (Postfix cleanup's
//! `Received: by HOST (..., from userid N)`), so a local user who pipes
//! records in directly cannot pass a message off as someone else's; only
//! smtpd, which writes its own, is spared (`-s`, believed from smtpd's
//! account and root).

#![forbid(unsafe_code)]

mod list;

use posthorn_mail::config::{Config, Source};
use posthorn_spool::Spool;
use posthorn_spool::envelope::{self, Envelope, ReadError};
use posthorn_spool::layout::StoreError;
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::{fsio, info, privs};
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: enqueue [-C file] [-s] [-p | -q]";

fn main() -> ExitCode {
    // Files we create are for the spool group only.
    fsio::harden(0o027);
    fsio::ignore_sigxfsz();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enqueue: {e}");
            ExitCode::from(e.code)
        }
    }
}

/// What the command line asked for.
struct Args {
    config: Option<PathBuf>,
    list: bool,
    flush: bool,
    /// `-s`: smtpd, whose message starts with its own Received: field.
    smtpd: bool,
}

/// parse_args - `-C FILE`, `-s`, `-p` and `-q`; anything else is a usage error.
fn parse_args() -> Result<Args, Exit> {
    let mut a = Args {
        config: None,
        list: false,
        flush: false,
        smtpd: false,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-C") => {
                let f = it.next().ok_or_else(|| Exit::new(exit::USAGE, USAGE))?;
                a.config = Some(PathBuf::from(f));
            }
            Some("-p") => a.list = true,
            Some("-q") => a.flush = true,
            Some("-s") => a.smtpd = true,
            _ => {
                return Err(Exit::new(
                    exit::USAGE,
                    format!("unknown argument {arg:?}\n{USAGE}"),
                ));
            }
        }
    }
    Ok(a)
}

/// run - read, write, commit, wake; the exit code says whether it is stored.
fn run() -> Result<(), Exit> {
    let args = parse_args()?;
    // A setgid enqueue must not read a file the caller chose: that file
    // names the spool, and the caller could point it at any group-writable place.
    let trust = !privs::is_privileged() || privs::uid() == 0;
    let cfg = Config::load(&Source::choose(args.config.as_deref(), trust))?;
    posthorn_sys::log::init("enqueue", cfg.log == posthorn_mail::config::LogSink::Stderr);
    let spool = Spool::new(&cfg.spool);
    if args.list {
        return list::print(&spool);
    }
    if args.flush {
        // `sendmail -q` from a user who may not run the queue: ask the daemon.
        return if spool.flush() {
            Ok(())
        } else {
            Err(Exit::new(
                exit::UNAVAILABLE,
                "qrun is not running: start it, or run the queue as root",
            ))
        };
    }
    let stdin = std::io::stdin().lock();
    let mut input = BufReader::with_capacity(64 * 1024, stdin);
    let env = Envelope::read_records(&mut input).map_err(read_error)?;

    let arrival = posthorn_mail::date::since_epoch();
    let uid = privs::uid();
    let trace = adds_trace(args.smtpd, privs::is_privileged(), uid, || {
        cfg.mail_account().ok().map(|a| a.uid)
    });
    let mut size = 0;
    let id = spool
        .store(&env, uid, arrival, |id, w| {
            // The ID now, before the message: smtpd puts it in Received:.
            // Exit 0 is what says the message was committed under it.
            let mut out = std::io::stdout().lock();
            writeln!(out, "{id}")
                .and_then(|()| out.flush())
                .map_err(ReadError::Io)?;
            let mut head = 0;
            if trace {
                let line = received(&cfg.hostname, uid, id);
                w.write_all(line.as_bytes()).map_err(ReadError::Io)?;
                head = line.len() as u64;
            }
            size = head + envelope::copy_chunks(&mut input, w, cfg.message_size_limit)?;
            Ok(size)
        })
        .map_err(|e| match e {
            StoreError::Body(r) => read_error(r),
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => Exit::new(
                exit::CANTCREAT,
                format!(
                    "{}: no spool here (run qrun once, or make install)",
                    spool.tmp().display()
                ),
            ),
            StoreError::Io(e) => Exit::from_io(
                format!("writing the queue file in {}", spool.root.display()),
                &e,
            ),
        })?;
    info!(
        "{id}: uid={uid} from=<{}>, size={size}, nrcpt={}",
        env.sender,
        env.recipients.len()
    );
    spool.wake();
    Ok(())
}

/// adds_trace - whether enqueue writes its Received: field: for every
/// caller, root included (as Postfix does for all it picks up from
/// postdrop), unless smtpd says (`-s`) that its own is there and may be
/// believed: from root, from smtpd's account (`user`), or when enqueue is
/// not privileged, for then the caller could write the spool without us.
fn adds_trace(
    smtpd: bool,
    privileged: bool,
    caller: u32,
    mail_uid: impl FnOnce() -> Option<u32>,
) -> bool {
    if !smtpd {
        return true;
    }
    if !privileged || caller == 0 {
        return false;
    }
    mail_uid() != Some(caller)
}

/// received - Postfix cleanup's trace field for a local submission.
fn received(hostname: &str, uid: u32, id: &posthorn_spool::QueueId) -> String {
    format!(
        "Received: by {hostname} (Posthorn, from userid {uid})\n\tid {id}; {}\n",
        posthorn_mail::date::now_rfc5322()
    )
}

/// read_error - a broken writer is a data error; a writer that died or a
/// full disk is temporary: in both cases nothing is stored.
fn read_error(e: ReadError) -> Exit {
    match &e {
        ReadError::Bad(_) => Exit::new(exit::DATAERR, e.to_string()),
        ReadError::TooBig(_) => Exit::new(exit::DATAERR, e.to_string()),
        ReadError::Io(io) => Exit::from_io("reading input", io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_gets_a_trace_field() {
        const MAIL: u32 = 110;
        // (-s given, enqueue privileged, caller, adds the field)
        let table = [
            (false, true, 1000, true),  // a user through sendmail
            (false, true, 0, true),     // root through sendmail, as Postfix does
            (false, true, MAIL, true),  // sendmail as the mail account
            (false, false, 1000, true), // an unprivileged instance
            (true, true, MAIL, false),  // smtpd
            (true, true, 0, false),     // root, who could write the spool anyway
            (true, true, 1000, true),   // a user claiming to be smtpd
            (true, false, 1000, false), // unprivileged: smtpd runs as the caller
        ];
        for (smtpd, privileged, caller, want) in table {
            assert_eq!(
                adds_trace(smtpd, privileged, caller, || Some(MAIL)),
                want,
                "-s {smtpd}, privileged {privileged}, uid {caller}"
            );
        }
        // No such account: nobody is smtpd's.
        assert!(adds_trace(true, true, 1000, || None));
    }
}
