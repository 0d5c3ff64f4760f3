//! maildrop - the user's Maildir INBOX as POP3 sees it: new/ and cur/,
//! read once at login, in a stable order, with CRLF sizes and unique ids;
//! the one-session lock; and the UPDATE state's deletes and moves.
//!
//! Deviations and choices, as Dovecot's comments do:
//! - Order: by the delivery time in the name (`<secs>.M<usec>`), then by
//!   name, so the oldest message is number 1 and the
//!   numbering is the same in every session that sees the same files.
//! - UIDL: the Maildir base name (the name before `:2,`), as Dovecot's
//!   `pop3_uidl_format = %f`. It never repeats: Maildir names are unique.
//!   Names longer
//!   than 70 octets or with octets outside 0x21-0x7E (RFC 1939 limits) are
//!   replaced by `H` and a 64-bit FNV-1a hash of the name in hex. When a
//!   `dovecot-uidlist` lists the message, its id is what Dovecot gave
//!   (uidlist.rs), so clients moved from Dovecot fetch nothing twice.
//! - Sizes: the CRLF size. `,W=` in the name is that (Dovecot writes it);
//!   otherwise the file is read once and the size remembered in
//!   `posthorn-pop3-sizes` in the Maildir (a cache: deleting it is safe).
//! - Messages that arrive during a session are not seen until the next one.
//! - A big maildrop's file list is remembered between sessions while new/
//!   and cur/ stay unchanged, as Dovecot's index does (listing.rs).

use crate::listing;
use crate::stream;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file, in the Maildir: holds the pid of the session.
pub const LOCK_FILE: &str = "posthorn-pop3.lock";
/// The size cache: `base size` lines.
pub const SIZE_CACHE: &str = "posthorn-pop3-sizes";

/// One message of the maildrop. A big maildrop holds many of these for the
/// whole session: one allocation holds the file's path, base name and
/// flags, and the UIDL is stored only when it is not the base name.
#[derive(Debug, Clone)]
pub struct Message {
    /// `new/NAME` or `cur/NAME`, relative to the Maildir.
    rel: Box<str>,
    /// End of the base name in `rel` (it starts after `new/` or `cur/`).
    base_end: u32,
    /// Start of the flags in `rel` (after `:2,`); `rel.len()` for none.
    flags_at: u32,
    /// The UIDL when it is not the base name (an odd name, dovecot-uidlist).
    uidl: Option<Box<str>>,
    /// Size in octets with CRLF line ends, as RETR sends it before stuffing.
    pub size: u64,
    pub deleted: bool,
    /// Sent whole by RETR: moves to cur/ with the S flag at QUIT.
    pub seen: bool,
}

/// Where the base name starts in `Message::rel`: after `new/` or `cur/`.
const SUB_LEN: usize = 4;

impl Message {
    /// new - the message in file `name` of `sub` (`new` or `cur`).
    fn new(sub: &str, name: &str) -> Message {
        let mut rel = String::with_capacity(SUB_LEN + name.len());
        rel.push_str(sub);
        rel.push('/');
        rel.push_str(name);
        Message::from_rel(rel)
    }

    /// from_rel - the message in file `rel`: `new/NAME` or `cur/NAME`.
    fn from_rel(rel: String) -> Message {
        let name = &rel[SUB_LEN..];
        // Usually the first `:` starts `:2,`; search on only when not.
        let colon = name.bytes().position(|b| b == b':');
        let info = match colon {
            Some(i) if name[i..].starts_with(":2,") => Some(i),
            Some(_) => name.find(":2,"),
            None => None,
        };
        let (base_end, flags_at) = match (info, colon) {
            (Some(i), _) => (i, i + 3),
            (None, c) => (c.unwrap_or(name.len()), name.len()),
        };
        let base = &name[..base_end];
        Message {
            uidl: (!plain_uidl(base)).then(|| uidl(base).into_boxed_str()),
            rel: rel.into_boxed_str(),
            // Names come from one directory entry: at most 255 octets.
            base_end: (SUB_LEN + base_end) as u32,
            flags_at: (SUB_LEN + flags_at) as u32,
            size: 0,
            deleted: false,
            seen: false,
        }
    }

    /// rel - the file, relative to the Maildir: `new/NAME` or `cur/NAME`.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// base - the base name (before `:2,`).
    pub fn base(&self) -> &str {
        &self.rel[SUB_LEN..self.base_end as usize]
    }

    /// flags - the flags after `:2,` (empty for new/).
    pub fn flags(&self) -> &str {
        &self.rel[self.flags_at as usize..]
    }

    /// uidl - the unique id (see the module comment).
    pub fn uidl(&self) -> &str {
        self.uidl.as_deref().unwrap_or_else(|| self.base())
    }
}

/// Why the maildrop could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another session holds the lock.
    InUse,
    /// Anything else: the client may try again later.
    Temporary(String),
}

/// The opened maildrop: the message list and the lock.
#[derive(Debug)]
pub struct Maildrop {
    pub dir: PathBuf,
    pub messages: Vec<Message>,
    lock: Option<Lock>,
}

/// The one-session lock: `posthorn-pop3.lock` created with O_EXCL, holding
/// our pid; removed when the session ends.
#[derive(Debug)]
struct Lock {
    path: PathBuf,
    pid: u32,
}

impl Drop for Lock {
    /// drop - remove the lock only if it is still ours (a breaker may have
    /// taken it after a very long pause of ours).
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// read_pid - the pid in a lock file.
fn read_pid(path: &Path) -> Option<u32> {
    let mut s = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(32)
        .read_to_string(&mut s)
        .ok()?;
    s.trim().parse().ok()
}

/// alive - whether process `pid` exists (EPERM: it exists, as someone else).
fn alive(pid: u32) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// reused - whether process `pid` started after the lock was written, so
/// it is another program that got the pid of a session that died. Linux:
/// a /proc/PID directory is as old as its process.
fn reused(pid: u32, lock: &Path) -> bool {
    let started = std::fs::metadata(format!("/proc/{pid}")).and_then(|m| m.modified());
    let locked = std::fs::symlink_metadata(lock).and_then(|m| m.modified());
    match (started, locked) {
        (Ok(s), Ok(l)) => s > l + std::time::Duration::from_secs(2),
        _ => false,
    }
}

/// lock - take the lock, breaking a stale one (its pid is gone, or it is
/// empty or garbage and older than a minute: a crash between create and write).
fn lock(dir: &Path) -> Result<Lock, OpenError> {
    let path = dir.join(LOCK_FILE);
    let pid = std::process::id();
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc_nofollow())
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(format!("{pid}\n").as_bytes())
                    .map_err(|e| OpenError::Temporary(format!("{}: {e}", path.display())))?;
                return Ok(Lock { path, pid });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = match read_pid(&path) {
                    Some(p) => !alive(p) || reused(p, &path),
                    None => std::fs::symlink_metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age.as_secs() > 60),
                };
                if !stale {
                    return Err(OpenError::InUse);
                }
                // Break it by renaming to a name of our own first, so two
                // breakers cannot both remove a fresh lock: only one rename
                // of the stale file succeeds.
                let aside = dir.join(format!("{LOCK_FILE}.stale.{pid}"));
                if std::fs::rename(&path, &aside).is_ok() {
                    let _ = std::fs::remove_file(&aside);
                }
            }
            Err(e) => return Err(OpenError::Temporary(format!("{}: {e}", path.display()))),
        }
    }
    Err(OpenError::InUse)
}

/// libc_nofollow - O_NOFOLLOW: the lock is never a symlink planted elsewhere.
fn libc_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// time_key - the delivery time a Maildir name starts with (`<secs>.M<usec>`,
/// the usual `<secs>.` alone otherwise), for ordering.
fn time_key(name: &str) -> (u64, u64) {
    let mut parts = name.split('.');
    let secs = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    let usec = parts
        .next()
        .and_then(|p| p.strip_prefix('M'))
        .and_then(|p| {
            p[..p.bytes().take_while(u8::is_ascii_digit).count()]
                .parse()
                .ok()
        })
        .unwrap_or(0);
    (secs, usec)
}

/// name_field - the value of `,X=` in a base name (`,S=`, `,W=`).
fn name_field(base: &str, key: char) -> Option<u64> {
    let b = base.as_bytes();
    let key = u8::try_from(key).ok()?;
    // Each field after a comma, up to the next comma: the first `X=<number>`.
    let mut at = b.iter().position(|&c| c == b',')?;
    loop {
        let rest = &b[at + 1..];
        let end = rest.iter().position(|&c| c == b',');
        let field = &rest[..end.unwrap_or(rest.len())];
        if field.len() > 2
            && field[0] == key
            && field[1] == b'='
            && let Some(v) = std::str::from_utf8(&field[2..])
                .ok()
                .and_then(|v| v.parse().ok())
        {
            return Some(v);
        }
        at += 1 + end?;
    }
}

/// plain_uidl - whether a base name can be its own UIDL (RFC 1939: 1 to
/// 70 octets in 0x21-0x7E).
fn plain_uidl(base: &str) -> bool {
    !base.is_empty() && base.len() <= 70 && base.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// uidl - the unique id for a base name (see the module comment).
pub fn uidl(base: &str) -> String {
    if plain_uidl(base) {
        return base.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in base.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("H{h:016x}")
}

/// read_cache - the size cache, or nothing if it is missing or broken.
fn read_cache(dir: &Path) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    let Ok(text) = std::fs::read_to_string(dir.join(SIZE_CACHE)) else {
        return m;
    };
    for line in text.lines() {
        if let Some((b, s)) = line.split_once(' ')
            && let Ok(s) = s.parse()
        {
            m.insert(b.to_string(), s);
        }
    }
    m
}

/// write_cache - replace the size cache atomically; failure only costs time later.
fn write_cache(dir: &Path, sizes: &[(String, u64)]) {
    let mut text = String::new();
    for (base, size) in sizes {
        text.push_str(&format!("{base} {size}\n"));
    }
    let tmp = dir.join(format!("{SIZE_CACHE}.{}", std::process::id()));
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(SIZE_CACHE)));
    if ok.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// scan - read new/ and cur/: the messages in maildrop order (see the
/// module comment), their sizes not yet known.
fn scan(dir: &Path) -> Result<Vec<Message>, OpenError> {
    let mut keyed: Vec<((u64, u64), Message)> = Vec::new();
    for sub in ["new", "cur"] {
        let rd = match std::fs::read_dir(dir.join(sub)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(OpenError::Temporary(format!(
                    "{}: {e}",
                    dir.join(sub).display()
                )));
            }
        };
        for e in rd {
            let e = e.map_err(|e| OpenError::Temporary(format!("{sub}: {e}")))?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let m = Message::new(sub, &name);
            // Keys parsed once, not at every comparison: 10,000 names
            // cost 140,000 comparisons.
            keyed.push((time_key(m.base()), m));
        }
    }
    // The base name only breaks ties: most keys differ.
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.base().cmp(b.1.base())));
    let mut messages: Vec<Message> = keyed.into_iter().map(|(_, m)| m).collect();
    // A name in both new/ and cur/ (a client renaming just now) once.
    messages.dedup_by(|a, b| a.base() == b.base());
    Ok(messages)
}

impl Maildrop {
    /// open - lock the Maildir at `dir` and list its messages.
    pub fn open(dir: &Path) -> Result<Maildrop, OpenError> {
        match std::fs::metadata(dir) {
            // No mail was ever delivered: an empty maildrop, and nothing
            // is created on the user's behalf.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Maildrop {
                    dir: dir.to_path_buf(),
                    messages: Vec::new(),
                    lock: None,
                });
            }
            // Unreadable is not empty: say so rather than show no mail.
            Err(e) => return Err(OpenError::Temporary(format!("{}: {e}", dir.display()))),
            Ok(m) if !m.is_dir() => {
                return Err(OpenError::Temporary(format!(
                    "{}: not a directory",
                    dir.display()
                )));
            }
            Ok(_) => {}
        }
        let lock = lock(dir)?;
        // A big maildrop unchanged since the last session: its list as it was.
        let stamps = listing::stamps(dir);
        let mut messages = match stamps.as_ref().and_then(|s| listing::read(dir, s)) {
            Some(rels) => rels.into_iter().map(Message::from_rel).collect(),
            None => {
                let m = scan(dir)?;
                if let Some(s) = &stamps {
                    listing::write(dir, s, m.iter().map(Message::rel));
                }
                m
            }
        };
        let dovecot = crate::uidlist::read(dir);
        if !dovecot.is_empty() {
            for m in &mut messages {
                if let Some(e) = dovecot.get(m.base()) {
                    m.uidl = Some(uidl(&e.uidl).into_boxed_str());
                    if let Some(w) = e.size {
                        m.size = w;
                    }
                }
            }
        }
        let cache = read_cache(dir);
        // What the cache will hold: the sizes counted, now or before.
        let (mut computed, mut keep) = (false, Vec::new());
        messages.retain_mut(|m| {
            if m.size > 0 {
                return true;
            }
            if let Some(w) = name_field(m.base(), 'W') {
                m.size = w;
                return true;
            }
            if let Some(&s) = cache.get(m.base()) {
                m.size = s;
                keep.push((m.base().to_string(), s));
                return true;
            }
            // Read once; a file that vanished since the listing is skipped.
            match std::fs::File::open(dir.join(m.rel())) {
                Ok(f) => match stream::crlf_size(f) {
                    Ok(s) => {
                        m.size = s;
                        computed = true;
                        keep.push((m.base().to_string(), s));
                        true
                    }
                    Err(_) => false,
                },
                Err(_) => false,
            }
        });
        // Rewrite when sizes were counted or cached messages are gone.
        if computed || keep.len() != cache.len() {
            write_cache(dir, &keep);
        }
        Ok(Maildrop {
            dir: dir.to_path_buf(),
            messages,
            lock: Some(lock),
        })
    }

    /// path - the file of message `m` now.
    pub fn path(&self, m: &Message) -> PathBuf {
        self.dir.join(m.rel())
    }

    /// update - the UPDATE state: unlink deleted messages, move the ones
    /// RETR sent to cur/ with the S flag. A file already gone is fine
    /// (another client removed it). Returns the number of deletions that failed.
    pub fn update(&mut self) -> usize {
        let mut failed = 0;
        // Renames under the folder's uidlist lock, as imapd and Dovecot
        // make them: Dovecot reads the directories under it, and a file
        // renamed during its read would look expunged to it. Without the
        // lock (held too long elsewhere) the renames are made anyway.
        let renames = self
            .messages
            .iter()
            .any(|m| m.seen && !m.deleted)
            .then(|| posthorn_store::dotlock::DotLock::acquire(&self.dir, "dovecot-uidlist").ok())
            .flatten();
        for m in &self.messages {
            // Most messages are neither deleted nor newly seen: no path
            // is built for them.
            let mark_seen = m.seen && !m.flags().contains('S');
            if !m.deleted && !mark_seen {
                continue;
            }
            let p = self.dir.join(m.rel());
            if m.deleted {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    // Another client (an IMAP session setting flags) may have
                    // renamed it since login: find it by its base name.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if let Some(now) = self.find_renamed(m.base())
                            && std::fs::remove_file(&now).is_err()
                        {
                            failed += 1;
                        }
                    }
                    Err(_) => failed += 1,
                }
            } else {
                let mut flags: Vec<char> = m.flags().chars().chain(['S']).collect();
                flags.sort_unstable();
                flags.dedup();
                let flags: String = flags.into_iter().collect();
                let to = self.dir.join("cur").join(format!("{}:2,{flags}", m.base()));
                let _ = std::fs::rename(&p, to);
            }
        }
        drop(renames);
        if self.messages.iter().any(|m| m.deleted) {
            let _ = posthorn_sys::fsio::fsync_dir(&self.dir.join("cur"));
            let _ = posthorn_sys::fsio::fsync_dir(&self.dir.join("new"));
        }
        failed
    }

    /// open_message - the message's file, followed where another program renamed
    /// it (an IMAP server changing its flags, or moving it to cur/).
    pub fn open_message(&self, m: &Message) -> std::io::Result<std::fs::File> {
        match std::fs::File::open(self.path(m)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now = self.find_renamed(m.base()).ok_or(e)?;
                std::fs::File::open(now)
            }
            r => r,
        }
    }

    /// find_renamed - the current path of the message with this base name,
    /// if it still exists under another name (new flags, or moved to cur/).
    /// new/ is read first, so that a move to cur/ meanwhile is seen there;
    /// and the look is made again while the directories changed during it
    /// (a rename can hide a file from a readdir).
    fn find_renamed(&self, base: &str) -> Option<std::path::PathBuf> {
        let stamps = || {
            use std::os::unix::fs::MetadataExt;
            ["new", "cur"].map(|s| {
                std::fs::metadata(self.dir.join(s))
                    .ok()
                    .map(|m| (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
            })
        };
        for _ in 0..4 {
            let before = stamps();
            for sub in ["new", "cur"] {
                let Ok(rd) = std::fs::read_dir(self.dir.join(sub)) else {
                    continue;
                };
                for e in rd.flatten() {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    if name == base
                        || name
                            .strip_prefix(base)
                            .is_some_and(|r| r.starts_with(":2,"))
                    {
                        return Some(e.path());
                    }
                }
            }
            if stamps() == before {
                return None;
            }
        }
        None
    }

    /// release - give the lock up now.
    pub fn release(&mut self) {
        self.lock = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, rel: &str, body: &str) {
        std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
        std::fs::write(dir.join(rel), body).unwrap();
    }

    #[test]
    fn dele_finds_a_message_renamed_since_login() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        std::fs::create_dir_all(m.join("tmp")).unwrap();
        put(m, "new/300.M1P1.h,S=2", "x\n");
        put(m, "new/400.M1P1.h,S=2", "y\n");
        let mut md = Maildrop::open(m).unwrap();
        // An IMAP client flags the first message while we hold the maildrop.
        std::fs::create_dir_all(m.join("cur")).unwrap();
        std::fs::rename(
            m.join("new/300.M1P1.h,S=2"),
            m.join("cur/300.M1P1.h,S=2:2,F"),
        )
        .unwrap();
        md.messages[0].deleted = true;
        assert_eq!(md.update(), 0);
        assert!(
            !m.join("cur/300.M1P1.h,S=2:2,F").exists(),
            "deleted under its new name"
        );
        assert!(
            m.join("new/400.M1P1.h,S=2").exists(),
            "the other one is untouched"
        );
    }

    #[test]
    fn order_sizes_uidl_and_cache() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        std::fs::create_dir_all(m.join("tmp")).unwrap();
        put(m, "new/200.M1P1.h,S=4", "b\nc\n");
        put(m, "cur/100.M1P1.h,S=2:2,S", "a\n");
        put(m, "cur/1000.M1P1.h,S=9,W=99:2,", "whatever\n");
        let md = Maildrop::open(m).unwrap();
        let names: Vec<&str> = md.messages.iter().map(|m| m.base()).collect();
        assert_eq!(
            names,
            ["100.M1P1.h,S=2", "200.M1P1.h,S=4", "1000.M1P1.h,S=9,W=99"]
        );
        let sizes: Vec<u64> = md.messages.iter().map(|m| m.size).collect();
        assert_eq!(sizes, [3, 6, 99]);
        assert_eq!(md.messages[1].uidl(), "200.M1P1.h,S=4");
        assert!(m.join(LOCK_FILE).exists());
        assert!(matches!(Maildrop::open(m), Err(OpenError::InUse)));
        drop(md);
        assert!(!m.join(LOCK_FILE).exists());
        let cache = std::fs::read_to_string(m.join(SIZE_CACHE)).unwrap();
        assert_eq!(cache, "100.M1P1.h,S=2 3\n200.M1P1.h,S=4 6\n");
    }

    #[test]
    fn name_fields() {
        let table: &[(&str, Option<u64>, Option<u64>)] = &[
            ("1.M1P1.h,S=10,W=12", Some(10), Some(12)),
            ("1.M1P1.h,W=12,S=10", Some(10), Some(12)),
            ("1.M1P1.h", None, None),
            ("S=5.M1P1.h", None, None),
            ("1.h,S=,S=7,W=x,W=9", Some(7), Some(9)),
            ("1.h,,S=3,", Some(3), None),
            ("1.h,XS=3,W=", None, None),
        ];
        for (base, s, w) in table {
            assert_eq!(name_field(base, 'S'), *s, "{base}");
            assert_eq!(name_field(base, 'W'), *w, "{base}");
        }
    }

    #[test]
    fn names_split_into_base_and_flags() {
        let table = [
            ("new", "1.a.h,S=2", "1.a.h,S=2", ""),
            ("cur", "1.a.h,S=2:2,FS", "1.a.h,S=2", "FS"),
            ("cur", "1.a.h:2,", "1.a.h", ""),
            ("cur", "1.a:x.h:2,S", "1.a:x.h", "S"),
            ("cur", "1.a.h:1,x", "1.a.h", ""),
        ];
        for (sub, name, base, flags) in table {
            let m = Message::new(sub, name);
            assert_eq!((m.base(), m.flags()), (base, flags), "{name}");
            assert_eq!(m.rel(), format!("{sub}/{name}"));
            assert_eq!(m.uidl(), base);
        }
        assert!(Message::new("new", &"x".repeat(71)).uidl().starts_with('H'));
    }

    #[test]
    fn a_remembered_list_is_the_scan_and_follows_changes() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        for i in 0..listing::MIN_MESSAGES {
            let sub = if i % 3 == 0 { "new" } else { "cur" };
            let flags = if sub == "cur" { ":2,S" } else { "" };
            put(
                m,
                &format!("{sub}/{}.M{i}P1.h,S=2{flags}", 1000 + i * 7 % 101),
                "a\n",
            );
        }
        for sub in ["new", "cur"] {
            let f = std::fs::File::open(m.join(sub)).unwrap();
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
                .unwrap();
        }
        let rels = |md: &Maildrop| -> Vec<String> {
            md.messages.iter().map(|m| m.rel().to_string()).collect()
        };
        let first = rels(&Maildrop::open(m).unwrap());
        assert!(m.join(listing::LIST_FILE).exists());
        let again = Maildrop::open(m).unwrap();
        assert_eq!(rels(&again), first, "the list gives what the scan gave");
        assert_eq!(again.messages[0].size, 3);
        drop(again);
        put(m, "new/1.M1P1.h,S=2", "b\n");
        let md = Maildrop::open(m).unwrap();
        assert_eq!(md.messages.len(), first.len() + 1, "a delivery is seen");
        assert_eq!(md.messages[0].rel(), "new/1.M1P1.h,S=2");
    }

    #[test]
    fn delivery_time_order() {
        assert_eq!(time_key("100.M9P1.h"), (100, 9));
        assert_eq!(time_key("100.M12P1.h"), (100, 12));
        assert!(time_key("100.M9P1.h") < time_key("100.M12P1.h"));
        assert_eq!(time_key("100.P1.h"), (100, 0));
        assert_eq!(time_key("junk"), (u64::MAX, 0));
        assert_eq!(time_key("100.M"), (100, 0));
    }

    #[test]
    fn dovecot_uidlist_ids_win() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        put(m, "cur/100.a.h,S=2:2,S", "a\n");
        put(m, "new/200.b.h,S=2", "b\n");
        put(m, "dovecot-uidlist", "3 V1 N2 Gx\n1 W9 :100.a.h,S=2\n");
        let md = Maildrop::open(m).unwrap();
        assert_eq!(md.messages[0].uidl(), "0000000100000001");
        assert_eq!(md.messages[0].size, 9);
        assert_eq!(
            md.messages[1].uidl(),
            "200.b.h,S=2",
            "not listed: the base name"
        );
    }

    #[test]
    fn stale_lock_is_broken() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("new")).unwrap();
        // A pid that cannot exist (above pid_max).
        std::fs::write(d.path().join(LOCK_FILE), "99999999\n").unwrap();
        assert!(Maildrop::open(d.path()).is_ok());
    }

    #[test]
    fn a_lock_older_than_its_pid_is_stale() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("new")).unwrap();
        let lock = d.path().join(LOCK_FILE);
        // pid 1 is alive, but the lock says 1970: pid 1 cannot have written it.
        std::fs::write(&lock, "1\n").unwrap();
        let f = std::fs::File::options().write(true).open(&lock).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        drop(f);
        assert!(Maildrop::open(d.path()).is_ok());
        // Our own pid, written just now: in use.
        std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
        assert!(matches!(Maildrop::open(d.path()), Err(OpenError::InUse)));
    }

    #[test]
    fn update_deletes_and_marks_seen() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        put(m, "new/1.a.h,S=2", "a\n");
        put(m, "new/2.b.h,S=2", "b\n");
        put(m, "cur/3.c.h,S=2:2,F", "c\n");
        let mut md = Maildrop::open(m).unwrap();
        md.messages[0].deleted = true;
        md.messages[1].seen = true;
        md.messages[2].seen = true;
        std::fs::remove_file(m.join("new/1.a.h,S=2")).unwrap();
        assert_eq!(md.update(), 0, "a vanished file is fine");
        assert!(m.join("cur/2.b.h,S=2:2,S").exists());
        assert!(m.join("cur/3.c.h,S=2:2,FS").exists());
    }

    #[test]
    fn odd_names_get_a_hashed_uidl() {
        assert_eq!(uidl("1.a.h"), "1.a.h");
        let long = "x".repeat(71);
        assert!(uidl(&long).starts_with('H') && uidl(&long).len() == 17);
        assert_ne!(uidl("a b"), uidl("a c"));
    }
}
