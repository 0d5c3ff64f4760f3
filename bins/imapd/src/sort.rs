//! sort - SORT and UID SORT (RFC 5256), as more of the session: the
//! messages a search matches, ordered by arrival, sent date, size, the
//! first From/To/Cc address's mailbox or the base subject (§2.1), each
//! perhaps reversed, ties broken by sequence number (§3). Also THREAD
//! ORDEREDSUBJECT, which is a sort by base subject and sent date.
//!
//! Distrusts the headers: a missing or unparsable Date sorts by the
//! internal date, a missing or unparsable address as the empty string,
//! as the RFC says. Strings compare as i;ascii-casemap.

use crate::command::{Key, Ret, SortKey};
use crate::context;
use crate::messages::Hit;
use crate::session::{Action, Session};
use posthorn_mail::addrlist::{self, Address, Mailbox};
use std::cmp::Ordering;
use std::io::Write;

/// One criterion's value for one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Val {
    Num(i64),
    Text(String),
}

impl Session {
    /// sort - SORT and UID SORT, answered with `* SORT`, or with ESEARCH
    /// when RETURN options are given (RFC 5267 ESORT).
    pub(crate) fn sort(
        &mut self,
        tag: &str,
        uid: bool,
        ret: Option<Ret>,
        by: &[(SortKey, bool)],
        key: &Key,
    ) -> Vec<Action> {
        if self.tag_in_use(tag, ret) {
            return self.bad(tag, "tag reuse: an update context has this tag");
        }
        let mut out = Vec::new();
        if uid {
            self.updates(&mut out);
        }
        let rows = self.sorted(key, by);
        let ids: Vec<u32> = rows
            .iter()
            .map(|r| if uid { r.uid } else { r.seq })
            .collect();
        let idx: Vec<usize> = rows.iter().map(|r| r.seq as usize - 1).collect();
        let modseq = self.told_modseq(key, ret, &idx);
        match ret {
            None => {
                out.extend_from_slice(b"* SORT");
                for id in &ids {
                    let _ = write!(out, " {id}");
                }
                if let Some(m) = modseq {
                    let _ = write!(out, " (MODSEQ {m})");
                }
                out.extend_from_slice(b"\r\n");
            }
            Some(r) => {
                if r.save
                    && let Some(s) = self.sel.as_mut()
                {
                    // As SEARCH saves (RFC 5182 §2.4): with MIN or MAX
                    // alone, only those, here first and last in order.
                    let mut u: Vec<u32> = if (r.min || r.max) && !(r.all || r.count) {
                        let ends = [r.min.then(|| rows.first()), r.max.then(|| rows.last())];
                        ends.into_iter()
                            .flatten()
                            .flatten()
                            .map(|x| x.uid)
                            .collect()
                    } else {
                        rows.iter().map(|x| x.uid).collect()
                    };
                    u.sort_unstable();
                    u.dedup();
                    s.saved = u;
                }
                let refused = self.update_refused(&mut out, tag, ret);
                // As for SEARCH, SAVE alone answers with no ESEARCH.
                let silent = r.save
                    && !(r.min || r.max || r.all || r.count || r.update)
                    && r.partial.is_none();
                if !silent {
                    context::esearch(&mut out, tag, uid, r, &ids);
                    if let Some(m) = modseq {
                        let _ = write!(out, " MODSEQ {m}");
                    }
                    out.extend_from_slice(b"\r\n");
                }
                if r.update && !refused {
                    let rows = rows.into_iter().map(|x| (x.vals, x.uid)).collect();
                    self.keep_context(tag, uid, Some(by.to_vec()), key, rows);
                }
            }
        }
        let mut v = vec![Action::Reply(out)];
        v.extend(self.done(tag, false, "OK SORT completed"));
        v
    }

    /// sorted - the messages `key` matches, in the order `by` gives,
    /// ties in mailbox order (§3).
    pub(crate) fn sorted(&mut self, key: &Key, by: &[(SortKey, bool)]) -> Vec<Row> {
        let texts = by
            .iter()
            .any(|(k, _)| !matches!(k, SortKey::Arrival | SortKey::Size));
        let mut rows: Vec<Row> = self
            .matching(key, texts, by.iter().any(|(k, _)| *k == SortKey::Arrival))
            .into_iter()
            .map(|h| Row {
                vals: values(by, &h),
                seq: h.index as u32 + 1,
                uid: h.uid,
            })
            .collect();
        rows.sort_by(|a, b| order(by, (&a.vals, a.uid), (&b.vals, b.uid)));
        rows
    }
}

/// One sorted message: its criteria's values, number and UID.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) vals: Vec<Val>,
    pub(crate) seq: u32,
    pub(crate) uid: u32,
}

/// values - what message `h` sorts by under criteria `by`.
pub(crate) fn values(by: &[(SortKey, bool)], h: &Hit) -> Vec<Val> {
    by.iter().map(|(k, _)| value(*k, h)).collect()
}

/// order - two messages' order under `by`, given their values and UIDs;
/// UIDs ascend as sequence numbers do, so they break ties as §3 says.
pub(crate) fn order(by: &[(SortKey, bool)], a: (&[Val], u32), b: (&[Val], u32)) -> Ordering {
    for (i, (_, reverse)) in by.iter().enumerate() {
        let o = a.0.get(i).cmp(&b.0.get(i));
        let o = if *reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.1.cmp(&b.1)
}

impl Session {
    /// thread - THREAD=ORDEREDSUBJECT (RFC 5256 §3): messages grouped by
    /// base subject, each group in sent date order under its first
    /// message, the groups in the order of their first messages' dates.
    pub(crate) fn thread(&mut self, tag: &str, uid: bool, key: &Key) -> Vec<Action> {
        let mut out = Vec::new();
        if uid {
            self.updates(&mut out);
        }
        let mut rows: Vec<(String, i64, u32, u32)> = self
            .matching(key, true, false)
            .into_iter()
            .map(|h| {
                let subject = base_subject(header(&h, "subject"));
                (subject, sent(&h), h.index as u32 + 1, h.uid)
            })
            .collect();
        rows.sort();
        let mut threads: Vec<Vec<(i64, u32, u32)>> = Vec::new();
        let mut last: Option<&str> = None;
        for (subject, date, seq, u) in &rows {
            match threads.last_mut() {
                Some(t) if last == Some(subject.as_str()) => t.push((*date, *seq, *u)),
                _ => threads.push(vec![(*date, *seq, *u)]),
            }
            last = Some(subject);
        }
        threads.sort_by_key(|t| (t[0].0, t[0].1));
        out.extend_from_slice(b"* THREAD ");
        let id = |m: &(i64, u32, u32)| if uid { m.2 } else { m.1 };
        for t in &threads {
            // One child follows its parent; several are nested lists.
            let _ = write!(out, "({}", id(&t[0]));
            match t.len() {
                1 => {}
                2 => {
                    let _ = write!(out, " {}", id(&t[1]));
                }
                _ => {
                    out.push(b' ');
                    for m in &t[1..] {
                        let _ = write!(out, "({})", id(m));
                    }
                }
            }
            out.push(b')');
        }
        // An empty result is `* THREAD` with nothing after it.
        if threads.is_empty() {
            out.pop();
        }
        out.extend_from_slice(b"\r\n");
        let mut v = vec![Action::Reply(out)];
        v.extend(self.done(tag, false, "OK THREAD completed"));
        v
    }
}

/// header - a decoded header field's value, empty when absent.
pub(crate) fn header<'a>(h: &'a Hit, name: &str) -> &'a str {
    h.text
        .as_ref()
        .and_then(|t| t.headers.iter().find(|(n, _)| n == name))
        .map_or("", |(_, v)| v.as_str())
}

/// sent - the Date field's instant, else the internal date (§2.2).
pub(crate) fn sent(h: &Hit) -> i64 {
    h.text
        .as_ref()
        .and_then(|t| t.sent)
        .map_or(h.internal, |w| w.utc)
}

/// value - what criterion `k` sorts message `h` by.
fn value(k: SortKey, h: &Hit) -> Val {
    match k {
        SortKey::Arrival => Val::Num(h.internal),
        SortKey::Size => Val::Num(i64::try_from(h.size).unwrap_or(i64::MAX)),
        SortKey::Date => Val::Num(sent(h)),
        SortKey::From => Val::Text(addr_mailbox(raw_field(h, "from"))),
        SortKey::To => Val::Text(addr_mailbox(raw_field(h, "to"))),
        SortKey::Cc => Val::Text(addr_mailbox(raw_field(h, "cc"))),
        SortKey::Subject => Val::Text(base_subject(header(h, "subject"))),
        SortKey::DisplayFrom => Val::Text(display(raw_field(h, "from"))),
        SortKey::DisplayTo => Val::Text(display(raw_field(h, "to"))),
    }
}

/// raw_field - the first From, To or Cc field's value as stored, empty
/// when absent.
fn raw_field<'a>(h: &'a Hit, name: &str) -> &'a [u8] {
    h.text
        .as_ref()
        .and_then(|t| t.addresses.iter().find(|(n, _)| n == name))
        .map_or(&[], |(_, v)| v.as_slice())
}

/// The first IMAP address of a field (RFC 3501 §7.4.2): a mailbox, or
/// the start of a group, whose addr-mailbox is the group's name and
/// whose addr-host is NIL.
enum First<'a> {
    Mailbox(&'a Mailbox),
    Group(&'a str),
}

/// first - the first IMAP address of a stored field value.
fn first(list: &[Address]) -> Option<First<'_>> {
    list.first().map(|a| match a {
        Address::Mailbox(m) => First::Mailbox(m),
        Address::Group(name, _) => First::Group(name),
    })
}

/// parsed - a stored field value's addresses.
fn parsed(value: &[u8]) -> Vec<Address> {
    addrlist::parse(&String::from_utf8_lossy(value))
}

/// display - RFC 5957 §3's DISPLAY sort value of a stored field's first
/// address: its addr-name, RFC 2047-decoded (after the addresses are
/// parsed, so that a decoded comma splits nothing), when that is not
/// empty; else addr-mailbox@addr-host; else addr-mailbox alone (a
/// group's name); else empty. In i;unicode-casemap's form (RFC 5051
/// §2): title case (upper case, which differs only for a few digraphs),
/// then NFKD, so that Ä sorts as A and a combining mark after it.
pub fn display(value: &[u8]) -> String {
    let list = parsed(value);
    let shown = match first(&list) {
        Some(First::Mailbox(m)) => m.decoded_name().unwrap_or_else(|| m.addr_spec()),
        Some(First::Group(name)) => name.to_string(),
        None => String::new(),
    };
    unicode_casemap(&shown)
}

/// unicode_casemap - a string as i;unicode-casemap compares it (RFC
/// 5051 §2): each character title-cased, approximated by upper case,
/// then decomposed by NFKD.
fn unicode_casemap(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.to_lowercase().to_uppercase().nfkd().collect()
}

/// addr_mailbox - RFC 5256's value for FROM, TO and CC: the addr-mailbox
/// of a stored field's first address (a group's name when it is a
/// group), upper-cased for i;ascii-casemap; empty when there is none.
pub fn addr_mailbox(value: &[u8]) -> String {
    let list = parsed(value);
    match first(&list) {
        Some(First::Mailbox(m)) => m.local.clone().unwrap_or_default(),
        Some(First::Group(name)) => name.to_string(),
        None => String::new(),
    }
    .to_ascii_uppercase()
}

/// strip_ci - `s` without the ASCII prefix `p`, compared ignoring case.
fn strip_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    let head = s.get(..p.len())?;
    head.eq_ignore_ascii_case(p).then(|| &s[p.len()..])
}

/// blob - the rest after a leading `[...]` (no brackets inside) and the
/// white space after it.
fn blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find([']', '['])?;
    inner[end..]
        .strip_prefix(']')
        .map(|r| r.trim_start_matches([' ', '\t']))
}

/// leader - the rest after a reply/forward leader: blobs, then `re`,
/// `fw` or `fwd`, white space, perhaps a blob, and a colon (§5's
/// subj-leader); None when there is none.
fn leader(s: &str) -> Option<&str> {
    let mut t = s;
    loop {
        for w in ["re", "fwd", "fw"] {
            if let Some(r) = strip_ci(t, w) {
                let r = r.trim_start_matches([' ', '\t']);
                let r = blob(r).unwrap_or(r);
                if let Some(rest) = r.strip_prefix(':') {
                    return Some(rest);
                }
            }
        }
        t = blob(t)?;
    }
}

/// base_subject - RFC 5256 §2.1's base subject, upper-cased (the header
/// value comes decoded from RFC 2047 already).
pub fn base_subject(subject: &str) -> String {
    base_subject_reply(subject).0
}

/// base_subject_reply - the base subject, and whether a reply or forward
/// marker (a leader, a `(fwd)` trailer or a `[fwd: ]` wrapper) was taken
/// off on the way, which THREAD=REFERENCES calls a reply (§4).
pub fn base_subject_reply(subject: &str) -> (String, bool) {
    let mut reply = false;
    // (1) white space runs to one space.
    let mut s = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        // (2) trailing "(fwd)"s and white space.
        loop {
            let t = s.trim_end();
            let cut = t.len().checked_sub(5).and_then(|i| t.get(i..));
            match cut {
                Some(tail) if tail.eq_ignore_ascii_case("(fwd)") => {
                    reply = true;
                    s = t[..t.len() - 5].to_string();
                }
                _ => {
                    s = t.to_string();
                    break;
                }
            }
        }
        // (3) leaders and (4) a leading blob before a non-empty rest,
        // until neither applies.
        loop {
            let before = s.len();
            s = s.trim_start().to_string();
            if let Some(r) = leader(&s) {
                reply = true;
                s = r.trim_start().to_string();
            }
            if let Some(r) = blob(&s)
                && !r.is_empty()
            {
                s = r.to_string();
            }
            if s.len() == before {
                break;
            }
        }
        // (5) "[fwd: ...]" around it all.
        if let Some(inner) = strip_ci(&s, "[fwd:").and_then(|r| r.strip_suffix(']')) {
            s = inner.to_string();
            reply = true;
            continue;
        }
        return (s.to_ascii_uppercase(), reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        for (subject, base) in [
            ("Hello", "HELLO"),
            ("Re: hello", "HELLO"),
            ("RE:   hello   world", "HELLO WORLD"),
            ("Fwd: Re: hello", "HELLO"),
            ("fw: hello (fwd)", "HELLO"),
            ("hello (FWD) (fwd)  ", "HELLO"),
            ("[list] Re: [x] Fwd: hi (fwd)", "HI"),
            ("Re [list]: hi", "HI"),
            ("[Fwd: Re: hi]", "HI"),
            ("[blob]", "[BLOB]"),
            ("[a] [b] subject", "SUBJECT"),
            ("Re:", ""),
            ("", ""),
            ("Reply to all", "REPLY TO ALL"),
            ("Réponse: ü", "RéPONSE: ü"),
            ("[Fwd:]", ""),
            ("(fwd)", ""),
            ("ü(fwd)", "ü"),
        ] {
            assert_eq!(base_subject(subject), base, "{subject:?}");
        }
        // Odd input ends without a panic.
        for subject in [
            "[",
            "]",
            "re",
            "re [",
            "[fwd:",
            "[[]]",
            "re:re:re:",
            "[a][b][c]",
            "ü]",
        ] {
            let _ = base_subject(subject);
        }
    }

    #[test]
    fn replies_are_told() {
        assert_eq!(base_subject_reply("Re: hi"), ("HI".into(), true));
        assert_eq!(base_subject_reply("hi (fwd)"), ("HI".into(), true));
        assert_eq!(base_subject_reply("[Fwd: hi]"), ("HI".into(), true));
        assert_eq!(base_subject_reply("[list] hi"), ("HI".into(), false));
        assert_eq!(base_subject_reply("hi"), ("HI".into(), false));
    }

    #[test]
    fn display_values() {
        let d = |v: &str| display(v.as_bytes());
        assert_eq!(
            d("\"Jürgen Müller\" <jm@x>, b@y"),
            "JU\u{308}RGEN MU\u{308}LLER"
        );
        // Decomposed, Ä sorts beside A, not after Z (RFC 5051).
        assert!(d("=?utf-8?b?w4Rk?= <ad@x>") < d("Bob <b@x>"));
        assert_eq!(d("\u{fb01}x <f@x>"), "FIX");
        assert_eq!(d("Terry Gray <gray@cac>"), "TERRY GRAY");
        assert_eq!(d("\"\" <ann@mail.test>"), "ANN@MAIL.TEST");
        assert_eq!(d("carl@mail.test"), "CARL@MAIL.TEST");
        // A group's first IMAP address is its start, whose addr-mailbox
        // is the group's name (RFC 5957 §3's third case).
        assert_eq!(d("team: zed <zed@x>;"), "TEAM");
        assert_eq!(d("user@domain (Real Name)"), "REAL NAME");
        assert_eq!(d("lonely"), "LONELY");
        assert_eq!(d(""), "");
        // Decoded after parsing: the encoded comma splits nothing.
        assert_eq!(
            d("=?iso-8859-1?q?M=FCller=2C_J=FCrgen?= <jm@x>, b@y"),
            "MU\u{308}LLER, JU\u{308}RGEN"
        );
        assert_eq!(d("=?utf-8?q?J=C3=BCrgen?= <j@x>"), "JU\u{308}RGEN");
        // Bytes that are no UTF-8 end without a panic.
        let _ = display(b"\xff\xfe <a@b>");
    }

    #[test]
    fn address_mailboxes() {
        let a = |v: &str| addr_mailbox(v.as_bytes());
        assert_eq!(a("Ann <ann@example.org>, bob@x"), "ANN");
        assert_eq!(a("<ann (c)@ (c) example.org>"), "ANN");
        assert_eq!(a("team: Zed <zed@x>;"), "TEAM");
        assert_eq!(a(""), "");
        assert_eq!(a("(nobody)"), "");
        assert_eq!(a("undisclosed-recipients:;"), "UNDISCLOSED-RECIPIENTS");
    }
}
