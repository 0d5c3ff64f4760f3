//! child - run a program under a deadline: its input written and its
//! output read as they flow, never one after the other, so a program that
//! does not read, or keeps a pipe open, cannot stop the clock; at the
//! deadline its whole process group is killed.
//!
//! The program gets a process group of its own, so that what it starts
//! (a shell's children, a pipeline) goes with it. A program that leaves
//! the group (setsid) escapes the kill; once the program itself is gone we
//! stop reading whatever it left holding our pipes.

use crate::privs::Ids;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a run may take and how much of its output is kept.
#[derive(Debug, Clone)]
pub struct Limits {
    /// When the process group is killed.
    pub deadline: Instant,
    /// Bytes of standard output kept; the rest is read and dropped.
    pub stdout_cap: usize,
    /// Bytes of standard error kept; the rest is read and dropped.
    pub stderr_cap: usize,
    /// The ids the program runs with, when they are not ours: with a saved
    /// uid of 0 (qrun), the kill is sent as that user. None: we may signal it.
    pub kill_as: Option<Ids>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Finished {
    /// None when the deadline passed and the group was killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Writing the input failed (EPIPE: the program stopped reading early).
    pub input_error: Option<io::Error>,
}

/// A pipe end of ours, non-blocking, with what we know of it.
struct End {
    fd: Option<OwnedFd>,
}

impl End {
    /// from - take a child's pipe and make it non-blocking.
    fn from(fd: Option<OwnedFd>) -> io::Result<End> {
        if let Some(f) = &fd {
            set_nonblocking(f.as_raw_fd())?;
        }
        Ok(End { fd })
    }
    fn raw(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }
    fn close(&mut self) {
        self.fd = None;
    }
}

/// set_nonblocking - O_NONBLOCK on `fd`.
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL touch only its flags.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// pidfd - a descriptor that polls readable when `pid` exits (Linux 5.3);
/// None on an older kernel, and then we look every few milliseconds.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; we own what it returns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// read_some - read what `end` has now into `keep` (up to `cap` bytes;
/// the rest is dropped); closes it at end of file. At most `budget` bytes
/// are read in one call, so a writer that never stops cannot hold us.
fn read_some(end: &mut End, keep: &mut Vec<u8>, cap: usize, budget: usize) {
    let Some(fd) = end.raw() else { return };
    let mut buf = [0u8; 16 * 1024];
    let mut got = 0;
    while got < budget {
        // SAFETY: read into our own buffer of buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let n = n as usize;
            got += n;
            let room = cap.saturating_sub(keep.len());
            keep.extend_from_slice(&buf[..n.min(room)]);
            continue;
        }
        if n == 0 {
            end.close();
            return;
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return,
            _ => {
                end.close();
                return;
            }
        }
    }
}

/// run - start `cmd` in a process group of its own with pipes on 0, 1
/// and 2, feed it `input`, keep the first bytes of its output, and wait
/// for it until `limits.deadline`, when its group is killed.
pub fn run(cmd: &mut Command, input: &mut dyn Read, limits: &Limits) -> io::Result<Finished> {
    cmd.process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let ends = (|| -> io::Result<(End, End, End)> {
        Ok((
            End::from(child.stdin.take().map(OwnedFd::from))?,
            End::from(child.stdout.take().map(OwnedFd::from))?,
            End::from(child.stderr.take().map(OwnedFd::from))?,
        ))
    })();
    let (mut stdin, mut stdout, mut stderr) = match ends {
        Ok(e) => e,
        Err(e) => {
            kill_group(child.id(), limits.kill_as.as_ref());
            let _ = child.wait();
            return Err(e);
        }
    };
    let exit_fd = pidfd(child.id());
    let mut out = Finished {
        status: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
        input_error: None,
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut input_done = false;
    loop {
        if let Some(st) = child.try_wait()? {
            out.status = Some(st);
            break;
        }
        let now = Instant::now();
        if now >= limits.deadline {
            kill_group(child.id(), limits.kill_as.as_ref());
            let _ = child.wait();
            return Ok(out);
        }
        // More input to hand over, or the end of it.
        if stdin.fd.is_some() && at == pending.len() && !input_done {
            pending.resize(64 * 1024, 0);
            at = 0;
            match input.read(&mut pending) {
                Ok(0) => {
                    pending.clear();
                    input_done = true;
                }
                Ok(n) => pending.truncate(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => pending.clear(),
                Err(e) => {
                    pending.clear();
                    input_done = true;
                    out.input_error = Some(e);
                }
            }
        }
        if input_done && at == pending.len() {
            stdin.close();
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(4);
        let mut watch = |fd: Option<RawFd>, events| {
            if let Some(fd) = fd {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
            }
        };
        watch(stdin.raw(), libc::POLLOUT);
        watch(stdout.raw(), libc::POLLIN);
        watch(stderr.raw(), libc::POLLIN);
        watch(exit_fd.as_ref().map(AsRawFd::as_raw_fd), libc::POLLIN);
        let left = limits.deadline.saturating_duration_since(now);
        // Without a pidfd, an exit that closes no pipe is seen by looking.
        let wait = if exit_fd.is_some() {
            left
        } else {
            left.min(Duration::from_millis(20))
        };
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: poll reads and writes fds.len() pollfd structs we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            kill_group(child.id(), limits.kill_as.as_ref());
            let _ = child.wait();
            return Err(e);
        }
        let ready = |fd: Option<RawFd>| {
            fd.is_some_and(|fd| fds.iter().any(|p| p.fd == fd && p.revents != 0))
        };
        if ready(stdin.raw())
            && let Some(fd) = stdin.raw()
        {
            // SAFETY: fd is our pipe; the ManuallyDrop file is never closed here.
            let mut w = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
            while at < pending.len() {
                match w.write(&pending[at..]) {
                    Ok(n) => at += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // It stopped reading: its status says whether that was fine.
                        out.input_error = Some(e);
                        pending.clear();
                        at = 0;
                        input_done = true;
                        stdin.close();
                        break;
                    }
                }
            }
        }
        if ready(stdout.raw()) {
            read_some(&mut stdout, &mut out.stdout, limits.stdout_cap, 1 << 20);
        }
        if ready(stderr.raw()) {
            read_some(&mut stderr, &mut out.stderr, limits.stderr_cap, 1 << 20);
        }
    }
    // What it wrote just before it exited; not what a process it left
    // behind keeps writing.
    read_some(&mut stdout, &mut out.stdout, limits.stdout_cap, 1 << 20);
    read_some(&mut stderr, &mut out.stderr, limits.stderr_cap, 1 << 20);
    Ok(out)
}

/// kill_group - SIGKILL to process group `pgid` (a child we started with a
/// group of its own and have not reaped, so the id is still ours). When
/// the child runs as another user, and our saved uid is 0 (qrun), the
/// signal is sent from a short-lived fork that becomes that user.
pub fn kill_group(pgid: u32, kill_as: Option<&Ids>) {
    let pgid = pgid as libc::pid_t;
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(-pgid, libc::SIGKILL) } == 0 {
        return;
    }
    let Some(ids) = kill_as else { return };
    if io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return;
    }
    let uid = ids.uid as libc::uid_t;
    // SAFETY: between fork and _exit the child makes raw system calls only
    // (setresuid, kill, _exit), which are async-signal-safe and touch no
    // lock another thread of ours could hold; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let ok = libc::syscall(libc::SYS_setresuid, 0, 0, 0) == 0
                && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
                && libc::kill(-pgid, libc::SIGKILL) == 0;
            libc::_exit(if ok { 0 } else { 1 });
        }
        if pid > 0 {
            let mut st = 0;
            while libc::waitpid(pid, &mut st, 0) < 0
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
        }
    }
}

/// Watchdog - kills a process group at a deadline unless dropped first:
/// for a child we talk to in a protocol of our own (remote(8)) rather than
/// through `run`. Drop it before reaping the child.
///
/// One timer thread serves every watchdog of the process: arming and
/// disarming take a lock, never a thread of their own. The kill is sent
/// under the same lock, so once `drop` returns it can no longer happen.
#[derive(Debug)]
pub struct Watchdog {
    token: u64,
}

/// One armed watchdog: when, whom, as whom.
struct Armed {
    token: u64,
    deadline: Instant,
    pgid: u32,
    kill_as: Option<Ids>,
}

/// The timer thread's list, and the bell that wakes it.
struct Timers {
    armed: std::sync::Mutex<(u64, Vec<Armed>)>,
    bell: std::sync::Condvar,
}

/// timers - the process's timer list, its thread started on first use.
fn timers() -> &'static Timers {
    static T: std::sync::OnceLock<&'static Timers> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let t: &'static Timers = Box::leak(Box::new(Timers {
            armed: std::sync::Mutex::new((0, Vec::new())),
            bell: std::sync::Condvar::new(),
        }));
        std::thread::spawn(move || {
            let mut g = t.armed.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let now = Instant::now();
                let (due, wait): (Vec<Armed>, Vec<Armed>) =
                    g.1.drain(..).partition(|a| a.deadline <= now);
                g.1 = wait;
                for a in due {
                    kill_group(a.pgid, a.kill_as.as_ref());
                }
                let next = g.1.iter().map(|a| a.deadline).min();
                g = match next {
                    None => t.bell.wait(g).unwrap_or_else(|e| e.into_inner()),
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        t.bell
                            .wait_timeout(g, left)
                            .map(|(g, _)| g)
                            .unwrap_or_else(|e| e.into_inner().0)
                    }
                };
            }
        });
        t
    })
}

impl Watchdog {
    /// arm - kill group `pgid` at `deadline`.
    pub fn arm(pgid: u32, deadline: Instant, kill_as: Option<Ids>) -> Watchdog {
        let t = timers();
        let mut g = t.armed.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let token = g.0;
        g.1.push(Armed {
            token,
            deadline,
            pgid,
            kill_as,
        });
        t.bell.notify_one();
        Watchdog { token }
    }
}

impl Drop for Watchdog {
    /// drop - disarm: after this the kill cannot come.
    fn drop(&mut self) {
        let mut g = timers().armed.lock().unwrap_or_else(|e| e.into_inner());
        g.1.retain(|a| a.token != self.token);
    }
}

/// wait_until - reap `child` (started with `spawn_grouped`), killing its
/// group first if it is still running at `deadline`; None when killed.
pub fn wait_until(
    child: &mut Child,
    deadline: Instant,
    kill_as: Option<&Ids>,
) -> io::Result<Option<ExitStatus>> {
    let exit_fd = pidfd(child.id());
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill_group(child.id(), kill_as);
            child.wait()?;
            return Ok(None);
        }
        match &exit_fd {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
                // SAFETY: poll on one pollfd we own.
                unsafe { libc::poll(&mut p, 1, ms) };
            }
            None => std::thread::sleep(left.min(Duration::from_millis(20))),
        }
    }
}

/// spawn_grouped - start `cmd` in a process group of its own, so that a
/// `Watchdog` or `kill_group` takes what it starts with it.
pub fn spawn_grouped(cmd: &mut Command) -> io::Result<Child> {
    cmd.process_group(0).spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(secs: f64) -> Limits {
        Limits {
            deadline: Instant::now() + Duration::from_secs_f64(secs),
            stdout_cap: 100,
            stderr_cap: 100,
            kill_as: None,
        }
    }

    /// alive - whether a process runs with exactly this command line.
    fn alive(cmdline: &str) -> bool {
        let want: Vec<u8> = cmdline.replace(' ', "\0").into_bytes();
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.strip_suffix(b"\0").unwrap_or(&c) == want.as_slice())
        })
    }

    #[test]
    fn input_and_output_flow_together_and_output_is_capped() {
        // More input than a pipe holds, echoed back: written one after the
        // other this would deadlock.
        let data = vec![b'x'; 1 << 20];
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "cat; echo err >&2; exit 3"]);
        let f = run(&mut c, &mut &data[..], &limits(30.0)).unwrap();
        assert_eq!(f.status.and_then(|s| s.code()), Some(3));
        assert_eq!(f.stdout.len(), 100, "kept up to the cap, the rest read");
        assert_eq!(f.stderr, b"err\n");
        assert!(f.input_error.is_none());
    }

    #[test]
    fn a_program_that_reads_nothing_and_hangs_is_killed_with_its_children() {
        // Not reading a big input, keeping stderr open, and a grandchild:
        // the deadline still holds, and the whole group goes.
        let tag = format!("{}", 900_000 + std::process::id() % 99_999);
        let data = vec![b'x'; 1 << 20];
        let mut c = Command::new("/bin/sh");
        c.args(["-c", &format!("sleep {tag} & sleep {tag}1")]);
        let start = Instant::now();
        let f = run(&mut c, &mut &data[..], &limits(0.5)).unwrap();
        assert!(f.status.is_none(), "timed out");
        assert!(start.elapsed() < Duration::from_secs(20));
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !alive(&format!("sleep {tag}")) && !alive(&format!("sleep {tag}1"))
        });
        assert!(gone, "the group was not killed");
    }

    #[test]
    fn a_program_that_exits_early_is_seen_at_once() {
        let data = vec![b'x'; 1 << 20];
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "exit 0"]);
        let f = run(&mut c, &mut &data[..], &limits(30.0)).unwrap();
        assert!(f.status.is_some_and(|s| s.success()));
        // A child left holding stdout does not keep us waiting either.
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "(sleep 5 &) ; echo done"]);
        let start = Instant::now();
        let f = run(&mut c, &mut &b""[..], &limits(30.0)).unwrap();
        assert!(f.status.is_some_and(|s| s.success()));
        assert_eq!(f.stdout, b"done\n");
        assert!(start.elapsed() < Duration::from_secs(4));
    }

    /// The inner half of the next test, in a process of its own: as uid 2
    /// with the saved uid 0 (qrun's shape), kill a group that belongs to
    /// nobody, which a plain kill may not.
    #[test]
    fn kill_as_helper() {
        let Ok(pgid) = std::env::var("POSTHORN_TEST_KILL_PGID") else {
            return;
        };
        crate::privs::drop_effective(2, 2).unwrap();
        // SAFETY: kill takes plain integers.
        let direct = unsafe { libc::kill(-pgid.parse::<i32>().unwrap(), 0) };
        assert_eq!(direct, -1, "a plain kill must not be allowed here");
        let ids = Ids {
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
        };
        kill_group(pgid.parse().unwrap(), Some(&ids));
    }

    #[test]
    fn kill_as_reaches_a_child_of_another_user() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root (CI runs it)");
            return;
        }
        let mut c = Command::new("sleep");
        c.arg("30").uid(65534).gid(65534);
        let mut child = spawn_grouped(&mut c).unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child::tests::kill_as_helper", "--nocapture"])
            .env("POSTHORN_TEST_KILL_PGID", child.id().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let st = child.wait().unwrap();
        assert!(st.code().is_none(), "killed by a signal: {st:?}");
    }

    #[test]
    fn a_watchdog_kills_at_its_deadline_and_not_after_drop() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let mut child = spawn_grouped(&mut c).unwrap();
        let w = Watchdog::arm(
            child.id(),
            Instant::now() + Duration::from_millis(200),
            None,
        );
        let st = child.wait().unwrap();
        drop(w);
        assert!(st.code().is_none(), "killed by a signal");
        let mut c = Command::new("sleep");
        c.arg("0.3");
        let mut child = spawn_grouped(&mut c).unwrap();
        drop(Watchdog::arm(
            child.id(),
            Instant::now() + Duration::from_millis(50),
            None,
        ));
        assert!(
            child.wait().unwrap().success(),
            "a disarmed watchdog kills nothing"
        );
    }

    #[test]
    fn watchdogs_share_one_timer_and_keep_their_own_deadlines() {
        let mut a = spawn_grouped(Command::new("sleep").arg("30")).unwrap();
        let mut b = spawn_grouped(Command::new("sleep").arg("0.5")).unwrap();
        let wa = Watchdog::arm(a.id(), Instant::now() + Duration::from_millis(300), None);
        let wb = Watchdog::arm(b.id(), Instant::now() + Duration::from_millis(100), None);
        drop(wb);
        assert!(b.wait().unwrap().success(), "b's watchdog was disarmed");
        assert!(a.wait().unwrap().code().is_none(), "a's still fired");
        drop(wa);
    }

    #[test]
    fn wait_until_reaps_or_kills() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let mut child = spawn_grouped(&mut c).unwrap();
        let st = wait_until(
            &mut child,
            Instant::now() + Duration::from_millis(100),
            None,
        );
        assert!(st.unwrap().is_none(), "killed at the deadline");
        let mut c = Command::new("true");
        let mut child = spawn_grouped(&mut c).unwrap();
        let st = wait_until(&mut child, Instant::now() + Duration::from_secs(30), None);
        assert!(st.unwrap().is_some_and(|s| s.success()));
    }
}
