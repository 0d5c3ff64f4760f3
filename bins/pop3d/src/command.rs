//! command - one client line to a typed POP3 command, with the caps of
//! RFC 2449: a command line is at most 255 octets with its CRLF, an
//! argument at most 40 octets.

/// Longest command line, CRLF included (RFC 2449 section 4).
pub const MAX_COMMAND: usize = 255;
/// Longest argument (RFC 2449 section 4); AUTH's initial response is exempt.
pub const MAX_ARG: usize = 40;

/// A POP3 command (RFC 1939, 2449, 2595, 5034).
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    Capa,
    User(String),
    Pass(Vec<u8>),
    Auth(String, Option<String>),
    Stls,
    Stat,
    List(Option<usize>),
    Uidl(Option<usize>),
    Retr(usize),
    Top(usize, usize),
    Dele(usize),
    Noop,
    Rset,
    Quit,
}

impl std::fmt::Debug for Command {
    /// fmt - as the client sent it, with the password [redacted].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Pass(_) => f.write_str("Pass([redacted])"),
            Command::Auth(m, _) => write!(f, "Auth({m:?}, [redacted])"),
            Command::User(u) => write!(f, "User({u:?})"),
            Command::List(n) => write!(f, "List({n:?})"),
            Command::Uidl(n) => write!(f, "Uidl({n:?})"),
            Command::Retr(n) => write!(f, "Retr({n})"),
            Command::Top(n, l) => write!(f, "Top({n}, {l})"),
            Command::Dele(n) => write!(f, "Dele({n})"),
            other => f.write_str(match other {
                Command::Capa => "Capa",
                Command::Stls => "Stls",
                Command::Stat => "Stat",
                Command::Noop => "Noop",
                Command::Rset => "Rset",
                _ => "Quit",
            }),
        }
    }
}

/// Why a line is not a command; the text goes after `-ERR `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCommand(pub &'static str);

/// number - a message number or a line count: decimal digits only, no sign.
fn number(s: &str) -> Result<usize, BadCommand> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadCommand("invalid number"));
    }
    s.parse().map_err(|_| BadCommand("invalid number"))
}

/// parse - one line (without its CRLF) to a command. `line_len` is the
/// length the client sent, CRLF included, for the RFC 2449 cap.
pub fn parse(line: &[u8], line_len: usize) -> Result<Command, BadCommand> {
    if line_len > MAX_COMMAND {
        return Err(BadCommand("line too long"));
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(BadCommand("not a command"));
    };
    // RFC 1939: keyword and arguments separated by a single space; we also
    // accept runs of spaces, as clients vary, but nothing else.
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let Some(verb) = words.next() else {
        return Err(BadCommand("empty command"));
    };
    let args: Vec<&str> = words.collect();
    if verb.len() > 4 {
        return Err(BadCommand("unknown command"));
    }
    let verb = verb.to_ascii_uppercase();
    // PASS takes the rest of the line: RFC 1939 allows spaces in passwords.
    if verb == "PASS" {
        let rest = text
            .split_once(' ')
            .map(|(_, r)| r.trim_start_matches(' '))
            .unwrap_or("");
        if rest.is_empty() {
            return Err(BadCommand("PASS needs a password"));
        }
        return Ok(Command::Pass(rest.as_bytes().to_vec()));
    }
    if verb != "AUTH" && args.iter().any(|a| a.len() > MAX_ARG) {
        return Err(BadCommand("argument too long"));
    }
    let none = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(BadCommand("no arguments expected"))
        }
    };
    let one = || -> Result<usize, BadCommand> {
        match args.as_slice() {
            [n] => number(n),
            _ => Err(BadCommand("one message number expected")),
        }
    };
    let optional = || -> Result<Option<usize>, BadCommand> {
        match args.as_slice() {
            [] => Ok(None),
            [n] => number(n).map(Some),
            _ => Err(BadCommand("too many arguments")),
        }
    };
    match verb.as_str() {
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        "STAT" => none(Command::Stat),
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "QUIT" => none(Command::Quit),
        "USER" => match args.as_slice() {
            [u] => Ok(Command::User((*u).to_string())),
            _ => Err(BadCommand("USER needs one name")),
        },
        "AUTH" => match args.as_slice() {
            [m] if m.len() <= MAX_ARG => Ok(Command::Auth(m.to_string(), None)),
            [m, ir] if m.len() <= MAX_ARG => Ok(Command::Auth(m.to_string(), Some(ir.to_string()))),
            [] => Err(BadCommand("AUTH needs a mechanism")),
            _ => Err(BadCommand("bad AUTH arguments")),
        },
        "LIST" => optional().map(Command::List),
        "UIDL" => optional().map(Command::Uidl),
        "RETR" => one().map(Command::Retr),
        "DELE" => one().map(Command::Dele),
        "TOP" => match args.as_slice() {
            [n, l] => Ok(Command::Top(number(n)?, number(l)?)),
            _ => Err(BadCommand("TOP needs a message number and a line count")),
        },
        _ => Err(BadCommand("unknown command")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, BadCommand> {
        parse(s.as_bytes(), s.len() + 2)
    }

    #[test]
    fn known_answers() {
        let table: &[(&str, Result<Command, BadCommand>)] = &[
            ("CAPA", Ok(Command::Capa)),
            ("capa", Ok(Command::Capa)),
            ("USER ann", Ok(Command::User("ann".into()))),
            ("PASS two words", Ok(Command::Pass(b"two words".to_vec()))),
            ("PASS", Err(BadCommand("PASS needs a password"))),
            ("STAT", Ok(Command::Stat)),
            ("STAT 1", Err(BadCommand("no arguments expected"))),
            ("LIST", Ok(Command::List(None))),
            ("LIST 2", Ok(Command::List(Some(2)))),
            ("LIST -1", Err(BadCommand("invalid number"))),
            ("LIST +1", Err(BadCommand("invalid number"))),
            ("UIDL 3", Ok(Command::Uidl(Some(3)))),
            ("RETR 1", Ok(Command::Retr(1))),
            ("RETR", Err(BadCommand("one message number expected"))),
            ("TOP 1 0", Ok(Command::Top(1, 0))),
            (
                "TOP 1",
                Err(BadCommand("TOP needs a message number and a line count")),
            ),
            ("DELE 99999999999", Err(BadCommand("invalid number"))),
            ("AUTH PLAIN", Ok(Command::Auth("PLAIN".into(), None))),
            (
                "AUTH PLAIN AGFubgB4",
                Ok(Command::Auth("PLAIN".into(), Some("AGFubgB4".into()))),
            ),
            ("AUTH", Err(BadCommand("AUTH needs a mechanism"))),
            ("STLS", Ok(Command::Stls)),
            ("", Err(BadCommand("empty command"))),
            ("HELO x", Err(BadCommand("unknown command"))),
            ("RETRIEVE 1", Err(BadCommand("unknown command"))),
        ];
        for (line, want) in table {
            assert_eq!(&p(line), want, "{line:?}");
        }
    }

    #[test]
    fn caps() {
        let long = format!("USER {}", "a".repeat(41));
        assert_eq!(p(&long), Err(BadCommand("argument too long")));
        let line = format!("NOOP{}", " ".repeat(251));
        assert_eq!(
            parse(line.as_bytes(), 256),
            Err(BadCommand("line too long"))
        );
        assert_eq!(parse(b"\xff\xfe", 4), Err(BadCommand("not a command")));
    }

    #[test]
    fn passwords_never_print() {
        let c = p("PASS hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = p("AUTH PLAIN AGFubgBodW50ZXIy").unwrap();
        assert!(!format!("{c:?}").contains("AGFubgBodW50ZXIy"));
    }
}
