//! maildir - delivery into a Maildir, as the Maildir specification says:
//! a unique name in tmp/, write, fsync, rename into new/, fsync new/.

use crate::{StoreError, io_err};
use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// ensure - create the Maildir (and its parents) with tmp/, new/, cur/ if missing.
pub fn ensure(dir: &Path) -> Result<(), StoreError> {
    let mut b = DirBuilder::new();
    b.recursive(true).mode(0o700);
    for sub in ["tmp", "new", "cur"] {
        let p = dir.join(sub);
        if !p.is_dir() {
            b.create(&p)
                .map_err(io_err(format!("cannot create {}", p.display())))?;
        }
    }
    Ok(())
}

/// unique_name - `<secs>.M<usec>P<pid>Q<n>R<random>.<host>`, the Maildir
/// unique name with the host's `/` and `:` escaped as the spec asks.
pub fn unique_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
        .replace('/', "\\057")
        .replace(':', "\\072");
    format!(
        "{}.M{}P{}Q{}R{:08x}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        posthorn_sys::fsio::random_u64() as u32
    )
}

/// deliver - write `prefix` then `body` as a new message in `dir`; returns
/// the path in new/. On any failure the tmp/ file is removed.
pub fn deliver(dir: &Path, prefix: &[u8], body: &mut dyn Read) -> Result<PathBuf, StoreError> {
    deliver_flagged(dir, prefix, body, "")
}

/// deliver_flagged - `deliver`, but a message with flags (the letters of
/// `info`, see keywords.rs and imapd's flags) goes straight into cur/ as
/// `<name>:2,<info>`, as Dovecot's LDA stores a message Sieve flagged.
pub fn deliver_flagged(
    dir: &Path,
    prefix: &[u8],
    body: &mut dyn Read,
    info: &str,
) -> Result<PathBuf, StoreError> {
    ensure(dir)?;
    let base = unique_name();
    let tmp = dir.join("tmp").join(&base);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io_err(format!("cannot create {}", tmp.display())))?;
    let result = (|| -> Result<PathBuf, StoreError> {
        let wctx = || format!("cannot write {}", tmp.display());
        let mut w = LineCounter {
            inner: &mut f,
            bytes: 0,
            lines: 0,
        };
        w.write_all(prefix).map_err(io_err(wctx()))?;
        std::io::copy(body, &mut w).map_err(io_err(wctx()))?;
        // S= the size on disk; W= the size with CRLF line ends, which POP3
        // and IMAP report (Dovecot's fields), so servers need not read the file.
        let (size, crlf) = (w.bytes, w.bytes + w.lines);
        f.sync_all()
            .map_err(io_err(format!("cannot fsync {}", tmp.display())))?;
        let (sub, suffix) = if info.is_empty() {
            ("new", String::new())
        } else {
            ("cur", format!(":2,{info}"))
        };
        let dest = dir
            .join(sub)
            .join(format!("{base},S={size},W={crlf}{suffix}"));
        std::fs::rename(&tmp, &dest)
            .map_err(io_err(format!("cannot rename into {}", dest.display())))?;
        posthorn_sys::fsio::fsync_dir(&dir.join(sub))
            .map_err(io_err(format!("cannot fsync {}/{sub}", dir.display())))?;
        Ok(dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Counts the bytes and the LF line ends written through it.
struct LineCounter<'a> {
    inner: &'a mut std::fs::File,
    bytes: u64,
    lines: u64,
}

impl Write for LineCounter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_into_new_with_size() {
        let d = tempfile::tempdir().unwrap();
        let md = d.path().join("Maildir");
        let p = deliver(
            &md,
            b"Return-Path: <a@b>\n",
            &mut &b"Subject: x\n\nhi\n"[..],
        )
        .unwrap();
        assert!(p.starts_with(md.join("new")));
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.ends_with(",S=34,W=38"), "{name}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"Return-Path: <a@b>\nSubject: x\n\nhi\n"
        );
        assert!(md.join("cur").is_dir());
        assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
        let q = deliver(&md, b"", &mut &b""[..]).unwrap();
        assert_ne!(p, q);
        let f = deliver_flagged(&md, b"", &mut &b"x\n"[..], "Sa").unwrap();
        assert!(f.starts_with(md.join("cur")));
        assert!(f.to_str().unwrap().ends_with(",S=2,W=3:2,Sa"), "{f:?}");
    }
}

/// usage - the octets and messages in a Maildir and its Maildir++ folders
/// (`.Name` beside new/ and cur/), for quotas: sizes from the `,S=` field
/// where the name has one, else from the file. A folder or file that goes
/// away while we count is skipped.
pub fn usage(root: &Path) -> std::io::Result<(u64, u64)> {
    let mut dirs = vec![root.to_path_buf()];
    match std::fs::read_dir(root) {
        Ok(rd) => {
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with('.') && n != "." && n != ".." && e.path().is_dir() {
                    dirs.push(e.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    }
    let (mut bytes, mut count) = (0u64, 0u64);
    for d in dirs {
        for sub in ["new", "cur"] {
            let rd = match std::fs::read_dir(d.join(sub)) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                let size = name
                    .split(":2,")
                    .next()
                    .and_then(|b| b.split(',').find_map(|f| f.strip_prefix("S=")))
                    .and_then(|v| v.parse::<u64>().ok())
                    .or_else(|| e.metadata().ok().map(|m| m.len()));
                if let Some(sz) = size {
                    bytes += sz;
                    count += 1;
                }
            }
        }
    }
    Ok((bytes, count))
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn usage_counts_every_folder_from_names_and_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in [
            "new",
            "cur",
            "tmp",
            ".Sent/cur",
            ".Sent/new",
            ".Lists.rust/cur",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("new/1.M1P1.h,S=100"), vec![b'x'; 7]).unwrap();
        std::fs::write(r.join("cur/2.M2P2.h,S=50,W=52:2,S"), b"").unwrap();
        std::fs::write(r.join(".Sent/cur/3.M3P3.h:2,"), vec![b'y'; 30]).unwrap();
        std::fs::write(r.join(".Lists.rust/cur/4.M4P4.h,S=5:2,"), b"").unwrap();
        std::fs::write(r.join("tmp/5.M5P5.h,S=999"), b"").unwrap();
        assert_eq!(usage(r).unwrap(), (185, 4));
        assert_eq!(usage(&r.join("nonexistent")).unwrap(), (0, 0));
    }
}
