//! sieve - the hook from a Maildir delivery into Sieve filtering
//! (posthorn-sieve's exec): when the user has scripts (sieve_before, the
//! active script, sieve_after), they decide where the message goes; with
//! none, the delivery goes on as before.
//!
//! Runs after deliver has become the user, never as root.

use crate::Args;
use crate::input::Message;
use posthorn_mail::config::Config;
use posthorn_sieve::exec::{self, Failure, Recipient};
use posthorn_sys::exit::{self, Exit};
use std::io::Read;
use std::path::Path;

impl exec::Source for Message {
    fn reader(&self) -> std::io::Result<Box<dyn Read + '_>> {
        Message::reader(self)
    }
    fn size(&self) -> u64 {
        self.len()
    }
}

/// What deliver knows of the recipient, for `filter`.
pub struct Target<'a> {
    pub user: &'a str,
    pub rcpt: &'a str,
    pub sender: &'a str,
    pub home: Option<&'a Path>,
    /// The Maildir (INBOX) and where keep goes (INBOX or a +detail folder).
    pub root: &'a Path,
    pub default_mailbox: &'a Path,
}

/// filter - deliver through the user's Sieve scripts; None when there
/// are none. Ok carries the log text; an ereject is a permanent failure
/// (exit 77) whose reason the sender's DSN carries.
pub fn filter(
    cfg: &Config,
    args: &Args,
    t: &Target<'_>,
    prefix: &[u8],
    msg: &Message,
) -> Option<Result<String, Exit>> {
    let files = exec::scripts(cfg, t.home);
    // Spam goes to Junk through Sieve too (the built-in rule, after
    // every script): without scripts, only a message marked as spam
    // needs the interpreter.
    let spam = cfg.sieve.spam_to_junk
        && msg.has_field(&cfg.spam_header.0, |v| {
            cfg.is_spam_field(&cfg.spam_header.0, v)
        });
    if files.is_empty() && !spam {
        return None;
    }
    let r = Recipient {
        user: t.user,
        address: t.rcpt,
        original: args.original.as_deref().unwrap_or(t.rcpt),
        sender: t.sender,
        home: t.home,
        root: t.root,
        default_mailbox: t.default_mailbox,
        queue_id: args.queue_id.as_deref().unwrap_or("NOQUEUE"),
    };
    Some(match exec::deliver(cfg, &r, &files, prefix, msg) {
        Ok(report) => Ok(format!("sieve: {}", report.done.join(", "))),
        Err(Failure::Temporary(m)) => Err(Exit::new(exit::TEMPFAIL, format!("sieve: {m}"))),
        Err(Failure::Rejected(m)) => Err(Exit::new(exit::NOPERM, m)),
    })
}
