//! multiappend - APPEND of several messages in one command (RFC 3502):
//! all are stored or none (folder::append_all writes and fsyncs every
//! one under tmp/ before any is moved into cur/), and the OK carries
//! APPENDUID with the UID set (RFC 4315 §3).
//!
//! serve.rs already capped each message at the APPEND limit and the
//! whole command at MAX_APPEND_TOTAL; command.rs capped the count.

use crate::command::AppendMsg;
use crate::flags::{self, Flags};
use crate::folder;
use crate::session::{Action, Session, line};

impl Session {
    /// multi_append - APPEND mailbox msg msg ... (fsynced before the OK).
    pub(crate) fn multi_append(
        &mut self,
        tag: &str,
        name: &str,
        messages: &[AppendMsg],
    ) -> Vec<Action> {
        let dir = match self.tree().path(name) {
            Ok(d) => d,
            Err(e) => return vec![line(&format!("{tag} NO {e}"))],
        };
        if !dir.join("cur").is_dir() {
            return vec![line(&format!("{tag} NO [TRYCREATE] no such mailbox"))];
        }
        if messages.iter().any(|m| m.message.is_empty()) {
            return vec![line(&format!(
                "{tag} NO an empty message; nothing appended"
            ))];
        }
        let mut kw = flags::Keywords::read(&dir);
        let mut all: Vec<(&[u8], Flags, Option<i64>)> = Vec::new();
        for m in messages {
            match Self::parse_flags(&m.flags, &mut kw, &dir) {
                Ok(f) => all.push((&m.message, f, m.date)),
                Err(e) => return self.bad(tag, &e),
            }
        }
        match folder::append_all(&dir, &all) {
            Ok((validity, uids)) => self.done(
                tag,
                true,
                &format!(
                    "OK [APPENDUID {validity} {}] APPEND completed",
                    uid_ranges(&uids)
                ),
            ),
            Err(e) => {
                posthorn_sys::warning!("append to {}: {e}", dir.display());
                vec![line(&format!(
                    "{tag} NO [SERVERBUG] cannot store the messages, none was appended: {e}"
                ))]
            }
        }
    }
}

/// uid_ranges - UIDs in order as a uid-set: `4:6,9`.
fn uid_ranges(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j + 1] == uids[j].wrapping_add(1) {
            j += 1;
        }
        parts.push(if i == j {
            uids[i].to_string()
        } else {
            format!("{}:{}", uids[i], uids[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(uid_ranges(&[4, 5, 6, 9]), "4:6,9");
        assert_eq!(uid_ranges(&[1]), "1");
        assert_eq!(uid_ranges(&[3, 5]), "3,5");
    }
}
