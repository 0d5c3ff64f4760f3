//! data - the message as it goes on the wire after DATA.
//!
//! Distrusts the queued text: it may hold bare CR or LF, lines longer than
//! SMTP allows, or lone dots. What leaves here has CRLF line ends only
//! (SMTP smuggling needs a bare one), every line at most 998 octets (a
//! longer one is broken, never cut: a header line is folded with CRLF SP,
//! a body line gets a CRLF as Postfix's smtp_line_length_limit does),
//! leading dots doubled, and the CRLF.CRLF end.

/// Longest line SMTP allows, without its CRLF (RFC 5321 §4.5.3.1.6).
pub const MAX_LINE: usize = 998;

/// is_8bit - whether any octet has the high bit set.
pub fn is_8bit(msg: &[u8]) -> bool {
    msg.iter().any(|&b| b >= 0x80)
}

/// header - the header section of `msg`, up to its empty line.
pub fn header(msg: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < msg.len() {
        let end = msg[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |p| i + p + 1);
        let line = &msg[i..end];
        if line == b"\n" || line == b"\r\n" {
            return &msg[..i];
        }
        i = end;
    }
    msg
}

/// lines - the lines of `msg` without their ends; CRLF, a bare LF and a
/// bare CR each end a line.
fn lines(msg: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < msg.len() {
        match msg[i] {
            b'\r' => {
                out.push(&msg[start..i]);
                i += if msg.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                start = i;
            }
            b'\n' => {
                out.push(&msg[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < msg.len() {
        out.push(&msg[start..]);
    }
    out
}

/// encode - `msg` as DATA content, ending in CRLF.CRLF.
pub fn encode(msg: &[u8]) -> Vec<u8> {
    let mut out = wire(msg, true);
    out.extend_from_slice(b".\r\n");
    out
}

/// as_sent - the message exactly as the server will have it once the dots
/// are unstuffed: what qrun's DKIM signer signs, so that a header folded
/// or a body line broken here does not break the signature.
pub fn as_sent(msg: &[u8]) -> Vec<u8> {
    wire(msg, false)
}

/// wire - CRLF lines of at most MAX_LINE octets, dots doubled if `stuff`.
fn wire(msg: &[u8], stuff: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 40 + 8);
    let mut in_header = true;
    for line in lines(msg) {
        if in_header && line.is_empty() {
            in_header = false;
        }
        let mut rest = line;
        let mut first = true;
        loop {
            // A folded header piece starts with the SP that makes it a continuation.
            let room = if !first && in_header {
                MAX_LINE - 1
            } else {
                MAX_LINE
            };
            let take = rest.len().min(room);
            let (piece, tail) = rest.split_at(take);
            if !first && in_header {
                out.push(b' ');
            } else if stuff && piece.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
            first = false;
            rest = tail;
            if rest.is_empty() {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_dots_and_long_lines() {
        for (input, want) in [
            (&b"a\nb\n"[..], &b"a\r\nb\r\n.\r\n"[..]),
            (b"a\r\nb", b"a\r\nb\r\n.\r\n"),
            (b"a\rb\r\n", b"a\r\nb\r\n.\r\n"),
            (b"S: x\n\n.\n..x\n", b"S: x\r\n\r\n..\r\n...x\r\n.\r\n"),
            (b"", b".\r\n"),
        ] {
            assert_eq!(encode(input), want, "{:?}", String::from_utf8_lossy(input));
        }
        let long_body = [b"S: x\n\n".to_vec(), vec![b'y'; 2500], b"\n".to_vec()].concat();
        let e = encode(&long_body);
        let body: Vec<&[u8]> = e.split(|&b| b == b'\n').collect();
        assert!(body.iter().all(|l| l.len() <= MAX_LINE + 1));
        let ys = e.iter().filter(|&&b| b == b'y').count();
        assert_eq!(ys, 2500, "nothing is lost");
        let long_head = [b"X: ".to_vec(), vec![b'z'; 1500], b"\n\nb\n".to_vec()].concat();
        let e = encode(&long_head);
        let t = String::from_utf8(e).unwrap();
        assert!(t.contains("\r\n z"), "folded as a continuation");
        assert!(t.lines().all(|l| l.len() <= MAX_LINE));
        // No bare CR or LF anywhere.
        let odd = encode(b"a\r\r\nb\n\rc\r");
        for (i, &b) in odd.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(odd[i - 1], b'\r');
            }
            if b == b'\r' {
                assert_eq!(odd[i + 1], b'\n');
            }
        }
        assert!(is_8bit("é".as_bytes()) && !is_8bit(b"plain"));
        assert_eq!(header(b"A: b\r\nC: d\r\n\r\nbody\n"), b"A: b\r\nC: d\r\n");
        assert_eq!(header(b"A: b\n"), b"A: b\n");
    }
}
