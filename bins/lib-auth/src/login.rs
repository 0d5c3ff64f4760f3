//! login - from a name and a password to a mail user, or a refusal that
//! says nothing about which part was wrong.

use crate::password::{self, Verdict};
use posthorn_mail::Config;
use posthorn_mail::users::{self, MailUser};
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::privs::Account;
use std::time::Duration;

/// Longest login name accepted.
pub const MAX_NAME: usize = 255;

/// check_name - a login name is used as a lookup key and may end up in a
/// path (a home, a mailbox): refuse `/`, `..`, NUL, control characters and
/// white space before any lookup.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("bad user name length");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == '\\')
    {
        return Err("bad character in user name");
    }
    if name.contains("..") || name.starts_with('.') || name.starts_with('-') {
        return Err("bad user name");
    }
    Ok(())
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong name or wrong password: the client learns no more than that.
    Failed,
    /// The account's uid is 0 or below `[auth] first_valid_uid`: refused
    /// before its password was looked at, and the client must be told
    /// exactly what a wrong password gets (the log says more).
    Forbidden { user: String, uid: u32 },
    /// Something broke (unreadable users file, unknown hash scheme): a
    /// temporary error for the client, the details in the log.
    Temporary(String),
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: MailUser,
    /// The stored hash was {PLAIN}: worth a warning in the log.
    pub plain_hash: bool,
}

/// may_log_in - whether an account with this uid may log in: never root,
/// never below `[auth] first_valid_uid` (system accounts: daemons, and
/// root by another name). A user with no uid of its own runs as the
/// `user` account, which is never root, and may.
pub fn may_log_in(cfg: &Config, uid: Option<u32>) -> bool {
    match uid {
        None => true,
        Some(u) => u != 0 && u >= cfg.auth_first_valid_uid,
    }
}

/// authenticate - look `name` up (users file, then system accounts),
/// refuse an account below the minimum uid before its password is
/// looked at, and check `password`. An unknown user and a refused one
/// cost a hash check too, so timing tells neither which users exist nor
/// which may log in.
pub fn authenticate(cfg: &Config, name: &str, password: &[u8]) -> Result<Login, Refusal> {
    if check_name(name).is_err() {
        let _ = password::verify(password::DUMMY_HASH, password);
        return Err(Refusal::Failed);
    }
    let (local, domain) = posthorn_mail::address::split(name);
    let found = users::lookup_login(cfg, local, domain)
        .map_err(|e| Refusal::Temporary(format!("user lookup: {e}")))?;
    let Some((user, secret)) = found else {
        let _ = password::verify(password::DUMMY_HASH, password);
        return Err(Refusal::Failed);
    };
    if !may_log_in(cfg, user.uid) {
        let _ = password::verify(password::DUMMY_HASH, password);
        return Err(Refusal::Forbidden {
            user: user.name,
            uid: user.uid.unwrap_or(0),
        });
    }
    match password::verify(&secret.0, password) {
        Verdict::Match => Ok(Login {
            user,
            plain_hash: false,
        }),
        Verdict::MatchPlain => Ok(Login {
            user,
            plain_hash: true,
        }),
        Verdict::Mismatch => Err(Refusal::Failed),
        Verdict::Unsupported => Err(Refusal::Temporary(format!(
            "unsupported password scheme for user {}",
            user.name
        ))),
    }
}

/// Failures per connection: a growing delay after each, then the end.
#[derive(Debug, Clone)]
pub struct Throttle {
    failures: u32,
    max: u32,
}

impl Throttle {
    /// new - allow `max` failed attempts per connection (3 is usual).
    pub fn new(max: u32) -> Throttle {
        Throttle {
            failures: 0,
            max: max.max(1),
        }
    }

    /// failures - how many so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// fail - record a failure: how long to wait before answering
    /// (1 s, 2 s, 4 s ...), and whether to close the connection after.
    pub fn fail(&mut self) -> (Duration, bool) {
        self.failures += 1;
        let delay = Duration::from_secs(1u64 << (self.failures - 1).min(5));
        (delay, self.failures >= self.max)
    }
}

/// failure_line - the one log line per failed login, in the shape the
/// fail2ban filter in scripts/fail2ban matches:
/// `auth failed: method=PLAIN, user=<ann>, client=host[192.0.2.7]`.
pub fn failure_line(method: &str, user: &str, client: &str) -> String {
    let user: String = user
        .chars()
        .take(64)
        .map(|c| {
            if c.is_control() || c == '<' || c == '>' || c.is_whitespace() {
                '?'
            } else {
                c
            }
        })
        .collect();
    format!("auth failed: method={method}, user=<{user}>, client={client}")
}

/// become_owner - as root (`mail_account` set: the `user` account),
/// become the mailbox owner for good: the user's uid and gid, or the
/// `user` account for virtual users without a uid; never root, never
/// below `[auth] first_valid_uid`. As anyone else, stay.
pub fn become_owner(
    cfg: &Config,
    mail_account: Option<&Account>,
    u: &MailUser,
) -> Result<(), Exit> {
    let Some(acct) = mail_account else {
        return Ok(());
    };
    let (name, uid, gid) = match (u.uid, u.gid) {
        (Some(uid), gid) => (u.name.as_str(), uid, gid.unwrap_or(acct.gid)),
        (None, _) => (acct.name.as_str(), acct.uid, acct.gid),
    };
    if uid == 0 || (u.uid.is_some() && !may_log_in(cfg, u.uid)) {
        return Err(Exit::new(
            exit::NOPERM,
            format!("refusing to serve a mailbox as uid {uid}"),
        ));
    }
    // initgroups needs a name the system knows; a virtual user's uid may
    // have none, and then its groups are just its gid.
    let name = match posthorn_sys::privs::lookup_uid(uid) {
        Ok(Some(a)) => a.name,
        _ => name.to_string(),
    };
    posthorn_sys::privs::become_user(&name, uid, gid)
        .map_err(|e| Exit::from_io(format!("becoming uid {uid}"), &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        for bad in [
            "",
            "a/b",
            "..",
            "a..b",
            ".hidden",
            "-x",
            "a\0b",
            "a\nb",
            "a b",
            "a\\b",
            &"x".repeat(256),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["ann", "ann@example.org", "Ann.Smith", "a+b", "ü"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn throttle_grows_then_ends() {
        let mut t = Throttle::new(3);
        assert_eq!(t.fail(), (Duration::from_secs(1), false));
        assert_eq!(t.fail(), (Duration::from_secs(2), false));
        assert_eq!(t.fail(), (Duration::from_secs(4), true));
    }

    #[test]
    fn users_file_logins() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users");
        let h = posthorn_sys::crypt::crypt(b"pw1", "$6$abcdefgh$").unwrap();
        std::fs::write(&p, format!("ann:{{SHA512-CRYPT}}{h}::::/home/ann::\nbob:{{PLAIN}}pw2::::/home/bob::\ncarl:{{MD4}}x:::::\n")).unwrap();
        let cfg = Config {
            users: Some(p),
            system_users: false,
            ..Config::default()
        };
        assert_eq!(authenticate(&cfg, "ann", b"pw1").unwrap().user.name, "ann");
        assert!(!authenticate(&cfg, "ann", b"pw1").unwrap().plain_hash);
        assert!(authenticate(&cfg, "bob", b"pw2").unwrap().plain_hash);
        assert_eq!(
            authenticate(&cfg, "ann", b"pw2").unwrap_err(),
            Refusal::Failed
        );
        assert_eq!(
            authenticate(&cfg, "nobody-here", b"pw1").unwrap_err(),
            Refusal::Failed
        );
        assert_eq!(
            authenticate(&cfg, "../ann", b"pw1").unwrap_err(),
            Refusal::Failed
        );
        assert!(matches!(
            authenticate(&cfg, "carl", b"x"),
            Err(Refusal::Temporary(_))
        ));
    }

    /// Issue 14, hole 4: root and system accounts are refused before
    /// their password is looked at, right or wrong alike; a user with no
    /// uid of its own (it runs as `user`) is not.
    #[test]
    fn accounts_below_first_valid_uid_are_refused_whatever_the_password() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users");
        std::fs::write(
            &p,
            "root:{PLAIN}pw:0:0::/root::\ndaemon:{PLAIN}pw:1:1::/::\nlow:{PLAIN}pw:999:999::/::\nok:{PLAIN}pw:1000:1000::/::\nvirt:{PLAIN}pw::::/::\n",
        )
        .unwrap();
        let cfg = Config {
            users: Some(p),
            system_users: false,
            ..Config::default()
        };
        for (name, uid) in [("root", 0), ("daemon", 1), ("low", 999)] {
            for pw in [&b"pw"[..], b"wrong"] {
                assert_eq!(
                    authenticate(&cfg, name, pw).unwrap_err(),
                    Refusal::Forbidden {
                        user: name.into(),
                        uid
                    },
                    "{name}"
                );
            }
        }
        assert!(authenticate(&cfg, "ok", b"pw").is_ok());
        assert!(authenticate(&cfg, "virt", b"pw").is_ok());
        let lower = Config {
            auth_first_valid_uid: 999,
            ..cfg.clone()
        };
        assert!(authenticate(&lower, "low", b"pw").is_ok());
        // Root stays out whatever the minimum says.
        let zero = Config {
            auth_first_valid_uid: 0,
            ..cfg
        };
        assert!(matches!(
            authenticate(&zero, "root", b"pw"),
            Err(Refusal::Forbidden { uid: 0, .. })
        ));
    }

    #[test]
    fn failure_lines_stay_one_line() {
        assert_eq!(
            failure_line("PLAIN", "ann", "unknown[192.0.2.7]"),
            "auth failed: method=PLAIN, user=<ann>, client=unknown[192.0.2.7]"
        );
        assert_eq!(
            failure_line("LOGIN", "a>\nb <c", "local"),
            "auth failed: method=LOGIN, user=<a??b??c>, client=local"
        );
    }

    proptest! {
        #[test]
        fn check_name_never_accepts_path_tricks(s in "\\PC{0,40}") {
            if check_name(&s).is_ok() {
                prop_assert!(!s.contains('/') && !s.contains("..") && !s.contains('\0') && !s.contains('\n'));
            }
        }
    }
}

#[cfg(test)]
mod root_tests {
    use super::*;

    /// As root (CI): a system account made with useradd and chpasswd
    /// (Debian's default yescrypt) logs in through /etc/shadow.
    #[test]
    fn system_account_with_yescrypt() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root (CI runs it)");
            return;
        }
        let name = format!("phauth{}", std::process::id() % 100000);
        let st = std::process::Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", &name])
            .status()
            .unwrap();
        assert!(st.success());
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::process::Command::new("userdel").arg(&self.0).status();
            }
        }
        let _gone = Gone(name.clone());
        let mut ch = std::process::Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        ch.stdin
            .take()
            .unwrap()
            .write_all(format!("{name}:Tr0ub4dor&3\n").as_bytes())
            .unwrap();
        assert!(ch.wait().unwrap().success());
        let hash = posthorn_sys::crypt::shadow_hash(&name).unwrap();
        assert!(
            hash.starts_with("$y$"),
            "Debian 12 hashes with yescrypt: {hash}"
        );
        let cfg = Config {
            users: None,
            system_users: true,
            ..Config::default()
        };
        let l = authenticate(&cfg, &name, b"Tr0ub4dor&3").unwrap();
        assert!(l.user.system && l.user.uid.is_some_and(|u| u != 0));
        assert_eq!(
            authenticate(&cfg, &name, b"tr0ub4dor&3").unwrap_err(),
            Refusal::Failed
        );
        // With system accounts off, the same login is unknown.
        let off = Config {
            users: None,
            system_users: false,
            ..Config::default()
        };
        assert_eq!(
            authenticate(&off, &name, b"Tr0ub4dor&3").unwrap_err(),
            Refusal::Failed
        );
    }
}

#[cfg(test)]
mod fail2ban_tests {
    use super::*;

    /// The fail2ban filter in scripts/ matches the lines failure_line makes,
    /// bans the client and not an address smuggled in through the user name.
    #[test]
    fn filter_matches_failure_lines() {
        if std::process::Command::new("fail2ban-regex")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!(
                "skipped: fail2ban-regex is not installed (apt-get install fail2ban; CI installs it)"
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("mail.log");
        let lines = [
            format!(
                "Nov 28 12:00:01 mx posthorn/imapd[812]: {}",
                failure_line("PLAIN", "ann", "unknown[192.0.2.7]")
            ),
            format!(
                "Nov 28 12:00:02 mx posthorn/smtpd[813]: {}",
                failure_line("LOGIN", "x>, client=unknown[6.6.6.6]", "unknown[192.0.2.8]")
            ),
            format!(
                "Nov 28 12:00:03 mx posthorn/pop3d[814]: {}",
                failure_line("PLAIN", "bob", "unknown[2001:db8::7]")
            ),
            "Nov 28 12:00:04 mx posthorn/smtpd[815]: connect from unknown[192.0.2.9]".to_string(),
        ];
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        let filter = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/fail2ban/filter.d/posthorn.conf");
        // `-o ip`: print the address fail2ban would ban, one per matched line.
        let out = std::process::Command::new("fail2ban-regex")
            .args(["-o", "ip"])
            .arg(&log)
            .arg(&filter)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ips: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            ips,
            ["192.0.2.7", "192.0.2.8", "2001:db8::7"],
            "the clients, never the address in the user name"
        );
    }
}
