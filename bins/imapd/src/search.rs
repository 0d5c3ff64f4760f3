//! search - SEARCH keys (RFC 3501 §6.4.4) against one message: flags,
//! sizes and dates from the folder, headers after RFC 2047 decoding and
//! body text after transfer and charset decoding (mailparse), compared
//! case-insensitively as Unicode lower case.
//!
//! Distrusts the message: a part that does not decode is searched as it
//! is stored, and only text parts' bodies are decoded at all.

use crate::command::Key;
use crate::flags::{Keywords, SEEN};
use crate::folder::Msg;
use crate::mime::{self, Part};
use posthorn_mail::addrlist;
use posthorn_mail::date::{self, Written};

/// What a key may ask about a message; the text is decoded only when a
/// key needs it.
#[derive(Debug)]
pub struct Subject<'a> {
    pub seq: u32,
    pub max_seq: u32,
    pub max_uid: u32,
    pub msg: &'a Msg,
    pub keywords: &'a Keywords,
    pub size: u64,
    /// Internal date, seconds since the epoch.
    pub internal: i64,
    /// When the search began, for OLDER and YOUNGER.
    pub now: i64,
    pub text: Option<&'a Text>,
}

/// The decoded text of a message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Text {
    /// Lowercase field name, decoded lowercase value.
    pub headers: Vec<(String, String)>,
    /// Decoded lowercase text of the text parts.
    pub body: String,
    /// The Date: header as written; None when missing or unparsable.
    pub sent: Option<Written>,
    /// The From, To, Cc and Bcc fields as stored (lowercase name), every
    /// one in order: they are parsed as addresses before anything in
    /// them is decoded (a decoded comma must split nothing).
    pub addresses: Vec<(String, Vec<u8>)>,
}

/// needs_text - whether `k` looks at headers or body.
pub fn needs_text(k: &Key) -> bool {
    match k {
        Key::And(v) => v.iter().any(needs_text),
        Key::Or(a, b) => needs_text(a) || needs_text(b),
        Key::Not(a) => needs_text(a),
        Key::Header(..)
        | Key::Address(..)
        | Key::Body(_)
        | Key::Text(_)
        | Key::SentBefore(_)
        | Key::SentOn(_)
        | Key::SentSince(_) => true,
        _ => false,
    }
}

/// needs_body - whether `k` looks at the body (BODY, TEXT); the other
/// text keys read only the header.
pub fn needs_body(k: &Key) -> bool {
    match k {
        Key::And(v) => v.iter().any(needs_body),
        Key::Or(a, b) => needs_body(a) || needs_body(b),
        Key::Not(a) => needs_body(a),
        Key::Body(_) | Key::Text(_) => true,
        _ => false,
    }
}

/// needs_internal - whether `k` looks at the internal date (BEFORE, ON,
/// SINCE, OLDER, YOUNGER), which costs a stat of the message's file.
pub fn needs_internal(k: &Key) -> bool {
    match k {
        Key::And(v) => v.iter().any(needs_internal),
        Key::Or(a, b) => needs_internal(a) || needs_internal(b),
        Key::Not(a) => needs_internal(a),
        Key::Before(_) | Key::On(_) | Key::Since(_) | Key::Older(_) | Key::Younger(_) => true,
        _ => false,
    }
}

/// The header fields SORT (RFC 5256, RFC 5957), THREAD and the SENT*
/// keys look at: all the folder's cache keeps of a message's decoded
/// text. (The address fields the address keys read are kept as stored,
/// `Text::addresses`.)
pub const KEPT: [&str; 8] = [
    "date",
    "subject",
    "from",
    "to",
    "cc",
    "message-id",
    "references",
    "in-reply-to",
];

/// The address fields kept as stored, for the address keys and SORT.
pub const ADDRESSED: [&str; 4] = ["from", "to", "cc", "bcc"];

/// needs_file - whether `k` needs more of a message than the kept
/// header fields: the body (BODY, TEXT), or a HEADER key on a field not
/// among KEPT.
pub fn needs_file(k: &Key) -> bool {
    match k {
        Key::And(v) => v.iter().any(needs_file),
        Key::Or(a, b) => needs_file(a) || needs_file(b),
        Key::Not(a) => needs_file(a),
        Key::Body(_) | Key::Text(_) => true,
        Key::Header(name, _) => !KEPT.contains(&name.to_lowercase().as_str()),
        _ => false,
    }
}

/// kept - a message's text cut down to the KEPT fields (all of their
/// occurrences, in order), the Date and the raw From and To, without
/// body: enough for SORT, THREAD and every key needs_file says no to.
pub fn kept(t: &Text) -> Text {
    Text {
        headers: t
            .headers
            .iter()
            .filter(|(k, _)| KEPT.contains(&k.as_str()))
            .cloned()
            .collect(),
        body: String::new(),
        sent: t.sent,
        addresses: t.addresses.clone(),
    }
}

/// text - decode a CRLF message for searching.
pub fn text(msg: &[u8], root: &Part) -> Text {
    let mut t = Text::default();
    if let Ok((hs, _)) = mailparse::parse_headers(&msg[root.header.clone()]) {
        for h in hs {
            let key = h.get_key().to_lowercase();
            if ADDRESSED.contains(&key.as_str()) {
                t.addresses.push((key.clone(), h.get_value_raw().to_vec()));
            }
            t.headers.push((key, h.get_value().to_lowercase()));
        }
    }
    t.sent = t
        .headers
        .iter()
        .find(|(k, _)| k == "date")
        .and_then(|(_, v)| date::parse_rfc5322(v));
    let mut body = String::new();
    collect(msg, root, &mut body, 0);
    t.body = body.to_lowercase();
    t
}

/// collect - append the decoded text of `p`'s text parts.
fn collect(msg: &[u8], p: &Part, out: &mut String, depth: usize) {
    if depth > 32 {
        return;
    }
    if let Some(m) = &p.message {
        // An attached message's header is text too.
        out.push_str(&String::from_utf8_lossy(&msg[m.header.clone()]));
        collect(msg, m, out, depth + 1);
        return;
    }
    if p.is_multipart() {
        for c in &p.children {
            collect(msg, c, out, depth + 1);
        }
        return;
    }
    if p.mtype != "text" {
        return;
    }
    let whole = &msg[p.header.start..p.body.end];
    let decoded = mailparse::parse_mail(whole)
        .ok()
        .and_then(|m| m.get_body().ok());
    match decoded {
        Some(s) => out.push_str(&s),
        None => out.push_str(&String::from_utf8_lossy(&msg[p.body.clone()])),
    }
    out.push('\n');
}

/// days - the UTC day of a time, for the internal date keys.
fn days(secs: i64) -> i64 {
    secs.div_euclid(86400)
}

/// sent_day - the calendar day the Date: field names, for SENTBEFORE,
/// SENTON and SENTSINCE, which disregard time and timezone (RFC 3501
/// §6.4.4): `Sun, 25 Mar 2007 00:30 +0200` is 25 March, wherever the
/// server is. A message without a Date: field, or with one that does not
/// parse, was sent on 1 January 1970, as Dovecot counts it: SENTBEFORE
/// any later day finds it, SENTSINCE does not.
fn sent_day(t: Option<&Text>) -> i64 {
    t.and_then(|t| t.sent).map_or(0, |w| w.civil_day())
}

/// address_match - whether a From, To, Cc or Bcc field holds `v`: each
/// field is parsed as an address list and written back in one form
/// (addrlist::normalized: names decoded, comments, quotes and obsolete
/// syntax gone), and `v` is looked for in that, as Dovecot looks. An
/// empty `v` asks only whether the field is there.
fn address_match(t: Option<&Text>, field: &str, v: &str) -> bool {
    let Some(t) = t else { return false };
    let v = v.to_lowercase();
    t.addresses.iter().any(|(k, raw)| {
        *k == field
            && (v.is_empty() || {
                let list = addrlist::parse(&String::from_utf8_lossy(raw));
                addrlist::normalized(&list).to_lowercase().contains(&v)
            })
    })
}

/// matches - whether the message satisfies `k`.
pub fn matches(k: &Key, s: &Subject) -> bool {
    let f = s.msg.flags;
    match k {
        Key::All => true,
        Key::And(v) => v.iter().all(|k| matches(k, s)),
        Key::Or(a, b) => matches(a, s) || matches(b, s),
        Key::Not(a) => !matches(a, s),
        Key::Flag(bit, on) => (f.system & bit != 0) == *on,
        Key::Keyword(name, on) => {
            let set = s
                .keywords
                .index(name)
                .is_some_and(|i| f.keywords & (1 << i) != 0);
            set == *on
        }
        Key::New => s.msg.recent && f.system & SEEN == 0,
        Key::Old => !s.msg.recent,
        Key::Recent => s.msg.recent,
        Key::Larger(n) => s.size > *n,
        Key::Smaller(n) => s.size < *n,
        Key::Before(d) => days(s.internal) < *d,
        Key::On(d) => days(s.internal) == *d,
        Key::Since(d) => days(s.internal) >= *d,
        Key::Older(n) => s.internal < s.now - i64::from(*n),
        Key::Younger(n) => s.internal >= s.now - i64::from(*n),
        Key::SentBefore(d) => sent_day(s.text) < *d,
        Key::SentOn(d) => sent_day(s.text) == *d,
        Key::SentSince(d) => sent_day(s.text) >= *d,
        Key::Address(field, v) => address_match(s.text, field, v),
        Key::Uid(set) => set.contains(s.msg.uid, s.max_uid),
        Key::Seq(set) => set.contains(s.seq, s.max_seq),
        Key::ModSeq(n) => s.msg.modseq >= *n,
        Key::Header(name, v) => {
            let v = v.to_lowercase();
            let name = name.to_lowercase();
            s.text
                .is_some_and(|t| t.headers.iter().any(|(k, x)| *k == name && x.contains(&v)))
        }
        Key::Body(v) => s.text.is_some_and(|t| t.body.contains(&v.to_lowercase())),
        Key::Text(v) => {
            let v = v.to_lowercase();
            s.text.is_some_and(|t| {
                t.body.contains(&v)
                    || t.headers
                        .iter()
                        .any(|(k, x)| k.contains(&v) || x.contains(&v))
            })
        }
    }
}

/// has_modseq - whether a MODSEQ key is among `k`'s (the SEARCH answer
/// then gives the highest mod-sequence found, RFC 7162 §3.1.5).
pub fn has_modseq(k: &Key) -> bool {
    match k {
        Key::ModSeq(_) => true,
        Key::And(v) => v.iter().any(has_modseq),
        Key::Or(a, b) => has_modseq(a) || has_modseq(b),
        Key::Not(a) => has_modseq(a),
        _ => false,
    }
}

/// parse_for_search - a stored message, CRLF'd, parsed and decoded.
pub fn decode_stored(stored: &[u8]) -> Text {
    let m = mime::to_crlf(stored);
    let p = mime::parse(&m);
    text(&m, &p)
}

/// decode_header - only the header of a stored message, decoded as
/// decode_stored does, with an empty body: what HEADER and SENT* keys,
/// SORT and THREAD read. Parsing and lowercasing every body (a 5 MB
/// one, attachments) for them cost time and, as SORT and THREAD keep
/// each message's text until they answer, memory.
pub fn decode_header(stored: &[u8]) -> Text {
    let m = mime::to_crlf(head(stored));
    let p = mime::parse(&m);
    let mut t = text(&m, &p);
    t.body.clear();
    t
}

/// head - a stored message up to and including the blank line that ends
/// its header (all of it when there is none).
fn head(stored: &[u8]) -> &[u8] {
    let mut at = 0;
    while at < stored.len() {
        let end = stored[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(stored.len(), |i| at + i + 1);
        let line = &stored[at..end];
        if line == b"\n" || line == b"\r\n" {
            return &stored[..end];
        }
        at = end;
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{STAR, SeqSet};
    use crate::flags::Flags;

    #[test]
    fn keys() {
        let stored = b"From: =?utf-8?q?J=C3=BCrgen?= <j@x>\nSubject: Hello World\nDate: Tue, 1 Feb 1994 10:00:00 +0000\nContent-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nK=E4se und Brot\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\naGlkZGVu\n--b--\n";
        let t = decode_stored(stored);
        let msg = Msg {
            uid: 7,
            name: "x:2,S".into(),
            in_new: false,
            flags: Flags::from_info("Sa"),
            recent: true,
            modseq: 0,
        };
        let kw = Keywords::parse("0 $Work\n");
        let s = Subject {
            seq: 2,
            max_seq: 3,
            max_uid: 9,
            msg: &msg,
            keywords: &kw,
            size: 500,
            internal: 86400 * 10 + 5,
            now: 86400 * 10 + 65,
            text: Some(&t),
        };
        let yes = |k: Key| assert!(matches(&k, &s), "{k:?}");
        let no = |k: Key| assert!(!matches(&k, &s), "{k:?}");
        yes(Key::Header("FROM".into(), "jürgen".into()));
        yes(Key::Header("SUBJECT".into(), "WORLD".into()));
        yes(Key::Body("KÄSE".into()));
        no(Key::Body("hidden".into()));
        yes(Key::Text("hello".into()));
        yes(Key::Keyword("$work".into(), true));
        no(Key::New);
        yes(Key::Recent);
        yes(Key::On(10));
        yes(Key::SentOn(crate::command::days_from_civil(1994, 2, 1)));
        yes(Key::Uid(SeqSet(vec![(5, STAR)])));
        no(Key::Uid(SeqSet(vec![(9, STAR)])));
        yes(Key::Seq(SeqSet(vec![(2, 2)])));
        no(Key::Seq(SeqSet(vec![(STAR, STAR)])));
        yes(Key::Older(59));
        no(Key::Older(60));
        yes(Key::Younger(60));
        no(Key::Younger(59));
        yes(Key::Larger(499));
        no(Key::Smaller(500));
        yes(Key::Or(
            Box::new(Key::Flag(crate::flags::DELETED, true)),
            Box::new(Key::All),
        ));
        assert!(needs_text(&Key::Not(Box::new(Key::Body("x".into())))));
        assert!(!needs_text(&Key::Flag(SEEN, true)));
        assert!(needs_body(&Key::Not(Box::new(Key::Text("x".into())))));
        assert!(!needs_body(&Key::Header("subject".into(), "x".into())));
        assert!(!needs_body(&Key::SentOn(1)));
        assert!(needs_file(&Key::Header("X-Spam".into(), String::new())));
        assert!(needs_file(&Key::Or(
            Box::new(Key::All),
            Box::new(Key::Body("x".into()))
        )));
        assert!(!needs_file(&Key::Header("Message-ID".into(), "x".into())));
        assert!(!needs_file(&Key::Not(Box::new(Key::SentSince(1)))));
        assert!(needs_internal(&Key::Or(
            Box::new(Key::All),
            Box::new(Key::Not(Box::new(Key::Younger(5))))
        )));
        assert!(!needs_internal(&Key::SentBefore(1)));
        // Keys needs_file says no to match the kept text as the whole.
        let k = kept(&decode_stored(stored));
        let s = Subject {
            text: Some(&k),
            ..s
        };
        assert!(matches(&Key::Header("FROM".into(), "jürgen".into()), &s));
        let day = crate::command::days_from_civil(1994, 2, 1);
        assert!(matches(&Key::SentOn(day), &s));
        assert!(!matches(
            &Key::Header("content-type".into(), String::new()),
            &s
        ));
        assert!(k.addresses.iter().any(|(n, _)| n == "from"));
    }

    #[test]
    fn a_header_alone_decodes_as_in_the_whole_message() {
        let stored = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\nDate: Tue, 1 Feb 1994 10:00:00 +0000\nContent-Type: text/plain\n\nSubject: not a header\nbody text\n";
        let whole = decode_stored(stored);
        let h = decode_header(stored);
        assert_eq!(h.headers, whole.headers);
        assert_eq!(h.sent, whole.sent);
        assert!(whole.body.contains("body text") && h.body.is_empty());
        assert_eq!(h.headers.len(), 3);
        // CRLF, no blank line at all, no header at all.
        let crlf = decode_header(b"Subject: a\r\nX: b\r\n\r\nSubject: c\r\n");
        assert_eq!(
            crlf.headers,
            vec![("subject".into(), "a".into()), ("x".into(), "b".into())]
        );
        assert_eq!(decode_header(b"Subject: only").headers.len(), 1);
        assert!(decode_header(b"\nSubject: body").headers.is_empty());
    }
}
