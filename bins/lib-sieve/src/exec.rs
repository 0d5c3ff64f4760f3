//! exec - one Sieve delivery for one recipient: find the scripts
//! (sieve_before, the user's active script, sieve_after), run them, and
//! carry out the actions: store into Maildir++ folders with flags and
//! keywords, redirect, reject, vacation, notify. deliver calls `deliver`;
//! an LMTP server can call the same, and turn `Failure::Rejected` into a
//! 5xx for that recipient.
//!
//! Runs as the recipient (the caller has already become the user); every
//! file it writes is in the user's Maildir or home. Mail it sends goes
//! through `enqueue`, as argv and a pipe, never through a shell.
//!
//! A script that does not compile, or fails at run time, delivers the
//! message to the default mailbox (the implicit keep) and logs the error
//! with the script's file and line.

use crate::interp::{self, Action, Envelope, Outcome, Settings};
use crate::memory::Memory;
use crate::script::{Location, Script};
use posthorn_mail::config::Config;
use posthorn_mail::sieveconf::RedirectSender;
use posthorn_store::{folder, keywords::Keywords, maildir};
use posthorn_sys::{info, warning};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;

/// How much of a message the scripts see: the header (up to
/// message::MAX_HEADER) and this much of the body. A larger body is
/// stored whole; only tests on it see this first part.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// How long a redirect is remembered against sending the same message
/// twice (Pigeonhole's sieve_redirect_duplicate_period).
const REDIRECT_PERIOD: i64 = 12 * 3600;

/// The message being delivered.
pub trait Source {
    /// reader - the message from its first byte.
    fn reader(&self) -> io::Result<Box<dyn Read + '_>>;
    /// size - its size in octets.
    fn size(&self) -> u64;
}

/// Whom the message is for.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    /// The login name.
    pub user: &'a str,
    /// The final recipient's address.
    pub address: &'a str,
    /// The original recipient (before aliases).
    pub original: &'a str,
    /// The envelope sender, "" for <>.
    pub sender: &'a str,
    /// The home directory (scripts, memory), if the user has one.
    pub home: Option<&'a Path>,
    /// The Maildir: INBOX, and the root of the folders.
    pub root: &'a Path,
    /// Where keep stores (INBOX, or a +detail folder).
    pub default_mailbox: &'a Path,
    /// For log lines.
    pub queue_id: &'a str,
}

/// Why a delivery did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try again later (disk full, enqueue down): nothing was lost.
    Temporary(String),
    /// The script rejected the message (ereject): the sender is to be told
    /// by whoever delivered it to us (a DSN, or an LMTP 5xx).
    Rejected(String),
}

/// What a delivery did, for the log line.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub done: Vec<String>,
}

/// A script to run and where it came from.
#[derive(Debug, Clone)]
pub struct ScriptFile {
    pub path: PathBuf,
    /// The user's own (its cache is written; errors are the user's).
    pub personal: bool,
}

/// expand_home - `~` and `~/` at the start of a configured path.
fn expand_home(p: &str, home: Option<&Path>) -> Option<PathBuf> {
    match p.strip_prefix('~') {
        Some(rest) => Some(home?.join(rest.trim_start_matches('/'))),
        None => Some(PathBuf::from(p)),
    }
}

/// sieve_files - a configured file, or the `*.sieve` files of a
/// configured directory in name order.
fn sieve_files(p: &Path) -> Vec<PathBuf> {
    if p.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|f| f.extension().is_some_and(|x| x == "sieve") && f.is_file())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    } else {
        vec![p.to_path_buf()]
    }
}

/// scripts - the scripts that run for this user, in order; empty when
/// there are none (the caller then delivers as without Sieve).
pub fn scripts(cfg: &Config, home: Option<&Path>) -> Vec<ScriptFile> {
    let mut v = Vec::new();
    for p in &cfg.sieve.before {
        v.extend(sieve_files(p).into_iter().map(|path| ScriptFile {
            path,
            personal: false,
        }));
    }
    if !cfg.sieve.script.is_empty()
        && let Some(p) = expand_home(&cfg.sieve.script, home)
        && p.exists()
    {
        v.push(ScriptFile {
            path: p,
            personal: true,
        });
    }
    for p in &cfg.sieve.after {
        v.extend(sieve_files(p).into_iter().map(|path| ScriptFile {
            path,
            personal: false,
        }));
    }
    v
}

/// folder_dir - the directory of a Sieve mailbox name (UTF-8, levels
/// separated by the IMAP separator), checked so it stays in the Maildir.
pub fn folder_dir(root: &Path, name: &str, sep: char) -> Result<PathBuf, String> {
    if folder::is_inbox(name) {
        return Ok(root.to_path_buf());
    }
    let on_disk = if sep == '/' {
        if name.contains('.') {
            return Err(format!(
                "invalid mailbox name '{name}': '.' with the '/' separator"
            ));
        }
        name.replace('/', ".")
    } else {
        name.to_string()
    };
    let enc = posthorn_store::utf7::encode(&on_disk);
    folder::path(root, &enc).map_err(|e| format!("invalid mailbox name '{name}': {e}"))
}

/// The interpreter's view of the user's world.
struct World<'a> {
    cfg: &'a Config,
    rcpt: &'a Recipient<'a>,
    memory: Option<Memory>,
    now: i64,
}

impl interp::Host for World<'_> {
    fn include(&mut self, location: Location, name: &str) -> Result<Option<Rc<Script>>, String> {
        let dir = match location {
            Location::Personal => expand_home(&self.cfg.sieve.dir, self.rcpt.home),
            Location::Global => self.cfg.sieve.global.clone(),
        };
        let Some(dir) = dir else { return Ok(None) };
        let path = dir.join(format!("{name}.sieve"));
        match crate::cache::load(&path, true) {
            Ok(s) => Ok(Some(Rc::new(s))),
            Err(crate::cache::LoadError::Missing) => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn mailbox_exists(&self, name: &str) -> bool {
        folder_dir(self.rcpt.root, name, self.cfg.imap_separator)
            .is_ok_and(|d| d.join("cur").is_dir())
    }

    fn duplicate_seen(&mut self, key: &str) -> bool {
        self.memory.as_ref().is_some_and(|m| m.seen(key, self.now))
    }
}

/// settings - the run's settings from the configuration.
fn settings(cfg: &Config, now: i64) -> Settings {
    let s = &cfg.sieve;
    let domain = cfg
        .hostname
        .split_once('.')
        .map_or(cfg.hostname.as_str(), |(_, d)| d);
    Settings {
        spamtest: s.spamtest_header.as_ref().map(|h| interp::ScoreHeader {
            header: h.clone(),
            max: s.spamtest_max,
        }),
        virustest: s.virustest_header.as_ref().map(|h| interp::ScoreHeader {
            header: h.clone(),
            max: 5.0,
        }),
        environment: vec![
            ("domain".into(), domain.to_string()),
            ("host".into(), cfg.hostname.clone()),
            ("location".into(), "MDA".into()),
            ("name".into(), "Posthorn".into()),
            ("phase".into(), "during".into()),
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
            (
                "vnd.posthorn.spam-header-name".into(),
                cfg.spam_header.0.clone(),
            ),
            (
                "vnd.posthorn.spam-header-value".into(),
                cfg.spam_header.1.clone(),
            ),
        ],
        now,
        cpu_limit: s.max_cpu_time,
        vacation_default: s.vacation_default.as_secs(),
        vacation_min: s.vacation_min.as_secs(),
        vacation_max: s.vacation_max.as_secs(),
        ..Settings::default()
    }
}

/// The rule that files spam into Junk after every other script.
pub const SPAM_TO_JUNK: &str = include_str!("../../../scripts/sieve/spam-to-junk.sieve");

/// deliver - run the user's scripts on the message and carry out what
/// they ask. `prefix` (Return-Path, Delivered-To) goes before every copy
/// stored.
pub fn deliver(
    cfg: &Config,
    rcpt: &Recipient<'_>,
    files: &[ScriptFile],
    prefix: &[u8],
    msg: &dyn Source,
) -> Result<Report, Failure> {
    let qid = rcpt.queue_id;
    let now = posthorn_mail::date::unix_now() as i64;
    let mut report = Report::default();

    // Compile (or load from the cache) every script first: one that
    // does not compile means the implicit keep, and nothing else.
    let mut scripts = Vec::new();
    for f in files {
        match crate::cache::load(&f.path, f.personal) {
            Ok(s) => scripts.push(Rc::new(s)),
            Err(crate::cache::LoadError::Missing) => {}
            Err(e) => {
                let what = match e {
                    crate::cache::LoadError::Compile(_) => "compile error",
                    _ => "cannot read",
                };
                warning!(
                    "{qid}: sieve: {}: {what}: {e}: message kept in the default mailbox",
                    f.path.display()
                );
                return keep_only(cfg, rcpt, prefix, msg, &mut report);
            }
        }
    }
    // What the scripts may look at.
    let mut bytes = Vec::new();
    msg.reader()
        .and_then(|r| {
            r.take((crate::message::MAX_HEADER + BODY_LIMIT) as u64)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| Failure::Temporary(format!("reading the message: {e}")))?;
    let parsed = interp::Message::parse(&bytes, msg.size());

    // Last, for a message `spam_header` marks, the built-in spam-to-junk
    // rule (scripts/sieve/spam-to-junk.sieve, which administrators may
    // also run as a global script): it files the message into Junk unless
    // a script before it filed it elsewhere. Only for such messages, so
    // that it changes nothing for others (not even imap4flags' state at
    // the implicit keep).
    let (spam_name, _) = &cfg.spam_header;
    let spam = cfg.sieve.spam_to_junk
        && parsed.fields.iter().any(|f| {
            f.name.eq_ignore_ascii_case(spam_name) && cfg.is_spam_field(&f.name, &f.value())
        });
    if spam {
        match crate::compile(SPAM_TO_JUNK) {
            Ok(s) => scripts.push(Rc::new(s)),
            Err(e) => warning!("{qid}: sieve: the built-in spam-to-junk script: {e}"),
        }
    }
    if scripts.is_empty() {
        return keep_only(cfg, rcpt, prefix, msg, &mut report);
    }
    let body_offset = bytes.len() - parsed.body.len();
    let envelope = Envelope {
        from: rcpt.sender.to_string(),
        to: rcpt.address.to_string(),
        orig_to: rcpt.original.to_string(),
    };
    let memory_dir = rcpt.home.filter(|h| h.is_dir()).unwrap_or(rcpt.root);
    let mut world = World {
        cfg,
        rcpt,
        memory: Some(Memory::new(memory_dir)),
        now,
    };
    let set = settings(cfg, now);
    let outcome = match interp::run(&scripts, &parsed, &envelope, &set, &mut world) {
        Ok(o) => o,
        Err((i, e)) => {
            let file = files
                .get(i)
                .map_or(String::new(), |f| f.path.display().to_string());
            warning!(
                "{qid}: sieve: {file}: run-time error: {e}: message kept in the default mailbox"
            );
            return keep_only(cfg, rcpt, prefix, msg, &mut report);
        }
    };
    for w in &outcome.warnings {
        warning!("{qid}: sieve: {w}");
    }
    let mut x = Exec {
        cfg,
        rcpt,
        prefix,
        msg,
        parsed: &parsed,
        outcome: &outcome,
        body_offset,
        memory: world.memory.clone(),
        now,
        marks: Vec::new(),
        stored_default: false,
    };
    let result = x.run(&mut report);
    // Redirects and replies already sent are remembered even when a later
    // action failed, so the retry does not send them again; duplicate IDs
    // only once the message is safely handled.
    let mut marks = std::mem::take(&mut x.marks);
    if result.is_ok() {
        marks.extend(
            outcome
                .duplicates
                .iter()
                .map(|d| (d.key.clone(), d.expires, d.refresh)),
        );
    }
    if let Some(m) = &x.memory
        && let Err(e) = m.remember(&marks, now)
    {
        warning!("{qid}: sieve: cannot update {}: {e}", crate::memory::FILE);
    }
    result.map(|()| report)
}

/// keep_only - the implicit keep alone, into the default mailbox.
fn keep_only(
    _cfg: &Config,
    rcpt: &Recipient<'_>,
    prefix: &[u8],
    msg: &dyn Source,
    report: &mut Report,
) -> Result<Report, Failure> {
    let mut r = msg
        .reader()
        .map_err(|e| Failure::Temporary(format!("reading the message: {e}")))?;
    maildir::deliver(rcpt.default_mailbox, prefix, &mut r)
        .map_err(|e| Failure::Temporary(e.to_string()))?;
    report.done.push("delivered to maildir".into());
    Ok(std::mem::take(report))
}

struct Exec<'a> {
    cfg: &'a Config,
    rcpt: &'a Recipient<'a>,
    prefix: &'a [u8],
    msg: &'a dyn Source,
    parsed: &'a interp::Message,
    outcome: &'a Outcome,
    body_offset: usize,
    memory: Option<Memory>,
    now: i64,
    marks: Vec<(String, i64, bool)>,
    stored_default: bool,
}

impl Exec<'_> {
    fn qid(&self) -> &str {
        self.rcpt.queue_id
    }

    /// message - the message as stored or sent: the edited header when
    /// editheader changed it, then the body.
    fn message(&self, drop_return_path: bool) -> io::Result<(Vec<u8>, Box<dyn Read + '_>)> {
        let mut r = self.msg.reader()?;
        match &self.outcome.header {
            None if !drop_return_path => Ok((Vec::new(), r)),
            edited => {
                let fields = edited.as_ref().unwrap_or(&self.parsed.fields);
                let kept: Vec<crate::message::Field> = fields
                    .iter()
                    .filter(|f| !(drop_return_path && f.is("return-path")))
                    .cloned()
                    .collect();
                let mut head = crate::message::render_header(&kept);
                head.push(b'\n');
                io::copy(&mut (&mut r).take(self.body_offset as u64), &mut io::sink())?;
                Ok((head, r))
            }
        }
    }

    /// store - one copy into `dir` with these flags.
    fn store(&self, dir: &Path, flags: &[String]) -> Result<(), Failure> {
        let tmp = |e: &dyn std::fmt::Display| Failure::Temporary(format!("{}: {e}", dir.display()));
        maildir::ensure(dir).map_err(|e| tmp(&e))?;
        let mut system = String::new();
        let mut kws: Vec<String> = Vec::new();
        for f in flags {
            match f.to_ascii_lowercase().as_str() {
                "\\seen" => system.push('S'),
                "\\answered" => system.push('R'),
                "\\flagged" => system.push('F'),
                "\\deleted" => system.push('T'),
                "\\draft" => system.push('D'),
                x if x.starts_with('\\') => {}
                _ if posthorn_store::keywords::is_keyword(f) => kws.push(f.clone()),
                _ => {}
            }
        }
        let mut letters: Vec<u8> = system.into_bytes();
        if !kws.is_empty() {
            let mut k = Keywords::read(dir);
            let idx = k.ensure(dir, &kws).map_err(|e| tmp(&e))?;
            letters.extend(idx.into_iter().flatten().map(|i| b'a' + i as u8));
        }
        letters.sort_unstable();
        letters.dedup();
        let info = String::from_utf8_lossy(&letters).into_owned();
        let (head, mut body) = self.message(false).map_err(|e| tmp(&e))?;
        let mut pre = self.prefix.to_vec();
        pre.extend_from_slice(&head);
        maildir::deliver_flagged(dir, &pre, &mut body, &info).map_err(|e| tmp(&e))?;
        Ok(())
    }

    /// store_default - the fallback keep, once.
    fn store_default(&mut self, report: &mut Report, why: &str) -> Result<(), Failure> {
        if self.stored_default {
            return Ok(());
        }
        self.store(self.rcpt.default_mailbox, &[])?;
        self.stored_default = true;
        report.done.push(format!("kept in INBOX ({why})"));
        Ok(())
    }

    /// targets - the folder of every store, checked before anything is
    /// written: a folder that does not exist (without :create) or a name
    /// that cannot be a folder fails the whole result, which then falls
    /// back to the implicit keep alone, as Pigeonhole resolves a failed
    /// result ("failed; resolved with successful implicit keep").
    fn targets(&self) -> Result<Vec<(PathBuf, bool)>, String> {
        let sep = self.cfg.imap_separator;
        let mut v = Vec::new();
        for a in &self.outcome.actions {
            if let Action::Store {
                mailbox,
                create,
                keep,
                ..
            } = a
            {
                if *keep {
                    v.push((self.rcpt.default_mailbox.to_path_buf(), false));
                    continue;
                }
                let dir = folder_dir(self.rcpt.root, mailbox, sep)
                    .map_err(|e| format!("fileinto: {e}"))?;
                let exists = dir == self.rcpt.root || dir.join("cur").is_dir();
                if !exists && !create {
                    return Err(format!(
                        "fileinto: folder {mailbox} does not exist (use :create)"
                    ));
                }
                v.push((dir, !exists));
            }
        }
        Ok(v)
    }

    fn run(&mut self, report: &mut Report) -> Result<(), Failure> {
        let outcome = self.outcome;
        let targets = match self.targets() {
            Ok(t) => t,
            Err(e) => {
                warning!(
                    "{}: sieve: {e}: message kept in the default mailbox, no other action taken",
                    self.qid()
                );
                return self.store_default(report, "a fileinto failed");
            }
        };
        // Stores first, then what leaves the system.
        let stores = outcome.actions.iter().filter_map(|a| match a {
            Action::Store { mailbox, flags, .. } => Some((mailbox, flags)),
            _ => None,
        });
        for ((mailbox, flags), (dir, create)) in stores.zip(targets) {
            if dir == self.rcpt.default_mailbox && self.stored_default {
                continue;
            }
            if create {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().trim_start_matches('.').to_string())
                    .unwrap_or_default();
                maildir::ensure(self.rcpt.root)
                    .map_err(|e| Failure::Temporary(format!("creating folder {mailbox}: {e}")))?;
                match folder::create(self.rcpt.root, &name) {
                    Ok(()) => {
                        if let Some(attr) = folder::special_use(mailbox)
                            && let Err(e) = folder::store_special_use(&dir, &[attr])
                        {
                            warning!("{}: sieve: special use of {mailbox}: {e}", self.qid());
                        }
                        info!("{}: sieve: created folder {mailbox}", self.qid());
                    }
                    // Made meanwhile by a concurrent delivery: fine.
                    Err(_) if dir.join("cur").is_dir() => {}
                    Err(e) => {
                        return Err(Failure::Temporary(format!(
                            "creating folder {mailbox}: {e}"
                        )));
                    }
                }
            }
            self.store(&dir, flags)?;
            if dir == self.rcpt.default_mailbox {
                self.stored_default = true;
                report.done.push("delivered to maildir".into());
            } else {
                report.done.push(format!("delivered to folder {mailbox}"));
            }
        }
        for a in &outcome.actions {
            match a {
                Action::Store { .. } => {}
                Action::Discard => report.done.push("discarded".into()),
                Action::Redirect { address } => self.redirect(address, report)?,
                Action::Reject { reason, ereject } => self.reject(reason, *ereject, report)?,
                Action::Vacation(v) => self.vacation(v, report),
                Action::Notify(n) => self.notify(n, report),
            }
        }
        Ok(())
    }

    fn first(&self, name: &str) -> Option<String> {
        self.parsed
            .fields
            .iter()
            .find(|f| f.is(name))
            .map(|f| f.value())
    }

    fn redirect(&mut self, to: &str, report: &mut Report) -> Result<(), Failure> {
        let qid = self.qid().to_string();
        let me = self.rcpt.address;
        // Loop protection: the marker our own redirect adds.
        let looped = self.parsed.fields.iter().any(|f| {
            f.is("x-sieve-redirected-from")
                && crate::message::parse_single_address(&f.value())
                    .is_some_and(|a| a.eq_ignore_ascii_case(me))
        });
        if looped {
            info!(
                "{qid}: sieve: not forwarding to <{to}>: the X-Sieve-Redirected-From header shows a mail loop"
            );
            return self.store_default(report, "redirect loop");
        }
        let msgid = self.first("message-id").unwrap_or_default();
        let dupe = format!(
            "redirect\0{msgid}\0{}\0{to}\0{}\0{}",
            self.rcpt.original,
            self.first("resent-message-id")
                .or_else(|| self.first("resent-from"))
                .unwrap_or_default(),
            self.first("list-id").unwrap_or_default()
        );
        if !msgid.is_empty()
            && self
                .memory
                .as_ref()
                .is_some_and(|m| m.seen(&dupe, self.now))
        {
            info!("{qid}: sieve: discarded duplicate forward to <{to}>");
            report.done.push(format!("already forwarded to <{to}>"));
            return Ok(());
        }
        // RFC 5228 §4.2: the null sender stays null.
        let sender = if self.rcpt.sender.is_empty() {
            String::new()
        } else {
            match &self.cfg.sieve.redirect_sender {
                RedirectSender::Sender => self.rcpt.sender.to_string(),
                RedirectSender::Recipient => self.rcpt.address.to_string(),
                RedirectSender::OrigRecipient => self.rcpt.original.to_string(),
                RedirectSender::Postmaster => postmaster(self.cfg),
                RedirectSender::Address(a) => a.clone(),
            }
        };
        let (head, body) = self
            .message(true)
            .map_err(|e| Failure::Temporary(format!("reading the message: {e}")))?;
        let mut pre =
            format!("X-Sieve: Posthorn Sieve\nX-Sieve-Redirected-From: {me}\n").into_bytes();
        pre.extend_from_slice(&head);
        match enqueue(self.cfg, &sender, &[to.to_string()], &pre, body) {
            Ok(id) => {
                info!("{qid}: sieve: forwarded to <{to}> as {id}");
                report.done.push(format!("forwarded to <{to}>"));
                if !msgid.is_empty() {
                    self.marks.push((dupe, self.now + REDIRECT_PERIOD, false));
                }
                Ok(())
            }
            Err((true, e)) => Err(Failure::Temporary(format!("redirect to <{to}>: {e}"))),
            Err((false, e)) => {
                warning!("{qid}: sieve: failed to redirect to <{to}>: {e}");
                self.store_default(report, "redirect failed")
            }
        }
    }

    fn reject(&mut self, reason: &str, ereject: bool, report: &mut Report) -> Result<(), Failure> {
        let qid = self.qid().to_string();
        let sender = self.rcpt.sender;
        if sender.is_empty() {
            info!("{qid}: sieve: not sending reject message to <>");
            report.done.push("rejected (discarded: null sender)".into());
            return Ok(());
        }
        if ereject {
            // Refused where we still can: our exit status makes whoever
            // handed us the message send a DSN (RFC 5429 §2.1).
            info!("{qid}: sieve: rejected message from <{sender}> (ereject)");
            let r = reason.replace(['\r', '\n'], " ");
            return Err(Failure::Rejected(format!("5.7.1 {}", r.trim())));
        }
        let data = mdn(self.cfg, self.rcpt, reason, &self.parsed.fields);
        match enqueue(
            self.cfg,
            "",
            &[sender.to_string()],
            &data,
            Box::new(io::empty()),
        ) {
            Ok(id) => {
                info!(
                    "{qid}: sieve: rejected message from <{sender}> (reject), MDN queued as {id}"
                );
                report
                    .done
                    .push(format!("rejected, MDN sent to <{sender}>"));
                Ok(())
            }
            Err((true, e)) => Err(Failure::Temporary(format!("reject: {e}"))),
            Err((false, e)) => {
                warning!("{qid}: sieve: failed to send the rejection to <{sender}>: {e}");
                self.store_default(report, "reject failed")
            }
        }
    }

    fn vacation(&mut self, v: &interp::VacationAction, report: &mut Report) {
        let qid = self.qid().to_string();
        let sender = self.rcpt.sender;
        let mut mine: Vec<String> = vec![
            self.rcpt.address.to_string(),
            self.rcpt.original.to_string(),
        ];
        mine.extend(
            v.addresses
                .iter()
                .filter_map(|a| crate::message::parse_single_address(a)),
        );
        if let Some(why) = crate::vacation::refuse(&self.parsed.fields, sender, &mine) {
            info!("{qid}: sieve: not sending vacation reply to <{sender}>: {why}");
            return;
        }
        let key = format!("vacation\0{}\0{}", sender.to_ascii_lowercase(), v.handle);
        if self.memory.as_ref().is_some_and(|m| m.seen(&key, self.now)) {
            info!(
                "{qid}: sieve: not sending vacation reply to <{sender}>: already answered within the period"
            );
            return;
        }
        let from = v
            .from
            .clone()
            .unwrap_or_else(|| self.rcpt.address.to_string());
        let data =
            crate::vacation::compose(v, &self.parsed.fields, &from, sender, &self.cfg.hostname);
        match enqueue(
            self.cfg,
            "",
            &[sender.to_string()],
            &data,
            Box::new(io::empty()),
        ) {
            Ok(id) => {
                info!("{qid}: sieve: sent vacation reply to <{sender}> as {id}");
                report.done.push(format!("vacation reply to <{sender}>"));
                if v.seconds > 0 {
                    self.marks.push((key, self.now + v.seconds as i64, true));
                }
            }
            Err((_, e)) => {
                warning!("{qid}: sieve: failed to send vacation reply to <{sender}>: {e}")
            }
        }
    }

    fn notify(&mut self, n: &interp::NotifyAction, report: &mut Report) {
        let qid = self.qid().to_string();
        let auto = self
            .first("auto-submitted")
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"));
        if auto {
            info!("{qid}: sieve: not sending notification for an auto-submitted message");
            return;
        }
        let Ok(m) = crate::notify::parse(&n.method) else {
            return;
        };
        // Pigeonhole's defaults: from the postmaster, who also gets the bounces.
        let pm = postmaster(self.cfg);
        let from = n
            .from
            .clone()
            .unwrap_or_else(|| format!("Postmaster <{pm}>"));
        let data = crate::vacation::compose_notify(
            n,
            &m,
            &self.parsed.fields,
            &from,
            self.rcpt.address,
            &self.cfg.hostname,
        );
        let mut to = m.to.clone();
        to.extend(m.cc.iter().cloned());
        match enqueue(self.cfg, &pm, &to, &data, Box::new(io::empty())) {
            Ok(id) => {
                info!(
                    "{qid}: sieve: sent notification to <{}> as {id}",
                    to.join(">, <")
                );
                report.done.push("notification sent".into());
            }
            Err((_, e)) => warning!("{qid}: sieve: failed to send notification: {e}"),
        }
    }
}

/// postmaster - the postmaster's address.
fn postmaster(cfg: &Config) -> String {
    if cfg.postmaster.contains('@') {
        cfg.postmaster.clone()
    } else {
        format!("{}@{}", cfg.postmaster, cfg.hostname)
    }
}

/// mdn - the reject action's message disposition notification (RFC 5429
/// §2.2, RFC 8098), in the form Pigeonhole sends.
fn mdn(
    cfg: &Config,
    rcpt: &Recipient<'_>,
    reason: &str,
    fields: &[crate::message::Field],
) -> Vec<u8> {
    let boundary = format!("{}/{}", posthorn_sys::fsio::random_u64(), cfg.hostname);
    let mut s = String::new();
    s.push_str("X-Sieve: Posthorn Sieve\n");
    s.push_str(&format!(
        "Message-ID: {}\n",
        crate::vacation::message_id(&cfg.hostname)
    ));
    s.push_str(&format!("Date: {}\n", posthorn_mail::date::now_rfc5322()));
    s.push_str(&format!(
        "From: Mail Delivery Subsystem <{}>\n",
        postmaster(cfg)
    ));
    s.push_str(&format!("To: <{}>\n", rcpt.sender));
    s.push_str("Subject: Automatically rejected mail\n");
    s.push_str("Auto-Submitted: auto-replied (rejected)\n");
    s.push_str("Precedence: bulk\n");
    s.push_str("MIME-Version: 1.0\n");
    s.push_str(&format!(
        "Content-Type: multipart/report; report-type=disposition-notification;\n\tboundary=\"{boundary}\"\n\n"
    ));
    s.push_str("This is a MIME-encapsulated message\n\n");
    s.push_str(&format!("--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: inline\nContent-Transfer-Encoding: 8bit\n\n"));
    s.push_str(&format!(
        "Your message to <{}> was automatically rejected:\n{}\n",
        rcpt.address,
        reason.replace("\r\n", "\n")
    ));
    s.push_str(&format!(
        "--{boundary}\nContent-Type: message/disposition-notification\n\n"
    ));
    s.push_str(&format!(
        "Reporting-UA: {}; Posthorn deliver\n",
        cfg.hostname
    ));
    if !rcpt.original.is_empty() && rcpt.original != rcpt.address {
        s.push_str(&format!("Original-Recipient: rfc822; {}\n", rcpt.original));
    }
    s.push_str(&format!("Final-Recipient: rfc822; {}\n", rcpt.address));
    if let Some(id) = fields.iter().find(|f| f.is("message-id")) {
        s.push_str(&format!("Original-Message-ID: {}\n", id.value()));
    }
    s.push_str("Disposition: automatic-action/MDN-sent-automatically; deleted\n\n");
    s.push_str(&format!(
        "--{boundary}\nContent-Type: text/rfc822-headers\n\n"
    ));
    let kept: Vec<crate::message::Field> = fields
        .iter()
        .filter(|f| !f.is("content-type"))
        .cloned()
        .collect();
    s.push_str(&String::from_utf8_lossy(&crate::message::render_header(
        &kept,
    )));
    s.push_str(&format!("\n--{boundary}--\n"));
    s.into_bytes()
}

/// enqueue - queue a message through `enqueue` (argv and a pipe, no
/// shell): Ok(queue ID), or Err((temporary, why)).
pub fn enqueue(
    cfg: &Config,
    sender: &str,
    to: &[String],
    head: &[u8],
    mut body: Box<dyn Read + '_>,
) -> Result<String, (bool, String)> {
    use posthorn_spool::envelope::{ChunkWriter, Envelope, Recipient};
    let env = Envelope {
        sender: sender.to_string(),
        recipients: to
            .iter()
            .map(|a| Recipient {
                address: a.clone(),
                notify: None,
                orcpt: None,
            })
            .collect(),
        ..Envelope::default()
    };
    env.check().map_err(|e| (false, e))?;
    let prog = cfg.helper("enqueue");
    let mut child = Command::new(&prog)
        .args(cfg.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| (true, format!("cannot run {}: {e}", prog.display())))?;
    let written = (|| -> io::Result<()> {
        let Some(stdin) = child.stdin.take() else {
            return Err(io::Error::other("no pipe to enqueue"));
        };
        let mut w = io::BufWriter::new(stdin);
        env.write_records(&mut w)?;
        let mut c = ChunkWriter::new(w);
        c.write_all(head)?;
        io::copy(&mut body, &mut c)?;
        c.finish()?.flush()
    })();
    let out = child
        .wait_with_output()
        .map_err(|e| (true, format!("waiting for enqueue: {e}")))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let why = err
        .lines()
        .last()
        .unwrap_or("")
        .trim_start_matches("enqueue: ")
        .to_string();
    match out.status.code() {
        Some(0) if written.is_ok() => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Some(0) => Err((
            true,
            format!(
                "writing to enqueue: {}",
                written.err().map(|e| e.to_string()).unwrap_or_default()
            ),
        )),
        Some(c) => Err((
            c == 75 || !(64..=78).contains(&c),
            format!("enqueue exited {c}: {why}"),
        )),
        None => Err((true, "enqueue was killed".into())),
    }
}
