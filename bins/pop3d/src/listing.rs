//! listing - the maildrop's file list, remembered between sessions in
//! `posthorn-pop3-list` in the Maildir, so that a big Maildir whose new/
//! and cur/ have not changed is not read again at login. Dovecot's index
//! does the same: the kernel's readdir of 10,000 names (hashing each into
//! a tree) costs more than reading one file, and far more when the
//! directory blocks are not in the page cache.
//!
//! The file: a first line `posthorn-pop3-list 1 <new/ stamp> <cur/ stamp>`,
//! then one `new/NAME` or `cur/NAME` a line, in maildrop order. A stamp is
//! the directory's inode, mtime and ctime: any create, rename or unlink in
//! it changes them. The list is used only when both stamps are as they
//! are now; it is written only when neither directory changed in the
//! STABLE seconds before the scan, since a change in the same clock tick
//! as the last one would leave the stamp as it was. Only maildrops of
//! MIN_MESSAGES or more get one. It is a cache: deleting it is safe.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The file, in the Maildir.
pub const LIST_FILE: &str = "posthorn-pop3-list";
/// Fewer messages than this are listed from the directories every time.
pub const MIN_MESSAGES: usize = 1000;
/// How long both directories must have been unchanged before a scan for
/// its result to be written.
const STABLE: Duration = Duration::from_secs(2);
/// Largest list file read (a million long names).
const MAX_SIZE: u64 = 256 * 1024 * 1024;
const MAGIC: &str = "posthorn-pop3-list 1";

/// The state of new/ and cur/ before a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    text: String,
    /// Whether neither directory changed in the last STABLE seconds.
    stable: bool,
}

/// stamps - new/ and cur/ as they are now; None if one cannot be looked
/// at (the scan will say why).
pub fn stamps(dir: &Path) -> Option<Stamps> {
    let now = SystemTime::now();
    let mut text = String::from(MAGIC);
    let mut stable = true;
    for sub in ["new", "cur"] {
        match std::fs::metadata(dir.join(sub)) {
            Ok(m) => {
                text.push_str(&format!(
                    " {}:{}.{}:{}.{}",
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec()
                ));
                let changed = m.modified().ok()?;
                stable &= changed + STABLE <= now;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => text.push_str(" -"),
            Err(_) => return None,
        }
    }
    Some(Stamps { text, stable })
}

/// read - the remembered list (`new/NAME` or `cur/NAME`, in order) if it
/// was written for exactly these stamps; None otherwise.
pub fn read(dir: &Path, stamps: &Stamps) -> Option<Vec<String>> {
    let path = dir.join(LIST_FILE);
    let m = std::fs::symlink_metadata(&path).ok()?;
    if !m.is_file() || m.len() > MAX_SIZE {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let mut lines = text.split_terminator('\n');
    if lines.next()? != stamps.text {
        return None;
    }
    let mut rels = Vec::new();
    for l in lines {
        // Only what a scan could have produced: anything else, scan again.
        let name = l.strip_prefix("new/").or_else(|| l.strip_prefix("cur/"))?;
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            return None;
        }
        rels.push(l.to_string());
    }
    Some(rels)
}

/// write - remember `rels` for `stamps`, or remove a list that no longer
/// applies. Failure only costs a scan next time.
pub fn write<'a>(dir: &Path, stamps: &Stamps, rels: impl ExactSizeIterator<Item = &'a str>) {
    let path = dir.join(LIST_FILE);
    let n = rels.len();
    let mut ok = stamps.stable && n >= MIN_MESSAGES;
    let mut text = String::with_capacity(if ok {
        stamps.text.len() + 1 + n * 80
    } else {
        0
    });
    text.push_str(&stamps.text);
    text.push('\n');
    for r in rels {
        if !ok {
            break;
        }
        // A name with a line end cannot be written one a line.
        ok = !r.contains(['\n', '\r']);
        text.push_str(r);
        text.push('\n');
    }
    if !ok {
        if std::fs::symlink_metadata(&path).is_ok() {
            let _ = std::fs::remove_file(&path);
        }
        return;
    }
    let tmp = dir.join(format!("{LIST_FILE}.{}", std::process::id()));
    let done = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// age - set a directory's mtime back, as if it last changed long ago.
    fn age(dir: &Path) {
        let f = std::fs::File::open(dir).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    #[test]
    fn remembered_only_while_the_directories_are_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        std::fs::create_dir_all(m.join("new")).unwrap();
        std::fs::create_dir_all(m.join("cur")).unwrap();
        let rels: Vec<String> = (0..MIN_MESSAGES)
            .map(|i| format!("cur/{i}.a.h:2,S"))
            .collect();
        // Just changed: not written.
        let st = stamps(m).unwrap();
        assert!(!st.stable);
        write(m, &st, rels.iter().map(String::as_str));
        assert!(!m.join(LIST_FILE).exists());
        age(&m.join("new"));
        age(&m.join("cur"));
        let st = stamps(m).unwrap();
        assert!(st.stable);
        write(m, &st, rels.iter().map(String::as_str));
        assert_eq!(read(m, &st), Some(rels.clone()));
        // A delivery into new/ changes its stamp: the list is not used.
        std::fs::write(m.join("new/9.b.h"), "x\n").unwrap();
        let now = stamps(m).unwrap();
        assert_ne!(now, st);
        assert_eq!(read(m, &now), None);
        // Too few messages: the old list is removed.
        write(m, &st, rels[..10].iter().map(String::as_str));
        assert!(!m.join(LIST_FILE).exists());
    }

    #[test]
    fn a_list_with_anything_a_scan_cannot_give_is_not_used() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        std::fs::create_dir_all(m.join("cur")).unwrap();
        let st = stamps(m).unwrap();
        for bad in ["tmp/1.a.h", "cur/../x", "cur/.hidden", "cur/", "1.a.h"] {
            std::fs::write(
                m.join(LIST_FILE),
                format!("{}\ncur/1.a.h\n{bad}\n", st.text),
            )
            .unwrap();
            assert_eq!(read(m, &st), None, "{bad}");
        }
        std::fs::write(m.join(LIST_FILE), format!("{}\ncur/1.a.h\n", st.text)).unwrap();
        assert_eq!(read(m, &st), Some(vec!["cur/1.a.h".to_string()]));
    }
}
