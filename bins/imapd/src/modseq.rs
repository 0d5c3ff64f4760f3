//! modseq - CONDSTORE's mod-sequences (RFC 7162) for one folder, kept in
//! the folder's own file `posthorn-modseq`, apart from the caches: removing
//! `posthorn-cache` or `posthorn-list` loses none of them. (Dovecot keeps
//! them in its index.)
//!
//! Flags live in the file names, where any Maildir program may change
//! them without telling anyone, so a mod-sequence is given when a session
//! *sees* a change: after each full look at the folder, the flags in the
//! names are compared with the flags this file last recorded per UID, and
//! the differences, the new messages and the messages gone all get the
//! next mod-sequence, one per look (as Dovecot gives one to a whole
//! transaction). Our own STORE records its changes before it answers.
//!
//! The file is a log, appended under `posthorn-modseq.lock` and
//! fdatasync'd before any value in it is shown to a client:
//!   `posthorn-modseq 1 <uidvalidity> <base>`   the first line; the
//!                              highest is at least <base>
//!   `<uid> <modseq> <flags>`   the message's Maildir flag letters then
//!                              (`-` for none)
//!   `-<uid> <modseq>`          expunged then
//!   `F <modseq>`               expunges up to here are forgotten
//! It is rewritten whole, atomically, when the log has grown to several
//! times what it describes; at most MAX_GONE expunges are remembered.
//!
//! Never backwards: a folder without the file (new, lost, or served by
//! Dovecot until now) starts at 1 only if no IMAP server showed it before
//! (no `posthorn-recent`, no `dovecot.index` when the session opened it);
//! otherwise at the clock in milliseconds, above any value given before
//! at up to one per millisecond.
//! A new UIDVALIDITY starts afresh (RFC 7162 §3.1.2.1 allows it).
//!
//! Distrusts the file: lines that do not parse are skipped, a file of
//! another UIDVALIDITY is replaced, and at most MAX_SIZE of it is read.

use crate::flags::Flags;
use crate::folder::Msg;
use crate::uidlist::{DotLock, NameMap};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

pub const FILE: &str = "posthorn-modseq";
/// Expunged UIDs remembered for QRESYNC's VANISHED (EARLIER).
const MAX_GONE: usize = 10_000;
/// The largest file read.
const MAX_SIZE: u64 = 256 * 1024 * 1024;

/// A folder's mod-sequences as the file last said.
#[derive(Debug, Default)]
pub struct ModSeqs {
    validity: u32,
    /// The highest mod-sequence given in this folder.
    pub highest: u64,
    /// Expunges with mod-sequences up to here are no longer known.
    pub floor: u64,
    /// Per UID: its mod-sequence and the flags it was given for.
    live: NameMap<u32, (u64, Flags)>,
    /// Per expunged UID: the mod-sequence of its expunge.
    gone: NameMap<u32, u64>,
    /// What was read: the file's inode and how far, and its line count.
    ino: u64,
    read_to: u64,
    lines: usize,
    /// The file's first line was read and is for this folder.
    valid: bool,
    /// Set by the caller before the first look: an IMAP server showed
    /// this folder before (a file lost then starts at the clock).
    pub shown: bool,
}

/// The flags a log line carries.
fn letters(f: Flags) -> String {
    let s = f.info("");
    if s.is_empty() { "-".into() } else { s }
}

impl ModSeqs {
    /// refresh - read what other sessions added to the file since the
    /// last look (all of it, when it was replaced).
    fn refresh(&mut self, dir: &Path, validity: u32) -> io::Result<()> {
        let path = dir.join(FILE);
        let mut f = match posthorn_sys::fsio::open_read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                *self = ModSeqs {
                    shown: self.shown,
                    ..ModSeqs::default()
                };
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let m = f.metadata()?;
        if m.ino() != self.ino || m.len() < self.read_to || validity != self.validity {
            *self = ModSeqs {
                ino: m.ino(),
                validity,
                shown: self.shown,
                ..ModSeqs::default()
            };
        }
        if m.len() == self.read_to {
            return Ok(());
        }
        if m.len() > MAX_SIZE {
            return Err(io::Error::other(format!("{} is too large", path.display())));
        }
        f.seek(io::SeekFrom::Start(self.read_to))?;
        let mut buf = Vec::new();
        f.take(m.len() - self.read_to).read_to_end(&mut buf)?;
        // Only whole lines: a writer may be midway through one.
        let end = buf.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        for l in buf[..end].split(|&c| c == b'\n') {
            if let Ok(l) = std::str::from_utf8(l) {
                self.line(l);
            }
        }
        self.read_to += end as u64;
        Ok(())
    }

    /// line - take in one line of the file.
    fn line(&mut self, l: &str) {
        if l.is_empty() {
            return;
        }
        self.lines += 1;
        let w: Vec<&str> = l.split(' ').collect();
        if self.lines == 1 {
            self.valid = w.len() == 4
                && w[0] == "posthorn-modseq"
                && w[1] == "1"
                && w[2].parse() == Ok(self.validity);
            if self.valid {
                self.highest = w[3].parse().unwrap_or(0);
            }
            return;
        }
        if !self.valid {
            return;
        }
        let num = |s: &str| s.parse::<u64>().ok().filter(|&n| n > 0 && n < 1 << 62);
        match w.as_slice() {
            ["F", n] => {
                if let Some(n) = num(n) {
                    self.floor = self.floor.max(n);
                    self.highest = self.highest.max(n);
                    self.gone.retain(|_, m| *m > n);
                }
            }
            [uid, n] => {
                if let (Some(uid), Some(n)) = (uid.strip_prefix('-'), num(n))
                    && let Ok(uid) = uid.parse::<u32>()
                {
                    self.live.remove(&uid);
                    self.gone.insert(uid, n);
                    self.highest = self.highest.max(n);
                }
            }
            [uid, n, flags] => {
                if let (Ok(uid), Some(n)) = (uid.parse::<u32>(), num(n)) {
                    let f = Flags::from_info(if *flags == "-" { "" } else { flags });
                    self.live.insert(uid, (n, f));
                    self.highest = self.highest.max(n);
                }
            }
            _ => {}
        }
    }

    /// stale - whether `msgs` (those at `only`, or all) hold anything the
    /// file does not (`changes`), or the file is not this folder's.
    fn stale(&self, msgs: &[Msg], only: Option<&[usize]>, next_uid: u32) -> bool {
        if !self.valid {
            return true;
        }
        let (set, gone) = self.changes(next_uid, msgs, only);
        !set.is_empty() || !gone.is_empty()
    }

    /// record - give the next mod-sequence to what changed in `msgs` (all
    /// of them after a full look, only those at `only` after our own
    /// change) and set each message's `modseq`. `held` when the caller
    /// holds the lock already. A message whose flags the file records
    /// differently than ours keeps the mod-sequence it had: our view of
    /// it is behind, and the next full look catches up.
    pub fn record(
        &mut self,
        dir: &Path,
        validity: u32,
        next_uid: u32,
        msgs: &mut [Msg],
        only: Option<&[usize]>,
        held: bool,
    ) -> io::Result<()> {
        self.refresh(dir, validity)?;
        if self.stale(msgs, only, next_uid) {
            let lock = if held {
                None
            } else {
                Some(DotLock::acquire(dir, FILE)?)
            };
            self.refresh(dir, validity)?;
            if self.stale(msgs, only, next_uid) {
                let (set, gone) = self.changes(next_uid, msgs, only);
                self.write(dir, validity, set, gone, lock)?;
            }
        }
        // A message whose flags another session recorded otherwise (its
        // view is newer) keeps the value it had; one that had none yet
        // (new to this session) gets the highest given, which is above
        // every value its earlier flags had: never 0, never above
        // HIGHESTMODSEQ, and the next look records what it has now.
        let highest = self.highest.max(1);
        let apply = |m: &mut Msg, live: &NameMap<u32, (u64, Flags)>| match live.get(&m.uid) {
            Some((n, f)) if *f == m.flags => m.modseq = *n,
            _ if m.modseq == 0 => m.modseq = highest,
            _ => {}
        };
        match only {
            Some(ix) => ix.iter().for_each(|&i| apply(&mut msgs[i], &self.live)),
            None => msgs.iter_mut().for_each(|m| apply(m, &self.live)),
        }
        Ok(())
    }

    /// changes - what `msgs` (those at `only`, or all with the UIDs gone
    /// below `next_uid`) hold that the file does not.
    fn changes(
        &self,
        next_uid: u32,
        msgs: &[Msg],
        only: Option<&[usize]>,
    ) -> (Vec<(u32, Flags)>, Vec<u32>) {
        let differs = |m: &Msg| self.live.get(&m.uid).is_none_or(|(_, f)| *f != m.flags);
        let set = match only {
            Some(ix) => ix
                .iter()
                .map(|&i| &msgs[i])
                .filter(|m| differs(m))
                .map(|m| (m.uid, m.flags))
                .collect(),
            None => msgs
                .iter()
                .filter(|m| differs(m))
                .map(|m| (m.uid, m.flags))
                .collect(),
        };
        let mut gone: Vec<u32> = match only {
            Some(_) => Vec::new(),
            None => self
                .live
                .keys()
                .copied()
                .filter(|u| *u < next_uid && msgs.binary_search_by_key(u, |m| m.uid).is_err())
                .collect(),
        };
        gone.sort_unstable();
        (set, gone)
    }

    /// forget - record our own expunge of these (sequence number, UID)s.
    pub fn forget(&mut self, dir: &Path, validity: u32, expunged: &[(u32, u32)]) -> io::Result<()> {
        let lock = DotLock::acquire(dir, FILE)?;
        self.refresh(dir, validity)?;
        let mut gone: Vec<u32> = expunged
            .iter()
            .map(|&(_, u)| u)
            .filter(|u| !self.gone.contains_key(u))
            .collect();
        gone.sort_unstable();
        self.write(dir, validity, Vec::new(), gone, Some(lock))
    }

    /// write - add the changes to the file under the lock (`lock`, or the
    /// caller's): appended, or the whole file anew when it is missing,
    /// of another folder, or grown too long.
    fn write(
        &mut self,
        dir: &Path,
        validity: u32,
        set: Vec<(u32, Flags)>,
        gone: Vec<u32>,
        lock: Option<DotLock>,
    ) -> io::Result<()> {
        let fresh = !self.valid;
        if fresh {
            // After a loss, the expunges before it are unknown: a QRESYNC
            // from then is told every UID that is not here.
            let base = if self.shown { clock_ms().max(1) } else { 1 };
            *self = ModSeqs {
                validity,
                highest: base,
                floor: if self.shown { base } else { 0 },
                valid: true,
                shown: self.shown,
                ..ModSeqs::default()
            };
        } else if set.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let n = self.highest + 1;
        let mut add = String::new();
        for (uid, f) in set {
            add.push_str(&format!("{uid} {n} {}\n", letters(f)));
            self.live.insert(uid, (n, f));
        }
        for u in gone {
            add.push_str(&format!("-{u} {n}\n"));
            self.live.remove(&u);
            self.gone.insert(u, n);
        }
        self.highest = n;
        let described = self.live.len() + self.gone.len();
        let rewrite = fresh
            || self.read_to == 0
            || self.gone.len() > MAX_GONE
            || self.lines + add.lines().count() > 2 * described + 64;
        if rewrite {
            if self.gone.len() > MAX_GONE {
                let mut by_age: Vec<u64> = self.gone.values().copied().collect();
                by_age.sort_unstable();
                let floor = by_age[self.gone.len() - MAX_GONE / 2 - 1];
                self.gone.retain(|_, m| *m > floor);
                self.floor = self.floor.max(floor);
            }
            let text = self.render();
            let lock = match lock {
                Some(l) => l,
                // The caller's lock is held: write beside it and rename.
                None => {
                    posthorn_sys::fsio::write_atomic(&dir.join(FILE), text.as_bytes(), 0o600)?;
                    return self.reread(dir, validity);
                }
            };
            lock.replace(text.as_bytes())?;
            return self.reread(dir, validity);
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dir.join(FILE))?;
        // A line cut short by a writer killed under the lock we now hold
        // was never shown to anyone: drop it, so that it cannot join ours
        // into a line that says something else.
        if f.metadata()?.len() > self.read_to {
            f.set_len(self.read_to)?;
        }
        f.write_all(add.as_bytes())?;
        f.sync_data()?;
        drop(lock);
        self.refresh(dir, validity)
    }

    /// reread - the file from its start, after a rewrite.
    fn reread(&mut self, dir: &Path, validity: u32) -> io::Result<()> {
        *self = ModSeqs {
            shown: self.shown,
            ..ModSeqs::default()
        };
        self.refresh(dir, validity)
    }

    /// render - the whole file for what is known now; the first line
    /// carries the highest given, which no line may carry any more.
    fn render(&self) -> String {
        let mut s = format!("posthorn-modseq 1 {} {}\n", self.validity, self.highest);
        if self.floor > 0 {
            s.push_str(&format!("F {}\n", self.floor));
        }
        let mut live: Vec<(&u32, &(u64, Flags))> = self.live.iter().collect();
        live.sort_unstable_by_key(|(u, _)| **u);
        for (u, (n, f)) in live {
            s.push_str(&format!("{u} {n} {}\n", letters(*f)));
        }
        let mut gone: Vec<(&u32, &u64)> = self.gone.iter().collect();
        gone.sort_unstable_by_key(|(u, _)| **u);
        for (u, n) in gone {
            s.push_str(&format!("-{u} {n}\n"));
        }
        s
    }

    /// recorded - the mod-sequence the file last gave `uid` (another
    /// session's change included), if any.
    pub fn recorded(&self, uid: u32) -> Option<u64> {
        self.live.get(&uid).map(|x| x.0)
    }

    /// vanished - the UIDs expunged after mod-sequence `since` among those
    /// `known` admits (ascending). When `since` is below what is still
    /// remembered, every UID below `next_uid` that is not in `msgs`
    /// (RFC 7162 §3.2.5.1 lets the server tell more than it must).
    pub fn vanished(
        &self,
        since: u64,
        next_uid: u32,
        msgs: &[Msg],
        known: &dyn Fn(u32) -> bool,
    ) -> Vec<u32> {
        let mut v = Vec::new();
        if since < self.floor {
            let mut expect = 1u32;
            let push_gap = |a: u32, b: u32, v: &mut Vec<u32>| {
                for u in a..b {
                    if known(u) {
                        v.push(u);
                    }
                }
            };
            for m in msgs {
                push_gap(expect, m.uid, &mut v);
                expect = m.uid.saturating_add(1);
            }
            push_gap(expect, next_uid, &mut v);
        } else {
            v.extend(
                self.gone
                    .iter()
                    .filter(|(u, n)| **n > since && known(**u))
                    .map(|(u, _)| *u),
            );
            v.sort_unstable();
        }
        v
    }
}

/// clock_ms - milliseconds since the epoch.
fn clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(uid: u32, info: &str) -> Msg {
        Msg {
            uid,
            name: format!("{uid}.x:2,{info}"),
            in_new: false,
            flags: Flags::from_info(info),
            recent: false,
            modseq: 0,
        }
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn changes_get_the_next_modseq_and_survive_a_new_reader() {
        let d = dir();
        let mut a = ModSeqs::default();
        let mut msgs = vec![msg(1, ""), msg(2, "S")];
        a.record(d.path(), 7, 3, &mut msgs, None, false).unwrap();
        assert_eq!(a.highest, 2);
        assert_eq!((msgs[0].modseq, msgs[1].modseq), (2, 2));
        // Nothing changed: nothing written, nothing given.
        a.record(d.path(), 7, 3, &mut msgs, None, false).unwrap();
        assert_eq!(a.highest, 2);
        msgs[1].flags = Flags::from_info("FS");
        a.record(d.path(), 7, 3, &mut msgs, Some(&[1]), false)
            .unwrap();
        assert_eq!((msgs[0].modseq, msgs[1].modseq, a.highest), (2, 3, 3));
        // Another session reads the same.
        let mut b = ModSeqs::default();
        let mut theirs = vec![msg(1, ""), msg(2, "FS")];
        b.record(d.path(), 7, 3, &mut theirs, None, false).unwrap();
        assert_eq!((theirs[0].modseq, theirs[1].modseq, b.highest), (2, 3, 3));
        // An expunge is a change, and remembered.
        let mut left = vec![msg(2, "FS")];
        b.record(d.path(), 7, 3, &mut left, None, false).unwrap();
        assert_eq!(b.highest, 4);
        assert_eq!(b.vanished(3, 3, &left, &|_| true), vec![1]);
        assert!(b.vanished(4, 3, &left, &|_| true).is_empty());
        // A is told on its next look.
        a.record(d.path(), 7, 3, &mut left, None, false).unwrap();
        assert_eq!(a.vanished(2, 3, &left, &|_| true), vec![1]);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_dropped_not_joined() {
        let d = dir();
        let mut a = ModSeqs::default();
        let mut msgs = vec![msg(1, ""), msg(12, "")];
        a.record(d.path(), 7, 13, &mut msgs, None, false).unwrap();
        // A writer died midway through `-12 5\n`.
        let path = d.path().join(FILE);
        let mut text = std::fs::read(&path).unwrap();
        text.extend_from_slice(b"-1");
        std::fs::write(&path, &text).unwrap();
        msgs[0].flags = Flags::from_info("S");
        let mut b = ModSeqs::default();
        b.record(d.path(), 7, 13, &mut msgs, Some(&[0]), false)
            .unwrap();
        let mut c = ModSeqs::default();
        c.record(d.path(), 7, 13, &mut msgs, None, false).unwrap();
        assert!(c.vanished(0, 13, &msgs, &|_| true).is_empty());
        assert_eq!(c.recorded(12), Some(2));
        assert_eq!(c.recorded(1), Some(3));
    }

    #[test]
    fn a_stale_view_keeps_its_modseq() {
        let d = dir();
        let mut a = ModSeqs::default();
        let mut mine = vec![msg(1, "")];
        a.record(d.path(), 7, 2, &mut mine, None, false).unwrap();
        let mut b = ModSeqs::default();
        let mut theirs = vec![msg(1, "S")];
        b.record(d.path(), 7, 2, &mut theirs, None, false).unwrap();
        assert_eq!(theirs[0].modseq, 3);
        // A's own change to another message: its view of 1 is behind.
        a.record(d.path(), 7, 2, &mut mine, Some(&[]), false)
            .unwrap();
        assert_eq!(mine[0].modseq, 2);
    }

    #[test]
    fn a_lost_file_restarts_above_what_was_given() {
        let d = dir();
        let mut a = ModSeqs {
            shown: true,
            ..ModSeqs::default()
        };
        let mut msgs = vec![msg(1, "")];
        a.record(d.path(), 7, 2, &mut msgs, None, false).unwrap();
        assert!(a.highest > 1_700_000_000_000, "{}", a.highest);
    }

    #[test]
    fn another_validity_starts_afresh_and_junk_is_skipped() {
        let d = dir();
        std::fs::write(
            d.path().join(FILE),
            "posthorn-modseq 1 9 1\n1 50 S\nnonsense\n2 x y\n",
        )
        .unwrap();
        let mut a = ModSeqs::default();
        let mut msgs = vec![msg(1, "S")];
        a.record(d.path(), 9, 2, &mut msgs, None, false).unwrap();
        assert_eq!((a.highest, msgs[0].modseq), (50, 50));
        let mut b = ModSeqs::default();
        b.record(d.path(), 10, 2, &mut msgs, None, false).unwrap();
        assert_eq!((b.highest, msgs[0].modseq), (2, 2));
    }

    #[test]
    fn the_log_is_compacted_and_old_expunges_forgotten() {
        let d = dir();
        let mut a = ModSeqs::default();
        let mut msgs = vec![msg(1, "")];
        for k in 0..200 {
            msgs[0].flags = Flags::from_info(if k % 2 == 0 { "S" } else { "" });
            a.record(d.path(), 7, 2, &mut msgs, Some(&[0]), false)
                .unwrap();
        }
        let text = std::fs::read_to_string(d.path().join(FILE)).unwrap();
        assert!(text.lines().count() < 80, "{}", text.lines().count());
        let mut b = ModSeqs::default();
        b.record(d.path(), 7, 2, &mut msgs, None, false).unwrap();
        assert_eq!(b.highest, a.highest);
        assert_eq!(msgs[0].modseq, a.highest);
        // Many expunges: the oldest are forgotten, and a QRESYNC from
        // before them is told every UID not here.
        let mut many: Vec<Msg> = (1..=(MAX_GONE as u32 + 10)).map(|u| msg(u, "")).collect();
        let next = many.len() as u32 + 1;
        b.record(d.path(), 7, next, &mut many, None, false).unwrap();
        let before = b.highest;
        let keep = vec![msg(next - 1, "")];
        b.record(d.path(), 7, next, &mut many.clone(), None, false)
            .unwrap();
        let mut keep2 = keep.clone();
        b.record(d.path(), 7, next, &mut keep2, None, false)
            .unwrap();
        assert!(b.floor > 0);
        let v = b.vanished(before - 1, next, &keep2, &|u| u <= 3 || u == next - 1);
        assert_eq!(v, vec![1, 2, 3]);
    }
}
