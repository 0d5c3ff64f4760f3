//! args - sendmail's command line, getopt-style, as Postfix and dma read it.
//!
//! Values may be glued or separate (`-fx`, `-f x`); `--` ends options.
//! Options Postfix ignores are accepted silently; anything else is a
//! usage error (64).

use lexopt::prelude::*;
use std::ffi::OsString;
use std::path::PathBuf;

/// What sendmail was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// -bm (default): deliver a message.
    Deliver,
    /// -bp, mailq: list the queue.
    List,
    /// -bi, -I, newaliases: check the aliases file.
    Aliases,
    /// -q, runq: run the queue now.
    RunQueue,
    /// -bv: verify recipients, send nothing.
    Verify,
    /// -bs: SMTP on stdin/stdout.
    Smtp,
    /// -bd, -bD, -bl: a listening daemon (not how Posthorn works).
    Daemon,
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub mode: Mode,
    pub config: Option<PathBuf>,
    pub sender: Option<String>,
    pub full_name: Option<String>,
    pub ignore_dots: bool,
    pub from_headers: bool,
    pub verbose: bool,
    pub body: Option<String>,
    pub notify: Option<String>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub recipients: Vec<String>,
    /// `-qI<queue-id>` or `-qR<domain>`: run only that part of the queue.
    pub queue_only: Option<QueueOnly>,
}

/// Part of the queue `-q` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOnly {
    Id(String),
    Domain(String),
}

/// Usage line, as in sendmail(8).
pub const USAGE: &str = "usage: sendmail [-i] [-t] [-f sender] [-F name] [-B type] [-N dsn] [-R ret] [-V envid] [-C file] [-bm | -bp | -bi | -bv | -bs | -q] [--] [recipient ...]";

/// parse - read argv (without argv[0]) given the mode implied by argv[0].
pub fn parse(mode: Mode, argv: Vec<OsString>) -> Result<Args, String> {
    let mut a = Args {
        mode,
        config: None,
        sender: None,
        full_name: None,
        ignore_dots: false,
        from_headers: false,
        verbose: false,
        body: None,
        notify: None,
        ret: None,
        envid: None,
        recipients: Vec::new(),
        queue_only: None,
    };
    let mut p = lexopt::Parser::from_args(argv);
    let text = |v: OsString, what: &str| -> Result<String, String> {
        v.into_string()
            .map_err(|_| format!("{what} is not valid UTF-8"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('b') => {
                let m = text(p.value().map_err(|e| e.to_string())?, "-b")?;
                a.mode = match m.as_str() {
                    "m" => Mode::Deliver,
                    "p" => Mode::List,
                    "i" => Mode::Aliases,
                    "v" => Mode::Verify,
                    "s" => Mode::Smtp,
                    "d" | "D" | "l" => Mode::Daemon,
                    // Postfix ignores these.
                    "h" | "H" => a.mode,
                    other => return Err(format!("unsupported mode -b{other}")),
                };
            }
            Short('B') => {
                a.body =
                    Some(text(p.value().map_err(|e| e.to_string())?, "-B")?.to_ascii_uppercase())
            }
            Short('C') => a.config = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?)),
            Short('F') => a.full_name = Some(text(p.value().map_err(|e| e.to_string())?, "-F")?),
            Short('f') | Short('r') => {
                a.sender = Some(text(p.value().map_err(|e| e.to_string())?, "-f")?)
            }
            Short('i') => a.ignore_dots = true,
            Short('I') => a.mode = Mode::Aliases,
            Short('t') => a.from_headers = true,
            Short('v') => a.verbose = true,
            Short('N') => a.notify = Some(text(p.value().map_err(|e| e.to_string())?, "-N")?),
            Short('R') => a.ret = Some(text(p.value().map_err(|e| e.to_string())?, "-R")?),
            Short('V') => a.envid = Some(text(p.value().map_err(|e| e.to_string())?, "-V")?),
            Short('o') => {
                let o = p.value().map_err(|e| e.to_string())?;
                if o == "i" {
                    a.ignore_dots = true;
                }
                // -oA, -od*, -oe*, -om, -o7, -o8 and the rest: ignored, as Postfix does.
            }
            Short('q') => {
                // Only a glued value (-q30m, -qR site, -qIid): a separate word is a recipient.
                let v = p.optional_value().map(|v| v.to_string_lossy().into_owned());
                a.mode = Mode::RunQueue;
                // Postfix's -qI<id> and -qR<site>; -q<interval> is ignored.
                a.queue_only = match v.as_deref() {
                    Some(v) if v.len() > 1 && v.starts_with('I') => {
                        Some(QueueOnly::Id(v[1..].to_string()))
                    }
                    Some(v) if v.len() > 1 && v.starts_with('R') => {
                        Some(QueueOnly::Domain(v[1..].to_string()))
                    }
                    _ => None,
                };
            }
            // Ignored with a value: -A, -h, -L, -O, -X, -e, -p.
            Short('A') | Short('h') | Short('L') | Short('O') | Short('X') | Short('e')
            | Short('p') => {
                let _ = p.value().map_err(|e| e.to_string())?;
            }
            // Ignored flags: -G, -m, -n, -U, -c.
            Short('G') | Short('m') | Short('n') | Short('U') | Short('c') => {}
            Value(v) => a.recipients.push(text(v, "a recipient")?),
            Short(c) => return Err(format!("unknown option -{c}")),
            Long(l) => return Err(format!("unknown option --{l}")),
        }
    }
    for (what, v) in [
        ("-f", &a.sender),
        ("-F", &a.full_name),
        ("-N", &a.notify),
        ("-R", &a.ret),
        ("-V", &a.envid),
    ] {
        if v.as_deref()
            .is_some_and(posthorn_mail::address::has_control)
        {
            return Err(format!("{what}: CR, LF or NUL is not allowed"));
        }
    }
    if a.recipients
        .iter()
        .any(|r| posthorn_mail::address::has_control(r))
    {
        return Err("recipient: CR, LF or NUL is not allowed".into());
    }
    if let Some(n) = &a.notify {
        let n = n.to_ascii_uppercase();
        let ok = n == "NEVER"
            || n.split(',')
                .all(|w| matches!(w.trim(), "SUCCESS" | "FAILURE" | "DELAY"));
        if !ok {
            return Err(format!(
                "-N {n}: expected never or a list of success, failure, delay"
            ));
        }
        a.notify = Some(n.split(',').map(str::trim).collect::<Vec<_>>().join(","));
    }
    if let Some(r) = &a.ret {
        a.ret = Some(match r.to_ascii_lowercase().as_str() {
            "full" => "FULL".into(),
            "hdrs" => "HDRS".into(),
            _ => return Err(format!("-R {r}: expected full or hdrs")),
        });
    }
    if let Some(b) = &a.body
        && !matches!(b.as_str(), "7BIT" | "8BITMIME" | "BINARYMIME")
    {
        return Err(format!("-B {b}: expected 7BIT, 8BITMIME or BINARYMIME"));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, String> {
        parse(
            Mode::Deliver,
            s.split_whitespace().map(OsString::from).collect(),
        )
    }

    #[test]
    fn real_invocations() {
        let a = p("-i -FCronDaemon -B8BITMIME -oem root").unwrap();
        assert!(a.ignore_dots && !a.from_headers);
        assert_eq!(a.full_name.as_deref(), Some("CronDaemon"));
        assert_eq!(a.body.as_deref(), Some("8BITMIME"));
        assert_eq!(a.recipients, ["root"]);

        let a = p("-FCronDaemon -i -odi -oem -oi -t -f root").unwrap();
        assert!(a.from_headers && a.ignore_dots);
        assert_eq!(a.sender.as_deref(), Some("root"));
        assert!(a.recipients.is_empty());

        let a = p("-FAnacron -odi root").unwrap();
        assert!(!a.ignore_dots);
        assert_eq!(a.recipients, ["root"]);

        let a = p("-oem -oi -f me@x -B8BITMIME -- a@x b@y").unwrap();
        assert_eq!(a.recipients, ["a@x", "b@y"]);
        assert_eq!(a.sender.as_deref(), Some("me@x"));

        let a = p("-t -i -fme@x").unwrap();
        assert_eq!(a.sender.as_deref(), Some("me@x"));
        assert!(a.from_headers);

        let a = p("-i -v a@x").unwrap();
        assert!(a.verbose);
        assert_eq!(a.recipients, ["a@x"]);
    }

    #[test]
    fn q_does_not_swallow_a_recipient_and_ignored_options_take_values() {
        let a = p("-q rcpt@x").unwrap();
        assert_eq!(a.mode, Mode::RunQueue);
        assert_eq!(a.recipients, ["rcpt@x"]);
        let a = p("-q30m").unwrap();
        assert_eq!(a.mode, Mode::RunQueue);
        assert_eq!(a.queue_only, None);
        let a = p("-qI1NGNPRN12ZT7").unwrap();
        assert_eq!(a.queue_only, Some(QueueOnly::Id("1NGNPRN12ZT7".into())));
        let a = p("-qRexample.org").unwrap();
        assert_eq!(a.queue_only, Some(QueueOnly::Domain("example.org".into())));
        let a = p("-h 5 -L tag -O x=y -Am -G -m -n -U -X /tmp/log a").unwrap();
        assert_eq!(a.recipients, ["a"]);
    }

    #[test]
    fn dsn_options_and_errors() {
        let a = p("-N failure,delay -R hdrs -V abc a").unwrap();
        assert_eq!(a.notify.as_deref(), Some("FAILURE,DELAY"));
        assert_eq!(a.ret.as_deref(), Some("HDRS"));
        assert_eq!(a.envid.as_deref(), Some("abc"));
        assert!(p("-N sometimes a").is_err());
        assert!(p("-k a").unwrap_err().contains("-k"));
        assert!(p("--bogus a").is_err());
        let bad = parse(
            Mode::Deliver,
            vec!["-f".into(), "a@b\r\nX: y".into(), "c".into()],
        );
        assert!(bad.is_err());
        let bad = parse(Mode::Deliver, vec!["a\nb".into()]);
        assert!(bad.is_err());
    }
}
