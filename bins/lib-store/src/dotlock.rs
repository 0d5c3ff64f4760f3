//! dotlock - Dovecot's dot-locks (`<file>.lock` beside the file, made
//! with O_EXCL): how imapd and deliver take turns at dovecot-keywords,
//! dovecot-uidlist and subscriptions, and how a new version of such a
//! file replaces the old one whole.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A lock file older than this, and not growing, is stale.
const STALE: Duration = Duration::from_secs(120);
/// How long to wait for another process's lock before giving up.
const WAIT: Duration = Duration::from_secs(30);

/// A held dot-lock: `<name>.lock` in the folder.
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
    target: PathBuf,
    file: Option<File>,
}

impl DotLock {
    /// acquire - take `<dir>/<name>.lock`, waiting for another holder and
    /// breaking a stale lock.
    pub fn acquire(dir: &Path, name: &str) -> io::Result<DotLock> {
        let path = dir.join(format!("{name}.lock"));
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match posthorn_sys::fsio::create_new(&path, 0o600) {
                Ok(f) => {
                    return Ok(DotLock {
                        target: dir.join(name),
                        path,
                        file: Some(f),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            if let Ok(m) = std::fs::symlink_metadata(&path)
                && let Ok(t) = m.modified()
                && SystemTime::now()
                    .duration_since(t)
                    .is_ok_and(|age| age > STALE)
            {
                posthorn_sys::warning!("removing stale lock {}", path.display());
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if start.elapsed() > WAIT {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{} is held by another process", path.display()),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// replace - write `data` into the lock file, fsync it and rename it
    /// over the target: the new contents appear whole or not at all.
    pub fn replace(mut self, data: &[u8]) -> io::Result<()> {
        let mut f = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("lock already used"))?;
        let r = (|| {
            f.write_all(data)?;
            f.sync_all()?;
            std::fs::rename(&self.path, &self.target)
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        // Renamed or removed: nothing for drop to do.
        self.path = PathBuf::new();
        r
    }
}

impl Drop for DotLock {
    /// drop - release a lock not used for a replace.
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
