//! arrivals - the look at a folder in IDLE when all the watch saw (see
//! watch.rs) is mail arriving in new/ and our own moves new/ -> cur/:
//! only the arrivals are moved and given UIDs, and their lines appended
//! to the uidlist, so a delivery costs the same in a folder of ten
//! messages or of a hundred thousand. Dovecot's maildir sync reads only
//! new/ when cur/ is unchanged for the same reason.
//!
//! Why nothing is missed: the watch is set before the first look of an
//! IDLE, which is a full one, and it reports every create, rename and
//! removal in new/ and cur/ after that (an overflow asks for a full
//! look). So when the events name only arrivals in new/ and the two
//! halves of our own moves, nothing else changed in either directory:
//! no flag rename, no expunge, no message moved by another session. The
//! uidlist may still have changed (another session listed new files):
//! its end is read under its lock (uidlist::read_tail: the lines from
//! the next UID of the last look up, which are all anyone can have
//! added since), and any entry there that is not one of the arrivals
//! sends us to a full look, as does anything unexpected (a rename that
//! fails, a base name the list already holds below that, a list of
//! another UIDVALIDITY, one that cannot be appended to).
//! Entries below it whose files were gone at the last look stay gone:
//! a file coming back would have sent an event.
//!
//! What this look does not do, the next full one does: drop the entries
//! of expunged files from the list, and trust the folder's stamps.

use super::{Changes, Folder, Msg, RECENT_FILE, delivery_order, read_recent, valid_name};
use crate::flags::{Flags, Keywords};
use crate::uidlist::{self, DotLock, NameMap, UidList, base_name};
use crate::watch::Seen;
use std::io;

impl Folder {
    /// sync_arrivals - the look `seen` allows without reading the
    /// directories, `moved` being the last look's own moves: Some with
    /// what changed, or None when a full look must follow.
    pub(super) fn sync_arrivals(
        &mut self,
        seen: &Seen,
        moved: Vec<(String, String)>,
    ) -> io::Result<Option<Changes>> {
        if seen.full || self.validity == 0 {
            return Ok(None);
        }
        let mut ours_new: NameMap<&str, ()> = moved.iter().map(|(n, _)| (n.as_str(), ())).collect();
        let mut ours_cur: NameMap<&str, ()> = moved.iter().map(|(_, c)| (c.as_str(), ())).collect();
        let mut arrived: Vec<&str> = Vec::new();
        for e in &seen.events {
            match (e.in_new, e.arrived) {
                (true, false) if ours_new.remove(e.name.as_str()).is_some() => {}
                (false, true) if ours_cur.remove(e.name.as_str()).is_some() => {}
                // Names a full look would skip are skipped here too.
                (true, true) => {
                    if valid_name(&e.name) {
                        arrived.push(&e.name);
                    }
                }
                _ => return Ok(None),
            }
        }
        // A file that came while the last look ran was moved by it.
        let moved_from: NameMap<&str, ()> = moved.iter().map(|(n, _)| (n.as_str(), ())).collect();
        arrived.retain(|n| !moved_from.contains_key(n));
        arrived.sort_by(|a, b| delivery_order(a, b));
        arrived.dedup();
        if arrived.is_empty() {
            // Our own moves only: the last look told them already.
            return Ok(Some(Changes::default()));
        }
        let bases: NameMap<&str, usize> = arrived
            .iter()
            .enumerate()
            .map(|(i, n)| (base_name(n), i))
            .collect();
        if bases.len() != arrived.len() {
            return Ok(None);
        }
        // To cur/, as move_new does (a read-write session only), under
        // the uidlist lock (Folder::rename_lock says why), kept for the
        // list below.
        let lock = DotLock::acquire(&self.dir, uidlist::FILE)?;
        let mut names: Vec<(bool, String)> = Vec::with_capacity(arrived.len());
        for a in &arrived {
            if self.read_only {
                names.push((true, a.to_string()));
                continue;
            }
            let to = if a.contains(":2,") {
                a.to_string()
            } else {
                format!("{a}:2,")
            };
            match std::fs::rename(self.dir.join("new").join(a), self.dir.join("cur").join(&to)) {
                Ok(()) => {
                    self.moved.push((a.to_string(), to.clone()));
                    names.push((false, to));
                }
                // Moved or removed by someone else meanwhile.
                Err(_) => return Ok(None),
            }
        }
        let wanted: Vec<&str> = bases.keys().copied().collect();
        let Some(tail) = uidlist::read_tail(&self.dir, self.next_uid, &wanted)? else {
            return Ok(None);
        };
        if tail.validity != self.validity || tail.listed_below || !tail.appendable {
            return Ok(None);
        }
        let mut uids = vec![0u32; names.len()];
        for e in &tail.entries {
            match bases.get(e.base()) {
                // Another session listed it first: that UID stands.
                Some(&i) => uids[i] = e.uid,
                // A message we have not seen: a full look takes it in.
                None => return Ok(None),
            }
        }
        let mut list = UidList {
            next_uid: tail.next_uid,
            entries: Vec::new(),
            ..UidList::fresh(tail.validity)
        };
        for (uid, (_, name)) in uids.iter_mut().zip(&names) {
            if *uid == 0 {
                *uid = list
                    .add(name)
                    .ok_or_else(|| io::Error::other("UIDs exhausted"))?;
            }
        }
        if !list.entries.is_empty() && !uidlist::append_in_place(&self.dir, &list.entries)? {
            return Ok(None);
        }
        // \Recent is claimed under the list's lock, as sync_list does.
        let mut recent_from = u32::MAX;
        if !self.read_only {
            let first = read_recent(&self.dir);
            if first < list.next_uid {
                posthorn_sys::fsio::write_atomic(
                    &self.dir.join(RECENT_FILE),
                    format!("{}\n", list.next_uid).as_bytes(),
                    0o600,
                )?;
                recent_from = first;
            }
        }
        drop(lock);
        let mut add: Vec<Msg> = names
            .into_iter()
            .zip(uids)
            .map(|((in_new, name), uid)| Msg {
                uid,
                flags: Flags::from_info(name.split_once(":2,").map_or("", |x| x.1)),
                name,
                in_new,
                recent: uid >= recent_from,
                modseq: 0,
            })
            .collect();
        add.sort_by_key(|m| m.uid);
        let ch = Changes {
            exists_changed: true,
            recent_changed: add.iter().any(|m| m.recent),
            ..Changes::default()
        };
        self.next_uid = self.next_uid.max(list.next_uid);
        let kw = Keywords::read(&self.dir);
        if kw != self.keywords {
            self.keywords = kw;
        }
        // The folder changed: the next plain look is a full one.
        self.stamps = None;
        let first = self.msgs.len();
        self.msgs.extend(add);
        let only: Vec<usize> = (first..self.msgs.len()).collect();
        self.note_modseqs(Some(&only), false);
        Ok(Some(ch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::{Watch, Woke};
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::time::Duration;

    fn maildir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for s in ["new", "cur", "tmp"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        d
    }

    /// deliver - a message into new/ the Maildir way, through tmp/.
    fn deliver(d: &Path, name: &str) {
        std::fs::write(d.join("tmp").join(name), "m\n").unwrap();
        std::fs::rename(d.join("tmp").join(name), d.join("new").join(name)).unwrap();
    }

    /// look - what IDLE does when the watch wakes: hand the folder what
    /// the watch saw, then sync.
    fn look(f: &mut Folder, w: &mut Watch) -> Changes {
        let (r, _keep) = nix::unistd::pipe().unwrap();
        assert_eq!(
            w.wait(r.as_fd(), Duration::from_secs(10)).unwrap(),
            Woke::Folder
        );
        f.saw(w.take_seen());
        f.sync().unwrap()
    }

    fn ino(d: &Path) -> u64 {
        std::fs::metadata(d.join(uidlist::FILE)).unwrap().ino()
    }

    #[test]
    fn a_delivery_is_read_alone_and_a_rename_beside_it_is_not_missed() {
        let d = maildir();
        for n in 1..=3 {
            std::fs::write(d.path().join(format!("cur/{n}.M1P1.h:2,")), "m\n").unwrap();
        }
        let mut f = Folder::open(d.path(), false).unwrap();
        let mut w = Watch::new(Some(d.path()));
        // The first look after the watch is set is a full one.
        f.saw(w.take_seen());
        assert_eq!(f.sync().unwrap(), Changes::default());

        // A delivery alone: moved, listed by appending, and told.
        let list = ino(d.path());
        deliver(d.path(), "10.M1P1.h");
        let ch = look(&mut f, &mut w);
        assert!(ch.exists_changed && ch.recent_changed);
        assert_eq!(ch.flags, Vec::<u32>::new());
        assert_eq!(ino(d.path()), list, "appended to, not rewritten");
        let m = f.msgs.last().unwrap();
        assert_eq!(
            (m.uid, m.name.as_str(), m.in_new),
            (4, "10.M1P1.h:2,", false)
        );
        assert!(m.recent && m.modseq == f.highest_modseq());
        assert!(d.path().join("cur/10.M1P1.h:2,").exists());
        // The list reads back whole, as a new session (or Dovecot) sees it.
        let l = uidlist::read(d.path()).unwrap().unwrap();
        assert_eq!((l.next_uid, l.entries.len()), (5, 4));
        let g = Folder::open(d.path(), true).unwrap();
        assert_eq!(
            g.msgs,
            f.msgs
                .iter()
                .map(|m| Msg {
                    recent: false,
                    ..m.clone()
                })
                .collect::<Vec<_>>()
        );

        // Our own move's events wake us, and need no look.
        assert_eq!(look(&mut f, &mut w), Changes::default());

        // A flag rename and an expunge by another process at the moment
        // of a delivery: a full look, which misses neither.
        std::fs::rename(
            d.path().join("cur/1.M1P1.h:2,"),
            d.path().join("cur/1.M1P1.h:2,S"),
        )
        .unwrap();
        std::fs::remove_file(d.path().join("cur/2.M1P1.h:2,")).unwrap();
        deliver(d.path(), "11.M1P1.h");
        let ch = look(&mut f, &mut w);
        assert_eq!(ch.flags, [1]);
        assert_eq!(ch.expunged, [2]);
        assert!(ch.exists_changed);
        assert_eq!(
            f.msgs.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [1, 3, 4, 5]
        );
        assert_eq!(f.msgs[0].flags, Flags::from_info("S"));
        assert_eq!(f.msgs[0].modseq, f.highest_modseq());
        look(&mut f, &mut w);

        // Another session moves and lists a delivery first: its UID
        // stands, and nothing is shown twice.
        deliver(d.path(), "12.M1P1.h");
        let mut other = Folder::open(d.path(), false).unwrap();
        assert_eq!(other.msgs.last().unwrap().uid, 6);
        let ch = look(&mut f, &mut w);
        assert!(ch.exists_changed);
        assert_eq!(
            f.msgs.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [1, 3, 4, 5, 6]
        );
        assert!(!f.msgs[4].in_new);

        // Another session lists a file whose event is not read yet (its
        // APPEND, say) as we take a delivery: not skipped past, a full
        // look takes it in order.
        crate::folder::append(d.path(), b"x\r\n", Flags::default(), None).unwrap();
        deliver(d.path(), "13.M1P1.h");
        f.saw(Seen {
            full: false,
            events: vec![crate::watch::Event {
                in_new: true,
                arrived: true,
                name: "13.M1P1.h".into(),
            }],
        });
        let ch = f.sync().unwrap();
        assert!(ch.exists_changed);
        assert_eq!(
            f.msgs.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [1, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(other.sync().unwrap().expunged, Vec::<u32>::new());
        assert_eq!(other.msgs.len(), 7);
    }

    #[test]
    fn a_read_only_session_lists_arrivals_where_they_are() {
        let d = maildir();
        let mut f = Folder::open(d.path(), true).unwrap();
        let mut w = Watch::new(Some(d.path()));
        f.saw(w.take_seen());
        f.sync().unwrap();
        deliver(d.path(), "1.M1P1.h");
        let ch = look(&mut f, &mut w);
        assert!(ch.exists_changed && !ch.recent_changed);
        assert_eq!(f.msgs.len(), 1);
        assert!(f.msgs[0].in_new && !f.msgs[0].recent);
        assert!(
            d.path().join("new/1.M1P1.h").exists(),
            "EXAMINE moves nothing"
        );
        // A read-write session claims it as recent later, with that UID.
        let g = Folder::open(d.path(), false).unwrap();
        assert_eq!((g.msgs[0].uid, g.msgs[0].recent), (f.msgs[0].uid, true));
    }
}
