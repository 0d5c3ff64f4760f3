//! folders - the user's Maildir++ folder tree: INBOX is the Maildir
//! itself, `A.B` is the directory `.A.B` beside cur/ (the separator `.`,
//! as Dovecot's default), names on disk in modified UTF-7 exactly as the
//! client sends them. LIST/LSUB matching with `*` and `%`, CREATE,
//! DELETE, RENAME (INBOX too), and the `subscriptions` file.
//!
//! Distrusts mailbox names: a name becomes a path only after `check`
//! (no `/`, no empty level, no leading `.` or `~`, valid modified UTF-7,
//! no control characters), so no name can leave the Maildir.

use crate::uidlist::DotLock;
use std::io;
use std::path::{Path, PathBuf};

pub use posthorn_store::folder::{SEP, is_inbox};
pub const SUBSCRIPTIONS: &str = "subscriptions";

pub use posthorn_store::folder::check;

/// The user's folders.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
}

/// One LIST answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub noselect: bool,
    pub children: bool,
}

impl Tree {
    /// path - the directory of mailbox `name` (checked first).
    pub fn path(&self, name: &str) -> Result<PathBuf, &'static str> {
        check(name)?;
        if is_inbox(name) {
            return Ok(self.root.clone());
        }
        Ok(self.root.join(format!(".{name}")))
    }

    /// exists - whether `name` is a selectable folder.
    pub fn exists(&self, name: &str) -> bool {
        self.path(name).is_ok_and(|p| p.join("cur").is_dir())
    }

    /// names - every folder name on disk, INBOX first.
    pub fn names(&self) -> Vec<String> {
        let mut v = vec!["INBOX".to_string()];
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return v;
        };
        let mut more: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_prefix('.').map(str::to_string))
            .filter(|n| check(n).is_ok() && !is_inbox(n))
            .filter(|n| self.root.join(format!(".{n}")).join("cur").is_dir())
            .collect();
        more.sort();
        v.extend(more);
        v
    }

    /// list - the names matching `reference`+`pattern` (RFC 3501 §6.3.8),
    /// with parents that have no folder of their own as \Noselect.
    pub fn list(&self, reference: &str, pattern: &str) -> Vec<Listed> {
        let full = format!("{reference}{pattern}");
        let names = self.names();
        let mut all: Vec<Listed> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut add = |name: String, noselect: bool| {
            if seen.insert(name.clone()) {
                all.push(Listed {
                    name,
                    noselect,
                    children: false,
                });
            }
        };
        for n in &names {
            add(n.clone(), false);
            // Missing parents exist as \Noselect levels.
            let mut at = 0;
            while let Some(i) = n[at..].find(SEP) {
                let parent = &n[..at + i];
                if !names.iter().any(|x| x == parent) {
                    add(parent.to_string(), true);
                }
                at += i + 1;
            }
        }
        for i in 0..all.len() {
            let prefix = format!("{}{SEP}", all[i].name);
            all[i].children = all.iter().any(|x| x.name.starts_with(&prefix));
        }
        let mut out: Vec<Listed> = all
            .into_iter()
            .filter(|l| matches(&full, &l.name))
            .collect();
        // INBOX first, then by name, parents before their children.
        out.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
        out
    }

    /// create - a new folder (with tmp/, new/, cur/ and the Maildir++
    /// `maildirfolder` marker); a trailing separator is dropped.
    pub fn create(&self, name: &str) -> Result<(), String> {
        posthorn_store::folder::create(&self.root, name)
    }

    /// delete - remove a folder and its messages; its children stay
    /// (they are separate directories in Maildir++).
    pub fn delete(&self, name: &str) -> Result<(), String> {
        if is_inbox(name) {
            return Err("INBOX cannot be deleted".into());
        }
        let p = self.path(name).map_err(str::to_string)?;
        if !p.join("cur").is_dir() {
            return Err("[NONEXISTENT] no such mailbox".into());
        }
        // Renamed away first, so no other session finds a half-deleted
        // folder; then removed.
        let gone = self.root.join(format!(
            ".posthorn-deleted-{}-{}",
            std::process::id(),
            posthorn_sys::fsio::random_u64() as u32
        ));
        std::fs::rename(&p, &gone).map_err(|e| format!("cannot delete: {e}"))?;
        let _ = std::fs::remove_dir_all(&gone);
        Ok(())
    }

    /// rename - `from` and all its children to `to`; INBOX's messages
    /// move to a new folder and INBOX stays, empty (RFC 3501 §6.3.5).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), String> {
        let to = to.strip_suffix(SEP).unwrap_or(to);
        let src = self.path(from).map_err(str::to_string)?;
        let dst = self.path(to).map_err(str::to_string)?;
        if is_inbox(to) || dst.exists() {
            return Err("[ALREADYEXISTS] target mailbox already exists".into());
        }
        if is_inbox(from) {
            self.create(to)?;
            for sub in ["new", "cur"] {
                let rd = std::fs::read_dir(src.join(sub)).map_err(|e| e.to_string())?;
                for e in rd.flatten() {
                    let n = e.file_name();
                    std::fs::rename(e.path(), dst.join("cur").join(&n))
                        .map_err(|e| format!("cannot move messages: {e}"))?;
                }
            }
            return Ok(());
        }
        if !src.join("cur").is_dir()
            && !self
                .names()
                .iter()
                .any(|n| n.starts_with(&format!("{from}{SEP}")))
        {
            return Err("[NONEXISTENT] no such mailbox".into());
        }
        if to.starts_with(&format!("{from}{SEP}")) {
            return Err("cannot move a mailbox into itself".into());
        }
        let kids: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| n.starts_with(&format!("{from}{SEP}")))
            .collect();
        for k in &kids {
            let new = format!("{to}{}", &k[from.len()..]);
            if self.path(&new).map_err(str::to_string)?.exists() {
                return Err("[ALREADYEXISTS] a child of the target exists".into());
            }
        }
        if src.exists() {
            std::fs::rename(&src, &dst).map_err(|e| format!("cannot rename: {e}"))?;
        }
        for k in kids {
            let new = format!("{to}{}", &k[from.len()..]);
            let (a, b) = (
                self.path(&k).map_err(str::to_string)?,
                self.path(&new).map_err(str::to_string)?,
            );
            std::fs::rename(a, b).map_err(|e| format!("cannot rename: {e}"))?;
        }
        // Subscriptions follow the folders.
        let subs = self.subscriptions();
        if subs
            .iter()
            .any(|s| s == from || s.starts_with(&format!("{from}{SEP}")))
        {
            let moved: Vec<String> = subs
                .into_iter()
                .map(|s| {
                    if s == from || s.starts_with(&format!("{from}{SEP}")) {
                        format!("{to}{}", &s[from.len()..])
                    } else {
                        s
                    }
                })
                .collect();
            let _ = self.write_subscriptions(&moved);
        }
        let _ = posthorn_sys::fsio::fsync_dir(&self.root);
        Ok(())
    }

    /// subscriptions - the subscribed names. Reads Dovecot's version 2
    /// file (`V\t2`, a blank line, names with levels separated by tabs)
    /// and the older one name per line.
    pub fn subscriptions(&self) -> Vec<String> {
        let Ok(b) = std::fs::read(self.root.join(SUBSCRIPTIONS)) else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(&b);
        let mut lines = text.lines().peekable();
        let v2 = lines.peek().is_some_and(|l| *l == "V\t2");
        if v2 {
            lines.next();
        }
        lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                if v2 {
                    l.replace('\t', ".")
                } else {
                    l.to_string()
                }
            })
            .collect()
    }

    /// write_subscriptions - one name per line, replaced atomically.
    fn write_subscriptions(&self, names: &[String]) -> io::Result<()> {
        let lock = DotLock::acquire(&self.root, SUBSCRIPTIONS)?;
        let mut text = String::new();
        for n in names {
            text.push_str(n);
            text.push('\n');
        }
        lock.replace(text.as_bytes())
    }

    /// subscribe - add or remove `name` from the subscriptions.
    pub fn subscribe(&self, name: &str, on: bool) -> Result<(), String> {
        check(name).map_err(str::to_string)?;
        let name = if is_inbox(name) { "INBOX" } else { name };
        let mut subs = self.subscriptions();
        let had = subs.iter().any(|s| s == name);
        if on && !had {
            subs.push(name.to_string());
        } else if !on && had {
            subs.retain(|s| s != name);
        } else {
            return Ok(());
        }
        self.write_subscriptions(&subs)
            .map_err(|e| format!("cannot write subscriptions: {e}"))
    }

    /// lsub - subscribed names matching the pattern; a parent that
    /// matches `%` only through a subscribed child is \Noselect.
    pub fn lsub(&self, reference: &str, pattern: &str) -> Vec<Listed> {
        self.lsub_as(reference, pattern, &|n| n.to_string())
    }

    /// lsub_as - `lsub`, matching each name in the form `view` gives it
    /// (UTF-8 for a client that enabled it).
    pub fn lsub_as(
        &self,
        reference: &str,
        pattern: &str,
        view: &dyn Fn(&str) -> String,
    ) -> Vec<Listed> {
        let full = format!("{reference}{pattern}");
        let mut out: Vec<Listed> = Vec::new();
        for s in self.subscriptions() {
            if matches(&full, &view(&s)) {
                if !out.iter().any(|l| l.name == s) {
                    out.push(Listed {
                        name: s.clone(),
                        noselect: !self.exists(&s),
                        children: false,
                    });
                }
                continue;
            }
            let mut at = 0;
            while let Some(i) = s[at..].find(SEP) {
                let parent = &s[..at + i];
                if full.ends_with('%')
                    && matches(&full, &view(parent))
                    && !out.iter().any(|l| l.name == parent)
                {
                    out.push(Listed {
                        name: parent.to_string(),
                        noselect: true,
                        children: true,
                    });
                }
                at += i + 1;
            }
        }
        out
    }
}

/// matches - LIST wildcard matching: `*` matches anything, `%` anything
/// but the separator; INBOX matches case-insensitively.
pub fn matches(pattern: &str, name: &str) -> bool {
    let name_cmp;
    // Sliced with get(): either may be UTF-8, where byte 5 or 6 can fall
    // inside a character.
    let name = if is_inbox(name)
        || name
            .get(..6)
            .is_some_and(|n| n.eq_ignore_ascii_case("INBOX."))
    {
        // Let the pattern's own INBOX spelling match.
        if pattern
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("INBOX"))
        {
            name_cmp = format!("{}{}", &pattern[..5], &name[5..]);
            name_cmp.as_str()
        } else {
            name
        }
    } else {
        name
    };
    /// m - match `p` against `n`, spending `budget`.
    fn m(p: &[u8], n: &[u8], budget: &mut u32) -> bool {
        *budget = budget.saturating_sub(1);
        if *budget == 0 {
            return false;
        }
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| m(&p[1..], &n[i..], budget)),
            Some(b'%') => {
                let stop = n.iter().position(|&c| c == SEP as u8).unwrap_or(n.len());
                (0..=stop).any(|i| m(&p[1..], &n[i..], budget))
            }
            Some(&c) => n.first() == Some(&c) && m(&p[1..], &n[1..], budget),
        }
    }
    // A bound on the work: patterns with many stars cannot take forever.
    let mut budget = 100_000;
    m(pattern.as_bytes(), name.as_bytes(), &mut budget)
}

/// ensure_root - the user's Maildir exists (a first login before any mail).
pub fn ensure_root(root: &Path) -> io::Result<()> {
    posthorn_store::maildir::ensure(root).map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("*", "a.b.c"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a.b"));
        assert!(matches("a.%", "a.b"));
        assert!(!matches("a.%", "a.b.c"));
        assert!(matches("a*c", "a.b.c"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("Inbox.%", "INBOX.x"));
        assert!(!matches("x", "INBOX"));
        // Regression: a UTF-8 pattern (a literal, or UTF8=ACCEPT) beside
        // INBOX sliced a character in two and panicked.
        assert!(!matches("日本語.%", "INBOX"));
        assert!(!matches("日本語.%", "INBOX.x"));
        assert!(matches("日%", "日本語"));
        assert!(!matches("Inbox", "Entwürfe"));
        // A pathological pattern must end (quickly); its answer is beside the point.
        let _ = matches(&"*".repeat(40), &format!("{}!", "a".repeat(40)));
    }

    #[test]
    fn tree_operations() {
        let d = tempfile::tempdir().unwrap();
        ensure_root(d.path()).unwrap();
        let t = Tree {
            root: d.path().to_path_buf(),
        };
        t.create("a.b").unwrap();
        t.create("c.").unwrap();
        assert!(t.create("c").is_err());
        assert!(t.create("INBOX").is_err());
        let l = t.list("", "%");
        let names: Vec<_> = l
            .iter()
            .map(|x| (x.name.as_str(), x.noselect, x.children))
            .collect();
        assert_eq!(
            names,
            [
                ("INBOX", false, false),
                ("a", true, true),
                ("c", false, false)
            ]
        );
        assert_eq!(t.list("a.", "%").len(), 1);
        t.subscribe("a.b", true).unwrap();
        t.rename("a", "x").unwrap();
        assert!(t.exists("x.b") && !t.exists("a.b"));
        assert_eq!(t.subscriptions(), ["x.b"]);
        let l = t.lsub("", "%");
        assert_eq!(l[0].name, "x");
        assert!(l[0].noselect);
        std::fs::write(d.path().join("new/1.M1.h"), "m\n").unwrap();
        t.rename("INBOX", "old").unwrap();
        assert!(d.path().join(".old/cur/1.M1.h").exists());
        assert!(t.exists("INBOX"));
        t.delete("old").unwrap();
        assert!(!t.exists("old"));
        assert!(t.delete("INBOX").is_err());
        assert!(t.delete("nope").is_err());
    }
}
