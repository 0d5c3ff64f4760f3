//! keywords - a Maildir folder's `dovecot-keywords` file, as Dovecot's
//! maildir-keywords.c writes it: `<index> <name>` lines, the index being
//! the letter (`a` + index) that marks the keyword in file names.
//!
//! Distrusts the file: a keyword is an IMAP atom or it is not stored, and
//! at most 26 exist per folder (the letters), as in Dovecot.

use crate::dotlock::DotLock;
use std::io;
use std::path::Path;

pub const KEYWORDS_FILE: &str = "dovecot-keywords";

/// A folder's keyword names by letter index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    pub names: Vec<Option<String>>,
}

/// is_atom - an IMAP flag keyword: atom characters, no `\`.
pub fn is_keyword(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

impl Keywords {
    /// parse - the text of `dovecot-keywords`.
    pub fn parse(text: &str) -> Keywords {
        let mut k = Keywords::default();
        for line in text.lines() {
            let Some((i, name)) = line.split_once(' ') else {
                continue;
            };
            let Ok(i) = i.parse::<usize>() else { continue };
            if i >= 26 || !is_keyword(name) || k.index(name).is_some() {
                continue;
            }
            if k.names.len() <= i {
                k.names.resize(i + 1, None);
            }
            k.names[i] = Some(name.to_string());
        }
        k
    }

    /// read - the folder's keywords; none when the file is missing.
    pub fn read(dir: &Path) -> Keywords {
        match std::fs::read(dir.join(KEYWORDS_FILE)) {
            Ok(b) => Keywords::parse(&String::from_utf8_lossy(&b)),
            Err(_) => Keywords::default(),
        }
    }

    /// render - `<index> <name>` lines.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if let Some(n) = n {
                s.push_str(&format!("{i} {n}\n"));
            }
        }
        s
    }

    /// index - the letter index of keyword `name` (case-insensitive, as
    /// IMAP flags are).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }

    /// names_of - the keyword names set in `bits`.
    pub fn names_of(&self, bits: u32) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .filter_map(|(_, n)| n.as_deref())
    }

    /// all - every keyword name, for the FLAGS response.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.names.iter().filter_map(|n| n.as_deref())
    }

    /// ensure - the indexes of `wanted`, adding the missing ones to the
    /// folder's file. Keywords past the 26th are dropped (None), as
    /// Dovecot does.
    ///
    /// Written as Dovecot writes it (maildir-keywords.c), or a Dovecot
    /// beside us reads it wrong: new keywords only under the folder's
    /// uidlist lock, which is what keeps two writers apart (Dovecot
    /// removes `dovecot-keywords.lock` whenever it commits), and a file
    /// whose modification time is above the last one's, since Dovecot
    /// reads the file again only when that time changed: a letter it
    /// cannot name it calls `unknown-N`, and writes so.
    pub fn ensure(&mut self, dir: &Path, wanted: &[String]) -> io::Result<Vec<Option<usize>>> {
        if wanted.iter().all(|w| self.index(w).is_some()) {
            return Ok(wanted.iter().map(|w| self.index(w)).collect());
        }
        let lock = DotLock::acquire(dir, UIDLIST_FILE)?;
        *self = Keywords::read(dir);
        let mut changed = false;
        for w in wanted {
            if self.index(w).is_some() || !is_keyword(w) {
                continue;
            }
            let slot = self.names.iter().position(Option::is_none);
            match slot {
                Some(i) => self.names[i] = Some(w.clone()),
                None if self.names.len() < 26 => self.names.push(Some(w.clone())),
                None => continue,
            }
            changed = true;
        }
        if changed {
            write(dir, self.render().as_bytes())?;
        }
        drop(lock);
        Ok(wanted.iter().map(|w| self.index(w)).collect())
    }
}

/// The folder's uidlist, whose lock guards new keywords too.
const UIDLIST_FILE: &str = "dovecot-uidlist";

/// write - `dovecot-keywords` replaced atomically (fsio::write_atomic),
/// with a modification time above the old file's, in whole seconds as
/// Dovecot compares them. (Set after the rename: a Dovecot that reads the
/// new file in between sees the time change again, and reads it twice.)
fn write(dir: &Path, data: &[u8]) -> io::Result<()> {
    use std::time::{Duration, SystemTime};
    let path = dir.join(KEYWORDS_FILE);
    let old = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    posthorn_sys::fsio::write_atomic(&path, data, 0o600)?;
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let new = std::fs::metadata(&path).and_then(|m| m.modified())?;
    if let Some(old) = old
        && secs(new) <= secs(old)
    {
        let f = std::fs::File::options().write(true).open(&path)?;
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs(old) + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_file() {
        let k = Keywords::parse("0 $Junk\n1 foo\n3 NonJunk\nbad\n30 x\n2 a\\b\n");
        assert_eq!(k.index("$junk"), Some(0));
        assert_eq!(k.index("nonjunk"), Some(3));
        assert_eq!(k.index("a\\b"), None);
        assert_eq!(k.names_of(0b1001).collect::<Vec<_>>(), ["$Junk", "NonJunk"]);
        assert_eq!(k.render(), "0 $Junk\n1 foo\n3 NonJunk\n");
        let d = tempfile::tempdir().unwrap();
        let mut k = Keywords::default();
        let idx = k
            .ensure(d.path(), &["one".into(), "two".into(), "one".into()])
            .unwrap();
        assert_eq!(idx, [Some(0), Some(1), Some(0)]);
        assert_eq!(Keywords::read(d.path()), k);
        let many: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
        let idx = k.ensure(d.path(), &many).unwrap();
        assert_eq!(idx.iter().filter(|i| i.is_some()).count(), 24);
    }
}
