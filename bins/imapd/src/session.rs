//! session - the IMAP4rev1 state machine (RFC 3501 §3: not
//! authenticated, authenticated, selected, logout). Fed one complete
//! command at a time (or one SASL line), it answers with actions the
//! caller carries out in order; it touches the network never and the
//! mailbox only after the caller has become the user (`logged_in`).
//! What a client may do before login is decided here, and only here.
//!
//! Untagged updates (EXPUNGE, EXISTS, RECENT, FETCH FLAGS, FLAGS) come
//! from a folder sync before the tagged reply, never while answering a
//! sequence-number FETCH, STORE, SEARCH or COPY (RFC 3501 §7.4.1: an
//! EXPUNGE there would shift the numbers the client is using).

use crate::cache::Cache;
use crate::command::{self, Bad, Cmd, StatusItem};
use crate::flags::{self, Flags};
use crate::folder::Folder;
use crate::folders::{self, Tree};
use crate::messages::flag_list;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use posthorn_auth::login::Throttle;
use posthorn_auth::sasl::{Exchange, Mechanism, Step};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Bad commands in one session before it is closed.
pub const MAX_BAD: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NotAuthenticated,
    Authenticated,
    Selected,
    Logout,
}

/// What the caller does next, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these octets.
    Reply(Vec<u8>),
    /// Check these credentials, then call `logged_in` or `login_failed`.
    Login {
        tag: String,
        method: &'static str,
        authzid: String,
        user: String,
        password: Password,
    },
    /// The go-ahead is queued: send it, then start TLS before reading on.
    StartTls,
    /// COMPRESS's OK is queued: send it, then deflate both ways.
    Compress,
    /// IDLE's go-ahead is queued: send it, then wait for DONE, calling
    /// `idle_updates` when the folder may have changed and `idle_done`
    /// with the client's line.
    Idle {
        tag: String,
    },
    Delay(Duration),
    Close,
}

/// A password on its way to the check; prints as [redacted].
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub Vec<u8>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The facts about the connection the session decides by.
#[derive(Debug, Clone)]
pub struct Options {
    pub tls_available: bool,
    pub tls_active: bool,
    /// Plaintext passwords allowed without TLS (loopback or allow_plaintext).
    pub plaintext_anyway: bool,
    pub max_failures: u32,
    /// The hierarchy separator clients see, `.` or `/`; the store's
    /// names always use `.` (Maildir++).
    pub separator: char,
    /// The largest message APPEND takes (serve.rs enforces it).
    pub append_limit: u64,
}

/// The logged-in user's quota, from the users file (RFC 9208: one root,
/// named "", over every folder).
pub type Quota = posthorn_mail::users::Quota;

/// The selected mailbox.
#[derive(Debug)]
pub(crate) struct Selected {
    pub(crate) name: String,
    pub(crate) folder: Folder,
    /// The folder's cache of envelopes and structures, once needed.
    pub(crate) cache: Option<Cache>,
    /// Keyword count last announced in FLAGS.
    pub(crate) announced: usize,
    /// UIDs of the last `SEARCH RETURN (SAVE)` result, `$` (RFC 5182);
    /// a new selection starts it empty.
    pub(crate) saved: Vec<u32>,
    /// Searches and sorts kept up to date (RFC 5267 §4.3).
    pub(crate) contexts: Vec<crate::context::Context>,
}

/// One IMAP session.
#[derive(Debug)]
pub struct Session {
    pub state: State,
    opts: Options,
    sasl: Option<(String, Mechanism, Exchange)>,
    throttle: Throttle,
    bad: u32,
    /// The selected mailbox went away under us (its UIDVALIDITY changed):
    /// nothing the client knows holds, so the session ends.
    lost: bool,
    /// COMPRESS=DEFLATE is on (RFC 4978: once per session).
    compressed: bool,
    /// Set at login when the user has one.
    quota: Option<Quota>,
    /// CONDSTORE is on (RFC 7162 §3.1: by ENABLE or a first use): FETCH
    /// responses with FLAGS carry MODSEQ.
    pub(crate) condstore: bool,
    /// QRESYNC is on (ENABLE only): expunges are told as VANISHED.
    pub(crate) qresync: bool,
    tree: Option<Tree>,
    pub(crate) sel: Option<Selected>,
    /// What ENABLE switched on (RFC 5161), by the capability's name.
    pub(crate) enabled: std::collections::BTreeSet<&'static str>,
}

/// asks_save - whether a command line is `[UID] SEARCH|SORT RETURN (...)`
/// with SAVE among the options, however the rest of it is wrong.
fn asks_save(input: &[u8]) -> bool {
    let head = &input[..input.len().min(200)];
    let up = String::from_utf8_lossy(head).to_ascii_uppercase();
    let mut words = up.split(' ').skip(1).skip_while(|w| *w == "UID");
    if !matches!(words.next(), Some("SEARCH" | "SORT")) || words.next() != Some("RETURN") {
        return false;
    }
    let opts = words.collect::<Vec<_>>().join(" ");
    let opts = opts.strip_prefix('(').unwrap_or("");
    let opts = opts.split(')').next().unwrap_or("");
    opts.split(' ').any(|w| w == "SAVE")
}

/// line - one reply line.
pub(crate) fn line(s: &str) -> Action {
    Action::Reply(format!("{s}\r\n").into_bytes())
}

impl Session {
    /// new - a session before login; the caller sends `greeting()` first.
    pub fn new(opts: Options) -> Session {
        Session {
            state: State::NotAuthenticated,
            throttle: Throttle::new(opts.max_failures),
            opts,
            sasl: None,
            bad: 0,
            lost: false,
            compressed: false,
            quota: None,
            condstore: false,
            qresync: false,
            tree: None,
            sel: None,
            enabled: Default::default(),
        }
    }

    /// plaintext_ok - whether a password may cross this connection.
    fn plaintext_ok(&self) -> bool {
        self.opts.tls_active || self.opts.plaintext_anyway
    }

    /// capability - the list, as it stands in this state.
    pub fn capability(&self) -> String {
        let mut c = String::from(
            "IMAP4rev1 IMAP4rev2 UTF8=ACCEPT LITERAL+ SASL-IR CHILDREN UIDPLUS IDLE UNSELECT NAMESPACE ID ENABLE MOVE SPECIAL-USE STATUS=SIZE WITHIN ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS SORT SORT=DISPLAY ESORT CONTEXT=SEARCH CONTEXT=SORT PARTIAL THREAD=ORDEREDSUBJECT THREAD=REFERENCES CONDSTORE QRESYNC COMPRESS=DEFLATE QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE BINARY MULTIAPPEND CREATE-SPECIAL-USE",
        );
        c.push_str(&format!(" APPENDLIMIT={}", self.opts.append_limit));
        if self.state == State::NotAuthenticated {
            if self.opts.tls_available && !self.opts.tls_active {
                c.push_str(" STARTTLS");
            }
            if self.plaintext_ok() {
                c.push_str(" AUTH=PLAIN AUTH=LOGIN");
            } else {
                c.push_str(" LOGINDISABLED");
            }
        }
        c
    }

    /// greeting - the first line.
    pub fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] Posthorn IMAP4rev1 ready\r\n",
            self.capability()
        )
        .into_bytes()
    }

    /// tls_started - the caller switched to TLS.
    pub fn tls_started(&mut self) {
        self.opts.tls_active = true;
    }

    /// in_sasl - whether the next line is a SASL response, not a command.
    pub fn in_sasl(&self) -> bool {
        self.sasl.is_some()
    }

    /// bad - a BAD reply, counting toward MAX_BAD.
    pub(crate) fn bad(&mut self, tag: &str, why: &str) -> Vec<Action> {
        self.bad += 1;
        let mut v = vec![line(&format!("{tag} BAD {why}"))];
        if self.bad >= MAX_BAD {
            v.push(line("* BYE Too many invalid commands"));
            v.push(Action::Close);
        }
        v
    }

    /// command_error - a line that did not parse.
    pub fn parse_error(&mut self, e: Bad) -> Vec<Action> {
        let tag = e.tag.unwrap_or_else(|| "*".into());
        // An unknown charset is a NO with its code (RFC 3501 §6.4.4).
        if e.why.starts_with("[BADCHARSET") {
            return vec![line(&format!("{tag} NO {}", e.why))];
        }
        self.bad(&tag, &e.why)
    }

    /// feed - one complete command. A FETCH that returns much (whole
    /// messages) writes its responses to `stream` as it goes, ahead of
    /// the actions returned, so that a session never holds a mailbox's
    /// worth of replies; everything else comes back as actions.
    pub fn feed(&mut self, input: &[u8], stream: &mut dyn std::io::Write) -> Vec<Action> {
        let parsed = command::parse_with(input, self.utf8()).and_then(|(tag, cmd)| {
            match self.rev2_check(input, cmd) {
                Ok(c) => Ok((tag, c)),
                Err(why) => Err(Bad {
                    tag: Some(tag),
                    why,
                }),
            }
        });
        match parsed {
            Ok((tag, cmd)) => self.run(&tag, cmd, stream),
            Err(e) => {
                // A SEARCH with SAVE that fails empties `$` (RFC 5182 §2.1).
                if asks_save(input)
                    && let Some(s) = self.sel.as_mut()
                {
                    s.saved.clear();
                }
                self.parse_error(e)
            }
        }
    }

    /// run - dispatch by state; a first use of CONDSTORE in a selected
    /// mailbox says the mailbox's HIGHESTMODSEQ first (RFC 7162 §3.1).
    fn run(&mut self, tag: &str, cmd: Cmd, stream: &mut dyn std::io::Write) -> Vec<Action> {
        let cmd = match self.to_store_names(cmd) {
            Ok(c) => self.resolve_saved(c),
            Err(e) => return vec![line(&format!("{tag} NO {e}"))],
        };
        if self.state != State::NotAuthenticated && !self.condstore && enables_condstore(&cmd) {
            let first = self.condstore_on();
            let mut v = self.dispatch(tag, cmd, stream);
            if !first.is_empty() {
                v.insert(0, Action::Reply(first));
            }
            return v;
        }
        self.dispatch(tag, cmd, stream)
    }

    /// condstore_on - turn CONDSTORE on; the HIGHESTMODSEQ line to send
    /// when a mailbox is selected and it was off.
    pub(crate) fn condstore_on(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.condstore
            && let Some(s) = &self.sel
        {
            let _ = write!(
                out,
                "* OK [HIGHESTMODSEQ {}] Highest\r\n",
                s.folder.highest_modseq()
            );
        }
        self.condstore = true;
        out
    }

    /// dispatch - the command, by state.
    fn dispatch(&mut self, tag: &str, cmd: Cmd, stream: &mut dyn std::io::Write) -> Vec<Action> {
        match cmd {
            Cmd::Capability => {
                let c = self.capability();
                let mut v = vec![line(&format!("* CAPABILITY {c}"))];
                v.extend(self.done(tag, true, "OK CAPABILITY completed"));
                v
            }
            Cmd::Noop => self.done(tag, true, "OK NOOP completed"),
            Cmd::Logout => {
                self.state = State::Logout;
                vec![
                    line("* BYE Logging out"),
                    line(&format!("{tag} OK LOGOUT completed")),
                    Action::Close,
                ]
            }
            Cmd::StartTls => {
                if self.state != State::NotAuthenticated || self.opts.tls_active {
                    return self.bad(tag, "STARTTLS only before login, once");
                }
                if !self.opts.tls_available {
                    return vec![line(&format!("{tag} NO TLS is not configured"))];
                }
                vec![
                    line(&format!("{tag} OK Begin TLS negotiation now")),
                    Action::StartTls,
                ]
            }
            Cmd::Login { user, pass } => {
                if self.state != State::NotAuthenticated {
                    return self.bad(tag, "already logged in");
                }
                if !self.plaintext_ok() {
                    return vec![line(&format!(
                        "{tag} NO [PRIVACYREQUIRED] LOGIN is disabled without TLS; use STARTTLS"
                    ))];
                }
                vec![Action::Login {
                    tag: tag.to_string(),
                    method: "LOGIN",
                    authzid: String::new(),
                    user,
                    password: Password(pass),
                }]
            }
            Cmd::Authenticate { mech, initial } => {
                self.authenticate(tag, &mech, initial.as_deref())
            }
            // Valid in every state (RFC 2971 §3.1). No version: nothing
            // a client needs, and something an attacker would like.
            Cmd::Id => {
                let mut v = vec![line("* ID (\"name\" \"Posthorn\")")];
                v.extend(self.done(tag, true, "OK ID completed"));
                v
            }
            other if self.state == State::NotAuthenticated => {
                let _ = other;
                self.bad(tag, "log in first")
            }
            Cmd::Idle => {
                // Updates due now go out right after the go-ahead.
                let mut out = b"+ idling\r\n".to_vec();
                self.updates(&mut out);
                if self.lost {
                    return vec![Action::Reply(out), Action::Close];
                }
                vec![
                    Action::Reply(out),
                    Action::Idle {
                        tag: tag.to_string(),
                    },
                ]
            }
            Cmd::Compress(mech) => {
                // RFC 4978 3: DEFLATE only, once per session.
                if mech != "DEFLATE" {
                    return self.bad(tag, "unknown compression mechanism");
                }
                if self.compressed {
                    return vec![line(&format!(
                        "{tag} NO [COMPRESSIONACTIVE] DEFLATE is already active"
                    ))];
                }
                self.compressed = true;
                vec![line(&format!("{tag} OK DEFLATE active")), Action::Compress]
            }
            Cmd::GetQuotaRoot(mailbox) => {
                // Every folder shares the user's one root, "" (RFC 9208 4.3).
                let mut head = b"* QUOTAROOT ".to_vec();
                self.put_mailbox(&mut head, &mailbox);
                if self.quota.is_some() {
                    head.extend_from_slice(b" \"\"");
                }
                head.extend_from_slice(b"\r\n");
                let mut v = vec![Action::Reply(head)];
                if self.quota.is_some() {
                    v.push(self.quota_line());
                }
                v.extend(self.done(tag, true, "OK GETQUOTAROOT completed"));
                v
            }
            Cmd::GetQuota(root) => {
                if !root.is_empty() || self.quota.is_none() {
                    return vec![line(&format!("{tag} NO [NONEXISTENT] no such quota root"))];
                }
                let mut v = vec![self.quota_line()];
                v.extend(self.done(tag, true, "OK GETQUOTA completed"));
                v
            }
            Cmd::SetQuota => vec![line(&format!(
                "{tag} NO [NOPERM] quotas are set in the users file"
            ))],
            Cmd::Namespace => {
                // One personal namespace, the whole tree; no others.
                let sep = self.opts.separator;
                let mut v = vec![line(&format!("* NAMESPACE ((\"\" \"{sep}\")) NIL NIL"))];
                v.extend(self.done(tag, true, "OK NAMESPACE completed"));
                v
            }
            // Checking that nothing was selected is not required (RFC
            // 5161 §3.1).
            Cmd::Enable(caps) => self.enable(tag, &caps),
            Cmd::Select {
                mailbox,
                read_only,
                opts,
            } => self.select(tag, &mailbox, read_only, &opts),
            Cmd::Create(m) => {
                let r = self.tree().create(&m);
                self.result(tag, r, "CREATE")
            }
            Cmd::CreateUse(m, uses) => self.create_use(tag, &m, &uses),
            Cmd::MultiAppend { mailbox, messages } => self.multi_append(tag, &mailbox, &messages),
            Cmd::Delete(m) => {
                if self.sel.as_ref().is_some_and(|s| s.name == m) {
                    return vec![line(&format!("{tag} NO the mailbox is selected"))];
                }
                let r = self.tree().delete(&m);
                self.result(tag, r, "DELETE")
            }
            Cmd::Rename(a, b) => {
                let r = self.tree().rename(&a, &b);
                let oldname = match r {
                    Ok(()) => self.renamed(&a, b.trim_end_matches(folders::SEP)),
                    Err(_) => Vec::new(),
                };
                // The selected mailbox (or one below the renamed one)
                // moves with it and stays selected.
                if r.is_ok() && !folders::is_inbox(&a) {
                    let tree = self.tree();
                    if let Some(s) = self.sel.as_mut() {
                        let below = format!("{a}{}", folders::SEP);
                        let new = if s.name == a {
                            Some(b.trim_end_matches(folders::SEP).to_string())
                        } else {
                            s.name
                                .strip_prefix(&below)
                                .map(|rest| format!("{b}{}{rest}", folders::SEP))
                        };
                        if let Some(n) = new
                            && let Ok(dir) = tree.path(&n)
                        {
                            s.folder.dir = dir;
                            s.name = n;
                        }
                    }
                }
                let mut v = oldname;
                v.extend(self.result(tag, r, "RENAME"));
                v
            }
            Cmd::Subscribe(m, on) => {
                let r = self.tree().subscribe(&m, on);
                self.result(tag, r, if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" })
            }
            Cmd::List {
                reference,
                pattern,
                lsub,
            } => self.list(tag, &reference, &pattern, lsub),
            Cmd::ListExt(x) => self.list_ext(tag, &x),
            Cmd::Status { mailbox, items } => self.status(tag, &mailbox, &items),
            Cmd::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let one = command::AppendMsg {
                    flags,
                    date,
                    message,
                };
                self.multi_append(tag, &mailbox, std::slice::from_ref(&one))
            }
            other if self.state != State::Selected => {
                let _ = other;
                self.bad(tag, "no mailbox selected")
            }
            Cmd::Close => {
                if let Some(s) = self.sel.as_mut() {
                    let _ = s.folder.expunge(None);
                }
                self.sel = None;
                self.state = State::Authenticated;
                vec![line(&format!("{tag} OK CLOSE completed"))]
            }
            Cmd::Unselect => {
                self.sel = None;
                self.state = State::Authenticated;
                vec![line(&format!("{tag} OK UNSELECT completed"))]
            }
            Cmd::Check => self.done(tag, true, "OK CHECK completed"),
            Cmd::Expunge => self.expunge(tag, None),
            Cmd::UidExpunge(set) => self.expunge(tag, Some(&set)),
            Cmd::Search { uid, ret, key } => self.search(tag, uid, ret, &key),
            Cmd::Fetch {
                uid,
                set,
                atts,
                mods,
            } => self.fetch(tag, uid, &set, &atts, mods, stream),
            Cmd::Store {
                uid,
                set,
                unchanged_since,
                mode,
                silent,
                flags,
            } => self.store(tag, uid, &set, unchanged_since, mode, silent, &flags),
            Cmd::Copy { uid, set, mailbox } => self.copy(tag, uid, &set, &mailbox),
            Cmd::Move { uid, set, mailbox } => self.move_to(tag, uid, &set, &mailbox),
            Cmd::Sort { uid, ret, by, key } => self.sort(tag, uid, ret, &by, &key),
            Cmd::CancelUpdate(tags) => {
                self.cancel_update(&tags);
                self.done(tag, true, "OK CANCELUPDATE completed")
            }
            Cmd::Thread {
                uid,
                references: false,
                key,
            } => self.thread(tag, uid, &key),
            Cmd::Thread {
                uid,
                references: true,
                key,
            } => self.thread_references(tag, uid, &key),
        }
    }

    /// store_name - a client's mailbox name as the store spells it.
    fn store_name(&self, name: String) -> Result<String, String> {
        if self.opts.separator == '.' || folders::is_inbox(&name) {
            return self.store_charset(name);
        }
        if name.contains('.') {
            return Err("mailbox names may not contain '.'".into());
        }
        self.store_charset(name.replace(self.opts.separator, "."))
    }

    /// store_charset - a UTF-8 name (once enabled) in modified UTF-7.
    fn store_charset(&self, name: String) -> Result<String, String> {
        if self.utf8() {
            Self::utf8_store_name(&name)
        } else {
            Ok(name)
        }
    }

    /// append_limit - the largest message APPEND takes, also the cap on
    /// a decoded BINARY section.
    pub(crate) fn append_limit(&self) -> u64 {
        self.opts.append_limit
    }

    /// separator - the hierarchy separator clients see.
    pub(crate) fn separator(&self) -> char {
        self.opts.separator
    }

    /// client_name - a store name as the client sees it.
    pub(crate) fn client_name(&self, name: &str) -> String {
        let name = self.view_name(name);
        if self.opts.separator == '.' {
            name
        } else {
            name.replace('.', &self.opts.separator.to_string())
        }
    }

    /// to_store_names - the mailbox names in a command, in store form
    /// (LIST patterns are translated in `list`).
    fn to_store_names(&self, cmd: Cmd) -> Result<Cmd, String> {
        if self.opts.separator == '.' && !self.utf8() {
            return Ok(cmd);
        }
        Ok(match cmd {
            Cmd::Select {
                mailbox,
                read_only,
                opts,
            } => Cmd::Select {
                mailbox: self.store_name(mailbox)?,
                read_only,
                opts,
            },
            Cmd::Create(m) => Cmd::Create(self.store_name(m)?),
            Cmd::CreateUse(m, u) => Cmd::CreateUse(self.store_name(m)?, u),
            Cmd::MultiAppend { mailbox, messages } => Cmd::MultiAppend {
                mailbox: self.store_name(mailbox)?,
                messages,
            },
            Cmd::Delete(m) => Cmd::Delete(self.store_name(m)?),
            Cmd::Rename(a, b) => Cmd::Rename(self.store_name(a)?, self.store_name(b)?),
            Cmd::Subscribe(m, on) => Cmd::Subscribe(self.store_name(m)?, on),
            Cmd::Status { mailbox, items } => Cmd::Status {
                mailbox: self.store_name(mailbox)?,
                items,
            },
            Cmd::Append {
                mailbox,
                flags,
                date,
                message,
            } => Cmd::Append {
                mailbox: self.store_name(mailbox)?,
                flags,
                date,
                message,
            },
            Cmd::Copy { uid, set, mailbox } => Cmd::Copy {
                uid,
                set,
                mailbox: self.store_name(mailbox)?,
            },
            Cmd::Move { uid, set, mailbox } => Cmd::Move {
                uid,
                set,
                mailbox: self.store_name(mailbox)?,
            },
            other => other,
        })
    }

    /// tree - the user's folders (a path that opens nothing before login).
    pub(crate) fn tree(&self) -> Tree {
        self.tree.clone().unwrap_or(Tree {
            root: PathBuf::from("/nonexistent"),
        })
    }

    /// result - OK or NO for a mailbox operation.
    fn result(&mut self, tag: &str, r: Result<(), String>, what: &str) -> Vec<Action> {
        match r {
            Ok(()) => self.done(tag, true, &format!("OK {what} completed")),
            Err(e) => self.done(tag, true, &format!("NO {e}")),
        }
    }

    /// done - the untagged updates (when allowed), then the tagged reply.
    pub(crate) fn done(&mut self, tag: &str, updates: bool, text: &str) -> Vec<Action> {
        let mut out = Vec::new();
        if updates {
            self.updates(&mut out);
        }
        if self.lost {
            return vec![Action::Reply(out), Action::Close];
        }
        let _ = write!(out, "{tag} {text}\r\n");
        vec![Action::Reply(out)]
    }

    /// updates - sync the selected folder and tell the client what changed.
    pub(crate) fn updates(&mut self, out: &mut Vec<u8>) {
        let Some(s) = self.sel.as_mut() else { return };
        let before = crate::context::uids(s);
        let ch = match s.folder.sync() {
            Ok(c) => c,
            Err(e) => {
                posthorn_sys::warning!("{}: {e}", s.folder.dir.display());
                if e.to_string().contains("UIDVALIDITY") {
                    let _ = write!(out, "* BYE [UNAVAILABLE] the mailbox was replaced\r\n");
                    self.lost = true;
                }
                return;
            }
        };
        let gone: Vec<(u32, u32)> = ch
            .expunged
            .iter()
            .copied()
            .zip(ch.expunged_uids.iter().rev().copied())
            .collect();
        crate::context::removed(s, before.as_deref(), out);
        expunged(out, &gone, self.qresync);
        let mut changed = crate::context::arrived(s, before.as_deref());
        changed.extend(&ch.flags);
        if s.folder.keywords.all().count() != s.announced {
            flags_lines(out, &s.folder);
            s.announced = s.folder.keywords.all().count();
        }
        if ch.exists_changed {
            let _ = write!(out, "* {} EXISTS\r\n", s.folder.msgs.len());
        }
        let rev2 = self.enabled.contains(crate::rev2::REV2);
        if rev2 {
            // No \Recent in IMAP4rev2 (RFC 9051 §2.3.2).
            for m in &mut s.folder.msgs {
                m.recent = false;
            }
        } else if ch.exists_changed || ch.recent_changed {
            let r = s.folder.msgs.iter().filter(|m| m.recent).count();
            let _ = write!(out, "* {r} RECENT\r\n");
        }
        for uid in ch.flags {
            if let Some(i) = s.folder.msgs.iter().position(|m| m.uid == uid) {
                let _ = write!(out, "* {} FETCH (", i + 1);
                // RFC 9051 §7.5.2 (and RFC 7162 for QRESYNC's sake):
                // unsolicited FETCH carries the UID.
                if rev2 || self.condstore {
                    let _ = write!(out, "UID {uid} ");
                }
                flag_list(out, &s.folder, i);
                if self.condstore {
                    let _ = write!(out, " MODSEQ ({})", s.folder.msgs[i].modseq);
                }
                out.extend_from_slice(b")\r\n");
            }
        }
        self.context_changed(&changed, out);
    }

    /// idle_dir - the folder an IDLE watches, if one is selected.
    pub fn idle_dir(&self) -> Option<PathBuf> {
        self.sel.as_ref().map(|s| s.folder.dir.clone())
    }

    /// idle_seen - what the IDLE's watch saw, for the folder's next look.
    pub fn idle_seen(&mut self, seen: crate::watch::Seen) {
        if let Some(s) = self.sel.as_mut() {
            s.folder.saw(seen);
        }
    }

    /// idle_updates - during IDLE, what changed in the folder: the same
    /// untagged responses a NOOP gives (RFC 2177 §3).
    pub fn idle_updates(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.updates(&mut out);
        let mut v = vec![Action::Reply(out)];
        if self.lost {
            v.push(Action::Close);
        }
        v
    }

    /// idle_done - the line that ends IDLE: DONE, or a BAD for anything
    /// else (the IDLE is over either way).
    pub fn idle_done(&mut self, tag: &str, text: &[u8]) -> Vec<Action> {
        if text.eq_ignore_ascii_case(b"DONE") {
            self.done(tag, true, "OK IDLE terminated")
        } else {
            self.bad(tag, "expected DONE")
        }
    }

    /// authenticate - start a SASL exchange.
    fn authenticate(&mut self, tag: &str, mech: &str, initial: Option<&str>) -> Vec<Action> {
        if self.state != State::NotAuthenticated {
            return self.bad(tag, "already logged in");
        }
        let Some(m) = Mechanism::parse(mech) else {
            return vec![line(&format!("{tag} NO unsupported mechanism"))];
        };
        if !self.plaintext_ok() {
            return vec![line(&format!(
                "{tag} NO [PRIVACYREQUIRED] plaintext authentication is disabled without TLS"
            ))];
        }
        let (x, step) = Exchange::start(m, initial);
        self.sasl = Some((tag.to_string(), m, x));
        self.sasl_step(step)
    }

    /// sasl_line - one client line of a SASL exchange.
    pub fn sasl_line(&mut self, text: &[u8]) -> Vec<Action> {
        let Some((_, _, x)) = self.sasl.as_mut() else {
            return Vec::new();
        };
        let step = x.respond(&String::from_utf8_lossy(text));
        self.sasl_step(step)
    }

    /// sasl_step - act on one step of the SASL exchange.
    fn sasl_step(&mut self, step: Step) -> Vec<Action> {
        match step {
            Step::Challenge(c) => vec![line(&format!("+ {}", STANDARD.encode(c)))],
            Step::Done(cred) => {
                let Some((tag, m, _)) = self.sasl.take() else {
                    return Vec::new();
                };
                vec![Action::Login {
                    tag,
                    method: m.name(),
                    authzid: cred.authzid,
                    user: cred.user,
                    password: Password(cred.password),
                }]
            }
            Step::Cancelled => {
                let tag = self.sasl.take().map(|s| s.0).unwrap_or_default();
                vec![line(&format!("{tag} BAD authentication cancelled"))]
            }
            Step::Bad(why) => {
                let tag = self.sasl.take().map(|s| s.0).unwrap_or_default();
                self.bad(&tag, why)
            }
        }
    }

    /// set_quota - the user's quota, known at login.
    pub fn set_quota(&mut self, q: Option<Quota>) {
        self.quota = q;
    }

    /// quota_line - `* QUOTA "" (STORAGE used limit MESSAGE used limit)`,
    /// STORAGE in KiB as RFC 9208 5.1 says, counted over every folder
    /// now (from the file names' S= where they have it).
    fn quota_line(&self) -> Action {
        let (bytes, count) = self
            .tree
            .as_ref()
            .and_then(|t| posthorn_store::maildir::usage(&t.root).ok())
            .unwrap_or((0, 0));
        let mut parts = Vec::new();
        if let Some(q) = self.quota {
            if let Some(l) = q.storage {
                parts.push(format!("STORAGE {} {}", bytes.div_ceil(1024), l / 1024));
            }
            if let Some(l) = q.messages {
                parts.push(format!("MESSAGE {count} {l}"));
            }
        }
        line(&format!("* QUOTA \"\" ({})", parts.join(" ")))
    }

    /// logged_in - the caller checked the password and became the user:
    /// serve the Maildir at `root`.
    pub fn logged_in(&mut self, tag: &str, root: Result<PathBuf, String>) -> Vec<Action> {
        match root {
            Ok(r) => {
                if let Err(e) = folders::ensure_root(&r) {
                    posthorn_sys::warning!("{}: {e}", r.display());
                    return vec![line(&format!(
                        "{tag} NO [UNAVAILABLE] mailbox unavailable, try again later"
                    ))];
                }
                self.tree = Some(Tree { root: r });
                self.state = State::Authenticated;
                let c = self.capability();
                vec![line(&format!("{tag} OK [CAPABILITY {c}] Logged in"))]
            }
            Err(_) => vec![line(&format!(
                "{tag} NO [UNAVAILABLE] mailbox unavailable, try again later"
            ))],
        }
    }

    /// login_failed - a wrong password: a delay, then NO; the end after too many.
    pub fn login_failed(&mut self, tag: &str, temporary: bool) -> Vec<Action> {
        if temporary {
            return vec![line(&format!(
                "{tag} NO [UNAVAILABLE] temporary authentication failure"
            ))];
        }
        let (delay, close) = self.throttle.fail();
        let mut v = vec![
            Action::Delay(delay),
            line(&format!(
                "{tag} NO [AUTHENTICATIONFAILED] Authentication failed"
            )),
        ];
        if close {
            v.push(line("* BYE Too many authentication failures"));
            v.push(Action::Close);
        }
        v
    }

    /// select - SELECT or EXAMINE, with CONDSTORE or QRESYNC.
    fn select(
        &mut self,
        tag: &str,
        name: &str,
        read_only: bool,
        opts: &command::SelectOpts,
    ) -> Vec<Action> {
        // RFC 7162 §3.2.5: QRESYNC only once enabled.
        if opts.qresync.is_some() && !self.qresync {
            return self.bad(tag, "QRESYNC is not enabled");
        }
        if opts.condstore {
            self.condstore = true;
        }
        // A failed SELECT leaves nothing selected (RFC 3501 §6.3.1); the
        // one selected before is closed whatever becomes of this one,
        // and said so (RFC 7162 §3.2.11, RFC 9051 §7.1).
        self.state = State::Authenticated;
        let mut v = Vec::new();
        if self.sel.take().is_some() {
            v.push(line("* OK [CLOSED] Previous mailbox closed."));
        }
        v.extend(self.open_selected(tag, name, read_only, opts));
        v
    }

    /// open_selected - SELECT's work once the old mailbox is closed.
    fn open_selected(
        &mut self,
        tag: &str,
        name: &str,
        read_only: bool,
        opts: &command::SelectOpts,
    ) -> Vec<Action> {
        let dir = match self.tree().path(name) {
            Ok(d) => d,
            Err(e) => return vec![line(&format!("{tag} NO {e}"))],
        };
        let mut folder = match Folder::open(&dir, read_only) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return vec![line(&format!("{tag} NO [NONEXISTENT] no such mailbox"))];
            }
            Err(e) => {
                posthorn_sys::warning!("{}: {e}", dir.display());
                return vec![line(&format!(
                    "{tag} NO [UNAVAILABLE] cannot open the mailbox: {e}"
                ))];
            }
        };
        let mut out = Vec::new();
        flags_lines(&mut out, &folder);
        let n = folder.msgs.len();
        let recent = folder.msgs.iter().filter(|m| m.recent).count();
        let _ = write!(out, "* {n} EXISTS\r\n");
        // IMAP4rev2 has neither RECENT nor UNSEEN here (RFC 9051 §6.3.2)
        // but a LIST response for the mailbox.
        let rev2 = self.rev2();
        if rev2 {
            self.select_list(&mut out, name);
        } else {
            let _ = write!(out, "* {recent} RECENT\r\n");
        }
        if let Some(i) = folder
            .msgs
            .iter()
            .position(|m| m.flags.system & flags::SEEN == 0)
            .filter(|_| !rev2)
        {
            let _ = write!(out, "* OK [UNSEEN {}] First unseen.\r\n", i + 1);
        }
        let _ = write!(
            out,
            "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n",
            folder.validity, folder.next_uid
        );
        let _ = write!(
            out,
            "* OK [HIGHESTMODSEQ {}] Highest\r\n",
            folder.highest_modseq()
        );
        if let Some(q) = &opts.qresync
            && q.validity == folder.validity
        {
            if rev2 {
                folder.msgs.iter_mut().for_each(|m| m.recent = false);
            }
            qresync_lines(&mut out, &folder, q);
        }
        let _ = write!(
            out,
            "{tag} OK [{}] {} completed\r\n",
            if read_only { "READ-ONLY" } else { "READ-WRITE" },
            if read_only { "EXAMINE" } else { "SELECT" }
        );
        self.sel = Some(Selected {
            cache: None,
            saved: Vec::new(),
            contexts: Vec::new(),
            name: name.to_string(),
            announced: folder.keywords.all().count(),
            folder,
        });
        self.hide_recent();
        self.state = State::Selected;
        vec![Action::Reply(out)]
    }

    /// list - LIST or LSUB.
    fn list(&mut self, tag: &str, reference: &str, pattern: &str, lsub: bool) -> Vec<Action> {
        let mut out = Vec::new();
        let kind = if lsub { "LSUB" } else { "LIST" };
        let sep = self.opts.separator;
        if pattern.is_empty() && !lsub {
            let _ = write!(out, "* LIST (\\Noselect) \"{sep}\" \"\"\r\n");
        } else {
            let t = self.tree();
            // With `/` shown, no name has a `.`: a pattern with one
            // matches nothing; the rest is matched in store form.
            let visible = sep == '.' || !(reference.contains('.') || pattern.contains('.'));
            let (r, p) = (reference.replace(sep, "."), pattern.replace(sep, "."));
            let found = match (visible, lsub) {
                (false, _) => Vec::new(),
                (true, true) => self.lsub_matching(&t, &r, &p),
                (true, false) => self.list_matching(&t, &r, &p),
            };
            for l in found {
                let mut attrs = Vec::new();
                if l.noselect {
                    attrs.push("\\Noselect");
                }
                if !lsub {
                    attrs.push(if l.children {
                        "\\HasChildren"
                    } else {
                        "\\HasNoChildren"
                    });
                    attrs.extend(crate::specialuse::attributes(&t, &l.name));
                }
                let _ = write!(out, "* {kind} ({}) \"{sep}\" ", attrs.join(" "));
                self.put_mailbox(&mut out, &l.name);
                out.extend_from_slice(b"\r\n");
            }
        }
        let mut v = vec![Action::Reply(out)];
        v.extend(self.done(tag, true, &format!("OK {kind} completed")));
        v
    }

    /// status - STATUS of a mailbox (RFC 3501 §6.3.10).
    fn status(&mut self, tag: &str, name: &str, items: &[StatusItem]) -> Vec<Action> {
        match self.status_line(name, items) {
            Ok(out) => {
                let mut v = vec![Action::Reply(out)];
                v.extend(self.done(tag, true, "OK STATUS completed"));
                v
            }
            Err(e) => vec![line(&format!("{tag} NO {e}"))],
        }
    }

    /// status_line - the `* STATUS` response for a mailbox (STATUS, and
    /// LIST RETURN (STATUS ...)); Err is the NO text.
    pub(crate) fn status_line(&self, name: &str, items: &[StatusItem]) -> Result<Vec<u8>, String> {
        let dir = self.tree().path(name).map_err(str::to_string)?;
        let mut f = match Folder::open(&dir, true) {
            Ok(f) => f,
            Err(_) => return Err("[NONEXISTENT] no such mailbox".into()),
        };
        let mut parts = Vec::new();
        for it in items {
            parts.push(match it {
                StatusItem::Messages => format!("MESSAGES {}", f.msgs.len()),
                // Opened read-only: recent is what no session took yet;
                // for the selected mailbox, what this session holds.
                StatusItem::Recent => {
                    let held = self.sel.as_ref().filter(|s| s.folder.dir == dir);
                    let msgs = held.map_or(&f.msgs, |s| &s.folder.msgs);
                    format!("RECENT {}", msgs.iter().filter(|m| m.recent).count())
                }
                StatusItem::UidNext => format!("UIDNEXT {}", f.next_uid),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", f.validity),
                StatusItem::AppendLimit => format!("APPENDLIMIT {}", self.opts.append_limit),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", f.highest_modseq()),
                // W= in the name (deliver and APPEND write it), else the
                // file is read: exactly what FETCH RFC822.SIZE says.
                StatusItem::Size => format!(
                    "SIZE {}",
                    (0..f.msgs.len())
                        .map(|i| crate::messages::size_of(&mut f, i))
                        .sum::<u64>()
                ),
                StatusItem::Deleted => format!(
                    "DELETED {}",
                    f.msgs
                        .iter()
                        .filter(|m| m.flags.system & flags::DELETED != 0)
                        .count()
                ),
                StatusItem::Unseen => format!(
                    "UNSEEN {}",
                    f.msgs
                        .iter()
                        .filter(|m| m.flags.system & flags::SEEN == 0)
                        .count()
                ),
            });
        }
        let mut out = b"* STATUS ".to_vec();
        self.put_mailbox(&mut out, name);
        let _ = write!(out, " ({})\r\n", parts.join(" "));
        Ok(out)
    }

    /// parse_flags - flag names to Flags, keywords added to `folder_dir`'s
    /// keywords file; Err for an unknown system flag.
    pub(crate) fn parse_flags(
        names: &[String],
        kw: &mut flags::Keywords,
        dir: &std::path::Path,
    ) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut words = Vec::new();
        for n in names {
            if let Some(sys) = n.strip_prefix('\\') {
                match sys.to_ascii_lowercase().as_str() {
                    "seen" => f.system |= flags::SEEN,
                    "answered" => f.system |= flags::ANSWERED,
                    "flagged" => f.system |= flags::FLAGGED,
                    "deleted" => f.system |= flags::DELETED,
                    "draft" => f.system |= flags::DRAFT,
                    "recent" => {}
                    _ => return Err(format!("unknown system flag {n}")),
                }
            } else if flags::is_keyword(n) {
                words.push(n.clone());
            } else {
                return Err(format!("bad keyword {n}"));
            }
        }
        if !words.is_empty() {
            let idx = kw
                .ensure(dir, &words)
                .map_err(|e| format!("cannot store keywords: {e}"))?;
            for i in idx.into_iter().flatten() {
                f.keywords |= 1 << i;
            }
        }
        Ok(f)
    }
}

pub(crate) use posthorn_store::folder::special_use;

/// enables_condstore - whether a command is one of RFC 7162 §3.1's
/// "CONDSTORE enabling commands" (SELECT's parameter and ENABLE are
/// handled where they run).
fn enables_condstore(cmd: &Cmd) -> bool {
    match cmd {
        Cmd::Status { items, .. } => items.contains(&StatusItem::HighestModSeq),
        Cmd::Fetch { atts, mods, .. } => {
            mods.changed_since.is_some() || atts.contains(&command::Att::ModSeq)
        }
        Cmd::Store {
            unchanged_since, ..
        } => unchanged_since.is_some(),
        Cmd::Search { key, .. } | Cmd::Sort { key, .. } | Cmd::Thread { key, .. } => {
            crate::search::has_modseq(key)
        }
        _ => false,
    }
}

/// expunged - the client is told these (sequence number, UID)s are gone:
/// EXPUNGE each, highest first, or one VANISHED under QRESYNC (RFC 7162
/// §3.2.10).
pub(crate) fn expunged(out: &mut Vec<u8>, gone: &[(u32, u32)], qresync: bool) {
    if gone.is_empty() {
        return;
    }
    if qresync {
        let mut uids: Vec<u32> = gone.iter().map(|g| g.1).collect();
        uids.sort_unstable();
        let _ = write!(out, "* VANISHED {}\r\n", crate::messages::uid_set(&uids));
    } else {
        for (n, _) in gone {
            let _ = write!(out, "* {n} EXPUNGE\r\n");
        }
    }
}

/// qresync_lines - what a SELECT with QRESYNC tells of the changes since
/// the client's mod-sequence (RFC 7162 §3.2.5.1), within its known UIDs:
/// VANISHED (EARLIER), then each changed message's flags.
fn qresync_lines(out: &mut Vec<u8>, f: &Folder, q: &command::Qresync) {
    let max = f.next_uid.saturating_sub(1).max(1);
    let known = |u: u32| q.known.as_ref().is_none_or(|k| k.contains(u, max));
    let gone = f.modseqs.vanished(q.modseq, f.next_uid, &f.msgs, &known);
    if !gone.is_empty() {
        let _ = write!(
            out,
            "* VANISHED (EARLIER) {}\r\n",
            crate::messages::uid_set(&gone)
        );
    }
    for (i, m) in f.msgs.iter().enumerate() {
        if m.modseq > q.modseq && known(m.uid) {
            let _ = write!(out, "* {} FETCH (UID {} ", i + 1, m.uid);
            flag_list(out, f, i);
            let _ = write!(out, " MODSEQ ({}))\r\n", m.modseq);
        }
    }
}

/// flags_lines - `* FLAGS` and `* OK [PERMANENTFLAGS]` for a folder.
pub(crate) fn flags_lines(out: &mut Vec<u8>, f: &Folder) {
    let kws: Vec<&str> = f.keywords.all().collect();
    let mut list = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for k in &kws {
        list.push(' ');
        list.push_str(k);
    }
    let _ = write!(out, "* FLAGS ({list})\r\n");
    if f.read_only {
        let _ = write!(out, "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
    } else {
        let _ = write!(
            out,
            "* OK [PERMANENTFLAGS ({list} \\*)] Flags permitted.\r\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_saves_are_told() {
        assert!(asks_save(b"a SEARCH RETURN (SAVE) CHARSET X ALL"));
        assert!(asks_save(b"a uid search return (min save) FOO"));
        assert!(!asks_save(b"a SEARCH RETURN (MIN) SAVE"));
        assert!(!asks_save(b"a FETCH RETURN (SAVE)"));
        assert!(asks_save(b"a UID SORT RETURN (SAVE) (BOGUS) UTF-8 ALL"));
        assert!(!asks_save(b"a SEARCH SUBJECT SAVE"));
        assert!(!asks_save(b""));
    }
}
