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
use posthorn_spool::layout::{StoreError, Usage};
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
    let uid = privs::uid();
    let mail_uid = std::cell::OnceCell::new();
    let mail_uid = || *mail_uid.get_or_init(|| cfg.mail_account().ok().map(|a| a.uid));
    // A user at the cap is told before sending us the message.
    let limits = Limits::for_caller(&cfg, uid, mail_uid);
    let mut queued = Usage::default();
    if let Some(l) = &limits {
        queued = spool
            .usage(uid, |u| l.reached(u))
            .map_err(|e| Exit::from_io("counting the messages queued", &e))?;
        if let Some(why) = l.refuse(uid, &queued, 0) {
            return Err(Exit::new(exit::TEMPFAIL, why));
        }
    }
    let stdin = std::io::stdin().lock();
    let mut input = BufReader::with_capacity(64 * 1024, stdin);
    let env = Envelope::read_records(&mut input).map_err(read_error)?;

    let arrival = posthorn_mail::date::since_epoch();
    let trace = adds_trace(args.smtpd, privs::is_privileged(), uid, mail_uid);
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
            // Over the byte cap with this message: not committed.
            if let Some(why) = limits.as_ref().and_then(|l| l.refuse(uid, &queued, size)) {
                return Err(Refusal::OverLimit(why));
            }
            Ok(size)
        })
        .map_err(|e| match e {
            StoreError::Body(Refusal::Read(r)) => read_error(r),
            StoreError::Body(Refusal::OverLimit(why)) => Exit::new(exit::TEMPFAIL, why),
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
    if limits.is_some()
        && let Err(e) = spool.count(uid, &id, size)
    {
        // Stored all the same: this only counts one message too few.
        posthorn_sys::warning!("{id}: cannot count the message for uid {uid}: {e}");
    }
    info!(
        "{id}: uid={uid} from=<{}>, size={size}, nrcpt={}",
        env.sender,
        env.recipients.len()
    );
    spool.wake();
    Ok(())
}

/// Why a message was not stored, from inside the commit.
enum Refusal {
    Read(ReadError),
    /// The caller is at a queue.uid_max_* limit.
    OverLimit(String),
}

impl From<ReadError> for Refusal {
    fn from(e: ReadError) -> Refusal {
        Refusal::Read(e)
    }
}

/// Limits - queue.uid_max_messages and queue.uid_max_bytes (0: none), as
/// they apply to one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    messages: u64,
    bytes: u64,
}

impl Limits {
    /// for_caller - the limits for `uid`, or None: when none is set, and
    /// for root and smtpd's account (`user`), whose mail is everyone's.
    fn for_caller(
        cfg: &Config,
        uid: u32,
        mail_uid: impl FnOnce() -> Option<u32>,
    ) -> Option<Limits> {
        let l = Limits {
            messages: cfg.queue.uid_max_messages,
            bytes: cfg.queue.uid_max_bytes,
        };
        if (l.messages == 0 && l.bytes == 0) || uid == 0 || mail_uid() == Some(uid) {
            return None;
        }
        Some(l)
    }

    /// reached - counting further cannot change the answer.
    fn reached(&self, u: &Usage) -> bool {
        (self.messages > 0 && u.messages >= self.messages)
            || (self.bytes > 0 && u.bytes >= self.bytes)
    }

    /// refuse - why one more message of `adding` bytes is too much, if it is.
    fn refuse(&self, uid: u32, u: &Usage, adding: u64) -> Option<String> {
        if self.messages > 0 && u.messages >= self.messages {
            return Some(format!(
                "uid {uid} has {} messages queued, the most allowed (queue.uid_max_messages = {}): try again later",
                u.messages, self.messages
            ));
        }
        let total = u.bytes.saturating_add(adding);
        if self.bytes > 0 && adding == 0 && total >= self.bytes {
            return Some(format!(
                "uid {uid} has {total} bytes queued, the most allowed (queue.uid_max_bytes = {}): try again later",
                self.bytes
            ));
        }
        if self.bytes > 0 && total > self.bytes {
            return Some(format!(
                "uid {uid} has {} bytes queued and this message would add {adding}, over queue.uid_max_bytes = {}: try again later",
                u.bytes, self.bytes
            ));
        }
        None
    }
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
    fn uid_limits() {
        let mut cfg = Config::default();
        assert_eq!(
            Limits::for_caller(&cfg, 1000, || None),
            None,
            "off by default"
        );
        cfg.queue.uid_max_messages = 2;
        cfg.queue.uid_max_bytes = 100;
        let l = Limits::for_caller(&cfg, 1000, || Some(110)).unwrap();
        assert_eq!(Limits::for_caller(&cfg, 0, || Some(110)), None, "root");
        assert_eq!(
            Limits::for_caller(&cfg, 110, || Some(110)),
            None,
            "smtpd's account"
        );
        let u = |messages, bytes| Usage { messages, bytes };
        assert!(l.refuse(1000, &u(1, 50), 0).is_none());
        assert!(
            l.refuse(1000, &u(1, 50), 50).is_none(),
            "exactly at the byte cap"
        );
        assert!(
            l.refuse(1000, &u(1, 50), 51)
                .unwrap()
                .contains("would add 51")
        );
        assert!(
            l.refuse(1000, &u(2, 50), 0)
                .unwrap()
                .contains("2 messages queued")
        );
        assert!(
            l.refuse(1000, &u(1, 100), 0)
                .unwrap()
                .contains("100 bytes queued")
        );
        assert!(l.reached(&u(2, 0)) && l.reached(&u(0, 100)) && !l.reached(&u(1, 99)));
    }

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
