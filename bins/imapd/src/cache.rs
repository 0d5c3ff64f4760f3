//! cache - a folder's `posthorn-cache`: for each UID, the message's size
//! and its ENVELOPE, BODY and BODYSTRUCTURE as sent, so a FETCH of those
//! over a large folder need not read and parse every message again. A
//! Maildir message never changes once delivered (flags live in its name)
//! and a UID is never reused, so an entry stays true until its message is
//! expunged or the folder's UIDVALIDITY changes.
//!
//! Format: `posthorn-cache 1 V<uidvalidity>\n`, then per message
//! `<uid> <size> <envelope length> <body length> <bodystructure length>\n`
//! and those octets, then `\n`. Written to a temporary file and renamed
//! over the old one (atomic, not synced: losing it costs only time).
//!
//! Distrusts the file: anything that does not parse, a wrong version or
//! UIDVALIDITY, or lengths that run past the end make the whole cache
//! count as missing; it is rebuilt as messages are fetched.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE: &str = "posthorn-cache";
/// Largest cache read.
const MAX_SIZE: u64 = 1024 * 1024 * 1024;

/// What the cache keeps for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// RFC822.SIZE: the CRLF size.
    pub size: u64,
    pub envelope: Vec<u8>,
    pub body: Vec<u8>,
    pub bodystructure: Vec<u8>,
}

/// A folder's cache in memory.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    validity: u32,
    entries: HashMap<u32, Entry>,
    dirty: bool,
}

impl Cache {
    /// load - the folder's cache, or an empty one.
    pub fn load(dir: &Path, validity: u32) -> Cache {
        let path = dir.join(FILE);
        let entries = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= MAX_SIZE => std::fs::read(&path)
                .ok()
                .and_then(|b| parse(&b, validity))
                .unwrap_or_default(),
            _ => HashMap::new(),
        };
        Cache {
            path,
            validity,
            entries,
            dirty: false,
        }
    }

    /// get - the entry of `uid`, if cached.
    pub fn get(&self, uid: u32) -> Option<&Entry> {
        self.entries.get(&uid)
    }

    /// insert - remember an entry; written at the next `save`.
    pub fn insert(&mut self, uid: u32, e: Entry) {
        self.entries.insert(uid, e);
        self.dirty = true;
    }

    /// save - write the entries of the UIDs still in the folder, if
    /// anything changed.
    pub fn save(&mut self, live: &[u32]) {
        if !self.dirty {
            return;
        }
        let keep: std::collections::HashSet<u32> = live.iter().copied().collect();
        self.entries.retain(|u, _| keep.contains(u));
        let mut out = Vec::new();
        let _ = writeln!(out, "posthorn-cache 1 V{}", self.validity);
        let mut uids: Vec<&u32> = self.entries.keys().collect();
        uids.sort();
        for u in uids {
            let e = &self.entries[u];
            let _ = writeln!(
                out,
                "{u} {} {} {} {}",
                e.size,
                e.envelope.len(),
                e.body.len(),
                e.bodystructure.len()
            );
            out.extend_from_slice(&e.envelope);
            out.extend_from_slice(&e.body);
            out.extend_from_slice(&e.bodystructure);
            out.push(b'\n');
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let r = posthorn_sys::fsio::create_new(&tmp, 0o600)
            .and_then(|mut f| f.write_all(&out))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        self.dirty = false;
    }
}

/// parse - the entries of a cache file; None when any of it is wrong.
fn parse(b: &[u8], validity: u32) -> Option<HashMap<u32, Entry>> {
    let nl = b.iter().position(|&c| c == b'\n')?;
    if b[..nl] != *format!("posthorn-cache 1 V{validity}").as_bytes() {
        return None;
    }
    let mut at = nl + 1;
    let mut out = HashMap::new();
    while at < b.len() {
        let end = at + b[at..].iter().position(|&c| c == b'\n')?;
        let head = std::str::from_utf8(&b[at..end]).ok()?;
        let n: Vec<u64> = head
            .split(' ')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let [uid, size, le, lb, ls] = n[..] else {
            return None;
        };
        let (le, lb, ls) = (le as usize, lb as usize, ls as usize);
        let start = end + 1;
        let stop = start.checked_add(le)?.checked_add(lb)?.checked_add(ls)?;
        if stop >= b.len() || b[stop] != b'\n' {
            return None;
        }
        out.insert(
            u32::try_from(uid).ok()?,
            Entry {
                size,
                envelope: b[start..start + le].to_vec(),
                body: b[start + le..start + le + lb].to_vec(),
                bodystructure: b[start + le + lb..stop].to_vec(),
            },
        );
        at = stop + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_distrust() {
        let d = tempfile::tempdir().unwrap();
        let mut c = Cache::load(d.path(), 7);
        assert!(c.get(1).is_none());
        let e = Entry {
            size: 42,
            envelope: b"(NIL {3}\r\n\n\n\n NIL)".to_vec(),
            body: b"(\"TEXT\")".to_vec(),
            bodystructure: b"".to_vec(),
        };
        c.insert(1, e.clone());
        c.insert(2, e.clone());
        c.save(&[1]);
        let c = Cache::load(d.path(), 7);
        assert_eq!(c.get(1), Some(&e));
        assert!(c.get(2).is_none(), "expunged entries are dropped");
        assert!(
            Cache::load(d.path(), 8).get(1).is_none(),
            "another UIDVALIDITY"
        );
        // Damaged files count as missing, never as wrong answers.
        let full = std::fs::read(d.path().join(FILE)).unwrap();
        for cut in 0..full.len() {
            let p = parse(&full[..cut], 7);
            assert!(p.is_none() || p.unwrap().get(&1).is_none_or(|x| *x == e));
        }
        assert!(parse(b"posthorn-cache 1 V7\n1 2 99999999999999999999 0 0\n", 7).is_none());
    }
}
