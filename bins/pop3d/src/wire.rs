//! wire - the connection on fds 0 and 1: raw reads with an idle timeout,
//! optionally TLS (rustls) on top, line reading under a cap, and replies
//! queued so that pipelined commands are answered in one write (RFC 2449
//! PIPELINING), flushed before we would block reading.

use posthorn_auth::proxy::Header;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

/// Longest line kept: longer lines are cut here and reported too long.
/// (SASL responses may be up to 4096 octets; commands up to 255.)
pub const MAX_LINE: usize = 8192;

/// Octets queued before a write even in the middle of a reply.
const OUT_CHUNK: usize = 64 * 1024;

/// Fds 0 and 1, read with a timeout through poll(2).
#[derive(Debug)]
pub struct Raw {
    pub timeout: Duration,
}

impl Read for Raw {
    /// read - wait up to the idle timeout for input, then read(2) fd 0.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stdin = io::stdin();
        let fd = stdin.as_fd();
        wait(fd, nix::poll::PollFlags::POLLIN, self.timeout)?;
        loop {
            match nix::unistd::read(fd, buf) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// wait - poll(2) `fd` for `events` up to `timeout`: a client that neither
/// sends nor reads for that long is gone (TimedOut).
fn wait(
    fd: std::os::fd::BorrowedFd,
    events: nix::poll::PollFlags,
    timeout: Duration,
) -> io::Result<()> {
    use nix::poll::{PollFd, PollTimeout, poll};
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    loop {
        let mut fds = [PollFd::new(fd, events)];
        match poll(&mut fds, ms) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout")),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Write for Raw {
    /// write - write(2) fd 1 (not Stdout: it buffers lines behind our
    /// back), after waiting up to the timeout for the client to read.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let stdout = io::stdout();
        let fd = stdout.as_fd();
        wait(fd, nix::poll::PollFlags::POLLOUT, self.timeout)?;
        loop {
            match nix::unistd::write(fd, buf) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// nodelay - TCP_NODELAY on fd 1 when it is a TCP socket. Replies are
/// already written in large pieces (OUT_CHUNK) and flushed only before we
/// wait for the client, so Nagle's algorithm has nothing to merge; it would
/// only hold the tail of a reply until the client's delayed ACK (40 ms per
/// pipelined batch of RETRs). A pipe or a Unix socket just says no.
fn nodelay() {
    let stdout = io::stdout();
    let _ = nix::sys::socket::setsockopt(
        &stdout.as_fd(),
        nix::sys::socket::sockopt::TcpNoDelay,
        &true,
    );
}

/// The transport: plain, or TLS over the same fds.
#[derive(Debug)]
enum Conn {
    Plain(Raw),
    Tls(Box<StreamOwned<ServerConnection, Raw>>),
    /// Only while switching.
    Gone,
}

/// One line from the client.
#[derive(Debug)]
pub struct Line {
    /// Without CRLF (or LF); cut at MAX_LINE + 1 octets when too long.
    pub text: Vec<u8>,
    /// Octets on the wire, line end included.
    pub len: usize,
}

/// The connection: buffered lines in, queued replies out.
#[derive(Debug)]
pub struct Wire {
    conn: Conn,
    inbuf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
}

impl Wire {
    /// new - a plaintext connection on fds 0/1.
    pub fn new(timeout: Duration) -> Wire {
        nodelay();
        Wire {
            conn: Conn::Plain(Raw { timeout }),
            inbuf: Vec::new(),
            pos: 0,
            out: Vec::new(),
        }
    }

    /// is_tls - whether the session runs under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.conn, Conn::Tls(_))
    }

    /// pending_input - octets the client sent that no line has used yet.
    pub fn pending_input(&self) -> bool {
        self.pos < self.inbuf.len()
    }

    /// read_raw - one read from the transport.
    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.conn {
            Conn::Plain(r) => r.read(buf),
            Conn::Tls(t) => match t.read(buf) {
                // A client that closes without close_notify has still gone.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            Conn::Gone => Ok(0),
        }
    }

    /// read_line - the next line, None at end of input. Queued replies are
    /// sent first when no complete line is buffered (we are about to wait).
    pub fn read_line(&mut self) -> io::Result<Option<Line>> {
        let mut discarding: Option<(Vec<u8>, usize)> = None;
        loop {
            if let Some(i) = self.inbuf[self.pos..].iter().position(|&b| b == b'\n') {
                let start = self.pos;
                self.pos += i + 1;
                let mut text = self.inbuf[start..start + i].to_vec();
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
                if self.pos == self.inbuf.len() {
                    self.inbuf.clear();
                    self.pos = 0;
                }
                if let Some((head, skipped)) = discarding {
                    return Ok(Some(Line {
                        text: head,
                        len: skipped + i + 1,
                    }));
                }
                return Ok(Some(Line { text, len: i + 1 }));
            }
            // No whole line: cut an overlong one down, keeping its start.
            if self.inbuf.len() - self.pos > MAX_LINE {
                let held = self.inbuf.len() - self.pos;
                let d = discarding.get_or_insert_with(|| {
                    (self.inbuf[self.pos..self.pos + MAX_LINE + 1].to_vec(), 0)
                });
                d.1 += held;
                self.inbuf.clear();
                self.pos = 0;
            }
            self.flush()?;
            if self.pos > 0 {
                self.inbuf.drain(..self.pos);
                self.pos = 0;
            }
            let mut chunk = [0u8; 4096];
            let n = self.read_raw(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.inbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// read_proxy - the PROXY header (v1 or v2) a trusted proxy sends
    /// first; None when nothing arrives within `wait` (a proxy's health
    /// check, or a direct connection). Read an octet at a time so that not
    /// one octet after the header (a TLS ClientHello) is taken early.
    pub fn read_proxy(&mut self, wait: Duration) -> io::Result<Option<Header>> {
        let Conn::Plain(raw) = &mut self.conn else {
            return Ok(None);
        };
        let idle = std::mem::replace(&mut raw.timeout, wait);
        let mut head = Vec::new();
        let r = loop {
            match posthorn_auth::proxy::parse(&head) {
                Ok(Some((h, _))) => break Ok(Some(h)),
                Ok(None) => {}
                Err(e) => break Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let mut b = [0u8; 1];
            match raw.read(&mut b) {
                Ok(0) => break Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => head.push(b[0]),
                Err(e) if e.kind() == io::ErrorKind::TimedOut && head.is_empty() => {
                    break Ok(None);
                }
                Err(e) => break Err(e),
            }
        };
        raw.timeout = idle;
        r
    }

    /// queue - add reply octets; sent at the next flush.
    pub fn queue(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    /// queue_vec - add a reply we own; a big one (a UIDL or LIST of every
    /// message) is taken over rather than copied when nothing else waits.
    pub fn queue_vec(&mut self, b: Vec<u8>) {
        if self.out.is_empty() && b.len() > self.out.capacity() {
            self.out = b;
        } else {
            self.out.extend_from_slice(&b);
        }
    }

    /// start_tls - send what is queued (the +OK), then handshake on fds 0/1.
    pub fn start_tls(&mut self, cfg: Arc<ServerConfig>) -> io::Result<()> {
        self.flush()?;
        let raw = match std::mem::replace(&mut self.conn, Conn::Gone) {
            Conn::Plain(r) => r,
            other => {
                self.conn = other;
                return Err(io::Error::other("TLS is already active"));
            }
        };
        let sc = ServerConnection::new(cfg).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(sc, raw);
        while tls.conn.is_handshaking() {
            let (rd, wr) = tls.conn.complete_io(&mut tls.sock)?;
            if rd == 0 && wr == 0 && tls.conn.is_handshaking() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client went away during the TLS handshake",
                ));
            }
        }
        self.conn = Conn::Tls(Box::new(tls));
        Ok(())
    }

    /// close_tls - send close_notify if under TLS.
    pub fn close(&mut self) {
        let _ = self.flush();
        if let Conn::Tls(t) = &mut self.conn {
            t.conn.send_close_notify();
            let _ = t.flush();
        }
    }
}

impl Write for Wire {
    /// write - queue, and send when a message chunk has piled up.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        if self.out.len() >= OUT_CHUNK {
            self.flush()?;
        }
        Ok(buf.len())
    }

    /// flush - send everything queued.
    fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let r = match &mut self.conn {
            Conn::Plain(r) => r.write_all(&out),
            Conn::Tls(t) => t.write_all(&out).and_then(|()| t.flush()),
            Conn::Gone => Ok(()),
        };
        self.out = out;
        self.out.clear();
        r
    }
}
