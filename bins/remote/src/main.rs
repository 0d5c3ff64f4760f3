//! remote - send one queued message to the recipients at one domain by
//! SMTP, and say what became of each (qmail-remote's job, for qrun).
//!
//! Interface (remote(8)): `remote [-C file] QUEUEID DOMAIN`, or
//! `--session` for jobs one after another, each led by `J<qid> TAB <domain>`
//! and its reports ended by a "." line, the connection kept open between
//! jobs. fd 0 carries the envelope and the message in enqueue(8)'s record
//! format; fd 1 gets one line per recipient as soon as its fate is known:
//!
//! ```text
//! <index> TAB <S|W|X> TAB <dsn> TAB <relay> TAB <setup secs> TAB <send secs> TAB <conn use> TAB <mta> TAB <diagnostic> TAB <text>
//! ```
//!
//! S sent, R sent to a server without DSN (so a NOTIFY=SUCCESS report is
//! still owed), W deferred, X bounced; `<index>` counts the T records from 0.
//! A recipient without a line (a crash, a kill) is deferred by qrun.
//!
//! Runs unprivileged and refuses root: it talks to the network and parses
//! what strangers send. It trusts its input only as far as enqueue(8)
//! checks it again here.

#![forbid(unsafe_code)]
// An Outcome is made once per failed step, never in a loop: boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod conn;
mod idn;
mod route;
mod smtp;
mod tls;

use posthorn_dns as dns;
use posthorn_mail::config::{Config, Source};
use posthorn_remote::data;
use posthorn_spool::envelope::{self, Envelope};
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::{info, warning};
use smtp::{Outcome, Policy, Rcpt, Status};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: remote [-C file] QUEUEID DOMAIN | --session";

/// Largest message read from qrun (the spool's own files are trusted to be sane).
const MAX_MESSAGE: u64 = 1 << 30;

fn main() -> ExitCode {
    posthorn_sys::fsio::harden(0o077);
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remote: {e}");
            ExitCode::from(e.code)
        }
    }
}

/// How remote was asked to work.
enum Mode {
    /// One job: `QUEUEID DOMAIN` on the command line.
    One(String, String),
    /// `--session`: jobs one after another on the input, each with a `J` line.
    Session,
}

/// args - `-C file`, then `--session` or the queue ID and the domain.
fn args() -> Result<(Option<PathBuf>, Mode), Exit> {
    let mut a: Vec<String> = std::env::args().skip(1).collect();
    let mut config = None;
    if a.first().map(String::as_str) == Some("-C") {
        if a.len() < 2 {
            return Err(Exit::new(exit::USAGE, USAGE));
        }
        config = Some(PathBuf::from(a.remove(1)));
        a.remove(0);
    }
    if a.len() == 1 && a[0] == "--session" {
        return Ok((config, Mode::Session));
    }
    match <[String; 2]>::try_from(a) {
        Ok([qid, domain]) if !qid.is_empty() && !domain.is_empty() && !domain.starts_with('-') => {
            Ok((config, Mode::One(qid, domain)))
        }
        _ => Err(Exit::new(exit::USAGE, USAGE)),
    }
}

/// How long a session waits for the next job with a connection open
/// (Postfix's smtp_connection_cache_time_limit is 2 s; qrun gives up on an
/// idle helper after 2 s, so this is longer).
const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// run - set up, then do one job or a session of jobs.
fn run() -> Result<(), Exit> {
    let (config, mode) = args()?;
    let cfg = Config::load(&Source::choose(config.as_deref(), true))?;
    posthorn_sys::log::init("remote", cfg.log == posthorn_mail::config::LogSink::Stderr);
    if posthorn_sys::privs::euid() == 0 {
        return Err(Exit::new(
            exit::NOPERM,
            "will not talk to the network as root",
        ));
    }
    // Every attempt has a deadline too (smtp.message_timeout): a server
    // that answers each command just in time must not hold a worker for
    // days. Recipients not reported by then are deferred by qrun.
    let deadline = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d = deadline.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let t = d.load(std::sync::atomic::Ordering::Relaxed);
            if t != 0 && posthorn_mail::date::unix_now() > t {
                eprintln!("remote: gave up: the attempt took longer than smtp.message_timeout");
                std::process::exit(i32::from(exit::TEMPFAIL));
            }
        }
    });
    let arm = |on: bool| {
        let t = if on {
            posthorn_mail::date::unix_now() + cfg.remote.message_timeout.as_secs()
        } else {
            0
        };
        deadline.store(t, std::sync::atomic::Ordering::Relaxed);
    };
    let dns = dns::Resolver::new(cfg.remote.resolver);
    let mut out = Reporter {
        stdout: std::io::stdout(),
    };
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut cache: Option<smtp::Open> = None;
    match mode {
        Mode::One(qid, domain) => {
            arm(true);
            job(&cfg, &dns, &qid, &domain, &mut input, &mut out, &mut cache)?;
        }
        Mode::Session => loop {
            arm(false);
            // Wait for the next job; with a connection open, not for long.
            if input.buffer().is_empty() && cache.is_some() && !readable(SESSION_IDLE) {
                break;
            }
            let mut head = Vec::new();
            let n = (&mut input)
                .take(2048)
                .read_until(b'\n', &mut head)
                .map_err(|e| Exit::new(exit::TEMPFAIL, format!("reading the input: {e}")))?;
            if n == 0 {
                break;
            }
            let head = String::from_utf8(head).unwrap_or_default();
            let Some((qid, domain)) = head
                .strip_prefix('J')
                .and_then(|h| h.strip_suffix('\n'))
                .and_then(|h| h.split_once('\t'))
                .filter(|(q, d)| !q.is_empty() && !d.is_empty() && !d.contains(char::is_control))
            else {
                return Err(Exit::new(exit::DATAERR, "bad job line"));
            };
            arm(true);
            job(&cfg, &dns, qid, domain, &mut input, &mut out, &mut cache)?;
            out.end_of_job();
        },
    }
    if let Some(o) = cache.take() {
        o.close();
    }
    Ok(())
}

/// readable - whether fd 0 has input (or end of file) within `t`.
fn readable(t: std::time::Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::from(t.as_millis().min(60_000) as u16);
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}

/// job - read one job (login, envelope, message) and send it, reusing and
/// leaving behind an open connection in `cache`.
fn job(
    cfg: &Config,
    dns: &dns::Resolver,
    qid: &str,
    domain: &str,
    input: &mut impl BufRead,
    out: &mut Reporter,
    cache: &mut Option<smtp::Open>,
) -> Result<(), Exit> {
    let login = read_login(input)?;
    let env = Envelope::read_records(input).map_err(|e| Exit::new(exit::DATAERR, e.to_string()))?;
    env.check().map_err(|e| Exit::new(exit::DATAERR, e))?;
    let mut msg = Vec::new();
    envelope::copy_chunks(input, &mut msg, MAX_MESSAGE).map_err(|e| match e {
        envelope::ReadError::Io(e) => {
            Exit::new(exit::TEMPFAIL, format!("reading the message: {e}"))
        }
        e => Exit::new(exit::DATAERR, e.to_string()),
    })?;
    let rcpts: Vec<Rcpt> = env
        .recipients
        .iter()
        .enumerate()
        .map(|(index, r)| Rcpt {
            index,
            address: r.address.clone(),
            notify: r.notify.clone(),
            orcpt: r.orcpt.clone(),
        })
        .collect();
    let utf8_addresses =
        !env.sender.is_ascii() || env.recipients.iter().any(|r| !r.address.is_ascii());
    let job = smtp::Job {
        smtputf8: env.smtputf8,
        smtputf8_needed: utf8_addresses || env.smtputf8 && data::is_8bit(data::header(&msg)),
        eight_bit: env.body.as_deref().is_some_and(|b| b != "7BIT") || data::is_8bit(&msg),
        wire: data::encode(&msg),
        sender: env.sender.clone(),
        envid: env.envid.clone(),
        ret: env.ret.clone(),
    };
    drop(msg);
    let plan = match route::plan(cfg, dns, domain) {
        Ok(p) => p,
        Err(u) => {
            let o = unrouted(&u);
            for r in &rcpts {
                out.report(r.index, &o);
            }
            return Ok(());
        }
    };
    let mut pol = match policy(cfg, &plan, login) {
        Ok(p) => p,
        Err(o) => {
            for r in &rcpts {
                out.report(r.index, &o);
            }
            return Ok(());
        }
    };
    let mut pending = rcpts;
    let mut last: Option<Outcome> = None;
    let mut any_temp = false;
    'hosts: for host in &plan.hosts {
        let addrs = match route::addresses(dns, host, plan.port) {
            Ok(a) => a,
            Err(u) => {
                any_temp |= u.temporary;
                last = Some(unrouted(&u));
                continue;
            }
        };
        for addr in addrs {
            // The open connection serves this host only; any other is closed.
            let reuse = match cache.take() {
                Some(o) if o.is_for(host, addr) => Some(o),
                Some(o) => {
                    o.close();
                    None
                }
                None => None,
            };
            let mut a = smtp::attempt(host, addr, &job, &pol, &pending, reuse);
            if a.tls_failed && plan.port == 25 && !pol.tls_required {
                if let Some(f) = &a.host_fail {
                    warning!("{qid}: {}; trying again without TLS", f.text);
                }
                let plain = Policy {
                    no_tls: true,
                    ..pol.clone()
                };
                a = smtp::attempt(host, addr, &job, &plain, &pending, None);
            }
            for (idx, o) in &a.done {
                out.report(*idx, o);
            }
            *cache = a.open.take();
            pending.retain(|r| !a.done.iter().any(|(i, _)| *i == r.index));
            if pending.is_empty() {
                break 'hosts;
            }
            match a.host_fail {
                Some(f) => {
                    any_temp |= f.status == Status::Deferred;
                    info!("{qid}: {}", f.text);
                    last = Some(f);
                }
                None => break 'hosts,
            }
        }
    }
    // Whoever is left shares the last host's failure; a permanent one only
    // when no host failed for a passing reason.
    let mut f = last.unwrap_or_else(|| Outcome {
        status: Status::Deferred,
        dsn: "4.4.0".into(),
        text: format!("no host for {domain} could be reached"),
        mta: String::new(),
        diag: String::new(),
        relay: "none".into(),
        conn_secs: 0.0,
        xfer_secs: 0.0,
        conn_use: 0,
    });
    if any_temp && f.status == Status::Bounced {
        f.status = Status::Deferred;
        f.dsn = format!("4{}", &f.dsn[1..]);
    }
    for r in &pending {
        out.report(r.index, &f);
    }
    pol.auth = None;
    Ok(())
}

/// read_login - the optional `A<user> TAB <password>` line qrun sends
/// ahead of the envelope for the relayhost.
fn read_login(input: &mut impl BufRead) -> Result<Option<(String, String)>, Exit> {
    let peek = input
        .fill_buf()
        .map_err(|e| Exit::new(exit::TEMPFAIL, format!("reading the input: {e}")))?;
    if peek.first() != Some(&b'A') {
        return Ok(None);
    }
    let mut line = Vec::new();
    input
        .take(4096)
        .read_until(b'\n', &mut line)
        .map_err(|e| Exit::new(exit::TEMPFAIL, format!("reading the input: {e}")))?;
    let text = String::from_utf8(line).map_err(|_| Exit::new(exit::DATAERR, "bad login line"))?;
    let (user, pass) = text[1..]
        .strip_suffix('\n')
        .and_then(|t| t.split_once('\t'))
        .ok_or_else(|| Exit::new(exit::DATAERR, "bad login line"))?;
    Ok(Some((user.to_string(), pass.to_string())))
}

/// policy - TLS and AUTH for this plan: the login qrun gave, else the
/// password file (when run by hand); an unreadable file defers.
fn policy(
    cfg: &Config,
    plan: &route::Plan,
    login: Option<(String, String)>,
) -> Result<Policy, Outcome> {
    let r = &cfg.remote;
    let tls_required = if plan.relay {
        r.relay_tls_required
    } else {
        r.tls_required
    };
    let fail = |text: String| Outcome {
        status: Status::Deferred,
        dsn: "4.3.5".into(),
        text,
        mta: String::new(),
        diag: String::new(),
        relay: "none".into(),
        conn_secs: 0.0,
        xfer_secs: 0.0,
        conn_use: 0,
    };
    let verified = if tls_required {
        Some(tls::verified(r.ca_file.as_deref()).map_err(fail)?)
    } else {
        None
    };
    let opportunistic = tls::opportunistic().ok();
    let auth = match (&r.relay_user, &r.relay_password_file) {
        _ if !plan.relay => None,
        _ if login.is_some() => login,
        (Some(u), Some(f)) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| fail(format!("{}: cannot read: {e}", f.display())))?;
            let pass = text.lines().next().unwrap_or("").to_string();
            Some((u.clone(), pass))
        }
        _ => None,
    };
    Ok(Policy {
        helo: cfg.hostname.clone(),
        tls_required,
        implicit_tls: plan.port == 465,
        no_tls: false,
        auth,
        connect_timeout: r.connect_timeout,
        reply_timeout: r.reply_timeout,
        verified,
        opportunistic,
    })
}

/// unrouted - the outcome for a destination that DNS or the routes refused.
fn unrouted(u: &route::Unroutable) -> Outcome {
    Outcome {
        status: if u.temporary {
            Status::Deferred
        } else {
            Status::Bounced
        },
        dsn: u.dsn.to_string(),
        text: u.text.clone(),
        mta: String::new(),
        diag: String::new(),
        relay: "none".into(),
        conn_secs: 0.0,
        xfer_secs: 0.0,
        conn_use: 0,
    }
}

/// Writes the result lines for qrun.
struct Reporter {
    stdout: std::io::Stdout,
}

impl Reporter {
    /// report - one recipient's line, flushed at once: qrun records it
    /// durably before the next, so a crash resends only what is in flight.
    fn report(&mut self, index: usize, o: &Outcome) {
        let f = |s: &str| s.replace(['\t', '\r', '\n'], " ");
        let st = match o.status {
            Status::Sent => 'S',
            Status::Relayed => 'R',
            Status::Deferred => 'W',
            Status::Bounced => 'X',
        };
        let line = format!(
            "{index}\t{st}\t{}\t{}\t{:.2}\t{:.2}\t{}\t{}\t{}\t{}\n",
            f(&o.dsn),
            f(&o.relay),
            o.conn_secs,
            o.xfer_secs,
            o.conn_use,
            f(&o.mta),
            f(&o.diag),
            f(&o.text)
        );
        let mut l = self.stdout.lock();
        let _ = l.write_all(line.as_bytes());
        let _ = l.flush();
    }

    /// end_of_job - the "." line that ends a job's reports in a session.
    fn end_of_job(&mut self) {
        let mut l = self.stdout.lock();
        let _ = l.write_all(b".\n");
        let _ = l.flush();
    }
}
