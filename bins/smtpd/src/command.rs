//! command - one SMTP command line into a Command, sans I/O (RFC 5321
//! 4.1, with the parameters of SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING and
//! AUTH). Distrusts every octet: the line is already under the length cap
//! and free of bare CR/LF (the reader checked), and here each path is
//! parsed to the RFC's grammar, so a quoted local part, a source route or
//! an address literal is seen for what it is and never split at the wrong
//! `@` later.

use std::fmt;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail(Path, MailParams),
    Rcpt(Path, RcptParams),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

impl Command {
    /// name - the verb, lowercased, as Postfix counts commands in its
    /// disconnect line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Helo(_) => "helo",
            Command::Ehlo(_) => "ehlo",
            Command::Mail(..) => "mail",
            Command::Rcpt(..) => "rcpt",
            Command::Data => "data",
            Command::Bdat { .. } => "bdat",
            Command::Rset => "rset",
            Command::Noop => "noop",
            Command::Quit => "quit",
            Command::Vrfy => "vrfy",
            Command::Expn => "expn",
            Command::Help => "help",
            Command::StartTls => "starttls",
            Command::Auth { .. } => "auth",
        }
    }
}

/// A mailbox as given in MAIL or RCPT, source route dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// As written: a quoted local part keeps its quotes.
    pub local: String,
    /// The domain, lowercased, or an address literal with its brackets;
    /// empty for `<>` and for RCPT's bare `<postmaster>`.
    pub domain: String,
}

impl Path {
    /// is_null - the null reverse-path `<>`.
    pub fn is_null(&self) -> bool {
        self.local.is_empty() && self.domain.is_empty()
    }

    /// is_ascii - whether the address needs SMTPUTF8.
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }

    /// is_quoted - a quoted-string local part.
    pub fn is_quoted(&self) -> bool {
        self.local.starts_with('"')
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.domain.is_empty() {
            f.write_str(&self.local)
        } else {
            write!(f, "{}@{}", self.local, self.domain)
        }
    }
}

/// MAIL FROM parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    /// 7BIT or 8BITMIME.
    pub body: Option<String>,
    /// FULL or HDRS.
    pub ret: Option<String>,
    /// xtext, kept encoded.
    pub envid: Option<String>,
    pub smtputf8: bool,
}

/// RCPT TO parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// NEVER, or a comma list of SUCCESS, FAILURE, DELAY.
    pub notify: Option<String>,
    /// `addr-type;xtext`, kept encoded.
    pub orcpt: Option<String>,
}

/// Why a line is not a command we take, with its reply code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bad {
    /// 500 5.5.2: not a command.
    Unknown,
    /// 501 5.5.4 or 5.1.x: bad arguments.
    Syntax(&'static str),
    /// 553 5.1.3 (5.1.7 for the sender): a malformed address.
    Address(&'static str),
    /// 555 5.5.4: a parameter we do not know or allow.
    Param(String),
}

/// Longest local part and domain (RFC 5321 4.5.3.1).
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;

/// parse - the command in `line` (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, Bad> {
    let line = std::str::from_utf8(line).map_err(|_| Bad::Syntax("not UTF-8"))?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if rest.trim().is_empty() {
            Ok(c)
        } else {
            Err(Bad::Syntax("no arguments allowed"))
        }
    };
    match verb.as_str() {
        "HELO" | "EHLO" => {
            let name = rest.trim();
            if name.is_empty() || name.len() > MAX_DOMAIN || name.contains(char::is_whitespace) {
                return Err(Bad::Syntax("send a host name: EHLO name"));
            }
            if name.chars().any(|c| c.is_control()) {
                return Err(Bad::Syntax("bad host name"));
            }
            Ok(if verb == "HELO" {
                Command::Helo(name.to_string())
            } else {
                Command::Ehlo(name.to_string())
            })
        }
        "MAIL" => {
            let arg = strip_keyword(rest, "FROM:").ok_or(Bad::Syntax("use MAIL FROM:<address>"))?;
            let (path, params) = split_path(arg)?;
            let path = parse_path(path, true)?;
            Ok(Command::Mail(path, mail_params(params)?))
        }
        "RCPT" => {
            let arg = strip_keyword(rest, "TO:").ok_or(Bad::Syntax("use RCPT TO:<address>"))?;
            let (path, params) = split_path(arg)?;
            let path = parse_path(path, false)?;
            Ok(Command::Rcpt(path, rcpt_params(params)?))
        }
        "DATA" => no_args(Command::Data),
        "BDAT" => {
            let mut w = rest.split(' ');
            let size = w
                .next()
                .filter(|s| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or(Bad::Syntax("use BDAT size [LAST]"))?;
            let last = match w.next() {
                None => false,
                Some(l) if l.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(Bad::Syntax("use BDAT size [LAST]")),
            };
            if w.next().is_some() {
                return Err(Bad::Syntax("use BDAT size [LAST]"));
            }
            Ok(Command::Bdat { size, last })
        }
        "RSET" => no_args(Command::Rset),
        // NOOP and HELP may carry an argument, which is ignored.
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut w = rest.split(' ');
            let mechanism = w
                .next()
                .filter(|m| !m.is_empty() && m.len() <= 20)
                .ok_or(Bad::Syntax("use AUTH mechanism [initial-response]"))?
                .to_ascii_uppercase();
            let initial = w.next().map(str::to_string);
            if w.next().is_some() {
                return Err(Bad::Syntax("use AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(Bad::Unknown),
    }
}

/// strip_keyword - `FROM:` or `TO:` (any case), then optional spaces
/// (RFC 5321 allows none; Postfix and most servers accept them).
fn strip_keyword<'a>(rest: &'a str, kw: &str) -> Option<&'a str> {
    let head = rest.get(..kw.len())?;
    head.eq_ignore_ascii_case(kw)
        .then(|| rest[kw.len()..].trim_start_matches(' '))
}

/// split_path - `<path>` and the parameters after it.
fn split_path(arg: &str) -> Result<(&str, &str), Bad> {
    if !arg.starts_with('<') {
        return Err(Bad::Syntax("the address must be in angle brackets"));
    }
    // The closing '>' is the first one outside a quoted string.
    let b = arg.as_bytes();
    let (mut i, mut quoted) = (1, false);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => {
                let params = &arg[i + 1..];
                if !params.is_empty() && !params.starts_with(' ') {
                    return Err(Bad::Syntax("a space must follow the address"));
                }
                return Ok((&arg[1..i], params.trim_start_matches(' ')));
            }
            _ => {}
        }
        i += 1;
    }
    Err(Bad::Syntax("missing '>'"))
}

/// parse_path - RFC 5321 Path (or `<>` for the sender, `<postmaster>` for
/// a recipient): `[@route,@route:]local@domain`, the route dropped.
fn parse_path(p: &str, sender: bool) -> Result<Path, Bad> {
    if p.is_empty() {
        return if sender {
            Ok(Path {
                local: String::new(),
                domain: String::new(),
            })
        } else {
            Err(Bad::Address("an empty recipient"))
        };
    }
    if !sender && p.eq_ignore_ascii_case("postmaster") {
        return Ok(Path {
            local: "postmaster".into(),
            domain: String::new(),
        });
    }
    // A source route (A-d-l ":"): RFC 5321 4.1.1.3 says to ignore it.
    let p = if p.starts_with('@') {
        let colon = p.find(':').ok_or(Bad::Address("bad source route"))?;
        for hop in p[..colon].split(',') {
            let d = hop
                .strip_prefix('@')
                .ok_or(Bad::Address("bad source route"))?;
            check_domain(d)?;
        }
        &p[colon + 1..]
    } else {
        p
    };
    let (local, domain) = split_mailbox(p)?;
    check_local(local)?;
    let domain = if domain.starts_with('[') {
        check_literal(domain)?;
        domain.to_string()
    } else {
        check_domain(domain)?;
        domain.trim_end_matches('.').to_lowercase()
    };
    Ok(Path {
        local: local.to_string(),
        domain,
    })
}

/// split_mailbox - local part and domain at the `@` after the local part
/// (never an `@` inside quotes).
fn split_mailbox(p: &str) -> Result<(&str, &str), Bad> {
    let b = p.as_bytes();
    let end = if b.first() == Some(&b'"') {
        let mut i = 1;
        loop {
            match b.get(i) {
                None => return Err(Bad::Address("unterminated quoted local part")),
                Some(b'\\') => i += 2,
                Some(b'"') => break i + 1,
                Some(_) => i += 1,
            }
        }
    } else {
        p.find('@')
            .ok_or(Bad::Address("an address needs a domain"))?
    };
    if b.get(end) != Some(&b'@') {
        return Err(Bad::Address("an address needs a domain"));
    }
    Ok((&p[..end], &p[end + 1..]))
}

/// atext - RFC 5322 atext, plus any non-ASCII (RFC 6531 UTF8-non-ascii).
fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// check_local - Dot-string or Quoted-string, at most 64 octets.
fn check_local(l: &str) -> Result<(), Bad> {
    if l.is_empty() || l.len() > MAX_LOCAL {
        return Err(Bad::Address("bad local part length"));
    }
    if let Some(q) = l.strip_prefix('"') {
        let inner = q
            .strip_suffix('"')
            .ok_or(Bad::Address("bad quoted local part"))?;
        let mut it = inner.chars();
        while let Some(c) = it.next() {
            let ok = match c {
                '\\' => it.next().is_some_and(|n| (' '..='~').contains(&n)),
                '"' => false,
                c => (' '..='~').contains(&c) || !c.is_ascii(),
            };
            if !ok {
                return Err(Bad::Address("bad quoted local part"));
            }
        }
        return Ok(());
    }
    if l.split('.').any(|a| a.is_empty() || !a.chars().all(atext)) {
        return Err(Bad::Address("bad local part"));
    }
    Ok(())
}

/// check_domain - dot-separated labels of letters, digits and hyphens
/// (or UTF-8 U-labels, RFC 6531), at most 255 octets.
fn check_domain(d: &str) -> Result<(), Bad> {
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.is_empty() || d.len() > MAX_DOMAIN {
        return Err(Bad::Address("bad domain length"));
    }
    for label in d.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        {
            return Err(Bad::Address("bad domain"));
        }
    }
    Ok(())
}

/// check_literal - `[IPv4]` or `[IPv6:...]`.
fn check_literal(d: &str) -> Result<(), Bad> {
    let inner = d
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or(Bad::Address("bad address literal"))?;
    let ok = match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(Bad::Address("bad address literal"))
    }
}

/// params - `KEY=VALUE` or `KEY` words, keys uppercased; each key once.
fn params(s: &str) -> Result<Vec<(String, Option<&str>)>, Bad> {
    let mut out: Vec<(String, Option<&str>)> = Vec::new();
    for w in s.split(' ').filter(|w| !w.is_empty()) {
        let (k, v) = match w.find('=') {
            Some(i) => (&w[..i], Some(&w[i + 1..])),
            None => (w, None),
        };
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Bad::Syntax("bad parameter"));
        }
        let k = k.to_ascii_uppercase();
        if out.iter().any(|(x, _)| *x == k) {
            return Err(Bad::Syntax("a parameter given twice"));
        }
        out.push((k, v));
    }
    if out.len() > 10 {
        return Err(Bad::Syntax("too many parameters"));
    }
    Ok(out)
}

/// is_xtext - RFC 3461 xtext: printable ASCII but `+` and `=`, with `+XX`
/// hex escapes.
fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex =
                    |c: Option<&u8>| c.is_some_and(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
                if !hex(b.get(i + 1)) || !hex(b.get(i + 2)) {
                    return false;
                }
                i += 3;
            }
            b'!'..=b'~' if b[i] != b'=' => i += 1,
            _ => return false,
        }
    }
    true
}

/// mail_params - SIZE, BODY, RET, ENVID, SMTPUTF8, AUTH (RFC 4954: taken
/// and ignored, as we do not relay the identity).
fn mail_params(s: &str) -> Result<MailParams, Bad> {
    let mut m = MailParams::default();
    for (k, v) in params(s)? {
        match (k.as_str(), v) {
            ("SIZE", Some(n))
                if !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()) =>
            {
                m.size = n.parse().ok();
            }
            ("BODY", Some(b))
                if b.eq_ignore_ascii_case("7BIT") || b.eq_ignore_ascii_case("8BITMIME") =>
            {
                m.body = Some(b.to_ascii_uppercase());
            }
            ("RET", Some(r))
                if r.eq_ignore_ascii_case("FULL") || r.eq_ignore_ascii_case("HDRS") =>
            {
                m.ret = Some(r.to_ascii_uppercase());
            }
            ("ENVID", Some(e)) if !e.is_empty() && e.len() <= 100 && is_xtext(e) => {
                m.envid = Some(e.to_string());
            }
            ("SMTPUTF8", None) => m.smtputf8 = true,
            ("AUTH", Some(a)) if !a.is_empty() && a.len() <= 500 && is_xtext(a) => {}
            (k @ ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH"), _) => {
                return Err(Bad::Param(format!("bad {k} parameter")));
            }
            (k, _) => return Err(Bad::Param(format!("unsupported parameter {k}"))),
        }
    }
    Ok(m)
}

/// rcpt_params - NOTIFY and ORCPT (RFC 3461).
fn rcpt_params(s: &str) -> Result<RcptParams, Bad> {
    let mut r = RcptParams::default();
    for (k, v) in params(s)? {
        match (k.as_str(), v) {
            ("NOTIFY", Some(n)) => {
                let n = n.to_ascii_uppercase();
                let words: Vec<&str> = n.split(',').collect();
                let ok = if words == ["NEVER"] {
                    true
                } else {
                    let mut seen = Vec::new();
                    words.iter().all(|w| {
                        matches!(*w, "SUCCESS" | "FAILURE" | "DELAY") && {
                            let new = !seen.contains(w);
                            seen.push(*w);
                            new
                        }
                    })
                };
                if !ok {
                    return Err(Bad::Param("bad NOTIFY parameter".into()));
                }
                r.notify = Some(n);
            }
            ("ORCPT", Some(o)) => {
                let ok = o.len() <= 500
                    && o.split_once(';').is_some_and(|(t, a)| {
                        !t.is_empty()
                            && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                            && !a.is_empty()
                            && is_xtext(a)
                    });
                if !ok {
                    return Err(Bad::Param("bad ORCPT parameter".into()));
                }
                r.orcpt = Some(o.to_string());
            }
            (k, _) => return Err(Bad::Param(format!("unsupported parameter {k}"))),
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<Command, Bad> {
        parse(s.as_bytes())
    }

    fn path(local: &str, domain: &str) -> Path {
        Path {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn verbs_in_any_case() {
        assert_eq!(
            p("ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(p("HELO x"), Ok(Command::Helo("x".into())));
        assert_eq!(p("Data"), Ok(Command::Data));
        assert_eq!(p("NOOP whatever"), Ok(Command::Noop));
        assert_eq!(p("QUIT now"), Err(Bad::Syntax("no arguments allowed")));
        assert_eq!(p("EHLO"), Err(Bad::Syntax("send a host name: EHLO name")));
        assert_eq!(p("FOO"), Err(Bad::Unknown));
        assert_eq!(p(""), Err(Bad::Unknown));
        assert_eq!(
            p("BDAT 100 LAST"),
            Ok(Command::Bdat {
                size: 100,
                last: true
            })
        );
        assert_eq!(
            p("BDAT 0"),
            Ok(Command::Bdat {
                size: 0,
                last: false
            })
        );
        assert!(p("BDAT -1").is_err() && p("BDAT 1 NOW").is_err() && p("BDAT").is_err());
        assert_eq!(
            p("AUTH plain AGFubgBzZWNyZXQ="),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGFubgBzZWNyZXQ=".into())
            })
        );
    }

    #[test]
    fn mail_and_rcpt_paths() {
        assert_eq!(
            p("MAIL FROM:<Ann@Example.ORG>"),
            Ok(Command::Mail(
                path("Ann", "example.org"),
                MailParams::default()
            ))
        );
        assert_eq!(
            p("mail from: <>"),
            Ok(Command::Mail(path("", ""), MailParams::default()))
        );
        assert_eq!(
            p("RCPT TO:<@relay.example,@b.example:bob@example.org>"),
            Ok(Command::Rcpt(
                path("bob", "example.org"),
                RcptParams::default()
            ))
        );
        assert_eq!(
            p("RCPT TO:<\"user@other\"@example.org>"),
            Ok(Command::Rcpt(
                path("\"user@other\"", "example.org"),
                RcptParams::default()
            ))
        );
        assert_eq!(
            p("RCPT TO:<Postmaster>"),
            Ok(Command::Rcpt(path("postmaster", ""), RcptParams::default()))
        );
        assert_eq!(
            p("RCPT TO:<user@[192.0.2.1]>"),
            Ok(Command::Rcpt(
                path("user", "[192.0.2.1]"),
                RcptParams::default()
            ))
        );
        assert_eq!(
            p("RCPT TO:<user@[IPv6:2001:db8::1]>"),
            Ok(Command::Rcpt(
                path("user", "[IPv6:2001:db8::1]"),
                RcptParams::default()
            ))
        );
        for bad in [
            "MAIL FROM:ann@example.org",
            "MAIL FROM:<ann@example.org",
            "MAIL FROM:<ann@example.org>SIZE=1",
            "RCPT TO:<>",
            "RCPT TO:<bob>",
            "RCPT TO:<bob@>",
            "RCPT TO:<bob@-x.org>",
            "RCPT TO:<.bob@x.org>",
            "RCPT TO:<b..ob@x.org>",
            "RCPT TO:<b ob@x.org>",
            "RCPT TO:<bob@[300.1.1.1]>",
            "RCPT TO:<\"unterminated@x.org>",
            "RCPT TO:<@x.org>",
            "RCPT TO:<@x.org:>",
            "RCPT TO:<bob@x_y.org>",
            "RCPT <bob@x.org>",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let long = format!("RCPT TO:<{}@x.org>", "a".repeat(65));
        assert!(p(&long).is_err());
    }

    #[test]
    fn parameters() {
        let Ok(Command::Mail(_, m)) =
            p("MAIL FROM:<a@b.c> SIZE=1000 BODY=8bitmime RET=HDRS ENVID=QQ+2B1 SMTPUTF8 AUTH=<>")
        else {
            panic!()
        };
        assert_eq!(m.size, Some(1000));
        assert_eq!(m.body.as_deref(), Some("8BITMIME"));
        assert_eq!(m.ret.as_deref(), Some("HDRS"));
        assert_eq!(m.envid.as_deref(), Some("QQ+2B1"));
        assert!(m.smtputf8);
        let Ok(Command::Rcpt(_, r)) =
            p("RCPT TO:<a@b.c> NOTIFY=success,failure ORCPT=rfc822;a+40b.c")
        else {
            panic!()
        };
        assert_eq!(r.notify.as_deref(), Some("SUCCESS,FAILURE"));
        assert_eq!(r.orcpt.as_deref(), Some("rfc822;a+40b.c"));
        for bad in [
            "MAIL FROM:<a@b.c> SIZE=x",
            "MAIL FROM:<a@b.c> BODY=BINARYMIME",
            "MAIL FROM:<a@b.c> FOO=1",
            "MAIL FROM:<a@b.c> SIZE=1 SIZE=2",
            "MAIL FROM:<a@b.c> ENVID=a=b",
            "MAIL FROM:<a@b.c> ENVID=a+zz",
            "RCPT TO:<a@b.c> NOTIFY=NEVER,SUCCESS",
            "RCPT TO:<a@b.c> NOTIFY=SUCCESS,SUCCESS",
            "RCPT TO:<a@b.c> ORCPT=nosemicolon",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Whatever the line, parse answers (no panic), and an accepted
        /// path has no control characters and round-trips its parts.
        #[test]
        fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Command::Mail(pa, _) | Command::Rcpt(pa, _)) = parse(&line) {
                prop_assert!(!pa.to_string().chars().any(|c| c.is_control()));
            }
        }

        #[test]
        fn addresses_round_trip(local in "[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-z0-9]{1,5}){0,2}",
                                domain in "[a-z0-9]{1,10}(\\.[a-z]{2,5}){1,2}") {
            let line = format!("RCPT TO:<{local}@{domain}> NOTIFY=NEVER");
            let Ok(Command::Rcpt(pa, r)) = parse(line.as_bytes()) else {
                return Err(TestCaseError::fail(line));
            };
            prop_assert_eq!(pa.local, local);
            prop_assert_eq!(pa.domain, domain);
            prop_assert_eq!(r.notify.as_deref(), Some("NEVER"));
        }
    }
}
