//! session - the POP3 state machine (RFC 1939 AUTHORIZATION, TRANSACTION,
//! UPDATE; RFC 2449 CAPA; RFC 2595 STLS; RFC 5034 AUTH), sans I/O: fed
//! one line at a time, it answers with actions the caller carries out in
//! order (send a reply, stream a message, check a password, start TLS).
//! What the client may do before login is decided here, and only here.

use crate::command::{self, BadCommand, Command};
use crate::maildrop::{Maildrop, OpenError};
use crate::stream::Part;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use posthorn_auth::login::Throttle;
use posthorn_auth::sasl::{Exchange, Mechanism, Step};
use std::fmt::Write;
use std::time::Duration;

/// Bad commands in a row of one session before it is closed.
pub const MAX_BAD: u32 = 10;

/// Where the session is (RFC 1939 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Authorization,
    Transaction,
    Update,
}

/// What the caller does next, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these octets (whole lines, CRLF included).
    Reply(Vec<u8>),
    /// Check these credentials, then call `logged_in` or `login_failed`.
    /// An `authzid` other than empty or the user (a master-user login)
    /// is not supported: the caller refuses it as a failed login.
    Login {
        method: &'static str,
        authzid: String,
        user: String,
        password: Password,
    },
    /// Send message `index` (0-based): `+OK`, the stuffed text and `.`,
    /// or `-ERR` if its file is gone; then call `retrieved` for RETR.
    Send { index: usize, part: Part },
    /// The `+OK` is queued: send it, then start TLS before reading on.
    StartTls,
    /// Wait this long before going on (after a failed login).
    Delay(Duration),
    /// QUIT in TRANSACTION: run `Maildrop::update`, then call `updated`.
    Update,
    /// Close the connection (after sending what is queued).
    Close,
}

/// A password on its way to the check; prints as [redacted].
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub Vec<u8>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The facts about the connection the session decides by.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[tls]` is configured, so STLS can be offered.
    pub tls_available: bool,
    /// The session is already under TLS (after STLS, or --tls).
    pub tls_active: bool,
    /// Plaintext passwords allowed without TLS (loopback or allow_plaintext).
    pub plaintext_anyway: bool,
    pub max_failures: u32,
}

/// Counters for the disconnect log line.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub retr: u32,
    pub retr_bytes: u64,
    pub deleted: u32,
}

/// One POP3 session.
#[derive(Debug)]
pub struct Session {
    pub state: State,
    opts: Options,
    user: Option<String>,
    sasl: Option<(Mechanism, Exchange)>,
    throttle: Throttle,
    bad: u32,
    pub maildrop: Option<Maildrop>,
    pub stats: Stats,
}

/// line - one reply line as octets.
fn line(s: &str) -> Action {
    Action::Reply(format!("{s}\r\n").into_bytes())
}

impl Session {
    /// new - a session in AUTHORIZATION; the caller sends `greeting()` first.
    pub fn new(opts: Options) -> Session {
        Session {
            state: State::Authorization,
            throttle: Throttle::new(opts.max_failures),
            opts,
            user: None,
            sasl: None,
            bad: 0,
            maildrop: None,
            stats: Stats::default(),
        }
    }

    /// greeting - the first line (no APOP timestamp: APOP is not offered,
    /// as no password is kept in plaintext).
    pub fn greeting() -> Vec<u8> {
        b"+OK Posthorn POP3 ready\r\n".to_vec()
    }

    /// plaintext_ok - whether a password may cross this connection.
    fn plaintext_ok(&self) -> bool {
        self.opts.tls_active || self.opts.plaintext_anyway
    }

    /// tls_started - the caller switched to TLS: forget what was said before.
    pub fn tls_started(&mut self) {
        self.opts.tls_active = true;
        self.user = None;
    }

    /// bad - count a bad command; close after MAX_BAD.
    fn bad(&mut self, why: &str) -> Vec<Action> {
        self.bad += 1;
        if self.bad >= MAX_BAD {
            return vec![line("-ERR too many bad commands, closing"), Action::Close];
        }
        vec![line(&format!("-ERR {why}"))]
    }

    /// feed - one line from the client, without CRLF; `len` is what it
    /// took on the wire, CRLF included, for the line cap.
    pub fn feed(&mut self, raw: &[u8], len: usize) -> Vec<Action> {
        if let Some((mech, mut x)) = self.sasl.take() {
            let step = x.respond(&String::from_utf8_lossy(raw));
            return self.sasl_step(mech, x, step);
        }
        match command::parse(raw, len) {
            Ok(c) => self.command(c),
            Err(BadCommand(why)) => self.bad(why),
        }
    }

    /// command - dispatch a parsed command by state.
    fn command(&mut self, c: Command) -> Vec<Action> {
        match (self.state, c) {
            (_, Command::Capa) => self.capa(),
            (_, Command::Noop) if self.state == State::Transaction => vec![line("+OK")],
            (State::Authorization, Command::Quit) => {
                vec![line("+OK Posthorn POP3 signing off"), Action::Close]
            }
            (State::Authorization, Command::Stls) => {
                if !self.opts.tls_available {
                    return self.bad("STLS not available");
                }
                if self.opts.tls_active {
                    return self.bad("already under TLS");
                }
                vec![line("+OK begin TLS negotiation"), Action::StartTls]
            }
            (State::Authorization, Command::User(u)) => {
                if !self.plaintext_ok() {
                    return vec![line(
                        "-ERR [AUTH] plaintext authentication disallowed without TLS: use STLS",
                    )];
                }
                self.user = Some(u);
                vec![line("+OK send PASS")]
            }
            (State::Authorization, Command::Pass(p)) => {
                if !self.plaintext_ok() {
                    return vec![line(
                        "-ERR [AUTH] plaintext authentication disallowed without TLS: use STLS",
                    )];
                }
                match self.user.take() {
                    Some(user) => vec![Action::Login {
                        method: "USER",
                        authzid: String::new(),
                        user,
                        password: Password(p),
                    }],
                    None => self.bad("USER first"),
                }
            }
            (State::Authorization, Command::Auth(mech, initial)) => {
                if !self.plaintext_ok() {
                    return vec![line(
                        "-ERR [AUTH] plaintext authentication disallowed without TLS: use STLS",
                    )];
                }
                let Some(m) = Mechanism::parse(&mech) else {
                    return self.bad("unsupported SASL mechanism");
                };
                let (x, step) = Exchange::start(m, initial.as_deref());
                self.sasl_step(m, x, step)
            }
            (State::Transaction, c) => self.transaction(c),
            (State::Authorization, _) => self.bad("not allowed before login"),
            (State::Update, _) => vec![Action::Close],
        }
    }

    /// sasl_step - act on one step of an AUTH exchange.
    fn sasl_step(&mut self, mech: Mechanism, x: Exchange, step: Step) -> Vec<Action> {
        match step {
            Step::Challenge(c) => {
                self.sasl = Some((mech, x));
                vec![line(&format!("+ {}", STANDARD.encode(c)))]
            }
            Step::Done(cred) => vec![Action::Login {
                method: mech.name(),
                authzid: cred.authzid,
                user: cred.user,
                password: Password(cred.password),
            }],
            Step::Cancelled => vec![line("-ERR authentication cancelled")],
            Step::Bad(why) => self.bad(&format!("[AUTH] {why}")),
        }
    }

    /// login_failed - the credentials were wrong (or `temporary`: the
    /// check itself failed): delay, say nothing about why, close at the limit.
    pub fn login_failed(&mut self, temporary: bool) -> Vec<Action> {
        if temporary {
            return vec![line(
                "-ERR [SYS/TEMP] authentication temporarily unavailable, try again later",
            )];
        }
        let (delay, close) = self.throttle.fail();
        let mut a = vec![
            Action::Delay(delay),
            line("-ERR [AUTH] authentication failed"),
        ];
        if close {
            a.push(Action::Close);
        }
        a
    }

    /// logged_in - the credentials were right and the maildrop was opened (or not).
    pub fn logged_in(&mut self, drop: Result<Maildrop, OpenError>) -> Vec<Action> {
        match drop {
            Ok(d) => {
                let (n, size) = count(&d);
                self.maildrop = Some(d);
                self.state = State::Transaction;
                vec![line(&format!(
                    "+OK maildrop has {n} messages ({size} octets)"
                ))]
            }
            Err(OpenError::InUse) => vec![
                line("-ERR [IN-USE] maildrop is locked by another POP3 session"),
                Action::Close,
            ],
            Err(OpenError::Temporary(_)) => vec![
                line("-ERR [SYS/TEMP] cannot open the maildrop, try again later"),
                Action::Close,
            ],
        }
    }

    /// capa - RFC 2449's list; login capabilities only where they may be used.
    fn capa(&self) -> Vec<Action> {
        let mut s = String::from(
            "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n",
        );
        if self.state == State::Authorization {
            if self.plaintext_ok() {
                s.push_str("USER\r\nSASL PLAIN LOGIN\r\n");
            }
            if self.opts.tls_available && !self.opts.tls_active {
                s.push_str("STLS\r\n");
            }
        }
        s.push_str("IMPLEMENTATION Posthorn\r\n.\r\n");
        vec![Action::Reply(s.into_bytes())]
    }

    /// message - a live message by its 1-based number.
    fn message(&self, n: usize) -> Result<usize, Vec<Action>> {
        let Some(d) = &self.maildrop else {
            return Err(vec![line("-ERR no maildrop")]);
        };
        if n == 0 || n > d.messages.len() {
            return Err(vec![line("-ERR no such message")]);
        }
        if d.messages[n - 1].deleted {
            return Err(vec![line(&format!("-ERR message {n} already deleted"))]);
        }
        Ok(n - 1)
    }

    /// transaction - the commands after login.
    fn transaction(&mut self, c: Command) -> Vec<Action> {
        let Some(d) = self.maildrop.as_ref() else {
            return vec![line("-ERR [SYS/TEMP] no maildrop"), Action::Close];
        };
        match c {
            Command::Stat => {
                let (n, size) = count(d);
                vec![line(&format!("+OK {n} {size}"))]
            }
            Command::List(None) | Command::Uidl(None) => {
                let uidl = matches!(c, Command::Uidl(_));
                let (n, size) = count(d);
                let mut s = if uidl {
                    String::from("+OK unique-id listing follows\r\n")
                } else {
                    format!("+OK {n} messages ({size} octets)\r\n")
                };
                // One buffer, sized once, written into: no string per line.
                s.reserve(n * if uidl { 80 } else { 16 });
                for (i, m) in d.messages.iter().enumerate().filter(|(_, m)| !m.deleted) {
                    let _ = if uidl {
                        write!(s, "{} {}\r\n", i + 1, m.uidl())
                    } else {
                        write!(s, "{} {}\r\n", i + 1, m.size)
                    };
                }
                s.push_str(".\r\n");
                vec![Action::Reply(s.into_bytes())]
            }
            Command::List(Some(n)) => match self.message(n) {
                Ok(i) => vec![line(&format!("+OK {n} {}", d.messages[i].size))],
                Err(e) => e,
            },
            Command::Uidl(Some(n)) => match self.message(n) {
                Ok(i) => vec![line(&format!("+OK {n} {}", d.messages[i].uidl()))],
                Err(e) => e,
            },
            Command::Retr(n) => match self.message(n) {
                Ok(index) => vec![Action::Send {
                    index,
                    part: Part::Whole,
                }],
                Err(e) => e,
            },
            Command::Top(n, lines) => match self.message(n) {
                Ok(index) => vec![Action::Send {
                    index,
                    part: Part::Top(lines),
                }],
                Err(e) => e,
            },
            Command::Dele(n) => match self.message(n) {
                Ok(i) => {
                    if let Some(d) = self.maildrop.as_mut() {
                        d.messages[i].deleted = true;
                    }
                    vec![line(&format!("+OK message {n} deleted"))]
                }
                Err(e) => e,
            },
            Command::Rset => {
                let Some(d) = self.maildrop.as_mut() else {
                    return vec![line("-ERR no maildrop")];
                };
                for m in &mut d.messages {
                    m.deleted = false;
                }
                let (n, size) = count(d);
                vec![line(&format!(
                    "+OK maildrop has {n} messages ({size} octets)"
                ))]
            }
            Command::Quit => {
                self.state = State::Update;
                vec![Action::Update]
            }
            Command::Noop => vec![line("+OK")],
            _ => self.bad("not allowed after login"),
        }
    }

    /// retrieved - RETR sent message `index` whole: mark it seen, count it.
    pub fn retrieved(&mut self, index: usize, bytes: u64) {
        if let Some(m) = self
            .maildrop
            .as_mut()
            .and_then(|d| d.messages.get_mut(index))
        {
            m.seen = true;
        }
        self.stats.retr += 1;
        self.stats.retr_bytes += bytes;
    }

    /// updated - after `Maildrop::update`: the final reply.
    pub fn updated(&mut self, failed: usize) -> Vec<Action> {
        let (left, deleted) = self.maildrop.as_ref().map_or((0, 0), |d| {
            let del = d.messages.iter().filter(|m| m.deleted).count();
            (d.messages.len() - del, del)
        });
        self.stats.deleted = (deleted - failed.min(deleted)) as u32;
        if failed > 0 {
            return vec![
                line(&format!(
                    "-ERR [SYS/TEMP] {failed} messages could not be deleted"
                )),
                Action::Close,
            ];
        }
        vec![
            line(&format!(
                "+OK Posthorn POP3 signing off ({left} messages left)"
            )),
            Action::Close,
        ]
    }
}

/// count - messages not marked deleted, and their total size.
fn count(d: &Maildrop) -> (usize, u64) {
    d.messages
        .iter()
        .filter(|m| !m.deleted)
        .fold((0, 0), |(n, s), m| (n + 1, s + m.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(tls_available: bool, plaintext_anyway: bool) -> Options {
        Options {
            tls_available,
            tls_active: false,
            plaintext_anyway,
            max_failures: 3,
        }
    }

    fn feed(s: &mut Session, line: &str) -> Vec<Action> {
        s.feed(line.as_bytes(), line.len() + 2)
    }

    fn text(a: &[Action]) -> String {
        a.iter()
            .map(|a| match a {
                Action::Reply(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("<{other:?}>"),
            })
            .collect()
    }

    #[test]
    fn no_passwords_in_the_clear_from_afar_until_stls() {
        let mut s = Session::new(opts(true, false));
        let capa = text(&feed(&mut s, "CAPA"));
        assert!(capa.contains("STLS\r\n") && !capa.contains("USER\r\n") && !capa.contains("SASL"));
        for l in ["USER ann", "PASS x", "AUTH PLAIN AGFubgB4"] {
            assert!(text(&feed(&mut s, l)).starts_with("-ERR [AUTH] "), "{l}");
        }
        assert_eq!(
            feed(&mut s, "STLS"),
            vec![line("+OK begin TLS negotiation"), Action::StartTls]
        );
        s.tls_started();
        let capa = text(&feed(&mut s, "CAPA"));
        assert!(!capa.contains("STLS") && capa.contains("USER\r\nSASL PLAIN LOGIN\r\n"));
        assert!(text(&feed(&mut s, "STLS")).starts_with("-ERR"));
        assert_eq!(text(&feed(&mut s, "USER ann")), "+OK send PASS\r\n");
        assert!(
            matches!(&feed(&mut s, "PASS x")[..], [Action::Login { method: "USER", user, .. }] if user == "ann")
        );
    }

    #[test]
    fn no_stls_without_tls_and_plaintext_on_loopback() {
        let mut s = Session::new(opts(false, true));
        let capa = text(&feed(&mut s, "CAPA"));
        assert!(!capa.contains("STLS") && capa.contains("USER"));
        assert!(text(&feed(&mut s, "STLS")).starts_with("-ERR"));
        assert!(text(&feed(&mut s, "PASS x")).starts_with("-ERR USER first"));
    }

    #[test]
    fn sasl_exchanges() {
        let mut s = Session::new(opts(false, true));
        assert_eq!(text(&feed(&mut s, "AUTH PLAIN")), "+ \r\n");
        // A response is not a command, and may be longer than one.
        let a = feed(&mut s, "YWRtaW4AYW5uAHg=");
        assert!(
            matches!(&a[..], [Action::Login { method: "PLAIN", authzid, user, .. }] if authzid == "admin" && user == "ann")
        );
        assert_eq!(text(&feed(&mut s, "AUTH LOGIN")), "+ VXNlcm5hbWU6\r\n");
        assert_eq!(
            text(&feed(&mut s, "*")),
            "-ERR authentication cancelled\r\n"
        );
        assert!(text(&feed(&mut s, "AUTH CRAM-MD5")).starts_with("-ERR"));
        assert!(text(&feed(&mut s, "AUTH PLAIN !!!")).starts_with("-ERR [AUTH]"));
    }

    #[test]
    fn failures_delay_then_close() {
        let mut s = Session::new(opts(false, true));
        let a = s.login_failed(false);
        assert_eq!(a[0], Action::Delay(Duration::from_secs(1)));
        assert_eq!(text(&a[1..]), "-ERR [AUTH] authentication failed\r\n");
        s.login_failed(false);
        assert_eq!(s.login_failed(false).last(), Some(&Action::Close));
        assert!(text(&s.login_failed(true)).starts_with("-ERR [SYS/TEMP]"));
    }

    #[test]
    fn transaction_needs_login_and_ten_bad_commands_close() {
        let mut s = Session::new(opts(false, true));
        for _ in 0..9 {
            assert_ne!(feed(&mut s, "STAT").last(), Some(&Action::Close));
        }
        assert_eq!(feed(&mut s, "XYZZY").last(), Some(&Action::Close));
        let mut s = Session::new(opts(false, true));
        assert_eq!(
            feed(&mut s, "QUIT"),
            vec![line("+OK Posthorn POP3 signing off"), Action::Close]
        );
    }

    #[test]
    fn passwords_never_print() {
        let mut s = Session::new(opts(false, true));
        feed(&mut s, "USER ann");
        assert!(!format!("{:?}", feed(&mut s, "PASS hunter2")).contains("hunter2"));
    }

    #[test]
    fn maildrop_in_use_closes() {
        let mut s = Session::new(opts(false, true));
        let a = s.logged_in(Err(OpenError::InUse));
        assert!(text(&a).starts_with("-ERR [IN-USE]"));
        assert_eq!(a.last(), Some(&Action::Close));
        assert_eq!(s.state, State::Authorization);
    }
}
