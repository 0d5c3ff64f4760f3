//! listing - knowing that nothing in a folder changed without reading
//! it: the stamps (inode, mtime, ctime, size) of new/, cur/,
//! `dovecot-uidlist` and `dovecot-keywords`, and `posthorn-list`, the
//! folder's messages as the last full look found them. A session skips
//! the look (a readdir of both directories and the uidlist) while the
//! stamps stay as they were; a SELECT of a big folder whose stamps match
//! the file reads the file instead. Dovecot's index does the same.
//!
//! Any create, rename or unlink in a directory changes its mtime and
//! ctime, and every writer of the two files replaces them by rename (a
//! new inode) or appends (a new size). Clock ticks are coarse, though:
//! a change in the same tick as the stamps were taken could leave them
//! as they were, so stamps are trusted only when everything they cover
//! was last changed STABLE seconds or more before they were taken.
//!
//! The file: `posthorn-list 1 V<uidvalidity> N<next uid> <stamps>`, one
//! `<uid> <n|c> <file name>` line per message, and `end <count>`; a file
//! that does not end so (cut short) or whose stamps differ is not used.

use crate::flags::Flags;
use crate::folder::Msg;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub const FILE: &str = "posthorn-list";
/// Folders with fewer messages are looked at in full at SELECT.
#[cfg(not(test))]
pub const MIN_MESSAGES: usize = 1000;
#[cfg(test)]
pub const MIN_MESSAGES: usize = 1;
/// How long ago everything must have changed for the stamps to count.
const STABLE: Duration = Duration::from_secs(2);
/// Largest list read.
const MAX_SIZE: u64 = 512 * 1024 * 1024;

/// What a folder looked like at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    text: String,
    /// Nothing covered changed in the STABLE seconds before.
    pub stable: bool,
}

impl Stamps {
    /// same - whether nothing changed between two stamps.
    pub fn same(&self, other: &Stamps) -> bool {
        self.text == other.text
    }
}

/// stamps - the folder's stamps now; None when one cannot be looked at.
pub fn stamps(dir: &Path) -> Option<Stamps> {
    let now = SystemTime::now();
    let mut text = String::new();
    let mut stable = true;
    for name in [
        "new",
        "cur",
        crate::uidlist::FILE,
        crate::flags::KEYWORDS_FILE,
    ] {
        match std::fs::symlink_metadata(dir.join(name)) {
            Ok(m) => {
                text.push_str(&format!(
                    " {}:{}.{}:{}.{}:{}",
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                    m.size()
                ));
                let changed = m.modified().ok()?;
                let ctime = std::time::UNIX_EPOCH
                    + Duration::new(
                        m.ctime().max(0) as u64,
                        m.ctime_nsec().clamp(0, 999_999_999) as u32,
                    );
                stable &= changed.max(ctime) + STABLE <= now;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => text.push_str(" -"),
            Err(_) => return None,
        }
    }
    Some(Stamps { text, stable })
}

/// read - the messages, UIDVALIDITY and next UID the file holds, when it
/// was written for exactly `stamps`.
pub fn read(dir: &Path, stamps: &Stamps) -> Option<(u32, u32, Vec<Msg>)> {
    if !stamps.stable {
        return None;
    }
    let path = dir.join(FILE);
    let m = std::fs::symlink_metadata(&path).ok()?;
    if !m.is_file() || m.len() > MAX_SIZE {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let mut lines = text.split_terminator('\n');
    let head = lines.next()?;
    let rest = head.strip_prefix("posthorn-list 1 V")?;
    let (validity, rest) = rest.split_once(" N")?;
    let (next, st) = rest.split_once(' ')?;
    if format!(" {st}") != stamps.text {
        return None;
    }
    let mut msgs = Vec::new();
    let mut last = 0u32;
    for l in lines {
        if let Some(n) = l.strip_prefix("end ") {
            return (n.parse::<usize>().ok()? == msgs.len()).then_some((
                validity.parse().ok()?,
                next.parse().ok()?,
                msgs,
            ));
        }
        let mut f = l.splitn(3, ' ');
        let uid: u32 = f.next()?.parse().ok()?;
        let in_new = match f.next()? {
            "n" => true,
            "c" => false,
            _ => return None,
        };
        let name = f.next()?;
        if uid <= last || name.is_empty() || name.contains('/') {
            return None;
        }
        last = uid;
        msgs.push(Msg {
            uid,
            name: name.to_string(),
            in_new,
            flags: Flags::from_info(name.split_once(":2,").map_or("", |x| x.1)),
            recent: false,
            modseq: 0,
        });
    }
    None
}

/// write - remember `msgs` for `stamps` (a cache: failures are ignored).
pub fn write(dir: &Path, stamps: &Stamps, validity: u32, next: u32, msgs: &[Msg]) {
    let mut out = Vec::with_capacity(64 + msgs.len() * 64);
    let _ = writeln!(out, "posthorn-list 1 V{validity} N{next}{}", stamps.text);
    for m in msgs {
        let _ = writeln!(
            out,
            "{} {} {}",
            m.uid,
            if m.in_new { "n" } else { "c" },
            m.name
        );
    }
    let _ = writeln!(out, "end {}", msgs.len());
    let tmp = dir.join(format!("{FILE}.tmp{}", std::process::id()));
    let r = posthorn_sys::fsio::create_new(&tmp, 0o600)
        .and_then(|mut f| f.write_all(&out))
        .and_then(|()| std::fs::rename(&tmp, dir.join(FILE)));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_the_file() {
        let d = tempfile::tempdir().unwrap();
        for s in ["new", "cur", "tmp"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        let s = stamps(d.path()).unwrap();
        assert!(!s.stable, "just made");
        let msgs = vec![Msg {
            uid: 3,
            name: "1.M1.h:2,S".into(),
            in_new: false,
            flags: Flags::from_info("S"),
            recent: false,
            modseq: 0,
        }];
        let stable = Stamps {
            text: s.text.clone(),
            stable: true,
        };
        write(d.path(), &stable, 77, 4, &msgs);
        assert_eq!(read(d.path(), &stable), Some((77, 4, msgs.clone())));
        assert_eq!(read(d.path(), &s), None, "unstable stamps are not trusted");
        // Another folder state: not used.
        let other = Stamps {
            text: format!("{} x", s.text),
            stable: true,
        };
        assert_eq!(read(d.path(), &other), None);
        // Cut short: not used.
        let full = std::fs::read(d.path().join(FILE)).unwrap();
        std::fs::write(d.path().join(FILE), &full[..full.len() - 6]).unwrap();
        assert_eq!(read(d.path(), &stable), None);
        // A rename in cur/ changes the stamps.
        std::fs::write(d.path().join("cur/a"), "x").unwrap();
        let before = stamps(d.path()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::rename(d.path().join("cur/a"), d.path().join("cur/b")).unwrap();
        assert_ne!(stamps(d.path()).unwrap(), before);
    }
}
