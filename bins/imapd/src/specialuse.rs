//! specialuse - special-use attributes (RFC 6154) kept per folder, and
//! the special folders a new user gets.
//!
//! A folder's attributes come from the file `posthorn-special-use` in
//! its directory when there is one (CREATE-SPECIAL-USE, §3, writes it:
//! one attribute a line), else from its name (`special_use` in
//! session.rs: Sent, Drafts, Trash, Junk, Archive and their common
//! variants). Dovecot keeps special use in dovecot.conf instead, per
//! server and by name; it ignores the file, so a Maildir shared with it
//! loses only the attributes CREATE gave, never a message.
//!
//! At a user's first login, the folders `[imap] folders` names are made
//! (subscribed, with their special use) unless the user already has a
//! folder of that name or that use; the marker `posthorn-folders` in
//! the Maildir says it was done, so a folder the user deletes stays
//! deleted.
//!
//! Distrusts the file: only the attributes in SUPPORTED count, and at
//! most MAX_ATTRS of them.

use crate::folders::{self, Tree};
use crate::session::{Action, Session, line, special_use};
use std::path::Path;

/// The per-folder file of stored attributes.
pub use posthorn_store::folder::USE_FILE;
/// The Maildir's marker: the first-login folders were made.
pub const MARKER: &str = "posthorn-folders";
/// The attributes a folder can be given: the ones that name a real
/// folder (\All and \Flagged are virtual views we do not have).
pub const SUPPORTED: [&str; 5] = ["\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"];
const MAX_ATTRS: usize = 8;

/// canonical - a client's attribute as we spell it, if we support it.
pub fn canonical(attr: &str) -> Option<&'static str> {
    SUPPORTED
        .iter()
        .find(|s| s.eq_ignore_ascii_case(attr))
        .copied()
}

/// stored - the attributes in a folder's file, None without one.
pub fn stored(dir: &Path) -> Option<Vec<&'static str>> {
    let text = std::fs::read_to_string(dir.join(USE_FILE)).ok()?;
    let mut v: Vec<&'static str> = Vec::new();
    for a in text.lines().filter_map(|l| canonical(l.trim())) {
        if !v.contains(&a) && v.len() < MAX_ATTRS {
            v.push(a);
        }
    }
    Some(v)
}

/// store - write a folder's attributes (tmp, fsync, rename).
pub fn store(dir: &Path, attrs: &[&str]) -> std::io::Result<()> {
    let mut text = attrs.join("\n");
    text.push('\n');
    posthorn_sys::fsio::write_atomic(&dir.join(USE_FILE), text.as_bytes(), 0o600)
}

/// attributes - a folder's special-use attributes: stored, else by name.
pub fn attributes(tree: &Tree, name: &str) -> Vec<&'static str> {
    if folders::is_inbox(name) {
        return Vec::new();
    }
    if let Some(v) = tree.path(name).ok().and_then(|d| stored(&d)) {
        return v;
    }
    special_use(name).into_iter().collect()
}

/// provision - at login, make the configured folders once (see the
/// module comment); problems are logged, never a failed login.
pub fn provision(root: &Path, names: &[String]) {
    if names.is_empty() || root.join(MARKER).exists() {
        return;
    }
    if folders::ensure_root(root).is_err() {
        return;
    }
    let tree = Tree {
        root: root.to_path_buf(),
    };
    let existing = tree.list("", "*");
    let taken: Vec<&'static str> = existing
        .iter()
        .flat_map(|l| attributes(&tree, &l.name))
        .collect();
    let mut made = Vec::new();
    for n in names {
        let attr = special_use(n);
        let exists = existing.iter().any(|l| l.name.eq_ignore_ascii_case(n));
        if exists || attr.is_some_and(|a| taken.contains(&a)) {
            continue;
        }
        if let Err(e) = tree.create(n) {
            posthorn_sys::warning!("{}: creating {n}: {e}", root.display());
            return;
        }
        if let (Some(a), Ok(dir)) = (attr, tree.path(n))
            && let Err(e) = store(&dir, &[a])
        {
            posthorn_sys::warning!("{}: special use of {n}: {e}", root.display());
        }
        made.push(n.as_str());
    }
    for n in &made {
        if let Err(e) = tree.subscribe(n, true) {
            posthorn_sys::warning!("{}: subscribing {n}: {e}", root.display());
        }
    }
    let text = format!("{}\n", names.join("\n"));
    if let Err(e) = posthorn_sys::fsio::write_atomic(&root.join(MARKER), text.as_bytes(), 0o600) {
        posthorn_sys::warning!("{}: {MARKER}: {e}", root.display());
    }
}

impl Session {
    /// create_use - CREATE name (USE (attrs)) (RFC 6154 §3): the folder
    /// with its attributes, or no folder at all.
    pub(crate) fn create_use(&mut self, tag: &str, name: &str, uses: &[String]) -> Vec<Action> {
        let mut attrs: Vec<&'static str> = Vec::new();
        for u in uses {
            match canonical(u) {
                Some(a) if !attrs.contains(&a) => attrs.push(a),
                Some(_) => {}
                None => {
                    return vec![line(&format!(
                        "{tag} NO [USEATTR] {u} is not a special use this server supports"
                    ))];
                }
            }
        }
        let tree = self.tree();
        if let Err(e) = tree.create(name) {
            return self.done(tag, true, &format!("NO {e}"));
        }
        if !attrs.is_empty() {
            let name = name.strip_suffix(folders::SEP).unwrap_or(name);
            let r = tree
                .path(name)
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|d| store(&d, &attrs));
            if let Err(e) = r {
                posthorn_sys::warning!("{}: special use of {name}: {e}", tree.root.display());
                let _ = tree.delete(name);
                return vec![line(&format!(
                    "{tag} NO [SERVERBUG] cannot store the special use: {e}"
                ))];
            }
        }
        self.done(tag, true, "OK CREATE completed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_wins_over_the_name() {
        let d = tempfile::tempdir().unwrap();
        let tree = Tree {
            root: d.path().to_path_buf(),
        };
        folders::ensure_root(d.path()).unwrap();
        tree.create("Sent").unwrap();
        tree.create("Outbox").unwrap();
        assert_eq!(attributes(&tree, "Sent"), ["\\Sent"]);
        assert!(attributes(&tree, "Outbox").is_empty());
        store(&tree.path("Outbox").unwrap(), &["\\Sent"]).unwrap();
        store(&tree.path("Sent").unwrap(), &[]).unwrap();
        assert_eq!(attributes(&tree, "Outbox"), ["\\Sent"]);
        assert!(attributes(&tree, "Sent").is_empty());
        // Junk in the file is ignored.
        std::fs::write(
            tree.path("Outbox").unwrap().join(USE_FILE),
            "\\All\nbogus\n\\trash\n",
        )
        .unwrap();
        assert_eq!(attributes(&tree, "Outbox"), ["\\Trash"]);
    }

    #[test]
    fn provision_once() {
        let d = tempfile::tempdir().unwrap();
        let tree = Tree {
            root: d.path().to_path_buf(),
        };
        folders::ensure_root(d.path()).unwrap();
        tree.create("Sent Items").unwrap();
        let names: Vec<String> = ["Drafts", "Sent", "Trash"].map(String::from).to_vec();
        provision(d.path(), &names);
        let listed: Vec<String> = tree.list("", "*").into_iter().map(|l| l.name).collect();
        // Sent Items already is \Sent: no second one.
        assert_eq!(listed, ["INBOX", "Drafts", "Sent Items", "Trash"]);
        assert_eq!(tree.lsub("", "*").len(), 2);
        tree.delete("Trash").unwrap();
        provision(d.path(), &names);
        assert!(!tree.path("Trash").unwrap().exists());
    }
}
