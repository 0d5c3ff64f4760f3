//! watch - what an IDLE session (RFC 2177) sleeps on: the client's fd
//! and the selected folder's new/ and cur/ through inotify, so that a
//! delivery, a flag rename or an expunge by another process wakes it at
//! once; a timer when inotify is not there (another kernel, the watch
//! limit reached, a filesystem that sends no events), and a slow timer
//! beside inotify in case an event never comes (NFS, a queue overflow).
//!
//! Distrusts the event stream: an event only says "look again"; what
//! changed is always read from the folder (Folder::sync, whose stamps
//! make a look at an unchanged folder a few stats). Events come in bursts
//! (a delivery is a create and a rename, our own sync moves new/ to
//! cur/): the queue is drained and a burst waited out briefly, so one
//! look answers many events and our own renames cannot keep us awake.

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

/// Without inotify: how often the folder is looked at.
pub const POLL: Duration = Duration::from_secs(1);
/// With inotify: a look anyway, for changes that sent no event.
pub const RESCAN: Duration = Duration::from_secs(30);
/// A burst of events is waited out this long before the look.
const SETTLE: Duration = Duration::from_millis(20);

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

/// A sleeping session's view of its folder.
#[derive(Debug)]
pub struct Watch {
    ino: Option<Inotify>,
    /// How long to sleep before looking at the folder unasked; None with
    /// no folder to look at.
    tick: Option<Duration>,
}

impl Watch {
    /// new - watch the Maildir folder `dir` (none: only the client).
    pub fn new(dir: Option<&Path>) -> Watch {
        let Some(dir) = dir else {
            return Watch {
                ino: None,
                tick: None,
            };
        };
        let ino = inotify(dir);
        let tick = if ino.is_some() { RESCAN } else { POLL };
        Watch {
            ino,
            tick: Some(tick),
        }
    }

    /// uses_inotify - whether events wake us (else the timer alone).
    pub fn uses_inotify(&self) -> bool {
        self.ino.is_some()
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
                    Ok(0) => return Ok(timer),
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
            std::thread::sleep(SETTLE);
            self.drain();
        }
        Ok(Woke::Folder)
    }

    /// drain - read the queued events (their content does not matter).
    fn drain(&mut self) {
        let Some(i) = &self.ino else { return };
        // Non-blocking: EAGAIN when the queue is empty. An error other
        // than that leaves the timer to do the work.
        for _ in 0..64 {
            match i.read_events() {
                Ok(ev) if !ev.is_empty() => continue,
                Ok(_) => return,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    self.ino = None;
                    self.tick = Some(POLL);
                    return;
                }
            }
        }
    }
}

/// inotify - a non-blocking inotify fd on `dir`'s new/ and cur/, or
/// None when that cannot be had.
fn inotify(dir: &Path) -> Option<Inotify> {
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
    for sub in ["new", "cur"] {
        i.add_watch(&dir.join(sub), what).ok()?;
    }
    Some(i)
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
