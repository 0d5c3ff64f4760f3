//! users - who the local mail users are: the passwd-file, then system accounts.
//!
//! The passwd-file is Dovecot's: `user[@domain]:password:uid:gid:gecos:home:shell:extra`.
//! Empty uid/gid mean "the user the server runs as". `extra` may hold
//! `userdb_mail=maildir:PATH` or `userdb_mail=mbox:PATH`, a per-user mailbox.
//! Only the lookup lives here; password checks belong to the servers.

use crate::Config;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A local mail user, resolved to where the mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailUser {
    /// The name as found (lowercased for system accounts? no: as written).
    pub name: String,
    /// None: run as the server's own user.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: PathBuf,
    /// The mailbox location: a trailing `/` means Maildir, else mbox.
    pub mailbox: String,
    /// Found in /etc/passwd rather than the users file.
    pub system: bool,
    /// The user's quota, from `userdb_quota_rule=` in the users file.
    pub quota: Option<Quota>,
}

/// A mailbox quota (Dovecot's `quota_rule = *:storage=1G` and
/// `*:messages=N`); None in a field means no limit on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Bytes, over all folders.
    pub storage: Option<u64>,
    /// Messages, over all folders.
    pub messages: Option<u64>,
}

impl Quota {
    /// parse_rule - one `*:storage=100M` or `*:messages=1000` rule into
    /// `self`; false for anything else (a per-folder rule, a typo). Sizes
    /// take b, k, M, G, T suffixes as Dovecot's do; 0 means no limit.
    pub fn parse_rule(&mut self, rule: &str) -> bool {
        let Some(rest) = rule.strip_prefix("*:") else {
            return false;
        };
        let Some((key, val)) = rest.split_once('=') else {
            return false;
        };
        let num = |v: &str, scale: bool| -> Option<u64> {
            let v = v.trim();
            let (digits, mult) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
                None => (v, 1u64),
                Some((i, _)) if scale => {
                    let m = match &v[i..] {
                        "b" | "B" => 1,
                        "k" | "K" => 1 << 10,
                        "M" => 1 << 20,
                        "G" => 1 << 30,
                        "T" => 1 << 40,
                        _ => return None,
                    };
                    (&v[..i], m)
                }
                Some(_) => return None,
            };
            digits.parse::<u64>().ok()?.checked_mul(mult)
        };
        let limit = |n: u64| if n == 0 { None } else { Some(n) };
        match key {
            "storage" | "bytes" => match num(val, true) {
                Some(n) => self.storage = limit(n),
                None => return false,
            },
            "messages" => match num(val, false) {
                Some(n) => self.messages = limit(n),
                None => return false,
            },
            _ => return false,
        }
        true
    }
}

/// One entry of the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    password: String,
    uid: Option<u32>,
    gid: Option<u32>,
    home: String,
    mail: Option<String>,
    quota: Option<Quota>,
}

/// A password hash, printed as [redacted].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// lookup_login - like `lookup`, with the stored password hash: from the
/// users file, or for a system account from /etc/shadow (readable by root
/// only). For the servers' login, before they give up root.
pub fn lookup_login(
    cfg: &Config,
    local: &str,
    domain: Option<&str>,
) -> std::io::Result<Option<(MailUser, Secret)>> {
    if let Some(path) = &cfg.users
        && let Some(e) = find_in_file(cfg, path, local, domain)?
    {
        let password = Secret(e.password.clone());
        return Ok(Some((file_user(cfg, e, domain), password)));
    }
    match system_user(cfg, local, domain)? {
        Some(u) => {
            let hash = posthorn_sys::crypt::shadow_hash(&u.name).unwrap_or_default();
            Ok(Some((u, Secret(hash))))
        }
        None => Ok(None),
    }
}

/// lookup - find `local` (without +detail) in the users file, then, when
/// `system_users` is on, among the system accounts. Err only for a file
/// that exists but cannot be read, which is a temporary problem.
pub fn lookup(
    cfg: &Config,
    local: &str,
    domain: Option<&str>,
) -> std::io::Result<Option<MailUser>> {
    if let Some(path) = &cfg.users
        && let Some(e) = find_in_file(cfg, path, local, domain)?
    {
        return Ok(Some(file_user(cfg, e, domain)));
    }
    system_user(cfg, local, domain)
}

/// file_user - a users-file entry as a mail user.
fn file_user(cfg: &Config, e: Entry, domain: Option<&str>) -> MailUser {
    let home = if e.home.is_empty() {
        PathBuf::from("/nonexistent")
    } else {
        PathBuf::from(&e.home)
    };
    let mailbox = expand(
        e.mail.as_deref().unwrap_or(&cfg.mailbox),
        &home,
        &e.name,
        domain.unwrap_or(&cfg.hostname),
    );
    MailUser {
        name: e.name,
        uid: e.uid,
        gid: e.gid,
        home,
        mailbox,
        system: false,
        quota: e.quota,
    }
}

/// system_user - a system account, when `system_users` is on.
fn system_user(
    cfg: &Config,
    local: &str,
    domain: Option<&str>,
) -> std::io::Result<Option<MailUser>> {
    if cfg.system_users {
        // System account names are case-sensitive but mail is not: try as given, then lowercased.
        let mut acct = posthorn_sys::privs::lookup_user(local)?;
        if acct.is_none() && local.chars().any(|c| c.is_ascii_uppercase()) {
            acct = posthorn_sys::privs::lookup_user(&local.to_ascii_lowercase())?;
        }
        if let Some(a) = acct {
            let mailbox = expand(
                &cfg.mailbox,
                &a.home,
                &a.name,
                domain.unwrap_or(&cfg.hostname),
            );
            return Ok(Some(MailUser {
                name: a.name,
                uid: Some(a.uid),
                gid: Some(a.gid),
                home: a.home,
                mailbox,
                system: true,
                quota: None,
            }));
        }
    }
    Ok(None)
}

/// expand - `~` (home), `%u` (user), `%d` (domain), `%%`; a relative result is under home.
pub fn expand(template: &str, home: &Path, user: &str, domain: &str) -> String {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    if template.starts_with('~') {
        out.push_str(&home.to_string_lossy());
        chars.next();
    }
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('u') => out.push_str(user),
                Some('d') => out.push_str(domain),
                Some('%') => out.push('%'),
                Some(o) => {
                    out.push('%');
                    out.push(o);
                }
                None => out.push('%'),
            }
        } else {
            out.push(c);
        }
    }
    if !out.starts_with('/') {
        let mut h = home.to_string_lossy().into_owned();
        if !h.ends_with('/') {
            h.push('/');
        }
        out = h + &out;
    }
    out
}

/// read_held - the whole of a file opened earlier (while privileged), from
/// its start: the descriptor outlives the rights that opened it.
fn read_held(f: &std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read_at(&mut buf, out.len() as u64) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if out.len() > 64 << 20 {
            return Err(std::io::Error::other("file larger than 64 MiB"));
        }
    }
}

fn find_in_file(
    cfg: &Config,
    path: &Path,
    local: &str,
    domain: Option<&str>,
) -> std::io::Result<Option<Entry>> {
    if let Some(f) = &cfg.held.users {
        return Ok(find_in_text(&read_held(f)?, local, domain));
    }
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A program already running as a mail user (deliver as Postfix's
        // mailbox_command) may not read the secret users file: system
        // accounts still work for it, and qrun passes what it needs.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(find_in_text(&text, local, domain))
}

/// find_in_text - the users-file entry for `local@domain`, else for `local`.
fn find_in_text(text: &[u8], local: &str, domain: Option<&str>) -> Option<Entry> {
    let text = String::from_utf8_lossy(text);
    let full = domain.map(|d| format!("{local}@{d}"));
    let mut fallback = None;
    for line in text.lines() {
        let Some(e) = parse_line(line) else { continue };
        if full
            .as_deref()
            .is_some_and(|f| e.name.eq_ignore_ascii_case(f))
        {
            return Some(e);
        }
        if e.name.eq_ignore_ascii_case(local) && fallback.is_none() {
            fallback = Some(e);
        }
    }
    fallback
}

/// parse_line_for_fuzzing - whether a users-file line parses (for fuzz targets).
#[doc(hidden)]
pub fn parse_line_for_fuzzing(line: &str) -> bool {
    parse_line(line).is_some()
}

fn parse_line(line: &str) -> Option<Entry> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return None;
    }
    let f: Vec<&str> = line.splitn(8, ':').collect();
    let name = f.first()?.trim();
    if name.is_empty() {
        return None;
    }
    let num = |i: usize| f.get(i).and_then(|s| s.trim().parse::<u32>().ok());
    let mail = f.get(7).and_then(|extra| {
        extra
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("userdb_mail="))
            .map(|m| {
                if let Some(p) = m.strip_prefix("maildir:") {
                    let p = p.split(':').next().unwrap_or(p);
                    if p.ends_with('/') {
                        p.to_string()
                    } else {
                        format!("{p}/")
                    }
                } else if let Some(p) = m.strip_prefix("mbox:") {
                    p.split(':')
                        .next()
                        .unwrap_or(p)
                        .trim_end_matches('/')
                        .to_string()
                } else {
                    m.to_string()
                }
            })
    });
    // Quota rules: userdb_quota_rule=, userdb_quota_rule2= ... (the
    // userdb_ prefix optional), as Dovecot's passwd-file has them.
    let mut quota = Quota::default();
    let mut any_rule = false;
    if let Some(extra) = f.get(7) {
        for kv in extra.split_whitespace() {
            let kv = kv.strip_prefix("userdb_").unwrap_or(kv);
            if let Some((k, v)) = kv.split_once('=')
                && k.starts_with("quota_rule")
                && quota.parse_rule(v)
            {
                any_rule = true;
            }
        }
    }
    Some(Entry {
        quota: any_rule.then_some(quota),
        name: name.to_string(),
        password: f.get(1).map(|s| s.trim().to_string()).unwrap_or_default(),
        uid: num(2),
        gid: num(3),
        home: f.get(5).map(|s| s.trim().to_string()).unwrap_or_default(),
        mail,
    })
}

/// read_forward_file - the file's text, refusing one that someone else
/// could have written (as sendmail and Postfix do).
pub fn read_forward_file(path: &Path, owner: Option<u32>) -> Result<Option<String>, String> {
    // O_NONBLOCK: a FIFO in its place must not hold the queue runner until
    // someone writes to it (it is then refused as not a regular file).
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path);
    let f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    let m = f
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !m.is_file() || m.mode() & 0o022 != 0 || owner.is_some_and(|o| m.uid() != o && m.uid() != 0)
    {
        posthorn_sys::warning!(
            "{}: ignored: not a regular file owned by its user and writable by no one else",
            path.display()
        );
        return Ok(None);
    }
    let mut text = String::new();
    use std::io::Read;
    f.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quota_rules_in_the_extra_field() {
        let e = parse_line(
            "ann:{PLAIN}x::::/h::userdb_quota_rule=*:storage=10M userdb_quota_rule2=*:messages=5",
        )
        .unwrap();
        assert_eq!(
            e.quota,
            Some(Quota {
                storage: Some(10 << 20),
                messages: Some(5)
            })
        );
        let e = parse_line("bob:{PLAIN}x::::/h::quota_rule=*:storage=2048").unwrap();
        assert_eq!(e.quota.unwrap().storage, Some(2048));
        assert_eq!(
            parse_line("c:x::::/h::userdb_quota_rule=INBOX:storage=1M")
                .unwrap()
                .quota,
            None
        );
        assert_eq!(
            parse_line("d:x::::/h::userdb_quota_rule=*:storage=1Q")
                .unwrap()
                .quota,
            None
        );
        assert_eq!(parse_line("e:x::::/h::").unwrap().quota, None);
        let mut q = Quota::default();
        assert!(q.parse_rule("*:storage=0"));
        assert_eq!(q.storage, None);
    }

    use super::*;

    #[test]
    fn passwd_file_lines() {
        let e =
            parse_line("ann:{SHA512-CRYPT}$6$x:1001:1001::/home/ann::userdb_mail=maildir:~/Mail")
                .unwrap();
        assert_eq!(e.name, "ann");
        assert_eq!(e.uid, Some(1001));
        assert_eq!(e.home, "/home/ann");
        assert_eq!(e.mail.as_deref(), Some("~/Mail/"));
        let e = parse_line("bob@example.org:{PLAIN}x:::Bob:/srv/bob:").unwrap();
        assert_eq!(e.uid, None);
        assert_eq!(e.gid, None);
        assert!(parse_line("# comment").is_none());
    }

    #[test]
    fn expansion() {
        let h = Path::new("/home/ann");
        assert_eq!(
            expand("~/Maildir/", h, "ann", "x.org"),
            "/home/ann/Maildir/"
        );
        assert_eq!(expand("/var/mail/%u", h, "ann", "x.org"), "/var/mail/ann");
        assert_eq!(expand("/srv/%d/%u/", h, "ann", "x.org"), "/srv/x.org/ann/");
        assert_eq!(expand("Maildir/", h, "ann", "x.org"), "/home/ann/Maildir/");
    }

    #[test]
    fn file_lookup_prefers_full_address() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, "ann:x:::::\nann@b.org:x::::/b:\n").unwrap();
        let cfg = Config {
            users: Some(p),
            system_users: false,
            ..Config::default()
        };
        let u = lookup(&cfg, "ann", Some("b.org")).unwrap().unwrap();
        assert_eq!(u.home, PathBuf::from("/b"));
        let u = lookup(&cfg, "ANN", Some("c.org")).unwrap().unwrap();
        assert_eq!(u.name, "ann");
        assert!(lookup(&cfg, "nobody-here", None).unwrap().is_none());
    }
}
