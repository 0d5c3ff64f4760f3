//! cache - a folder's `posthorn-cache`: for each UID, the message's size
//! and its ENVELOPE, BODY and BODYSTRUCTURE as sent, so a FETCH of those
//! over a large folder need not read and parse every message again; and
//! apart from those, the decoded header fields SORT, THREAD and header
//! SEARCH keys look at (search::KEPT), so that they need not either. A
//! Maildir message never changes once delivered (flags live in its name)
//! and a UID is never reused, so an entry stays true until its message is
//! expunged or the folder's UIDVALIDITY changes.
//!
//! Format: `posthorn-cache 3 V<uidvalidity>\n`, then per message with a
//! FETCH entry
//! `F <uid> <size> <envelope length> <body length> <bodystructure length>\n`
//! and those octets, then `\n`; per message with kept header fields
//! `H <uid> <length>\n` and that many octets (see `encode_head`; decoded
//! only when first asked for, so FETCH pays nothing for them), then `\n`.
//! Written to a temporary file and renamed over the old one (atomic, not
//! synced: losing it costs only time).
//!
//! Distrusts the file: anything that does not parse, another version
//! (version 1 files, without header fields, and version 2 files, without
//! the Date's offset or the Cc and Bcc fields as stored, among them) or
//! UIDVALIDITY,
//! or lengths that run past the end make the whole cache count as
//! missing (header fields that do not decode, that message's entry);
//! it is rebuilt as messages are fetched, sorted or threaded.
//! Distrusts the messages: header fields that take more than MAX_HEAD
//! octets are not kept (such a message is read each time instead), so no
//! message can make the cache grow past that much per UID.

use crate::search::Text;
use posthorn_mail::date::Written;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub const FILE: &str = "posthorn-cache";
/// Largest cache read.
const MAX_SIZE: u64 = 1024 * 1024 * 1024;
/// Most octets of encoded header fields kept for one message.
pub const MAX_HEAD: usize = 16 * 1024;
/// The first line's start: name and format version.
const MAGIC: &str = "posthorn-cache 3";

/// What the cache keeps for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// RFC822.SIZE: the CRLF size.
    pub size: u64,
    pub envelope: Vec<u8>,
    pub body: Vec<u8>,
    pub bodystructure: Vec<u8>,
}

/// One message's kept header fields: as stored (encode_head), and
/// decoded the first time they are asked for, so that loading the cache
/// for FETCH costs no decoding of them; then shared with the searches
/// that use them rather than copied for each.
#[derive(Debug)]
struct Head {
    raw: Vec<u8>,
    /// None inside when `raw` does not decode: the message counts as
    /// not cached.
    text: OnceCell<Option<Rc<Text>>>,
}

/// A folder's cache in memory.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    validity: u32,
    entries: HashMap<u32, Entry>,
    /// Kept header fields (search::kept), by UID.
    heads: HashMap<u32, Head>,
    dirty: bool,
}

impl Cache {
    /// load - the folder's cache, or an empty one.
    pub fn load(dir: &Path, validity: u32) -> Cache {
        let path = dir.join(FILE);
        let (entries, heads) = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= MAX_SIZE => std::fs::read(&path)
                .ok()
                .and_then(|b| parse(&b, validity))
                .unwrap_or_default(),
            _ => Default::default(),
        };
        Cache {
            path,
            validity,
            entries,
            heads,
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

    /// get_head - the kept header fields of `uid`, if cached.
    pub fn get_head(&self, uid: u32) -> Option<&Rc<Text>> {
        let h = self.heads.get(&uid)?;
        h.text
            .get_or_init(|| decode_head(&h.raw).map(Rc::new))
            .as_ref()
    }

    /// has_head - whether the header fields of `uid` are cached (as far
    /// as can be told without decoding them).
    pub fn has_head(&self, uid: u32) -> bool {
        self.heads.contains_key(&uid)
    }

    /// insert_head - remember a message's kept header fields (as
    /// search::kept gives them), unless they take more than MAX_HEAD
    /// octets; written at the next `save`. Gives them back, shared.
    /// Only the encoded form is kept (decoded again if asked for), so
    /// that a FETCH filling the cache for 10,000 messages does not hold
    /// all their fields decoded too.
    pub fn insert_head(&mut self, uid: u32, t: Text) -> Rc<Text> {
        let raw = encode_head(&t);
        if raw.len() <= MAX_HEAD {
            let text = OnceCell::new();
            self.heads.insert(uid, Head { raw, text });
            self.dirty = true;
        }
        Rc::new(t)
    }

    /// save - write the entries of the UIDs still in the folder, if
    /// anything changed.
    pub fn save(&mut self, live: &[u32]) {
        if !self.dirty {
            return;
        }
        let keep: std::collections::HashSet<u32> = live.iter().copied().collect();
        self.entries.retain(|u, _| keep.contains(u));
        self.heads.retain(|u, _| keep.contains(u));
        let mut out = Vec::new();
        let _ = writeln!(out, "{MAGIC} V{}", self.validity);
        let mut uids: Vec<&u32> = self.entries.keys().collect();
        uids.sort();
        for u in uids {
            let e = &self.entries[u];
            let _ = writeln!(
                out,
                "F {u} {} {} {} {}",
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
        let mut uids: Vec<&u32> = self.heads.keys().collect();
        uids.sort();
        for u in uids {
            let h = &self.heads[u].raw;
            let _ = writeln!(out, "H {u} {}", h.len());
            out.extend_from_slice(h);
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

/// What a cache file holds: FETCH entries and kept header fields.
type Parsed = (HashMap<u32, Entry>, HashMap<u32, Head>);

/// parse - the entries of a cache file; None when any of it is wrong.
fn parse(b: &[u8], validity: u32) -> Option<Parsed> {
    let nl = b.iter().position(|&c| c == b'\n')?;
    if b[..nl] != *format!("{MAGIC} V{validity}").as_bytes() {
        return None;
    }
    let mut at = nl + 1;
    let mut out: Parsed = Default::default();
    while at < b.len() {
        let end = at + b[at..].iter().position(|&c| c == b'\n')?;
        let head = std::str::from_utf8(&b[at..end]).ok()?;
        let (kind, rest) = head.split_once(' ')?;
        let n: Vec<u64> = rest
            .split(' ')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let start = end + 1;
        let stop = match (kind, &n[..]) {
            ("F", &[uid, size, le, lb, ls]) => {
                let (le, lb, ls) = (
                    usize::try_from(le).ok()?,
                    usize::try_from(lb).ok()?,
                    usize::try_from(ls).ok()?,
                );
                let stop = start.checked_add(le)?.checked_add(lb)?.checked_add(ls)?;
                if stop >= b.len() || b[stop] != b'\n' {
                    return None;
                }
                out.0.insert(
                    u32::try_from(uid).ok()?,
                    Entry {
                        size,
                        envelope: b[start..start + le].to_vec(),
                        body: b[start + le..start + le + lb].to_vec(),
                        bodystructure: b[start + le + lb..stop].to_vec(),
                    },
                );
                stop
            }
            ("H", &[uid, len]) => {
                let stop = start.checked_add(usize::try_from(len).ok()?)?;
                if stop >= b.len() || b[stop] != b'\n' {
                    return None;
                }
                let head = Head {
                    raw: b[start..stop].to_vec(),
                    text: OnceCell::new(),
                };
                out.1.insert(u32::try_from(uid).ok()?, head);
                stop
            }
            _ => return None,
        };
        at = stop + 1;
    }
    Some(out)
}

/// encode_head - a message's kept header fields as stored:
/// `d <sent> <offset>\n` (seconds since the epoch, minutes east of UTC;
/// `d -` with no usable Date), then per decoded field
/// `h <name> <length>\n<value>` and per raw address field
/// `a <name> <length>\n<value>`, in the message's order.
fn encode_head(t: &Text) -> Vec<u8> {
    let mut out = Vec::new();
    match t.sent {
        Some(s) => {
            let _ = writeln!(out, "d {} {}", s.utc, s.offset);
        }
        None => out.extend_from_slice(b"d -\n"),
    }
    for (k, v) in &t.headers {
        let _ = writeln!(out, "h {k} {}", v.len());
        out.extend_from_slice(v.as_bytes());
    }
    for (k, v) in &t.addresses {
        let _ = writeln!(out, "a {k} {}", v.len());
        out.extend_from_slice(v);
    }
    out
}

/// decode_head - encode_head's output back; None when it is not that.
fn decode_head(b: &[u8]) -> Option<Text> {
    let mut t = Text::default();
    let nl = b.iter().position(|&c| c == b'\n')?;
    t.sent = match std::str::from_utf8(&b[..nl]).ok()?.strip_prefix("d ")? {
        "-" => None,
        d => {
            let (utc, offset) = d.split_once(' ')?;
            Some(Written {
                utc: utc.parse().ok()?,
                offset: offset.parse().ok()?,
            })
        }
    };
    let mut at = nl + 1;
    while at < b.len() {
        let end = at + b[at..].iter().position(|&c| c == b'\n')?;
        let line = std::str::from_utf8(&b[at..end]).ok()?;
        let mut w = line.split(' ');
        let (Some(kind), Some(name), Some(len), None) = (w.next(), w.next(), w.next(), w.next())
        else {
            return None;
        };
        let start = end + 1;
        let stop = start.checked_add(len.parse().ok()?)?;
        let value = b.get(start..stop)?;
        match kind {
            "h" => t
                .headers
                .push((name.to_string(), String::from_utf8(value.to_vec()).ok()?)),
            "a" => t.addresses.push((name.to_string(), value.to_vec())),
            _ => return None,
        }
        at = stop;
    }
    Some(t)
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
        let h = Text {
            headers: vec![
                ("subject".into(), "re: line\nbreak h 3 x".into()),
                ("date".into(), String::new()),
                ("references".into(), "<a@x> <b@x>".into()),
            ],
            body: String::new(),
            sent: Some(Written {
                utc: -86400,
                offset: -330,
            }),
            addresses: vec![("from".into(), b"=?utf-8?q?J=C3=BC?= <j@x>\0".to_vec())],
        };
        let bare = Text {
            sent: None,
            ..Text::default()
        };
        c.insert(1, e.clone());
        c.insert(2, e.clone());
        c.insert_head(1, h.clone());
        c.insert_head(2, h.clone());
        c.insert_head(3, bare.clone());
        // Too much to keep: not cached, rather than trimmed or grown.
        let huge = Text {
            headers: vec![("references".into(), "<x@y> ".repeat(4000))],
            ..Text::default()
        };
        c.insert_head(4, huge.clone());
        assert!(!c.has_head(4));
        c.save(&[1, 3, 4]);
        let c = Cache::load(d.path(), 7);
        assert_eq!(c.get(1), Some(&e));
        assert_eq!(c.get_head(1).map(|x| &**x), Some(&h));
        assert_eq!(c.get_head(3).map(|x| &**x), Some(&bare));
        assert!(c.get(3).is_none() && c.get_head(4).is_none());
        assert!(c.get(2).is_none(), "expunged entries are dropped");
        assert!(c.get_head(2).is_none(), "expunged entries are dropped");
        assert!(
            Cache::load(d.path(), 8).get(1).is_none(),
            "another UIDVALIDITY"
        );
        // Damaged files count as missing, never as wrong answers.
        let full = std::fs::read(d.path().join(FILE)).unwrap();
        for cut in 0..full.len() {
            if let Some((f, hs)) = parse(&full[..cut], 7) {
                assert!(f.get(&1).is_none_or(|x| *x == e));
                let got = |u| hs.get(&u).and_then(|x: &Head| decode_head(&x.raw));
                assert!(got(1).is_none_or(|x| x == h));
                assert!(got(3).is_none_or(|x| x == bare));
            }
        }
        assert!(parse(b"posthorn-cache 3 V7\nF 1 2 99999999999999999999 0 0\n", 7).is_none());
        assert!(parse(b"posthorn-cache 3 V7\nH 1 4\nd -\n\n", 7).is_some());
        // A version 2 file, whose dates have no offset, is not read.
        assert!(parse(b"posthorn-cache 2 V7\nH 1 4\nd -\n\n", 7).is_none());
        // Fields that do not decode are found only when asked for, and
        // then count as not cached.
        std::fs::write(
            d.path().join(FILE),
            b"posthorn-cache 3 V7\nH 1 4\nd x\n\nH 2 12\nd -\nh s 9\nab\nH 3 8\nd 5 -60\n\nH 4 4\nd 5\n\n",
        )
        .unwrap();
        let c = Cache::load(d.path(), 7);
        assert!(c.get_head(1).is_none() && c.get_head(2).is_none());
        assert_eq!(
            c.get_head(3).and_then(|t| t.sent),
            Some(Written {
                utc: 5,
                offset: -60
            })
        );
        assert!(c.get_head(4).is_none());
        assert!(parse(b"posthorn-cache 3 V7\nX 1 4\nd -\n\n", 7).is_none());
    }

    #[test]
    fn a_version_1_file_is_ignored_and_replaced() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(FILE),
            b"posthorn-cache 1 V7\n1 42 3 0 0\nNIL\n",
        )
        .unwrap();
        let mut c = Cache::load(d.path(), 7);
        assert!(c.get(1).is_none());
        c.insert_head(1, Text::default());
        c.save(&[1]);
        let c = Cache::load(d.path(), 7);
        assert_eq!(c.get_head(1).map(|x| &**x), Some(&Text::default()));
        let full = std::fs::read(d.path().join(FILE)).unwrap();
        assert!(full.starts_with(b"posthorn-cache 3 V7\n"));
    }
}
