//! watch - what an IDLE session (RFC 2177) sleeps on: the client's fd
//! and the selected folder's new/ and cur/ through inotify, so that a
//! delivery, a flag rename or an expunge by another process wakes it at
//! once; a timer when inotify is not there (another kernel, the watch
//! limit reached, a filesystem that sends no events), and a slow timer
//! beside inotify in case an event never comes (NFS, a queue overflow).
//!
//! Distrusts the event stream only so far: an event says "look again",
//! and the names it carries (Seen) let the folder look at just what they
//! name (a delivery into new/, our own moves new/ -> cur/) instead of
//! reading both directories (Folder::sync says when it may). Anything
//! the names cannot tell exactly (a queue overflow, a watch gone, a
//! wake by the timer, too many events, the first look after the watch
//! was set) asks for a full look.
//!
//! Events come in bursts: the queue is drained before each look, so one
//! look answers all that came while the last one ran. A burst that may
//! need a full look (something left cur/: a flag rename or an expunge,
//! thousands at a time for a STORE 1:* by another client) is waited out
//! for SETTLE first, so that it costs one or two full looks, not one per
//! event. Arrivals in new/ and the moves to cur/ are not waited for: the
//! folder answers them without a full look, and an extra look costs
//! what the arrivals cost.
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

/// Without inotify: how often the folder is looked at.
pub const POLL: Duration = Duration::from_secs(1);
/// With inotify: a look anyway, for changes that sent no event.
pub const RESCAN: Duration = Duration::from_secs(30);
/// A burst that may need a full look is waited out this long.
const SETTLE: Duration = Duration::from_millis(20);
/// Most events kept between two looks; more ask for a full look.
const MAX_EVENTS: usize = 4096;
/// Most reads of the queue in one drain (each up to 4 KiB of events).
const MAX_READS: usize = 1024;

/// Why a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Woke {
    /// The client sent something.
    Client,
    /// The folder may have changed (an event, or the timer).
    Folder,
    /// The time allowed ran out.
    Timeout,
}

/// One named change in new/ or cur/.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// In new/ (else in cur/).
    pub in_new: bool,
    /// A name appeared (created, renamed or linked in); else it went
    /// (renamed away or removed).
    pub arrived: bool,
    pub name: String,
}

/// What the watch saw since the folder's last look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Something the events below do not tell exactly: look at all.
    pub full: bool,
    /// In the order they happened.
    pub events: Vec<Event>,
}

impl Seen {
    /// everything - a Seen that asks for a full look.
    pub fn everything() -> Seen {
        Seen {
            full: true,
            events: Vec::new(),
        }
    }

    /// note - keep one event, or give up on names past MAX_EVENTS.
    fn note(&mut self, e: Event) {
        if self.full {
            return;
        }
        if self.events.len() >= MAX_EVENTS {
            *self = Seen::everything();
            return;
        }
        self.events.push(e);
    }

    /// settles - whether a burst should be waited out first: it may
    /// need a full look (see the module comment).
    fn settles(&self) -> bool {
        self.full || self.events.iter().any(|e| !e.in_new && !e.arrived)
    }
}

/// A sleeping session's view of its folder.
#[derive(Debug)]
pub struct Watch {
    ino: Option<Inotify>,
    /// The watches on new/ and cur/.
    wds: Option<(WatchDescriptor, WatchDescriptor)>,
    /// How long to sleep before looking at the folder unasked; None with
    /// no folder to look at.
    tick: Option<Duration>,
    /// What changed since the last take_seen.
    seen: Seen,
}

impl Watch {
    /// new - watch the Maildir folder `dir` (none: only the client).
    pub fn new(dir: Option<&Path>) -> Watch {
        // The first look is a full one: what changed before the watch
        // was set sent no event.
        let seen = Seen::everything();
        let Some(dir) = dir else {
            return Watch {
                ino: None,
                wds: None,
                tick: None,
                seen,
            };
        };
        let (ino, wds) = match inotify(dir) {
            Some((i, w)) => (Some(i), Some(w)),
            None => (None, None),
        };
        let tick = if ino.is_some() { RESCAN } else { POLL };
        Watch {
            ino,
            wds,
            tick: Some(tick),
            seen,
        }
    }

    /// uses_inotify - whether events wake us (else the timer alone).
    pub fn uses_inotify(&self) -> bool {
        self.ino.is_some()
    }

    /// take_seen - what changed since the last call (or since the watch
    /// was set), for the folder's next look.
    pub fn take_seen(&mut self) -> Seen {
        std::mem::replace(
            &mut self.seen,
            Seen {
                full: false,
                events: Vec::new(),
            },
        )
    }

    /// wait - sleep until the client sends, the folder may have changed,
    /// or `limit` has passed.
    pub fn wait(&mut self, client: BorrowedFd, limit: Duration) -> std::io::Result<Woke> {
        let (span, timer) = match self.tick {
            Some(t) if t < limit => (t, Woke::Folder),
            _ => (limit, Woke::Timeout),
        };
        let ms = PollTimeout::try_from(span).unwrap_or(PollTimeout::MAX);
        let (client_ready, event) = {
            let mut fds = vec![PollFd::new(client, PollFlags::POLLIN)];
            if let Some(i) = &self.ino {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            loop {
                match poll(&mut fds, ms) {
                    Ok(0) => {
                        if timer == Woke::Folder {
                            // Unasked: a change may have sent no event.
                            self.seen = Seen::everything();
                        }
                        return Ok(timer);
                    }
                    Ok(_) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if client_ready {
            // The client first: DONE (or a hang-up) ends the wait.
            return Ok(Woke::Client);
        }
        if event {
            self.drain();
            if self.seen.settles() {
                std::thread::sleep(SETTLE);
                self.drain();
            }
        } else {
            self.seen = Seen::everything();
        }
        Ok(Woke::Folder)
    }

    /// drain - read the queued events into `seen`.
    fn drain(&mut self) {
        let (Some(i), Some((new, cur))) = (&self.ino, self.wds) else {
            self.seen = Seen::everything();
            return;
        };
        // Non-blocking: EAGAIN when the queue is empty. An error other
        // than that leaves the timer to do the work.
        for _ in 0..MAX_READS {
            let events = match i.read_events() {
                Ok(ev) if !ev.is_empty() => ev,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    self.ino = None;
                    self.tick = Some(POLL);
                    self.seen = Seen::everything();
                    return;
                }
            };
            for ev in events {
                let m = ev.mask;
                let in_new = ev.wd == new;
                let name = ev.name.and_then(|n| n.into_string().ok());
                let arrived = m.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO);
                let left = m.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM);
                match name {
                    Some(name)
                        if (in_new || ev.wd == cur)
                            && (arrived || left)
                            && !m.contains(AddWatchFlags::IN_ISDIR) =>
                    {
                        self.seen.note(Event {
                            in_new,
                            arrived,
                            name,
                        });
                    }
                    // An overflow, a watch gone, a directory, a name
                    // that is not UTF-8: only a full look can tell.
                    _ => self.seen = Seen::everything(),
                }
            }
        }
        // Still more: a full look will see it all.
        self.seen = Seen::everything();
    }
}

/// inotify - a non-blocking inotify fd on `dir`'s new/ and cur/ and
/// their watches, or None when that cannot be had.
fn inotify(dir: &Path) -> Option<(Inotify, (WatchDescriptor, WatchDescriptor))> {
    let i = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    // Arrivals, renames (flag changes, new/ to cur/), removals; the
    // directory itself going away ends nothing here: the next look says.
    let what = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW;
    let new = i.add_watch(&dir.join("new"), what).ok()?;
    let cur = i.add_watch(&dir.join("cur"), what).ok()?;
    Some((i, (new, cur)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_rename_into_new_wakes_the_watch_and_silence_times_out() {
        let d = tempfile::tempdir().unwrap();
        for s in ["new", "cur", "tmp"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        let mut w = Watch::new(Some(d.path()));
        assert!(w.uses_inotify());
        // A pipe nobody writes stands for a quiet client.
        let (r, _keep) = nix::unistd::pipe().unwrap();
        let quiet = Duration::from_millis(50);
        assert_eq!(w.wait(r.as_fd(), quiet).unwrap(), Woke::Timeout);
        std::fs::write(d.path().join("tmp/1.M1P1.x"), "x").unwrap();
        std::fs::rename(d.path().join("tmp/1.M1P1.x"), d.path().join("new/1.M1P1.x")).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(
            w.wait(r.as_fd(), Duration::from_secs(10)).unwrap(),
            Woke::Folder
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        // The burst was drained: nothing more to wake for.
        assert_eq!(w.wait(r.as_fd(), quiet).unwrap(), Woke::Timeout);
    }

    #[test]
    fn events_carry_their_names_and_the_first_look_and_the_timer_are_full() {
        let d = tempfile::tempdir().unwrap();
        for s in ["new", "cur", "tmp"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        let mut w = Watch::new(Some(d.path()));
        assert!(w.take_seen().full, "the first look is a full one");
        let (r, _keep) = nix::unistd::pipe().unwrap();
        let long = Duration::from_secs(10);
        std::fs::write(d.path().join("tmp/1.M1P1.x"), "x").unwrap();
        std::fs::rename(d.path().join("tmp/1.M1P1.x"), d.path().join("new/1.M1P1.x")).unwrap();
        assert_eq!(w.wait(r.as_fd(), long).unwrap(), Woke::Folder);
        let ev = |in_new, arrived, name: &str| Event {
            in_new,
            arrived,
            name: name.into(),
        };
        assert_eq!(
            w.take_seen(),
            Seen {
                full: false,
                events: vec![ev(true, true, "1.M1P1.x")]
            }
        );
        std::fs::rename(
            d.path().join("new/1.M1P1.x"),
            d.path().join("cur/1.M1P1.x:2,S"),
        )
        .unwrap();
        std::fs::remove_file(d.path().join("cur/1.M1P1.x:2,S")).unwrap();
        assert_eq!(w.wait(r.as_fd(), long).unwrap(), Woke::Folder);
        assert_eq!(
            w.take_seen().events,
            [
                ev(true, false, "1.M1P1.x"),
                ev(false, true, "1.M1P1.x:2,S"),
                ev(false, false, "1.M1P1.x:2,S")
            ]
        );
        // A directory made in new/: only a full look can tell.
        std::fs::create_dir(d.path().join("new/odd")).unwrap();
        assert_eq!(w.wait(r.as_fd(), long).unwrap(), Woke::Folder);
        assert!(w.take_seen().full);
        // A wake by the timer alone looks at everything.
        w.tick = Some(Duration::from_millis(10));
        assert_eq!(w.wait(r.as_fd(), long).unwrap(), Woke::Folder);
        assert!(w.take_seen().full);
    }

    #[test]
    fn input_from_the_client_wins() {
        let (r, wr) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&wr, b"DONE\r\n").unwrap();
        let mut w = Watch::new(None);
        assert_eq!(
            w.wait(r.as_fd(), Duration::from_secs(10)).unwrap(),
            Woke::Client
        );
    }

    #[test]
    fn without_inotify_a_folder_is_polled() {
        let d = tempfile::tempdir().unwrap();
        // No new/ or cur/: the watch cannot be set, the timer stands in.
        let mut w = Watch::new(Some(d.path()));
        assert!(!w.uses_inotify());
        let (r, _keep) = nix::unistd::pipe().unwrap();
        assert_eq!(
            w.wait(r.as_fd(), Duration::from_secs(10)).unwrap(),
            Woke::Folder
        );
    }
}
