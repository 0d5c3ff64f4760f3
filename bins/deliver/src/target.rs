//! target - one recipient: find the mailbox, become its owner, check for a
//! loop, write, and log the outcome in Postfix's shape.

use crate::Args;
use crate::input::Message;
use posthorn_mail::address;
use posthorn_mail::config::Config;
use posthorn_store::{maildir, mbox};
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::{child, info, privs};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long an mbox lock may be waited for before the delivery is deferred.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Where the message goes for one USER argument.
enum Dest {
    Maildir(PathBuf),
    Mbox(PathBuf),
    Pipe(String),
    File(PathBuf),
}

impl Dest {
    fn what(&self) -> String {
        match self {
            Dest::Maildir(p) => format!("delivered to maildir {}", p.display()),
            Dest::Mbox(p) => format!("delivered to mailbox {}", p.display()),
            Dest::Pipe(c) => format!("delivered to command: {c}"),
            Dest::File(p) => format!("delivered to file: {}", p.display()),
        }
    }
}

/// deliver_one - deliver `msg` for `user`, log the outcome, and return it.
pub fn deliver_one(cfg: &Config, args: &Args, user: &str, msg: &Message) -> Result<(), Exit> {
    let start = Instant::now();
    let rcpt = match address::split(user).1 {
        Some(_) => user.to_string(),
        None => format!("{user}@{}", cfg.hostname),
    };
    let result = attempt(cfg, args, user, &rcpt, msg);
    let qid = args.queue_id.as_deref().unwrap_or("NOQUEUE");
    let delay = match args.arrival {
        Some(a) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            (now - a).max(0.0)
        }
        None => start.elapsed().as_secs_f64(),
    };
    let orig = match &args.original {
        Some(o) if !o.eq_ignore_ascii_case(&rcpt) => format!(", orig_to=<{o}>"),
        _ => String::new(),
    };
    let (dsn, status, text) = match &result {
        Ok(what) => ("2.0.0".to_string(), "sent", what.clone()),
        Err(e) => {
            let (d, temp) = exit::dsn_for(i32::from(e.code));
            let d = exit::dsn_from_text(&e.message, temp).unwrap_or(d);
            (
                d.to_string(),
                if temp { "deferred" } else { "bounced" },
                e.message.clone(),
            )
        }
    };
    info!(
        "{qid}: to=<{rcpt}>{orig}, relay=local, delay={delay:.2}, dsn={dsn}, status={status} ({text})"
    );
    result.map(|_| ())
}

/// attempt - the delivery itself; Ok carries the log text.
fn attempt(
    cfg: &Config,
    args: &Args,
    user: &str,
    rcpt: &str,
    msg: &Message,
) -> Result<String, Exit> {
    let (local, domain) = address::split(user);
    let (base, detail) = address::split_detail(local);
    let base = base.trim_start_matches('\\');

    // Where the mail goes, and whose rights we need to put it there.
    // The quota covers the whole mailbox: its root, not the +detail folder.
    let mut quota: Option<(PathBuf, posthorn_mail::users::Quota)> = None;
    let mut root: Option<PathBuf> = None;
    let (dest, home, owner) = if let Some(cmd) = &args.pipe {
        (Dest::Pipe(cmd.clone()), args.home.clone(), None)
    } else if let Some(f) = &args.file {
        (Dest::File(f.clone()), args.home.clone(), None)
    } else if let Some(mb) = &args.mailbox {
        if let Some(q) = args.quota {
            quota = Some((PathBuf::from(mb), q));
        }
        root = Some(PathBuf::from(mb));
        (mailbox_dest(mb, detail), args.home.clone(), None)
    } else {
        let u = posthorn_mail::users::lookup(cfg, base, domain)
            .map_err(|e| Exit::from_io("looking up the user", &e))?
            .ok_or_else(|| Exit::new(exit::NOUSER, format!("unknown user: \"{base}\"")))?;
        let owner = Some((u.name.clone(), u.uid, u.gid));
        if let Some(q) = args.quota.or(u.quota) {
            quota = Some((PathBuf::from(&u.mailbox), q));
        }
        root = Some(PathBuf::from(&u.mailbox));
        (
            mailbox_dest(&u.mailbox, detail),
            Some(u.home.clone()),
            owner,
        )
    };

    // Never write as root: become the owner first.
    if privs::euid() == 0 {
        let (name, uid, gid) = match owner {
            Some((name, Some(uid), Some(gid))) => (name, uid, gid),
            Some((_, _, _)) | None => {
                // A virtual user without a uid, or a target named by qrun: the configured mail user.
                let a = cfg.mail_account()?;
                (a.name, a.uid, a.gid)
            }
        };
        if uid == 0 {
            return Err(Exit::new(
                exit::TEMPFAIL,
                format!("will not deliver as root for {rcpt}: alias it to a user in aliases(5)"),
            ));
        }
        privs::become_user(&name, uid, gid)
            .map_err(|e| Exit::new(exit::TEMPFAIL, format!("cannot become {name}: {e}")))?;
    }

    // A message that already passed through this recipient is a loop.
    let rl = rcpt.to_ascii_lowercase();
    if msg.delivered_to().contains(&rl) {
        return Err(Exit::new(
            exit::DATAERR,
            format!("mail forwarding loop for {rcpt}"),
        ));
    }

    let sender = args
        .sender
        .as_deref()
        .map(address::strip_brackets)
        .unwrap_or("");
    let prefix = format!("Return-Path: <{sender}>\nDelivered-To: {rcpt}\n");
    if let (Dest::Maildir(_), Some((root, q))) = (&dest, &quota) {
        check_quota(cfg, root, q, msg.len())?;
    }
    let mut body = msg
        .reader()
        .map_err(|e| Exit::from_io("reading the message", &e))?;
    let store = |e: posthorn_store::StoreError| Exit::new(exit::TEMPFAIL, e.to_string());
    match &dest {
        Dest::Maildir(p) => {
            let t = crate::sieve::Target {
                user: base,
                rcpt,
                sender,
                home: home.as_deref(),
                root: root.as_deref().unwrap_or(p),
                default_mailbox: p,
            };
            if let Some(r) = crate::sieve::filter(cfg, args, &t, prefix.as_bytes(), msg) {
                return r;
            }
            maildir::deliver(p, prefix.as_bytes(), &mut body).map_err(store)?;
        }
        Dest::Mbox(p) => {
            // A user's mailbox must be the user's own (we run as the user).
            let me = Some(privs::euid());
            mbox::deliver(p, me, sender, prefix.as_bytes(), &mut body, LOCK_WAIT).map_err(store)?;
        }
        Dest::File(p) => {
            // A file named in aliases or .forward may belong to anyone
            // who lets us write it, as in Postfix; links and devices still
            // are refused.
            mbox::deliver(p, None, sender, prefix.as_bytes(), &mut body, LOCK_WAIT)
                .map_err(store)?;
        }
        Dest::Pipe(cmd) => {
            let env = PipeEnv {
                sender,
                rcpt,
                original: args.original.as_deref().unwrap_or(rcpt),
                user: base,
                detail,
                home: home.as_deref(),
            };
            run_command(cfg, cmd, &env, prefix.as_bytes(), &mut body)?;
        }
    }
    Ok(dest.what())
}

/// check_quota - refuse a message that would take the mailbox past its
/// quota: 5.2.2 (bounced), or 4.2.2 (deferred) with `quota_full_tempfail`,
/// as Dovecot's option of that name. The reason starts with the enhanced
/// code, which qrun passes on into the DSN.
fn check_quota(
    cfg: &Config,
    root: &std::path::Path,
    q: &posthorn_mail::users::Quota,
    size: u64,
) -> Result<(), Exit> {
    let (bytes, count) = maildir::usage(root)
        .map_err(|e| Exit::from_io(format!("measuring {}", root.display()), &e))?;
    let over_bytes = q.storage.is_some_and(|l| bytes + size > l);
    let over_count = q.messages.is_some_and(|l| count + 1 > l);
    if !over_bytes && !over_count {
        return Ok(());
    }
    let (code, dsn) = if cfg.quota_full_tempfail {
        (exit::TEMPFAIL, "4.2.2")
    } else {
        (exit::CANTCREAT, "5.2.2")
    };
    Err(Exit::new(
        code,
        format!(
            "{dsn} mailbox full: quota exceeded ({bytes} octets in {count} messages, limit {} octets, {} messages)",
            q.storage.map_or("no".to_string(), |l| l.to_string()),
            q.messages.map_or("no".to_string(), |l| l.to_string())
        ),
    ))
}

/// mailbox_dest - a trailing `/` is a Maildir, else an mbox; `+detail`
/// goes to the folder `.detail` when it exists. (Spam goes to Junk
/// through Sieve: sieve.rs.)
fn mailbox_dest(mailbox: &str, detail: Option<&str>) -> Dest {
    if mailbox.ends_with('/') {
        let root = PathBuf::from(mailbox);
        if let Some(d) = detail {
            let safe = !d.is_empty() && !d.contains(['/', '\0']) && !d.starts_with('.');
            let folder = root.join(format!(".{d}"));
            if safe && folder.join("cur").is_dir() {
                return Dest::Maildir(folder);
            }
        }
        Dest::Maildir(root)
    } else {
        Dest::Mbox(PathBuf::from(mailbox))
    }
}

/// What a command learns about the delivery: through the environment only,
/// never spliced into the command line (OpenSMTPD CVE-2020-7247).
struct PipeEnv<'a> {
    sender: &'a str,
    rcpt: &'a str,
    original: &'a str,
    user: &'a str,
    detail: Option<&'a str>,
    home: Option<&'a Path>,
}

/// run_command - `/bin/sh -c COMMAND` with the message on stdin, as the
/// current (already unprivileged) user, with a clean environment, in a
/// process group of its own, and with `local.command_time_limit` on the
/// whole run: the message is written and the output read as they flow,
/// so a command that reads nothing or keeps stderr open cannot stop the
/// clock, and at the limit the whole group is killed (Postfix's pipe and
/// local do the same). Exit 0 is delivered, 75 and signals are temporary,
/// other sysexits codes keep their meaning, anything else is a permanent
/// failure.
fn run_command(
    cfg: &Config,
    cmd: &str,
    env: &PipeEnv<'_>,
    prefix: &[u8],
    body: &mut dyn Read,
) -> Result<(), Exit> {
    let home = env
        .home
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let (_, domain) = address::split(env.rcpt);
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(cmd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("SHELL", "/bin/sh")
        .env("HOME", &home)
        .env("USER", env.user)
        .env("LOGNAME", env.user)
        .env("SENDER", env.sender)
        .env("RECIPIENT", env.rcpt)
        .env("ORIGINAL_RECIPIENT", env.original)
        .env("LOCAL", env.user)
        .env("DOMAIN", domain.unwrap_or(""))
        .env("EXTENSION", env.detail.unwrap_or(""))
        .current_dir(if home.is_dir() {
            home.as_path()
        } else {
            Path::new("/")
        });
    let limits = child::Limits {
        deadline: Instant::now() + cfg.local.command_time_limit,
        stdout_cap: 0,
        // The first few hundred bytes are the reason; the rest is drained.
        stderr_cap: 512,
        kill_as: None,
    };
    let mut input = prefix.chain(body);
    let done = child::run(&mut command, &mut input, &limits)
        .map_err(|e| Exit::new(exit::TEMPFAIL, format!("cannot run /bin/sh: {e}")))?;
    let Some(status) = done.status else {
        return Err(Exit::new(
            exit::TEMPFAIL,
            format!(
                "command time limit exceeded ({} s): {cmd}",
                cfg.local.command_time_limit.as_secs()
            ),
        ));
    };
    let first_line = String::from_utf8_lossy(&done.stderr)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let why = |s: String| {
        if first_line.is_empty() {
            s
        } else {
            format!("{s}: {first_line}")
        }
    };
    // A command that stopped reading early but exited 0 accepted the
    // message (done.input_error): its status decides, as in Postfix.
    match status.code() {
        Some(0) => Ok(()),
        Some(c) if (64..=78).contains(&c) => Err(Exit::new(
            c as u8,
            why(format!("command exited with status {c}")),
        )),
        Some(c) => Err(Exit::new(
            exit::UNAVAILABLE,
            why(format!("command exited with status {c}")),
        )),
        None => Err(Exit::new(
            exit::TEMPFAIL,
            why("command was killed by a signal".to_string()),
        )),
    }
}
