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
                Ok(mut f) => {
                    // Who holds it, as Dovecot's dot-locks say: `pid:host`,
                    // so that a holder killed with the lock held is seen
                    // to be gone (by us, and by Dovecot).
                    let _ = f.write_all(owner_line().as_bytes());
                    return Ok(DotLock {
                        target: dir.join(name),
                        path,
                        file: Some(f),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let old = std::fs::symlink_metadata(&path)
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|t| SystemTime::now().duration_since(t).is_ok_and(|a| a > STALE));
            if old || holder_is_gone(&path) {
                posthorn_sys::warning!("removing stale lock {}", path.display());
                // Aside under a name of our own first: of two processes
                // breaking it at once, only one rename succeeds, and
                // neither removes a lock taken again meanwhile.
                let aside = path.with_extension(format!("lock.stale.{}", std::process::id()));
                if std::fs::rename(&path, &aside).is_ok() {
                    let _ = std::fs::remove_file(&aside);
                }
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

    /// replace - write `data` into the lock file, fsync it, rename it over
    /// the target and fsync the directory: the new contents appear whole
    /// or not at all, and stay after power loss.
    pub fn replace(mut self, data: &[u8]) -> io::Result<()> {
        let mut f = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("lock already used"))?;
        let r = (|| {
            // The owner line goes: the file becomes the data.
            f.set_len(0)?;
            io::Seek::seek(&mut f, io::SeekFrom::Start(0))?;
            f.write_all(data)?;
            f.sync_all()?;
            std::fs::rename(&self.path, &self.target)?;
            // The new name must survive power loss too, or the UIDs it
            // hands out could be handed out again.
            match self.target.parent() {
                Some(d) if !d.as_os_str().is_empty() => posthorn_sys::fsio::fsync_dir(d),
                _ => posthorn_sys::fsio::fsync_dir(Path::new(".")),
            }
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
        // Renamed or removed: nothing for drop to do.
        self.path = PathBuf::new();
        r
    }
}

/// owner_line - `pid:hostname`, what a dot-lock holds while held.
fn owner_line() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    format!("{}:{host}\n", std::process::id())
}

/// holder_is_gone - whether a lock file names a process of this host
/// that no longer exists (killed with the lock held). A lock whose file
/// says nothing we can check (Dovecot's uidlist lock holds the new list,
/// not an owner) is not judged here, only by its age.
fn holder_is_gone(path: &Path) -> bool {
    let Ok(text) = std::fs::read(path) else {
        return false;
    };
    let text = String::from_utf8_lossy(&text[..text.len().min(256)]).into_owned();
    let Some((pid, host)) = text.trim_end().split_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    let ours = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    host == ours
        && pid > 0
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH)
}

impl Drop for DotLock {
    /// drop - release a lock not used for a replace.
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_names_its_holder_and_a_dead_holders_lock_is_broken() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.lock");
        // A fresh lock names its holder; one whose holder is dead (killed
        // with it held) is broken at once, a live one's is waited for.
        let held = DotLock::acquire(d.path(), "f").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), owner_line());
        assert!(!holder_is_gone(&p));
        drop(held);
        assert!(!p.exists());
        let host = owner_line().split_once(':').unwrap().1.to_string();
        std::fs::write(&p, format!("2147483646:{host}")).unwrap();
        let t = Instant::now();
        drop(DotLock::acquire(d.path(), "f").unwrap());
        assert!(t.elapsed() < Duration::from_secs(5));
        // Dovecot's uidlist lock holds the new list, no owner: age only.
        std::fs::write(&p, "3 V1 N1\n").unwrap();
        assert!(!holder_is_gone(&p));
        std::fs::remove_file(&p).unwrap();
        // Replacing writes the data alone, not the owner line.
        let lock = DotLock::acquire(d.path(), "f").unwrap();
        lock.replace(b"new\n").unwrap();
        assert_eq!(std::fs::read(d.path().join("f")).unwrap(), b"new\n");
        assert!(!p.exists());
    }
}
