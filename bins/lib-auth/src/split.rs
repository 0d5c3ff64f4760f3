//! split - pop3d's and imapd's three processes, in the shape Dovecot's
//! login processes, OpenSSH's privilege separation and qmail's
//! checkpassword chain share:
//!
//! 1. The first process (root when started as root) reads its
//!    configuration, forks the pre-login process, lets go of the
//!    client's connection, and from then on only checks passwords sent
//!    by the pre-login process (checker.rs): it never reads the network.
//! 2. The pre-login process speaks to the client until a login: the
//!    greeting, STARTTLS or implicit TLS, the PROXY header, capabilities,
//!    SASL. Started as root it is shut in first: chroot(2) into an empty
//!    directory that no longer exists, every uid and gid the
//!    `login_user` account's with no supplementary groups, no
//!    capabilities, no core dumps, no new privileges.
//! 3. After a good login the first process becomes the mailbox owner
//!    for good (never root, never below `[auth] first_valid_uid`) and
//!    executes the program afresh as the session (`--session`): who it
//!    serves comes on fd 3 from the first process (a Record), the
//!    client's connection from the pre-login process over a new socket
//!    pair (posthorn-net's handoff). The pre-login process passes the
//!    connection itself over, or, under TLS, stays as the relay between
//!    the client's TLS and the session's plaintext.
//!
//! Without root the three processes run as the invoking user, in the
//! same shape.

use crate::checker::{self, Checker, Desk, End, READY};
use crate::login::{self, Login};
use crate::request::{Answer, Request, Service};
use posthorn_mail::Config;
use posthorn_mail::users::{MailUser, Quota};
use posthorn_sys::confine;
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::privs::Account;
use posthorn_sys::{error, warning};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// What the first process needs to start a session later.
#[derive(Debug, Clone)]
pub struct Plan {
    pub service: Service,
    /// The session's command line, the program's name first; `--session`
    /// and `-C` with the configuration file are added.
    pub session_args: Vec<String>,
    /// The client as seen on the socket; None when it is a trusted proxy.
    pub client: Option<String>,
}

/// split - fork the pre-login process and confine it. Returns only in
/// the pre-login process, with its way to the password check; the first
/// process checks passwords until a good login (then it becomes the
/// session) or until the pre-login process ends (then it exits with its
/// status).
pub fn split(cfg: &Config, plan: Plan) -> Result<Checker, Exit> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let root = posthorn_sys::privs::euid() == 0;
    // Every account is looked up now, before anything is shut in.
    let (mail_account, login_account) = if root {
        (Some(cfg.mail_account()?), Some(cfg.login_account()?))
    } else {
        (None, None)
    };
    let exe = confine::self_exe().map_err(|e| Exit::from_io("opening /proc/self/exe", &e))?;
    let (desk_end, front_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Exit::from_io("socketpair", &e.into()))?;
    match confine::fork().map_err(|e| Exit::from_io("fork", &e))? {
        confine::Forked::Child => {
            drop(desk_end);
            drop(exe);
            confine_front(login_account.as_ref())?;
            // Not one octet is read from the client before the first
            // process has let go of the connection.
            let mut go = [0u8; 8];
            match confine::recv_fds(front_end.as_fd(), &mut go, 0) {
                Ok((n, _)) if &go[..n] == READY => {}
                _ => return Err(Exit::new(exit::OSERR, "the password check did not start")),
            }
            Ok(Checker::new(front_end))
        }
        confine::Forked::Parent(pid) => {
            drop(front_end);
            // The client's connection is the pre-login process's alone.
            if let Err(e) =
                confine::null_stdio().and_then(|()| confine::send_fds(desk_end.as_fd(), READY, &[]))
            {
                error!("letting go of the connection: {e}");
                kill(pid);
                std::process::exit(i32::from(exit::OSERR));
            }
            let desk = Desk {
                cfg,
                service: plan.service,
                client: plan.client.clone(),
            };
            let end = checker::serve(&desk, desk_end.as_fd(), |l, req, sock| {
                become_session(cfg, &plan, mail_account.as_ref(), &exe, l, req, sock)
            });
            if let End::Broken(why) = &end {
                warning!("pre-login process ended: {why}");
                kill(pid);
            }
            drop(desk_end);
            std::process::exit(wait(pid));
        }
    }
}

/// confine_front - shut the pre-login process in. As root: chroot into
/// an empty directory, then the `login_user` account's ids, no groups.
/// Either way: no core dumps, no new privileges.
fn confine_front(login_account: Option<&Account>) -> Result<(), Exit> {
    if let Some(a) = login_account {
        confine::chroot_empty().map_err(|e| Exit::from_io("chroot into an empty directory", &e))?;
        confine::drop_to(a.uid, a.gid)
            .map_err(|e| Exit::from_io(format!("becoming {}", a.name), &e))?;
    }
    confine::no_core().map_err(|e| Exit::from_io("turning core dumps off", &e))?;
    confine::no_new_privs().map_err(|e| Exit::from_io("PR_SET_NO_NEW_PRIVS", &e))?;
    Ok(())
}

/// kill - end the pre-login process (it has misbehaved).
fn kill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// wait - the pre-login process's exit status, as ours.
fn wait(pid: u32) -> i32 {
    use nix::sys::wait::{WaitStatus, waitpid};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid as i32), None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(..)) => return i32::from(exit::SOFTWARE),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 0,
        }
    }
}

/// become_session - after a good login: give the session what it needs,
/// become the mailbox owner for good, send the pre-login process its end
/// of the session's socket, and run the program afresh as the session.
/// Returns (an Err, answered as a temporary failure) only while nothing
/// has changed yet; past the change of ids, a failure ends the process.
fn become_session(
    cfg: &Config,
    plan: &Plan,
    mail_account: Option<&Account>,
    exe: &OwnedFd,
    l: &Login,
    req: &Request,
    sock: BorrowedFd,
) -> Result<(), String> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let client = plan.client.clone().unwrap_or_else(|| req.client.clone());
    let record = Record {
        user: l.user.clone(),
        method: req.method.clone(),
        client,
    };
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    // A few hundred octets: the pipe holds them until the session reads.
    std::fs::File::from(wr)
        .write_all(&record.encode())
        .map_err(|e| format!("writing the login record: {e}"))?;
    let (front, session) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    let args = session_args(cfg, plan);
    // From here on there is no way back.
    if let Err(e) = login::become_owner(cfg, mail_account, &l.user) {
        let _ = checker::answer(sock, &Answer::Temp, None);
        warning!("login: user=<{}>: {}", l.user.name, e.message);
        std::process::exit(i32::from(e.code));
    }
    let fail = |what: &str, e: std::io::Error| -> ! {
        error!("starting the session for {}: {what}: {e}", l.user.name);
        std::process::exit(i32::from(exit::OSERR));
    };
    if let Err(e) = checker::answer(sock, &Answer::Ok(l.user.name.clone()), Some(front.as_fd())) {
        fail("handing over", e);
    }
    drop(front);
    if let Err(e) = confine::install(vec![(session, vec![0, 1]), (rd, vec![3])]) {
        fail("descriptors", e);
    }
    let mut env = vec!["PATH=/usr/bin:/bin".to_string()];
    if let Ok(tz) = std::env::var("TZ") {
        env.push(format!("TZ={tz}"));
    }
    let e = confine::exec_fd(exe, &args, &env);
    fail("exec", e);
}

/// session_args - the session's command line.
fn session_args(cfg: &Config, plan: &Plan) -> Vec<String> {
    let mut a = plan.session_args.clone();
    a.insert(1.min(a.len()), "--session".to_string());
    if let Some(f) = &cfg.file {
        // Absolute: the session may not be able to search our directory.
        let f = std::path::absolute(f).unwrap_or_else(|_| f.clone());
        a.push("-C".into());
        a.push(f.display().to_string());
    }
    a
}

/// Who a session serves, from the first process (which checked the
/// password) on fd 3: never from the pre-login process, and never read
/// by the session from the users file (whose hashes it may not see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub user: MailUser,
    /// The login method, for the log.
    pub method: String,
    /// The client, for the log.
    pub client: String,
}

/// Longest record.
const MAX_RECORD: usize = 16 * 1024;

impl Record {
    /// encode - fields ending in NUL: "1", name, uid, gid, home, mailbox,
    /// quota storage, quota messages, system ("1" or "0"), method,
    /// client; an absent number is empty.
    pub fn encode(&self) -> Vec<u8> {
        let n = |x: Option<u64>| x.map(|v| v.to_string()).unwrap_or_default();
        let u = &self.user;
        let q = u.quota.unwrap_or_default();
        let fields = [
            "1".to_string(),
            u.name.clone(),
            n(u.uid.map(u64::from)),
            n(u.gid.map(u64::from)),
            u.home.display().to_string(),
            u.mailbox.clone(),
            n(if u.quota.is_some() { q.storage } else { None }),
            n(if u.quota.is_some() { q.messages } else { None }),
            if u.system { "1" } else { "0" }.to_string(),
            self.method.clone(),
            self.client.clone(),
        ];
        let mut v = Vec::new();
        for f in fields {
            v.extend_from_slice(f.replace('\0', "").as_bytes());
            v.push(0);
        }
        // A quota with neither limit still says "there is a quota".
        if u.quota.is_some() {
            v.extend_from_slice(b"quota\0");
        }
        v
    }

    /// decode - a record, or why not.
    pub fn decode(b: &[u8]) -> Result<Record, String> {
        if b.len() > MAX_RECORD {
            return Err("login record too long".into());
        }
        let s = std::str::from_utf8(b).map_err(|_| "login record is not UTF-8")?;
        let body = s.strip_suffix('\0').ok_or("login record cut short")?;
        let f: Vec<&str> = body.split('\0').collect();
        let (f, quota) = match f.as_slice() {
            [rest @ .., "quota"] if rest.len() == 11 => (rest.to_vec(), true),
            rest if rest.len() == 11 => (rest.to_vec(), false),
            _ => return Err("login record has the wrong number of fields".into()),
        };
        if f[0] != "1" {
            return Err("unknown login record version".into());
        }
        let num = |x: &str| -> Result<Option<u64>, String> {
            if x.is_empty() {
                Ok(None)
            } else {
                x.parse().map(Some).map_err(|_| format!("bad number {x:?}"))
            }
        };
        let id = |x: &str| -> Result<Option<u32>, String> {
            num(x)?
                .map(|v| u32::try_from(v).map_err(|_| format!("bad id {x}")))
                .transpose()
        };
        if f[1].is_empty() {
            return Err("login record without a name".into());
        }
        Ok(Record {
            user: MailUser {
                name: f[1].to_string(),
                uid: id(f[2])?,
                gid: id(f[3])?,
                home: f[4].into(),
                mailbox: f[5].to_string(),
                quota: if quota {
                    Some(Quota {
                        storage: num(f[6])?,
                        messages: num(f[7])?,
                    })
                } else {
                    None
                },
                system: f[8] == "1",
            },
            method: f[9].to_string(),
            client: f[10].to_string(),
        })
    }
}

/// session_record - in the session: who it serves, from fd 3; and a
/// check that it does not run as root.
pub fn session_record() -> Result<Record, Exit> {
    let fd = confine::take_fd(3).ok_or_else(|| {
        Exit::new(
            exit::USAGE,
            "--session is started by the server itself, with its login record on fd 3",
        )
    })?;
    let mut b = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_RECORD as u64 + 1)
        .read_to_end(&mut b)
        .map_err(|e| Exit::from_io("reading the login record", &e))?;
    let r = Record::decode(&b).map_err(|e| Exit::new(exit::SOFTWARE, e))?;
    if posthorn_sys::privs::euid() == 0 || posthorn_sys::privs::uid() == 0 {
        return Err(Exit::new(exit::NOPERM, "refusing to run a session as root"));
    }
    Ok(r)
}

/// finish - at the session's end: let go of the connection (so a relay
/// sees the end and sends what is left) and wait, at most `limit`, for
/// the pre-login process, which is now our child.
pub fn finish(limit: std::time::Duration) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let _ = confine::null_stdio();
    let until = std::time::Instant::now() + limit;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(WaitStatus::StillAlive) => return,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            // ECHILD: no one left.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut r = Record {
            user: MailUser {
                name: "ann@example.org".into(),
                uid: Some(1001),
                gid: None,
                home: "/home/ann".into(),
                mailbox: "/home/ann/Maildir/".into(),
                quota: Some(Quota {
                    storage: Some(1 << 30),
                    messages: None,
                }),
                system: false,
            },
            method: "PLAIN".into(),
            client: "unknown[192.0.2.7]".into(),
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        r.user.quota = Some(Quota::default());
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        r.user.quota = None;
        r.user.system = true;
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        for bad in [
            &b""[..],
            b"1\0ann\0",
            b"2\0ann\0\0\0/\0/m/\0\0\0\x30\0PLAIN\0local\0",
            b"1\0ann\0x\0\0/\0/m/\0\0\0\x30\0PLAIN\0local\0",
            b"1\0\0\0\0/\0/m/\0\0\0\x30\0PLAIN\0local\0",
        ] {
            assert!(Record::decode(bad).is_err(), "{bad:?}");
        }
        assert!(Record::decode(b"1\0ann\0\0\0/\0/m/\0\0\0\x30\0PLAIN\0local\0").is_ok());
    }

    #[test]
    fn session_args_add_session_and_the_file() {
        let cfg = Config {
            file: Some("/etc/posthorn/posthorn.toml".into()),
            ..Config::default()
        };
        let plan = Plan {
            service: Service::Pop3,
            session_args: vec!["pop3d".into(), "--no-flag-updates".into()],
            client: None,
        };
        assert_eq!(
            session_args(&cfg, &plan),
            [
                "pop3d",
                "--session",
                "--no-flag-updates",
                "-C",
                "/etc/posthorn/posthorn.toml"
            ]
        );
    }
}
