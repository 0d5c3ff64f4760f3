//! listext - LIST with RFC 5258's extended syntax, as more of the
//! session: several patterns, the SUBSCRIBED selection (with
//! RECURSIVEMATCH's CHILDINFO), the SPECIAL-USE selection (RFC 6154),
//! and the return options SUBSCRIBED and STATUS (RFC 5819).
//!
//! Distrusts the subscriptions file: a subscribed name that is no folder
//! is \NonExistent, and only existing, selectable folders get a STATUS.

use crate::command::ListExt;
use crate::folders::{self, Listed, SEP};
use crate::session::{Action, Session};
use crate::specialuse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

/// One row of the answer.
#[derive(Debug, Default)]
struct Row {
    nonexistent: bool,
    children: bool,
    /// RECURSIVEMATCH: listed for a subscribed descendant.
    childinfo: bool,
}

impl Session {
    /// list_ext - an extended LIST.
    pub(crate) fn list_ext(&mut self, tag: &str, x: &ListExt) -> Vec<Action> {
        let sep = self.separator();
        let mut out = Vec::new();
        if x.patterns.iter().all(String::is_empty) {
            // The hierarchy delimiter, as in a plain LIST (§3).
            let _ = write!(out, "* LIST (\\Noselect) \"{sep}\" \"\"\r\n");
            let mut v = vec![Action::Reply(out)];
            v.extend(self.done(tag, true, "OK LIST completed"));
            return v;
        }
        let t = self.tree();
        // With `/` shown, no name has a `.`: such a pattern matches nothing.
        let usable = |s: &str| sep == '.' || !s.contains('.');
        let reference = x.reference.replace(sep, ".");
        let patterns: Vec<String> = x
            .patterns
            .iter()
            .filter(|p| usable(p) && usable(&x.reference))
            .map(|p| format!("{reference}{}", p.replace(sep, ".")))
            .collect();
        let all: HashMap<String, Listed> = t
            .list("", "*")
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let subs: HashSet<String> = t.subscriptions().into_iter().collect();
        // UTF-8 patterns match names' UTF-8 form (rev2.rs).
        let matched = |name: &str| {
            let name = self.view_name(name);
            patterns.iter().any(|p| folders::matches(p, &name))
        };
        let mut rows: BTreeMap<(bool, String), Row> = BTreeMap::new();
        // A level Maildir++ has only as a prefix of its children's
        // names is no mailbox: \NonExistent here (§3 wants it accurate),
        // where a plain LIST says \Noselect.
        let row_of = |name: &str| match all.get(name) {
            Some(l) => Row {
                nonexistent: l.noselect,
                children: l.children,
                ..Row::default()
            },
            None => Row {
                nonexistent: true,
                ..Row::default()
            },
        };
        if x.subscribed {
            for s in &subs {
                if matched(s) {
                    // An ancestor's CHILDINFO may be in already.
                    rows.entry((s != "INBOX", s.clone()))
                        .or_insert_with(|| row_of(s));
                } else if x.recursive {
                    // Ancestors that match get CHILDINFO (§3.5).
                    let mut at = 0;
                    while let Some(i) = s[at..].find(SEP) {
                        let parent = &s[..at + i];
                        if matched(parent) {
                            rows.entry((parent != "INBOX", parent.to_string()))
                                .or_insert_with(|| row_of(parent))
                                .childinfo = true;
                        }
                        at += i + 1;
                    }
                }
            }
        } else {
            for name in all.keys() {
                if matched(name) && (!x.special || !specialuse::attributes(&t, name).is_empty()) {
                    rows.insert((name != "INBOX", name.clone()), row_of(name));
                }
            }
        }
        for ((_, name), r) in &rows {
            let mut attrs = Vec::new();
            if r.nonexistent {
                attrs.push("\\NonExistent");
            }
            if r.children {
                attrs.push("\\HasChildren");
            } else if !r.nonexistent {
                attrs.push("\\HasNoChildren");
            }
            if (x.subscribed || x.ret_subscribed) && subs.contains(name) {
                attrs.push("\\Subscribed");
            }
            attrs.extend(specialuse::attributes(&t, name));
            let _ = write!(out, "* LIST ({}) \"{sep}\" ", attrs.join(" "));
            self.put_mailbox(&mut out, name);
            if r.childinfo {
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            // RFC 5819 §2: right after the mailbox's LIST response, and
            // none for a mailbox that cannot be selected.
            if let Some(items) = &x.status
                && !r.nonexistent
            {
                // A folder gone since the listing just has no STATUS.
                if let Ok(l) = self.status_line(name, items) {
                    out.extend_from_slice(&l);
                }
            }
        }
        let mut v = vec![Action::Reply(out)];
        v.extend(self.done(tag, true, "OK LIST completed"));
        v
    }
}
