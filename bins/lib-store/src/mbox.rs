//! mbox - append a message to an mbox file, under both a dot-lock and an
//! fcntl lock, with `>From ` quoting; on any failure the file is cut back
//! to its old length so it is never left corrupt.

use crate::{StoreError, io_err};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A dot-lock older than this is left over from a crash and is broken.
const STALE_DOTLOCK: Duration = Duration::from_secs(300);

/// Holds `<mbox>.lock` until dropped.
struct DotLock(Option<PathBuf>);

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// dotlock - create `<path>.lock` exclusively, waiting up to `wait`. A
/// directory we may not write in (a shared /var/mail) means fcntl alone.
fn dotlock(path: &Path, wait: Duration) -> Result<DotLock, StoreError> {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let start = Instant::now();
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock)
        {
            Ok(_) => return Ok(DotLock(Some(lock))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::symlink_metadata(&lock)
                    .and_then(|m| m.modified())
                    .map(|t| {
                        SystemTime::now().duration_since(t).unwrap_or_default() > STALE_DOTLOCK
                    })
                    .unwrap_or(false);
                if stale {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(DotLock(None)),
            Err(e) => {
                return Err(StoreError::Io(
                    format!("cannot create {}", lock.display()),
                    e,
                ));
            }
        }
        if start.elapsed() >= wait {
            return Err(StoreError::LockBusy(format!(
                "{} is locked by another process",
                lock.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(
            50 + (posthorn_sys::fsio::random_u64() % 100),
        ));
    }
}

/// fcntl_lock - a write lock on the whole file, waiting up to `wait`.
fn fcntl_lock(f: &File, path: &Path, wait: Duration) -> Result<(), StoreError> {
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    let start = Instant::now();
    loop {
        match nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_SETLK(&fl)) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EAGAIN)
            | Err(nix::errno::Errno::EACCES)
            | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(StoreError::Io(
                    format!("cannot lock {}", path.display()),
                    e.into(),
                ));
            }
        }
        if start.elapsed() >= wait {
            return Err(StoreError::LockBusy(format!(
                "{} is locked by another process",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(
            20 + (posthorn_sys::fsio::random_u64() % 50),
        ));
    }
}

/// from_line - `From sender Sat Nov 28 11:43:00 2026`, the mbox separator.
fn from_line(sender: &str) -> String {
    let s = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    format!(
        "From {s} {}\n",
        posthorn_sys::fsio::strftime_local(now, c"%a %b %e %H:%M:%S %Y")
    )
}

/// needs_quote - `From ` after any number of `>`: mboxrd quoting, so a
/// reader can undo it exactly.
fn needs_quote(line: &[u8]) -> bool {
    let rest = &line[line.iter().position(|&b| b != b'>').unwrap_or(line.len())..];
    rest.starts_with(b"From ")
}

/// check_safe - whether the file just opened at `path` may take mail, as
/// Postfix's local(8) decides through safe_open(): a regular file with one
/// link and, for a mailbox, owned by the recipient (`owner`); or
/// /dev/null. Anything else is refused: a file planted in a shared
/// sticky spool (/var/mail/B made by A, mode 0666, for A to read), a hard
/// link to a file elsewhere, a FIFO that would block us, a device. Checked
/// with fstat on the open file, so nothing can be swapped in between.
fn check_safe(meta: &std::fs::Metadata, path: &Path, owner: Option<u32>) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let ft = meta.file_type();
    let refuse = |why: String| {
        Err(StoreError::Unsafe(format!(
            "refusing to write {}: {why}",
            path.display()
        )))
    };
    if ft.is_char_device() {
        let null = std::fs::metadata("/dev/null").map(|m| m.rdev()).ok();
        if null == Some(meta.rdev()) {
            return Ok(());
        }
        return refuse("a device other than /dev/null".into());
    }
    if !ft.is_file() {
        return refuse("not a regular file".into());
    }
    if meta.nlink() > 1 {
        return refuse(format!("it has {} hard links", meta.nlink()));
    }
    if let Some(uid) = owner
        && meta.uid() != uid
    {
        return refuse(format!(
            "owned by uid {}, not by the recipient (uid {uid})",
            meta.uid()
        ));
    }
    Ok(())
}

/// deliver - append one message to the mbox at `path`; with `owner`, the
/// file must belong to that uid (a user's mailbox: the recipient).
pub fn deliver(
    path: &Path,
    owner: Option<u32>,
    sender: &str,
    prefix: &[u8],
    body: &mut dyn Read,
    wait: Duration,
) -> Result<(), StoreError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        std::fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    }
    // A device (the /dev/null of an alias) needs no lock file beside it.
    let device = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device());
    let _dot = if device {
        DotLock(None)
    } else {
        dotlock(path, wait)?
    };
    // O_NONBLOCK: a FIFO in the mailbox's place must not stall us until a
    // reader comes (it is refused just below); cleared once checked.
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // What a FIFO without a reader says to a non-blocking open.
            Some(libc::ENXIO) => StoreError::Unsafe(format!(
                "refusing to write {}: not a regular file",
                path.display()
            )),
            _ => StoreError::Io(format!("cannot open {}", path.display()), e),
        })?;
    let meta = f
        .metadata()
        .map_err(io_err(format!("cannot stat {}", path.display())))?;
    check_safe(&meta, path, owner)?;
    let ft = meta.file_type();
    nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
    )
    .map_err(|e| StoreError::Io(format!("cannot set up {}", path.display()), e.into()))?;
    fcntl_lock(&f, path, wait)?;
    // Measure the length only under the lock: that is where we cut back to.
    let old_len = f
        .metadata()
        .map_err(io_err(format!("cannot stat {}", path.display())))?
        .len();
    let result = (|| -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(64 * 1024, &f);
        w.write_all(from_line(sender).as_bytes())?;
        let mut last = b'\n';
        let mut line_start = true;
        let mut copy_lines =
            |src: &mut dyn BufRead, w: &mut BufWriter<&File>| -> std::io::Result<()> {
                let mut buf = Vec::with_capacity(8192);
                loop {
                    buf.clear();
                    let n = (&mut *src).take(64 * 1024).read_until(b'\n', &mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    if line_start && needs_quote(&buf) {
                        w.write_all(b">")?;
                    }
                    w.write_all(&buf)?;
                    last = buf[n - 1];
                    line_start = last == b'\n';
                }
            };
        copy_lines(&mut BufReader::new(prefix), &mut w)?;
        copy_lines(&mut BufReader::with_capacity(64 * 1024, body), &mut w)?;
        if last != b'\n' {
            w.write_all(b"\n")?;
        }
        // The blank line that ends a message in an mbox.
        w.write_all(b"\n")?;
        w.flush()?;
        drop(w);
        // A device (/dev/null) has nothing to sync: fsync says EINVAL.
        if ft.is_file() { f.sync_all() } else { Ok(()) }
    })();
    if let Err(e) = result {
        if ft.is_file() {
            let _ = f.set_len(old_len);
            let _ = f.sync_all();
        }
        return Err(StoreError::Io(
            format!("cannot write {}", path.display()),
            e,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_with_quoting_and_separator() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mbox");
        deliver(
            &p,
            None,
            "a@b",
            b"Return-Path: <a@b>\n",
            &mut &b"Subject: x\n\nFrom here\n>From there\nno newline"[..],
            Duration::from_secs(1),
        )
        .unwrap();
        deliver(
            &p,
            None,
            "",
            b"",
            &mut &b"Subject: y\n\nok\n"[..],
            Duration::from_secs(1),
        )
        .unwrap();
        let t = String::from_utf8(std::fs::read(&p).unwrap()).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("From a@b "));
        assert_eq!(lines[4], ">From here");
        assert_eq!(lines[5], ">>From there");
        assert_eq!(lines[6], "no newline");
        assert_eq!(lines[7], "");
        assert!(lines[8].starts_with("From MAILER-DAEMON "));
        assert!(t.ends_with("ok\n\n"));
        assert!(!d.path().join("mbox.lock").exists());
    }

    #[test]
    fn held_dotlock_is_busy() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mbox");
        std::fs::write(d.path().join("mbox.lock"), b"").unwrap();
        let e = deliver(
            &p,
            None,
            "a",
            b"",
            &mut &b"x\n"[..],
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(e, StoreError::LockBusy(_)));
    }

    #[test]
    fn unsafe_mailbox_files_are_left_alone() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(d.path()).unwrap().uid();
        let put = |p: &Path, owner| {
            deliver(
                p,
                owner,
                "a@b",
                b"",
                &mut &b"Subject: x\n\nsecret\n"[..],
                Duration::from_secs(1),
            )
        };
        // Someone else's file in the mailbox's place (planted in a
        // world-writable spool for its owner to read).
        let p = d.path().join("planted");
        std::fs::write(&p, b"").unwrap();
        let e = put(&p, Some(me.wrapping_add(1))).unwrap_err();
        assert!(matches!(e, StoreError::Unsafe(_)), "{e}");
        assert!(e.to_string().contains("owned by uid"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"", "not written");
        assert!(put(&p, Some(me)).is_ok(), "the owner's own file is fine");
        // A hard link to a file elsewhere.
        let q = d.path().join("linked");
        std::fs::hard_link(&p, &q).unwrap();
        let before = std::fs::read(&p).unwrap();
        let e = put(&q, Some(me)).unwrap_err();
        assert!(e.to_string().contains("2 hard links"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
        // A FIFO: refused at once, not waited on.
        let f = d.path().join("fifo");
        nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = put(&f, Some(me)).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // A symlink is not followed.
        let s = d.path().join("symlink");
        std::os::unix::fs::symlink(&p, &s).unwrap();
        assert!(put(&s, None).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), before);
        // /dev/null is a mailbox that keeps nothing.
        let r = put(Path::new("/dev/null"), None);
        assert!(r.is_ok(), "{r:?}");
        assert!(!d.path().join("fifo.lock").exists());
    }
}
