//! compile - the generic command tree checked against RFC 5228 and the
//! extensions in script::EXTENSIONS, into a Script. Every error names its
//! line; a ManageSieve CHECKSCRIPT reports exactly these messages.

use crate::Error;
use crate::parser::{Arg, CommandNode, TestNode};
use crate::script::*;

/// compile - source text to a compiled script.
pub fn compile(src: &str) -> Result<Script, Error> {
    if src.len() > crate::MAX_SCRIPT_SIZE {
        return Err(Error::at(
            1,
            format!(
                "script is too large ({} bytes, the limit is {})",
                src.len(),
                crate::MAX_SCRIPT_SIZE
            ),
        ));
    }
    let tokens = crate::lexer::tokenize(src)?;
    let nodes = crate::parser::parse(&tokens, src.matches('\n').count() as u32 + 1)?;
    let mut c = Compiler { requires: 0 };
    let mut at = 0;
    while at < nodes.len() && nodes[at].name == "require" {
        c.require(&nodes[at])?;
        at += 1;
    }
    let commands = c.block(&nodes[at..], 0)?;
    Ok(Script {
        requires: c.requires,
        commands,
    })
}

struct Compiler {
    requires: u64,
}

/// What a tag takes after it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    Nothing,
    Str,
    Strs,
    Num,
}

/// The tags a command or test accepts: name, what follows, the extension
/// it needs (None: core).
type Spec = &'static [(&'static str, Takes, Option<&'static str>)];

const CMP: Spec = &[("comparator", Takes::Str, None)];
const MATCH: Spec = &[
    ("is", Takes::Nothing, None),
    ("contains", Takes::Nothing, None),
    ("matches", Takes::Nothing, None),
    ("regex", Takes::Nothing, Some("regex")),
    ("value", Takes::Str, Some("relational")),
    ("count", Takes::Str, Some("relational")),
];
const ADDR: Spec = &[
    ("all", Takes::Nothing, None),
    ("localpart", Takes::Nothing, None),
    ("domain", Takes::Nothing, None),
    ("user", Takes::Nothing, Some("subaddress")),
    ("detail", Takes::Nothing, Some("subaddress")),
];
const INDEX: Spec = &[
    ("index", Takes::Num, Some("index")),
    ("last", Takes::Nothing, Some("index")),
];

/// The tags found, and the positional arguments after them.
struct Got {
    tags: Vec<(String, Option<Arg>, u32)>,
    pos: Vec<(Arg, u32)>,
}

impl Got {
    fn has(&self, t: &str) -> bool {
        self.tags.iter().any(|(n, _, _)| n == t)
    }
    fn arg(&self, t: &str) -> Option<&Arg> {
        self.tags
            .iter()
            .find(|(n, _, _)| n == t)
            .and_then(|(_, a, _)| a.as_ref())
    }
}

impl Compiler {
    fn has(&self, ext: &str) -> bool {
        EXTENSIONS
            .iter()
            .position(|e| *e == ext)
            .is_some_and(|i| self.requires & (1 << i) != 0)
    }

    /// need - an error unless `ext` was required.
    fn need(&self, ext: &str, what: &str, line: u32) -> Result<(), Error> {
        if self.has(ext) {
            Ok(())
        } else {
            Err(Error::at(
                line,
                format!("{what} requires the \"{ext}\" extension (require \"{ext}\";)"),
            ))
        }
    }

    fn require(&mut self, n: &CommandNode) -> Result<(), Error> {
        if n.block.is_some() || !n.tests.is_empty() || n.args.len() != 1 {
            return Err(Error::at(n.line, "require takes one string list"));
        }
        let Arg::Strs { list, .. } = &n.args[0].0 else {
            return Err(Error::at(n.line, "require takes one string list"));
        };
        for name in list {
            match EXTENSIONS.iter().position(|e| e == name) {
                Some(i) => self.requires |= 1 << i,
                None => {
                    return Err(Error::at(
                        n.line,
                        format!("require: unknown Sieve capability '{name}'"),
                    ));
                }
            }
        }
        if self.has("spamtestplus") {
            self.requires |= 1 << ext_bit("spamtest");
        }
        Ok(())
    }

    /// string - a literal from the script as the compiled form keeps it.
    fn string(&self, raw: &str) -> Str {
        let decoded;
        let s = if self.has("encoded-character") {
            decoded = crate::strings::decode_encoded(raw);
            decoded.as_str()
        } else {
            raw
        };
        if self.has("variables") {
            crate::strings::template(s)
        } else {
            Str::Lit(s.to_string())
        }
    }

    fn strings(&self, list: &[String]) -> Vec<Str> {
        list.iter().map(|s| self.string(s)).collect()
    }

    /// constant - a string that must be known when compiling (comparator
    /// names, relational operators): encoded characters decoded, never
    /// expanded.
    fn constant(&self, raw: &str) -> String {
        if self.has("encoded-character") {
            crate::strings::decode_encoded(raw)
        } else {
            raw.to_string()
        }
    }

    fn block(&self, nodes: &[CommandNode], depth: usize) -> Result<Vec<Line>, Error> {
        let mut out: Vec<Line> = Vec::new();
        let mut i = 0;
        while i < nodes.len() {
            let n = &nodes[i];
            match n.name.as_str() {
                "require" => {
                    return Err(Error::at(
                        n.line,
                        "require must come before any other command, at the top level",
                    ));
                }
                "if" => {
                    let mut branches = vec![(self.cond(n)?, self.body(n, depth)?)];
                    let mut otherwise = None;
                    while let Some(next) = nodes.get(i + 1) {
                        match next.name.as_str() {
                            "elsif" => {
                                branches.push((self.cond(next)?, self.body(next, depth)?));
                                i += 1;
                            }
                            "else" => {
                                if !next.args.is_empty() || !next.tests.is_empty() {
                                    return Err(Error::at(next.line, "else takes no arguments"));
                                }
                                otherwise = Some(self.body(next, depth)?);
                                i += 1;
                                break;
                            }
                            _ => break,
                        }
                    }
                    out.push(Line {
                        line: n.line,
                        cmd: Cmd::If {
                            branches,
                            otherwise,
                        },
                    });
                }
                "elsif" | "else" => {
                    return Err(Error::at(
                        n.line,
                        format!("{} without a preceding if", n.name),
                    ));
                }
                _ => {
                    if n.block.is_some() {
                        return Err(Error::at(
                            n.line,
                            format!("the {} command takes no block", n.name),
                        ));
                    }
                    out.push(Line {
                        line: n.line,
                        cmd: self.command(n)?,
                    });
                }
            }
            i += 1;
        }
        Ok(out)
    }

    fn cond(&self, n: &CommandNode) -> Result<Test, Error> {
        if !n.args.is_empty() || n.tests.len() != 1 || n.test_list {
            return Err(Error::at(n.line, format!("{} takes one test", n.name)));
        }
        self.test(&n.tests[0])
    }

    fn body(&self, n: &CommandNode, depth: usize) -> Result<Vec<Line>, Error> {
        match &n.block {
            Some(b) => self.block(b, depth + 1),
            None => Err(Error::at(n.line, format!("{} needs a block", n.name))),
        }
    }

    /// tags - split arguments into known tags (checked against `specs`)
    /// and the positional arguments that follow them.
    fn tags(
        &self,
        what: &str,
        line: u32,
        args: &[(Arg, u32)],
        specs: &[Spec],
    ) -> Result<Got, Error> {
        let mut got = Got {
            tags: Vec::new(),
            pos: Vec::new(),
        };
        let mut i = 0;
        while i < args.len() {
            let (a, l) = &args[i];
            let Arg::Tag(t) = a else {
                break;
            };
            let spec = specs
                .iter()
                .flat_map(|s| s.iter())
                .find(|(n, _, _)| n == t)
                .ok_or_else(|| {
                    Error::at(*l, format!("unknown tagged argument ':{t}' for {what}"))
                })?;
            if let Some(ext) = spec.2 {
                self.need(ext, &format!(":{t}"), *l)?;
            }
            if got.has(t) {
                return Err(Error::at(*l, format!("{what}: ':{t}' given twice")));
            }
            let val = match spec.1 {
                Takes::Nothing => None,
                takes => {
                    i += 1;
                    let v = args.get(i).map(|(a, _)| a.clone());
                    let ok = matches!(
                        (&v, takes),
                        (Some(Arg::Strs { single: true, .. }), Takes::Str)
                            | (Some(Arg::Strs { .. }), Takes::Strs)
                            | (Some(Arg::Num(_)), Takes::Num)
                    );
                    if !ok {
                        let want = match takes {
                            Takes::Str => "a string",
                            Takes::Strs => "a string list",
                            _ => "a number",
                        };
                        return Err(Error::at(
                            *l,
                            format!("{what}: ':{t}' must be followed by {want}"),
                        ));
                    }
                    v
                }
            };
            got.tags.push((t.clone(), val, *l));
            i += 1;
        }
        for (a, l) in &args[i..] {
            if let Arg::Tag(t) = a {
                return Err(Error::at(
                    *l,
                    format!("{what}: tagged argument ':{t}' after the positional arguments"),
                ));
            }
        }
        got.pos = args[i..].to_vec();
        let _ = line;
        Ok(got)
    }

    /// positional - exactly the argument kinds listed ("s": string, "l":
    /// string list, "n": number).
    fn positional(&self, what: &str, line: u32, got: &Got, kinds: &str) -> Result<(), Error> {
        if got.pos.len() != kinds.len() {
            return Err(Error::at(
                line,
                format!(
                    "{what} takes {} positional argument{}, not {}",
                    kinds.len(),
                    if kinds.len() == 1 { "" } else { "s" },
                    got.pos.len()
                ),
            ));
        }
        for ((a, l), k) in got.pos.iter().zip(kinds.chars()) {
            let ok = matches!(
                (a, k),
                (Arg::Strs { single: true, .. }, 's')
                    | (Arg::Strs { .. }, 'l')
                    | (Arg::Num(_), 'n')
            );
            if !ok {
                let want = match k {
                    's' => "a string",
                    'l' => "a string list",
                    _ => "a number",
                };
                return Err(Error::at(*l, format!("{what}: expected {want}")));
            }
        }
        Ok(())
    }

    /// m - the comparator and match type among the tags.
    fn m(&self, what: &str, line: u32, got: &Got) -> Result<Match, Error> {
        let mut m = Match::default();
        if let Some(Arg::Strs { list, .. }) = got.arg("comparator") {
            let name = self.constant(&list[0]);
            m.cmp = match name.to_ascii_lowercase().as_str() {
                "i;octet" => Comparator::Octet,
                "i;ascii-casemap" => Comparator::AsciiCasemap,
                "i;ascii-numeric" => {
                    self.need(
                        "comparator-i;ascii-numeric",
                        "comparator i;ascii-numeric",
                        line,
                    )?;
                    Comparator::AsciiNumeric
                }
                _ => {
                    return Err(Error::at(
                        line,
                        format!("{what}: unknown comparator '{name}'"),
                    ));
                }
            };
        }
        let kinds: Vec<&(String, Option<Arg>, u32)> = got
            .tags
            .iter()
            .filter(|(n, _, _)| {
                matches!(
                    n.as_str(),
                    "is" | "contains" | "matches" | "regex" | "value" | "count"
                )
            })
            .collect();
        if kinds.len() > 1 {
            return Err(Error::at(
                kinds[1].2,
                format!("{what}: more than one match type"),
            ));
        }
        if let Some((n, v, l)) = kinds.first() {
            m.kind = match n.as_str() {
                "is" => MatchKind::Is,
                "contains" => MatchKind::Contains,
                "matches" => MatchKind::Matches,
                "regex" => MatchKind::Regex,
                _ => {
                    let op = match v {
                        Some(Arg::Strs { list, .. }) => self.constant(&list[0]),
                        _ => String::new(),
                    };
                    let rel = match op.to_ascii_lowercase().as_str() {
                        "gt" => Rel::Gt,
                        "ge" => Rel::Ge,
                        "lt" => Rel::Lt,
                        "le" => Rel::Le,
                        "eq" => Rel::Eq,
                        "ne" => Rel::Ne,
                        _ => {
                            return Err(Error::at(
                                *l,
                                format!(
                                    "{what}: bad relational operator '{op}' (gt, ge, lt, le, eq, ne)"
                                ),
                            ));
                        }
                    };
                    if n == "value" {
                        MatchKind::Value(rel)
                    } else {
                        MatchKind::Count(rel)
                    }
                }
            };
        }
        if m.cmp == Comparator::AsciiNumeric
            && matches!(
                m.kind,
                MatchKind::Contains | MatchKind::Matches | MatchKind::Regex
            )
        {
            return Err(Error::at(
                line,
                format!("{what}: comparator i;ascii-numeric does not support this match type"),
            ));
        }
        Ok(m)
    }

    /// keys - a key list, with :regex keys checked now when they are literal.
    fn keys(&self, m: &Match, list: &[String], line: u32) -> Result<Vec<Str>, Error> {
        let keys = self.strings(list);
        if m.kind == MatchKind::Regex {
            for k in &keys {
                if let Some(lit) = k.literal() {
                    crate::matching::compile_regex(lit, m.cmp).map_err(|e| {
                        Error::at(line, format!("bad regular expression '{lit}': {e}"))
                    })?;
                }
            }
        }
        Ok(keys)
    }

    fn addr_part(&self, what: &str, line: u32, got: &Got) -> Result<AddrPart, Error> {
        let parts: Vec<AddrPart> = got
            .tags
            .iter()
            .filter_map(|(n, _, _)| match n.as_str() {
                "all" => Some(AddrPart::All),
                "localpart" => Some(AddrPart::Local),
                "domain" => Some(AddrPart::Domain),
                "user" => Some(AddrPart::User),
                "detail" => Some(AddrPart::Detail),
                _ => None,
            })
            .collect();
        if parts.len() > 1 {
            return Err(Error::at(
                line,
                format!("{what}: more than one address part"),
            ));
        }
        Ok(parts.first().copied().unwrap_or(AddrPart::All))
    }

    fn index(&self, what: &str, line: u32, got: &Got) -> Result<Option<Index>, Error> {
        match (got.arg("index"), got.has("last")) {
            (Some(Arg::Num(n)), last) => {
                if *n == 0 {
                    return Err(Error::at(line, format!("{what}: :index starts at 1")));
                }
                Ok(Some(Index { n: *n, last }))
            }
            (_, true) => Err(Error::at(line, format!("{what}: :last needs :index"))),
            _ => Ok(None),
        }
    }

    fn list(a: &Arg) -> &[String] {
        match a {
            Arg::Strs { list, .. } => list,
            _ => &[],
        }
    }

    fn one(&self, a: &Arg) -> Str {
        self.string(Self::list(a).first().map_or("", String::as_str))
    }

    fn no_tests(n: &CommandNode) -> Result<(), Error> {
        if n.tests.is_empty() {
            Ok(())
        } else {
            Err(Error::at(n.line, format!("{} takes no test", n.name)))
        }
    }

    fn command(&self, n: &CommandNode) -> Result<Cmd, Error> {
        Self::no_tests(n)?;
        let what = n.name.as_str();
        let line = n.line;
        let flags_spec: Spec = &[("flags", Takes::Strs, Some("imap4flags"))];
        Ok(match what {
            "stop" => {
                self.tags(what, line, &n.args, &[])
                    .and_then(|g| self.positional(what, line, &g, ""))?;
                Cmd::Stop
            }
            "discard" => {
                self.tags(what, line, &n.args, &[])
                    .and_then(|g| self.positional(what, line, &g, ""))?;
                Cmd::Discard
            }
            "keep" => {
                let g = self.tags(what, line, &n.args, &[flags_spec])?;
                self.positional(what, line, &g, "")?;
                Cmd::Keep {
                    flags: g.arg("flags").map(|a| self.strings(Self::list(a))),
                }
            }
            "redirect" => {
                let g = self.tags(
                    what,
                    line,
                    &n.args,
                    &[&[("copy", Takes::Nothing, Some("copy"))]],
                )?;
                self.positional(what, line, &g, "s")?;
                let address = self.one(&g.pos[0].0);
                if let Some(a) = address.literal()
                    && crate::message::parse_single_address(a).is_none()
                {
                    return Err(Error::at(
                        line,
                        format!("specified redirect address '{a}' is invalid"),
                    ));
                }
                Cmd::Redirect {
                    address,
                    copy: g.has("copy"),
                }
            }
            "fileinto" => {
                self.need("fileinto", what, line)?;
                let g = self.tags(
                    what,
                    line,
                    &n.args,
                    &[
                        &[
                            ("copy", Takes::Nothing, Some("copy")),
                            ("create", Takes::Nothing, Some("mailbox")),
                        ],
                        flags_spec,
                    ],
                )?;
                self.positional(what, line, &g, "s")?;
                let mailbox = self.one(&g.pos[0].0);
                if let Some(m) = mailbox.literal()
                    && m.is_empty()
                {
                    return Err(Error::at(line, "fileinto: empty mailbox name"));
                }
                Cmd::FileInto {
                    mailbox,
                    copy: g.has("copy"),
                    create: g.has("create"),
                    flags: g.arg("flags").map(|a| self.strings(Self::list(a))),
                }
            }
            "reject" | "ereject" => {
                self.need(what, what, line)?;
                let g = self.tags(what, line, &n.args, &[])?;
                self.positional(what, line, &g, "s")?;
                Cmd::Reject {
                    reason: self.one(&g.pos[0].0),
                    ereject: what == "ereject",
                }
            }
            "vacation" => self.vacation(n)?,
            "setflag" | "addflag" | "removeflag" => {
                self.need("imap4flags", what, line)?;
                let g = self.tags(what, line, &n.args, &[])?;
                let op = match what {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                if g.pos.len() == 2 {
                    self.need("variables", "a variable name in a flag command", line)?;
                    self.positional(what, line, &g, "sl")?;
                    let var = self.variable_name(what, line, &g.pos[0].0, true)?;
                    Cmd::Flag {
                        op,
                        var: Some(Str::Lit(var)),
                        flags: self.strings(Self::list(&g.pos[1].0)),
                    }
                } else {
                    self.positional(what, line, &g, "l")?;
                    Cmd::Flag {
                        op,
                        var: None,
                        flags: self.strings(Self::list(&g.pos[0].0)),
                    }
                }
            }
            "set" => {
                self.need("variables", what, line)?;
                let g = self.tags(
                    what,
                    line,
                    &n.args,
                    &[&[
                        ("lower", Takes::Nothing, None),
                        ("upper", Takes::Nothing, None),
                        ("lowerfirst", Takes::Nothing, None),
                        ("upperfirst", Takes::Nothing, None),
                        ("quotewildcard", Takes::Nothing, None),
                        ("quoteregex", Takes::Nothing, Some("regex")),
                        ("encodeurl", Takes::Nothing, Some("enotify")),
                        ("length", Takes::Nothing, None),
                    ]],
                )?;
                self.positional(what, line, &g, "ss")?;
                let mut modifiers = Vec::new();
                let mut prec: Vec<(u8, String)> = Vec::new();
                for (t, _, l) in &g.tags {
                    let (m, p) = match t.as_str() {
                        "lower" => (Modifier::Lower, 40),
                        "upper" => (Modifier::Upper, 40),
                        "lowerfirst" => (Modifier::LowerFirst, 30),
                        "upperfirst" => (Modifier::UpperFirst, 30),
                        "quotewildcard" => (Modifier::QuoteWildcard, 20),
                        "quoteregex" => (Modifier::QuoteRegex, 20),
                        "encodeurl" => (Modifier::EncodeUrl, 15),
                        _ => (Modifier::Length, 10),
                    };
                    if let Some((_, other)) = prec.iter().find(|(q, _)| *q == p) {
                        return Err(Error::at(
                            *l,
                            format!("set: modifiers :{other} and :{t} cannot be used together"),
                        ));
                    }
                    prec.push((p, t.clone()));
                    modifiers.push((p, m));
                }
                modifiers.sort_by_key(|m| std::cmp::Reverse(m.0));
                let name = self.variable_name(what, line, &g.pos[0].0, false)?;
                Cmd::Set {
                    modifiers: modifiers.into_iter().map(|(_, m)| m).collect(),
                    name,
                    value: self.one(&g.pos[1].0),
                }
            }
            "notify" => {
                self.need("enotify", what, line)?;
                let g = self.tags(
                    what,
                    line,
                    &n.args,
                    &[&[
                        ("from", Takes::Str, None),
                        ("importance", Takes::Str, None),
                        ("options", Takes::Strs, None),
                        ("message", Takes::Str, None),
                    ]],
                )?;
                self.positional(what, line, &g, "s")?;
                let method = self.one(&g.pos[0].0);
                if let Some(uri) = method.literal() {
                    crate::notify::check_uri(uri)
                        .map_err(|e| Error::at(line, format!("notify: {e}")))?;
                }
                let importance = g.arg("importance").map(|a| self.one(a));
                if let Some(i) = importance.as_ref().and_then(Str::literal)
                    && !matches!(i, "1" | "2" | "3")
                {
                    return Err(Error::at(
                        line,
                        "notify: :importance must be \"1\", \"2\" or \"3\"",
                    ));
                }
                if let Some(f) = g.arg("from").map(|a| self.one(a))
                    && let Some(f) = f.literal()
                    && crate::message::parse_single_address(f).is_none()
                {
                    return Err(Error::at(
                        line,
                        format!("notify: :from address '{f}' is invalid"),
                    ));
                }
                Cmd::Notify(Box::new(Notify {
                    method,
                    from: g.arg("from").map(|a| self.one(a)),
                    importance,
                    options: g
                        .arg("options")
                        .map(|a| self.strings(Self::list(a)))
                        .unwrap_or_default(),
                    message: g.arg("message").map(|a| self.one(a)),
                }))
            }
            "addheader" => {
                self.need("editheader", what, line)?;
                let g = self.tags(what, line, &n.args, &[&[("last", Takes::Nothing, None)]])?;
                self.positional(what, line, &g, "ss")?;
                let name = self.one(&g.pos[0].0);
                if let Some(h) = name.literal()
                    && !crate::message::is_field_name(h)
                {
                    return Err(Error::at(
                        line,
                        format!("addheader: invalid header field name '{h}'"),
                    ));
                }
                let value = self.one(&g.pos[1].0);
                if let Some(v) = value.literal()
                    && v.bytes().any(|b| b == 0)
                {
                    return Err(Error::at(line, "addheader: the value holds a NUL"));
                }
                Cmd::AddHeader {
                    last: g.has("last"),
                    name,
                    value,
                }
            }
            "deleteheader" => {
                self.need("editheader", what, line)?;
                let g = self.tags(
                    what,
                    line,
                    &n.args,
                    &[
                        CMP,
                        MATCH,
                        &[("index", Takes::Num, None), ("last", Takes::Nothing, None)],
                    ],
                )?;
                let m = self.m(what, line, &g)?;
                let index = self.index(what, line, &g)?;
                let values = match g.pos.len() {
                    1 => {
                        self.positional(what, line, &g, "s")?;
                        None
                    }
                    _ => {
                        self.positional(what, line, &g, "sl")?;
                        Some(self.keys(&m, Self::list(&g.pos[1].0), line)?)
                    }
                };
                let name = self.one(&g.pos[0].0);
                if let Some(h) = name.literal()
                    && !crate::message::is_field_name(h)
                {
                    return Err(Error::at(
                        line,
                        format!("deleteheader: invalid header field name '{h}'"),
                    ));
                }
                Cmd::DeleteHeader {
                    index,
                    m,
                    name,
                    values,
                }
            }
            "include" => {
                self.need("include", what, line)?;
                let g = self.tags(
                    what,
                    line,
                    &n.args,
                    &[&[
                        ("personal", Takes::Nothing, None),
                        ("global", Takes::Nothing, None),
                        ("once", Takes::Nothing, None),
                        ("optional", Takes::Nothing, None),
                    ]],
                )?;
                if g.has("personal") && g.has("global") {
                    return Err(Error::at(line, "include: :personal and :global together"));
                }
                self.positional(what, line, &g, "s")?;
                let name = self.one(&g.pos[0].0);
                if let Some(s) = name.literal() {
                    crate::check_script_name(s)
                        .map_err(|e| Error::at(line, format!("include: {e}")))?;
                }
                Cmd::Include {
                    location: if g.has("global") {
                        Location::Global
                    } else {
                        Location::Personal
                    },
                    once: g.has("once"),
                    optional: g.has("optional"),
                    name,
                }
            }
            "return" => {
                self.need("include", what, line)?;
                self.tags(what, line, &n.args, &[])
                    .and_then(|g| self.positional(what, line, &g, ""))?;
                Cmd::Return
            }
            "global" => {
                self.need("include", what, line)?;
                self.need("variables", what, line)?;
                let g = self.tags(what, line, &n.args, &[])?;
                self.positional(what, line, &g, "l")?;
                let mut names = Vec::new();
                for s in Self::list(&g.pos[0].0) {
                    let s = self.constant(s);
                    if !crate::strings::is_identifier(&s) {
                        return Err(Error::at(
                            line,
                            format!("global: invalid variable name '{s}'"),
                        ));
                    }
                    names.push(s.to_ascii_lowercase());
                }
                Cmd::Global(names)
            }
            "if" | "elsif" | "else" | "require" => {
                return Err(Error::at(line, format!("misplaced {what}")));
            }
            _ => return Err(Error::at(line, format!("unknown command '{what}'"))),
        })
    }

    /// variable_name - the name of a variable to assign: an identifier,
    /// optionally (flags) a namespace-free name; never a match variable.
    fn variable_name(&self, what: &str, line: u32, a: &Arg, _flags: bool) -> Result<String, Error> {
        let raw = Self::list(a).first().cloned().unwrap_or_default();
        let s = self.constant(&raw);
        if !crate::strings::is_identifier(&s) {
            return Err(Error::at(
                line,
                format!("{what}: invalid variable name '{s}'"),
            ));
        }
        if s.len() > crate::MAX_VARIABLE_NAME {
            return Err(Error::at(line, format!("{what}: variable name too long")));
        }
        Ok(s.to_ascii_lowercase())
    }

    fn vacation(&self, n: &CommandNode) -> Result<Cmd, Error> {
        let line = n.line;
        self.need("vacation", "vacation", line)?;
        let g = self.tags(
            "vacation",
            line,
            &n.args,
            &[&[
                ("days", Takes::Num, None),
                ("seconds", Takes::Num, Some("vacation-seconds")),
                ("subject", Takes::Str, None),
                ("from", Takes::Str, None),
                ("addresses", Takes::Strs, None),
                ("mime", Takes::Nothing, None),
                ("handle", Takes::Str, None),
            ]],
        )?;
        self.positional("vacation", line, &g, "s")?;
        if g.has("days") && g.has("seconds") {
            return Err(Error::at(line, "vacation: :days and :seconds together"));
        }
        let (seconds, days) = match (g.arg("days"), g.arg("seconds")) {
            (Some(Arg::Num(d)), _) => (Some(d.saturating_mul(86400)), true),
            (_, Some(Arg::Num(s))) => (Some(*s), false),
            _ => (None, true),
        };
        let from = g.arg("from").map(|a| self.one(a));
        if let Some(f) = from.as_ref().and_then(Str::literal)
            && crate::message::parse_single_address(f).is_none()
        {
            return Err(Error::at(
                line,
                format!("vacation: :from address '{f}' is invalid"),
            ));
        }
        Ok(Cmd::Vacation(Box::new(Vacation {
            seconds,
            days,
            subject: g.arg("subject").map(|a| self.one(a)),
            from,
            addresses: g
                .arg("addresses")
                .map(|a| self.strings(Self::list(a)))
                .unwrap_or_default(),
            mime: g.has("mime"),
            handle: g.arg("handle").map(|a| self.one(a)),
            reason: self.one(&g.pos[0].0),
        })))
    }

    fn test(&self, t: &TestNode) -> Result<Test, Error> {
        let what = t.name.as_str();
        let line = t.line;
        let no_sub = || -> Result<(), Error> {
            if t.tests.is_empty() {
                Ok(())
            } else {
                Err(Error::at(line, format!("{what} takes no tests")))
            }
        };
        Ok(match what {
            "true" | "false" => {
                no_sub()?;
                self.tags(what, line, &t.args, &[])
                    .and_then(|g| self.positional(what, line, &g, ""))?;
                if what == "true" {
                    Test::True
                } else {
                    Test::False
                }
            }
            "not" => {
                if !t.args.is_empty() || t.tests.len() != 1 {
                    return Err(Error::at(line, "not takes one test"));
                }
                Test::Not(Box::new(self.test(&t.tests[0])?))
            }
            "allof" | "anyof" => {
                if !t.args.is_empty() || t.tests.is_empty() {
                    return Err(Error::at(line, format!("{what} takes a list of tests")));
                }
                let v = t
                    .tests
                    .iter()
                    .map(|x| self.test(x))
                    .collect::<Result<Vec<_>, _>>()?;
                if what == "allof" {
                    Test::AllOf(v)
                } else {
                    Test::AnyOf(v)
                }
            }
            "address" => {
                no_sub()?;
                let g = self.tags(what, line, &t.args, &[CMP, MATCH, ADDR, INDEX])?;
                self.positional(what, line, &g, "ll")?;
                let m = self.m(what, line, &g)?;
                let headers = self.strings(Self::list(&g.pos[0].0));
                for h in headers.iter().filter_map(Str::literal) {
                    if !crate::message::is_address_header(h) {
                        return Err(Error::at(
                            line,
                            format!("address: header '{h}' does not hold addresses"),
                        ));
                    }
                }
                Test::Address {
                    index: self.index(what, line, &g)?,
                    part: self.addr_part(what, line, &g)?,
                    m,
                    headers,
                    keys: self.keys(&m, Self::list(&g.pos[1].0), line)?,
                }
            }
            "envelope" => {
                no_sub()?;
                self.need("envelope", what, line)?;
                let g = self.tags(what, line, &t.args, &[CMP, MATCH, ADDR])?;
                self.positional(what, line, &g, "ll")?;
                let m = self.m(what, line, &g)?;
                let parts = self.strings(Self::list(&g.pos[0].0));
                for p in parts.iter().filter_map(Str::literal) {
                    // "auth" (the authenticated sender) as Pigeonhole
                    // accepts it; deliver does not know one, so it never matches.
                    if !["from", "to", "auth"]
                        .iter()
                        .any(|x| p.eq_ignore_ascii_case(x))
                    {
                        return Err(Error::at(
                            line,
                            format!("envelope: unknown envelope part '{p}' (from, to, auth)"),
                        ));
                    }
                }
                Test::Envelope {
                    part: self.addr_part(what, line, &g)?,
                    m,
                    parts,
                    keys: self.keys(&m, Self::list(&g.pos[1].0), line)?,
                }
            }
            "header" => {
                no_sub()?;
                let g = self.tags(what, line, &t.args, &[CMP, MATCH, INDEX])?;
                self.positional(what, line, &g, "ll")?;
                let m = self.m(what, line, &g)?;
                Test::Header {
                    index: self.index(what, line, &g)?,
                    m,
                    names: self.strings(Self::list(&g.pos[0].0)),
                    keys: self.keys(&m, Self::list(&g.pos[1].0), line)?,
                }
            }
            "exists" => {
                no_sub()?;
                let g = self.tags(what, line, &t.args, &[])?;
                self.positional(what, line, &g, "l")?;
                Test::Exists(self.strings(Self::list(&g.pos[0].0)))
            }
            "size" => {
                no_sub()?;
                let g = self.tags(
                    what,
                    line,
                    &t.args,
                    &[&[
                        ("over", Takes::Nothing, None),
                        ("under", Takes::Nothing, None),
                    ]],
                )?;
                self.positional(what, line, &g, "n")?;
                if g.has("over") == g.has("under") {
                    return Err(Error::at(line, "size takes one of :over and :under"));
                }
                let Arg::Num(limit) = g.pos[0].0 else {
                    return Err(Error::at(line, "size: expected a number"));
                };
                Test::Size {
                    over: g.has("over"),
                    limit,
                }
            }
            "body" => {
                no_sub()?;
                self.need("body", what, line)?;
                let g = self.tags(
                    what,
                    line,
                    &t.args,
                    &[
                        CMP,
                        MATCH,
                        &[
                            ("raw", Takes::Nothing, None),
                            ("content", Takes::Strs, None),
                            ("text", Takes::Nothing, None),
                        ],
                    ],
                )?;
                self.positional(what, line, &g, "l")?;
                let n = ["raw", "content", "text"]
                    .iter()
                    .filter(|x| g.has(x))
                    .count();
                if n > 1 {
                    return Err(Error::at(line, "body: more than one transform"));
                }
                let m = self.m(what, line, &g)?;
                let transform = if g.has("raw") {
                    Transform::Raw
                } else if let Some(a) = g.arg("content") {
                    Transform::Content(self.strings(Self::list(a)))
                } else {
                    Transform::Text
                };
                Test::Body {
                    m,
                    transform,
                    keys: self.keys(&m, Self::list(&g.pos[0].0), line)?,
                }
            }
            "string" => {
                no_sub()?;
                self.need("variables", what, line)?;
                let g = self.tags(what, line, &t.args, &[CMP, MATCH])?;
                self.positional(what, line, &g, "ll")?;
                let m = self.m(what, line, &g)?;
                Test::String {
                    m,
                    sources: self.strings(Self::list(&g.pos[0].0)),
                    keys: self.keys(&m, Self::list(&g.pos[1].0), line)?,
                }
            }
            "hasflag" => {
                no_sub()?;
                self.need("imap4flags", what, line)?;
                let g = self.tags(what, line, &t.args, &[CMP, MATCH])?;
                let m = self.m(what, line, &g)?;
                if g.pos.len() == 2 {
                    self.need("variables", "a variable list in hasflag", line)?;
                    self.positional(what, line, &g, "ll")?;
                    Test::HasFlag {
                        m,
                        vars: Some(self.strings(Self::list(&g.pos[0].0))),
                        keys: self.keys(&m, Self::list(&g.pos[1].0), line)?,
                    }
                } else {
                    self.positional(what, line, &g, "l")?;
                    Test::HasFlag {
                        m,
                        vars: None,
                        keys: self.keys(&m, Self::list(&g.pos[0].0), line)?,
                    }
                }
            }
            "date" | "currentdate" => {
                no_sub()?;
                self.need("date", what, line)?;
                let zone_spec: Spec = if what == "date" {
                    &[
                        ("zone", Takes::Str, None),
                        ("originalzone", Takes::Nothing, None),
                    ]
                } else {
                    &[("zone", Takes::Str, None)]
                };
                let specs: &[Spec] = if what == "date" {
                    &[CMP, MATCH, INDEX, zone_spec]
                } else {
                    &[CMP, MATCH, zone_spec]
                };
                let g = self.tags(what, line, &t.args, specs)?;
                if g.has("zone") && g.has("originalzone") {
                    return Err(Error::at(line, "date: :zone and :originalzone together"));
                }
                let zone = match g.arg("zone") {
                    Some(a) => {
                        let z = self.one(a);
                        if let Some(l) = z.literal()
                            && crate::datetime::parse_zone(l).is_none()
                        {
                            return Err(Error::at(
                                line,
                                format!("{what}: bad :zone '{l}' (+hhmm or -hhmm)"),
                            ));
                        }
                        Zone::Fixed(z)
                    }
                    None if g.has("originalzone") => Zone::Original,
                    None => Zone::Local,
                };
                let m = self.m(what, line, &g)?;
                let (header, rest) = if what == "date" {
                    self.positional(what, line, &g, "sll")?;
                    (Some(self.one(&g.pos[0].0)), &g.pos[1..])
                } else {
                    self.positional(what, line, &g, "sl")?;
                    (None, &g.pos[..])
                };
                let part = self.one(&rest[0].0);
                if let Some(p) = part.literal()
                    && !crate::datetime::PARTS.contains(&p.to_ascii_lowercase().as_str())
                {
                    return Err(Error::at(line, format!("{what}: unknown date part '{p}'")));
                }
                let keys = self.keys(&m, Self::list(&rest[1].0), line)?;
                match header {
                    Some(header) => Test::Date {
                        index: self.index(what, line, &g)?,
                        zone,
                        m,
                        header,
                        part,
                        keys,
                    },
                    None => Test::CurrentDate {
                        zone,
                        m,
                        part,
                        keys,
                    },
                }
            }
            "duplicate" => {
                no_sub()?;
                self.need("duplicate", what, line)?;
                let g = self.tags(
                    what,
                    line,
                    &t.args,
                    &[&[
                        ("handle", Takes::Str, None),
                        ("header", Takes::Str, None),
                        ("uniqueid", Takes::Str, None),
                        ("seconds", Takes::Num, None),
                        ("last", Takes::Nothing, None),
                    ]],
                )?;
                self.positional(what, line, &g, "")?;
                if g.has("header") && g.has("uniqueid") {
                    return Err(Error::at(line, "duplicate: :header and :uniqueid together"));
                }
                let source = if let Some(a) = g.arg("header") {
                    let h = self.one(a);
                    if let Some(l) = h.literal()
                        && !crate::message::is_field_name(l)
                    {
                        return Err(Error::at(
                            line,
                            format!("duplicate: invalid header name '{l}'"),
                        ));
                    }
                    DupSource::Header(h)
                } else if let Some(a) = g.arg("uniqueid") {
                    DupSource::UniqueId(self.one(a))
                } else {
                    DupSource::MessageId
                };
                Test::Duplicate {
                    handle: g.arg("handle").map(|a| self.one(a)),
                    source,
                    seconds: match g.arg("seconds") {
                        Some(Arg::Num(n)) => Some(*n),
                        _ => None,
                    },
                    last: g.has("last"),
                }
            }
            "valid_notify_method" => {
                no_sub()?;
                self.need("enotify", what, line)?;
                let g = self.tags(what, line, &t.args, &[])?;
                self.positional(what, line, &g, "l")?;
                Test::ValidNotifyMethod(self.strings(Self::list(&g.pos[0].0)))
            }
            "notify_method_capability" => {
                no_sub()?;
                self.need("enotify", what, line)?;
                let g = self.tags(what, line, &t.args, &[CMP, MATCH])?;
                self.positional(what, line, &g, "sll")?;
                let m = self.m(what, line, &g)?;
                Test::NotifyMethodCapability {
                    m,
                    uri: self.one(&g.pos[0].0),
                    capability: self.one(&g.pos[1].0),
                    keys: self.keys(&m, Self::list(&g.pos[2].0), line)?,
                }
            }
            "environment" => {
                no_sub()?;
                self.need("environment", what, line)?;
                let g = self.tags(what, line, &t.args, &[CMP, MATCH])?;
                self.positional(what, line, &g, "sl")?;
                let m = self.m(what, line, &g)?;
                Test::Environment {
                    m,
                    name: self.one(&g.pos[0].0),
                    keys: self.keys(&m, Self::list(&g.pos[1].0), line)?,
                }
            }
            "mailboxexists" => {
                no_sub()?;
                self.need("mailbox", what, line)?;
                let g = self.tags(what, line, &t.args, &[])?;
                self.positional(what, line, &g, "l")?;
                Test::MailboxExists(self.strings(Self::list(&g.pos[0].0)))
            }
            "spamtest" => {
                no_sub()?;
                self.need("spamtest", what, line)?;
                let g = self.tags(
                    what,
                    line,
                    &t.args,
                    &[
                        CMP,
                        MATCH,
                        &[("percent", Takes::Nothing, Some("spamtestplus"))],
                    ],
                )?;
                self.positional(what, line, &g, "s")?;
                Test::SpamTest {
                    percent: g.has("percent"),
                    m: self.m(what, line, &g)?,
                    value: self.one(&g.pos[0].0),
                }
            }
            "virustest" => {
                no_sub()?;
                self.need("virustest", what, line)?;
                let g = self.tags(what, line, &t.args, &[CMP, MATCH])?;
                self.positional(what, line, &g, "s")?;
                Test::VirusTest {
                    m: self.m(what, line, &g)?,
                    value: self.one(&g.pos[0].0),
                }
            }
            _ => return Err(Error::at(line, format!("unknown test '{what}'"))),
        })
    }
}

/// ext_bit - the bit of a known extension.
fn ext_bit(name: &str) -> usize {
    EXTENSIONS.iter().position(|e| *e == name).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> Error {
        match compile(s) {
            Ok(_) => panic!("compiled: {s}"),
            Err(e) => e,
        }
    }

    #[test]
    fn rfc5228_examples_compile() {
        // RFC 5228 §9, the first example (with its requires).
        let s = r#"
require ["fileinto"];
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
            fileinto "filter";  # move to "filter" mailbox
        }
        #
        # Keep all messages to or from people in my company
        #
        elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
            keep;               # keep in "In" mailbox
        }
        elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
            fileinto "spam";   # move to "spam" mailbox
        }
        else
        {
            fileinto "personal";
        }
"#;
        let c = compile(s).unwrap();
        assert_eq!(c.commands.len(), 1);
        let Cmd::If {
            branches,
            otherwise,
        } = &c.commands[0].cmd
        else {
            panic!()
        };
        assert_eq!(branches.len(), 3);
        assert!(otherwise.is_some());
        assert!(c.has("fileinto") && !c.has("vacation"));
    }

    #[test]
    fn every_extension_compiles() {
        let s = r#"require ["fileinto","reject","ereject","envelope","encoded-character","vacation",
 "vacation-seconds","subaddress","comparator-i;ascii-numeric","relational","regex","imap4flags",
 "copy","include","body","variables","enotify","environment","mailbox","date","index","duplicate",
 "editheader","spamtest","spamtestplus","virustest"];
if envelope :detail "to" "x" { fileinto :copy :create :flags ["\\Seen"] "a.b"; }
if header :regex "subject" "^(re|fwd): (.*)$" { set :lower "s" "${2}"; }
if body :content "text" :contains "x" { addflag "\\Flagged"; }
if date :originalzone :value "ge" :comparator "i;ascii-numeric" "date" "year" "2020" { stop; }
if currentdate :zone "+0100" "weekday" "0" { discard; }
if duplicate :seconds 60 :handle "h" :uniqueid "${1}" { discard; }
if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" { fileinto "Junk"; }
if virustest :value "eq" :comparator "i;ascii-numeric" "5" { discard; }
if environment :is "location" "MDA" { keep; }
if mailboxexists "x" { keep; }
if valid_notify_method "mailto:a@b.c" { notify :importance "1" :message "hi" "mailto:a@b.c?subject=x"; }
if hasflag :count "ge" :comparator "i;ascii-numeric" "1" { removeflag "f" "x"; }
if string :is "${x}" "" { global ["g"]; }
if address :index 2 :last :user "from" "a" { deleteheader :index 1 "x-a"; addheader :last "X-B" "v"; }
vacation :seconds 10 :subject "s" :from "a@b.c" :addresses ["x@y.z"] :mime :handle "h" "r";
include :personal :once :optional "other";
redirect :copy "a@b.c";
ereject "${hex:41}";
"#;
        let c = compile(s).unwrap();
        assert!(c.has("spamtest"));
        // encoded-character decoded at compile time.
        assert!(matches!(&c.commands.last().unwrap().cmd,
            Cmd::Reject { reason: Str::Lit(r), .. } if r == "A"));
    }

    #[test]
    fn errors() {
        for (s, line, frag) in [
            ("require \"nosuch\";", 1, "unknown Sieve capability"),
            (
                "keep;\nrequire \"fileinto\";",
                2,
                "require must come before",
            ),
            ("fileinto \"x\";", 1, "requires the \"fileinto\" extension"),
            ("if true { keep; }\nelsif true;", 2, "needs a block"),
            ("keep;\nfileinto \"x\"\nstop;", 2, "takes no test"),
            ("else { keep; }", 1, "without a preceding if"),
            ("frobnicate;", 1, "unknown command"),
            ("if frob { }", 1, "unknown test"),
            (
                "if header :is :contains \"a\" \"b\" {}",
                1,
                "more than one match type",
            ),
            (
                "if header :comparator \"i;nope\" \"a\" \"b\" {}",
                1,
                "unknown comparator",
            ),
            (
                "if header :value \"gt\" \"a\" \"b\" {}",
                1,
                "requires the \"relational\"",
            ),
            (
                "require \"regex\";\nif header :regex \"a\" \"(\" {}",
                2,
                "bad regular expression",
            ),
            ("redirect \"not an address\";", 1, "invalid"),
            ("if size :over :under 1 {}", 1, ":over and :under"),
            ("if size 1 {}", 1, ":over and :under"),
            ("if header \"a\" {}", 1, "positional"),
            ("keep :flags [\"a\"];", 1, "imap4flags"),
            (
                "require \"envelope\";\nif envelope \"auth2\" \"x\" {}",
                2,
                "unknown envelope part",
            ),
            (
                "require \"variables\";\nset :lower :upper \"a\" \"b\";",
                2,
                "cannot be used together",
            ),
            (
                "require \"variables\";\nset \"1\" \"b\";",
                2,
                "invalid variable name",
            ),
            (
                "require \"date\";\nif date \"date\" \"eon\" \"x\" {}",
                2,
                "unknown date part",
            ),
            (
                "if address \"subject\" \"x\" {}",
                1,
                "does not hold addresses",
            ),
            ("require \"enotify\";\nnotify \"xmpp:a@b\";", 2, "notify"),
            (
                "require [\"comparator-i;ascii-numeric\"];\nif header :contains :comparator \"i;ascii-numeric\" \"a\" \"1\" {}",
                2,
                "does not support",
            ),
            ("if true { keep; } keep :x;", 1, "unknown tagged argument"),
        ] {
            let e = err(s);
            assert_eq!(e.line, line, "{s:?}: {e}");
            assert!(e.message.contains(frag), "{s:?}: {e}");
        }
    }

    #[test]
    fn size_limit() {
        let big = format!("# {}\nkeep;", "x".repeat(crate::MAX_SCRIPT_SIZE));
        assert!(err(&big).message.contains("too large"));
    }
}
