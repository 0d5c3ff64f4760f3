//! layout - the spool directory and the one durable commit.
//!
//! ```text
//! spool/tmp/       enqueue writes here; files older than a day are swept
//! spool/incoming/  committed messages, one queue file each
//! spool/state/     qrun's per-message delivery records
//! spool/hold/      messages put on hold (qrun --hold): kept, not tried
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
