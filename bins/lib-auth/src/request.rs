//! request - the one message a pre-login process sends the password
//! check, and the answer it gets. Fixed format, length-limited, sans-I/O
//! (encode and decode only), so it can be fuzzed on its own.
//!
//! A request is eight fields, each ending in a NUL, in this order:
//!
//! ```text
//! version  "1"
//! kind     "check", or "fail" for credentials that cannot be right
//!          (too long, a NUL in them): counted, delayed and logged as a
//!          wrong password, never checked; the password is then empty
//! service  "imap", "pop3" or "smtp"
//! method   the SASL mechanism or "LOGIN"/"USER": 1 to 20 of A-Z 0-9 - _
//! client   the client as logged, unknown[192.0.2.7]: 1 to 100 octets
//!          from ! to ~
//! authzid  UTF-8, at most 255 octets (empty: none)
//! user     UTF-8, at most 255 octets
//! password at most 1024 octets
//! ```
//!
//! The whole is at most MAX_REQUEST octets, and anything else (another
//! field count, an octet over a cap, a password with `fail`) is refused:
//! a pre-login process that sends it is broken or taken over, and the
//! session ends. The answer is `OK` NUL user NUL (the name as the check
//! found it), `NO` NUL (wrong, try again), `BYE` NUL (wrong, and no more
//! tries on this connection) or `TEMP` NUL (the check itself failed).

/// Longest request, all fields and NULs.
pub const MAX_REQUEST: usize = 2 + 6 + 5 + 21 + 101 + 256 + 256 + 1025;
/// Longest answer.
pub const MAX_ANSWER: usize = 3 + 256;
/// Longest login name or authorization identity.
pub const MAX_USER: usize = 255;
/// Longest password.
pub const MAX_PASSWORD: usize = 1024;
/// Longest client name.
pub const MAX_CLIENT: usize = 100;

/// The service asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Imap,
    Pop3,
    Smtp,
}

impl Service {
    /// name - as on the wire and in the log.
    pub fn name(self) -> &'static str {
        match self {
            Service::Imap => "imap",
            Service::Pop3 => "pop3",
            Service::Smtp => "smtp",
        }
    }

    fn parse(b: &[u8]) -> Option<Service> {
        match b {
            b"imap" => Some(Service::Imap),
            b"pop3" => Some(Service::Pop3),
            b"smtp" => Some(Service::Smtp),
            _ => None,
        }
    }
}

/// One login attempt; the password prints as [redacted].
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// False for credentials that cannot be right: fail without a check.
    pub check: bool,
    pub service: Service,
    pub method: String,
    pub client: String,
    pub authzid: String,
    pub user: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Request {{ check: {}, service: {:?}, method: {:?}, client: {:?}, authzid: {:?}, user: {:?}, password: [redacted] }}",
            self.check, self.service, self.method, self.client, self.authzid, self.user
        )
    }
}

/// clip - at most `max` octets of `s`, cut at a character boundary, NULs
/// made `?`: a name kept only for the log.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].replace('\0', "?")
}

/// method_ok - 1 to 20 of A-Z 0-9 - _.
fn method_ok(m: &[u8]) -> bool {
    (1..=20).contains(&m.len())
        && m.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// client_ok - 1 to 100 octets from ! to ~.
fn client_ok(c: &[u8]) -> bool {
    (1..=MAX_CLIENT).contains(&c.len()) && c.iter().all(|&b| (0x21..=0x7e).contains(&b))
}

impl Request {
    /// new - the request for what a client sent. Credentials that cannot
    /// be right (over a cap, a NUL inside) become a `fail` request with
    /// the name cut for the log; a method or client name out of shape is
    /// replaced (a caller's mistake, not the client's).
    pub fn new(
        service: Service,
        method: &str,
        client: &str,
        authzid: &str,
        user: &str,
        password: &[u8],
    ) -> Request {
        let usable = authzid.len() <= MAX_USER
            && user.len() <= MAX_USER
            && password.len() <= MAX_PASSWORD
            && !authzid.contains('\0')
            && !user.contains('\0')
            && !password.contains(&0);
        Request {
            check: usable,
            service,
            method: if method_ok(method.as_bytes()) {
                method.to_string()
            } else {
                "UNKNOWN".to_string()
            },
            client: if client_ok(client.as_bytes()) {
                client.to_string()
            } else {
                "unknown".to_string()
            },
            authzid: if usable {
                authzid.to_string()
            } else {
                String::new()
            },
            user: clip(user, MAX_USER),
            password: if usable {
                password.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// encode - the request's octets.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64 + self.user.len() + self.password.len());
        for f in [
            &b"1"[..],
            if self.check { b"check" } else { b"fail" },
            self.service.name().as_bytes(),
            self.method.as_bytes(),
            self.client.as_bytes(),
            self.authzid.as_bytes(),
            self.user.as_bytes(),
            &self.password,
        ] {
            v.extend_from_slice(f);
            v.push(0);
        }
        v
    }

    /// decode - a request, or why it is refused.
    pub fn decode(b: &[u8]) -> Result<Request, &'static str> {
        if b.len() > MAX_REQUEST {
            return Err("request too long");
        }
        let Some(body) = b.strip_suffix(&[0]) else {
            return Err("request does not end in NUL");
        };
        let f: Vec<&[u8]> = body.split(|&c| c == 0).collect();
        let [
            version,
            kind,
            service,
            method,
            client,
            authzid,
            user,
            password,
        ] = f[..]
        else {
            return Err("request has the wrong number of fields");
        };
        if version != b"1" {
            return Err("unknown request version");
        }
        let check = match kind {
            b"check" => true,
            b"fail" => false,
            _ => return Err("unknown request kind"),
        };
        let service = Service::parse(service).ok_or("unknown service")?;
        if !method_ok(method) {
            return Err("bad method");
        }
        if !client_ok(client) {
            return Err("bad client");
        }
        if authzid.len() > MAX_USER || user.len() > MAX_USER || password.len() > MAX_PASSWORD {
            return Err("field too long");
        }
        let empty = password.is_empty() && authzid.is_empty();
        if !check && !empty {
            return Err("a fail request carries credentials");
        }
        let text = |x: &[u8]| std::str::from_utf8(x).map(str::to_string);
        Ok(Request {
            check,
            service,
            method: text(method).map_err(|_| "bad method")?,
            client: text(client).map_err(|_| "bad client")?,
            authzid: text(authzid).map_err(|_| "authzid is not UTF-8")?,
            user: text(user).map_err(|_| "user is not UTF-8")?,
            password: password.to_vec(),
        })
    }
}

/// The password check's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Logged in, as this name.
    Ok(String),
    /// Wrong; the client may try again.
    No,
    /// Wrong, and the last try this connection gets.
    Bye,
    /// The check itself failed: try again later.
    Temp,
}

impl Answer {
    /// encode - the answer's octets.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Answer::Ok(u) => {
                let mut v = b"OK\0".to_vec();
                v.extend_from_slice(clip(u, MAX_USER).as_bytes());
                v.push(0);
                v
            }
            Answer::No => b"NO\0".to_vec(),
            Answer::Bye => b"BYE\0".to_vec(),
            Answer::Temp => b"TEMP\0".to_vec(),
        }
    }

    /// decode - an answer, or why it is refused.
    pub fn decode(b: &[u8]) -> Result<Answer, &'static str> {
        if b.len() > MAX_ANSWER {
            return Err("answer too long");
        }
        match b {
            b"NO\0" => Ok(Answer::No),
            b"BYE\0" => Ok(Answer::Bye),
            b"TEMP\0" => Ok(Answer::Temp),
            _ => {
                let u = b
                    .strip_prefix(b"OK\0")
                    .and_then(|r| r.strip_suffix(&[0]))
                    .filter(|u| !u.is_empty() && !u.contains(&0))
                    .ok_or("malformed answer")?;
                let u = std::str::from_utf8(u).map_err(|_| "malformed answer")?;
                Ok(Answer::Ok(u.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_requests() {
        // posthorn(7) gives this bound.
        assert_eq!(MAX_REQUEST, 1672);
        let r = Request::new(
            Service::Imap,
            "PLAIN",
            "unknown[192.0.2.7]",
            "",
            "ann",
            b"secret",
        );
        let b = r.encode();
        assert_eq!(
            b,
            b"1\0check\0imap\0PLAIN\0unknown[192.0.2.7]\0\0ann\0secret\0"
        );
        assert_eq!(Request::decode(&b).unwrap(), r);
        // Too long, or a NUL inside: a `fail` request, no password sent.
        let long = "x".repeat(300);
        let r = Request::new(Service::Pop3, "USER", "local", "", &long, b"pw");
        assert!(!r.check && r.password.is_empty() && r.user.len() == MAX_USER);
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        let r = Request::new(Service::Smtp, "LOGIN", "local", "", "ann", b"p\0w");
        assert!(!r.check && r.password.is_empty());
        let r = Request::new(
            Service::Smtp,
            "LOGIN",
            "local",
            "",
            "ann",
            &[b'p'; MAX_PASSWORD + 1],
        );
        assert!(!r.check);
        let r = Request::new(Service::Imap, "bad method", "two words", "", "ann", b"x");
        assert_eq!(
            (r.method.as_str(), r.client.as_str()),
            ("UNKNOWN", "unknown")
        );
        // A name cut inside a character stays UTF-8.
        let r = Request::new(Service::Imap, "LOGIN", "local", "", &"é".repeat(200), b"x");
        assert!(!r.check && std::str::from_utf8(r.user.as_bytes()).is_ok());
    }

    #[test]
    fn refused_requests() {
        for bad in [
            &b""[..],
            b"1\0check\0imap\0PLAIN\0local\0\0ann\0pw",
            b"1\0check\0imap\0PLAIN\0local\0\0ann\0pw\0extra\0",
            b"2\0check\0imap\0PLAIN\0local\0\0ann\0pw\0",
            b"1\0maybe\0imap\0PLAIN\0local\0\0ann\0pw\0",
            b"1\0check\0ftp\0PLAIN\0local\0\0ann\0pw\0",
            b"1\0check\0imap\0plain\0local\0\0ann\0pw\0",
            b"1\0check\0imap\0PLAIN\0\0\0ann\0pw\0",
            b"1\0check\0imap\0PLAIN\0lo cal\0\0ann\0pw\0",
            b"1\0fail\0imap\0PLAIN\0local\0\0ann\0pw\0",
            b"1\0check\0imap\0PLAIN\0local\0\0\xff\0pw\0",
        ] {
            assert!(Request::decode(bad).is_err(), "{bad:?}");
        }
        let mut long = b"1\0check\0imap\0PLAIN\0local\0\0ann\0".to_vec();
        long.extend_from_slice(&[b'p'; MAX_PASSWORD + 1]);
        long.push(0);
        assert!(Request::decode(&long).is_err());
    }

    #[test]
    fn answers() {
        for a in [
            Answer::Ok("ann@example.org".into()),
            Answer::No,
            Answer::Bye,
            Answer::Temp,
        ] {
            assert_eq!(Answer::decode(&a.encode()).unwrap(), a);
        }
        for bad in [&b"OK\0\0"[..], b"OK\0ann", b"YES\0", b"NO", b"OK\0a\0b\0"] {
            assert!(Answer::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let r = Request::new(Service::Imap, "LOGIN", "local", "", "ann", b"hunter2");
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn whatever_new_makes_decodes_back(
            user in "\\PC{0,300}",
            pw in proptest::collection::vec(any::<u8>(), 0..1100),
            authz in "\\PC{0,10}",
        ) {
            let r = Request::new(Service::Imap, "PLAIN", "unknown[::1]", &authz, &user, &pw);
            let b = r.encode();
            prop_assert!(b.len() <= MAX_REQUEST);
            prop_assert_eq!(Request::decode(&b).unwrap(), r);
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..2000)) {
            if let Ok(r) = Request::decode(&b) {
                prop_assert_eq!(r.encode(), b.clone());
            }
            let _ = Answer::decode(&b);
        }
    }
}
