//! remote - send one queued message to the recipients at one domain by
//! SMTP, and say what became of each (qmail-remote's job, for qrun).
//!
//! Interface (remote(8)): `remote [-C file] QUEUEID DOMAIN`; fd 0 carries
//! the envelope and the message in enqueue(8)'s record format; fd 1 gets
//! one line per recipient as soon as its fate is known:
//!
//! ```text
//! <index> TAB <S|W|X> TAB <dsn> TAB <relay> TAB <setup secs> TAB <send secs> TAB <mta> TAB <diagnostic> TAB <text>
//! ```
//!
//! S sent, W deferred, X bounced; `<index>` counts the T records from 0.
//! A recipient without a line (a crash, a kill) is deferred by qrun.
//!
//! Runs unprivileged and refuses root: it talks to the network and parses
//! what strangers send. It trusts its input only as far as enqueue(8)
//! checks it again here.

#![forbid(unsafe_code)]
// An Outcome is made once per failed step, never in a loop: boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod conn;
mod data;
mod dns;
mod route;
mod smtp;
mod tls;

use posthorn_mail::config::{Config, Source};
use posthorn_spool::envelope::{self, Envelope};
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::{info, warning};
use smtp::{Outcome, Policy, Rcpt, Status};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: remote [-C file] QUEUEID DOMAIN";

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

/// args - `-C file`, then the queue ID and the domain.
fn args() -> Result<(Option<PathBuf>, String, String), Exit> {
    let mut a: Vec<String> = std::env::args().skip(1).collect();
    let mut config = None;
    if a.first().map(String::as_str) == Some("-C") {
        if a.len() < 2 {
            return Err(Exit::new(exit::USAGE, USAGE));
        }
        config = Some(PathBuf::from(a.remove(1)));
        a.remove(0);
    }
    match <[String; 2]>::try_from(a) {
        Ok([qid, domain]) if !qid.is_empty() && !domain.is_empty() && !domain.starts_with('-') => {
            Ok((config, qid, domain))
        }
        _ => Err(Exit::new(exit::USAGE, USAGE)),
    }
}

/// run - read the message, find the hosts, try them until every recipient is settled.
fn run() -> Result<(), Exit> {
    let (config, qid, domain) = args()?;
    let cfg = Config::load(&Source::choose(config.as_deref(), true))?;
    posthorn_sys::log::init("remote", cfg.log == posthorn_mail::config::LogSink::Stderr);
    if posthorn_sys::privs::euid() == 0 {
        return Err(Exit::new(
            exit::NOPERM,
            "will not talk to the network as root",
        ));
    }
    let mut input = BufReader::new(std::io::stdin().lock());
    let login = read_login(&mut input)?;
    let env =
        Envelope::read_records(&mut input).map_err(|e| Exit::new(exit::DATAERR, e.to_string()))?;
    env.check().map_err(|e| Exit::new(exit::DATAERR, e))?;
    let mut msg = Vec::new();
    envelope::copy_chunks(&mut input, &mut msg, MAX_MESSAGE).map_err(|e| match e {
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
    let job = smtp::Job {
        smtputf8: env.smtputf8
            || !env.sender.is_ascii()
            || env.recipients.iter().any(|r| !r.address.is_ascii()),
        eight_bit: env.body.as_deref().is_some_and(|b| b != "7BIT") || data::is_8bit(&msg),
        wire: data::encode(&msg),
        sender: env.sender.clone(),
        envid: env.envid.clone(),
        ret: env.ret.clone(),
    };
    drop(msg);
    // The whole attempt has a deadline too (smtp.message_timeout): a server
    // that answers each command just in time must not hold a worker for
    // days. Recipients not reported by then are deferred by qrun.
    let limit = cfg.remote.message_timeout;
    let who = qid.clone();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!(
            "remote: {who}: gave up after {} seconds (smtp.message_timeout)",
            limit.as_secs()
        );
        std::process::exit(i32::from(exit::TEMPFAIL));
    });
    let mut out = Reporter {
        stdout: std::io::stdout(),
    };
    let dns = dns::Resolver::new(cfg.remote.resolver);
    let plan = match route::plan(&cfg, &dns, &domain) {
        Ok(p) => p,
        Err(u) => {
            let o = unrouted(&u);
            for r in &rcpts {
                out.report(r.index, &o);
            }
            return Ok(());
        }
    };
    let mut pol = match policy(&cfg, &plan, login) {
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
        let addrs = match route::addresses(&dns, host, plan.port) {
            Ok(a) => a,
            Err(u) => {
                any_temp |= u.temporary;
                last = Some(unrouted(&u));
                continue;
            }
        };
        for addr in addrs {
            let mut a = smtp::attempt(host, addr, &job, &pol, &pending);
            if a.tls_failed && plan.port == 25 && !pol.tls_required {
                if let Some(f) = &a.host_fail {
                    warning!("{qid}: {}; trying again without TLS", f.text);
                }
                let plain = Policy {
                    no_tls: true,
                    ..pol.clone()
                };
                a = smtp::attempt(host, addr, &job, &plain, &pending);
            }
            for (idx, o) in &a.done {
                out.report(*idx, o);
            }
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
            Status::Deferred => 'W',
            Status::Bounced => 'X',
        };
        let line = format!(
            "{index}\t{st}\t{}\t{}\t{:.2}\t{:.2}\t{}\t{}\t{}\n",
            f(&o.dsn),
            f(&o.relay),
            o.conn_secs,
            o.xfer_secs,
            f(&o.mta),
            f(&o.diag),
            f(&o.text)
        );
        let mut l = self.stdout.lock();
        let _ = l.write_all(line.as_bytes());
        let _ = l.flush();
    }
}
