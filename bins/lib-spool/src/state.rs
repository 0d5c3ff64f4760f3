//! state - qrun's durable record of what happened to each recipient.
//!
//! One append-only file per message in spool/state/, tab-separated lines:
//!
//! ```text
//! D <rcpt> <target>                 delivered
//! X <rcpt> <target> <dsn> <text> [<mta> <diag>]   failed for good (bounce owed)
//! W <rcpt> <target> <dsn> <text> [<mta> <diag>]   deferred (the latest reason)
//! N <rcpt> <target>                 the failure was reported in a bounce
//! L <rcpt> <target>                 the sender was warned of the delay
//! Y <rcpt> <target>                 relayed to a server without DSN
//! Q <next attempt> <attempts>       retry schedule of the message
//! ```
//!
//! `<rcpt>` is the recipient's index in the envelope, `<target>` what it
//! expanded to (`mailbox:ann`, `pipe:...`, `remote:a@b`). A line cut short
//! by a crash has no final newline and is ignored. `<mta>` and `<diag>`
//! (remote deliveries only) are the server that answered and its reply,
//! for the bounce's Remote-MTA and Diagnostic-Code.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Key of one delivery: recipient index and target.
pub type Key = (usize, String);

/// What is known about one message's deliveries.
#[derive(Debug, Default, Clone)]
pub struct State {
    pub done: HashSet<Key>,
    pub failed: HashMap<Key, (String, String)>,
    pub deferred: HashMap<Key, (String, String)>,
    pub notified: HashSet<Key>,
    /// Delivered to a server without DSN: a NOTIFY=SUCCESS report is ours.
    pub relayed: HashSet<Key>,
    /// Deferred targets the sender was warned about (queue.delay_warning).
    pub warned: HashSet<Key>,
    /// The remote server and its reply behind the latest X or W record.
    pub remote: HashMap<Key, (String, String)>,
    pub next_attempt: u64,
    pub attempts: u32,
}

fn field(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\t' || c.is_control() { ' ' } else { c })
        .collect()
}

/// remote - note (or forget) the remote server fields of an X or W line.
fn remote(st: &mut State, k: &Key, f: &[&str]) {
    match (f.get(5), f.get(6)) {
        (Some(m), d) if !m.is_empty() || d.is_some_and(|d| !d.is_empty()) => {
            st.remote
                .insert(k.clone(), (m.to_string(), d.unwrap_or(&"").to_string()));
        }
        _ => {
            st.remote.remove(k);
        }
    }
}

impl State {
    /// load - read a state file; a missing file is a fresh message.
    pub fn load(path: &Path) -> io::Result<State> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(e),
        };
        let mut st = State::default();
        let text = String::from_utf8_lossy(&text);
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        for line in complete.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let idx = || f.get(1).and_then(|s| s.parse::<usize>().ok());
            let key = || Some((idx()?, f.get(2)?.to_string()));
            match f.first().copied() {
                Some("D") => {
                    if let Some(k) = key() {
                        st.deferred.remove(&k);
                        st.done.insert(k);
                    }
                }
                Some("X") => {
                    if let Some(k) = key() {
                        remote(&mut st, &k, &f);
                        st.deferred.remove(&k);
                        let v = (
                            f.get(3).unwrap_or(&"5.0.0").to_string(),
                            f.get(4).unwrap_or(&"").to_string(),
                        );
                        st.failed.insert(k, v);
                    }
                }
                Some("W") => {
                    if let Some(k) = key() {
                        remote(&mut st, &k, &f);
                        let v = (
                            f.get(3).unwrap_or(&"4.0.0").to_string(),
                            f.get(4).unwrap_or(&"").to_string(),
                        );
                        st.deferred.insert(k, v);
                    }
                }
                Some("N") => {
                    if let Some(k) = key() {
                        st.notified.insert(k);
                    }
                }
                Some("Y") => {
                    if let Some(k) = key() {
                        st.relayed.insert(k);
                    }
                }
                Some("L") => {
                    if let Some(k) = key() {
                        st.warned.insert(k);
                    }
                }
                Some("Q") => {
                    st.next_attempt = f.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                    st.attempts = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
                }
                _ => {}
            }
        }
        Ok(st)
    }

    /// remote_of - the server and reply behind a target's last outcome, if remote.
    pub fn remote_of(&self, k: &Key) -> Option<&(String, String)> {
        self.remote.get(k)
    }

    /// is_finished - whether the target needs no more work.
    pub fn is_finished(&self, k: &Key) -> bool {
        self.done.contains(k) || self.failed.contains_key(k)
    }
}

/// An open state file to append records to.
#[derive(Debug)]
pub struct Journal {
    file: Option<File>,
    path: std::path::PathBuf,
    pending: Vec<u8>,
}

impl Journal {
    /// new - a journal for `path`, created on first write.
    pub fn new(path: &Path) -> Journal {
        Journal {
            file: None,
            path: path.to_path_buf(),
            pending: Vec::new(),
        }
    }

    /// delivered - record a finished delivery.
    pub fn delivered(&mut self, k: &Key) {
        self.pending
            .extend_from_slice(format!("D\t{}\t{}\n", k.0, field(&k.1)).as_bytes());
    }
    /// failed - record a permanent failure.
    pub fn failed(&mut self, k: &Key, dsn: &str, text: &str) {
        self.outcome('X', k, dsn, text, None);
    }
    /// deferred - record a temporary failure.
    pub fn deferred(&mut self, k: &Key, dsn: &str, text: &str) {
        self.outcome('W', k, dsn, text, None);
    }
    /// failed_remote - a permanent failure with the server (mta) and its reply.
    pub fn failed_remote(&mut self, k: &Key, dsn: &str, text: &str, mta: &str, diag: &str) {
        self.outcome('X', k, dsn, text, Some((mta, diag)));
    }
    /// deferred_remote - a temporary failure with the server (mta) and its reply.
    pub fn deferred_remote(&mut self, k: &Key, dsn: &str, text: &str, mta: &str, diag: &str) {
        self.outcome('W', k, dsn, text, Some((mta, diag)));
    }
    fn outcome(
        &mut self,
        kind: char,
        k: &Key,
        dsn: &str,
        text: &str,
        remote: Option<(&str, &str)>,
    ) {
        let mut line = format!(
            "{kind}\t{}\t{}\t{}\t{}",
            k.0,
            field(&k.1),
            field(dsn),
            field(text)
        );
        if let Some((m, d)) = remote.filter(|(m, d)| !m.is_empty() || !d.is_empty()) {
            line.push_str(&format!("\t{}\t{}", field(m), field(d)));
        }
        line.push('\n');
        self.pending.extend_from_slice(line.as_bytes());
    }
    /// notified - record that a bounce for the failure is queued.
    pub fn notified(&mut self, k: &Key) {
        self.pending
            .extend_from_slice(format!("N\t{}\t{}\n", k.0, field(&k.1)).as_bytes());
    }
    /// relayed - record a delivery to a server that does not do DSN.
    pub fn relayed(&mut self, k: &Key) {
        self.pending
            .extend_from_slice(format!("Y\t{}\t{}\n", k.0, field(&k.1)).as_bytes());
    }
    /// warned - record that the sender was warned of the delay.
    pub fn warned(&mut self, k: &Key) {
        self.pending
            .extend_from_slice(format!("L\t{}\t{}\n", k.0, field(&k.1)).as_bytes());
    }
    /// schedule - record when to try again.
    pub fn schedule(&mut self, next: u64, attempts: u32) {
        self.pending
            .extend_from_slice(format!("Q\t{next}\t{attempts}\n").as_bytes());
    }

    /// sync - append what is pending and fdatasync: after this the records
    /// survive a crash. The sync that creates the file also fsyncs state/:
    /// records in a file whose name was lost are no records at all, and
    /// deliveries already made would be made again.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut created = false;
        if self.file.is_none() {
            let open = |create_new: bool| {
                let mut o = std::fs::OpenOptions::new();
                o.append(true)
                    .mode(0o640)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
                if create_new {
                    o.create_new(true);
                }
                o.open(&self.path)
            };
            let f = match open(true) {
                Ok(f) => {
                    created = true;
                    f
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open(false)?,
                Err(e) => return Err(e),
            };
            self.file = Some(f);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&self.pending)?;
            f.sync_data()?;
        }
        if created {
            let dir = match self.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            posthorn_sys::fsio::fsync_dir(dir)?;
        }
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_fold_and_torn_lines_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let mut j = Journal::new(&p);
        let a = (0, "mailbox:ann".to_string());
        let b = (1, "remote:x@y".to_string());
        j.deferred(&a, "4.3.0", "disk\tfull");
        j.delivered(&a);
        j.deferred(&b, "4.4.0", "no remote");
        j.schedule(99, 2);
        let c = (2, "remote:c@z".to_string());
        j.failed_remote(&c, "5.1.1", "host said no", "mx.z", "550 5.1.1 no");
        j.sync().unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"D\t1\tremote:x@y")
            .unwrap();
        let st = State::load(&p).unwrap();
        assert!(st.done.contains(&a));
        assert!(!st.deferred.contains_key(&a));
        assert_eq!(st.deferred.get(&b).unwrap().1, "no remote");
        assert!(!st.done.contains(&b));
        assert_eq!((st.next_attempt, st.attempts), (99, 2));
        assert_eq!(
            st.remote_of(&c),
            Some(&("mx.z".to_string(), "550 5.1.1 no".to_string()))
        );
        assert_eq!(st.failed.get(&c).unwrap().1, "host said no");
        assert_eq!(st.remote_of(&a), None);
    }
}
