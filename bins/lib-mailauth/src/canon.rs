//! canon - DKIM's canonicalization (RFC 6376 3.4): "simple" and
//! "relaxed" for header fields and for the body, and the body hash with
//! an optional length limit (l=).
//!
//! Input lines end in LF or CRLF; what is hashed always ends lines in
//! CRLF, as on the wire.

use ring::digest;

/// Body or header canonicalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    Simple,
    Relaxed,
}

impl Canon {
    pub fn name(self) -> &'static str {
        match self {
            Canon::Simple => "simple",
            Canon::Relaxed => "relaxed",
        }
    }
}

/// parse_c - the c= tag: "header/body", either half defaulting to simple.
pub fn parse_c(v: &str) -> Option<(Canon, Canon)> {
    let one = |s: &str| match s {
        "simple" => Some(Canon::Simple),
        "relaxed" => Some(Canon::Relaxed),
        _ => None,
    };
    let v = v.to_ascii_lowercase();
    match v.split_once('/') {
        Some((h, b)) => Some((one(h)?, one(b)?)),
        None => Some((one(&v)?, Canon::Simple)),
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// header - one field canonicalized, ending in CRLF.
pub fn header(raw: &[u8], c: Canon) -> Vec<u8> {
    match c {
        Canon::Simple => crlf(raw),
        Canon::Relaxed => {
            let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
            let mut name = &raw[..colon];
            while let [rest @ .., last] = name
                && is_wsp(*last)
            {
                name = rest;
            }
            let mut out: Vec<u8> = name.iter().map(u8::to_ascii_lowercase).collect();
            out.push(b':');
            let value = raw.get(colon + 1..).unwrap_or(b"");
            // Unfold, then runs of WSP become one SP, none at either end.
            let mut pending_space = false;
            let mut started = false;
            for &b in value {
                match b {
                    b'\r' | b'\n' => {}
                    b' ' | b'\t' => pending_space = true,
                    _ => {
                        if pending_space && started {
                            out.push(b' ');
                        }
                        pending_space = false;
                        started = true;
                        out.push(b);
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// crlf - `raw` with every line end as CRLF, and one at the end.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 8);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// BodyHash - the canonical body fed line by line into SHA-256, up to a
/// limit; trailing empty lines are held back until a non-empty one shows
/// they were not trailing.
struct BodyHash {
    c: Canon,
    ctx: digest::Context,
    limit: Option<u64>,
    /// Canonical octets produced (all of them, hashed or not).
    len: u64,
    hashed: u64,
    blank: u64,
    any: bool,
}

impl BodyHash {
    fn feed(&mut self, b: &[u8]) {
        self.len += b.len() as u64;
        let take = match self.limit {
            Some(l) => (l.saturating_sub(self.hashed)).min(b.len() as u64) as usize,
            None => b.len(),
        };
        self.ctx.update(&b[..take]);
        self.hashed += take as u64;
    }

    fn line(&mut self, line: &[u8]) {
        let mut buf;
        let line = match self.c {
            Canon::Simple => line,
            Canon::Relaxed => {
                buf = Vec::with_capacity(line.len());
                let mut space = false;
                for &b in line {
                    if is_wsp(b) {
                        space = true;
                    } else {
                        if space {
                            buf.push(b' ');
                        }
                        space = false;
                        buf.push(b);
                    }
                }
                &buf[..]
            }
        };
        if line.is_empty() {
            self.blank += 1;
            return;
        }
        for _ in 0..self.blank {
            self.feed(b"\r\n");
        }
        self.blank = 0;
        self.feed(line);
        self.feed(b"\r\n");
        self.any = true;
    }
}

/// body_hash - SHA-256 of the canonical body, hashing at most `limit`
/// octets of it, and the canonical body's whole length.
pub fn body_hash(body: &[u8], c: Canon, limit: Option<u64>) -> (Vec<u8>, u64) {
    let mut h = BodyHash {
        c,
        ctx: digest::Context::new(&digest::SHA256),
        limit,
        len: 0,
        hashed: 0,
        blank: 0,
        any: false,
    };
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (&rest[..p], &rest[p + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        h.line(line);
        rest = next;
    }
    // An empty simple body is one CRLF; an empty relaxed body is nothing.
    if !h.any && c == Canon::Simple {
        h.feed(b"\r\n");
    }
    let len = h.len;
    (h.ctx.finish().as_ref().to_vec(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn headers() {
        assert_eq!(
            header(b"SubJect : a \t b\r\n  c \r\n", Canon::Relaxed),
            b"subject:a b c\r\n"
        );
        assert_eq!(header(b"A: b\n c\n", Canon::Simple), b"A: b\r\n c\r\n");
        assert_eq!(header(b"A:", Canon::Relaxed), b"a:\r\n");
    }

    #[test]
    fn bodies() {
        // RFC 6376 3.4.5's example body.
        let body = b" C \r\nD \t E\r\n\r\n\r\n";
        let (_, n) = body_hash(body, Canon::Relaxed, None);
        assert_eq!(n, b" C\r\nD E\r\n".len() as u64);
        let (_, n) = body_hash(body, Canon::Simple, None);
        assert_eq!(n, b" C \r\nD \t E\r\n".len() as u64);
        // The empty body's hashes (RFC 6376 3.4.3 and 3.4.4, errata 3192).
        let sha = |d: &[u8]| hex(digest::digest(&digest::SHA256, d).as_ref());
        assert_eq!(hex(&body_hash(b"", Canon::Simple, None).0), sha(b"\r\n"));
        assert_eq!(hex(&body_hash(b"\n\n", Canon::Relaxed, None).0), sha(b""));
        // LF and CRLF bodies hash alike; l= cuts the hash, not the length.
        assert_eq!(
            body_hash(b"a\nb\n", Canon::Simple, None),
            body_hash(b"a\r\nb\r\n", Canon::Simple, None)
        );
        let (h, n) = body_hash(b"abc\nmore\n", Canon::Simple, Some(5));
        assert_eq!((hex(&h), n), (sha(b"abc\r\n"), 11));
    }
}
