//! rev2 - what ENABLE switches on, as more of the session: IMAP4rev2
//! (RFC 9051) beside IMAP4rev1, and UTF8=ACCEPT (RFC 6855).
//!
//! A session starts as IMAP4rev1 with modified UTF-7 mailbox names and
//! 7-bit quoted strings. `ENABLE UTF8=ACCEPT` makes mailbox names and
//! quoted strings UTF-8 both ways; `ENABLE IMAP4rev2` does that too (RFC
//! 9051 §5.1: names are UTF-8 there) and drops what RFC 9051 removed:
//! \Recent and RECENT, the NEW, OLD and RECENT search keys, the SEARCH
//! response (ESEARCH instead), UNSEEN in SELECT's answer; and adds what
//! it requires: SELECT's LIST response, [CLOSED] when a selected mailbox
//! is left for another, the UID in unsolicited FETCH responses, and the
//! OLDNAME of a renamed mailbox.
//!
//! Distrusts UTF-8 names: a name with controls (U+0000-001F, U+007F-009F)
//! or line and paragraph separators (U+2028, U+2029) is refused (RFC 6855
//! §3); the rest becomes modified UTF-7 on disk, as Dovecot stores it,
//! and goes through `folders::check` like any other name.

use crate::command::{Cmd, Key, Ret, StatusItem};
use crate::fetch;
use crate::folders::{self, Listed, Tree};
use crate::session::{Action, Session};
use crate::utf7;
use std::io::Write;

/// IMAP4rev2 (RFC 9051), as ENABLE names it and ENABLED answers.
pub const REV2: &str = "IMAP4rev2";
/// UTF8=ACCEPT (RFC 6855).
pub const UTF8: &str = "UTF8=ACCEPT";

impl Session {
    /// enable - ENABLE (RFC 5161 §3.1): ENABLED names each capability
    /// this command newly switched on, in the client's order; unknown
    /// names and ones already on are left out, never an error.
    pub(crate) fn enable(&mut self, tag: &str, caps: &[String]) -> Vec<Action> {
        let mut newly = Vec::new();
        let mut after = Vec::new();
        for c in caps {
            let known = match c.as_str() {
                "IMAP4REV2" => REV2,
                "UTF8=ACCEPT" => UTF8,
                "CONDSTORE" => {
                    if !self.condstore {
                        newly.push("CONDSTORE");
                        after = self.condstore_on();
                    }
                    continue;
                }
                // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                "QRESYNC" => {
                    if !self.qresync {
                        newly.push("QRESYNC");
                        self.qresync = true;
                        if !self.condstore {
                            after = self.condstore_on();
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            if self.enabled.insert(known) {
                newly.push(known);
            }
        }
        if newly.contains(&REV2) {
            // \Recent is gone from here on (RFC 9051 §2.3.2).
            self.hide_recent();
        }
        let mut out = String::from("* ENABLED");
        for c in newly {
            out.push(' ');
            out.push_str(c);
        }
        let mut out = format!("{out}\r\n").into_bytes();
        // CONDSTORE on in a selected mailbox: its HIGHESTMODSEQ (§3.1).
        out.extend_from_slice(&after);
        let mut v = vec![Action::Reply(out)];
        v.extend(self.done(tag, true, "OK ENABLE completed"));
        v
    }

    /// rev2 - whether the client enabled IMAP4rev2.
    pub(crate) fn rev2(&self) -> bool {
        self.enabled.contains(REV2)
    }

    /// utf8 - whether mailbox names and quoted strings are UTF-8 (UTF8=ACCEPT
    /// or IMAP4rev2 enabled).
    pub(crate) fn utf8(&self) -> bool {
        self.enabled.contains(UTF8) || self.rev2()
    }

    /// hide_recent - in IMAP4rev2 no message is \Recent: the selected
    /// folder's view forgets it (the claim on disk stands, so IMAP4rev1
    /// sessions still see each message recent in one session only).
    pub(crate) fn hide_recent(&mut self) {
        if self.rev2()
            && let Some(s) = self.sel.as_mut()
        {
            for m in &mut s.folder.msgs {
                m.recent = false;
            }
        }
    }

    /// utf8_store_name - a UTF-8 mailbox name in store form (modified
    /// UTF-7, `&` spelled `&-`), refusing what RFC 6855 §3 forbids.
    pub(crate) fn utf8_store_name(name: &str) -> Result<String, String> {
        if folders::is_inbox(name) {
            return Ok(name.to_string());
        }
        if name
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
        {
            return Err("control characters or line separators in mailbox name".into());
        }
        Ok(utf7::encode(name))
    }

    /// view_name - a store name in the form names take on the wire
    /// before the separator: UTF-8 once enabled, else as stored.
    pub(crate) fn view_name(&self, name: &str) -> String {
        if self.utf8() {
            utf7::decode(name).unwrap_or_else(|| name.to_string())
        } else {
            name.to_string()
        }
    }

    /// put_mailbox - a store name as the client sees it: separator
    /// translated, UTF-8 (quoted) once enabled, else modified UTF-7.
    pub(crate) fn put_mailbox(&self, out: &mut Vec<u8>, name: &str) {
        let n = self.client_name(name);
        if self.utf8() && !n.is_ascii() && !n.contains(['"', '\\']) {
            // RFC 6855 §3: UTF-8 may go in quoted strings now.
            out.push(b'"');
            out.extend_from_slice(n.as_bytes());
            out.push(b'"');
        } else {
            fetch::astring(out, &n);
        }
    }

    /// list_matching - LIST's names for a reference and pattern (in store
    /// separators). With UTF-8 names the pattern is matched against each
    /// name's UTF-8 form, so a wildcard next to a non-ASCII character
    /// matches as it would in the client's own spelling.
    pub(crate) fn list_matching(&self, t: &Tree, reference: &str, pattern: &str) -> Vec<Listed> {
        if !self.utf8() {
            return t.list(reference, pattern);
        }
        let full = format!("{reference}{pattern}");
        t.list("", "*")
            .into_iter()
            .filter(|l| folders::matches(&full, &self.view_name(&l.name)))
            .collect()
    }

    /// lsub_matching - LSUB's names, matched as `list_matching` does.
    pub(crate) fn lsub_matching(&self, t: &Tree, reference: &str, pattern: &str) -> Vec<Listed> {
        t.lsub_as(reference, pattern, &|n| self.view_name(n))
    }

    /// rev2_check - what IMAP4rev2 and UTF8=ACCEPT change in a parsed
    /// command before it runs: Err is the BAD text.
    pub(crate) fn rev2_check(&self, input: &[u8], cmd: Cmd) -> Result<Cmd, String> {
        // RFC 6855 §3: after ENABLE UTF8=ACCEPT, a SEARCH with CHARSET
        // has conflicting charset labels.
        if self.enabled.contains(UTF8) && matches!(cmd, Cmd::Search { .. }) && has_charset(input) {
            return Err("no CHARSET after ENABLE UTF8=ACCEPT".into());
        }
        if !self.rev2() {
            return Ok(cmd);
        }
        Ok(match cmd {
            Cmd::Search { uid, ret, key } => {
                no_recent_keys(&key)?;
                // RFC 9051 §6.4.4: ESEARCH always; no options means ALL.
                let ret = ret.or(Some(Ret {
                    all: true,
                    ..Ret::default()
                }));
                Cmd::Search { uid, ret, key }
            }
            Cmd::Sort { ref key, .. } | Cmd::Thread { ref key, .. } => {
                no_recent_keys(key)?;
                cmd
            }
            Cmd::Status { ref items, .. } if items.contains(&StatusItem::Recent) => {
                return Err("STATUS RECENT is not in IMAP4rev2".into());
            }
            Cmd::ListExt(ref x)
                if x.status
                    .as_ref()
                    .is_some_and(|i| i.contains(&StatusItem::Recent)) =>
            {
                return Err("STATUS RECENT is not in IMAP4rev2".into());
            }
            other => other,
        })
    }

    /// select_list - IMAP4rev2's `* LIST` for the mailbox SELECT or
    /// EXAMINE opened (RFC 9051 §6.3.2), or RENAME made, with accurate
    /// attributes.
    pub(crate) fn select_list(&self, out: &mut Vec<u8>, name: &str) {
        let sep = self.separator();
        let mut attrs = Vec::new();
        let l = self.tree().list("", name);
        if let Some(l) = l.iter().find(|l| l.name == name) {
            if l.noselect {
                // A level with no folder of its own (after RENAME).
                attrs.push("\\Noselect");
            }
            attrs.push(if l.children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
        }
        attrs.extend(crate::specialuse::attributes(&self.tree(), name));
        let _ = write!(out, "* LIST ({}) \"{sep}\" ", attrs.join(" "));
        self.put_mailbox(out, name);
        out.extend_from_slice(b"\r\n");
    }

    /// renamed - IMAP4rev2's `* LIST` for a renamed mailbox with its
    /// OLDNAME (RFC 9051 §6.3.6, §7.3.1), before RENAME's OK; none for
    /// INBOX, which stays where it is while its messages move.
    pub(crate) fn renamed(&self, from: &str, to: &str) -> Vec<Action> {
        if !self.rev2() || folders::is_inbox(from) {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.select_list(&mut out, to);
        // The line ends in CRLF; the extended item goes before it.
        out.truncate(out.len() - 2);
        out.extend_from_slice(b" (\"OLDNAME\" (");
        self.put_mailbox(&mut out, from);
        out.extend_from_slice(b"))\r\n");
        vec![Action::Reply(out)]
    }
}

/// no_recent_keys - RFC 9051 removed the NEW, OLD and RECENT keys.
fn no_recent_keys(k: &Key) -> Result<(), String> {
    match k {
        Key::New | Key::Old | Key::Recent => Err("NEW, OLD and RECENT are not in IMAP4rev2".into()),
        Key::And(v) => v.iter().try_for_each(no_recent_keys),
        Key::Or(a, b) => no_recent_keys(a).and_then(|()| no_recent_keys(b)),
        Key::Not(a) => no_recent_keys(a),
        _ => Ok(()),
    }
}

/// has_charset - whether a SEARCH that parsed names a CHARSET: `tag
/// [UID] SEARCH [RETURN (...)] CHARSET`.
fn has_charset(input: &[u8]) -> bool {
    let head = &input[..input.len().min(300)];
    let up = String::from_utf8_lossy(head).to_ascii_uppercase();
    let mut rest = up.split_once(' ').map_or("", |(_, r)| r);
    rest = rest.strip_prefix("UID ").unwrap_or(rest);
    rest = rest.strip_prefix("SEARCH ").unwrap_or("");
    if let Some(r) = rest.strip_prefix("RETURN (") {
        rest = r.split_once(") ").map_or("", |(_, r)| r);
    }
    rest.starts_with("CHARSET ")
}

/// has_8bit_header - whether a message's header section has an octet
/// above 0x7f (RFC 6855 §4 refuses those from a client that did not
/// enable UTF8=ACCEPT).
pub(crate) fn has_8bit_header(message: &[u8]) -> bool {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| message.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(message.len());
    !message[..end].is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets_are_told() {
        assert!(has_charset(b"a SEARCH CHARSET UTF-8 ALL"));
        assert!(has_charset(b"a uid search charset us-ascii ALL"));
        assert!(has_charset(b"a SEARCH RETURN (MIN MAX) CHARSET UTF-8 ALL"));
        assert!(!has_charset(b"a SEARCH SUBJECT CHARSET"));
        assert!(!has_charset(b"a SEARCH RETURN () ALL"));
        assert!(!has_charset(b"a FETCH 1 FLAGS"));
    }

    #[test]
    fn header_octets() {
        assert!(has_8bit_header("Subject: ä\r\n\r\nbody".as_bytes()));
        assert!(!has_8bit_header("Subject: a\r\n\r\nbödy".as_bytes()));
        assert!(!has_8bit_header("Subject: a\n\nbödy".as_bytes()));
        assert!(has_8bit_header("Subject: ä".as_bytes()));
    }

    #[test]
    fn utf8_names_in_store_form() {
        assert_eq!(
            Session::utf8_store_name("Entwürfe").as_deref(),
            Ok("Entw&APw-rfe")
        );
        assert_eq!(Session::utf8_store_name("A&B").as_deref(), Ok("A&-B"));
        assert_eq!(Session::utf8_store_name("inbox").as_deref(), Ok("inbox"));
        assert!(Session::utf8_store_name("a\u{2028}b").is_err());
        assert!(Session::utf8_store_name("a\u{85}b").is_err());
        assert!(Session::utf8_store_name("a\u{7f}b").is_err());
    }

    #[test]
    fn recent_keys_anywhere() {
        assert!(no_recent_keys(&Key::Not(Box::new(Key::New))).is_err());
        assert!(no_recent_keys(&Key::And(vec![Key::All, Key::Old])).is_err());
        assert!(no_recent_keys(&Key::Or(Box::new(Key::All), Box::new(Key::Recent))).is_err());
        assert!(no_recent_keys(&Key::And(vec![Key::All])).is_ok());
    }
}
