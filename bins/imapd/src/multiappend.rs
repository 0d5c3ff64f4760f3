//! multiappend - APPEND of one message, or of several in one command (RFC 3502):
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
        // RFC 6855 §4: 8-bit header fields only from a client that said
        // it handles them.
        if !self.utf8()
            && messages
                .iter()
                .any(|m| crate::rev2::has_8bit_header(&m.message))
        {
            return vec![line(&format!(
                "{tag} NO 8-bit header fields need ENABLE UTF8=ACCEPT; nothing appended"
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
                    crate::messages::uid_set(&uids)
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
