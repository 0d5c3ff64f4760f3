//! conn - one SMTP connection: a TCP or TLS stream, replies read under a
//! deadline, commands written under one.
//!
//! Distrusts the server: reply lines are capped (4096 octets, 200 lines),
//! codes must be three digits and agree across a multi-line reply, a reply
//! dribbled slowly still ends at its deadline, and data the server sent
//! ahead of its STARTTLS answer is refused rather than read after TLS
//! (CVE-2011-0411's client side).

use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest reply line accepted.
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply.
const MAX_REPLY_LINES: usize = 200;

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text of each line, after the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// text - "550 5.1.1 text text", lines joined with spaces (Postfix's shape).
    pub fn text(&self) -> String {
        let mut t = self.code.to_string();
        for (i, l) in self.lines.iter().enumerate() {
            let l = l.trim();
            if i > 0 {
                // Later lines repeat the enhanced code; keep it once.
                let l = match split_enhanced(l) {
                    Some((_, rest)) if self.enhanced().is_some() => rest,
                    _ => l,
                };
                if !l.is_empty() {
                    t.push(' ');
                    t.push_str(l);
                }
            } else if !l.is_empty() {
                t.push(' ');
                t.push_str(l);
            }
        }
        t
    }

    /// enhanced - the RFC 3463 code at the start of the text, when its
    /// class agrees with the reply code.
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?;
        let (code, _) = split_enhanced(first.trim())?;
        (code.as_bytes()[0] == b'0' + (self.code / 100) as u8).then(|| code.to_string())
    }

    /// dsn - the enhanced code, or one made from the reply class.
    pub fn dsn(&self) -> String {
        self.enhanced()
            .unwrap_or_else(|| format!("{}.0.0", (self.code / 100).clamp(2, 5)))
    }

    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
    pub fn is_temp(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

/// split_enhanced - "5.1.1 rest" into the code and the rest.
fn split_enhanced(s: &str) -> Option<(&str, &str)> {
    let (code, rest) = s.split_once(' ').unwrap_or((s, ""));
    let mut parts = code.split('.');
    let class = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && parts.clone().count() == 2
        && parts.all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some((code, rest.trim_start()))
}

/// Why a read or write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoFail {
    Timeout,
    /// The connection went away or broke (text from the OS or TLS).
    Lost(String),
    /// The server sent something that is not an SMTP reply.
    Garbage(String),
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// A connection to one server address.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// `name[ip]:port`, for logs and replies.
    pub relay: String,
    /// `name[ip]`, as Postfix names a host in its reply text.
    pub host: String,
    pub name: String,
    pub tls: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({}, tls={})", self.relay, self.tls)
    }
}

impl Conn {
    /// connect - a TCP connection to `addr` within `timeout`.
    pub fn connect(name: &str, addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        let _ = s.set_nodelay(true);
        Ok(Conn {
            stream: Stream::Plain(s),
            buf: Vec::new(),
            relay: format!("{name}[{}]:{}", addr.ip(), addr.port()),
            host: format!("{name}[{}]", addr.ip()),
            name: name.to_string(),
            tls: false,
        })
    }

    fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }

    /// start_tls - the TLS handshake over the current connection, within `timeout`.
    pub fn start_tls(
        &mut self,
        cfg: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err("the server sent data ahead of the TLS handshake".into());
        }
        let sn = match self.name.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(self.name.clone()).map_err(|e| format!("{e}"))?,
        };
        let placeholder = Stream::Plain(self.tcp().try_clone().map_err(|e| e.to_string())?);
        let Stream::Plain(sock) = std::mem::replace(&mut self.stream, placeholder) else {
            return Err("TLS is already on".into());
        };
        let _ = sock.set_read_timeout(Some(timeout));
        let _ = sock.set_write_timeout(Some(timeout));
        let conn = rustls::ClientConnection::new(cfg, sn).map_err(|e| e.to_string())?;
        let mut t = rustls::StreamOwned::new(conn, sock);
        let deadline = Instant::now() + timeout;
        while t.conn.is_handshaking() {
            if Instant::now() > deadline {
                return Err("timed out".into());
            }
            t.conn
                .complete_io(&mut t.sock)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        "timed out".to_string()
                    }
                    _ => e.to_string(),
                })?;
        }
        self.stream = Stream::Tls(Box::new(t));
        self.tls = true;
        Ok(())
    }

    /// send - write `data` within `timeout` per write.
    pub fn send(&mut self, data: &[u8], timeout: Duration) -> Result<(), IoFail> {
        let _ = self.tcp().set_write_timeout(Some(timeout));
        let r = match &mut self.stream {
            Stream::Plain(s) => s.write_all(data).and_then(|()| s.flush()),
            Stream::Tls(t) => t.write_all(data).and_then(|()| t.flush()),
        };
        r.map_err(io_fail)
    }

    /// read_reply - one whole reply within `timeout`.
    pub fn read_reply(&mut self, timeout: Duration) -> Result<Reply, IoFail> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        let mut code = None;
        loop {
            let line = self.read_line(deadline)?;
            let text = String::from_utf8_lossy(&line).into_owned();
            let b = line.as_slice();
            if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
                return Err(IoFail::Garbage(format!(
                    "bad reply line: {}",
                    printable(&text)
                )));
            }
            let c: u16 = text[..3].parse().unwrap_or(0);
            if !(200..600).contains(&c) || code.is_some_and(|x| x != c) {
                return Err(IoFail::Garbage(format!(
                    "bad reply code: {}",
                    printable(&text)
                )));
            }
            code = Some(c);
            let more = b.get(3) == Some(&b'-');
            lines.push(printable(text.get(4..).unwrap_or("")));
            if !more {
                return Ok(Reply { code: c, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(IoFail::Garbage("reply too long".into()));
            }
        }
    }

    /// read_line - one line without its end (CRLF, or a bare LF tolerated).
    fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, IoFail> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(IoFail::Garbage("reply line too long".into()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(IoFail::Timeout);
            }
            let _ = self.tcp().set_read_timeout(Some(deadline - now));
            let mut chunk = [0u8; 4096];
            let n = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut chunk),
                Stream::Tls(t) => t.read(&mut chunk),
            };
            match n {
                Ok(0) => return Err(IoFail::Lost("connection closed by the server".into())),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_fail(e)),
            }
        }
    }
}

/// io_fail - an OS or TLS error as a timeout or a lost connection.
fn io_fail(e: std::io::Error) -> IoFail {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => IoFail::Timeout,
        _ => IoFail::Lost(e.to_string()),
    }
}

/// printable - control characters out of server text before it reaches logs.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, lines: &[&str]) -> Reply {
        Reply {
            code,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reply_text_and_codes() {
        let r = reply(550, &["5.1.1 <x@y>: no such user", "5.1.1 try again never"]);
        assert_eq!(r.text(), "550 5.1.1 <x@y>: no such user try again never");
        assert_eq!(r.dsn(), "5.1.1");
        // A class that disagrees with the reply code is not believed.
        assert_eq!(reply(450, &["5.1.1 odd"]).dsn(), "4.0.0");
        assert_eq!(reply(421, &["closing"]).dsn(), "4.0.0");
        assert_eq!(reply(250, &[]).text(), "250");
        assert!(reply(452, &[]).is_temp() && reply(250, &[]).is_ok());
    }

    #[test]
    fn replies_from_a_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"220-hi\r\n220 there\r\n250 ok\n999 bad\r\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        let mut c = Conn::connect("h", addr, Duration::from_secs(2)).unwrap();
        let r = c.read_reply(Duration::from_secs(2)).unwrap();
        assert_eq!((r.code, r.lines.len()), (220, 2));
        assert_eq!(c.read_reply(Duration::from_secs(2)).unwrap().code, 250);
        assert!(matches!(
            c.read_reply(Duration::from_secs(2)),
            Err(IoFail::Garbage(_))
        ));
        assert_eq!(
            c.read_reply(Duration::from_millis(100)),
            Err(IoFail::Timeout)
        );
        t.join().unwrap();
        assert_eq!(c.relay, format!("h[127.0.0.1]:{}", addr.port()));
    }
}
