//! handoff - after a login, the client's connection goes from the
//! pre-login process to the session, over the stream socket pair the
//! password check sent each of them an end of.
//!
//! The pre-login process writes one header first: a 4-octet length in
//! network order, then fields ending in NUL: version "1", mode
//! ("direct" or "relay"), the login command's tag (IMAP; empty for
//! POP3), and after the last NUL the input the client had sent past the
//! login command (pipelined commands), which the session reads first.
//!
//! - direct (no TLS): the client's fds 0 and 1 travel with the header
//!   (SCM_RIGHTS); the session puts them on its own fds 0 and 1, and the
//!   pre-login process ends: the session then talks to the client itself.
//! - relay (TLS): the pre-login process stays as the TLS end of the
//!   connection and relays plaintext both ways over the socket pair
//!   (relay.rs), as Dovecot's login processes do; the session's fds 0
//!   and 1 stay its end of the pair.
//!
//! The session distrusts the header as it distrusts the client: the
//! input is client input, the tag is echoed only if it is short and
//! printable, and a header over MAX_HEADER ends the session.

use crate::wire::Wire;
use posthorn_sys::confine;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// Longest header the session accepts: a command line (64 KiB in IMAP)
/// and a read's worth of input behind it, with room to spare.
pub const MAX_HEADER: usize = 256 * 1024;

/// How long the session waits for the header.
const WAIT: Duration = Duration::from_secs(30);

/// What the session learns from the pre-login process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The pre-login process relays TLS (else the connection came over).
    pub relayed: bool,
    /// The login command's tag, for the tagged reply (IMAP).
    pub tag: String,
    /// Client input read past the login command.
    pub input: Vec<u8>,
}

/// encode - the header's octets, length first.
fn encode(relayed: bool, tag: &str, input: &[u8]) -> Vec<u8> {
    let mut body = b"1\0".to_vec();
    body.extend_from_slice(if relayed { b"relay\0" } else { b"direct\0" });
    body.extend_from_slice(tag.as_bytes());
    body.push(0);
    body.extend_from_slice(input);
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&body);
    v
}

/// decode - a header's body (after the length), or why not.
fn decode(body: &[u8]) -> Result<Handoff, &'static str> {
    let mut parts = body.splitn(4, |&c| c == 0);
    let (Some(version), Some(mode), Some(tag), Some(input)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("handoff header cut short");
    };
    if version != b"1" {
        return Err("unknown handoff version");
    }
    let relayed = match mode {
        b"relay" => true,
        b"direct" => false,
        _ => return Err("unknown handoff mode"),
    };
    if tag.len() > 64 || !tag.iter().all(u8::is_ascii_graphic) {
        return Err("bad tag in the handoff");
    }
    Ok(Handoff {
        relayed,
        tag: String::from_utf8_lossy(tag).into_owned(),
        input: input.to_vec(),
    })
}

/// hand_over - in the pre-login process, after a good login: give the
/// session what the wire holds and the connection, directly or through
/// this process as the TLS relay (returns when the relay ends). `idle`
/// bounds how long a client may leave the relay's output unread.
pub fn hand_over(wire: Wire, session: OwnedFd, tag: &str, idle: Duration) -> io::Result<()> {
    let (tls, input) = wire.into_parts()?;
    let header = encode(tls.is_some(), tag, &input);
    match tls {
        None => {
            let (i, o) = (io::stdin(), io::stdout());
            confine::send_fds(session.as_fd(), &header, &[i.as_fd(), o.as_fd()])
        }
        Some(conn) => {
            confine::send_fds(session.as_fd(), &header, &[])?;
            crate::relay::relay(conn, session, idle)
        }
    }
}

/// receive - in the session, first thing: the header from fd 0, and in
/// direct mode the client's connection put on fds 0 and 1.
pub fn receive() -> io::Result<Handoff> {
    let stdin = io::stdin();
    let fd = stdin.as_fd();
    let bad = |why: &'static str| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut len = [0u8; 4];
    wait_readable(fd)?;
    let (mut got, fds) = confine::recv_fds(fd, &mut len, 2)?;
    if got == 0 {
        return Err(bad("no handoff from the pre-login process"));
    }
    read_exact(fd, &mut len[got..])?;
    got = u32::from_be_bytes(len) as usize;
    if got > MAX_HEADER {
        return Err(bad("handoff header too long"));
    }
    let mut body = vec![0u8; got];
    read_exact(fd, &mut body)?;
    let h = decode(&body).map_err(bad)?;
    match (h.relayed, fds.as_slice()) {
        (true, []) => {}
        (false, [i, o]) => {
            confine::dup_to(i.as_fd(), 0)?;
            confine::dup_to(o.as_fd(), 1)?;
        }
        _ => return Err(bad("handoff with the wrong descriptors")),
    }
    Ok(h)
}

/// wait_readable - poll fd for input, up to WAIT.
fn wait_readable(fd: std::os::fd::BorrowedFd) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let ms = PollTimeout::try_from(WAIT).unwrap_or(PollTimeout::MAX);
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no handoff from the pre-login process",
                ));
            }
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// read_exact - fill `buf` from fd, each read within WAIT.
fn read_exact(fd: std::os::fd::BorrowedFd, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        wait_readable(fd)?;
        match nix::unistd::read(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let v = encode(true, "a1", b"b2 SELECT INBOX\r\n\0\xff");
        assert_eq!(
            u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize,
            v.len() - 4
        );
        assert_eq!(
            decode(&v[4..]).unwrap(),
            Handoff {
                relayed: true,
                tag: "a1".into(),
                input: b"b2 SELECT INBOX\r\n\0\xff".to_vec()
            }
        );
        let v = encode(false, "", b"");
        assert!(!decode(&v[4..]).unwrap().relayed);
        for bad in [
            &b""[..],
            b"1\0relay\0",
            b"2\0relay\0a\0",
            b"1\0tunnel\0a\0",
            b"1\0relay\0a b\0",
            b"1\0relay\0a\r\n\0",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert!(decode(format!("1\0relay\0{}\0", "t".repeat(65)).as_bytes()).is_err());
    }
}
