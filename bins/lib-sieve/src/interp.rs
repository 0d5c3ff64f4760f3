//! interp - running compiled scripts on one message: tests evaluated,
//! commands turned into a list of actions (nothing is stored or sent
//! here; exec.rs does that once the whole run succeeded, so a script that
//! fails half-way has no effect but the implicit keep).
//!
//! Several scripts run in sequence (sieve_before, the user's, sieve_after)
//! into one result, as Pigeonhole's multiscript does: the next script runs
//! only while the message would still be kept.

use crate::message::{self, Field};
use crate::script::*;
use crate::{Error, MAX_ACTIONS, MAX_REDIRECTS};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// The envelope of the message being filtered.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The envelope sender; empty for `<>`.
    pub from: String,
    /// The final recipient: the user's own address.
    pub to: String,
    /// The original recipient (before aliases); `envelope "to"` reads it.
    pub orig_to: String,
}

/// The message as the script sees it.
#[derive(Debug, Clone)]
pub struct Message {
    /// The header fields (edited by editheader as the script runs).
    pub fields: Vec<Field>,
    /// The body, as far as tests may read it.
    pub body: Vec<u8>,
    /// The whole message's size in octets.
    pub size: u64,
}

impl Message {
    /// parse - a message from its bytes (`size` is the full size, which
    /// may be more than the bytes given).
    pub fn parse(bytes: &[u8], size: u64) -> Message {
        let (fields, at) = message::parse_header(bytes);
        Message {
            fields,
            body: bytes[at.min(bytes.len())..].to_vec(),
            size,
        }
    }
}

/// Where spamtest and virustest read their scores.
#[derive(Debug, Clone, Default)]
pub struct ScoreHeader {
    /// The header field; its first number is the score.
    pub header: String,
    /// The score that means "certainly" (spam) when the value does not say
    /// (rspamd writes "score / threshold"); for virustest it is 5.
    pub max: f64,
}

/// Settings of the run that do not come from the message.
#[derive(Debug, Clone)]
pub struct Settings {
    /// spamtest and virustest sources; None: "not tested".
    pub spamtest: Option<ScoreHeader>,
    pub virustest: Option<ScoreHeader>,
    /// environment items (RFC 5183): name -> value.
    pub environment: Vec<(String, String)>,
    /// Now, in Unix seconds (currentdate, duplicate expiry).
    pub now: i64,
    /// CPU time a run may use.
    pub cpu_limit: Duration,
    /// Vacation periods: default, shortest, longest (seconds).
    pub vacation_default: u64,
    pub vacation_min: u64,
    pub vacation_max: u64,
    /// The default and longest duplicate periods (seconds).
    pub duplicate_default: u64,
    pub duplicate_max: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            spamtest: None,
            virustest: None,
            environment: Vec::new(),
            now: 0,
            cpu_limit: Duration::from_secs(30),
            vacation_default: 7 * 86400,
            vacation_min: 86400,
            vacation_max: 60 * 86400,
            duplicate_default: 14 * 86400,
            duplicate_max: 7 * 86400,
        }
    }
}

/// What the interpreter needs from outside: scripts to include, the
/// user's folders, and the duplicate memory.
pub trait Host {
    /// include - the compiled script `name` at `location`; Ok(None) when
    /// there is none.
    fn include(&mut self, location: Location, name: &str) -> Result<Option<Rc<Script>>, String>;
    /// mailbox_exists - whether the user has this folder.
    fn mailbox_exists(&self, name: &str) -> bool;
    /// duplicate_seen - whether this tracking key is remembered.
    fn duplicate_seen(&mut self, key: &str) -> bool;
}

/// A reply the vacation action asks for; exec.rs applies RFC 5230's
/// rules (whether to answer at all) before sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacationAction {
    pub seconds: u64,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    pub handle: String,
    pub reason: String,
}

/// A notification the notify action asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyAction {
    pub method: String,
    pub from: Option<String>,
    pub importance: u8,
    pub options: Vec<String>,
    pub message: Option<String>,
}

/// One action of the result, in the order the script asked for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store into INBOX (keep) or a folder, with these flags.
    Store {
        mailbox: String,
        flags: Vec<String>,
        create: bool,
        /// Set for keep (explicit or implicit), for logging.
        keep: bool,
    },
    Redirect {
        address: String,
    },
    Reject {
        reason: String,
        ereject: bool,
    },
    Discard,
    Vacation(VacationAction),
    Notify(NotifyAction),
}

/// A duplicate tracking entry to remember once the message is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DupMark {
    pub key: String,
    pub expires: i64,
    /// :last: the period counts from this message, even if seen before.
    pub refresh: bool,
}

/// The result of running the scripts.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Actions, with the implicit keep (if still on) as a last Store.
    pub actions: Vec<Action>,
    /// Whether the implicit keep was left on.
    pub implicit_keep: bool,
    /// The header as editheader left it, if it changed.
    pub header: Option<Vec<Field>>,
    pub duplicates: Vec<DupMark>,
    /// Warnings worth a log line (e.g. a protected header left alone).
    pub warnings: Vec<String>,
}

/// Why a run ended early: an error (the caller falls back to the implicit
/// keep) or a stop.
enum Flow {
    Stop,
    Return,
    Fail(Error),
}

impl From<Error> for Flow {
    fn from(e: Error) -> Self {
        Flow::Fail(e)
    }
}

/// run - run `scripts` in order on `msg`; Err names the script (by its
/// index in `scripts`) and the error. Actions are not carried out here.
pub fn run(
    scripts: &[Rc<Script>],
    msg: &Message,
    envelope: &Envelope,
    settings: &Settings,
    host: &mut dyn Host,
) -> Result<Outcome, (usize, Error)> {
    let start = posthorn_sys::fsio::cpu_time();
    let mut st = State {
        msg: msg.clone(),
        edited: false,
        envelope,
        settings,
        host,
        actions: Vec::new(),
        keep: true,
        flags: Vec::new(),
        globals: HashMap::new(),
        duplicates: Vec::new(),
        dup_cache: HashMap::new(),
        warnings: Vec::new(),
        regexes: crate::matching::RegexCache::default(),
        start,
        included: Vec::new(),
        includes: 0,
        vacation: false,
    };
    for (i, s) in scripts.iter().enumerate() {
        if i > 0 {
            // The next script runs only while the message would be kept;
            // that keep is then its to decide, as in Pigeonhole, whose
            // `stop` ends only the script it is in, and whose imap4flags
            // internal variable carries over.
            if !st.keeps() {
                break;
            }
            st.actions
                .retain(|a| !matches!(a, Action::Store { keep: true, .. }));
            st.keep = true;
        }
        let mut frame = Frame::new(s.clone());
        match st.block(&mut frame, &s.commands) {
            Ok(()) | Err(Flow::Stop) | Err(Flow::Return) => {}
            Err(Flow::Fail(e)) => return Err((i, e)),
        }
    }
    let mut actions = st.actions;
    let implicit_keep = st.keep;
    if implicit_keep {
        let flags = st.flags.clone();
        push_store(&mut actions, "INBOX", flags, false, true);
    }
    Ok(Outcome {
        actions,
        implicit_keep,
        header: st.edited.then_some(st.msg.fields),
        duplicates: st.duplicates,
        warnings: st.warnings,
    })
}

/// push_store - a Store action, merged with an earlier one into the same
/// folder (RFC 5228 §4.2: a folder gets the message once).
fn push_store(
    actions: &mut Vec<Action>,
    mailbox: &str,
    flags: Vec<String>,
    create: bool,
    keep: bool,
) {
    let same = |m: &str| {
        m == mailbox || (m.eq_ignore_ascii_case("INBOX") && mailbox.eq_ignore_ascii_case("INBOX"))
    };
    for a in actions.iter_mut() {
        if let Action::Store {
            mailbox: m,
            flags: f,
            create: c,
            keep: k,
        } = a
            && same(m)
        {
            for x in flags {
                if !f.iter().any(|y| y.eq_ignore_ascii_case(&x)) {
                    f.push(x);
                }
            }
            *c |= create;
            *k |= keep;
            return;
        }
    }
    actions.push(Action::Store {
        mailbox: mailbox.to_string(),
        flags,
        create,
        keep,
    });
}

/// One script's variables.
struct Frame {
    script: Rc<Script>,
    vars: HashMap<String, String>,
    global_names: Vec<String>,
    matches: Vec<String>,
}

impl Frame {
    fn new(script: Rc<Script>) -> Frame {
        Frame {
            script,
            vars: HashMap::new(),
            global_names: Vec::new(),
            matches: Vec::new(),
        }
    }
}

struct State<'a> {
    msg: Message,
    edited: bool,
    envelope: &'a Envelope,
    settings: &'a Settings,
    host: &'a mut dyn Host,
    actions: Vec<Action>,
    keep: bool,
    flags: Vec<String>,
    globals: HashMap<String, String>,
    duplicates: Vec<DupMark>,
    dup_cache: HashMap<String, bool>,
    warnings: Vec<String>,
    regexes: crate::matching::RegexCache,
    start: Duration,
    included: Vec<(Location, String)>,
    includes: usize,
    vacation: bool,
}

/// normalize_flags - a flag list as imap4flags keeps it: split at spaces,
/// each flag once (case-insensitive), system flags spelt as IMAP does.
pub fn normalize_flags(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in list {
        for f in s.split(' ').filter(|f| !f.is_empty()) {
            let f = match f.to_ascii_lowercase().as_str() {
                "\\seen" => "\\Seen".to_string(),
                "\\answered" => "\\Answered".to_string(),
                "\\flagged" => "\\Flagged".to_string(),
                "\\deleted" => "\\Deleted".to_string(),
                "\\draft" => "\\Draft".to_string(),
                _ => f.to_string(),
            };
            if !out.iter().any(|x| x.eq_ignore_ascii_case(&f)) {
                out.push(f);
            }
        }
    }
    out
}

impl State<'_> {
    fn keeps(&self) -> bool {
        self.keep
            || self
                .actions
                .iter()
                .any(|a| matches!(a, Action::Store { keep: true, .. }))
    }

    fn check_time(&self, line: u32) -> Result<(), Flow> {
        let used = posthorn_sys::fsio::cpu_time().saturating_sub(self.start);
        if used > self.settings.cpu_limit {
            return Err(Flow::Fail(Error::at(
                line,
                format!(
                    "execution exceeded the CPU time limit ({} s)",
                    self.settings.cpu_limit.as_secs()
                ),
            )));
        }
        Ok(())
    }

    fn block(&mut self, f: &mut Frame, cmds: &[Line]) -> Result<(), Flow> {
        for l in cmds {
            self.check_time(l.line)?;
            self.command(f, l)?;
        }
        Ok(())
    }

    // --- strings and variables ---

    fn var(&self, f: &Frame, name: &str) -> String {
        if f.global_names.iter().any(|g| g == name) {
            return self.globals.get(name).cloned().unwrap_or_default();
        }
        f.vars.get(name).cloned().unwrap_or_default()
    }

    fn set_var(&mut self, f: &mut Frame, name: &str, v: String, line: u32) -> Result<(), Flow> {
        let v = crate::strings::truncate(v, crate::MAX_VARIABLE_SIZE);
        if f.global_names.iter().any(|g| g == name) {
            self.globals.insert(name.to_string(), v);
            return Ok(());
        }
        if !f.vars.contains_key(name) && f.vars.len() >= crate::MAX_VARIABLES {
            return Err(Flow::Fail(Error::at(line, "too many variables")));
        }
        f.vars.insert(name.to_string(), v);
        Ok(())
    }

    fn s(&self, f: &Frame, s: &Str) -> String {
        match s {
            Str::Lit(l) => l.clone(),
            Str::Tpl(parts) => {
                let mut out = String::new();
                for p in parts {
                    match p {
                        Part::Lit(l) => out.push_str(l),
                        Part::Var(n) => out.push_str(&self.var(f, n)),
                        Part::Match(i) => {
                            out.push_str(f.matches.get(*i as usize).map_or("", String::as_str))
                        }
                    }
                    if out.len() > crate::MAX_VARIABLE_SIZE * 4 {
                        break;
                    }
                }
                out
            }
        }
    }

    fn ss(&self, f: &Frame, v: &[Str]) -> Vec<String> {
        v.iter().map(|s| self.s(f, s)).collect()
    }

    // --- matching ---

    /// compare - whether any value matches any key; for :count, the
    /// number of values against the keys. Sets match variables.
    fn compare(&mut self, f: &mut Frame, m: &Match, values: &[String], keys: &[String]) -> bool {
        if let MatchKind::Count(rel) = m.kind {
            let n = values.len().to_string();
            return keys
                .iter()
                .any(|k| crate::matching::relation(m.cmp, rel, &n, k));
        }
        let want_caps =
            f.script.has("variables") && matches!(m.kind, MatchKind::Matches | MatchKind::Regex);
        let mut caps = Vec::new();
        for v in values {
            for k in keys {
                let hit = crate::matching::matches(
                    m.cmp,
                    m.kind,
                    v,
                    k,
                    &mut self.regexes,
                    if want_caps { Some(&mut caps) } else { None },
                );
                if hit {
                    if want_caps {
                        f.matches = std::mem::take(&mut caps);
                    }
                    return true;
                }
            }
        }
        false
    }

    fn fields<'b>(&'b self, name: &str, index: Option<Index>) -> Vec<&'b Field> {
        let all: Vec<&Field> = self.msg.fields.iter().filter(|x| x.is(name)).collect();
        match index {
            None => all,
            Some(ix) => {
                let n = ix.n as usize;
                let pick = if ix.last {
                    all.len().checked_sub(n).and_then(|i| all.get(i))
                } else {
                    all.get(n - 1)
                };
                pick.into_iter().copied().collect()
            }
        }
    }

    fn addr_values(part: AddrPart, addrs: &[message::Address]) -> Vec<String> {
        let mut out = Vec::new();
        for a in addrs {
            match (part, &a.parts) {
                (AddrPart::All, _) => out.push(a.all.clone()),
                (AddrPart::Local, Some((l, _))) => out.push(l.clone()),
                (AddrPart::Domain, Some((_, d))) => out.push(d.clone()),
                (AddrPart::User, Some((l, _))) => out.push(message::subaddress(l).0.to_string()),
                (AddrPart::Detail, Some((l, _))) => {
                    if let Some(d) = message::subaddress(l).1 {
                        out.push(d.to_string());
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn test(&mut self, f: &mut Frame, t: &Test, line: u32) -> Result<bool, Flow> {
        self.check_time(line)?;
        Ok(match t {
            Test::True => true,
            Test::False => false,
            Test::Not(x) => !self.test(f, x, line)?,
            Test::AllOf(v) => {
                for x in v {
                    if !self.test(f, x, line)? {
                        return Ok(false);
                    }
                }
                true
            }
            Test::AnyOf(v) => {
                for x in v {
                    if self.test(f, x, line)? {
                        return Ok(true);
                    }
                }
                false
            }
            Test::Address {
                index,
                part,
                m,
                headers,
                keys,
            } => {
                let mut values = Vec::new();
                for h in self.ss(f, headers) {
                    if !message::is_address_header(&h) {
                        continue;
                    }
                    for fl in self.fields(&h, *index) {
                        values.extend(Self::addr_values(*part, &message::addresses(&fl.raw)));
                    }
                }
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::Envelope {
                part,
                m,
                parts,
                keys,
            } => {
                let mut values = Vec::new();
                for p in self.ss(f, parts) {
                    let a = match p.to_ascii_lowercase().as_str() {
                        "from" => &self.envelope.from,
                        "to" => &self.envelope.orig_to,
                        _ => continue,
                    };
                    if a.is_empty() {
                        // The null sender is the empty string, and has no parts.
                        if *part == AddrPart::All {
                            values.push(String::new());
                        }
                        continue;
                    }
                    values.extend(Self::addr_values(*part, &[message::address(a)]));
                }
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::Header {
                index,
                m,
                names,
                keys,
            } => {
                let mut values = Vec::new();
                for n in self.ss(f, names) {
                    values.extend(self.fields(&n, *index).iter().map(|x| x.value()));
                }
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::Exists(names) => {
                let names = self.ss(f, names);
                names
                    .iter()
                    .all(|n| self.msg.fields.iter().any(|x| x.is(n)))
            }
            Test::Size { over, limit } => {
                if *over {
                    self.msg.size > *limit
                } else {
                    self.msg.size < *limit
                }
            }
            Test::Body { m, transform, keys } => {
                let types = match transform {
                    Transform::Content(c) => Some(self.ss(f, c)),
                    _ => None,
                };
                let values = crate::body::extract(&self.msg, transform, types.as_deref());
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::String { m, sources, keys } => {
                let mut values = self.ss(f, sources);
                if matches!(m.kind, MatchKind::Count(_)) {
                    values.retain(|v| !v.is_empty());
                }
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::HasFlag { m, vars, keys } => {
                let flags = match vars {
                    None => self.flags.clone(),
                    Some(v) => {
                        let names = self.ss(f, v);
                        let lists: Vec<String> = names
                            .iter()
                            .map(|n| self.var(f, &n.to_ascii_lowercase()))
                            .collect();
                        normalize_flags(&lists)
                    }
                };
                let keys = normalize_flags(&self.ss(f, keys));
                let m = if m.cmp == Comparator::Octet || m.kind != MatchKind::Is {
                    *m
                } else {
                    Match {
                        cmp: Comparator::AsciiCasemap,
                        kind: m.kind,
                    }
                };
                self.compare(f, &m, &flags, &keys)
            }
            Test::Date {
                index,
                zone,
                m,
                header,
                part,
                keys,
            } => {
                let h = self.s(f, header);
                let part = self.s(f, part);
                let mut values = Vec::new();
                for fl in self.fields(&h, *index) {
                    let v = fl.value();
                    let text = if h.eq_ignore_ascii_case("received") {
                        v.rsplit(';').next().unwrap_or("").to_string()
                    } else {
                        v
                    };
                    if let Some((secs, orig)) = crate::datetime::parse_date(&text) {
                        let z = match zone {
                            Zone::Local => crate::datetime::local_offset(secs),
                            Zone::Original => orig,
                            Zone::Fixed(z) => match crate::datetime::parse_zone(&self.s(f, z)) {
                                Some(z) => z,
                                None => continue,
                            },
                        };
                        if let Some(p) = crate::datetime::part(secs, z, &part) {
                            values.push(p);
                        }
                    }
                }
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::CurrentDate {
                zone,
                m,
                part,
                keys,
            } => {
                let now = self.settings.now;
                let z = match zone {
                    Zone::Fixed(z) => crate::datetime::parse_zone(&self.s(f, z)),
                    _ => Some(crate::datetime::local_offset(now)),
                };
                let part = self.s(f, part);
                let values: Vec<String> = z
                    .and_then(|z| crate::datetime::part(now, z, &part))
                    .into_iter()
                    .collect();
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::Duplicate {
                handle,
                source,
                seconds,
                last,
            } => {
                let id = match source {
                    DupSource::MessageId => self.first_value("message-id"),
                    DupSource::Header(h) => {
                        let h = self.s(f, h);
                        self.first_value(&h)
                    }
                    DupSource::UniqueId(u) => Some(self.s(f, u)),
                };
                let Some(id) = id else { return Ok(false) };
                let handle = handle.as_ref().map(|h| self.s(f, h)).unwrap_or_default();
                let key = format!("duplicate\0{handle}\0{id}");
                let period = seconds
                    .unwrap_or(self.settings.duplicate_default)
                    .min(self.settings.duplicate_max);
                let seen = match self.dup_cache.get(&key) {
                    Some(s) => *s,
                    None => {
                        let s = self.host.duplicate_seen(&key);
                        self.dup_cache.insert(key.clone(), s);
                        s
                    }
                };
                if !seen || *last {
                    self.duplicates.retain(|d| d.key != key);
                    self.duplicates.push(DupMark {
                        key,
                        expires: self.settings.now + period as i64,
                        refresh: *last,
                    });
                }
                seen
            }
            Test::ValidNotifyMethod(uris) => {
                let uris = self.ss(f, uris);
                !uris.is_empty() && uris.iter().all(|u| crate::notify::check_uri(u).is_ok())
            }
            Test::NotifyMethodCapability {
                m,
                uri,
                capability,
                keys,
            } => {
                let values: Vec<String> =
                    crate::notify::capability(&self.s(f, uri), &self.s(f, capability))
                        .into_iter()
                        .collect();
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::Environment { m, name, keys } => {
                let n = self.s(f, name).to_ascii_lowercase();
                let values: Vec<String> = self
                    .settings
                    .environment
                    .iter()
                    .filter(|(k, _)| *k == n)
                    .map(|(_, v)| v.clone())
                    .collect();
                let keys = self.ss(f, keys);
                self.compare(f, m, &values, &keys)
            }
            Test::MailboxExists(names) => {
                let names = self.ss(f, names);
                names.iter().all(|n| self.host.mailbox_exists(n))
            }
            Test::SpamTest { percent, m, value } => {
                let v = self.score(true, *percent);
                let key = self.s(f, value);
                self.compare(f, m, &[v], &[key])
            }
            Test::VirusTest { m, value } => {
                let v = self.score(false, false);
                let key = self.s(f, value);
                self.compare(f, m, &[v], &[key])
            }
        })
    }

    fn first_value(&self, name: &str) -> Option<String> {
        self.msg
            .fields
            .iter()
            .find(|x| x.is(name))
            .map(|x| x.value())
    }

    /// score - spamtest (RFC 5235 §3.1: "0" not tested, "1" clean to "10"
    /// certainly spam, as 1 + 9 x score/max; :percent 0 to 100) or virustest ("0" not tested,
    /// "1" clean to "5" infected) from the configured header.
    fn score(&self, spam: bool, percent: bool) -> String {
        let cfg = if spam {
            &self.settings.spamtest
        } else {
            &self.settings.virustest
        };
        let Some(cfg) = cfg else { return "0".into() };
        let Some(v) = self.first_value(&cfg.header) else {
            return "0".into();
        };
        let nums: Vec<f64> = v
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter_map(|x| x.parse::<f64>().ok())
            .collect();
        let Some(&score) = nums.first() else {
            return "0".into();
        };
        if !spam {
            return (score.round().clamp(1.0, 5.0) as i64).to_string();
        }
        // rspamd writes "score / threshold": the threshold is the maximum.
        let max = if v.contains('/') && nums.len() > 1 && nums[1] > 0.0 {
            nums[1]
        } else {
            cfg.max
        };
        let ratio = if max > 0.0 {
            (score / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Truncated, as Pigeonhole computes them.
        if percent {
            ((ratio * 100.0).floor() as i64).to_string()
        } else {
            ((1.0 + ratio * 9.0).floor() as i64).to_string()
        }
    }

    // --- commands ---

    fn add_action(&mut self, a: Action, line: u32) -> Result<(), Flow> {
        let tries_deliver =
            |a: &Action| matches!(a, Action::Store { .. } | Action::Redirect { .. });
        let is_reject = |a: &Action| matches!(a, Action::Reject { .. });
        if is_reject(&a) {
            if let Some(other) = self
                .actions
                .iter()
                .find(|x| tries_deliver(x) || is_reject(x) || matches!(x, Action::Vacation(_)))
            {
                return Err(Flow::Fail(Error::at(
                    line,
                    format!(
                        "reject action conflicts with an earlier {} action",
                        action_name(other)
                    ),
                )));
            }
        } else if (tries_deliver(&a) || matches!(a, Action::Vacation(_)))
            && self.actions.iter().any(is_reject)
        {
            return Err(Flow::Fail(Error::at(
                line,
                format!(
                    "{} action conflicts with an earlier reject action",
                    action_name(&a)
                ),
            )));
        }
        match &a {
            Action::Store {
                mailbox,
                flags,
                create,
                keep,
            } => {
                let exists = self
                    .actions
                    .iter()
                    .any(|x| matches!(x, Action::Store { mailbox: m, .. } if m == mailbox));
                if !exists && self.actions.len() >= MAX_ACTIONS {
                    return Err(too_many(line));
                }
                push_store(&mut self.actions, mailbox, flags.clone(), *create, *keep);
                return Ok(());
            }
            Action::Redirect { address } => {
                if self.actions.iter().any(|x| matches!(x, Action::Redirect { address: r } if r.eq_ignore_ascii_case(address))) {
                    return Ok(());
                }
                let n = self
                    .actions
                    .iter()
                    .filter(|x| matches!(x, Action::Redirect { .. }))
                    .count();
                if n >= MAX_REDIRECTS {
                    return Err(Flow::Fail(Error::at(
                        line,
                        format!(
                            "total number of redirect actions exceeds policy limit ({MAX_REDIRECTS})"
                        ),
                    )));
                }
            }
            Action::Discard if self.actions.contains(&Action::Discard) => {
                return Ok(());
            }
            Action::Notify(n)
                if self
                    .actions
                    .iter()
                    .any(|x| matches!(x, Action::Notify(o) if o.method == n.method)) =>
            {
                return Ok(());
            }
            _ => {}
        }
        if self.actions.len() >= MAX_ACTIONS {
            return Err(too_many(line));
        }
        self.actions.push(a);
        Ok(())
    }

    fn command(&mut self, f: &mut Frame, l: &Line) -> Result<(), Flow> {
        let line = l.line;
        match &l.cmd {
            Cmd::If {
                branches,
                otherwise,
            } => {
                for (t, body) in branches {
                    if self.test(f, t, line)? {
                        return self.block(f, body);
                    }
                }
                if let Some(b) = otherwise {
                    return self.block(f, b);
                }
            }
            Cmd::Stop => return Err(Flow::Stop),
            Cmd::Return => return Err(Flow::Return),
            Cmd::Keep { flags } => {
                let flags = match flags {
                    Some(v) => normalize_flags(&self.ss(f, v)),
                    None => self.flags.clone(),
                };
                self.add_action(
                    Action::Store {
                        mailbox: "INBOX".into(),
                        flags,
                        create: false,
                        keep: true,
                    },
                    line,
                )?;
                self.keep = false;
            }
            Cmd::Discard => {
                self.add_action(Action::Discard, line)?;
                self.keep = false;
            }
            Cmd::Redirect { address, copy } => {
                let a = self.s(f, address);
                let Some(addr) = message::parse_single_address(&a) else {
                    return Err(Flow::Fail(Error::at(
                        line,
                        format!("specified redirect address '{a}' is invalid"),
                    )));
                };
                self.add_action(Action::Redirect { address: addr }, line)?;
                if !copy {
                    self.keep = false;
                }
            }
            Cmd::FileInto {
                mailbox,
                copy,
                create,
                flags,
            } => {
                let mb = self.s(f, mailbox);
                if mb.is_empty() {
                    return Err(Flow::Fail(Error::at(line, "fileinto: empty mailbox name")));
                }
                let flags = match flags {
                    Some(v) => normalize_flags(&self.ss(f, v)),
                    None => self.flags.clone(),
                };
                self.add_action(
                    Action::Store {
                        mailbox: mb,
                        flags,
                        create: *create,
                        keep: false,
                    },
                    line,
                )?;
                if !copy {
                    self.keep = false;
                }
            }
            Cmd::Reject { reason, ereject } => {
                let r = self.s(f, reason);
                self.add_action(
                    Action::Reject {
                        reason: r,
                        ereject: *ereject,
                    },
                    line,
                )?;
                self.keep = false;
            }
            Cmd::Vacation(v) => {
                if self.vacation {
                    return Err(Flow::Fail(Error::at(
                        line,
                        "duplicate vacation action not allowed",
                    )));
                }
                self.vacation = true;
                let reason = self.s(f, &v.reason);
                let subject = v.subject.as_ref().map(|s| self.s(f, s));
                let from = v.from.as_ref().map(|s| self.s(f, s));
                let handle = match &v.handle {
                    Some(h) => self.s(f, h),
                    // RFC 5230 §4.2: derived from the arguments.
                    None => format!(
                        "{}{}{}{}",
                        reason,
                        subject.as_deref().unwrap_or("<default-subject>"),
                        from.as_deref().unwrap_or("<default-from>"),
                        if v.mime { "<MIME>" } else { "<NO-MIME>" }
                    ),
                };
                let s = &self.settings;
                let seconds = match v.seconds {
                    None => s.vacation_default,
                    Some(x) => x,
                };
                let seconds = if seconds == 0 && !v.days {
                    0
                } else {
                    seconds.clamp(s.vacation_min, s.vacation_max)
                };
                self.add_action(
                    Action::Vacation(VacationAction {
                        seconds,
                        subject,
                        from,
                        addresses: self.ss(f, &v.addresses),
                        mime: v.mime,
                        handle,
                        reason,
                    }),
                    line,
                )?;
            }
            Cmd::Notify(n) => {
                let method = self.s(f, &n.method);
                if let Err(e) = crate::notify::check_uri(&method) {
                    return Err(Flow::Fail(Error::at(line, format!("notify: {e}"))));
                }
                let importance = n
                    .importance
                    .as_ref()
                    .map(|i| self.s(f, i))
                    .and_then(|i| i.parse::<u8>().ok())
                    .filter(|i| (1..=3).contains(i))
                    .unwrap_or(2);
                let a = Action::Notify(NotifyAction {
                    method,
                    from: n.from.as_ref().map(|x| self.s(f, x)),
                    importance,
                    options: self.ss(f, &n.options),
                    message: n.message.as_ref().map(|x| self.s(f, x)),
                });
                self.add_action(a, line)?;
            }
            Cmd::Flag { op, var, flags } => {
                let new = normalize_flags(&self.ss(f, flags));
                let cur = match var {
                    Some(v) => {
                        let name = self.s(f, v).to_ascii_lowercase();
                        normalize_flags(&[self.var(f, &name)])
                    }
                    None => self.flags.clone(),
                };
                let res = match op {
                    FlagOp::Set => new,
                    FlagOp::Add => normalize_flags(&[cur.join(" "), new.join(" ")]),
                    FlagOp::Remove => cur
                        .into_iter()
                        .filter(|c| !new.iter().any(|n| n.eq_ignore_ascii_case(c)))
                        .collect(),
                };
                match var {
                    Some(v) => {
                        let name = self.s(f, v).to_ascii_lowercase();
                        self.set_var(f, &name, res.join(" "), line)?;
                    }
                    None => self.flags = res,
                }
            }
            Cmd::Set {
                modifiers,
                name,
                value,
            } => {
                let v = crate::strings::apply(modifiers, self.s(f, value));
                self.set_var(f, name, v, line)?;
            }
            Cmd::Global(names) => {
                for n in names {
                    if !f.global_names.contains(n) {
                        f.global_names.push(n.clone());
                    }
                }
            }
            Cmd::AddHeader { last, name, value } => {
                let n = self.s(f, name);
                let v = self.s(f, value);
                if !message::is_field_name(&n) {
                    return Err(Flow::Fail(Error::at(
                        line,
                        format!("addheader: invalid header field name '{n}'"),
                    )));
                }
                if is_protected(&n, true) {
                    self.warnings.push(format!(
                        "line {line}: addheader: header field '{n}' is protected; left alone"
                    ));
                    return Ok(());
                }
                if v.len() > 2048 {
                    return Err(Flow::Fail(Error::at(line, "addheader: value too long")));
                }
                let field = Field {
                    name: n,
                    raw: format!(" {}", encode_value(&v)),
                };
                if *last {
                    self.msg.fields.push(field);
                } else {
                    self.msg.fields.insert(0, field);
                }
                self.edited = true;
            }
            Cmd::DeleteHeader {
                index,
                m,
                name,
                values,
            } => {
                let n = self.s(f, name);
                if is_protected(&n, false) {
                    self.warnings.push(format!(
                        "line {line}: deleteheader: header field '{n}' is protected; left alone"
                    ));
                    return Ok(());
                }
                let keys = values.as_ref().map(|v| self.ss(f, v));
                let positions: Vec<usize> = self
                    .msg
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.is(&n))
                    .map(|(i, _)| i)
                    .collect();
                let chosen: Vec<usize> = match index {
                    None => positions,
                    Some(ix) => {
                        let k = ix.n as usize;
                        let p = if ix.last {
                            positions
                                .len()
                                .checked_sub(k)
                                .and_then(|i| positions.get(i))
                        } else {
                            positions.get(k - 1)
                        };
                        p.into_iter().copied().collect()
                    }
                };
                let mut drop = Vec::new();
                for i in chosen {
                    let ok = match &keys {
                        None => true,
                        Some(keys) => {
                            let v = self.msg.fields[i].value();
                            self.compare(f, m, &[v], keys)
                        }
                    };
                    if ok {
                        drop.push(i);
                    }
                }
                if !drop.is_empty() {
                    let mut i = 0;
                    self.msg.fields.retain(|_| {
                        let keep = !drop.contains(&i);
                        i += 1;
                        keep
                    });
                    self.edited = true;
                }
            }
            Cmd::Include {
                location,
                once,
                optional,
                name,
            } => {
                let n = self.s(f, name);
                crate::check_script_name(&n)
                    .map_err(|e| Flow::Fail(Error::at(line, format!("include: {e}"))))?;
                let key = (*location, n.clone());
                if self.included.contains(&key) {
                    if *once {
                        return Ok(());
                    }
                    return Err(Flow::Fail(Error::at(
                        line,
                        format!("include: script '{n}' includes itself"),
                    )));
                }
                if self.included.len() >= crate::MAX_INCLUDE_DEPTH {
                    return Err(Flow::Fail(Error::at(line, "include: nested too deeply")));
                }
                self.includes += 1;
                if self.includes > crate::MAX_INCLUDES {
                    return Err(Flow::Fail(Error::at(line, "include: too many includes")));
                }
                let script = match self.host.include(*location, &n) {
                    Ok(Some(s)) => s,
                    Ok(None) if *optional => return Ok(()),
                    Ok(None) => {
                        return Err(Flow::Fail(Error::at(
                            line,
                            format!("include: script '{n}' does not exist"),
                        )));
                    }
                    Err(e) => return Err(Flow::Fail(Error::at(line, format!("include: {e}")))),
                };
                self.included.push(key);
                let mut sub = Frame::new(script.clone());
                let r = self.block(&mut sub, &script.commands);
                self.included.pop();
                match r {
                    Ok(()) | Err(Flow::Return) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

fn too_many(line: u32) -> Flow {
    Flow::Fail(Error::at(
        line,
        format!("total number of actions exceeds policy limit ({MAX_ACTIONS})"),
    ))
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Store { keep: true, .. } => "keep",
        Action::Store { .. } => "fileinto",
        Action::Redirect { .. } => "redirect",
        Action::Reject { .. } => "reject",
        Action::Discard => "discard",
        Action::Vacation(_) => "vacation",
        Action::Notify(_) => "notify",
    }
}

/// is_protected - header fields editheader may not touch (RFC 5293 §7;
/// Pigeonhole's: Received and Auto-Submitted may not be deleted, and
/// its redirect loop marker may be neither added nor deleted).
fn is_protected(name: &str, adding: bool) -> bool {
    let n = name.to_ascii_lowercase();
    n == "x-sieve-redirected-from" || (!adding && (n == "received" || n == "auto-submitted"))
}

/// encode_value - a header value as it may be written: RFC 2047 encoded
/// words for text that is not ASCII, no line ends.
pub fn encode_value(v: &str) -> String {
    let v: String = v
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if v.is_ascii() {
        return v;
    }
    let mut out = String::new();
    let mut chunk = String::new();
    let flush = |chunk: &mut String, out: &mut String| {
        if !chunk.is_empty() {
            if !out.is_empty() {
                out.push_str("\n ");
            }
            out.push_str("=?utf-8?b?");
            out.push_str(&b64(chunk.as_bytes()));
            out.push_str("?=");
            chunk.clear();
        }
    };
    for c in v.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            flush(&mut chunk, &mut out);
        }
        chunk.push(c);
    }
    flush(&mut chunk, &mut out);
    out
}

/// b64 - base64 (RFC 4648).
pub fn b64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        s.push(A[(n >> 18) as usize & 63] as char);
        s.push(A[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoHost;
    impl Host for NoHost {
        fn include(&mut self, _: Location, _: &str) -> Result<Option<Rc<Script>>, String> {
            Ok(None)
        }
        fn mailbox_exists(&self, n: &str) -> bool {
            n == "Exists"
        }
        fn duplicate_seen(&mut self, k: &str) -> bool {
            k.contains("seen@x")
        }
    }

    const MSG: &[u8] = b"From: Ann <ann+lists@example.org>\nTo: bob@example.net, carl@example.net\nSubject: [rust] Re: hello world\nMessage-ID: <seen@x>\nDate: Fri, 17 Jun 2005 13:52:15 -0400\nX-Spam-Score: 7.5 / 15\n\nHello body\n";

    fn run1(src: &str) -> Result<Outcome, Error> {
        let s = Rc::new(crate::compile(src)?);
        let m = Message::parse(MSG, MSG.len() as u64);
        let env = Envelope {
            from: "ann@example.org".into(),
            to: "bob@example.net".into(),
            orig_to: "bob@example.net".into(),
        };
        let settings = Settings {
            spamtest: Some(ScoreHeader {
                header: "X-Spam-Score".into(),
                max: 10.0,
            }),
            ..Settings::default()
        };
        run(&[s], &m, &env, &settings, &mut NoHost).map_err(|(_, e)| e)
    }

    fn stores(o: &Outcome) -> Vec<(String, Vec<String>)> {
        o.actions
            .iter()
            .filter_map(|a| match a {
                Action::Store { mailbox, flags, .. } => Some((mailbox.clone(), flags.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn implicit_keep_and_fileinto() {
        let o = run1("keep;").unwrap();
        assert_eq!(stores(&o), [("INBOX".to_string(), vec![])]);
        let o = run1("require \"fileinto\"; if header :contains \"subject\" \"[rust]\" { fileinto \"Lists.rust\"; }").unwrap();
        assert!(!o.implicit_keep);
        assert_eq!(stores(&o), [("Lists.rust".to_string(), vec![])]);
        let o =
            run1("require [\"fileinto\",\"copy\"]; fileinto :copy \"A\"; fileinto \"A\";").unwrap();
        assert_eq!(stores(&o).len(), 1);
        let o = run1("discard;").unwrap();
        assert_eq!(o.actions, [Action::Discard]);
    }

    #[test]
    fn addresses_and_variables() {
        let o = run1(
            "require [\"fileinto\",\"variables\",\"subaddress\",\"envelope\"];
             if address :detail \"from\" \"lists\" { if header :matches \"subject\" \"[*] *\" { fileinto \"L.${1}\"; } }
             if envelope :domain :is \"from\" \"EXAMPLE.org\" { set :upper \"x\" \"ok\"; fileinto \"${x}\"; }",
        )
        .unwrap();
        assert_eq!(
            stores(&o),
            [("L.rust".to_string(), vec![]), ("OK".to_string(), vec![])]
        );
        let o = run1(
            "if address :count \"eq\" :comparator \"i;ascii-numeric\" \"to\" \"2\" { discard; }",
        );
        assert!(o.is_err(), "relational needs its require");
        let o = run1("require [\"relational\", \"comparator-i;ascii-numeric\"]; if address :count \"eq\" :comparator \"i;ascii-numeric\" \"to\" \"2\" { discard; }").unwrap();
        assert_eq!(o.actions, [Action::Discard]);
    }

    #[test]
    fn flags_and_limits() {
        let o = run1("require \"imap4flags\"; addflag [\"\\\\seen\", \"$Junk \\\\Seen\"]; keep; removeflag \"$junk\";").unwrap();
        assert_eq!(
            stores(&o),
            [(
                "INBOX".to_string(),
                vec!["\\Seen".to_string(), "$Junk".to_string()]
            )]
        );
        let r = (0..5)
            .map(|i| format!("redirect \"r{i}@x.org\";"))
            .collect::<String>();
        assert!(run1(&r).unwrap_err().message.contains("redirect"));
        let f = (0..40)
            .map(|i| format!("fileinto \"f{i}\";"))
            .collect::<String>();
        assert!(
            run1(&format!("require \"fileinto\"; {f}"))
                .unwrap_err()
                .message
                .contains("actions")
        );
        assert!(
            run1("require [\"reject\",\"fileinto\"]; fileinto \"x\"; reject \"no\";")
                .unwrap_err()
                .message
                .contains("conflicts")
        );
    }

    #[test]
    fn extensions() {
        let o = run1("require [\"date\",\"relational\"]; if date :originalzone :value \"eq\" \"date\" \"year\" \"2005\" { discard; }").unwrap();
        assert_eq!(o.actions, [Action::Discard]);
        let o = run1("require [\"spamtest\",\"relational\",\"comparator-i;ascii-numeric\"]; if spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"5\" { discard; }").unwrap();
        assert_eq!(o.actions, [Action::Discard]);
        let o = run1("require \"duplicate\"; if duplicate { discard; }").unwrap();
        assert_eq!(o.actions, [Action::Discard]);
        let o = run1("require \"duplicate\"; if duplicate :uniqueid \"new\" { discard; }").unwrap();
        assert!(o.implicit_keep);
        assert_eq!(o.duplicates.len(), 1);
        let o = run1("require \"body\"; if body :contains \"hello\" { discard; }").unwrap();
        assert_eq!(o.actions, [Action::Discard]);
        let o = run1("require \"editheader\"; addheader \"X-A\" \"1\"; deleteheader \"subject\"; deleteheader \"received\"; if not exists \"subject\" { if exists \"x-a\" { discard; } }").unwrap();
        assert_eq!(o.actions, [Action::Discard]);
        assert!(o.header.unwrap()[0].is("x-a"));
        let o = run1("require \"mailbox\"; if mailboxexists \"Exists\" { discard; }").unwrap();
        assert_eq!(o.actions, [Action::Discard]);
    }

    struct Chain;
    impl Host for Chain {
        fn include(&mut self, _: Location, name: &str) -> Result<Option<Rc<Script>>, String> {
            // s0 includes s1, which includes s2, ...; "self" includes itself.
            let next = match name {
                "self" => "self".to_string(),
                n => format!("s{}", n[1..].parse::<u32>().unwrap_or(0) + 1),
            };
            Ok(Some(Rc::new(
                crate::compile(&format!("require \"include\"; include \"{next}\";")).unwrap(),
            )))
        }
        fn mailbox_exists(&self, _: &str) -> bool {
            false
        }
        fn duplicate_seen(&mut self, _: &str) -> bool {
            false
        }
    }

    #[test]
    fn include_and_cpu_limits() {
        let m = Message::parse(MSG, MSG.len() as u64);
        let env = Envelope::default();
        let run_with = |src: &str, settings: &Settings| {
            let s = Rc::new(crate::compile(src).unwrap());
            run(&[s], &m, &env, settings, &mut Chain).map_err(|(_, e)| e)
        };
        let e = run_with("require \"include\"; include \"s0\";", &Settings::default()).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e}");
        let e = run_with(
            "require \"include\"; include \"self\";",
            &Settings::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("includes itself"), "{e}");
        let busy = Settings {
            cpu_limit: Duration::ZERO,
            ..Settings::default()
        };
        let e = run_with(
            &"if header :contains \"subject\" \"x\" { keep; }\n".repeat(50),
            &busy,
        )
        .unwrap_err();
        assert!(e.message.contains("CPU time limit"), "{e}");
    }
}
