//! uidlist - a folder's `dovecot-uidlist`, read and written in Dovecot's
//! version 3 format under Dovecot's `dovecot-uidlist.lock` dot-lock, so
//! Dovecot and imapd can serve one Maildir and a folder moved from
//! Dovecot keeps UIDVALIDITY and every UID.
//!
//! Format (Dovecot's maildir-uidlist.c): a header line
//! `3 V<uidvalidity> N<nextuid> G<mailbox guid>` (other header fields are
//! kept as they are), then one line per message in UID order:
//! `<uid> [<key><value> ...] :<file name>`. Extension fields (`W` size,
//! `P` POP3 UIDL, `G` guid, ...) are kept verbatim. Version 1 files
//! (`1 <validity> <next>`, `<uid> <name>`) are read and rewritten as 3.
//!
//! Locking: the writer creates `dovecot-uidlist.lock` with O_EXCL,
//! writes the new list into it, fsyncs and renames it over the list
//! (Dovecot's file_dotlock_replace). A lock untouched for two minutes is
//! stale (Dovecot's MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT) and removed.
//! New messages alone may instead be appended to the list in place,
//! under the same lock, and fdatasync'd, as Dovecot does
//! (maildir_uidlist_sync_update); the header's N is then left behind,
//! and readers take the next UID as above the highest listed. A reader
//! may meet a line being appended: a last line without its newline is
//! not taken (Dovecot reads only whole lines too).
//!
//! Distrusts the file: any line that does not parse is dropped, UIDs must
//! rise, and the next UID is never below the highest UID seen, so a
//! damaged list can lose a name but never hand out a UID twice.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Write};
use std::path::Path;

pub const FILE: &str = "dovecot-uidlist";
/// Largest list read (a million messages is about 80 MB).
const MAX_SIZE: u64 = 512 * 1024 * 1024;

/// Fx - a fast hasher for the per-folder maps of file names (thousands
/// of lookups per command). The names are the user's own files, so no
/// one else can pick collisions: SipHash's protection buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fx(u64);

impl Hasher for Fx {
    /// finish - the hash.
    fn finish(&self) -> u64 {
        self.0
    }

    /// write - mix in eight octets at a time.
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

/// A map keyed by file names, hashed with Fx.
pub type NameMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// One message's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    /// Extension fields between the UID and the name, verbatim.
    pub ext: String,
    /// The file name as recorded (flags may be stale; only the base counts).
    pub name: String,
}

impl Entry {
    /// base - the Maildir base name: the file name up to the first `:`.
    pub fn base(&self) -> &str {
        base_name(&self.name)
    }
}

/// base_name - a Maildir file name without its `:2,flags` info.
pub fn base_name(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// A folder's UID list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidList {
    /// The format version read (1 or 3); 3 for a new list.
    pub version: u8,
    pub validity: u32,
    pub next_uid: u32,
    /// The mailbox GUID (`G`), 32 hex digits; kept or made once.
    pub guid: String,
    /// Header fields other than V, N, G, verbatim.
    pub extra: Vec<String>,
    /// In rising UID order.
    pub entries: Vec<Entry>,
}

impl UidList {
    /// fresh - an empty list for a new folder.
    pub fn fresh(validity: u32) -> UidList {
        UidList {
            version: 3,
            validity,
            next_uid: 1,
            guid: new_guid(),
            extra: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// parse - the text of a list; None when it has no usable header.
    pub fn parse(text: &str) -> Option<UidList> {
        // Whole lines only: the last may be midway through an append
        // (which always follows a newline: a lone header is whole).
        let whole = text.rfind('\n').map_or(text, |i| &text[..i]);
        let mut lines = whole.split('\n');
        let header = lines.next()?;
        let mut fields = header.split(' ').filter(|f| !f.is_empty());
        let version = fields.next()?;
        let mut l = UidList {
            version: 3,
            validity: 0,
            next_uid: 1,
            guid: String::new(),
            extra: Vec::new(),
            entries: Vec::new(),
        };
        match version {
            "1" => {
                l.version = 1;
                l.validity = fields.next()?.parse().ok()?;
                l.next_uid = fields.next()?.parse().ok()?;
            }
            "3" => {
                for f in fields {
                    if let Some(v) = f.strip_prefix('V') {
                        l.validity = v.parse().ok()?;
                    } else if let Some(n) = f.strip_prefix('N') {
                        l.next_uid = n.parse().ok()?;
                    } else if let Some(g) = f.strip_prefix('G') {
                        l.guid = g.to_string();
                    } else {
                        l.extra.push(f.to_string());
                    }
                }
            }
            _ => return None,
        }
        if l.validity == 0 {
            return None;
        }
        let mut last = 0u32;
        for line in lines {
            let Some(e) = entry(line, l.version) else {
                continue;
            };
            // UIDs rise.
            if e.uid <= last {
                continue;
            }
            last = e.uid;
            l.entries.push(e);
        }
        l.next_uid = l.next_uid.max(last.saturating_add(1));
        if l.guid.is_empty() {
            l.guid = new_guid();
        }
        Some(l)
    }

    /// render_entries - the lines of `entries` in version 3 format.
    fn render_entries(entries: &[Entry], out: &mut Vec<u8>) {
        for e in entries {
            if e.ext.is_empty() {
                let _ = writeln!(out, "{} :{}", e.uid, e.name);
            } else {
                let _ = writeln!(out, "{} {} :{}", e.uid, e.ext, e.name);
            }
        }
    }

    /// render - the list in version 3 format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 64);
        let _ = write!(
            out,
            "3 V{} N{} G{}",
            self.validity, self.next_uid, self.guid
        );
        for x in &self.extra {
            let _ = write!(out, " {x}");
        }
        out.push(b'\n');
        UidList::render_entries(&self.entries, &mut out);
        out
    }

    /// by_base - UID by base name.
    pub fn by_base(&self) -> NameMap<&str, u32> {
        self.entries.iter().map(|e| (e.base(), e.uid)).collect()
    }

    /// add - give `name` the next UID.
    pub fn add(&mut self, name: &str) -> Option<u32> {
        let uid = self.next_uid;
        if uid == u32::MAX {
            return None;
        }
        self.next_uid += 1;
        self.entries.push(Entry {
            uid,
            ext: String::new(),
            name: name.to_string(),
        });
        Some(uid)
    }
}

/// entry - one message's line of a list of `version`; None when it does
/// not parse or its name is not a plain file name.
fn entry(line: &str, version: u8) -> Option<Entry> {
    let e = if version == 1 {
        let (uid, name) = line.split_once(' ')?;
        Entry {
            uid: uid.parse().ok()?,
            ext: String::new(),
            name: name.to_string(),
        }
    } else {
        let (left, name) = line.split_once(" :")?;
        let (uid, ext) = left.split_once(' ').unwrap_or((left, ""));
        Entry {
            uid: uid.parse().ok()?,
            ext: ext.to_string(),
            name: name.to_string(),
        }
    };
    (!e.name.is_empty() && !e.name.contains('/')).then_some(e)
}

/// The end of a list, for a look at a few new files (folder/arrivals.rs):
/// what it needs without parsing every line of a big list.
#[derive(Debug, PartialEq, Eq)]
pub struct Tail {
    pub validity: u32,
    /// As parse would give it.
    pub next_uid: u32,
    /// The entries with UIDs from `since` up, in order.
    pub entries: Vec<Entry>,
    /// One of the base names asked about is listed below `since`.
    pub listed_below: bool,
    /// New entries may be appended: a version 3 list ending in a whole line.
    pub appendable: bool,
}

/// read_tail - the folder's list from UID `since` up (lines appended
/// since a look that found `since` as the next UID: their UIDs are at
/// least that), and whether any of `bases` is listed below it. None
/// when there is no usable list, or it is not plain UTF-8 (a full look
/// reads it then). Reading the file is a copy; only the lines from the
/// end back to the first below `since` are parsed, and the bases are
/// looked for with memmem, so the cost hardly grows with the list.
pub fn read_tail(dir: &Path, since: u32, bases: &[&str]) -> io::Result<Option<Tail>> {
    let Some(bytes) = read_bytes(dir)? else {
        return Ok(None);
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(None);
    };
    let Some(head_end) = text.find('\n') else {
        return Ok(None);
    };
    let Some(head) = UidList::parse(&text[..=head_end]) else {
        return Ok(None);
    };
    // Whole lines only, as parse takes them.
    let body_end = text.rfind('\n').unwrap_or(head_end);
    let body = &text[head_end + 1..body_end.max(head_end + 1)];
    let mut entries = Vec::new();
    let mut highest = 0u32;
    // Where the tail starts in `text`.
    let mut tail_at = body_end;
    let mut end = body.len();
    while end > 0 {
        let start = body[..end].rfind('\n').map_or(0, |i| i + 1);
        let line = &body[start..end];
        end = start.saturating_sub(1);
        let Some(e) = entry(line, head.version) else {
            continue;
        };
        highest = highest.max(e.uid);
        if e.uid < since {
            break;
        }
        tail_at = head_end + 1 + start;
        entries.push(e);
    }
    entries.reverse();
    // UIDs rise: a line out of order is dropped, as parse drops it.
    let mut last = 0u32;
    entries.retain(|e| {
        let keep = e.uid > last;
        last = last.max(e.uid);
        keep
    });
    let listed_below = bases.iter().any(|b| {
        let needle = format!(" :{b}");
        memchr::memmem::find_iter(&bytes[..tail_at], needle.as_bytes())
            .any(|i| matches!(bytes.get(i + needle.len()), Some(b':' | b'\n') | None))
    });
    Ok(Some(Tail {
        validity: head.validity,
        next_uid: head.next_uid.max(highest.saturating_add(1)),
        entries,
        listed_below,
        appendable: head.version == 3 && bytes.last() == Some(&b'\n'),
    }))
}

/// new_guid - 128 random bits in hex, for the `G` header field.
fn new_guid() -> String {
    format!(
        "{:016x}{:016x}",
        posthorn_sys::fsio::random_u64(),
        posthorn_sys::fsio::random_u64()
    )
}

/// read - the folder's list; None when there is none (or none usable).
pub fn read(dir: &Path) -> io::Result<Option<UidList>> {
    let Some(bytes) = read_bytes(dir)? else {
        return Ok(None);
    };
    Ok(UidList::parse(&String::from_utf8_lossy(&bytes)))
}

/// read_bytes - the list file as it is, at most MAX_SIZE; None when
/// there is none.
fn read_bytes(dir: &Path) -> io::Result<Option<Vec<u8>>> {
    let f = match posthorn_sys::fsio::open_read(&dir.join(FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if f.metadata()?.len() > MAX_SIZE {
        return Err(io::Error::other("dovecot-uidlist is too large"));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut &f, &mut bytes)?;
    Ok(Some(bytes))
}

/// append - add the entries from `from` on (new messages, given their
/// UIDs above every listed one) to the end of the folder's list in place,
/// under `lock` (the list's, held), as Dovecot appends. Only a version 3
/// list that ends in a whole line is appended to; otherwise, or when the
/// append fails midway, the list is written anew from `list`.
pub fn append(dir: &Path, lock: DotLock, list: &UidList, from: usize) -> io::Result<()> {
    let r = if list.version == 3 {
        append_in_place(dir, &list.entries[from.min(list.entries.len())..])
    } else {
        Ok(false)
    };
    match r {
        Ok(true) => Ok(()),
        Ok(false) => lock.replace(&list.render()),
        Err(e) => {
            drop(lock);
            Err(e)
        }
    }
}

/// append_in_place - add `entries` to the end of the folder's version 3
/// list, the caller holding its lock; false (nothing written) when the
/// list does not end in a whole line.
pub fn append_in_place(dir: &Path, entries: &[Entry]) -> io::Result<bool> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let path = dir.join(FILE);
    let mut add = Vec::new();
    UidList::render_entries(entries, &mut add);
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        let len = f.metadata()?.len();
        let mut last = [0u8];
        if len == 0 || f.read_at(&mut last, len - 1)? != 1 || last[0] != b'\n' {
            return Ok(false);
        }
        if let Err(e) = f.write_all(&add).and_then(|()| f.sync_data()) {
            // Cut back to whole lines, so no reader takes half of one.
            let _ = f.set_len(len);
            return Err(e);
        }
        Ok(true)
    }
}

pub use posthorn_store::dotlock::DotLock;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::time::{Duration, SystemTime};

    /// Written by Dovecot 2.3.19 (doveadm save, flags add, expunge).
    const DOVECOT: &str = "3 V1764336000 N5 G3085f01b7f11094c501100008d1c2ad4\n\
        1 :1764336001.M1P1.host\n\
        2 W120 :1764336002.M2P1.host,S=117:2,S\n\
        4 P0000001a6552ecd1 W7 :1764336004.M4P1.host:2,\n";

    #[test]
    fn dovecot_format_round_trips() {
        let l = UidList::parse(DOVECOT).unwrap();
        assert_eq!(l.validity, 1764336000);
        assert_eq!(l.next_uid, 5);
        assert_eq!(l.guid, "3085f01b7f11094c501100008d1c2ad4");
        assert_eq!(l.entries.len(), 3);
        assert_eq!(l.entries[1].ext, "W120");
        assert_eq!(l.entries[1].base(), "1764336002.M2P1.host,S=117");
        assert_eq!(String::from_utf8(l.render()).unwrap(), DOVECOT);
    }

    #[test]
    fn damaged_lists_never_reuse_uids() {
        let l = UidList::parse("3 V7 N2\n5 :a\n3 :b\nx :c\n9 :d/e\n6 W1 :f\n").unwrap();
        assert_eq!(
            l.entries.iter().map(|e| e.uid).collect::<Vec<_>>(),
            vec![5, 6]
        );
        assert_eq!(l.next_uid, 7, "never below the highest UID");
        assert!(UidList::parse("3 N5\n").is_none(), "no UIDVALIDITY");
        assert!(UidList::parse("2 V1 N1\n").is_none());
        assert!(UidList::parse("").is_none());
        let v1 = UidList::parse("1 1234 3\n1 a:2,S\n2 b\n").unwrap();
        assert_eq!((v1.validity, v1.next_uid, v1.entries.len()), (1234, 3, 2));
    }

    #[test]
    fn a_line_being_appended_is_not_read() {
        let l = UidList::parse("3 V7 N2\n1 :a\n2 :b.M1P1.ho").unwrap();
        assert_eq!((l.entries.len(), l.next_uid), (1, 2));
        let lone = UidList::parse("3 V7 N2").unwrap();
        assert_eq!(lone.validity, 7, "a header alone is whole");
    }

    #[test]
    fn new_entries_are_appended_in_place_or_the_list_written_anew() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let ino = |d: &Path| std::fs::metadata(d.join(FILE)).unwrap().ino();
        std::fs::write(d.path().join(FILE), DOVECOT).unwrap();
        let before = ino(d.path());
        let mut l = read(d.path()).unwrap().unwrap();
        let from = l.entries.len();
        assert_eq!(l.add("1764336005.M5P1.host:2,"), Some(5));
        assert_eq!(l.add("1764336006.M6P1.host:2,S"), Some(6));
        append(
            d.path(),
            DotLock::acquire(d.path(), FILE).unwrap(),
            &l,
            from,
        )
        .unwrap();
        assert_eq!(ino(d.path()), before, "appended in place");
        assert!(!d.path().join("dovecot-uidlist.lock").exists());
        let text = std::fs::read_to_string(d.path().join(FILE)).unwrap();
        assert_eq!(
            text,
            format!("{DOVECOT}5 :1764336005.M5P1.host:2,\n6 :1764336006.M6P1.host:2,S\n")
        );
        // The header's N is left behind; the next UID is still 7.
        assert_eq!(read(d.path()).unwrap().unwrap(), l);
        // A list cut in a line, or of version 1, is written anew.
        for old in [&DOVECOT[..DOVECOT.len() - 3], "1 1764336000 2\n1 a\n"] {
            std::fs::write(d.path().join(FILE), old).unwrap();
            let before = ino(d.path());
            let mut l = read(d.path()).unwrap().unwrap();
            let from = l.entries.len();
            l.add("x").unwrap();
            append(
                d.path(),
                DotLock::acquire(d.path(), FILE).unwrap(),
                &l,
                from,
            )
            .unwrap();
            assert_ne!(ino(d.path()), before);
            let back = read(d.path()).unwrap().unwrap();
            assert_eq!((back.version, &back.entries), (3, &l.entries));
        }
    }

    #[test]
    fn the_tail_is_what_parse_gives_from_a_uid_up() {
        let d = tempfile::tempdir().unwrap();
        let texts = [
            DOVECOT.to_string(),
            format!("{DOVECOT}7 :1764336007.M7P1.host:2,S\nbad line\n9 G1 :9.M1P1.h\n10 :10.M1"),
            "3 V5 N20\n".to_string(),
            "3 V5 N2\n1 :a\n".to_string(),
        ];
        for text in &texts {
            std::fs::write(d.path().join(FILE), text).unwrap();
            let full = UidList::parse(text).unwrap();
            for since in [1, 2, 3, 4, 5, 6, 8, 9, 10, 30] {
                let bases = [
                    "1764336002.M2P1.host,S=117",
                    "9.M1P1.h",
                    "a",
                    "1764336004.M4P1",
                    "10.M1",
                ];
                let t = read_tail(d.path(), since, &bases).unwrap().unwrap();
                let want: Vec<Entry> = full
                    .entries
                    .iter()
                    .filter(|e| e.uid >= since)
                    .cloned()
                    .collect();
                assert_eq!(t.entries, want, "{text} from {since}");
                assert_eq!((t.validity, t.next_uid), (full.validity, full.next_uid));
                let below = full
                    .entries
                    .iter()
                    .any(|e| e.uid < since && bases.contains(&e.base()));
                assert_eq!(t.listed_below, below, "{text} from {since}");
                assert_eq!(t.appendable, text.ends_with('\n'));
            }
        }
        std::fs::write(d.path().join(FILE), "1 1234 3\n1 a\n").unwrap();
        assert!(!read_tail(d.path(), 1, &[]).unwrap().unwrap().appendable);
        std::fs::remove_file(d.path().join(FILE)).unwrap();
        assert_eq!(read_tail(d.path(), 1, &[]).unwrap(), None);
    }

    #[test]
    fn lock_replace_and_stale() {
        let d = tempfile::tempdir().unwrap();
        let mut l = UidList::fresh(42);
        assert_eq!(l.add("x:2,S"), Some(1));
        let lock = DotLock::acquire(d.path(), FILE).unwrap();
        assert!(d.path().join("dovecot-uidlist.lock").exists());
        lock.replace(&l.render()).unwrap();
        assert!(!d.path().join("dovecot-uidlist.lock").exists());
        assert_eq!(read(d.path()).unwrap().unwrap(), l);
        // Dropped without replace: released.
        drop(DotLock::acquire(d.path(), FILE).unwrap());
        assert!(!d.path().join("dovecot-uidlist.lock").exists());
        // A stale lock is broken.
        let p = d.path().join("dovecot-uidlist.lock");
        let f = File::create(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(600))
            .unwrap();
        drop(DotLock::acquire(d.path(), FILE).unwrap());
        // The list written from a lock has no owner line in it.
        let lock = DotLock::acquire(d.path(), FILE).unwrap();
        lock.replace(&l.render()).unwrap();
        assert_eq!(read(d.path()).unwrap().unwrap(), l);
    }
}
