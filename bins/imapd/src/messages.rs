//! messages - the commands on the selected mailbox's messages: FETCH,
//! STORE, SEARCH, COPY, MOVE, EXPUNGE and their UID forms, as more of the
//! session's state machine (session.rs). Message text is read only for
//! what a command needs: flags and sizes come from file names, envelopes
//! and structures from the folder's cache when it has them.
//!
//! Distrusts other processes: a message whose file vanished while a
//! command ran (another server expunged it) is left out of the answer
//! and the command ends in `OK [EXPUNGEISSUED]`, as Dovecot ends it:
//! RFC 2180 §4 allows OK or NO, and clients take NO for a failure of
//! the whole command. A message that cannot be read for another reason
//! is a NO.

use crate::binary;
use crate::cache::{self, Cache};
use crate::command::{self, Att, FetchMods, Key, Ret, SeqSet, StoreMode};
use crate::context;
use crate::fetch;
use crate::flags::{self, Flags};
use crate::folder::{self, Folder};
use crate::mime::{self, Part};
use crate::search;
use crate::session::{Action, Session, expunged, flags_lines, line};
use std::io::Write;
use std::rc::Rc;

/// FETCH output held before it is handed to the wire.
const STREAM_AT: usize = 256 * 1024;

/// One message's text, kept while a FETCH goes over several items.
#[derive(Debug)]
struct Loaded {
    data: Vec<u8>,
    root: Part,
}

impl Session {
    /// targets - indexes of the messages a set names (by UID or number).
    pub(crate) fn targets(&self, uid: bool, set: &SeqSet) -> Vec<usize> {
        let Some(s) = &self.sel else {
            return Vec::new();
        };
        let msgs = &s.folder.msgs;
        if uid {
            let max = msgs.last().map_or(0, |m| m.uid);
            msgs.iter()
                .enumerate()
                .filter(|(_, m)| set.contains(m.uid, max))
                .map(|(i, _)| i)
                .collect()
        } else {
            let n = msgs.len() as u32;
            (0..msgs.len())
                .filter(|&i| set.contains(i as u32 + 1, n))
                .collect()
        }
    }

    /// seq_in_range - a sequence number past the end is an error (RFC 3501 §6.4.8).
    pub(crate) fn bad_seq(&self, uid: bool, set: &SeqSet) -> bool {
        let n = self.sel.as_ref().map_or(0, |s| s.folder.msgs.len()) as u32;
        // A range with `*` is always valid (`5:*` of 3 messages is 3:5).
        !uid && set
            .0
            .iter()
            .any(|&(a, b)| a != command::STAR && b != command::STAR && a.max(b) > u64::from(n))
    }

    /// expunge - EXPUNGE, or UID EXPUNGE of the UIDs in `only` (RFC 4315).
    pub(crate) fn expunge(&mut self, tag: &str, only: Option<&SeqSet>) -> Vec<Action> {
        let Some(s) = self.sel.as_mut() else {
            return Vec::new();
        };
        if s.folder.read_only {
            return vec![line(&format!(
                "{tag} NO [READ-ONLY] the mailbox is read-only"
            ))];
        }
        let mut out = Vec::new();
        if only.is_some() {
            // A UID command: others' expunges may be told first.
            self.updates(&mut out);
        }
        let Some(s) = self.sel.as_mut() else {
            return Vec::new();
        };
        let max = s.folder.msgs.last().map_or(0, |m| m.uid);
        let uids: Option<Vec<u32>> = only.map(|set| {
            s.folder
                .msgs
                .iter()
                .map(|m| m.uid)
                .filter(|&u| set.contains(u, max))
                .collect()
        });
        let before = context::uids(s);
        match s.folder.expunge(uids.as_deref()) {
            Ok(gone) => {
                // REMOVEFROM before the EXPUNGEs that renumber (RFC 5267 §4.3.4).
                context::removed(s, before.as_deref(), &mut out);
                expunged(&mut out, &gone, self.qresync)
            }
            Err(e) => {
                posthorn_sys::warning!("expunge: {e}");
                return vec![line(&format!("{tag} NO cannot expunge: {e}"))];
            }
        }
        if !self.qresync {
            let mut v = vec![Action::Reply(out)];
            v.extend(self.done(tag, true, "OK EXPUNGE completed"));
            return v;
        }
        // VANISHED carries no mod-sequence: the tagged reply does, after
        // what others changed (RFC 7162 §3.2.10, as Dovecot).
        self.updates(&mut out);
        let h = self.sel.as_ref().map_or(1, |s| s.folder.highest_modseq());
        let mut v = vec![Action::Reply(out)];
        v.extend(self.done(
            tag,
            false,
            &format!("OK [HIGHESTMODSEQ {h}] EXPUNGE completed"),
        ));
        v
    }

    /// search - SEARCH and UID SEARCH.
    pub(crate) fn search(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<Ret>,
        key: &Key,
    ) -> Vec<Action> {
        if self.tag_in_use(tag, ret) {
            return self.bad(tag, "tag reuse: an update context has this tag");
        }
        let mut out = Vec::new();
        if uid {
            self.updates(&mut out);
        }
        let found = self.matching(key, false, false);
        if let (Some(r), Some(s)) = (ret, self.sel.as_mut())
            && r.save
        {
            s.saved = saved_part(r, found.iter().map(|h| h.uid).collect());
        }
        let idx: Vec<usize> = found.iter().map(|h| h.index).collect();
        let modseq = self.told_modseq(key, ret, &idx);
        let hits: Vec<u32> = found
            .iter()
            .map(|h| if uid { h.uid } else { h.index as u32 + 1 })
            .collect();
        match ret {
            // RFC 5182 §2.1: SAVE alone answers with no ESEARCH.
            Some(r)
                if r.save
                    && !(r.min || r.max || r.all || r.count || r.update)
                    && r.partial.is_none() =>
            {
                let mut v = vec![Action::Reply(out)];
                v.extend(self.done(tag, false, "OK SEARCH completed, result saved"));
                return v;
            }
            None => {
                out.extend_from_slice(b"* SEARCH");
                for h in hits {
                    let _ = write!(out, " {h}");
                }
                if let Some(m) = modseq {
                    let _ = write!(out, " (MODSEQ {m})");
                }
            }
            Some(r) => {
                let refused = self.update_refused(&mut out, tag, ret);
                context::esearch(&mut out, tag, uid, r, &hits);
                if r.update && !refused {
                    let rows = found.iter().map(|h| (Vec::new(), h.uid)).collect();
                    self.keep_context(tag, uid, None, key, rows);
                }
                if let Some(m) = modseq {
                    let _ = write!(out, " MODSEQ {m}");
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        let mut v = vec![Action::Reply(out)];
        v.extend(self.done(tag, false, "OK SEARCH completed"));
        v
    }

    /// told_modseq - with a MODSEQ key, the highest mod-sequence of what
    /// a SEARCH or SORT tells (RFC 7162 §3.1.5): of all the messages at
    /// `idx` (in the order told), or of the first and last when MIN or MAX
    /// alone are asked for.
    pub(crate) fn told_modseq(&self, key: &Key, ret: Option<Ret>, idx: &[usize]) -> Option<u64> {
        let s = self.sel.as_ref().filter(|_| search::has_modseq(key))?;
        let of = |i: &usize| s.folder.msgs[*i].modseq;
        match ret {
            Some(r) if !(r.all || r.count) && (r.min || r.max) => {
                let a = idx.first().filter(|_| r.min).map_or(0, of);
                let b = idx.last().filter(|_| r.max).map_or(0, of);
                Some(a.max(b))
            }
            _ => idx.iter().map(of).max(),
        }
        .filter(|&m| m > 0)
    }

    /// matching - the selected folder's messages `key` matches, in
    /// order, with their kept header fields (search::kept) when
    /// `keep_text` (SORT and THREAD want them), and their internal dates
    /// when `arrival` (else only where the key or a missing Date needs
    /// it: each costs a stat).
    pub(crate) fn matching(&mut self, key: &Key, keep_text: bool, arrival: bool) -> Vec<Hit> {
        let Some(s) = self.sel.as_mut() else {
            return Vec::new();
        };
        let need = keep_text || search::needs_text(key);
        // SORT and THREAD keep only header fields; the body is read for
        // BODY and TEXT keys alone, and not kept past the match. Header
        // fields come from the folder's cache where a key needs no more
        // than it keeps; messages read anyway fill it.
        let body = search::needs_body(key);
        let file = search::needs_file(key);
        let dated = arrival || search::needs_internal(key);
        if need && !file && s.cache.is_none() {
            s.cache = Some(Cache::load(&s.folder.dir, s.folder.validity));
        }
        let n = s.folder.msgs.len();
        let max_uid = s.folder.msgs.last().map_or(0, |m| m.uid);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut hits = Vec::new();
        for i in 0..n {
            let size = size_of(&mut s.folder, i);
            let text = match (need, file) {
                (false, _) => None,
                (true, false) => head_text(&mut s.folder, s.cache.as_mut(), i),
                (true, true) => read_text(&mut s.folder, s.cache.as_mut(), i, body).map(Rc::new),
            };
            // SORT and THREAD fall back on it for a missing Date.
            let internal = if dated || (keep_text && text.as_ref().is_none_or(|t| t.sent.is_none()))
            {
                s.folder.mtime(i)
            } else {
                0
            };
            let m = &s.folder.msgs[i];
            let subj = search::Subject {
                seq: i as u32 + 1,
                max_seq: n as u32,
                max_uid,
                msg: m,
                keywords: &s.folder.keywords,
                size,
                internal,
                now,
                text: text.as_deref(),
            };
            if search::matches(key, &subj) {
                hits.push(Hit {
                    index: i,
                    uid: m.uid,
                    size,
                    internal,
                    text: if keep_text {
                        text.map(|t| if file { Rc::new(search::kept(&t)) } else { t })
                    } else {
                        None
                    },
                });
            }
        }
        if let Some(c) = s.cache.as_mut() {
            let live: Vec<u32> = s.folder.msgs.iter().map(|m| m.uid).collect();
            c.save(&live);
        }
        hits
    }

    /// fetch - FETCH and UID FETCH.
    pub(crate) fn fetch(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        atts: &[Att],
        mods: FetchMods,
        stream: &mut dyn Write,
    ) -> Vec<Action> {
        if mods.vanished && !self.qresync {
            return self.bad(tag, "VANISHED needs ENABLE QRESYNC");
        }
        let mut out = Vec::new();
        if uid {
            self.updates(&mut out);
        } else if self.bad_seq(uid, set) {
            return self.bad(tag, "invalid message sequence number");
        }
        let mut targets = self.targets(uid, set);
        let condstore = self.condstore;
        let rev2 = self.enabled.contains(crate::rev2::REV2);
        let limit = self.append_limit();
        let Some(s) = self.sel.as_mut() else {
            return Vec::new();
        };
        let mut atts = atts.to_vec();
        if uid && !atts.contains(&Att::Uid) {
            atts.insert(0, Att::Uid);
        }
        // CHANGEDSINCE: only what changed after, with its MODSEQ; and with
        // VANISHED, first the UIDs of the set expunged after (RFC 7162
        // §3.1.4.1, §3.2.6).
        if let Some(since) = mods.changed_since {
            targets.retain(|&i| s.folder.msgs[i].modseq > since);
            if !atts.contains(&Att::ModSeq) {
                atts.push(Att::ModSeq);
            }
            if mods.vanished {
                let max = s.folder.next_uid.saturating_sub(1).max(1);
                let gone =
                    s.folder
                        .modseqs
                        .vanished(since, s.folder.next_uid, &s.folder.msgs, &|u| {
                            set.contains(u, max)
                        });
                if !gone.is_empty() {
                    let _ = write!(out, "* VANISHED (EARLIER) {}\r\n", uid_set(&gone));
                }
            }
        }
        let sets_seen = !s.folder.read_only
            && atts.iter().any(|a| match a {
                Att::Section { peek, .. } | Att::Binary { peek, .. } => !peek,
                Att::Rfc822 | Att::Rfc822Text => true,
                _ => false,
            });
        let needs_text = atts.iter().any(|a| {
            matches!(
                a,
                Att::Envelope
                    | Att::Body
                    | Att::BodyStructure
                    | Att::Rfc822
                    | Att::Rfc822Header
                    | Att::Rfc822Text
                    | Att::Section { .. }
                    | Att::Binary { .. }
                    | Att::BinarySize(_)
            )
        });
        // ENVELOPE, BODY, BODYSTRUCTURE and RFC822.SIZE alone come from
        // the folder's cache, filled from the messages it lacks.
        let cacheable = atts.iter().all(|a| {
            matches!(
                a,
                Att::Uid
                    | Att::ModSeq
                    | Att::Flags
                    | Att::InternalDate
                    | Att::Rfc822Size
                    | Att::Envelope
                    | Att::Body
                    | Att::BodyStructure
            )
        });
        let structure = atts
            .iter()
            .any(|a| matches!(a, Att::Envelope | Att::Body | Att::BodyStructure));
        let size_only = atts.contains(&Att::Rfc822Size) && !structure;
        if cacheable && (structure || size_only) && s.cache.is_none() {
            s.cache = Some(Cache::load(&s.folder.dir, s.folder.validity));
        }
        // \Seen is set first, all at once, so that the changes have their
        // mod-sequences before the responses show them.
        let mut newly_seen = Vec::new();
        if sets_seen {
            let renames = renames(&s.folder);
            for &i in &targets {
                if s.folder.msgs[i].flags.system & flags::SEEN == 0 {
                    let seen = |mut f: Flags| {
                        f.system |= flags::SEEN;
                        f
                    };
                    if let Ok(true) = s.folder.change_flags(i, seen) {
                        newly_seen.push(i);
                    }
                }
            }
            s.folder.note_modseqs(Some(&newly_seen), false);
            drop(renames);
        }
        let seen_now: Vec<u32> = newly_seen.iter().map(|&i| s.folder.msgs[i].uid).collect();
        let mut vanished = false;
        let mut unreadable = false;
        let mut refused: Option<binary::Refusal> = None;
        let mut unseen_again = Vec::new();
        for i in targets {
            let mut loaded: Option<Loaded> = None;
            let mut entry: Option<cache::Entry> = None;
            let uid_i = s.folder.msgs[i].uid;
            let want_entry =
                cacheable && (structure || (size_only && s.folder.msgs[i].size_hint().is_none()));
            if want_entry && let Some(c) = s.cache.as_ref() {
                entry = c.get(uid_i).cloned();
            }
            if want_entry && entry.is_none() {
                match s.folder.read(i) {
                    Ok(Some(d)) => {
                        let data = mime::to_crlf(&d);
                        let root = mime::parse(&data);
                        let mut e = cache::Entry {
                            size: data.len() as u64,
                            envelope: Vec::new(),
                            body: Vec::new(),
                            bodystructure: Vec::new(),
                        };
                        fetch::envelope(&mut e.envelope, &data[root.header.clone()]);
                        // Cached in IMAP4rev1's form; see `global_for_rev2`.
                        fetch::body(&mut e.body, &data, &root, false, false);
                        fetch::body(&mut e.bodystructure, &data, &root, true, false);
                        if let Some(c) = s.cache.as_mut() {
                            c.insert(uid_i, e.clone());
                            // Read anyway: SORT and THREAD need not again.
                            if !c.has_head(uid_i) {
                                c.insert_head(uid_i, search::kept(&search::decode_header(&d)));
                            }
                        }
                        entry = Some(e);
                    }
                    _ => {
                        vanished = true;
                        continue;
                    }
                }
            }
            // The cache holds IMAP4rev1's BODYSTRUCTURE; a message with a
            // message/global part looks different to IMAP4rev2, and is
            // read (no second cache for the rare message that has one).
            let global_for_rev2 = rev2
                && structure
                && entry
                    .as_ref()
                    .is_some_and(|e| memchr::memmem::find(&e.bodystructure, GLOBAL).is_some());
            if global_for_rev2 {
                entry = None;
            }
            if (needs_text && !cacheable) || global_for_rev2 {
                match s.folder.read(i) {
                    Ok(Some(d)) => {
                        let data = mime::to_crlf(&d).into_owned();
                        let root = mime::parse(&data);
                        loaded = Some(Loaded { data, root });
                    }
                    Ok(None) => {
                        vanished = true;
                        continue;
                    }
                    Err(e) => {
                        posthorn_sys::warning!(
                            "{}: {e}",
                            s.folder.path(&s.folder.msgs[i]).display()
                        );
                        unreadable = true;
                        continue;
                    }
                }
            }
            // BINARY items are decoded before anything is said about the
            // message: one that cannot be decoded is left out whole (no
            // half response, and the \Seen set above taken back), the
            // others are answered, and the tagged NO says why (RFC 3516
            // §4.2).
            let mut decoded: Vec<Option<Vec<u8>>> = Vec::new();
            if let Some(l) = loaded.as_ref() {
                for a in &atts {
                    let d = match a {
                        Att::Binary { section, .. } | Att::BinarySize(section) => {
                            binary::data(&l.data, &l.root, section, limit)
                        }
                        _ => {
                            decoded.push(None);
                            continue;
                        }
                    };
                    match d {
                        Ok(d) => decoded.push(Some(d)),
                        Err(r) => {
                            refused = Some(r);
                            break;
                        }
                    }
                }
            }
            if decoded.len() < atts.len() && loaded.is_some() {
                if newly_seen.contains(&i) {
                    unseen_again.push(i);
                }
                continue;
            }
            let flags_changed = newly_seen.contains(&i);
            let _ = write!(out, "* {} FETCH (", i + 1);
            for (n, a) in atts.iter().enumerate() {
                if n > 0 {
                    out.push(b' ');
                }
                match (a, decoded.get(n).and_then(Option::as_ref)) {
                    (
                        Att::Binary {
                            section, partial, ..
                        },
                        Some(d),
                    ) => {
                        binary::item(&mut out, section, *partial, d);
                    }
                    (Att::BinarySize(section), Some(d)) => binary::size_item(&mut out, section, d),
                    _ => item(
                        &mut out,
                        &mut s.folder,
                        i,
                        a,
                        loaded.as_ref(),
                        entry.as_ref(),
                        rev2,
                    ),
                }
            }
            if flags_changed && !atts.contains(&Att::Flags) {
                out.push(b' ');
                flag_list(&mut out, &s.folder, i);
            }
            // Under CONDSTORE every FETCH response with flags has MODSEQ.
            if condstore
                && (flags_changed || atts.contains(&Att::Flags))
                && !atts.contains(&Att::ModSeq)
            {
                let _ = write!(out, " MODSEQ ({})", s.folder.msgs[i].modseq);
            }
            out.extend_from_slice(b")\r\n");
            // Sent on rather than held: FETCH 1:* BODY[] of a big
            // mailbox must not sit in memory. (A failed write shows at
            // the next flush, which ends the session.)
            if out.len() >= STREAM_AT {
                let _ = stream.write_all(&out);
                out.clear();
            }
        }
        if !unseen_again.is_empty() {
            let renames = renames(&s.folder);
            for &i in &unseen_again {
                let unseen = |mut f: Flags| {
                    f.system &= !flags::SEEN;
                    f
                };
                let _ = s.folder.change_flags(i, unseen);
            }
            s.folder.note_modseqs(Some(&unseen_again), false);
            drop(renames);
        }
        if let Some(c) = s.cache.as_mut() {
            let live: Vec<u32> = s.folder.msgs.iter().map(|m| m.uid).collect();
            c.save(&live);
        }
        self.context_changed(&seen_now, &mut out);
        let mut v = vec![Action::Reply(out)];
        if let Some(r) = refused {
            v.extend(self.done(tag, uid, &r.reply()));
        } else if unreadable {
            v.extend(self.done(tag, uid, "NO [SERVERBUG] some messages could not be read"));
        } else if vanished {
            v.extend(self.done(tag, uid, EXPUNGED_MEANWHILE));
        } else {
            v.extend(self.done(tag, uid, "OK FETCH completed"));
        }
        v
    }

    /// store - STORE and UID STORE, with CONDSTORE's UNCHANGEDSINCE
    /// (RFC 7162 §3.1.3): a message changed after that mod-sequence is
    /// left as it is and named in MODIFIED; the check and the changes
    /// happen under the mod-sequence lock, so another session's STORE
    /// cannot come between them. (A change by a program that does not
    /// take the lock, a mail reader on the Maildir, is seen at the next
    /// look instead.)
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        names: &[String],
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if uid {
            self.updates(&mut out);
        } else if self.bad_seq(uid, set) {
            return self.bad(tag, "invalid message sequence number");
        }
        let targets = self.targets(uid, set);
        let condstore = self.condstore;
        let Some(s) = self.sel.as_mut() else {
            return Vec::new();
        };
        if s.folder.read_only {
            return vec![line(&format!(
                "{tag} NO [READ-ONLY] the mailbox is read-only"
            ))];
        }
        let dir = s.folder.dir.clone();
        let given = match Self::parse_flags(names, &mut s.folder.keywords, &dir) {
            Ok(f) => f,
            Err(e) => return self.bad(tag, &e),
        };
        if s.folder.keywords.all().count() != s.announced {
            flags_lines(&mut out, &s.folder);
            s.announced = s.folder.keywords.all().count();
        }
        let mut failed = false;
        let mut vanished = false;
        let change = |old: Flags| {
            let mut f = old;
            match mode {
                StoreMode::Add => {
                    f.system |= given.system;
                    f.keywords |= given.keywords;
                }
                StoreMode::Remove => {
                    f.system &= !given.system;
                    f.keywords &= !given.keywords;
                }
                StoreMode::Replace => {
                    // `P` has no IMAP flag: it stays.
                    f.system = given.system | (old.system & flags::PASSED);
                    f.keywords = given.keywords;
                }
            }
            f
        };
        // The uidlist lock before the mod-sequences' (the order IDLE's
        // arrivals take them in).
        let renames = renames(&s.folder);
        let lock = match unchanged_since {
            Some(_) => match s.folder.modseq_lock() {
                Ok(l) => Some(l),
                Err(e) => {
                    posthorn_sys::warning!("store: {e}");
                    return vec![line(&format!(
                        "{tag} NO [INUSE] the mailbox is busy, try again"
                    ))];
                }
            },
            None => None,
        };
        let mut modified = Vec::new();
        let mut done = Vec::new();
        let mut before = Vec::new();
        for i in targets {
            // What another session recorded counts, seen by us or not.
            let m = &s.folder.msgs[i];
            let now = m.modseq.max(s.folder.modseqs.recorded(m.uid).unwrap_or(0));
            if let Some(u) = unchanged_since
                && now > u
            {
                modified.push(if uid {
                    s.folder.msgs[i].uid
                } else {
                    i as u32 + 1
                });
                continue;
            }
            let was = s.folder.msgs[i].modseq;
            match s.folder.change_flags(i, change) {
                Ok(true) => {
                    done.push(i);
                    before.push(was);
                }
                Ok(false) => vanished = true,
                Err(e) => {
                    posthorn_sys::warning!("store: {e}");
                    failed = true;
                }
            }
        }
        s.folder.note_modseqs(Some(&done), lock.is_some());
        drop(lock);
        drop(renames);
        let changed: Vec<u32> = done.iter().map(|&i| s.folder.msgs[i].uid).collect();
        for (k, &i) in done.iter().enumerate() {
            let m = &s.folder.msgs[i];
            // .SILENT still says the new MODSEQ under CONDSTORE (§3.1.3).
            let bumped = condstore && m.modseq != before[k];
            if silent && !bumped {
                continue;
            }
            let _ = write!(out, "* {} FETCH (", i + 1);
            if !silent {
                flag_list(&mut out, &s.folder, i);
                out.push(b' ');
            }
            if uid || condstore {
                let _ = write!(out, "UID {} ", m.uid);
            }
            if condstore {
                let _ = write!(out, "MODSEQ ({}) ", m.modseq);
            }
            out.pop();
            out.extend_from_slice(b")\r\n");
        }
        // Flags that make messages join or leave a kept search.
        self.context_changed(&changed, &mut out);
        let mut v = vec![Action::Reply(out)];
        if failed {
            v.extend(self.done(
                tag,
                uid,
                "NO [SERVERBUG] the flags of some messages could not be changed",
            ));
        } else if !modified.is_empty() {
            modified.sort_unstable();
            let text = format!(
                "OK [MODIFIED {}] Conditional STORE failed",
                uid_set(&modified)
            );
            v.extend(self.done(tag, uid, &text));
        } else if vanished {
            v.extend(self.done(tag, uid, EXPUNGED_MEANWHILE));
        } else {
            v.extend(self.done(tag, uid, "OK STORE completed"));
        }
        v
    }

    /// copy - COPY and UID COPY.
    pub(crate) fn copy(&mut self, tag: &str, uid: bool, set: &SeqSet, name: &str) -> Vec<Action> {
        let c = match self.copy_out(tag, uid, set, name) {
            Ok(c) => c,
            Err(refusal) => return refusal,
        };
        let mut v = vec![Action::Reply(c.out)];
        if c.src.is_empty() {
            v.extend(self.done(tag, uid, "OK COPY completed (nothing to copy)"));
        } else {
            let text = format!(
                "OK [COPYUID {} {} {}] COPY completed",
                c.validity,
                uid_set(&c.src),
                uid_set(&c.new)
            );
            // Copies into the selected mailbox are announced (EXISTS)
            // with the answer; COPY may carry updates (RFC 3501 §7.4.1
            // forbids EXPUNGE only during FETCH, STORE and SEARCH).
            v.extend(self.done(tag, uid || c.into_selected, &text));
        }
        v
    }

    /// move_to - MOVE and UID MOVE (RFC 6851): a COPY, then \Deleted set
    /// on exactly the moved messages and an expunge of exactly those, so
    /// that a crash at any point leaves the message in both folders,
    /// never in neither (§4.4). Messages the client had marked \Deleted
    /// itself stay.
    pub(crate) fn move_to(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        name: &str,
    ) -> Vec<Action> {
        if self.sel.as_ref().is_some_and(|s| s.folder.read_only) {
            return vec![line(&format!(
                "{tag} NO [READ-ONLY] the mailbox is read-only"
            ))];
        }
        let c = match self.copy_out(tag, uid, set, name) {
            Ok(c) => c,
            Err(refusal) => return refusal,
        };
        let mut out = c.out;
        if c.src.is_empty() {
            let mut v = vec![Action::Reply(out)];
            v.extend(self.done(tag, uid, "OK MOVE completed (nothing to move)"));
            return v;
        }
        // The copies are durable and have their UIDs: say so first, as
        // the RFC's examples do, then expunge.
        let _ = write!(
            out,
            "* OK [COPYUID {} {} {}] Moved\r\n",
            c.validity,
            uid_set(&c.src),
            uid_set(&c.new)
        );
        let qresync = self.qresync;
        let Some(s) = self.sel.as_mut() else {
            return Vec::new();
        };
        let mut failed = false;
        let renames = renames(&s.folder);
        for i in 0..s.folder.msgs.len() {
            // Targets come in folder order, so the UIDs ascend.
            if c.src.binary_search(&s.folder.msgs[i].uid).is_err() {
                continue;
            }
            let deleted = |mut f: Flags| {
                f.system |= flags::DELETED;
                f
            };
            match s.folder.change_flags(i, deleted) {
                Ok(true) => {}
                // Expunged by another session meanwhile: moved all the same.
                Ok(false) => {}
                Err(e) => {
                    posthorn_sys::warning!("move: {e}");
                    failed = true;
                }
            }
        }
        drop(renames);
        let before = context::uids(s);
        match s.folder.expunge(Some(&c.src)) {
            Ok(gone) => {
                context::removed(s, before.as_deref(), &mut out);
                expunged(&mut out, &gone, qresync);
                if qresync {
                    let h = s.folder.highest_modseq();
                    let _ = write!(out, "* OK [HIGHESTMODSEQ {h}] Highest\r\n");
                }
            }
            Err(e) => {
                posthorn_sys::warning!("move: expunge: {e}");
                failed = true;
            }
        }
        let mut v = vec![Action::Reply(out)];
        if failed {
            // The copies stand; what could not be removed is still here,
            // and the client sees which from the EXPUNGEs it got.
            v.extend(self.done(
                tag,
                uid,
                "NO [SERVERBUG] copied, but not all could be removed from this mailbox",
            ));
        } else {
            // MOVE carries EXPUNGEs anyway; with the updates, a move into
            // the selected mailbox itself announces the copies (EXISTS,
            // RFC 6851 §4.4) in the same response.
            v.extend(self.done(tag, true, "OK MOVE completed"));
        }
        v
    }

    /// copy_out - the copying that COPY and MOVE share: the messages of
    /// `set` linked or copied into `name` and given UIDs there; Err is
    /// the refusal to send.
    fn copy_out(
        &mut self,
        tag: &str,
        uid: bool,
        set: &SeqSet,
        name: &str,
    ) -> Result<Copied, Vec<Action>> {
        let mut out = Vec::new();
        if uid {
            self.updates(&mut out);
        } else if self.bad_seq(uid, set) {
            return Err(self.bad(tag, "invalid message sequence number"));
        }
        let dest = match self.tree().path(name) {
            Ok(d) => d,
            Err(e) => return Err(vec![line(&format!("{tag} NO {e}"))]),
        };
        if !dest.join("cur").is_dir() {
            return Err(vec![line(&format!("{tag} NO [TRYCREATE] no such mailbox"))]);
        }
        let targets = self.targets(uid, set);
        let Some(s) = self.sel.as_mut() else {
            return Err(Vec::new());
        };
        // Keywords are letters per folder: map them by name.
        let mut dest_kw = flags::Keywords::read(&dest);
        let mut src = Vec::new();
        let mut src_uids = Vec::new();
        for i in targets {
            let m = &s.folder.msgs[i];
            let mut f = m.flags;
            let names: Vec<String> = s
                .folder
                .keywords
                .names_of(f.keywords)
                .map(str::to_string)
                .collect();
            f.keywords = 0;
            if !names.is_empty() {
                match dest_kw.ensure(&dest, &names) {
                    Ok(idx) => {
                        for j in idx.into_iter().flatten() {
                            f.keywords |= 1 << j;
                        }
                    }
                    Err(e) => posthorn_sys::warning!("copy keywords: {e}"),
                }
            }
            src.push((s.folder.path(m), f));
            src_uids.push(m.uid);
        }
        let into_selected = same_dir(&dest, &s.folder.dir);
        if src.is_empty() {
            return Ok(Copied {
                out,
                validity: 0,
                src: Vec::new(),
                new: Vec::new(),
                into_selected,
            });
        }
        match folder::copy(&src, &dest) {
            Ok((validity, new)) => Ok(Copied {
                out,
                validity,
                src: src_uids,
                new,
                into_selected,
            }),
            Err(e) => {
                posthorn_sys::warning!("copy to {}: {e}", dest.display());
                Err(vec![line(&format!("{tag} NO cannot copy: {e}"))])
            }
        }
    }
}

/// A message a search matched.
#[derive(Debug)]
pub(crate) struct Hit {
    /// Its index in the folder (sequence number - 1).
    pub(crate) index: usize,
    pub(crate) uid: u32,
    pub(crate) size: u64,
    /// Internal date, seconds since the epoch; 0 where `matching` was
    /// not asked for it and nothing needed it.
    pub(crate) internal: i64,
    /// Its kept header fields (search::kept), shared with the cache.
    pub(crate) text: Option<Rc<search::Text>>,
}

/// saved_part - what SAVE keeps of the matching UIDs (ascending): with
/// MIN or MAX but neither ALL nor COUNT only those (RFC 5182 §2.4),
/// else all.
fn saved_part(r: Ret, uids: Vec<u32>) -> Vec<u32> {
    if !(r.min || r.max) || r.all || r.count {
        return uids;
    }
    let mut v = Vec::new();
    if r.min {
        v.extend(uids.first());
    }
    if r.max {
        v.extend(uids.last());
    }
    v.dedup();
    v
}

/// What copy_out did.
#[derive(Debug)]
struct Copied {
    /// Untagged updates due before the answer.
    out: Vec<u8>,
    /// The destination's UIDVALIDITY.
    validity: u32,
    /// Source UIDs, in the order of the new ones.
    src: Vec<u32>,
    new: Vec<u32>,
    /// Whether the destination is the selected mailbox itself.
    into_selected: bool,
}

/// uid_set - UIDs in the order given as a sequence set, runs of
/// consecutive UIDs as ranges (`3:5,9`).
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j + 1] == uids[j].wrapping_add(1) {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            out.push_str(&format!("{}:{}", uids[i], uids[j]));
        } else {
            out.push_str(&uids[i].to_string());
        }
        i = j + 1;
    }
    out
}

/// flag_list - `FLAGS (...)` of message `i`.
pub(crate) fn flag_list(out: &mut Vec<u8>, f: &Folder, i: usize) {
    let m = &f.msgs[i];
    let mut v: Vec<&str> = flags::SYSTEM
        .iter()
        .filter(|(b, _)| m.flags.system & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if m.recent {
        v.push("\\Recent");
    }
    v.extend(f.keywords.names_of(m.flags.keywords));
    let _ = write!(out, "FLAGS ({})", v.join(" "));
}

/// size_of - RFC822.SIZE: `,W=` from the name, else counted.
pub(crate) fn size_of(f: &mut Folder, i: usize) -> u64 {
    if let Some(w) = f.msgs[i].size_hint() {
        return w;
    }
    match f.read(i) {
        Ok(Some(d)) => folder::crlf_size(&d),
        _ => 0,
    }
}

/// head_text - message `i`'s kept header fields (search::kept): from
/// the cache when it has them, else read, decoded and given to it; None
/// when the message is gone.
pub(crate) fn head_text(
    f: &mut Folder,
    c: Option<&mut Cache>,
    i: usize,
) -> Option<Rc<search::Text>> {
    let uid = f.msgs[i].uid;
    if let Some(t) = c.as_ref().and_then(|c| c.get_head(uid)) {
        return Some(Rc::clone(t));
    }
    let d = f.read(i).ok().flatten()?;
    let t = search::kept(&search::decode_header(&d));
    Some(match c {
        Some(c) => c.insert_head(uid, t),
        None => Rc::new(t),
    })
}

/// read_text - message `i`'s text read from its file, the body too when
/// `body`; its kept header fields given to the cache on the way, when
/// there is one. None when the message is gone.
pub(crate) fn read_text(
    f: &mut Folder,
    c: Option<&mut Cache>,
    i: usize,
    body: bool,
) -> Option<search::Text> {
    let d = f.read(i).ok().flatten()?;
    let t = if body {
        search::decode_stored(&d)
    } else {
        search::decode_header(&d)
    };
    let uid = f.msgs[i].uid;
    if let Some(c) = c
        && !c.has_head(uid)
    {
        c.insert_head(uid, search::kept(&t));
    }
    Some(t)
}

/// item - one FETCH data item.
fn item(
    out: &mut Vec<u8>,
    f: &mut Folder,
    i: usize,
    a: &Att,
    l: Option<&Loaded>,
    e: Option<&cache::Entry>,
    rev2: bool,
) {
    let empty = Vec::new();
    let (data, root) = match l {
        Some(l) => (&l.data, Some(&l.root)),
        None => (&empty, None),
    };
    let section = |path: Vec<u32>, text| command::Section { path, text };
    match a {
        Att::Uid => {
            let _ = write!(out, "UID {}", f.msgs[i].uid);
        }
        Att::Flags => flag_list(out, f, i),
        Att::ModSeq => {
            let _ = write!(out, "MODSEQ ({})", f.msgs[i].modseq);
        }
        Att::InternalDate => {
            let t = f.mtime(i);
            let _ = write!(out, "INTERNALDATE {}", fetch::internal_date(t));
        }
        Att::Rfc822Size => {
            let n = match (e, l) {
                (Some(e), _) => e.size,
                (None, Some(l)) => l.data.len() as u64,
                (None, None) => size_of(f, i),
            };
            let _ = write!(out, "RFC822.SIZE {n}");
        }
        Att::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            if let Some(e) = e {
                out.extend_from_slice(&e.envelope);
                return;
            }
            match root {
                Some(r) => fetch::envelope(out, &data[r.header.clone()]),
                None => fetch::envelope(out, b""),
            }
        }
        Att::Body | Att::BodyStructure => {
            let ext = *a == Att::BodyStructure;
            out.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
            if let Some(e) = e {
                out.extend_from_slice(if ext { &e.bodystructure } else { &e.body });
                return;
            }
            if let Some(r) = root {
                fetch::body(out, data, r, ext, rev2);
            }
        }
        Att::Rfc822 | Att::Rfc822Header | Att::Rfc822Text => {
            let (name, text) = match a {
                Att::Rfc822 => ("RFC822", None),
                Att::Rfc822Header => ("RFC822.HEADER", Some(command::SectionText::Header)),
                _ => ("RFC822.TEXT", Some(command::SectionText::Text)),
            };
            let d = match root {
                Some(r) => fetch::section_data(data, r, &section(vec![], text)),
                None => Vec::new(),
            };
            let _ = write!(out, "{name} {{{}}}\r\n", d.len());
            binary::extend_without_nul(out, &d);
        }
        // Decoded by the caller; here only when the message vanished.
        Att::Binary {
            section, partial, ..
        } => binary::item(out, section, *partial, b""),
        Att::BinarySize(section) => binary::size_item(out, section, b""),
        Att::Section {
            section: s,
            partial,
            ..
        } => {
            let d = match root {
                Some(r) => fetch::section_data(data, r, s),
                None => Vec::new(),
            };
            out.extend_from_slice(fetch::section_name(s).as_bytes());
            let d: &[u8] = match partial {
                Some((start, len)) => {
                    let _ = write!(out, "<{start}>");
                    let a = (*start as usize).min(d.len());
                    let b = a.saturating_add(*len as usize).min(d.len());
                    &d[a..b]
                }
                None => &d,
            };
            let _ = write!(out, " {{{}}}\r\n", d.len());
            binary::extend_without_nul(out, d);
        }
    }
}

/// same_dir - whether two folder paths are one directory (the selected
/// mailbox may be named by another path, e.g. INBOX and its root).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

/// How a message/global part shows in IMAP4rev1's BODYSTRUCTURE.
const GLOBAL: &[u8] = b"\"MESSAGE\" \"GLOBAL\"";

/// The answer to a FETCH or STORE some of whose messages another server
/// expunged meanwhile: done for the rest (RFC 5530's code with OK).
const EXPUNGED_MEANWHILE: &str = "OK [EXPUNGEISSUED] Some messages were expunged";

/// renames - the folder's rename lock (Folder::rename_lock) for a batch
/// of flag changes; without it (a lock held too long by another program)
/// the changes are still made, with a warning.
fn renames(f: &Folder) -> Option<crate::uidlist::DotLock> {
    match f.rename_lock() {
        Ok(l) => l,
        Err(e) => {
            posthorn_sys::warning!("{}: {e}; renaming without it", f.dir.display());
            None
        }
    }
}
