//! checker - the password check as a process of its own, and the
//! pre-login process's way to ask it.
//!
//! The checking process never reads from the network: it reads one
//! request at a time (request.rs: fixed format, length-limited) from a
//! SOCK_SEQPACKET socket pair, checks it against the users file and
//! /etc/shadow (it is root when the server was started as root; nothing
//! else may read those), and answers. It owns the failure throttle: the
//! delay before a wrong answer (1 s, 2 s, 4 s ...) and the end after
//! `[auth] max_failures`, and it logs the `auth failed` line. A
//! pre-login process taken over by an attacker can therefore guess no
//! faster than an honest client, and a malformed request ends the
//! checking for good. The client named in the log is the one this
//! process saw on the socket itself, unless a trusted proxy stands in
//! between (then only the pre-login process, which read the PROXY
//! header, knows it).

use crate::login::{self, Login, Refusal, Throttle};
use crate::password;
use crate::request::{Answer, MAX_ANSWER, MAX_REQUEST, Request, Service};
use posthorn_mail::Config;
use posthorn_sys::confine;
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::{info, warning};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The first message from a checking process: it has let go of the
/// client's connection.
pub const READY: &[u8] = b"ready\0";

/// The pre-login process's end: ask, get an answer (and, after a good
/// login in pop3d and imapd, the socket to the session).
#[derive(Debug)]
pub struct Checker {
    sock: OwnedFd,
    /// The checking process, when it is our child (smtpd).
    child: Option<u32>,
}

/// What the check said.
#[derive(Debug)]
pub struct Reply {
    pub answer: Answer,
    /// The session's socket, sent with `Ok` by pop3d's and imapd's check.
    pub session: Option<OwnedFd>,
}

impl Checker {
    /// new - the asking end of a socket pair whose other end is served.
    pub fn new(sock: OwnedFd) -> Checker {
        Checker { sock, child: None }
    }

    /// ask - send one request and wait for the answer. A checking
    /// process that is gone or answers nonsense is a temporary failure.
    pub fn ask(&self, req: &Request) -> Reply {
        let temp = Reply {
            answer: Answer::Temp,
            session: None,
        };
        let mut b = req.encode();
        let sent = confine::send_fds(self.sock.as_fd(), &b, &[]);
        b.fill(0);
        std::hint::black_box(&b);
        if let Err(e) = sent {
            warning!("password check unreachable: {e}");
            return temp;
        }
        let mut buf = [0u8; MAX_ANSWER + 1];
        match confine::recv_fds(self.sock.as_fd(), &mut buf, 1) {
            Ok((0, _)) => {
                warning!("password check gone");
                temp
            }
            Ok((n, mut fds)) => match Answer::decode(&buf[..n]) {
                Ok(answer) => Reply {
                    session: if matches!(answer, Answer::Ok(_)) {
                        fds.pop()
                    } else {
                        None
                    },
                    answer,
                },
                Err(why) => {
                    warning!("password check: {why}");
                    temp
                }
            },
            Err(e) => {
                warning!("password check: {e}");
                temp
            }
        }
    }
}

impl Drop for Checker {
    /// drop - closing the socket ends the checking process; reap it if
    /// it is already gone (else init will).
    fn drop(&mut self) {
        if let Some(pid) = self.child {
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(pid as i32),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
    }
}

/// How a checking loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The pre-login process closed its end.
    Closed,
    /// Too many failures: no more checks on this connection.
    Exhausted,
    /// A request that is not one: the pre-login process is broken or
    /// taken over.
    Broken(String),
}

/// The checking side's fixed facts.
#[derive(Debug)]
pub struct Desk<'a> {
    pub cfg: &'a Config,
    /// The service the requests must be for.
    pub service: Service,
    /// The client as this process saw it on the socket; None when it is
    /// a trusted proxy, and the pre-login process's word is taken.
    pub client: Option<String>,
}

/// answer - send `a`, with `fd` attached if given.
pub fn answer(sock: BorrowedFd, a: &Answer, fd: Option<BorrowedFd>) -> std::io::Result<()> {
    let fds: Vec<BorrowedFd> = fd.into_iter().collect();
    confine::send_fds(sock, &a.encode(), &fds)
}

/// serve - check requests from `sock` until the other end closes, a
/// request is malformed, or too many have failed. A good login goes to
/// `success`, which answers it (and may never return: pop3d and imapd
/// become the session there); an Err from it is logged and answered as
/// a temporary failure.
pub fn serve(
    desk: &Desk,
    sock: BorrowedFd,
    mut success: impl FnMut(&Login, &Request, BorrowedFd) -> Result<(), String>,
) -> End {
    let mut throttle = Throttle::new(desk.cfg.auth_max_failures);
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    loop {
        let got = confine::recv_fds(sock, &mut buf, 0);
        let n = match got {
            Ok((0, _)) => return End::Closed,
            Ok((n, _)) => n,
            Err(e) => return End::Broken(format!("reading a request: {e}")),
        };
        let decoded = Request::decode(&buf[..n]);
        buf[..n].fill(0);
        let mut req = match decoded {
            Ok(r) if r.service == desk.service => r,
            Ok(r) => return End::Broken(format!("a request for {}", r.service.name())),
            Err(why) => return End::Broken(why.to_string()),
        };
        let client = desk.client.clone().unwrap_or_else(|| req.client.clone());
        let verdict = if !req.check {
            // Credentials that cannot be right still cost what a check costs.
            let _ = password::verify(password::DUMMY_HASH, b"");
            Err(Refusal::Failed)
        } else if !req.authzid.is_empty() && req.authzid != req.user {
            // Logging in as one user to act as another: not supported.
            let _ = password::verify(password::DUMMY_HASH, &req.password);
            Err(Refusal::Failed)
        } else {
            login::authenticate(desk.cfg, &req.user, &req.password)
        };
        req.password.fill(0);
        std::hint::black_box(&req.password);
        let sent = match verdict {
            Ok(l) => {
                if l.plain_hash {
                    info!("user {}: the password is stored in plaintext", l.user.name);
                }
                match success(&l, &req, sock) {
                    Ok(()) => Ok(()),
                    Err(why) => {
                        warning!("login: user=<{}>: {why}, client={client}", l.user.name);
                        answer(sock, &Answer::Temp, None)
                    }
                }
            }
            Err(Refusal::Failed) => refuse(&mut throttle, sock, &req, &client, None),
            Err(Refusal::Forbidden { user, uid }) => refuse(
                &mut throttle,
                sock,
                &req,
                &client,
                Some((user, uid, desk.cfg)),
            ),
            Err(Refusal::Temporary(why)) => {
                warning!("login: {why}, client={client}");
                answer(sock, &Answer::Temp, None)
            }
        };
        match sent {
            Ok(()) if throttle_spent(&throttle, desk.cfg) => return End::Exhausted,
            Ok(()) => {}
            Err(e) => return End::Broken(format!("answering: {e}")),
        }
    }
}

/// throttle_spent - whether the last failure was the last allowed.
fn throttle_spent(t: &Throttle, cfg: &Config) -> bool {
    t.failures() >= cfg.auth_max_failures.max(1)
}

/// refuse - a wrong password, or an account that may not log in (told
/// apart only in the log): the `auth failed` line, the delay, then NO,
/// or BYE for the last try.
fn refuse(
    throttle: &mut Throttle,
    sock: BorrowedFd,
    req: &Request,
    client: &str,
    forbidden: Option<(String, u32, &Config)>,
) -> std::io::Result<()> {
    warning!("{}", login::failure_line(&req.method, &req.user, client));
    if let Some((user, uid, cfg)) = forbidden {
        let why = if uid == 0 {
            "uid 0 (root) never logs in".to_string()
        } else {
            format!(
                "uid {uid} is below [auth] first_valid_uid {}",
                cfg.auth_first_valid_uid
            )
        };
        warning!("login: user=<{user}> refused before its password was checked: {why}");
    }
    let (delay, last) = throttle.fail();
    std::thread::sleep(delay);
    answer(sock, if last { &Answer::Bye } else { &Answer::No }, None)
}

/// spawn - the checking process as a child (smtpd's shape: the session
/// goes on in this process after AUTH). The child keeps our privileges
/// (root when started as root, to read /etc/shadow), lets go of the
/// client's connection at once, and ends when the returned Checker is
/// dropped. Call before anything secret is loaded and while there is one
/// thread.
pub fn spawn(cfg: &Config, service: Service, client: Option<String>) -> Result<Checker, Exit> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Exit::from_io("socketpair", &e.into()))?;
    match confine::fork().map_err(|e| Exit::from_io("fork", &e))? {
        confine::Forked::Parent(pid) => {
            drop(theirs);
            let c = Checker {
                sock: ours,
                child: Some(pid),
            };
            // Not one octet is read from the client before the check
            // has let go of the connection.
            let mut go = [0u8; 8];
            match confine::recv_fds(c.sock.as_fd(), &mut go, 0) {
                Ok((n, _)) if &go[..n] == READY => Ok(c),
                _ => Err(Exit::new(exit::OSERR, "the password check did not start")),
            }
        }
        confine::Forked::Child => {
            drop(ours);
            if let Err(e) = confine::null_stdio()
                .and_then(|()| confine::no_core())
                .and_then(|()| confine::send_fds(theirs.as_fd(), READY, &[]))
            {
                warning!("password check: {e}");
                std::process::exit(i32::from(exit::OSERR));
            }
            let desk = Desk {
                cfg,
                service,
                client,
            };
            let end = serve(&desk, theirs.as_fd(), |l, _, sock| {
                answer(sock, &Answer::Ok(l.user.name.clone()), None).map_err(|e| e.to_string())
            });
            if let End::Broken(why) = end {
                warning!("password check: {why}: no more checks for this connection");
            }
            std::process::exit(0);
        }
    }
}
