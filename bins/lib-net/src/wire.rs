//! wire - a server's connection on fds 0 and 1 (inetd, systemd
//! Accept=yes, tcpserver, or a pipe): raw reads with an idle timeout and an
//! optional overall deadline, TLS (rustls) on top after STARTTLS or from
//! the start, lines read under a cap, exact octet counts for literals and
//! BDAT chunks, and replies queued so that pipelined commands are answered
//! in one write, flushed before we would block reading.
//!
//! Distrusts the client: no line or read grows memory past the cap, a
//! line's ending (CRLF or a bare LF) is reported so that a protocol can
//! refuse bare line ends, and input pipelined behind STARTTLS can be seen
//! (`pending_input`) before the handshake.

use crate::proxy::Header;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Octets queued before a write even in the middle of a reply.
const OUT_CHUNK: usize = 64 * 1024;

/// Octets asked of the transport per read.
const IN_CHUNK: usize = 16 * 1024;

/// Fds 0 and 1, read and written with a timeout through poll(2).
#[derive(Debug)]
pub struct Raw {
    /// How long one wait for the client may take.
    pub timeout: Duration,
    /// When the whole session must end, if ever.
    pub deadline: Option<Instant>,
}

impl Raw {
    /// limit - the wait allowed now: the idle timeout, cut to the deadline.
    fn limit(&self) -> io::Result<Duration> {
        match self.deadline {
            None => Ok(self.timeout),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(left.min(self.timeout)),
                _ => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "session time limit",
                )),
            },
        }
    }
}

impl Read for Raw {
    /// read - wait up to the idle timeout for input, then read(2) fd 0.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stdin = io::stdin();
        let fd = stdin.as_fd();
        wait(fd, nix::poll::PollFlags::POLLIN, self.limit()?)?;
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
        wait(fd, nix::poll::PollFlags::POLLOUT, self.limit()?)?;
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
/// already written in large pieces and flushed only before we wait for the
/// client, so Nagle's algorithm has nothing to merge; it would only hold
/// the tail of a reply until the client's delayed ACK (40 ms per pipelined
/// batch). A pipe or a Unix socket just says no.
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

/// How a line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// CR LF, as every protocol here requires.
    Crlf,
    /// A bare LF (the CR missing): lenient protocols take it, SMTP must not.
    Lf,
}

/// One line from the client.
#[derive(Debug)]
pub struct Line {
    /// Without its line end; cut at max_line + 1 octets when too long.
    pub text: Vec<u8>,
    /// Octets on the wire, line end included.
    pub len: usize,
    pub ending: Ending,
}

impl Line {
    /// too_long - whether the line was cut (longer than `max_line`).
    pub fn too_long(&self, max_line: usize) -> bool {
        self.text.len() > max_line
    }
}

/// The connection: buffered input, queued replies out.
#[derive(Debug)]
pub struct Wire {
    conn: Conn,
    inbuf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    max_line: usize,
    /// COMPRESS=DEFLATE (RFC 4978), between the protocol and TLS.
    deflate: Option<Box<Deflate>>,
}

/// Raw deflate both ways (no zlib header), as RFC 4978 says.
struct Deflate {
    tx: flate2::Compress,
    rx: flate2::Decompress,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deflate")
    }
}

/// Most octets one compressed read may inflate to before it is refused: a
/// small packet must not become gigabytes (a deflate bomb).
const MAX_INFLATE: usize = 4 << 20;

impl Wire {
    /// new - a plaintext connection on fds 0/1, lines cut at `max_line`.
    pub fn new(timeout: Duration, max_line: usize) -> Wire {
        nodelay();
        Wire {
            conn: Conn::Plain(Raw {
                timeout,
                deadline: None,
            }),
            inbuf: Vec::new(),
            pos: 0,
            out: Vec::new(),
            max_line,
            deflate: None,
        }
    }

    /// raw - the fds underneath, for their timeouts.
    fn raw(&mut self) -> Option<&mut Raw> {
        match &mut self.conn {
            Conn::Plain(r) => Some(r),
            Conn::Tls(t) => Some(&mut t.sock),
            Conn::Gone => None,
        }
    }

    /// set_timeout - a new idle timeout for the waits to come.
    pub fn set_timeout(&mut self, timeout: Duration) {
        if let Some(r) = self.raw() {
            r.timeout = timeout;
        }
    }

    /// set_deadline - end every wait at `at` (the session's time is up),
    /// or at no set time with None.
    pub fn set_deadline(&mut self, at: impl Into<Option<Instant>>) {
        let at = at.into();
        if let Some(r) = self.raw() {
            r.deadline = at;
        }
    }

    /// set_max_line - a new line cap (a SASL response may be longer than
    /// a command).
    pub fn set_max_line(&mut self, max_line: usize) {
        self.max_line = max_line;
    }

    /// is_tls - whether the session runs under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.conn, Conn::Tls(_))
    }

    /// pending_input - octets the client sent that nothing has used yet.
    pub fn pending_input(&self) -> bool {
        self.pos < self.inbuf.len()
    }

    /// read_plain - one read of protocol octets into `buf`: straight from
    /// the transport, or inflated when COMPRESS is on (then `buf` may be
    /// grown). Returns the octets added; 0 only at end of input.
    fn read_plain(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if self.deflate.is_none() {
            // Straight into the buffer's tail: no copy on the common path.
            let have = buf.len();
            buf.resize(have + IN_CHUNK, 0);
            let r = self.read_raw(&mut buf[have..]);
            buf.truncate(have + *r.as_ref().unwrap_or(&0));
            return r;
        }
        let mut raw = [0u8; IN_CHUNK];
        loop {
            let n = self.read_raw(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            let Some(z) = self.deflate.as_mut() else {
                return Ok(0);
            };
            let before = buf.len();
            let mut input = &raw[..n];
            while !input.is_empty() {
                if buf.len() - before > MAX_INFLATE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "compressed input inflates too far",
                    ));
                }
                buf.reserve(IN_CHUNK);
                let in0 = z.rx.total_in();
                z.rx.decompress_vec(input, buf, flate2::FlushDecompress::Sync)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let used = (z.rx.total_in() - in0) as usize;
                input = &input[used..];
            }
            // A read may hold only part of a deflate block: read on.
            if buf.len() > before {
                return Ok(buf.len() - before);
            }
        }
    }

    /// start_deflate - COMPRESS=DEFLATE: send what is queued (the OK) as
    /// it is, then compress everything after it both ways. The caller
    /// checks `pending_input` first: octets sent before our OK were not
    /// compressed.
    pub fn start_deflate(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.deflate.is_some() {
            return Err(io::Error::other("compression is already active"));
        }
        self.deflate = Some(Box::new(Deflate {
            tx: flate2::Compress::new(flate2::Compression::default(), false),
            rx: flate2::Decompress::new(false),
        }));
        Ok(())
    }

    /// is_compressed - whether COMPRESS=DEFLATE is on.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
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

    /// fill - read more input into the buffer, sending queued replies
    /// first (we are about to wait). Returns false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        self.flush()?;
        if self.pos > 0 {
            self.inbuf.drain(..self.pos);
            self.pos = 0;
        }
        let mut buf = std::mem::take(&mut self.inbuf);
        let r = self.read_plain(&mut buf);
        self.inbuf = buf;
        Ok(r? > 0)
    }

    /// read_line - the next line, None at end of input (a last line with
    /// no line end is dropped: the client went away mid-command). A line
    /// over the cap is returned cut to max_line + 1 octets, the rest of it
    /// read and thrown away.
    pub fn read_line(&mut self) -> io::Result<Option<Line>> {
        let mut discarding: Option<(Vec<u8>, usize)> = None;
        loop {
            let avail = &self.inbuf[self.pos..];
            if let Some(i) = avail.iter().position(|&b| b == b'\n') {
                let crlf = i > 0 && avail[i - 1] == b'\r';
                let end = if crlf { i - 1 } else { i };
                let ending = if crlf { Ending::Crlf } else { Ending::Lf };
                let line = match discarding {
                    Some((head, skipped)) => Line {
                        text: head,
                        len: skipped + i + 1,
                        ending,
                    },
                    None => Line {
                        text: avail[..end].to_vec(),
                        len: i + 1,
                        ending,
                    },
                };
                self.pos += i + 1;
                if self.pos == self.inbuf.len() {
                    self.inbuf.clear();
                    self.pos = 0;
                }
                return Ok(Some(line));
            }
            // No whole line: cut an overlong one down, keeping its start
            // (and a CR that may pair with the LF still to come).
            let held = self.inbuf.len() - self.pos;
            if held > self.max_line + 1 {
                let keep = usize::from(self.inbuf.last() == Some(&b'\r'));
                let d = discarding.get_or_insert_with(|| {
                    (
                        self.inbuf[self.pos..self.pos + self.max_line + 1].to_vec(),
                        0,
                    )
                });
                d.1 += held - keep;
                let tail = self.inbuf.len() - keep;
                self.inbuf.drain(..tail);
                self.pos = 0;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// read_some - up to `max` octets of input as they come (a literal or
    /// a BDAT chunk is read this way, never held whole); empty at end of
    /// input.
    pub fn read_some(&mut self, max: usize) -> io::Result<&[u8]> {
        if self.pos == self.inbuf.len() && !self.fill()? {
            return Ok(&[]);
        }
        let n = max.min(self.inbuf.len() - self.pos);
        let start = self.pos;
        self.pos += n;
        Ok(&self.inbuf[start..start + n])
    }

    /// accept - the start every server makes: when `peer` is one of the
    /// `trusted` proxies, read the PROXY header it sends first (up to 5 s)
    /// and take the real client it names; log `connect from`; with
    /// `implicit_tls` (--tls), the handshake. None when the session ends
    /// here (a bad header or a failed handshake, both logged).
    pub fn accept(
        &mut self,
        peer: crate::peer::Peer,
        trusted: &[posthorn_mail::net::Net],
        implicit_tls: Option<Arc<ServerConfig>>,
    ) -> Option<crate::peer::Peer> {
        let peer = match self.proxied(peer, trusted) {
            Ok(p) => p,
            Err(e) => {
                posthorn_sys::warning!("{e}");
                return None;
            }
        };
        posthorn_sys::info!("connect from {}", peer.log_name());
        if let Some(t) = implicit_tls
            && let Err(e) = self.start_tls(t)
        {
            posthorn_sys::info!("TLS handshake failed: {e}, client={}", peer.log_name());
            return None;
        }
        Some(peer)
    }

    /// upgrade - STARTTLS (POP3's STLS): the one place the three servers
    /// switch a plaintext session to TLS. `go_ahead` is the reply that
    /// lets the client start (empty when the session queued it already).
    /// Octets the client sent after the command came in plaintext and
    /// must not be taken as sent under TLS (CVE-2011-0411): then the
    /// attempt is logged and the caller ends the session. A failed
    /// handshake is logged too. The error is the session's end, for its
    /// disconnect line.
    pub fn upgrade(
        &mut self,
        cfg: Arc<ServerConfig>,
        go_ahead: &[u8],
        verb: &str,
        client: &str,
    ) -> Result<(), &'static str> {
        if self.pending_input() {
            posthorn_sys::warning!(
                "plaintext pipelined after {verb}, dropping the connection: client={client}"
            );
            return Err("plaintext pipelined after the TLS command");
        }
        self.queue(go_ahead);
        if let Err(e) = self.start_tls(cfg) {
            posthorn_sys::info!("TLS handshake failed: {e}, client={client}");
            return Err("TLS handshake failed");
        }
        Ok(())
    }

    /// proxied - the real client behind a trusted proxy, else `peer`.
    fn proxied(
        &mut self,
        peer: crate::peer::Peer,
        trusted: &[posthorn_mail::net::Net],
    ) -> Result<crate::peer::Peer, String> {
        if !peer.is_proxy(trusted) {
            return Ok(peer);
        }
        match self.read_proxy(Duration::from_secs(5)) {
            Ok(Some(Header::Proxied {
                source,
                destination,
            })) => Ok(crate::peer::Peer {
                remote: Some(source),
                local: Some(destination),
            }),
            Ok(Some(Header::Local) | None) => Ok(peer),
            Err(e) => Err(format!("bad PROXY header from {}: {e}", peer.log_name())),
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
            match crate::proxy::parse(&head) {
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

    /// queue_vec - add a reply we own; a big one is taken over rather than
    /// copied when nothing else waits.
    pub fn queue_vec(&mut self, b: Vec<u8>) {
        if self.out.is_empty() && b.len() > self.out.capacity() {
            self.out = b;
        } else {
            self.out.extend_from_slice(&b);
        }
    }

    /// start_tls - send what is queued (the go-ahead), then handshake on
    /// fds 0/1. The caller checks `pending_input` first.
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

    /// prime - input that came before this wire existed (a session takes
    /// over what the pre-login process had read past the login): read
    /// before anything from the transport.
    pub fn prime(&mut self, input: Vec<u8>) {
        let mut input = input;
        input.extend_from_slice(&self.inbuf[self.pos..]);
        self.inbuf = input;
        self.pos = 0;
    }

    /// into_parts - the end of a pre-login wire: queued replies sent,
    /// then the TLS connection (if any) and the input read but not used.
    /// Not under COMPRESS (it starts only after login).
    pub fn into_parts(mut self) -> io::Result<(Option<ServerConnection>, Vec<u8>)> {
        self.flush()?;
        if self.deflate.is_some() {
            return Err(io::Error::other("a compressed wire cannot be handed over"));
        }
        let rest = self.inbuf.split_off(self.pos);
        match std::mem::replace(&mut self.conn, Conn::Gone) {
            Conn::Plain(_) => Ok((None, rest)),
            Conn::Tls(t) => Ok((Some(t.conn), rest)),
            Conn::Gone => Err(io::Error::other("the connection is gone")),
        }
    }

    /// tls_version - the protocol version in use, as "TLSv1.3", if any.
    pub fn tls_version(&self) -> Option<&'static str> {
        let Conn::Tls(t) = &self.conn else {
            return None;
        };
        match t.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
            rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
            _ => Some("TLS"),
        }
    }

    /// tls_cipher - the cipher suite in use, if any.
    pub fn tls_cipher(&self) -> Option<String> {
        let Conn::Tls(t) = &self.conn else {
            return None;
        };
        let s = t.conn.negotiated_cipher_suite()?;
        Some(s.suite().as_str().unwrap_or("unknown").to_string())
    }

    /// close - send what is queued, and close_notify if under TLS.
    pub fn close(&mut self) {
        let _ = self.flush();
        if let Conn::Tls(t) = &mut self.conn {
            t.conn.send_close_notify();
            let _ = t.flush();
        }
    }
}

impl Write for Wire {
    /// write - queue, and send when a chunk has piled up.
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
        let packed;
        let send: &[u8] = match self.deflate.as_mut() {
            None => &out,
            Some(z) => {
                packed = deflate(&mut z.tx, &out)?;
                &packed
            }
        };
        let r = match &mut self.conn {
            Conn::Plain(r) => r.write_all(send),
            Conn::Tls(t) => t.write_all(send).and_then(|()| t.flush()),
            Conn::Gone => Ok(()),
        };
        self.out = out;
        self.out.clear();
        r
    }
}

/// deflate - `data` compressed and sync-flushed, so the client can inflate
/// every octet of it now (RFC 4978 4).
fn deflate(tx: &mut flate2::Compress, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut input = data;
    loop {
        out.reserve(data.len().max(1024));
        let in0 = tx.total_in();
        tx.compress_vec(input, &mut out, flate2::FlushCompress::Sync)
            .map_err(io::Error::other)?;
        input = &input[(tx.total_in() - in0) as usize..];
        // Done when all input is taken and the flush fit in the room left.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What deflate sends, inflated as a client would (raw deflate, a sync
    /// flush per batch), is what was queued, batch by batch.
    #[test]
    fn deflate_batches_inflate_back_whole() {
        let mut tx = flate2::Compress::new(flate2::Compression::default(), false);
        let mut rx = flate2::Decompress::new(false);
        let batches: Vec<Vec<u8>> = vec![
            b"* OK hello\r\n".to_vec(),
            (0..20_000u32)
                .flat_map(|i| format!("* {i} EXISTS\r\n").into_bytes())
                .collect(),
            Vec::from(&b"a OK done\r\n"[..]),
        ];
        for b in &batches {
            let packed = deflate(&mut tx, b).unwrap();
            let mut got = Vec::with_capacity(b.len() + 64);
            let mut input = &packed[..];
            while !input.is_empty() {
                got.reserve(64 * 1024);
                let in0 = rx.total_in();
                rx.decompress_vec(input, &mut got, flate2::FlushDecompress::Sync)
                    .unwrap();
                input = &input[(rx.total_in() - in0) as usize..];
            }
            assert_eq!(&got, b);
        }
    }
}
