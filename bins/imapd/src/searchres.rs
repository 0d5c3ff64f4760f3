//! searchres - `$`, the saved search result (RFC 5182): the sets of
//! FETCH, STORE, COPY, MOVE, UID EXPUNGE and the search keys of SEARCH,
//! SORT and THREAD that say `$` are replaced, before the command runs,
//! by the saved messages that still exist, as sequence numbers or UIDs.
//!
//! Distrusts time: the result is kept as UIDs, so a message expunged
//! since the SAVE drops out of it and sequence numbers are those of the
//! moment the command runs; an empty or never-saved `$` names nothing.

use crate::command::{Cmd, Key, SeqSet};
use crate::session::Session;

impl Session {
    /// resolve_saved - `cmd` with every `$` made a concrete set.
    pub(crate) fn resolve_saved(&self, cmd: Cmd) -> Cmd {
        match cmd {
            Cmd::Fetch {
                uid,
                set,
                atts,
                mods,
            } => Cmd::Fetch {
                uid,
                set: self.saved_set(uid, set),
                atts,
                mods,
            },
            Cmd::Store {
                uid,
                set,
                unchanged_since,
                mode,
                silent,
                flags,
            } => Cmd::Store {
                uid,
                set: self.saved_set(uid, set),
                unchanged_since,
                mode,
                silent,
                flags,
            },
            Cmd::Copy { uid, set, mailbox } => Cmd::Copy {
                uid,
                set: self.saved_set(uid, set),
                mailbox,
            },
            Cmd::Move { uid, set, mailbox } => Cmd::Move {
                uid,
                set: self.saved_set(uid, set),
                mailbox,
            },
            Cmd::UidExpunge(set) => Cmd::UidExpunge(self.saved_set(true, set)),
            Cmd::Search { uid, ret, key } => Cmd::Search {
                uid,
                ret,
                key: self.saved_key(key),
            },
            Cmd::Sort { uid, ret, by, key } => Cmd::Sort {
                uid,
                ret,
                by,
                key: self.saved_key(key),
            },
            Cmd::Thread {
                uid,
                references,
                key,
            } => Cmd::Thread {
                uid,
                references,
                key: self.saved_key(key),
            },
            other => other,
        }
    }

    /// saved_set - `set`, or for `$` the saved messages still here, by
    /// UID or by sequence number.
    fn saved_set(&self, uid: bool, set: SeqSet) -> SeqSet {
        if !set.is_saved() {
            return set;
        }
        let Some(s) = &self.sel else {
            return SeqSet(Vec::new());
        };
        let mut v = Vec::new();
        for (i, m) in s.folder.msgs.iter().enumerate() {
            if s.saved.binary_search(&m.uid).is_ok() {
                let n = u64::from(if uid { m.uid } else { i as u32 + 1 });
                // Runs become ranges, so that a set stays short.
                match v.last_mut() {
                    Some((_, hi)) if *hi + 1 == n => *hi = n,
                    _ => v.push((n, n)),
                }
            }
        }
        SeqSet(v)
    }

    /// saved_key - `key` with `$` resolved wherever a set stands in it.
    fn saved_key(&self, key: Key) -> Key {
        match key {
            Key::Seq(set) => Key::Seq(self.saved_set(false, set)),
            Key::Uid(set) => Key::Uid(self.saved_set(true, set)),
            Key::And(v) => Key::And(v.into_iter().map(|k| self.saved_key(k)).collect()),
            Key::Or(a, b) => Key::Or(Box::new(self.saved_key(*a)), Box::new(self.saved_key(*b))),
            Key::Not(a) => Key::Not(Box::new(self.saved_key(*a))),
            other => other,
        }
    }
}
