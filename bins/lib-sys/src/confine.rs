//! confine - shutting a process in before it reads untrusted input, and
//! the descriptor plumbing between the processes of one session: fork
//! while single-threaded; chroot(2) into an empty directory that is
//! removed at once; every uid and gid an unprivileged account's, with no
//! supplementary groups and no way back; no core dumps, no new
//! privileges; file descriptors sent over a Unix socket and moved onto
//! fixed numbers; exec of a program already open.
//!
//! Linux only, as the rest of Posthorn's privilege code.

use nix::unistd::{Gid, Uid};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

unsafe extern "C" {
    /// tzset(3): the libc crate does not declare it.
    fn tzset();
}

/// The two sides of a fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(u32),
}

/// threads - how many threads this process has, from /proc.
fn threads() -> io::Result<u32> {
    let st = std::fs::read_to_string("/proc/self/status")?;
    st.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// fork - fork(2), refused unless the process has one thread: the child
/// of a threaded process may only make async-signal-safe calls, and
/// ours go on to run ordinary code.
pub fn fork() -> io::Result<Forked> {
    if threads()? != 1 {
        return Err(io::Error::other("fork refused: more than one thread"));
    }
    // SAFETY: the process has a single thread (checked above), so the
    // child inherits no lock held by another thread and may run any code.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw() as u32)),
    }
}

/// chroot_empty - as root: make a directory under /tmp, chroot(2) into
/// it, and remove it. The process's root is then a directory that no
/// longer exists, so nothing can ever be created in it, and nothing
/// outside it can be named. Time-zone data is loaded first (syslog(3)
/// stamps lines in local time and could no longer read it). Returns the
/// directory's former name, for the log.
pub fn chroot_empty() -> io::Result<std::path::PathBuf> {
    // SAFETY: tzset only reads TZ and the zone file into libc's state;
    // this process has one thread here (the caller forked just before).
    unsafe { tzset() };
    let tmp = Path::new("/tmp");
    let dir = nix::unistd::mkdtemp(&tmp.join("posthorn-empty.XXXXXX"))?;
    let name = dir
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .ok_or_else(|| io::Error::other("mkdtemp gave no name"))?;
    let parent = open_dir(tmp)?;
    // Into the directory by descriptor, not by name: what was made is
    // what becomes the root. mkdtemp made it 0700 root's, in a sticky
    // /tmp, so no one else can have replaced it.
    let entered = open_dir(&dir).and_then(|d| {
        nix::unistd::fchdir(&d)?;
        nix::unistd::chroot(".")?;
        nix::unistd::chdir("/")?;
        Ok(())
    });
    let removed = nix::unistd::unlinkat(
        &parent,
        name.as_os_str(),
        nix::unistd::UnlinkatFlags::RemoveDir,
    );
    // The one descriptor that led outside the new root goes now.
    drop(parent);
    entered?;
    removed?;
    Ok(dir)
}

/// open_dir - a directory, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC.
fn open_dir(p: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(p)
}

/// drop_to - from root, every uid and gid (real, effective, saved, file
/// system) to `uid`/`gid`, with no supplementary groups; then check it
/// all took and that root cannot be regained. Changing the uid from 0
/// clears the capability sets too (no SECBIT_KEEP_CAPS is ever set).
pub fn drop_to(uid: u32, gid: u32) -> io::Result<()> {
    if uid == 0 || gid == 0 {
        return Err(io::Error::other("refusing to drop to uid or gid 0"));
    }
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setgroups(&[])?;
    nix::unistd::setresgid(g, g, g)?;
    nix::unistd::setresuid(u, u, u)?;
    let r = nix::unistd::getresuid()?;
    let q = nix::unistd::getresgid()?;
    if [r.real, r.effective, r.saved] != [u, u, u]
        || [q.real, q.effective, q.saved] != [g, g, g]
        || !nix::unistd::getgroups()?.is_empty()
        || nix::unistd::setuid(Uid::from_raw(0)).is_ok()
        || nix::unistd::setgid(Gid::from_raw(0)).is_ok()
    {
        return Err(io::Error::other("privileges were not dropped for good"));
    }
    Ok(())
}

/// no_core - no core dump can hold this process's memory (RLIMIT_CORE 0,
/// inherited by children) and no one may ptrace it or read its memory
/// through /proc (not dumpable).
pub fn no_core() -> io::Result<()> {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)?;
    nix::sys::prctl::set_dumpable(false)?;
    Ok(())
}

/// no_new_privs - no exec from here on can gain privileges (setuid and
/// setgid bits and file capabilities are ignored).
pub fn no_new_privs() -> io::Result<()> {
    nix::sys::prctl::set_no_new_privs()?;
    Ok(())
}

/// send_fds - one message of `data` with `fds` attached (SCM_RIGHTS) on
/// the Unix socket `sock`.
pub fn send_fds(sock: BorrowedFd, data: &[u8], fds: &[BorrowedFd]) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [io::IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(_) => return Err(io::Error::other("short send of a message with descriptors")),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// recv_fds - one message into `buf` from the Unix socket `sock`, and up
/// to `max_fds` descriptors that came with it (close-on-exec). Returns
/// the octets read (0 at end of input) and the descriptors; more
/// descriptors than `max_fds`, or a message cut short, is an error (the
/// extra descriptors are closed).
pub fn recv_fds(
    sock: BorrowedFd,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    let truncated = msg
        .flags
        .intersects(MsgFlags::MSG_CTRUNC | MsgFlags::MSG_TRUNC);
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(v) = c {
            for fd in v {
                // SAFETY: the kernel just installed `fd` in this process
                // for us; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let n = msg.bytes;
    if truncated || fds.len() > max_fds {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message or descriptors cut short, or too many descriptors",
        ));
    }
    Ok((n, fds))
}

/// dup_to - make descriptor number `target` a copy of `fd` (dup2, which
/// leaves close-on-exec clear there); `fd` stays open.
pub fn dup_to(fd: BorrowedFd, target: RawFd) -> io::Result<()> {
    if fd.as_raw_fd() == target {
        return Err(io::Error::other("dup_to onto itself"));
    }
    // SAFETY: dup2 takes plain integers; `fd` is open (borrowed), and
    // whatever `target` was (0, 1 or 3 here) is closed by it on purpose.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// take_fd - descriptor `n`, inherited from the parent, as owned; None
/// when it is not open.
pub fn take_fd(n: RawFd) -> Option<OwnedFd> {
    // SAFETY: fcntl(F_GETFD) on any integer is harmless; it tells whether
    // `n` is open.
    if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: `n` is open and was handed to this process to own (by
    // exec); nothing else in it refers to it.
    Some(unsafe { OwnedFd::from_raw_fd(n) })
}

/// null_stdio - point fds 0 and 1 at /dev/null: a process that must not
/// keep the client's connection open lets go of it this way, and a stray
/// write can reach no one.
pub fn null_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    dup_to(null.as_fd(), 0)?;
    dup_to(null.as_fd(), 1)?;
    Ok(())
}

/// self_exe - this program's executable, opened (O_PATH would do, but
/// fexecve falls back to /proc/self/fd, which needs a readable one), so
/// that the program run later is this very file even if it is replaced
/// on disk meanwhile.
/// Its descriptor is 10 or above, out of the way of install().
pub fn self_exe() -> io::Result<OwnedFd> {
    let f = std::fs::File::open("/proc/self/exe")?;
    high(f.as_fd())
}

/// high - a close-on-exec copy of `fd` numbered 10 or above.
fn high(fd: BorrowedFd) -> io::Result<OwnedFd> {
    let n = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: fcntl just made `n` for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// install - put descriptors on fixed numbers for a program about to be
/// run (0, 1, 3 ...): each given descriptor on each of its numbers, kept
/// open across exec. Whatever numbers they had before are given up, and
/// no source is lost when it already sat on another's target.
pub fn install(fds: Vec<(OwnedFd, Vec<RawFd>)>) -> io::Result<()> {
    // First out of the way of every target, then onto the targets.
    let mut moved = Vec::with_capacity(fds.len());
    for (fd, targets) in fds {
        moved.push((high(fd.as_fd())?, targets));
        drop(fd);
    }
    for (fd, targets) in &moved {
        for &t in targets {
            dup_to(fd.as_fd(), t)?;
        }
    }
    Ok(())
}

/// exec_fd - replace this process with the program open at `exe`, with
/// `args` (argv[0] first) and `env` (NAME=value), keeping the
/// descriptors not marked close-on-exec. Returns only on failure.
pub fn exec_fd(exe: &OwnedFd, args: &[String], env: &[String]) -> io::Error {
    let c = |v: &[String]| -> Result<Vec<CString>, io::Error> {
        v.iter()
            .map(|s| CString::new(s.as_bytes()).map_err(|_| io::Error::other("NUL in argument")))
            .collect()
    };
    let (a, e) = match (c(args), c(env)) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(x), _) | (_, Err(x)) => return x,
    };
    match nix::unistd::fexecve(exe, &a, &e) {
        Ok(never) => match never {},
        Err(err) => err.into(),
    }
}

/// ids - this process's (real, effective, saved) uids and gids, and its
/// supplementary groups: for tests and the log.
pub fn ids() -> io::Result<([u32; 3], [u32; 3], Vec<u32>)> {
    let r = nix::unistd::getresuid()?;
    let q = nix::unistd::getresgid()?;
    let groups = nix::unistd::getgroups()?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    Ok((
        [r.real.as_raw(), r.effective.as_raw(), r.saved.as_raw()],
        [q.real.as_raw(), q.effective.as_raw(), q.saved.as_raw()],
        groups,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_cross_a_socket_pair() {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (r, w) = std::io::pipe().unwrap();
        send_fds(a.as_fd(), b"hello", &[r.as_fd(), w.as_fd()]).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_fds(b.as_fd(), &mut buf, 2).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 2);
        // The write end that came across reaches the read end we kept.
        nix::unistd::write(&fds[1], b"x").unwrap();
        let mut one = [0u8; 1];
        nix::unistd::read(&r, &mut one).unwrap();
        assert_eq!(&one, b"x");
        // More descriptors than allowed: refused, none kept.
        send_fds(a.as_fd(), b"two", &[r.as_fd(), w.as_fd()]).unwrap();
        assert!(recv_fds(b.as_fd(), &mut buf, 1).is_err());
        // A message longer than the buffer: refused, not cut silently.
        send_fds(a.as_fd(), &[7u8; 40], &[]).unwrap();
        assert!(recv_fds(b.as_fd(), &mut buf, 0).is_err());
        drop(a);
        assert_eq!(recv_fds(b.as_fd(), &mut buf, 0).unwrap().0, 0);
    }

    #[test]
    fn this_test_process_has_threads_so_fork_is_refused() {
        // The test harness runs tests on threads of their own.
        let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        assert!(fork().is_err());
        t.join().unwrap();
    }
}
