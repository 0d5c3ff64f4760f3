//! sasl - the PLAIN (RFC 4616) and LOGIN mechanisms as a sans-I/O
//! exchange: the server feeds the client's base64 lines in and gets
//! challenges (raw bytes, to base64 and send) or credentials out. The
//! same code serves SMTP AUTH, POP3 AUTH and IMAP AUTHENTICATE, with or
//! without an initial response (SASL-IR, RFC 4959).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Longest base64 line accepted from a client.
pub const MAX_LINE: usize = 4096;
/// Longest decoded field (authzid, user, password).
pub const MAX_FIELD: usize = 1024;

/// A supported mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// parse - a mechanism name from the client, case-insensitively.
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }

    /// name - as advertised.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// What the client proved it knows; the password prints as [redacted].
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub authzid: String,
    pub user: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ authzid: {:?}, user: {:?}, password: [redacted] }}",
            self.authzid, self.user
        )
    }
}

/// The next thing the server does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge (base64 it) and feed the answer to `respond`.
    Challenge(Vec<u8>),
    /// The exchange is complete: check these.
    Done(Credentials),
    /// The client sent `*`.
    Cancelled,
    /// The client sent something malformed: fail the exchange.
    Bad(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Plain,
    LoginUser,
    LoginPassword(String),
    Over,
}

/// One authentication exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    state: State,
}

/// encode - a challenge as the base64 a `334` or `+` line carries.
pub fn encode(b: &[u8]) -> String {
    STANDARD.encode(b)
}

/// decode - strict base64 of one client line; `=` alone is the empty response.
fn decode(line: &str) -> Result<Vec<u8>, &'static str> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE {
        return Err("response too long");
    }
    if line == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| "invalid base64")
}

fn field(b: &[u8]) -> Result<String, &'static str> {
    if b.len() > MAX_FIELD {
        return Err("field too long");
    }
    String::from_utf8(b.to_vec()).map_err(|_| "not UTF-8")
}

impl Exchange {
    /// start - begin `mech`, with the initial response if the client sent one.
    pub fn start(mech: Mechanism, initial: Option<&str>) -> (Exchange, Step) {
        let mut x = Exchange {
            state: match mech {
                Mechanism::Plain => State::Plain,
                Mechanism::Login => State::LoginUser,
            },
        };
        let step = match (mech, initial) {
            (_, Some(i)) => x.respond(i),
            (Mechanism::Plain, None) => Step::Challenge(Vec::new()),
            (Mechanism::Login, None) => Step::Challenge(b"Username:".to_vec()),
        };
        (x, step)
    }

    /// respond - feed one line from the client.
    pub fn respond(&mut self, line: &str) -> Step {
        if line.trim_end_matches(['\r', '\n']) == "*" {
            self.state = State::Over;
            return Step::Cancelled;
        }
        let data = match decode(line) {
            Ok(d) => d,
            Err(e) => {
                self.state = State::Over;
                return Step::Bad(e);
            }
        };
        match std::mem::replace(&mut self.state, State::Over) {
            State::Plain => plain(&data),
            State::LoginUser => match field(&data) {
                Ok(u) if !u.is_empty() => {
                    self.state = State::LoginPassword(u);
                    Step::Challenge(b"Password:".to_vec())
                }
                Ok(_) => Step::Bad("empty user name"),
                Err(e) => Step::Bad(e),
            },
            State::LoginPassword(user) => {
                if data.len() > MAX_FIELD {
                    return Step::Bad("field too long");
                }
                Step::Done(Credentials {
                    authzid: String::new(),
                    user,
                    password: data,
                })
            }
            State::Over => Step::Bad("exchange is over"),
        }
    }
}

/// plain - `authzid NUL authcid NUL passwd`.
fn plain(data: &[u8]) -> Step {
    let parts: Vec<&[u8]> = data.splitn(3, |&b| b == 0).collect();
    if parts.len() != 3 {
        return Step::Bad("PLAIN needs authzid, user and password");
    }
    let (Ok(authzid), Ok(user)) = (field(parts[0]), field(parts[1])) else {
        return Step::Bad("bad PLAIN fields");
    };
    if user.is_empty() || parts[2].contains(&0) || parts[2].len() > MAX_FIELD {
        return Step::Bad("bad PLAIN fields");
    }
    Step::Done(Credentials {
        authzid,
        user,
        password: parts[2].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(s: &[u8]) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let (_, step) = Exchange::start(Mechanism::Plain, Some(&b64(b"\0ann\0secret")));
        assert_eq!(
            step,
            Step::Done(Credentials {
                authzid: String::new(),
                user: "ann".into(),
                password: b"secret".to_vec()
            })
        );
        let (mut x, step) = Exchange::start(Mechanism::Plain, None);
        assert_eq!(step, Step::Challenge(Vec::new()));
        assert!(
            matches!(x.respond(&b64(b"admin\0ann\0pw")), Step::Done(c) if c.authzid == "admin" && c.user == "ann")
        );
        // RFC 4616 examples.
        let (_, s) = Exchange::start(Mechanism::Plain, Some("AHRpbQB0YW5zdGFhbmZ0YW5zdGFhbmY="));
        assert!(
            matches!(s, Step::Done(c) if c.user == "tim" && c.password == b"tanstaanftanstaanf")
        );
        let (_, s) = Exchange::start(Mechanism::Plain, Some("S3VydABLdXJ0AHhpcGhoaWFz"));
        assert!(
            matches!(s, Step::Done(c) if c.authzid == "Kurt" && c.user == "Kurt" && c.password == b"xiphhias")
        );
    }

    #[test]
    fn login_two_steps_and_cancel() {
        let (mut x, s) = Exchange::start(Mechanism::Login, None);
        assert_eq!(s, Step::Challenge(b"Username:".to_vec()));
        assert_eq!(
            x.respond(&b64(b"ann")),
            Step::Challenge(b"Password:".to_vec())
        );
        assert!(
            matches!(x.respond(&b64(b"pw")), Step::Done(c) if c.user == "ann" && c.password == b"pw")
        );
        let (mut x, s) = Exchange::start(Mechanism::Login, Some(&b64(b"ann")));
        assert_eq!(s, Step::Challenge(b"Password:".to_vec()));
        assert_eq!(x.respond("*"), Step::Cancelled);
        assert!(matches!(x.respond(&b64(b"pw")), Step::Bad(_)));
    }

    #[test]
    fn malformed() {
        for bad in ["!!!", "AHRpbQ", "=x"] {
            let (_, s) = Exchange::start(Mechanism::Plain, Some(bad));
            assert!(matches!(s, Step::Bad(_)), "{bad}");
        }
        let (_, s) = Exchange::start(Mechanism::Plain, Some(&b64(b"\0\0pw")));
        assert!(matches!(s, Step::Bad(_)), "empty user");
        let (_, s) = Exchange::start(Mechanism::Plain, Some(&"A".repeat(MAX_LINE + 4)));
        assert!(matches!(s, Step::Bad("response too long")));
        assert_eq!(Mechanism::parse("plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::parse("CRAM-MD5"), None);
        let c = Credentials {
            authzid: String::new(),
            user: "a".into(),
            password: b"hunter2".to_vec(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_line(line in "\\PC{0,200}", mech in 0u8..2) {
            let m = if mech == 0 { Mechanism::Plain } else { Mechanism::Login };
            let (mut x, _) = Exchange::start(m, Some(&line));
            let _ = x.respond(&line);
        }

        #[test]
        fn plain_round_trip(authz in "[a-z]{0,10}", user in "[a-z@.]{1,20}", pw in proptest::collection::vec(1u8..=255, 0..50)) {
            let mut raw = authz.clone().into_bytes();
            raw.push(0);
            raw.extend_from_slice(user.as_bytes());
            raw.push(0);
            raw.extend_from_slice(&pw);
            let (_, s) = Exchange::start(Mechanism::Plain, Some(&b64(&raw)));
            prop_assert_eq!(s, Step::Done(Credentials { authzid: authz, user, password: pw }));
        }
    }
}
