//! relay - the pre-login process after a login under TLS: it keeps the
//! client's TLS session (fds 0 and 1) and relays its plaintext to and
//! from the session over their socket pair, so the client's TLS goes on
//! unbroken while the session, run as the mailbox owner, never holds the
//! key. The shape of Dovecot's login processes (login-proxy, ssl-proxy).
//!
//! One poll loop, every descriptor non-blocking, input bounded both
//! ways: at most RELAY_CAP octets of the client's plaintext wait for the
//! session, and nothing more is read from the session while TLS output
//! waits for the client. A client that reads nothing for `idle` while
//! output waits is given up. When the session ends, what it sent goes
//! out with close_notify (within FINAL); when the client ends, the
//! session is told by a shutdown of the socket's sending side.

use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Most plaintext from the client held for the session.
const RELAY_CAP: usize = 64 * 1024;
/// Octets asked of the session per read.
const CHUNK: usize = 64 * 1024;
/// How long the last of the session's output may take to go out.
const FINAL: Duration = Duration::from_secs(10);

/// A descriptor read and written with plain read(2) and write(2).
struct Fd<'a>(BorrowedFd<'a>);

impl Read for Fd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match nix::unistd::read(self.0, buf) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }
}

impl Write for Fd<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match nix::unistd::write(self.0, buf) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// nonblocking - O_NONBLOCK on `fd`.
fn nonblocking(fd: BorrowedFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// relay - run until the session or the client is gone.
pub fn relay(mut tls: ServerConnection, session: OwnedFd, idle: Duration) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let (stdin, stdout) = (io::stdin(), io::stdout());
    let (cin, cout, sess) = (stdin.as_fd(), stdout.as_fd(), session.as_fd());
    for fd in [cin, cout, sess] {
        nonblocking(fd)?;
    }
    // Backpressure is ours (nothing is read from the session while TLS
    // output waits), so rustls need not cap its buffers.
    tls.set_buffer_limit(None);
    let mut up: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    let (mut client_done, mut session_done, mut shut) = (false, false, false);
    let mut last_out = Instant::now();
    loop {
        // What rustls decrypted goes toward the session.
        while !client_done && up.len() < RELAY_CAP {
            match tls.reader().read(&mut chunk) {
                Ok(0) => client_done = true,
                Ok(n) => up.extend_from_slice(&chunk[..n]),
                Err(e) if would_block(&e) => break,
                // Gone without close_notify: gone all the same.
                Err(_) => client_done = true,
            }
        }
        if !up.is_empty() && !session_done {
            match Fd(sess).write(&up) {
                Ok(n) => {
                    up.drain(..n);
                }
                Err(e) if would_block(&e) => {}
                Err(_) => session_done = true,
            }
        }
        if client_done && up.is_empty() && !shut {
            let _ = nix::sys::socket::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(&sess),
                nix::sys::socket::Shutdown::Write,
            );
            shut = true;
        }
        // TLS output waiting: send what the client takes now.
        while tls.wants_write() {
            match tls.write_tls(&mut Fd(cout)) {
                Ok(_) => last_out = Instant::now(),
                Err(e) if would_block(&e) => break,
                // The client is gone: nothing more can reach it.
                Err(_) => return Ok(()),
            }
        }
        if session_done {
            break;
        }
        if tls.wants_write() && last_out.elapsed() >= idle {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client reads nothing",
            ));
        }
        let want_in = !client_done && up.len() < RELAY_CAP;
        let want_sess = !tls.wants_write();
        let mut fds: Vec<PollFd> = Vec::with_capacity(3);
        let (mut at_in, mut at_sess) = (None, None);
        if want_in {
            at_in = Some(fds.len());
            fds.push(PollFd::new(cin, PollFlags::POLLIN));
        }
        if tls.wants_write() {
            fds.push(PollFd::new(cout, PollFlags::POLLOUT));
        }
        let mut sess_ev = PollFlags::empty();
        if want_sess {
            sess_ev |= PollFlags::POLLIN;
        }
        if !up.is_empty() {
            sess_ev |= PollFlags::POLLOUT;
        }
        if !sess_ev.is_empty() {
            at_sess = Some(fds.len());
            fds.push(PollFd::new(sess, sess_ev));
        }
        let wait = if tls.wants_write() {
            PollTimeout::try_from(idle.saturating_sub(last_out.elapsed()))
                .unwrap_or(PollTimeout::MAX)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, wait) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = |slot: Option<usize>, fds: &[PollFd]| -> bool {
            slot.and_then(|i| fds[i].revents())
                .is_some_and(|r| !r.is_empty())
        };
        if ready(at_in, &fds) {
            match tls.read_tls(&mut Fd(cin)) {
                Ok(0) => client_done = true,
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        // Tell the client (an alert), then stop.
                        let _ = tls.write_tls(&mut Fd(cout));
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if would_block(&e) => {}
                Err(_) => client_done = true,
            }
        }
        if ready(at_sess, &fds) && want_sess {
            match Fd(sess).read(&mut chunk) {
                Ok(0) => session_done = true,
                Ok(n) => tls.writer().write_all(&chunk[..n])?,
                Err(e) if would_block(&e) => {}
                Err(_) => session_done = true,
            }
        }
    }
    // The session has ended: its last words, then close_notify.
    tls.send_close_notify();
    let until = Instant::now() + FINAL;
    while tls.wants_write() {
        match tls.write_tls(&mut Fd(cout)) {
            Ok(_) => {}
            Err(e) if would_block(&e) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let mut fds = [PollFd::new(cout, PollFlags::POLLOUT)];
                let ms = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
                if matches!(poll(&mut fds, ms), Ok(0)) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Ok(())
}
