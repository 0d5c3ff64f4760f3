//! fsio - durable files: create exclusively, fsync, rename, fsync the directory.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// create_new - create a file that must not exist yet, never following a symlink.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// open_read - open an existing file for reading without following a final symlink.
pub fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// fsync_dir - make a rename or a new name in `dir` survive power loss.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    d.sync_all()
}

/// write_atomic - replace `path` with `data` whole: a temporary beside it
/// (`NAME.tmpPID`) written with `mode` and fsynced, renamed over `path`,
/// then the directory fsynced. After a crash at any instant the file is the
/// old one or the new one, never a mix; after it returns, the new one
/// survives power loss. One writer per file at a time (the caller's lock):
/// a leftover temporary of an earlier crash with our pid is replaced.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(name);
    let r = (|| {
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = create_new(&tmp, mode)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// random_u64 - 64 unpredictable bits from the kernel, for unique names.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: buf is a valid writable buffer of buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != 8 {
        // getrandom cannot fail for 8 bytes after boot; fall back to time and pid.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_ne_bytes(buf)
}

/// is_disk_full - whether an error means "no room", which is always temporary.
pub fn is_disk_full(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
    )
}

/// harden - distrust what the caller left us: open fds 0-2 so later files
/// never land on them, and set a umask so nothing is made world-writable.
pub fn harden(umask: u32) {
    for fd in 0..3 {
        // SAFETY: fcntl(F_GETFD) only queries the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: open with a static NUL-terminated path.
            let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if got != fd && got >= 0 {
                // SAFETY: got is a descriptor we just opened.
                unsafe { libc::close(got) };
            }
        }
    }
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(umask as libc::mode_t) };
    // Writing to a closed pipe must be an error we handle, not a death.
    // SAFETY: setting SIGPIPE to SIG_IGN is async-signal-safe and process wide.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // An ignored SIGCHLD is inherited through exec (swaks --pipe does it):
    // children would be reaped behind our back and wait() fail with
    // ECHILD, so a committed message would look like a failed enqueue.
    // SAFETY: SIG_DFL for SIGCHLD is process wide and async-signal-safe.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// stderr_off_sockets - point fd 2 at /dev/null when it is a socket: inetd
/// and xinetd give a server the connection as fds 0, 1 and 2, and an error
/// or log line written there would go to the client, in the middle of the
/// protocol. (systemd and the test launchers give a real stderr.)
pub fn stderr_off_sockets() {
    // SAFETY: fstat fills the stat buffer we own; open/dup2/close take
    // valid arguments and only touch fd 2 and the fd just opened.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(2, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup2(null, 2);
                libc::close(null);
            }
        }
    }
}

/// set_file_size_limit_unlimited_check - whether EFBIG may come from RLIMIT_FSIZE:
/// when the limit is hit the kernel sends SIGXFSZ, which we ignore so that
/// write() fails with EFBIG and we can report a temporary error.
pub fn ignore_sigxfsz() {
    // SAFETY: SIG_IGN for SIGXFSZ is process wide and async-signal-safe.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

/// limit_memory - cap this process's address space at `bytes`
/// (RLIMIT_AS, soft and hard), so one session of a server cannot take the
/// machine's memory: past it an allocation fails and the process ends.
pub fn limit_memory(bytes: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the valid struct `r` and changes only this
    // process's limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// release_free_memory - give the pages of freed heap memory back to the
/// kernel (glibc's malloc_trim). A server that reads a big file once and
/// then waits for hours (an IMAP session in IDLE) would otherwise keep
/// the freed buffers' pages as its own, per process.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and trims the allocator's own free
    // lists; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// strftime_local - format a Unix time in the local zone with strftime(3),
/// in the C locale (English day and month names, as mail headers need).
/// libc reads /etc/localtime once; a Rust time-zone database that indexes
/// all of /usr/share/zoneinfo cost more than the rest of sendmail's start.
pub fn strftime_local(secs: i64, fmt: &std::ffi::CStr) -> String {
    // SAFETY: localtime_r writes only into `tm`,
    // which is a valid zeroed struct; strftime writes at most buf.len()
    // bytes into `buf` and returns how many it wrote.
    unsafe {
        let t: libc::time_t = secs as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return String::new();
        }
        let mut buf = [0u8; 128];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// cpu_time - the CPU time this process has used, for budgets on work
/// that untrusted input can make long (a Sieve script's run).
pub fn cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec for the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// local_offset - the local zone's offset from UTC at a Unix time, in
/// seconds east (0 when it cannot be told).
pub fn local_offset(secs: i64) -> i64 {
    // SAFETY: localtime_r writes only into `tm`, a valid zeroed struct.
    unsafe {
        let t: libc::time_t = secs as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_atomic_replaces_whole_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        write_atomic(&p, b"one\n", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one\n");
        // A temporary a crash left behind under our pid is no obstacle.
        std::fs::write(
            d.path().join(format!("state.tmp{}", std::process::id())),
            b"x",
        )
        .unwrap();
        write_atomic(&p, b"two\n", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"]);
        // A symlink in the temporary's place is not followed.
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(
            &victim,
            d.path().join(format!("state.tmp{}", std::process::id())),
        )
        .unwrap();
        write_atomic(&p, b"three\n", 0o600).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&p).unwrap(), b"three\n");
    }
}
