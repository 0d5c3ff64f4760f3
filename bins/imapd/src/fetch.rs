//! fetch - FETCH data items rendered from a message: ENVELOPE, BODY and
//! BODYSTRUCTURE (with extension data, message/rfc822 nested), body
//! sections per RFC 3501 §6.4.5 with partial ranges, INTERNALDATE.
//!
//! Distrusts header text: every string goes out as a quoted string only
//! when it is 7-bit without CR, LF, NUL, `"` or `\` trouble, else as a
//! literal, so no header can break the response's syntax.

use crate::command::{Section, SectionText};
use crate::mime::{self, Part};
use posthorn_mail::addrlist::{self, Address, Mailbox};
use std::io::Write;

/// string - an IMAP string: quoted when it is short printable ASCII
/// with nothing to escape, else a literal (as Dovecot chooses, so that
/// `"` and `\` never need a client's unescaping).
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let safe = s.len() < 1024
        && s.iter()
            .all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\');
    if safe {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        let _ = write!(out, "{{{}}}\r\n", s.len());
        out.extend_from_slice(s);
    }
}

/// nstring - a string or NIL.
pub fn nstring(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s.as_bytes()),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// astring_out - a mailbox name or other token: an atom when it is one.
pub fn astring(out: &mut Vec<u8>, s: &str) {
    let atom = !s.is_empty()
        && s.bytes()
            .all(|c| c > 0x20 && c < 0x7f && !b"(){%*\"\\]".contains(&c))
        && !s.eq_ignore_ascii_case("NIL");
    if atom {
        out.extend_from_slice(s.as_bytes());
    } else {
        string(out, s.as_bytes());
    }
}

/// addr_list - an address field as `((name adl mailbox host) ...)`, or
/// NIL when it holds no address (RFC 3501 §7.4.2): a group is a start
/// `(NIL NIL name NIL)`, its members, and an end `(NIL NIL NIL NIL)`.
/// A mailbox without a local part or domain shows `MISSING_MAILBOX` or
/// `MISSING_DOMAIN` there, as Dovecot shows it: NIL would read as a
/// group marker.
fn addr_list(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        match a {
            Address::Mailbox(m) => mailbox(out, m),
            Address::Group(name, members) => {
                out.extend_from_slice(b"(NIL NIL ");
                string(out, name.as_bytes());
                out.extend_from_slice(b" NIL)");
                for m in members {
                    mailbox(out, m);
                }
                out.extend_from_slice(b"(NIL NIL NIL NIL)");
            }
        }
    }
    out.push(b')');
}

/// mailbox - one `(name adl mailbox host)`.
fn mailbox(out: &mut Vec<u8>, m: &Mailbox) {
    out.push(b'(');
    nstring(out, m.name.as_deref().filter(|n| !n.is_empty()));
    out.push(b' ');
    nstring(out, m.route.as_deref());
    out.push(b' ');
    nstring(out, Some(m.local.as_deref().unwrap_or("MISSING_MAILBOX")));
    out.push(b' ');
    nstring(out, Some(m.domain.as_deref().unwrap_or("MISSING_DOMAIN")));
    out.push(b')');
}

/// envelope - the ENVELOPE of the message whose header is `header`.
pub fn envelope(out: &mut Vec<u8>, header: &[u8]) {
    let f = mime::fields(header);
    let get = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let from = get("from");
    out.push(b'(');
    nstring(out, get("date").as_deref());
    out.push(b' ');
    nstring(out, get("subject").as_deref());
    let from = addrlist::parse(from.as_deref().unwrap_or(""));
    for key in ["from", "sender", "reply-to", "to", "cc", "bcc"] {
        out.push(b' ');
        let list = addrlist::parse(get(key).as_deref().unwrap_or(""));
        // Sender and Reply-To absent, or present with no address in
        // them, are From (RFC 3501 §7.4.2).
        if list.is_empty() && (key == "sender" || key == "reply-to") {
            addr_list(out, &from);
        } else {
            addr_list(out, &list);
        }
    }
    out.push(b' ');
    nstring(out, get("in-reply-to").as_deref());
    out.push(b' ');
    nstring(out, get("message-id").as_deref());
    out.push(b')');
}

/// params - `("name" "value" ...)` or NIL; values that decoded to 8-bit
/// go out as RFC 2047 words.
fn params(out: &mut Vec<u8>, p: &[(String, String)]) {
    if p.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        if v.is_ascii() {
            string(out, v.as_bytes());
        } else {
            use base64::Engine;
            let w = format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
            );
            string(out, w.as_bytes());
        }
    }
    out.push(b')');
}

/// body - BODY (`ext` false) or BODYSTRUCTURE (`ext` true) of a part.
pub fn body(out: &mut Vec<u8>, msg: &[u8], p: &Part, ext: bool, rev2: bool) {
    out.push(b'(');
    if p.is_multipart() {
        for c in &p.children {
            body(out, msg, c, ext, rev2);
        }
        out.push(b' ');
        string(out, p.subtype.to_ascii_uppercase().as_bytes());
        if ext {
            out.push(b' ');
            params(out, &p.params);
            extension(out, p);
        }
        out.push(b')');
        return;
    }
    string(out, p.mtype.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    string(out, p.subtype.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstring(out, p.id.as_deref());
    out.push(b' ');
    nstring(out, p.description.as_deref());
    out.push(b' ');
    let enc = p.encoding.as_deref().unwrap_or("7BIT").to_ascii_uppercase();
    string(out, enc.as_bytes());
    let _ = write!(out, " {}", p.body.len());
    // A message/global part is body-type-msg only in IMAP4rev2's
    // grammar (RFC 9051 §9, media-message); to an IMAP4rev1 client it is
    // a basic body (RFC 3501 knows message/rfc822 alone).
    let nested = p.message.as_ref().filter(|_| rev2 || p.subtype != "global");
    if let Some(m) = nested {
        out.push(b' ');
        envelope(out, &msg[m.header.clone()]);
        out.push(b' ');
        body(out, msg, m, ext, rev2);
        let _ = write!(out, " {}", p.lines);
    } else if p.mtype == "text" {
        let _ = write!(out, " {}", p.lines);
    }
    if ext {
        out.push(b' ');
        nstring(out, p.md5.as_deref());
        extension(out, p);
    }
    out.push(b')');
}

/// extension - disposition, language, location (shared by both kinds).
fn extension(out: &mut Vec<u8>, p: &Part) {
    out.push(b' ');
    match &p.disposition {
        Some((t, ps)) => {
            out.push(b'(');
            string(out, t.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            params(out, ps);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match &p.language {
        Some(l) => {
            let langs: Vec<&str> = l
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            out.push(b'(');
            for (i, x) in langs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, x.as_bytes());
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, p.location.as_deref());
}

/// header_fields - the fields of `header` named (or, with `not`, not
/// named) in `names`, raw with their folding, and the blank line.
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    let mut i = 0;
    while i < header.len() {
        let end = mime::memfind(&header[i..], b"\r\n").map_or(header.len(), |j| i + j + 2);
        let line = &header[i..end];
        if line == b"\r\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.iter().position(|&c| c == b':').map(|c| {
                String::from_utf8_lossy(&line[..c])
                    .trim()
                    .to_ascii_uppercase()
            });
            keep = match name {
                Some(n) => names.contains(&n) != not,
                None => false,
            };
        }
        if keep {
            out.extend_from_slice(line);
        }
        i = end;
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// section_data - the octets BODY[section] names; empty when the part
/// does not exist (RFC 3501 allows that rather than an error).
pub fn section_data(msg: &[u8], root: &Part, s: &Section) -> Vec<u8> {
    let Some(part) = mime::resolve(root, &s.path) else {
        return Vec::new();
    };
    // HEADER, TEXT and HEADER.FIELDS of a part refer to its message.
    let message = if s.path.is_empty() {
        Some(root)
    } else {
        part.message.as_deref()
    };
    match &s.text {
        None if s.path.is_empty() => msg.to_vec(),
        None => msg[part.body.clone()].to_vec(),
        Some(SectionText::Mime) => msg[part.header.clone()].to_vec(),
        Some(SectionText::Header) => {
            message.map_or_else(Vec::new, |m| msg[m.header.clone()].to_vec())
        }
        Some(SectionText::Text) => message.map_or_else(Vec::new, |m| msg[m.body.clone()].to_vec()),
        Some(SectionText::Fields(n)) => message.map_or_else(Vec::new, |m| {
            header_fields(&msg[m.header.clone()], n, false)
        }),
        Some(SectionText::FieldsNot(n)) => {
            message.map_or_else(Vec::new, |m| header_fields(&msg[m.header.clone()], n, true))
        }
    }
}

/// section_name - how the response names a section: `BODY[1.HEADER.FIELDS (A B)]`.
pub fn section_name(s: &Section) -> String {
    format!("BODY[{}]", section_spec(s))
}

/// section_spec - a section as written between the brackets.
pub fn section_spec(s: &Section) -> String {
    let mut n = String::new();
    let path: Vec<String> = s.path.iter().map(u32::to_string).collect();
    n.push_str(&path.join("."));
    let t = match &s.text {
        None => String::new(),
        Some(SectionText::Header) => "HEADER".into(),
        Some(SectionText::Text) => "TEXT".into(),
        Some(SectionText::Mime) => "MIME".into(),
        Some(SectionText::Fields(f)) => format!("HEADER.FIELDS ({})", quote_names(f)),
        Some(SectionText::FieldsNot(f)) => format!("HEADER.FIELDS.NOT ({})", quote_names(f)),
    };
    if !path.is_empty() && !t.is_empty() {
        n.push('.');
    }
    n.push_str(&t);
    n
}

/// quote_names - header names as the response echoes them.
fn quote_names(f: &[String]) -> String {
    f.iter()
        .map(|x| {
            let mut o = Vec::new();
            astring(&mut o, x);
            String::from_utf8_lossy(&o).into_owned()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// internal_date - `"dd-Mon-yyyy hh:mm:ss +hhmm"` in the server's local
/// zone, as Dovecot shows it (a Maildir file's time has no zone of its
/// own; SEARCH BEFORE, ON and SINCE take days in the same zone).
pub fn internal_date(secs: i64) -> String {
    internal_date_at(secs, posthorn_sys::fsio::local_offset(secs))
}

/// internal_date_at - internal_date with the zone's offset given (seconds
/// east of UTC).
pub fn internal_date_at(secs: i64, offset: i64) -> String {
    let local = secs + offset;
    let days = local.div_euclid(86400);
    let rem = local.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let sign = if offset < 0 { '-' } else { '+' };
    let off = offset.abs() / 60;
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} {sign}{:02}{:02}\"",
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        off / 60,
        off % 60
    )
}

pub use posthorn_mail::date::civil_from_days;

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn strings() {
        assert_eq!(s(|o| string(o, b"a\"b")), "{3}\r\na\"b");
        assert_eq!(s(|o| string(o, b"a\\b")), "{3}\r\na\\b");
        assert_eq!(s(|o| string(o, "ä".as_bytes())), "{2}\r\nä");
        assert_eq!(s(|o| string(o, b"a\r\nb")), "{4}\r\na\r\nb");
        assert_eq!(s(|o| astring(o, "Sent")), "Sent");
        assert_eq!(s(|o| astring(o, "a b")), "\"a b\"");
        assert_eq!(s(|o| astring(o, "NIL")), "\"NIL\"");
    }

    #[test]
    fn rfc3501_envelope_example() {
        let h = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
From: Terry Gray <gray@cac.washington.edu>\r\n\
Subject: IMAP4rev1 WG mtg summary and minutes\r\n\
To: imap@cac.washington.edu\r\n\
cc: minutes@CNRI.Reston.VA.US, \"John Klensin\" <KLENSIN@MIT.EDU>\r\n\
Message-Id: <B27397-0100000@cac.washington.edu>\r\n\r\n";
        assert_eq!(
            s(|o| envelope(o, h)),
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) \
((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL \
\"<B27397-0100000@cac.washington.edu>\")"
        );
    }

    #[test]
    fn envelope_addresses_as_rfc3501_7_4_2_and_dovecot_show_them() {
        let env = |h: &str| s(|o| envelope(o, h.as_bytes()));
        // A name in a comment after a bare address; empty Sender and
        // Reply-To fall back to From.
        let e = env("From: user@domain (Real Name)\r\nSender: \r\nReply-To: (nobody)\r\n\r\n");
        assert_eq!(
            e,
            "(NIL NIL ((\"Real Name\" NIL \"user\" \"domain\")) ((\"Real Name\" NIL \"user\" \"domain\")) \
((\"Real Name\" NIL \"user\" \"domain\")) NIL NIL NIL NIL NIL)"
        );
        // Groups, an empty one, a source route, comments around the @.
        let e = env(
            "From: <@route:user@domain>\r\nTo: group: g1@d1.org, g2@d2.org;, empty:;\r\nCc: <u (c)@ (c) d.org>\r\n\r\n",
        );
        assert!(e.contains("((NIL \"@route\" \"user\" \"domain\"))"), "{e}");
        assert!(
            e.contains(
                "((NIL NIL \"group\" NIL)(NIL NIL \"g1\" \"d1.org\")(NIL NIL \"g2\" \"d2.org\")(NIL NIL NIL NIL)(NIL NIL \"empty\" NIL)(NIL NIL NIL NIL))"
            ),
            "{e}"
        );
        assert!(e.contains("((NIL NIL \"u\" \"d.org\"))"), "{e}");
        // Quoted names and local parts, encoded words kept, missing parts.
        let e = env("From: \"Q, R\" <\"a b\"@x>, =?utf-8?q?J=C3=BCrgen?= <j@x>, lonely\r\n\r\n");
        assert!(
            e.contains(
                "((\"Q, R\" NIL \"a b\" \"x\")(\"=?utf-8?q?J=C3=BCrgen?=\" NIL \"j\" \"x\")(NIL NIL \"lonely\" \"MISSING_DOMAIN\"))"
            ),
            "{e}"
        );
    }

    #[test]
    fn bodystructure_of_nested() {
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nin\r\n--b--\r\n";
        let p = mime::parse(m);
        assert_eq!(
            s(|o| body(o, m, &p, false, false)),
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 2 1)(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 16 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 2 1) 3) \"MIXED\")"
        );
        assert!(
            s(|o| body(o, m, &p, true, false))
                .ends_with(" \"MIXED\" (\"BOUNDARY\" \"b\") NIL NIL NIL)")
        );
    }

    #[test]
    fn sections() {
        let m = b"From: a\r\nTo: b\r\n  c\r\nSubject: x\r\n\r\nbody\r\n";
        let p = mime::parse(m);
        let sec = |path: Vec<u32>, text| Section { path, text };
        assert_eq!(
            section_data(
                m,
                &p,
                &sec(vec![], Some(SectionText::Fields(vec!["TO".into()])))
            ),
            b"To: b\r\n  c\r\n\r\n"
        );
        assert_eq!(
            section_data(
                m,
                &p,
                &sec(vec![], Some(SectionText::FieldsNot(vec!["TO".into()])))
            ),
            b"From: a\r\nSubject: x\r\n\r\n"
        );
        assert_eq!(section_data(m, &p, &sec(vec![1], None)), b"body\r\n");
        assert_eq!(section_data(m, &p, &sec(vec![], None)), m);
        assert_eq!(
            section_data(m, &p, &sec(vec![], Some(SectionText::Text))),
            b"body\r\n"
        );
        assert_eq!(section_data(m, &p, &sec(vec![2], None)), b"");
        assert_eq!(
            section_name(&sec(
                vec![1, 2],
                Some(SectionText::Fields(vec!["FROM".into(), "A B".into()]))
            )),
            "BODY[1.2.HEADER.FIELDS (FROM \"A B\")]"
        );
        assert_eq!(section_name(&sec(vec![], None)), "BODY[]");
    }

    #[test]
    fn dates() {
        assert_eq!(
            internal_date_at(760686745, 0),
            "\"08-Feb-1994 05:52:25 +0000\""
        );
        assert_eq!(
            internal_date_at(760686745, -8 * 3600),
            "\"07-Feb-1994 21:52:25 -0800\""
        );
        assert_eq!(
            internal_date_at(760686745, 5 * 3600 + 1800),
            "\"08-Feb-1994 11:22:25 +0530\""
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(crate::command::days_from_civil(2024, 2, 29), 19782);
        assert_eq!(civil_from_days(19782), (2024, 2, 29));
    }
}
