//! mime - a message's MIME part tree with the exact byte ranges IMAP
//! sections need (each part's header and body, message/rfc822 parts'
//! embedded messages), over a message whose lines end in CRLF. Header
//! fields, parameters (RFC 2231) and encoded words (RFC 2047) are
//! mailparse's, the project's one MIME parser; the tree and its offsets
//! are cut here, since mailparse does not descend into message/rfc822.
//!
//! Distrusts the message: nesting stops at MAX_DEPTH and the part count
//! at MAX_PARTS (the rest is left as a leaf's body), parameters are
//! capped at MAX_PARAMS per field (CVE-2026-27859 in Dovecot was their
//! count), a missing boundary leaves a multipart with one empty text
//! part, and nothing here can panic on any input (fuzzed).

use std::ops::Range;

const MAX_DEPTH: usize = 32;
const MAX_PARTS: usize = 2000;
const MAX_PARAMS: usize = 64;

/// One part (the whole message is a part too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The header, its blank line included.
    pub header: Range<usize>,
    pub body: Range<usize>,
    /// Lowercase type and subtype.
    pub mtype: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub id: Option<String>,
    pub description: Option<String>,
    pub encoding: Option<String>,
    pub md5: Option<String>,
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Option<String>,
    pub location: Option<String>,
    /// The body's line count (text/* and message/rfc822).
    pub lines: usize,
    /// A multipart's parts.
    pub children: Vec<Part>,
    /// A message/rfc822 part's message.
    pub message: Option<Box<Part>>,
}

impl Part {
    /// is_multipart - whether the part has parts.
    pub fn is_multipart(&self) -> bool {
        self.mtype == "multipart"
    }
}

/// header_end - the offset just past the blank line ending the header
/// at `start`; the body starts there.
fn header_end(msg: &[u8], start: usize, end: usize) -> usize {
    let s = &msg[start..end];
    if s.starts_with(b"\r\n") {
        return start + 2;
    }
    match memfind(s, b"\r\n\r\n") {
        Some(i) => start + i + 4,
        None => end,
    }
}

/// memfind - first index of `needle` in `hay`.
pub fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(hay, needle)
}

/// Fields - a header's fields: lowercase name, raw value (unfolded, trimmed).
pub fn fields(header: &[u8]) -> Vec<(String, String)> {
    let Ok((hs, _)) = mailparse::parse_headers(header) else {
        return Vec::new();
    };
    hs.iter()
        .map(|h| {
            let raw = String::from_utf8_lossy(h.get_value_raw());
            let unfolded: String = raw.replace("\r\n", "").replace('\n', "");
            (
                h.get_key().to_ascii_lowercase(),
                unfolded.trim().to_string(),
            )
        })
        .collect()
}

/// param_list - parameters of a Content-Type/Disposition value, RFC 2231
/// continuations joined and charsets decoded by mailparse.
fn param_list(value: &str) -> (String, Vec<(String, String)>) {
    let ct = mailparse::parse_content_type(value);
    let params = ct.params.into_iter().take(MAX_PARAMS).collect();
    (ct.mimetype, params)
}

/// parse - the tree of a CRLF message.
pub fn parse(msg: &[u8]) -> Part {
    let mut count = 0;
    part(msg, 0, msg.len(), 0, false, &mut count)
}

/// part - the part between `start` and `end`, its children parsed too.
fn part(
    msg: &[u8],
    start: usize,
    end: usize,
    depth: usize,
    digest: bool,
    count: &mut usize,
) -> Part {
    *count += 1;
    let hend = header_end(msg, start, end);
    let hdr = fields(&msg[start..hend]);
    let get = |n: &str| hdr.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let (mut mtype, mut subtype, mut params) = match get("content-type") {
        Some(v) => {
            let (t, p) = param_list(&v);
            match t.split_once('/') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                    (a.to_string(), b.to_string(), p)
                }
                _ => (
                    "text".into(),
                    "plain".into(),
                    vec![("charset".into(), "us-ascii".into())],
                ),
            }
        }
        None if digest => ("message".into(), "rfc822".into(), Vec::new()),
        None => (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    let disposition = get("content-disposition").map(|v| {
        let (t, p) = param_list(&v);
        (t, p)
    });
    let mut p = Part {
        header: start..hend,
        body: hend..end,
        mtype: String::new(),
        subtype: String::new(),
        params: Vec::new(),
        id: get("content-id"),
        description: get("content-description"),
        encoding: get("content-transfer-encoding"),
        md5: get("content-md5"),
        disposition,
        language: get("content-language"),
        location: get("content-location"),
        lines: 0,
        children: Vec::new(),
        message: None,
    };
    let body = &msg[hend..end];
    let deep = depth >= MAX_DEPTH || *count >= MAX_PARTS;
    if mtype == "multipart" && !deep {
        let boundary = params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone());
        let sub_digest = subtype == "digest";
        let ranges = boundary
            .filter(|b| !b.is_empty() && b.len() <= 200)
            .map(|b| split(msg, hend, end, b.as_bytes()))
            .unwrap_or_default();
        for r in ranges {
            if *count >= MAX_PARTS {
                break;
            }
            p.children
                .push(part(msg, r.start, r.end, depth + 1, sub_digest, count));
        }
        if p.children.is_empty() {
            // No parts: IMAP needs one; an empty text part stands in.
            p.children.push(Part {
                header: end..end,
                body: end..end,
                mtype: "text".into(),
                subtype: "plain".into(),
                params: vec![("charset".into(), "us-ascii".into())],
                id: None,
                description: None,
                encoding: None,
                md5: None,
                disposition: None,
                language: None,
                location: None,
                lines: 0,
                children: Vec::new(),
                message: None,
            });
        }
    } else if mtype == "multipart" {
        mtype = "text".into();
        subtype = "plain".into();
        params = vec![("charset".into(), "us-ascii".into())];
    }
    // message/global (RFC 6532) holds a message as message/rfc822 does;
    // only IMAP4rev2 shows it so in BODYSTRUCTURE (fetch::body).
    if mtype == "message" && (subtype == "rfc822" || subtype == "global") {
        if deep {
            mtype = "application".into();
            subtype = "octet-stream".into();
        } else {
            p.message = Some(Box::new(part(msg, hend, end, depth + 1, false, count)));
        }
    }
    p.lines = memchr::memchr_iter(b'\n', body).count()
        + usize::from(!body.is_empty() && !body.ends_with(b"\n"));
    // A text part without a charset is us-ascii (RFC 2045 §5.2); say so,
    // as Dovecot does.
    if mtype == "text" && !params.iter().any(|(k, _)| k == "charset") {
        params.insert(0, ("charset".into(), "us-ascii".into()));
    }
    p.mtype = mtype;
    p.subtype = subtype;
    p.params = params;
    p
}

/// split - the parts of a multipart body between `hend` and `end`: the
/// text between `--boundary` lines, each without the CRLF that belongs to
/// the next delimiter; the preamble and epilogue are not parts.
fn split(msg: &[u8], hend: usize, end: usize, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let mut out = Vec::new();
    let mut pos = hend;
    let mut open: Option<usize> = None;
    while pos < end {
        // Find the next delimiter at the start of a line.
        let Some(i) = memfind(&msg[pos..end], &delim) else {
            break;
        };
        let at = pos + i;
        let line_start = at == hend || (at >= 2 && &msg[at - 2..at] == b"\r\n");
        let after = at + delim.len();
        if !line_start {
            pos = after;
            continue;
        }
        let closing = msg[after..end].starts_with(b"--");
        // The rest of the delimiter line (transport padding) is skipped.
        let eol = memfind(&msg[after..end], b"\r\n").map_or(end, |j| after + j + 2);
        if let Some(s) = open.take() {
            let e = if at >= s + 2 && at >= 2 {
                at - 2
            } else {
                at.max(s)
            };
            out.push(s..e.max(s));
        }
        if closing {
            return out;
        }
        open = Some(eol.min(end));
        pos = eol;
    }
    // No closing delimiter: the last part runs to the end.
    if let Some(s) = open {
        out.push(s..end);
    }
    out
}

/// to_crlf - the message with every bare LF made CR LF (what IMAP sends
/// and what all offsets refer to); borrowed when it already is.
pub fn to_crlf(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let bare = |i: usize| i == 0 || data[i - 1] != b'\r';
    let Some(first) = memchr::memchr_iter(b'\n', data).find(|&i| bare(i)) else {
        return std::borrow::Cow::Borrowed(data);
    };
    let mut v = Vec::with_capacity(data.len() + data.len() / 30);
    v.extend_from_slice(&data[..first]);
    let mut from = first;
    for i in memchr::memchr_iter(b'\n', &data[first..]).map(|i| i + first) {
        if bare(i) {
            v.extend_from_slice(&data[from..i]);
            v.extend_from_slice(b"\r\n");
            from = i + 1;
        }
    }
    v.extend_from_slice(&data[from..]);
    std::borrow::Cow::Owned(v)
}

/// resolve - the part a section path names (RFC 3501 §6.4.5): numbers
/// go into multiparts and through message/rfc822 parts; part 1 of a
/// non-multipart is its body.
pub fn resolve<'a>(root: &'a Part, path: &[u32]) -> Option<&'a Part> {
    let mut cur = root;
    for (depth, &n) in path.iter().enumerate() {
        let container = if depth > 0 {
            match &cur.message {
                Some(m) => m.as_ref(),
                None if cur.is_multipart() => cur,
                None => {
                    return None;
                }
            }
        } else {
            cur
        };
        cur = if container.is_multipart() {
            container.children.get(n as usize - 1)?
        } else if n == 1 {
            container
        } else {
            return None;
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n\
--YY\r\n\r\nplain\r\n--YY\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--YY--\r\n\r\n--XX--\r\nepilogue\r\n";

    #[test]
    fn nested_offsets() {
        let p = parse(NESTED);
        assert_eq!(
            (p.mtype.as_str(), p.subtype.as_str()),
            ("multipart", "mixed")
        );
        assert_eq!(p.children.len(), 2);
        let t = resolve(&p, &[1]).unwrap();
        assert_eq!(&NESTED[t.body.clone()], b"hello");
        assert_eq!(
            &NESTED[t.header.clone()],
            b"Content-Type: text/plain\r\n\r\n"
        );
        let m = resolve(&p, &[2]).unwrap();
        assert!(m.message.is_some());
        assert!(NESTED[m.body.clone()].starts_with(b"Subject: inner"));
        assert!(NESTED[m.body.clone()].ends_with(b"--YY--\r\n"));
        let plain = resolve(&p, &[2, 1]).unwrap();
        assert_eq!(&NESTED[plain.body.clone()], b"plain");
        let html = resolve(&p, &[2, 2]).unwrap();
        assert_eq!(&NESTED[html.body.clone()], b"<b>x</b>");
        assert!(resolve(&p, &[3]).is_none());
        assert!(resolve(&p, &[1, 1]).is_none());
        assert!(resolve(&p, &[2, 3]).is_none());
    }

    #[test]
    fn single_part_is_part_one() {
        let m = b"Subject: x\r\n\r\nbody\r\n";
        let p = parse(m);
        assert_eq!(resolve(&p, &[1]).unwrap().body, p.body);
        assert_eq!(p.lines, 1);
        assert!(resolve(&p, &[2]).is_none());
    }

    #[test]
    fn broken_input_never_panics() {
        for m in [
            &b""[..],
            b"\r\n",
            b"Content-Type: multipart/mixed\r\n\r\nno boundary",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nunterminated",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--",
            b"Content-Type: message/rfc822\r\n\r\n",
            b"Content-Type: /\r\n\r\nx",
            b"no header end",
        ] {
            let p = parse(m);
            assert!(p.body.end <= m.len());
        }
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        parse(&deep);
        // Random mutations of a real structure.
        let mut seed = 1u64;
        for _ in 0..3000 {
            let mut m = NESTED.to_vec();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (seed >> 33) as usize % m.len();
                m[i] = (seed >> 20) as u8;
            }
            let p = parse(&m);
            let _ = resolve(&p, &[2, 1]);
        }
    }

    #[test]
    fn crlf() {
        assert_eq!(&*to_crlf(b"a\nb\r\n"), b"a\r\nb\r\n");
        assert_eq!(&*to_crlf(b"\n\n"), b"\r\n\r\n");
        assert_eq!(&*to_crlf(b"x\r\ny\nz"), b"x\r\ny\r\nz");
        assert!(matches!(to_crlf(b"a\r\n"), std::borrow::Cow::Borrowed(_)));
    }
}
