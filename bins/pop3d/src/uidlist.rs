//! uidlist - read Dovecot's `dovecot-uidlist` (version 3), so a Maildir
//! that Dovecot served keeps the POP3 unique ids its clients already saw.
//!
//! Format (Dovecot's maildir-uidlist.c): a header line
//! `3 V<uidvalidity> N<nextuid> G<guid> ...`, then one line per message:
//! `<uid> [<key><value> ...] :<base name>`. The keys used here: `P`, the
//! POP3 UIDL Dovecot saved for the message (pop3_save_uidl), and `W`, its
//! CRLF size. Without `P`, the id is what Dovecot's default
//! `pop3_uidl_format = %08Xu%08Xv` gives: UID and UIDVALIDITY in hex.
//! This is read only; pop3d never writes the file.

use std::collections::HashMap;
use std::path::Path;

/// Longest file read: a uidlist of a million messages is ~80 MB; refuse
/// more rather than hold it.
const MAX_SIZE: u64 = 256 * 1024 * 1024;

/// What the uidlist says about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uidl: String,
    /// The CRLF size, when Dovecot recorded it.
    pub size: Option<u64>,
}

/// read - the entries by base name; empty when there is no usable file.
pub fn read(dir: &Path) -> HashMap<String, Entry> {
    let path = dir.join("dovecot-uidlist");
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() <= MAX_SIZE => {}
        _ => return HashMap::new(),
    }
    match std::fs::read_to_string(&path) {
        Ok(t) => parse(&t),
        Err(_) => HashMap::new(),
    }
}

/// parse - the text of a uidlist; anything not version 3 gives nothing.
pub fn parse(text: &str) -> HashMap<String, Entry> {
    let mut out = HashMap::new();
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return out;
    };
    let mut fields = header.split(' ');
    if fields.next() != Some("3") {
        return out;
    }
    let Some(validity) = fields
        .find_map(|f| f.strip_prefix('V'))
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return out;
    };
    for line in lines {
        let Some((left, name)) = line.split_once(" :") else {
            continue;
        };
        let mut f = left.split(' ');
        let Some(uid) = f.next().and_then(|u| u.parse::<u32>().ok()) else {
            continue;
        };
        let mut e = Entry {
            uidl: format!("{uid:08X}{validity:08X}"),
            size: None,
        };
        for ext in f {
            if let Some(p) = ext.strip_prefix('P')
                && !p.is_empty()
            {
                e.uidl = p.to_string();
            } else if let Some(w) = ext.strip_prefix('W') {
                e.size = w.parse().ok();
            }
        }
        let base = name.split(":2,").next().unwrap_or(name);
        out.insert(base.to_string(), e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let t = "3 V1700000000 N5 G0123456789abcdef\n\
                 1 :1700000001.M1P1.host,S=10\n\
                 2 W120 :1700000002.M2P1.host,S=100:2,S\n\
                 4 P0000001a6552ecd1 W7 :1700000004.M4P1.host\n\
                 garbage line\n";
        let m = parse(t);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m["1700000001.M1P1.host,S=10"],
            Entry {
                uidl: "000000016553F100".into(),
                size: None
            }
        );
        assert_eq!(m["1700000002.M2P1.host,S=100"].size, Some(120));
        assert_eq!(m["1700000004.M4P1.host"].uidl, "0000001a6552ecd1");
        assert!(parse("2 V1 N1\n1 :x\n").is_empty(), "version 2 is not read");
        assert!(parse("").is_empty());
    }
}
