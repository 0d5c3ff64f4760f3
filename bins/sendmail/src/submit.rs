//! submit - build the envelope and pipe everything to `enqueue`.

use crate::args::Args;
use crate::message::{self, LineReader};
use posthorn_mail::config::Config;
use posthorn_spool::envelope::{ChunkWriter, Envelope, Recipient};
use posthorn_sys::exit::{self, Exit};
use std::io::{BufWriter, Write};
use std::process::{Command, Stdio};

/// qualify - an address without a domain gets `@hostname`.
fn qualify(addr: &str, cfg: &Config) -> String {
    match posthorn_mail::address::split(addr).1 {
        Some(_) => addr.to_string(),
        None => format!("{addr}@{}", cfg.hostname),
    }
}

/// split_list - one argument may hold several addresses: "a@x, b@y".
fn split_list(arg: &str) -> Result<Vec<String>, Exit> {
    let field = message::Field {
        raw: format!("To: {arg}\n").into_bytes(),
    };
    let v = message::addresses(&field);
    if v.is_empty() || v.iter().any(|a| !posthorn_mail::address::is_plausible(a)) {
        return Err(Exit::new(
            exit::USAGE,
            format!("bad recipient address: {arg}"),
        ));
    }
    Ok(v)
}

/// display_name - a From: display name, quoted when it needs to be.
fn display_name(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c));
    if plain && !name.trim().is_empty() {
        name.trim().to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// deliver - the default mode: read the message, queue it.
pub fn deliver(cfg: &Config, a: &Args) -> Result<(), Exit> {
    let uid = posthorn_sys::privs::uid();
    let me = posthorn_sys::privs::lookup_uid(uid).ok().flatten();
    let login = me
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_else(|| format!("uid{uid}"));
    let sender = match a
        .sender
        .as_deref()
        .map(posthorn_mail::address::strip_brackets)
    {
        Some("") => String::new(),
        Some(s) => {
            if !posthorn_mail::address::is_plausible(s) {
                return Err(Exit::new(exit::USAGE, format!("bad sender address: {s}")));
            }
            qualify(s, cfg)
        }
        None => format!("{login}@{}", cfg.hostname),
    };

    let stdin = std::io::stdin().lock();
    let mut reader = LineReader::new(
        std::io::BufReader::with_capacity(64 * 1024, stdin),
        a.ignore_dots,
    );
    let header =
        message::read_header(&mut reader).map_err(|e| Exit::from_io("reading the message", &e))?;

    // Recipients: the arguments, plus To/Cc/Bcc (or their Resent- forms) with -t.
    let mut rcpts: Vec<String> = Vec::new();
    for arg in &a.recipients {
        for r in split_list(arg)? {
            // `\user` (past aliases and .forward) is for aliases(5) and
            // .forward values, never an envelope recipient.
            let (local, domain) = posthorn_mail::address::split(&r);
            if local.starts_with('\\') && domain.is_none_or(|d| cfg.is_local_domain(d)) {
                return Err(Exit::new(
                    exit::USAGE,
                    format!(
                        "bad recipient address: {r}: a leading backslash belongs in aliases(5) and .forward only"
                    ),
                ));
            }
            rcpts.push(r);
        }
    }
    let resent = header
        .fields
        .iter()
        .any(|f| f.name().starts_with("resent-"));
    if a.from_headers {
        let wanted: &[&str] = if resent {
            &["resent-to", "resent-cc", "resent-bcc"]
        } else {
            &["to", "cc", "bcc"]
        };
        for f in &header.fields {
            if wanted.contains(&f.name().as_str()) {
                rcpts.extend(
                    message::addresses(f)
                        .into_iter()
                        .filter(|x| posthorn_mail::address::is_plausible(x)),
                );
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let rcpts: Vec<String> = rcpts
        .into_iter()
        .map(|r| qualify(&r, cfg))
        .filter(|r| seen.insert(r.to_ascii_lowercase()))
        .collect();
    if rcpts.is_empty() {
        return Err(Exit::new(
            exit::USAGE,
            if a.from_headers {
                "no recipient addresses found in message header"
            } else {
                "no recipients given"
            },
        ));
    }

    let env = Envelope {
        sender: sender.clone(),
        recipients: rcpts
            .iter()
            .map(|r| Recipient {
                address: r.clone(),
                notify: a.notify.clone(),
                orcpt: None,
            })
            .collect(),
        ret: a.ret.clone(),
        envid: a.envid.clone(),
        body: a.body.clone(),
        smtputf8: false,
        external: false,
    };
    env.check().map_err(|m| Exit::new(exit::USAGE, m))?;

    // The header as it will be queued: Bcc gone, missing fields added.
    // The trace field on top is enqueue's: it is the one a user who pipes
    // records into enqueue directly cannot leave out or forge.
    let now = posthorn_mail::date::now_rfc5322();
    let mut head: Vec<u8> = Vec::with_capacity(4096);
    let has = |n: &str| header.fields.iter().any(|f| f.name() == n);
    let (has_from, has_date, has_mid) = (has("from"), has("date"), has("message-id"));
    for f in &header.fields {
        let n = f.name();
        if n == "bcc" || n == "resent-bcc" {
            continue;
        }
        head.extend_from_slice(&f.raw);
    }
    if !has_from {
        let full = a.full_name.clone().or_else(|| {
            me.as_ref()
                .map(|m| m.full_name.clone())
                .filter(|g| !g.is_empty())
        });
        let addr = if sender.is_empty() {
            format!("{login}@{}", cfg.hostname)
        } else {
            sender.clone()
        };
        match full {
            Some(n) => {
                head.extend_from_slice(format!("From: {} <{addr}>\n", display_name(&n)).as_bytes())
            }
            None => head.extend_from_slice(format!("From: {addr}\n").as_bytes()),
        }
    }
    if !has_date {
        head.extend_from_slice(format!("Date: {now}\n").as_bytes());
    }
    if !has_mid {
        let t = posthorn_mail::date::unix_now();
        let r = posthorn_sys::fsio::random_u64();
        head.extend_from_slice(format!("Message-ID: <{t}.{r:016x}@{}>\n", cfg.hostname).as_bytes());
    }
    head.push(b'\n');

    // Pipe it all to enqueue.
    let helper = cfg.helper("enqueue");
    let mut child = Command::new(&helper)
        .args(cfg.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Exit::new(
                exit::TEMPFAIL,
                format!("cannot run {}: {e}", helper.display()),
            )
        })?;
    let written = (|| -> std::io::Result<()> {
        let Some(stdin) = child.stdin.take() else {
            return Err(std::io::Error::other("no pipe"));
        };
        let mut w = BufWriter::with_capacity(64 * 1024, stdin);
        env.write_records(&mut w)?;
        let mut cw = BufWriter::with_capacity(64 * 1024, ChunkWriter::new(w));
        cw.write_all(&head)?;
        if let Some(first) = &header.first_body {
            cw.write_all(first)?;
        }
        message::copy_body(&mut reader, &mut cw)?;
        let cw = cw.into_inner().map_err(|e| e.into_error())?;
        cw.finish()?;
        Ok(())
    })();
    let out = child
        .wait_with_output()
        .map_err(|e| Exit::new(exit::TEMPFAIL, format!("waiting for enqueue: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let msg = stderr.trim().trim_start_matches("enqueue: ").to_string();
    match out.status.code() {
        Some(0) => {
            // Stored: from here on, success whatever else happens.
            if let Err(e) = written {
                // enqueue saw a complete stream yet our write failed afterwards: impossible, but say so.
                posthorn_sys::warning!("write error after enqueue succeeded: {e}");
            }
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if a.verbose {
                eprintln!("sendmail: queued as {id}");
            }
            Ok(())
        }
        Some(code) => Err(Exit::new(
            code.clamp(1, 255) as u8,
            if msg.is_empty() {
                format!("enqueue failed with status {code}")
            } else {
                msg
            },
        )),
        None => {
            let why = match written {
                Err(e) => format!("reading the message: {e}"),
                Ok(()) => "enqueue was killed".into(),
            };
            Err(Exit::new(exit::TEMPFAIL, why))
        }
    }
}

/// exec_helper - run a helper with this configuration and pass on its status.
pub fn exec_helper(cfg: &Config, name: &str, extra: &[&str]) -> Result<(), Exit> {
    let helper = cfg.helper(name);
    let status = Command::new(&helper)
        .args(cfg.args())
        .args(extra)
        .status()
        .map_err(|e| {
            Exit::new(
                exit::UNAVAILABLE,
                format!("cannot run {}: {e}", helper.display()),
            )
        })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(c) => Err(Exit::new(c.clamp(1, 255) as u8, String::new())),
        None => Err(Exit::new(exit::SOFTWARE, format!("{name} was killed"))),
    }
}
