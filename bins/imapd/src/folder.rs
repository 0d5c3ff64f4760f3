//! folder - one Maildir folder as IMAP sees it: its messages in UID order
//! with flags from their file names, UIDs from `dovecot-uidlist`, new/
//! moved to cur/, \Recent claimed by exactly one session, and the changes
//! other processes made since the last look (expunged files, renamed
//! flags, new mail). Also the writes: flag renames, expunge, append, copy.
//!
//! Deviations and choices, as Dovecot's comments do:
//! - \Recent: `posthorn-recent` in the folder holds the first UID no
//!   session has claimed yet; a read-write SELECT claims the UIDs from
//!   there up under the uidlist lock, so exactly one session sees each
//!   message as recent. (Dovecot keeps this in its index.)
//! - A file missing from one directory scan is looked for in a second
//!   scan, repeated until new/ and cur/ hold still, before it counts as
//!   expunged, and only then is its uidlist entry dropped: a rename by
//!   another process (new/ to cur/, a flag change) may hide it from one
//!   readdir, and Dovecot on the same folder renames all the time.
//! - INTERNALDATE is the file's mtime, as in Dovecot; APPEND sets it.
//! - In IDLE, the watch's events name what changed: when all they name
//!   is mail arriving in new/ (and our own moves to cur/), only those
//!   files are looked at and their UIDs appended to the uidlist, as
//!   Dovecot does (folder/arrivals.rs); anything else is a full look.
//!
//! Distrusts the directory: names that are not plain Maildir names are
//! skipped, and every file is opened without following symlinks.

use crate::flags::{Flags, Keywords};
use crate::listing;
use crate::modseq::ModSeqs;
use crate::uidlist::{self, DotLock, NameMap, UidList, base_name};
use crate::watch::Seen;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub const RECENT_FILE: &str = "posthorn-recent";

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub uid: u32,
    /// The current file name in cur/ (or new/ when `in_new`).
    pub name: String,
    pub in_new: bool,
    pub flags: Flags,
    pub recent: bool,
    /// Its mod-sequence (RFC 7162), set from modseq.rs after each look.
    pub modseq: u64,
}

impl Msg {
    /// base - the base name, the message's identity.
    pub fn base(&self) -> &str {
        base_name(&self.name)
    }

    /// rel - the file relative to the folder.
    pub fn rel(&self) -> String {
        format!("{}/{}", if self.in_new { "new" } else { "cur" }, self.name)
    }

    /// info_other - letters in the name's info we do not model.
    fn info(&self) -> &str {
        self.name.split_once(":2,").map_or("", |(_, i)| i)
    }

    /// size_hint - `,W=` (the CRLF size) from the name, if there.
    pub fn size_hint(&self) -> Option<u64> {
        self.base()
            .split(',')
            .find_map(|f| f.strip_prefix("W="))
            .and_then(|w| w.parse().ok())
    }
}

/// What changed since the last scan, for the untagged responses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Sequence numbers, highest first, so each stays valid as sent.
    pub expunged: Vec<u32>,
    /// The same messages' UIDs (for QRESYNC's VANISHED), ascending.
    pub expunged_uids: Vec<u32>,
    /// UIDs whose flags another process changed.
    pub flags: Vec<u32>,
    pub exists_changed: bool,
    pub recent_changed: bool,
}

/// A folder's view for one session.
#[derive(Debug)]
pub struct Folder {
    pub dir: PathBuf,
    pub read_only: bool,
    pub validity: u32,
    pub next_uid: u32,
    pub msgs: Vec<Msg>,
    pub keywords: Keywords,
    /// The folder's stamps after the last full look, when stable: while
    /// they stay so, nothing changed (listing.rs).
    stamps: Option<listing::Stamps>,
    /// The mod-sequences (modseq.rs).
    pub modseqs: ModSeqs,
    /// What an IDLE's watch saw since the last look, for the next one.
    seen: Option<Seen>,
    /// Our own moves new/ -> cur/ in the last look (new/ name, cur/
    /// name): the watch reports them, and they need no look.
    moved: Vec<(String, String)>,
}

mod arrivals;

/// valid_name - a file name that may be a message: no dot files, no `/`.
fn valid_name(n: &str) -> bool {
    !n.is_empty() && !n.starts_with('.') && !n.contains('/') && n.len() < 256
}

/// scan_dir - base name to (in new/, file name) for new/ then cur/; new/
/// first so that a message moved to cur/ while we read is seen there.
fn scan_dir(dir: &Path) -> io::Result<NameMap<String, (bool, String)>> {
    let mut out = NameMap::default();
    for (sub, in_new) in [("new", true), ("cur", false)] {
        let rd = match std::fs::read_dir(dir.join(sub)) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for ent in rd {
            let ent = ent?;
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            if valid_name(&name) {
                out.insert(base_name(&name).to_string(), (in_new, name));
            }
        }
    }
    Ok(out)
}

/// scan_stable - scan_dir, again until new/ and cur/ did not change while
/// it read them (at most four times): a file renamed during a read can
/// be missed by it. The last scan is returned however it went; the
/// caller keeps what either look found.
fn scan_stable(dir: &Path) -> io::Result<NameMap<String, (bool, String)>> {
    let mut tries = 0;
    loop {
        let before = dir_stamps(dir);
        let files = scan_dir(dir)?;
        tries += 1;
        if dir_stamps(dir) == before || tries == 4 {
            return Ok(files);
        }
    }
}

/// dir_stamps - new/'s and cur/'s modification and change times, to the
/// nanosecond: any create, rename or unlink in them changes these.
fn dir_stamps(dir: &Path) -> [Option<(i64, i64, i64, i64)>; 2] {
    use std::os::unix::fs::MetadataExt;
    ["new", "cur"].map(|s| {
        std::fs::metadata(dir.join(s))
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
    })
}

/// new_validity - a UIDVALIDITY for a new list: the time, but above the
/// last one given in this Maildir root (`dovecot-uidvalidity`, 8 hex
/// digits as Dovecot writes it), so a folder made, deleted and made
/// again within a second never repeats one.
pub fn new_validity(root: &Path) -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1);
    let file = root.join("dovecot-uidvalidity");
    let Ok(lock) = DotLock::acquire(root, "dovecot-uidvalidity") else {
        return now;
    };
    let last = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim(), 16).ok())
        .unwrap_or(0);
    let v = now.max(last.saturating_add(1)).max(1);
    let _ = lock.replace(format!("{v:08x}").as_bytes());
    v
}

/// root_of - the Maildir root a folder lives in (its parent for `.Sub`).
fn root_of(dir: &Path) -> &Path {
    match dir.file_name().and_then(|n| n.to_str()) {
        Some(n) if n.starts_with('.') => dir.parent().unwrap_or(dir),
        _ => dir,
    }
}

/// read_recent - the first UID not yet claimed as \Recent.
fn read_recent(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join(RECENT_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

/// Where the uidlist stands after a sync.
struct Listed {
    list: UidList,
    recent_from: u32,
}

impl Folder {
    /// open - the folder at `dir`, scanned; `read_only` for EXAMINE.
    pub fn open(dir: &Path, read_only: bool) -> io::Result<Folder> {
        if !dir.join("cur").is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such folder"));
        }
        let mut f = Folder {
            dir: dir.to_path_buf(),
            read_only,
            validity: 0,
            next_uid: 1,
            msgs: Vec::new(),
            keywords: Keywords::default(),
            stamps: None,
            modseqs: ModSeqs::default(),
            seen: None,
            moved: Vec::new(),
        };
        if !read_only {
            sweep_tmp(dir);
        }
        f.modseqs.shown = dir.join(RECENT_FILE).exists() || dir.join("dovecot.index").exists();
        // A big folder unchanged since a session wrote its listing is
        // read from that, unless this session has mail to move from new/
        // or \Recent to claim.
        if let Some(st) = listing::stamps(dir)
            && let Some((validity, next, msgs)) = listing::read(dir, &st)
            && (read_only || (read_recent(dir) >= next && msgs.iter().all(|m| !m.in_new)))
        {
            f.validity = validity;
            f.next_uid = next;
            f.msgs = msgs;
            // EXAMINE shows what is recent without taking it (RFC 3501
            // §6.3.2): what no session has claimed yet.
            let from = read_recent(dir);
            for m in &mut f.msgs {
                m.recent = m.uid >= from;
            }
            f.keywords = Keywords::read(dir);
            f.stamps = Some(st);
            f.note_modseqs(None, false);
            return Ok(f);
        }
        f.sync()?;
        if f.msgs.len() >= listing::MIN_MESSAGES
            && let Some(st) = &f.stamps
        {
            listing::write(dir, st, f.validity, f.next_uid, &f.msgs);
        }
        Ok(f)
    }

    /// sync_list - bring the uidlist up to date with the files: give
    /// UIDs to new files (in name order: delivery order) and, for a
    /// read-write session, claim \Recent. The lock is taken only when
    /// something must be written.
    fn sync_list(
        &self,
        files: &NameMap<String, (bool, String)>,
        claim_recent: bool,
    ) -> io::Result<Listed> {
        let current = uidlist::read(&self.dir)?;
        let unknown = |l: &Option<UidList>| -> bool {
            match l {
                None => true,
                Some(l) => {
                    let known = l.by_base();
                    files.keys().any(|b| !known.contains_key(b.as_str()))
                }
            }
        };
        let next = current.as_ref().map_or(1, |l| l.next_uid);
        let recent_from = read_recent(&self.dir);
        let must_claim = claim_recent && recent_from < next;
        // A read-write session takes \Recent; a read-only one (EXAMINE,
        // STATUS) sees as recent what no session has taken yet, and
        // takes nothing (RFC 3501 §6.3.2). Nothing to take means every
        // listed UID is below recent_from.
        if !unknown(&current) && !must_claim {
            let list = current.ok_or_else(|| io::Error::other("no uidlist"))?;
            return Ok(Listed { list, recent_from });
        }
        let lock = DotLock::acquire(&self.dir, uidlist::FILE)?;
        // A folder without a list gets one now, even empty: its
        // UIDVALIDITY must stay what this session announces.
        let (mut list, mut wrote) = match uidlist::read(&self.dir)? {
            Some(l) => (l, false),
            None => (UidList::fresh(new_validity(root_of(&self.dir))), true),
        };
        if unknown(&Some(list.clone())) {
            let known: std::collections::HashSet<
                String,
                std::hash::BuildHasherDefault<uidlist::Fx>,
            > = list.entries.iter().map(|e| e.base().to_string()).collect();
            let mut fresh: Vec<&String> = files
                .keys()
                .filter(|b| !known.contains(b.as_str()))
                .collect();
            fresh.sort_by(|a, b| delivery_order(a, b));
            for b in fresh {
                let name = &files[b].1;
                if list.add(name).is_none() {
                    return Err(io::Error::other("UIDs exhausted"));
                }
            }
            // Entries whose files are gone for good are dropped, as Dovecot
            // does when it rewrites; next_uid keeps their UIDs used. Gone
            // for good: missing from a second look too, one that saw new/
            // and cur/ unchanged from start to end. A directory read while
            // another program renames in it (flags, new/ to cur/) may miss
            // a file altogether; dropping its entry would give it a new
            // UID, which other servers and every client then see as an
            // expunge and a new message.
            if list.entries.iter().any(|e| !files.contains_key(e.base())) {
                let again = scan_stable(&self.dir)?;
                list.entries
                    .retain(|e| files.contains_key(e.base()) || again.contains_key(e.base()));
            }
            wrote = true;
        }
        let mut recent_from_out = if claim_recent {
            u32::MAX
        } else {
            read_recent(&self.dir)
        };
        if claim_recent {
            let from = read_recent(&self.dir);
            if from < list.next_uid {
                posthorn_sys::fsio::write_atomic(
                    &self.dir.join(RECENT_FILE),
                    format!("{}\n", list.next_uid).as_bytes(),
                    0o600,
                )?;
                recent_from_out = from;
            }
        }
        if wrote {
            lock.replace(&list.render())?;
        }
        Ok(Listed {
            list,
            recent_from: recent_from_out,
        })
    }

    /// saw - what an IDLE's watch saw since the last look (watch.rs),
    /// for the next look: it may then read only what the events name.
    pub fn saw(&mut self, seen: Seen) {
        self.seen = Some(seen);
    }

    /// sync - look at the folder again and return what changed.
    pub fn sync(&mut self) -> io::Result<Changes> {
        let moved = std::mem::take(&mut self.moved);
        if let Some(seen) = self.seen.take()
            && let Some(ch) = self.sync_arrivals(&seen, moved)?
        {
            return Ok(ch);
        }
        if let Some(last) = &self.stamps
            && listing::stamps(&self.dir).as_ref() == Some(last)
        {
            return Ok(Changes::default());
        }
        self.stamps = None;
        let before = listing::stamps(&self.dir);
        let ch = self.full_sync()?;
        // Trusted next time only if nothing, ourselves included, changed
        // the folder while we looked or lately (listing.rs says why): a
        // look slower than the stable time could otherwise miss a change
        // the stamps already include.
        let after = listing::stamps(&self.dir);
        self.stamps = match (before, after) {
            (Some(b), Some(a)) if a.stable && a.same(&b) => Some(a),
            _ => None,
        };
        self.note_modseqs(None, false);
        Ok(ch)
    }

    /// note_modseqs - record what changed (in the messages at `only`, or
    /// in all after a full look) and give every message its mod-sequence;
    /// `held` when the caller holds `modseq_lock`. A failure is logged:
    /// the mail is still served, with the mod-sequences last recorded.
    pub fn note_modseqs(&mut self, only: Option<&[usize]>, held: bool) {
        if let Err(e) = self.modseqs.record(
            &self.dir,
            self.validity,
            self.next_uid,
            &mut self.msgs,
            only,
            held,
        ) {
            posthorn_sys::warning!("{}: mod-sequences: {e}", self.dir.display());
            // Still no 0 shown (RFC 7162: mod-sequences are positive).
            let highest = self.highest_modseq();
            for m in self.msgs.iter_mut().filter(|m| m.modseq == 0) {
                m.modseq = highest;
            }
        }
    }

    /// modseq_lock - hold the mod-sequences still (UNCHANGEDSINCE checks
    /// and changes under one lock); the folder's view is brought up to
    /// what other sessions recorded.
    pub fn modseq_lock(&mut self) -> io::Result<DotLock> {
        let l = DotLock::acquire(&self.dir, crate::modseq::FILE)?;
        self.note_modseqs(Some(&[]), true);
        Ok(l)
    }

    /// highest_modseq - HIGHESTMODSEQ.
    pub fn highest_modseq(&self) -> u64 {
        self.modseqs.highest.max(1)
    }

    /// full_sync - read the directories and the uidlist.
    fn full_sync(&mut self) -> io::Result<Changes> {
        let mut files = scan_dir(&self.dir)?;
        // A message we knew but could not find: look once more, until
        // the directories hold still, before calling it expunged (see
        // the module comment and scan_stable).
        if self.msgs.iter().any(|m| !files.contains_key(m.base())) {
            for (k, v) in scan_stable(&self.dir)? {
                files.entry(k).or_insert(v);
            }
        }
        if !self.read_only {
            self.move_new(&mut files);
        }
        let listed = self.sync_list(&files, !self.read_only)?;
        let list = listed.list;
        // A listed message whose file the scan did not find: gone, or
        // hidden from the scan by a rename; look again before leaving it
        // out (a session that never knew it would not tell an expunge,
        // it would just not show the message).
        if list.entries.iter().any(|e| !files.contains_key(e.base())) {
            for (k, v) in scan_stable(&self.dir)? {
                files.entry(k).or_insert(v);
            }
        }
        let mut ch = Changes::default();
        if self.validity != 0 && list.validity != self.validity {
            // The list was replaced under us: nothing we said holds.
            return Err(io::Error::other("UIDVALIDITY changed"));
        }
        self.validity = list.validity;
        if list.next_uid != self.next_uid {
            self.next_uid = list.next_uid;
        }
        let kw = Keywords::read(&self.dir);
        if kw != self.keywords {
            self.keywords = kw;
        }
        // Expunged: known messages whose files are gone.
        for i in (0..self.msgs.len()).rev() {
            if !files.contains_key(self.msgs[i].base()) {
                ch.expunged.push(i as u32 + 1);
                ch.expunged_uids.push(self.msgs[i].uid);
                self.msgs.remove(i);
            }
        }
        ch.expunged_uids.reverse();
        // Flag changes by others.
        for m in &mut self.msgs {
            if let Some((in_new, name)) = files.get(m.base())
                && (*name != m.name || *in_new != m.in_new)
            {
                let flags = Flags::from_info(name.split_once(":2,").map_or("", |x| x.1));
                m.name = name.clone();
                m.in_new = *in_new;
                if flags != m.flags {
                    m.flags = flags;
                    ch.flags.push(m.uid);
                }
            }
        }
        // New messages: listed UIDs above the last we know.
        // One message per file: a list that names a file twice (another
        // tool's mistake) gives it the first UID only.
        let last = self.msgs.last().map_or(0, |m| m.uid);
        let before = self.msgs.len();
        let mut added = Vec::new();
        if list.entries.last().is_some_and(|e| e.uid > last) {
            type Set<'a> =
                std::collections::HashSet<&'a str, std::hash::BuildHasherDefault<uidlist::Fx>>;
            let mut have: Set = self.msgs.iter().map(Msg::base).collect();
            for e in list.entries.iter().filter(|e| e.uid > last) {
                let Some((in_new, name)) = files.get(e.base()) else {
                    continue;
                };
                if !have.insert(e.base()) {
                    continue;
                }
                let recent = e.uid >= listed.recent_from;
                ch.recent_changed |= recent;
                added.push(Msg {
                    uid: e.uid,
                    name: name.clone(),
                    in_new: *in_new,
                    flags: Flags::from_info(name.split_once(":2,").map_or("", |x| x.1)),
                    recent,
                    modseq: 0,
                });
            }
        }
        self.msgs.extend(added);
        ch.exists_changed = self.msgs.len() != before || !ch.expunged.is_empty();
        Ok(ch)
    }

    /// rename_lock - the folder's uidlist lock, held while we rename
    /// messages' files (flag changes, new/ to cur/). Dovecot reads the
    /// directories under this lock, and renames under it too, because a
    /// file renamed while a readdir runs can be missing from it: Dovecot
    /// would take it for expunged and give it a new UID when it comes
    /// back ("Expunged message reappeared"). Renames made under the lock
    /// never overlap its reads. (Not reentrant: take it only around
    /// renames, never around Keywords::ensure or a sync.)
    pub fn rename_lock(&self) -> io::Result<Option<DotLock>> {
        if self.read_only {
            return Ok(None);
        }
        DotLock::acquire(&self.dir, uidlist::FILE).map(Some)
    }

    /// move_new - new/ to cur/ with an empty info, as a reader does,
    /// under the rename lock.
    fn move_new(&mut self, files: &mut NameMap<String, (bool, String)>) {
        if !files.values().any(|(in_new, _)| *in_new) {
            return;
        }
        let lock = match self.rename_lock() {
            Ok(l) => l,
            Err(e) => {
                // Left in new/: the next look moves them.
                posthorn_sys::warning!("{}: {e}", self.dir.display());
                return;
            }
        };
        for (in_new, name) in files.values_mut() {
            if !*in_new {
                continue;
            }
            let to = if name.contains(":2,") {
                name.clone()
            } else {
                format!("{name}:2,")
            };
            match std::fs::rename(
                self.dir.join("new").join(&*name),
                self.dir.join("cur").join(&to),
            ) {
                Ok(()) => {
                    self.moved.push((std::mem::replace(name, to.clone()), to));
                    *in_new = false;
                }
                // Someone else moved it: it is in cur/ under some name.
                Err(_) => {
                    if let Some(n) = find_in(&self.dir.join("cur"), base_name(name)) {
                        *in_new = false;
                        *name = n;
                    }
                }
            }
        }
        drop(lock);
    }

    /// path - the message's file.
    pub fn path(&self, m: &Msg) -> PathBuf {
        self.dir.join(m.rel())
    }

    /// locate - refresh message `i`'s file name when another process
    /// renamed it; false when it is gone.
    fn locate(&mut self, i: usize) -> bool {
        let base = self.msgs[i].base().to_string();
        // new/ first, so that a move to cur/ while we read is seen there;
        // again while the directories changed during the look, as
        // scan_stable does.
        for _ in 0..4 {
            let before = dir_stamps(&self.dir);
            for (sub, in_new) in [("new", true), ("cur", false)] {
                if let Some(n) = find_in(&self.dir.join(sub), &base) {
                    self.msgs[i].name = n;
                    self.msgs[i].in_new = in_new;
                    return true;
                }
            }
            if dir_stamps(&self.dir) == before {
                return false;
            }
        }
        false
    }

    /// read - the message's octets as stored; None when it is gone.
    pub fn read(&mut self, i: usize) -> io::Result<Option<Vec<u8>>> {
        for _ in 0..2 {
            match posthorn_sys::fsio::open_read(&self.path(&self.msgs[i])) {
                Ok(mut f) => {
                    let mut v = Vec::new();
                    f.read_to_end(&mut v)?;
                    return Ok(Some(v));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !self.locate(i) {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// mtime - the internal date (seconds since the epoch).
    pub fn mtime(&mut self, i: usize) -> i64 {
        use std::os::unix::fs::MetadataExt;
        for _ in 0..2 {
            match std::fs::symlink_metadata(self.path(&self.msgs[i])) {
                Ok(m) => return m.mtime(),
                Err(_) if self.locate(i) => continue,
                Err(_) => return 0,
            }
        }
        0
    }

    /// set_flags - give message `i` these flags by renaming its file;
    /// false when the message is gone.
    #[cfg(test)]
    pub fn set_flags(&mut self, i: usize, flags: Flags) -> io::Result<bool> {
        self.change_flags(i, |_| flags)
    }

    /// change_flags - apply `change` to message `i`'s flags by renaming
    /// its file. When another process renamed the file first (its own
    /// flag change), the change is applied again to the flags the new
    /// name carries, so neither change is lost. False when it is gone.
    pub fn change_flags(&mut self, i: usize, change: impl Fn(Flags) -> Flags) -> io::Result<bool> {
        if self.read_only {
            return Ok(true);
        }
        for _ in 0..8 {
            let m = &self.msgs[i];
            let flags = change(m.flags);
            if m.flags == flags && !m.in_new {
                return Ok(true);
            }
            let to = format!("{}:2,{}", m.base(), flags.info(m.info()));
            match std::fs::rename(self.path(m), self.dir.join("cur").join(&to)) {
                Ok(()) => {
                    let m = &mut self.msgs[i];
                    m.name = to;
                    m.in_new = false;
                    m.flags = flags;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !self.locate(i) {
                        return Ok(false);
                    }
                    let m = &mut self.msgs[i];
                    m.flags = Flags::from_info(m.info());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// expunge - remove the \Deleted messages (of the UIDs in `only`,
    /// ascending, if given); returns their sequence numbers and UIDs,
    /// highest first (each number valid as it is sent).
    pub fn expunge(&mut self, only: Option<&[u32]>) -> io::Result<Vec<(u32, u32)>> {
        let mut gone = Vec::new();
        if self.read_only {
            return Ok(gone);
        }
        for i in (0..self.msgs.len()).rev() {
            let m = &self.msgs[i];
            if m.flags.system & crate::flags::DELETED == 0
                || only.is_some_and(|u| u.binary_search(&m.uid).is_err())
            {
                continue;
            }
            match std::fs::remove_file(self.path(m)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if self.locate(i) {
                        let _ = std::fs::remove_file(self.path(&self.msgs[i]));
                    }
                }
                Err(e) => return Err(e),
            }
            gone.push((i as u32 + 1, self.msgs[i].uid));
            self.msgs.remove(i);
        }
        if !gone.is_empty() {
            posthorn_sys::fsio::fsync_dir(&self.dir.join("cur"))?;
            // The expunges are changes too; messages others changed meanwhile
            // are recorded at the next full look, which sees their files.
            if let Err(e) = self.modseqs.forget(&self.dir, self.validity, &gone) {
                posthorn_sys::warning!("{}: mod-sequences: {e}", self.dir.display());
            }
        }
        Ok(gone)
    }
}

/// Files in tmp/ older than this are left over from a crash (Dovecot
/// uses the same 36 hours).
const TMP_AGE: std::time::Duration = std::time::Duration::from_secs(36 * 3600);

/// sweep_tmp - remove what an APPEND or a delivery killed midway left in
/// tmp/; nothing there was ever acknowledged.
fn sweep_tmp(dir: &Path) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    sweep_tmp_at(dir, now);
}

/// sweep_tmp_at - sweep_tmp as of `now` (seconds since the epoch).
fn sweep_tmp_at(dir: &Path, now: i64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir.join("tmp")) else {
        return;
    };
    for e in rd.flatten() {
        // By the inode's change time, as Dovecot decides: a writer sets
        // a new message's modification time to its INTERNALDATE (long
        // ago, for an APPEND of old mail) before renaming it out of
        // tmp/, and utime() cannot set ctime back, so a file being saved
        // is never taken for a leftover.
        let old = e
            .metadata()
            .ok()
            .filter(|m| !m.is_dir())
            .is_some_and(|m| m.ctime() + (TMP_AGE.as_secs() as i64) < now);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// find_in - the file in `dir` whose base name is `base`.
fn find_in(dir: &Path, base: &str) -> Option<String> {
    for ent in std::fs::read_dir(dir).ok()?.flatten() {
        if let Ok(n) = ent.file_name().into_string()
            && base_name(&n) == base
        {
            return Some(n);
        }
    }
    None
}

/// delivery_order - Maildir names by delivery time (`<secs>.M<usec>`),
/// then by name.
fn delivery_order(a: &str, b: &str) -> std::cmp::Ordering {
    /// key - (seconds, microseconds) of a Maildir name.
    fn key(s: &str) -> (u64, u64) {
        let mut it = s.split('.');
        let secs = it.next().and_then(|x| x.parse().ok()).unwrap_or(u64::MAX);
        let usec = it
            .next()
            .and_then(|x| x.strip_prefix('M'))
            .and_then(|x| x.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        (secs, usec)
    }
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

/// unique_base - a new Maildir base name with its sizes (deliver's
/// unique name, so both write the same shape).
fn unique_base(size: u64, crlf: u64) -> String {
    format!(
        "{},S={size},W={crlf}",
        posthorn_store::maildir::unique_name()
    )
}

/// crlf_size - the size with every bare LF counted as CR LF.
pub fn crlf_size(data: &[u8]) -> u64 {
    let bare = memchr::memchr_iter(b'\n', data)
        .filter(|&i| i == 0 || data[i - 1] != b'\r')
        .count();
    (data.len() + bare) as u64
}

/// assign - give new files in `dir` UIDs, in the order given, under the
/// uidlist lock; returns the UIDVALIDITY and the UIDs.
fn assign(dir: &Path, names: &[String]) -> io::Result<(u32, Vec<u32>)> {
    let lock = DotLock::acquire(dir, uidlist::FILE)?;
    let mut list = match uidlist::read(dir)? {
        Some(l) => l,
        None => UidList::fresh(new_validity(root_of(dir))),
    };
    // A session that listed the folder between our rename and this lock
    // has given the file its UID already: that one stands, for a second
    // would show the message twice.
    let known: HashMap<String, u32> = list
        .entries
        .iter()
        .map(|e| (e.base().to_string(), e.uid))
        .collect();
    let mut uids = Vec::new();
    let mut added = false;
    for n in names {
        match known.get(base_name(n)) {
            Some(&u) => uids.push(u),
            None => {
                uids.push(
                    list.add(n)
                        .ok_or_else(|| io::Error::other("UIDs exhausted"))?,
                );
                added = true;
            }
        }
    }
    if added {
        lock.replace(&list.render())?;
    }
    Ok((list.validity, uids))
}

/// append - store one message (APPEND): written to tmp/, fsynced,
/// renamed into cur/ and the directory fsynced before the caller says
/// OK; returns the UIDVALIDITY and the new UID.
#[cfg(test)]
pub fn append(dir: &Path, data: &[u8], flags: Flags, date: Option<i64>) -> io::Result<(u32, u32)> {
    let (validity, uids) = append_all(dir, &[(data, flags, date)])?;
    Ok((validity, uids[0]))
}

/// append_all - store several messages as one (MULTIAPPEND, RFC 3502):
/// every one is written to tmp/ and fsynced first, then all are renamed
/// into cur/; a failure anywhere removes what was written and moved, so
/// the folder gets all of them or none. Returns the UIDVALIDITY and the
/// new UIDs in order.
pub fn append_all(dir: &Path, msgs: &[(&[u8], Flags, Option<i64>)]) -> io::Result<(u32, Vec<u32>)> {
    let mut tmps: Vec<PathBuf> = Vec::new();
    let mut dests: Vec<PathBuf> = Vec::new();
    let mut names = Vec::new();
    let mut moved = 0;
    let r = (|| {
        for &(data, flags, date) in msgs {
            let base = unique_base(data.len() as u64, crlf_size(data));
            let tmp = dir.join("tmp").join(&base);
            let name = format!("{base}:2,{}", flags.info(""));
            let mut f = posthorn_sys::fsio::create_new(&tmp, 0o600)?;
            tmps.push(tmp);
            f.write_all(data)?;
            if let Some(d) = date {
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.max(0) as u64);
                f.set_modified(t)?;
            }
            f.sync_all()?;
            dests.push(dir.join("cur").join(&name));
            names.push(name);
        }
        for (tmp, dest) in tmps.iter().zip(&dests) {
            std::fs::rename(tmp, dest)?;
            moved += 1;
        }
        posthorn_sys::fsio::fsync_dir(&dir.join("cur"))
    })();
    if let Err(e) = r {
        for d in &dests[..moved] {
            let _ = std::fs::remove_file(d);
        }
        for t in &tmps[moved..] {
            let _ = std::fs::remove_file(t);
        }
        let _ = posthorn_sys::fsio::fsync_dir(&dir.join("cur"));
        return Err(e);
    }
    assign(dir, &names)
}

/// copy - copy messages into folder `dest` (a hard link where the file
/// system allows, else a copy through tmp/), keeping their flags and
/// internal dates; returns the UIDVALIDITY and the new UIDs in order.
pub fn copy(src: &[(PathBuf, Flags)], dest: &Path) -> io::Result<(u32, Vec<u32>)> {
    let mut names = Vec::new();
    let mut made = Vec::new();
    let r = (|| -> io::Result<()> {
        for (path, flags) in src {
            let old = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(base_name)
                .unwrap_or("");
            // Keep the sizes the old name carried.
            let sizes: String = old
                .split(',')
                .skip(1)
                .filter(|f| f.starts_with("S=") || f.starts_with("W="))
                .map(|f| format!(",{f}"))
                .collect();
            let mut base = unique_base(0, 0);
            if let Some(i) = base.find(",S=") {
                base.truncate(i);
            }
            base.push_str(&sizes);
            let name = format!("{base}:2,{}", flags.info(""));
            let to = dest.join("cur").join(&name);
            if std::fs::hard_link(path, &to).is_err() {
                let tmp = dest.join("tmp").join(&base);
                let mut input = posthorn_sys::fsio::open_read(path)?;
                let mtime = input.metadata()?.modified()?;
                let mut out = posthorn_sys::fsio::create_new(&tmp, 0o600)?;
                io::copy(&mut input, &mut out)?;
                out.set_modified(mtime)?;
                out.sync_all()?;
                std::fs::rename(&tmp, &to)?;
            }
            made.push(to);
            names.push(name);
        }
        posthorn_sys::fsio::fsync_dir(&dest.join("cur"))
    })();
    if let Err(e) = r {
        for m in made {
            let _ = std::fs::remove_file(m);
        }
        return Err(e);
    }
    assign(dest, &names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for s in ["new", "cur", "tmp"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        d
    }

    #[test]
    fn append_all_is_all_or_nothing() {
        let d = maildir();
        let f = Flags::default();
        let msgs: [(&[u8], Flags, Option<i64>); 3] = [
            (b"a\r\n", f, None),
            (b"b\r\n", f, Some(1000)),
            (b"c\r\n", f, None),
        ];
        let (_, uids) = append_all(d.path(), &msgs).unwrap();
        assert_eq!(uids, [1, 2, 3]);
        assert_eq!(std::fs::read_dir(d.path().join("cur")).unwrap().count(), 3);
        // Nothing can be moved into place: nothing stays behind either.
        let e = maildir();
        std::fs::remove_dir(e.path().join("cur")).unwrap();
        std::fs::write(e.path().join("cur"), b"").unwrap();
        assert!(append_all(e.path(), &msgs).is_err());
        assert_eq!(std::fs::read_dir(e.path().join("tmp")).unwrap().count(), 0);
        assert!(!e.path().join("dovecot-uidlist").exists());
    }

    #[test]
    fn uids_flags_recent_and_changes() {
        let d = maildir();
        std::fs::write(d.path().join("new/1000.M2P1.h"), "b\n").unwrap();
        std::fs::write(d.path().join("new/1000.M1P1.h"), "a\n").unwrap();
        std::fs::write(d.path().join("cur/999.M1P1.h:2,FS"), "c\n").unwrap();
        let mut f = Folder::open(d.path(), false).unwrap();
        let names: Vec<_> = f.msgs.iter().map(|m| (m.uid, m.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (1, "999.M1P1.h:2,FS"),
                (2, "1000.M1P1.h:2,"),
                (3, "1000.M2P1.h:2,")
            ]
        );
        assert!(f.msgs.iter().all(|m| m.recent && !m.in_new));
        // A second session: same UIDs, nothing recent.
        let g = Folder::open(d.path(), false).unwrap();
        assert_eq!(g.msgs.len(), 3);
        assert!(g.msgs.iter().all(|m| !m.recent));
        // Another process changes flags, expunges, delivers.
        std::fs::rename(
            d.path().join("cur/1000.M1P1.h:2,"),
            d.path().join("cur/1000.M1P1.h:2,S"),
        )
        .unwrap();
        std::fs::remove_file(d.path().join("cur/999.M1P1.h:2,FS")).unwrap();
        std::fs::write(d.path().join("new/1001.M1P1.h"), "d\n").unwrap();
        let ch = f.sync().unwrap();
        assert_eq!(ch.expunged, [1]);
        assert_eq!(ch.flags, [2]);
        assert!(ch.exists_changed && ch.recent_changed);
        assert_eq!(f.msgs.iter().map(|m| m.uid).collect::<Vec<_>>(), [2, 3, 4]);
        // Our own flag change, then expunge.
        let mut fl = f.msgs[2].flags;
        fl.system |= crate::flags::DELETED;
        assert!(f.set_flags(2, fl).unwrap());
        // Another process flags it meanwhile: both changes survive.
        let n = f.msgs[1].name.clone();
        let theirs = format!("{}:2,F", f.msgs[1].base());
        std::fs::rename(
            d.path().join("cur").join(&n),
            d.path().join("cur").join(&theirs),
        )
        .unwrap();
        assert!(
            f.change_flags(1, |mut x| {
                x.system |= crate::flags::SEEN;
                x
            })
            .unwrap()
        );
        assert_eq!(f.msgs[1].name, format!("{}:2,FS", f.msgs[1].base()));
        f.sync().unwrap();
        let third = f.msgs[2].uid;
        assert_eq!(f.expunge(None).unwrap(), [(3, third)]);
        assert_eq!(f.sync().unwrap(), Changes::default());
        // Append and copy take the next UIDs; UIDs are never reused.
        let (_, uid) = append(d.path(), b"x\r\n", Flags::default(), Some(1_000_000)).unwrap();
        assert_eq!(uid, 5);
        let p = f.path(&f.msgs[0]);
        assert_eq!(
            copy(&[(p, Flags::from_info("S"))], d.path()).unwrap().1,
            [6]
        );
        f.sync().unwrap();
        assert_eq!(
            f.msgs.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [2, 3, 5, 6]
        );
        assert_eq!(f.mtime(2), 1_000_000);
        assert_eq!(f.msgs[2].size_hint(), Some(3));
    }

    #[test]
    fn an_append_seen_by_a_scanner_first_keeps_one_uid() {
        let d = maildir();
        let mut f = Folder::open(d.path(), false).unwrap();
        // The file is in cur/ and a scanner lists it before assign runs.
        std::fs::write(d.path().join("cur/5.M1P1.h,S=1,W=1:2,S"), "x").unwrap();
        f.sync().unwrap();
        assert_eq!(f.msgs.len(), 1);
        let (_, uids) = assign(d.path(), &["5.M1P1.h,S=1,W=1:2,S".to_string()]).unwrap();
        assert_eq!(uids, [f.msgs[0].uid]);
        let list = uidlist::read(d.path()).unwrap().unwrap();
        assert_eq!(list.entries.len(), 1);
        assert!(f.sync().unwrap().expunged.is_empty());
        assert_eq!(f.msgs.len(), 1);
    }

    #[test]
    fn an_unchanged_folder_is_not_read_again_and_changes_are_still_seen() {
        let d = maildir();
        for n in 1..=3 {
            std::fs::write(d.path().join(format!("cur/{n}.M1P1.h:2,")), "m\n").unwrap();
        }
        let mut f = Folder::open(d.path(), false).unwrap();
        assert!(f.stamps.is_none(), "just written: not stable");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(f.sync().unwrap(), Changes::default());
        assert!(f.stamps.is_some(), "stable now");
        // A new session reads the listing it can now write.
        let g = Folder::open(d.path(), false).unwrap();
        assert!(d.path().join(listing::FILE).exists());
        let h = Folder::open(d.path(), true).unwrap();
        assert_eq!(h.msgs, g.msgs);
        assert_eq!(h.msgs.len(), 3);
        // Changes by others right after: a flag, an expunge, a delivery.
        std::fs::rename(
            d.path().join("cur/1.M1P1.h:2,"),
            d.path().join("cur/1.M1P1.h:2,S"),
        )
        .unwrap();
        std::fs::remove_file(d.path().join("cur/2.M1P1.h:2,")).unwrap();
        std::fs::write(d.path().join("new/4.M1P1.h"), "m\n").unwrap();
        let ch = f.sync().unwrap();
        assert_eq!(ch.expunged, [2]);
        assert_eq!(ch.flags, [1]);
        assert_eq!(f.msgs.len(), 3);
        let k = Folder::open(d.path(), true).unwrap();
        assert_eq!(k.msgs.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 3, 4]);
    }

    #[test]
    fn tmp_is_swept_by_change_time_not_by_the_date_a_writer_set() {
        let d = maildir();
        std::fs::write(d.path().join("tmp/saving"), "x").unwrap();
        // An APPEND of an old message sets its INTERNALDATE before the
        // rename out of tmp/: that file is being saved, not left over.
        let f = std::fs::File::options()
            .write(true)
            .open(d.path().join("tmp/saving"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 3600))
            .unwrap();
        Folder::open(d.path(), true).unwrap();
        Folder::open(d.path(), false).unwrap();
        assert!(d.path().join("tmp/saving").exists(), "swept while saved");
        // 36 hours after its last change it is a leftover.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        sweep_tmp_at(d.path(), now + 35 * 3600);
        assert!(d.path().join("tmp/saving").exists());
        sweep_tmp_at(d.path(), now + 37 * 3600);
        assert!(!d.path().join("tmp/saving").exists());
    }

    #[test]
    fn an_empty_folder_keeps_its_uidvalidity() {
        let d = maildir();
        let mut f = Folder::open(d.path(), false).unwrap();
        assert!(d.path().join("dovecot-uidlist").exists());
        let v = f.validity;
        std::thread::sleep(std::time::Duration::from_millis(1100));
        f.sync().unwrap();
        assert_eq!(Folder::open(d.path(), true).unwrap().validity, v);
    }

    #[test]
    fn read_only_moves_nothing_and_claims_nothing() {
        let d = maildir();
        std::fs::write(d.path().join("new/1.M1P1.h"), "a\n").unwrap();
        let f = Folder::open(d.path(), true).unwrap();
        assert!(
            f.msgs[0].in_new && f.msgs[0].recent,
            "EXAMINE shows it recent"
        );
        let g = Folder::open(d.path(), false).unwrap();
        assert!(g.msgs[0].recent, "EXAMINE did not take \\Recent");
        let h = Folder::open(d.path(), true).unwrap();
        assert!(!h.msgs[0].recent, "SELECT did");
    }

    #[test]
    fn crlf_sizes() {
        assert_eq!(crlf_size(b"a\nb\r\n"), 6);
        assert_eq!(crlf_size(b"\n"), 2);
    }
}
