//! layout - the spool directory and the one durable commit.
//!
//! ```text
//! spool/tmp/       enqueue writes here; files older than a day are swept
//! spool/incoming/  committed messages, one queue file each
//! spool/state/     qrun's per-message delivery records
//! spool/hold/      messages put on hold (qrun --hold): kept, not tried
//! spool/uid/UID/   per submitting uid, `ID.SIZE` for each message it has
//!                  queued (a hard link to the queue file), with queue.uid_max_*
//! spool/dkim/      qrun's DKIM-Signature fields, made once per message
//! spool/trigger    FIFO: a byte here wakes qrun
//! spool/qrun.lock  held (flock) by the running qrun daemon
//! ```

use crate::QueueId;
use posthorn_sys::fsio;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    pub root: PathBuf,
}

impl Spool {
    /// new - a spool at `root` (nothing is touched yet).
    pub fn new(root: impl Into<PathBuf>) -> Spool {
        Spool { root: root.into() }
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn incoming(&self) -> PathBuf {
        self.root.join("incoming")
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    pub fn hold(&self) -> PathBuf {
        self.root.join("hold")
    }
    /// uids - where each submitting uid's messages are counted.
    pub fn uids(&self) -> PathBuf {
        self.root.join("uid")
    }
    /// uid_dir - the names of the messages `uid` has queued.
    pub fn uid_dir(&self, uid: u32) -> PathBuf {
        self.uids().join(uid.to_string())
    }
    pub fn dkim(&self) -> PathBuf {
        self.root.join("dkim")
    }
    /// dkim_file - the DKIM-Signature fields of `id`, once signed.
    pub fn dkim_file(&self, id: &QueueId) -> PathBuf {
        self.dkim().join(id.as_str())
    }
    /// held - the queue file of `id` while it is on hold.
    pub fn held(&self, id: &QueueId) -> PathBuf {
        self.hold().join(id.as_str())
    }
    pub fn trigger(&self) -> PathBuf {
        self.root.join("trigger")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("qrun.lock")
    }
    /// message - the queue file of `id`.
    pub fn message(&self, id: &QueueId) -> PathBuf {
        self.incoming().join(id.as_str())
    }
    /// state_file - the delivery records of `id`.
    pub fn state_file(&self, id: &QueueId) -> PathBuf {
        self.state().join(id.as_str())
    }

    /// create - make the directories and the FIFO if missing (qrun at start,
    /// make install). Modes: the group (the spool group: qrun and the setgid
    /// enqueue, nobody else) may write tmp/ and incoming/, and list
    /// incoming/ and state/ for mailq; others get nothing. The setgid bit makes
    /// every queue file belong to the spool group, whoever wrote it, so qrun
    /// can read what a root-run enqueue wrote.
    pub fn create(&self) -> io::Result<()> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true).mode(0o755);
        b.create(&self.root)?;
        for (d, mode) in [
            (self.tmp(), 0o3730),
            (self.incoming(), 0o3770),
            (self.state(), 0o2750),
            (self.hold(), 0o2750),
            (self.uids(), 0o3770),
            (self.dkim(), 0o2750),
        ] {
            match std::fs::DirBuilder::new().mode(mode).create(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            // Set the mode every time: the umask must not take the group's
            // write bit away, and a spool made by an older version is mended.
            // One that is not ours to change is left as it is.
            let _ =
                std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(mode));
        }
        let t = self.trigger();
        if std::fs::symlink_metadata(&t).is_err() {
            match nix::unistd::mkfifo(&t, nix::sys::stat::Mode::from_bits_truncate(0o620)) {
                Ok(()) => std::fs::set_permissions(
                    &t,
                    std::os::unix::fs::PermissionsExt::from_mode(0o620),
                )?,
                Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        }
        Ok(())
    }

    /// create_tmp - a new, exclusively created file in tmp/ named by a new queue ID.
    pub fn create_tmp(&self, arrival: u64) -> io::Result<(QueueId, PathBuf, File)> {
        for _ in 0..100 {
            let id = QueueId::generate(arrival);
            let p = self.tmp().join(id.as_str());
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&p)
            {
                // While tmp/ID exists no one else can commit ID; a message
                // committed under it earlier is still in incoming/ or on
                // hold (and has its state/ file). So the ID chosen here is
                // final (enqueue prints it before the message).
                Ok(f) => {
                    let free = [self.message(&id), self.held(&id), self.state_file(&id)]
                        .iter()
                        .all(|q| {
                            matches!(std::fs::symlink_metadata(q),
                                Err(e) if e.kind() == io::ErrorKind::NotFound)
                        });
                    if free {
                        return Ok((id, p, f));
                    }
                    let _ = std::fs::remove_file(&p);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("could not find a free queue ID"))
    }

    /// commit - the commit point. The file is fsynced, linked into incoming/
    /// (link, not rename, so an existing message is never replaced), the
    /// directory fsynced, and only then is the message accepted. The ID is
    /// the one `create_tmp` chose; a collision there is an error, never a
    /// silent rename (the caller may already have told someone the ID).
    pub fn commit(&self, file: &File, tmp_path: &Path, id: QueueId) -> io::Result<QueueId> {
        file.sync_all()?;
        std::fs::hard_link(tmp_path, self.message(&id))?;
        if let Err(e) = fsio::fsync_dir(&self.incoming()) {
            // Not durable: take it back, so a failure means nothing was queued.
            let _ = std::fs::remove_file(self.message(&id));
            return Err(e);
        }
        let _ = std::fs::remove_file(tmp_path);
        Ok(id)
    }

    /// wake - poke qrun through the FIFO; no reader is fine, never blocks.
    pub fn wake(&self) {
        self.poke(b"w");
    }

    /// flush - ask a running qrun to retry all deferred mail now (`sendmail -q`).
    pub fn flush(&self) -> bool {
        self.poke(b"f")
    }

    /// poke - write one byte to the trigger FIFO; false when no qrun listens.
    fn poke(&self, byte: &[u8]) -> bool {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(self.trigger())
        {
            return f.write_all(byte).is_ok();
        }
        false
    }
}

/// What one submitting uid has in the spool, as far as it was counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub messages: u64,
    pub bytes: u64,
}

impl Spool {
    /// usage - the messages `uid` has queued (incoming or held) and their
    /// bytes, from the names in its uid/ directory alone: no queue file is
    /// opened or stat'ed, and the count stops once `enough` says so (one
    /// past a limit is all a caller needs). The cost is one readdir entry
    /// per message of this uid, never a walk over the whole queue.
    pub fn usage(&self, uid: u32, enough: impl Fn(&Usage) -> bool) -> io::Result<Usage> {
        let mut u = Usage::default();
        let rd = match std::fs::read_dir(self.uid_dir(uid)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(u),
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let Some((_, size)) = e.file_name().to_str().and_then(parse_count_name) else {
                continue;
            };
            u.messages += 1;
            u.bytes = u.bytes.saturating_add(size);
            if enough(&u) {
                break;
            }
        }
        Ok(u)
    }

    /// count - after the commit: name the message under its submitter,
    /// `uid/UID/ID.SIZE`, a hard link to the queue file. Not part of the
    /// commit: a crash before it only counts one message too few.
    pub fn count(&self, uid: u32, id: &QueueId, size: u64) -> io::Result<()> {
        let dir = self.uid_dir(uid);
        let name = dir.join(format!("{id}.{size}"));
        match std::fs::hard_link(self.message(id), &name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            r => return r,
        }
        match std::fs::DirBuilder::new().mode(0o2770).create(&dir) {
            Ok(()) => {
                // The umask must not take the group's (qrun's) write bit away.
                std::fs::set_permissions(
                    &dir,
                    std::os::unix::fs::PermissionsExt::from_mode(0o2770),
                )?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match std::fs::hard_link(self.message(id), &name) {
            // Delivered and removed already by a quick qrun: nothing to count.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.message(id).exists() => Ok(()),
            r => r,
        }
    }

    /// uncount - a message of `uid` has left the spool.
    pub fn uncount(&self, uid: u32, id: &QueueId, size: u64) {
        let _ = std::fs::remove_file(self.uid_dir(uid).join(format!("{id}.{size}")));
    }

    /// sweep_counts - remove the names of messages that are gone (a crash
    /// between a removal and its `uncount`, a corrupt file moved aside).
    pub fn sweep_counts(&self) {
        let Ok(uids) = std::fs::read_dir(self.uids()) else {
            return;
        };
        for d in uids.filter_map(|e| e.ok()) {
            let Ok(rd) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name();
                let Some((id, _)) = name.to_str().and_then(parse_count_name) else {
                    continue;
                };
                let gone = [self.message(&id), self.held(&id)].iter().all(|p| {
                    matches!(std::fs::symlink_metadata(p),
                        Err(e) if e.kind() == io::ErrorKind::NotFound)
                });
                if gone {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// parse_count_name - `ID.SIZE` from a uid/ directory.
fn parse_count_name(name: &str) -> Option<(QueueId, u64)> {
    let (id, size) = name.split_once('.')?;
    Some((QueueId::try_from(id).ok()?, size.parse().ok()?))
}

/// Why `Spool::store` failed: the spool, or the caller's message writer.
#[derive(Debug)]
pub enum StoreError<E> {
    /// Creating, writing or committing the queue file.
    Io(io::Error),
    /// The message writer's own error (a broken input stream, say).
    Body(E),
}

impl Spool {
    /// store - the one way a new message enters the spool: a queue file in
    /// tmp/ with the header and whatever `body` writes, then `commit`. On any
    /// failure the half-written file is removed and nothing is queued.
    /// `body` learns the message's ID (final: see `create_tmp`) and returns
    /// the number of message bytes it wrote.
    pub fn store<E>(
        &self,
        env: &crate::Envelope,
        uid: u32,
        arrival: std::time::Duration,
        body: impl FnOnce(&QueueId, &mut dyn Write) -> Result<u64, E>,
    ) -> Result<QueueId, StoreError<E>> {
        use std::io::Seek;
        let (id, tmp, file) = self.create_tmp(arrival.as_secs()).map_err(StoreError::Io)?;
        let result = (|| {
            let mut w = io::BufWriter::with_capacity(64 * 1024, file);
            crate::qfile::write_header(&mut w, &id, arrival, uid, env).map_err(StoreError::Io)?;
            w.flush().map_err(StoreError::Io)?;
            let offset = w.get_mut().stream_position().map_err(StoreError::Io)?;
            let size = body(&id, &mut w).map_err(StoreError::Body)?;
            let mut file = w.into_inner().map_err(|e| StoreError::Io(e.into_error()))?;
            crate::qfile::finish_size(&mut file, offset, size).map_err(StoreError::Io)?;
            self.commit(&file, &tmp, id.clone()).map_err(StoreError::Io)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_uid_from_names_alone() {
        let d = tempfile::tempdir().unwrap();
        let sp = Spool::new(d.path());
        sp.create().unwrap();
        let env = crate::Envelope {
            sender: "a@b".into(),
            recipients: vec![crate::Recipient {
                address: "c@d".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut ids = Vec::new();
        for n in [10u64, 20, 30] {
            let id = sp
                .store(&env, 1000, std::time::Duration::from_secs(1), |_, w| {
                    w.write_all(&vec![b'x'; n as usize]).map(|()| n)
                })
                .map_err(|_| "store")
                .unwrap();
            sp.count(1000, &id, n).unwrap();
            ids.push((id, n));
        }
        let all = sp.usage(1000, |_| false).unwrap();
        assert_eq!(
            all,
            Usage {
                messages: 3,
                bytes: 60
            }
        );
        assert_eq!(sp.usage(1001, |_| false).unwrap(), Usage::default());
        // Counting stops when the caller has seen enough.
        assert_eq!(sp.usage(1000, |u| u.messages >= 2).unwrap().messages, 2);
        // A delivered message is uncounted; one removed behind our back is swept.
        sp.uncount(1000, &ids[0].0, ids[0].1);
        std::fs::remove_file(sp.message(&ids[1].0)).unwrap();
        assert_eq!(sp.usage(1000, |_| false).unwrap().messages, 2);
        sp.sweep_counts();
        assert_eq!(
            sp.usage(1000, |_| false).unwrap(),
            Usage {
                messages: 1,
                bytes: 30
            }
        );
    }
}
