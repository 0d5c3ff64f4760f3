//! binary - RFC 3516's BINARY[...] and BINARY.SIZE[...]: a leaf part
//! with its content-transfer-encoding undone (base64, quoted-printable;
//! 7bit, 8bit and binary pass through), text/* with CRLF line ends, and
//! the FETCH response item, as a literal8 `~{n}` when the result holds
//! a NUL.
//!
//! Distrusts the message: bad base64 characters are skipped and a
//! broken `=` escape in quoted-printable is kept as it is (both as
//! Dovecot does), the decoded size is capped (a base64 body only
//! shrinks, but CRLF conversion of text may grow it), and an encoding
//! we do not know is an UNKNOWN-CTE refusal, never a guess.

use crate::command::Section;
use crate::mime::{self, Part};
use std::io::Write;

/// Why a BINARY item cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A content-transfer-encoding we cannot undo (the NO's text).
    UnknownCte(String),
    /// The section is a multipart: it has no content of its own to
    /// decode (its parts have).
    Multipart,
    /// The decoded data passes the size cap.
    TooBig,
}

impl Refusal {
    /// reply - the tagged NO's text.
    pub fn reply(&self) -> String {
        match self {
            Refusal::UnknownCte(c) => {
                format!("NO [UNKNOWN-CTE] cannot decode content-transfer-encoding {c}")
            }
            Refusal::Multipart => "NO BINARY of a multipart is not defined; fetch its parts".into(),
            Refusal::TooBig => "NO [LIMIT] decoded part too large".into(),
        }
    }
}

/// data - the octets BINARY[section] names: a section with HEADER, TEXT,
/// MIME or HEADER.FIELDS has no transfer encoding to undo and is BODY's
/// (taken as Dovecot takes it), a part path is decoded (`section`).
pub fn data(msg: &[u8], root: &Part, s: &Section, limit: u64) -> Result<Vec<u8>, Refusal> {
    if s.text.is_none() {
        return section(msg, root, &s.path, limit);
    }
    let d = crate::fetch::section_data(msg, root, s);
    if d.len() as u64 > limit {
        return Err(Refusal::TooBig);
    }
    Ok(d)
}

/// section - the octets BINARY[path] names in `msg` (CRLF, parsed into
/// `root`), decoded, at most `limit` octets; a part that does not exist
/// is empty, as BODY[...] is.
pub fn section(msg: &[u8], root: &Part, path: &[u32], limit: u64) -> Result<Vec<u8>, Refusal> {
    // BINARY[] is the whole message: a message has no transfer
    // encoding of its own (RFC 2045 §6.4 allows only 7bit, 8bit or
    // binary on message/rfc822 and multipart), so it goes as stored.
    if path.is_empty() {
        return Ok(msg.to_vec());
    }
    let Some(part) = mime::resolve(root, path) else {
        return Ok(Vec::new());
    };
    if part.is_multipart() {
        return Err(Refusal::Multipart);
    }
    let body = &msg[part.body.clone()];
    let cte = part
        .encoding
        .as_deref()
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let out = match cte.as_str() {
        "7bit" | "8bit" | "binary" | "" => body.to_vec(),
        "base64" => {
            let d = base64(body);
            if part.mtype == "text" {
                mime::to_crlf(&d).into_owned()
            } else {
                d
            }
        }
        "quoted-printable" => {
            let d = quoted_printable(body);
            if part.mtype == "text" {
                mime::to_crlf(&d).into_owned()
            } else {
                d
            }
        }
        _ => return Err(Refusal::UnknownCte(cte)),
    };
    if out.len() as u64 > limit {
        return Err(Refusal::TooBig);
    }
    Ok(out)
}

/// b64_value - the 6-bit value of a base64 character.
fn b64_value(c: u8) -> Option<u8> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

/// base64 - RFC 2045 §6.8 decoding: characters outside the alphabet
/// (line breaks, junk) are ignored, `=` ends the data.
pub fn base64(enc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(enc.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in enc {
        if c == b'=' {
            break;
        }
        let Some(v) = b64_value(c) else { continue };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// hex - the value of a hexadecimal digit.
fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// quoted_printable - RFC 2045 §6.7 decoding: `=XX` escapes, soft line
/// breaks (`=` at a line end, trailing white space allowed), white
/// space at line ends dropped; a malformed `=` stays as it is.
pub fn quoted_printable(enc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(enc.len());
    let mut soft = true;
    for raw in enc.split(|&c| c == b'\n') {
        // The line break after a soft break is not data.
        if !soft {
            out.extend_from_slice(b"\r\n");
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Transport padding at the end of a line is not data (§6.7 (3)).
        let end = line
            .iter()
            .rposition(|&c| c != b' ' && c != b'\t')
            .map_or(0, |i| i + 1);
        let line = &line[..end];
        let line = match line.strip_suffix(b"=") {
            Some(l) => {
                soft = true;
                l
            }
            None => {
                soft = false;
                line
            }
        };
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            if c == b'='
                && let (Some(h), Some(l)) = (
                    line.get(i + 1).copied().and_then(hex),
                    line.get(i + 2).copied().and_then(hex),
                )
            {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
            out.push(c);
            i += 1;
        }
    }
    out
}

/// item - the FETCH response item for BINARY (or BINARY.PEEK, which
/// answers as BINARY) with its data: a literal8 when a NUL is in it.
pub fn item(out: &mut Vec<u8>, s: &Section, partial: Option<(u32, u32)>, data: &[u8]) {
    let _ = write!(out, "BINARY[{}]", crate::fetch::section_spec(s));
    let d: &[u8] = match partial {
        Some((start, len)) => {
            let _ = write!(out, "<{start}>");
            let a = (start as usize).min(data.len());
            let b = a.saturating_add(len as usize).min(data.len());
            &data[a..b]
        }
        None => data,
    };
    let tilde = if d.contains(&0) { "~" } else { "" };
    let _ = write!(out, " {tilde}{{{}}}\r\n", d.len());
    out.extend_from_slice(d);
}

/// extend_without_nul - literal data for BODY[...] and RFC822: a NUL
/// (from a message APPENDed as a literal8) may not be in a plain
/// literal (RFC 3501 CHAR8), so it goes as 0x80, as Dovecot sends it;
/// the size stays, BINARY gives the real octets.
pub fn extend_without_nul(out: &mut Vec<u8>, d: &[u8]) {
    let at = out.len();
    out.extend_from_slice(d);
    if memchr::memchr(0, d).is_some() {
        for c in &mut out[at..] {
            if *c == 0 {
                *c = 0x80;
            }
        }
    }
}

/// size_item - `BINARY.SIZE[section] n`.
pub fn size_item(out: &mut Vec<u8>, s: &Section, data: &[u8]) {
    let _ = write!(
        out,
        "BINARY.SIZE[{}] {}",
        crate::fetch::section_spec(s),
        data.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers() {
        assert_eq!(base64(b"aGVsbG8="), b"hello");
        assert_eq!(base64(b"aGVs\r\nbG8gd29y\r\nbGQ="), b"hello world");
        assert_eq!(base64(b"AAEC/w=="), [0, 1, 2, 255]);
        assert_eq!(base64(b"a*G!V#s"), b"hel");
        assert_eq!(base64(b""), b"");
    }

    #[test]
    fn quoted_printable_known_answers() {
        assert_eq!(quoted_printable(b"caf=C3=A9"), "café".as_bytes());
        assert_eq!(quoted_printable(b"a=\r\nb\r\nc"), b"ab\r\nc");
        assert_eq!(quoted_printable(b"x  \r\ny"), b"x\r\ny");
        assert_eq!(quoted_printable(b"=3D=ZZ="), b"==ZZ");
        assert_eq!(quoted_printable(b"end=\r\n"), b"end");
        assert_eq!(quoted_printable(b"=00"), [0]);
    }

    const MSG: &[u8] = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=EFve=\r\n text\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nYQpiCg==\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n\
--b--\r\n";

    #[test]
    fn sections() {
        let root = mime::parse(MSG);
        let s = |p: &[u32]| section(MSG, &root, p, 1 << 20);
        assert_eq!(s(&[1]).unwrap(), b"na\xefve text");
        assert_eq!(s(&[2]).unwrap(), [0, 1, 2]);
        // Decoded text gets CRLF line ends.
        assert_eq!(s(&[3]).unwrap(), b"a\r\nb\r\n");
        assert_eq!(
            s(&[4]).unwrap_err(),
            Refusal::UnknownCte("x-uuencode".into())
        );
        assert_eq!(s(&[9]).unwrap(), b"");
        assert_eq!(s(&[]).unwrap(), MSG);
        assert_eq!(section(MSG, &root, &[1], 3).unwrap_err(), Refusal::TooBig);
        let multi = b"Content-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: multipart/alternative; boundary=d\r\n\r\n--d\r\n\r\nx\r\n--d--\r\n--c--\r\n";
        let r = mime::parse(multi);
        assert_eq!(
            section(multi, &r, &[1], 100).unwrap_err(),
            Refusal::Multipart
        );
    }

    #[test]
    fn items() {
        let sec = |path: Vec<u32>| Section { path, text: None };
        let mut o = Vec::new();
        item(&mut o, &sec(vec![2]), None, &[0, 1, 2]);
        assert_eq!(o, b"BINARY[2] ~{3}\r\n\x00\x01\x02");
        let mut o = Vec::new();
        item(&mut o, &sec(vec![1, 2]), Some((1, 2)), b"abcd");
        assert_eq!(o, b"BINARY[1.2]<1> {2}\r\nbc");
        let mut o = Vec::new();
        item(&mut o, &sec(vec![1]), Some((2, u32::MAX)), b"abcd");
        assert_eq!(o, b"BINARY[1]<2> {2}\r\ncd");
        let mut o = b"x".to_vec();
        extend_without_nul(&mut o, b"a\0b");
        assert_eq!(o, b"xa\x80b");
        let mut o = Vec::new();
        size_item(&mut o, &sec(vec![]), b"abc");
        assert_eq!(o, b"BINARY.SIZE[] 3");
        let mut o = Vec::new();
        let mime = Section {
            path: vec![1],
            text: Some(crate::command::SectionText::Mime),
        };
        size_item(&mut o, &mime, b"abc");
        assert_eq!(o, b"BINARY.SIZE[1.MIME] 3");
    }
}
