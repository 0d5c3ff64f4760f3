//! folder - Maildir++ folders (`.A.B` beside cur/, names in modified
//! UTF-7, `.` between levels, as Dovecot's default layout): name checks,
//! creation, and the special use a name implies. imapd and deliver's
//! Sieve fileinto both go through here.
//!
//! Distrusts folder names: a name becomes a path only after `check` (no
//! `/`, no empty level, no leading `.` or `~`, valid modified UTF-7, no
//! control characters), so no name can leave the Maildir.

use std::io;
use std::path::{Path, PathBuf};

/// The per-folder file of stored special-use attributes (RFC 6154), one
/// a line, as imapd's CREATE-SPECIAL-USE writes it.
pub const USE_FILE: &str = "posthorn-special-use";

/// The separator between levels, on disk and by default in IMAP.
pub const SEP: char = '.';
/// Longest mailbox name accepted.
const MAX_NAME: usize = 512;

/// is_inbox - INBOX is case-insensitive (RFC 3501 §5.1).
pub fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// check - a mailbox name from the client, safe to become a path.
pub fn check(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("bad mailbox name length");
    }
    if is_inbox(name) {
        return Ok(());
    }
    if name
        .bytes()
        .any(|b| !(0x20..0x7f).contains(&b) || b == b'/' || b == b'\\')
    {
        return Err("mailbox names are 7-bit (modified UTF-7) without / or \\");
    }
    if name.starts_with('~') || name.contains(['%', '*']) {
        // `%` and `*` would be wildcards in every later LIST.
        return Err("bad mailbox name");
    }
    if name.split(SEP).any(|l| l.is_empty()) {
        return Err("empty level in mailbox name");
    }
    if crate::utf7::decode(name).is_none() {
        return Err("invalid modified UTF-7 in mailbox name");
    }
    Ok(())
}

/// path - the directory of folder `name` (checked first) in `root`.
pub fn path(root: &Path, name: &str) -> Result<PathBuf, &'static str> {
    check(name)?;
    if is_inbox(name) {
        return Ok(root.to_path_buf());
    }
    Ok(root.join(format!(".{name}")))
}

/// create - a new folder (with tmp/, new/, cur/ and the Maildir++
/// `maildirfolder` marker), made whole under a temporary name and then
/// renamed, so no half-made folder is ever seen; a trailing separator is
/// dropped.
pub fn create(root: &Path, name: &str) -> Result<(), String> {
    let name = name.strip_suffix(SEP).unwrap_or(name);
    let p = path(root, name).map_err(str::to_string)?;
    if is_inbox(name) || p.exists() {
        return Err("[ALREADYEXISTS] mailbox already exists".into());
    }
    let tmp = root.join(format!(
        ".{name}.posthorn-create-{}-{:08x}",
        std::process::id(),
        posthorn_sys::fsio::random_u64() as u32
    ));
    let r = (|| -> io::Result<()> {
        std::fs::create_dir(&tmp)?;
        for s in ["tmp", "new", "cur"] {
            std::fs::create_dir(tmp.join(s))?;
        }
        std::fs::write(tmp.join("maildirfolder"), b"")?;
        std::fs::rename(&tmp, &p)?;
        posthorn_sys::fsio::fsync_dir(root)
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("cannot create: {e}"));
    }
    Ok(())
}

/// special_use - the RFC 6154 attribute a top-level folder has by its
/// name (the names Dovecot's sample configuration and the common clients
/// use); none for the rest.
pub fn special_use(name: &str) -> Option<&'static str> {
    Some(match name {
        "Sent" | "Sent Messages" | "Sent Items" => "\\Sent",
        "Drafts" => "\\Drafts",
        "Trash" | "Deleted Messages" | "Deleted Items" => "\\Trash",
        "Junk" | "Spam" => "\\Junk",
        "Archive" | "Archives" => "\\Archive",
        _ => return None,
    })
}

/// store_special_use - write a folder's attributes (whole, atomically).
pub fn store_special_use(dir: &Path, attrs: &[&str]) -> io::Result<()> {
    let mut text = attrs.join("\n");
    text.push('\n');
    posthorn_sys::fsio::write_atomic(&dir.join(USE_FILE), text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for bad in [
            "", "a/b", "a..b", ".a", "a.", "~x", "a\\b", "a\u{1}", "ä", "&Jjo", "..", "../x",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        for good in ["INBOX", "inbox", "Sent", "Lists.rust", "&Jjo-", "a b"] {
            assert!(check(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn create_makes_a_whole_folder() {
        let d = tempfile::tempdir().unwrap();
        create(d.path(), "a.b").unwrap();
        assert!(d.path().join(".a.b/cur").is_dir());
        assert!(d.path().join(".a.b/maildirfolder").is_file());
        assert!(create(d.path(), "a.b").is_err());
        assert!(create(d.path(), "../x").is_err());
        assert_eq!(special_use("Junk"), Some("\\Junk"));
    }
}
