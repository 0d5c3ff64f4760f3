//! codec - the compiled form as bytes, for the cache file beside each
//! script (cache.rs): a magic line, the script's identity, the tree, and
//! a checksum.
//!
//! Distrusts the file: it lives in the user's directory and may be cut
//! short, damaged or forged. Every read is bounds-checked, nesting and
//! list lengths are limited, and anything odd makes `decode` fail, after
//! which the script is simply compiled again. A forged file can do no
//! more than a script could.

use crate::script::*;

/// The first bytes of a cache file; the version changes whenever the
/// compiled form or its meaning does.
pub const MAGIC: &[u8] = b"PHSVBIN 1\n";

/// Longest list or string a cache file may hold.
const MAX_LEN: usize = 1 << 22;

/// encode - the script as bytes, after `identity` (the script file's
/// stamp, see cache.rs).
pub fn encode(script: &Script, identity: &[u8]) -> Vec<u8> {
    let mut e = Enc(Vec::with_capacity(4096));
    e.0.extend_from_slice(MAGIC);
    e.bytes(identity);
    e.u64(script.requires);
    e.lines(&script.commands);
    let sum = fnv(&e.0);
    e.0.extend_from_slice(&sum.to_le_bytes());
    e.0
}

/// identity - the stamp stored in a cache file, without decoding the rest.
pub fn identity(data: &[u8]) -> Option<&[u8]> {
    let mut d = Dec {
        b: data.get(..data.len().checked_sub(8)?)?,
        at: 0,
        depth: 0,
    };
    if !d.b.starts_with(MAGIC) {
        return None;
    }
    d.at = MAGIC.len();
    let n = d.len().ok()?;
    d.b.get(d.at..d.at + n)
}

/// decode - a script from a cache file's bytes; Err on anything wrong.
pub fn decode(data: &[u8]) -> Result<Script, &'static str> {
    if data.len() < MAGIC.len() + 8 || !data.starts_with(MAGIC) {
        return Err("not a compiled script");
    }
    let (body, sum) = data.split_at(data.len() - 8);
    let mut s = [0u8; 8];
    s.copy_from_slice(sum);
    if fnv(body) != u64::from_le_bytes(s) {
        return Err("checksum mismatch");
    }
    let mut d = Dec {
        b: body,
        at: MAGIC.len(),
        depth: 0,
    };
    let _identity = d.bytes()?;
    let requires = d.u64()?;
    let commands = d.lines()?;
    if d.at != d.b.len() {
        return Err("trailing bytes");
    }
    Ok(Script { requires, commands })
}

/// fnv - FNV-1a, 64 bits: enough to notice damage, not a defence.
pub fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn s(&mut self, s: &Str) {
        match s {
            Str::Lit(l) => {
                self.u8(0);
                self.string(l);
            }
            Str::Tpl(parts) => {
                self.u8(1);
                self.u64(parts.len() as u64);
                for p in parts {
                    match p {
                        Part::Lit(l) => {
                            self.u8(0);
                            self.string(l);
                        }
                        Part::Var(v) => {
                            self.u8(1);
                            self.string(v);
                        }
                        Part::Match(n) => {
                            self.u8(2);
                            self.u64(u64::from(*n));
                        }
                    }
                }
            }
        }
    }
    fn ss(&mut self, v: &[Str]) {
        self.u64(v.len() as u64);
        for s in v {
            self.s(s);
        }
    }
    fn opt_s(&mut self, v: &Option<Str>) {
        match v {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.s(s);
            }
        }
    }
    fn opt_ss(&mut self, v: &Option<Vec<Str>>) {
        match v {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.ss(s);
            }
        }
    }
    fn m(&mut self, m: &Match) {
        self.u8(match m.cmp {
            Comparator::Octet => 0,
            Comparator::AsciiCasemap => 1,
            Comparator::AsciiNumeric => 2,
        });
        let rel = |r: Rel| match r {
            Rel::Gt => 0,
            Rel::Ge => 1,
            Rel::Lt => 2,
            Rel::Le => 3,
            Rel::Eq => 4,
            Rel::Ne => 5,
        };
        match m.kind {
            MatchKind::Is => self.u8(0),
            MatchKind::Contains => self.u8(1),
            MatchKind::Matches => self.u8(2),
            MatchKind::Regex => self.u8(3),
            MatchKind::Value(r) => {
                self.u8(4);
                self.u8(rel(r));
            }
            MatchKind::Count(r) => {
                self.u8(5);
                self.u8(rel(r));
            }
        }
    }
    fn part(&mut self, p: AddrPart) {
        self.u8(match p {
            AddrPart::All => 0,
            AddrPart::Local => 1,
            AddrPart::Domain => 2,
            AddrPart::User => 3,
            AddrPart::Detail => 4,
        });
    }
    fn index(&mut self, i: &Option<Index>) {
        match i {
            None => self.u8(0),
            Some(i) => {
                self.u8(1);
                self.u64(i.n);
                self.bool(i.last);
            }
        }
    }
    fn zone(&mut self, z: &Zone) {
        match z {
            Zone::Local => self.u8(0),
            Zone::Original => self.u8(1),
            Zone::Fixed(s) => {
                self.u8(2);
                self.s(s);
            }
        }
    }
    fn lines(&mut self, v: &[Line]) {
        self.u64(v.len() as u64);
        for l in v {
            self.u64(u64::from(l.line));
            self.cmd(&l.cmd);
        }
    }
    fn cmd(&mut self, c: &Cmd) {
        match c {
            Cmd::If {
                branches,
                otherwise,
            } => {
                self.u8(0);
                self.u64(branches.len() as u64);
                for (t, b) in branches {
                    self.test(t);
                    self.lines(b);
                }
                match otherwise {
                    None => self.u8(0),
                    Some(b) => {
                        self.u8(1);
                        self.lines(b);
                    }
                }
            }
            Cmd::Stop => self.u8(1),
            Cmd::Keep { flags } => {
                self.u8(2);
                self.opt_ss(flags);
            }
            Cmd::Discard => self.u8(3),
            Cmd::Redirect { address, copy } => {
                self.u8(4);
                self.s(address);
                self.bool(*copy);
            }
            Cmd::FileInto {
                mailbox,
                copy,
                create,
                flags,
            } => {
                self.u8(5);
                self.s(mailbox);
                self.bool(*copy);
                self.bool(*create);
                self.opt_ss(flags);
            }
            Cmd::Reject { reason, ereject } => {
                self.u8(6);
                self.s(reason);
                self.bool(*ereject);
            }
            Cmd::Vacation(v) => {
                self.u8(7);
                match v.seconds {
                    None => self.u8(0),
                    Some(s) => {
                        self.u8(1);
                        self.u64(s);
                    }
                }
                self.bool(v.days);
                self.opt_s(&v.subject);
                self.opt_s(&v.from);
                self.ss(&v.addresses);
                self.bool(v.mime);
                self.opt_s(&v.handle);
                self.s(&v.reason);
            }
            Cmd::Flag { op, var, flags } => {
                self.u8(8);
                self.u8(match op {
                    FlagOp::Set => 0,
                    FlagOp::Add => 1,
                    FlagOp::Remove => 2,
                });
                self.opt_s(var);
                self.ss(flags);
            }
            Cmd::Set {
                modifiers,
                name,
                value,
            } => {
                self.u8(9);
                self.u64(modifiers.len() as u64);
                for m in modifiers {
                    self.u8(match m {
                        Modifier::EncodeUrl => 0,
                        Modifier::QuoteWildcard => 1,
                        Modifier::QuoteRegex => 2,
                        Modifier::Length => 3,
                        Modifier::Lower => 4,
                        Modifier::Upper => 5,
                        Modifier::LowerFirst => 6,
                        Modifier::UpperFirst => 7,
                    });
                }
                self.string(name);
                self.s(value);
            }
            Cmd::Notify(n) => {
                self.u8(10);
                self.s(&n.method);
                self.opt_s(&n.from);
                self.opt_s(&n.importance);
                self.ss(&n.options);
                self.opt_s(&n.message);
            }
            Cmd::AddHeader { last, name, value } => {
                self.u8(11);
                self.bool(*last);
                self.s(name);
                self.s(value);
            }
            Cmd::DeleteHeader {
                index,
                m,
                name,
                values,
            } => {
                self.u8(12);
                self.index(index);
                self.m(m);
                self.s(name);
                self.opt_ss(values);
            }
            Cmd::Include {
                location,
                once,
                optional,
                name,
            } => {
                self.u8(13);
                self.bool(*location == Location::Global);
                self.bool(*once);
                self.bool(*optional);
                self.s(name);
            }
            Cmd::Return => self.u8(14),
            Cmd::Global(names) => {
                self.u8(15);
                self.u64(names.len() as u64);
                for n in names {
                    self.string(n);
                }
            }
        }
    }
    fn tests(&mut self, v: &[Test]) {
        self.u64(v.len() as u64);
        for t in v {
            self.test(t);
        }
    }
    fn test(&mut self, t: &Test) {
        match t {
            Test::True => self.u8(0),
            Test::False => self.u8(1),
            Test::Not(x) => {
                self.u8(2);
                self.test(x);
            }
            Test::AllOf(v) => {
                self.u8(3);
                self.tests(v);
            }
            Test::AnyOf(v) => {
                self.u8(4);
                self.tests(v);
            }
            Test::Address {
                index,
                part,
                m,
                headers,
                keys,
            } => {
                self.u8(5);
                self.index(index);
                self.part(*part);
                self.m(m);
                self.ss(headers);
                self.ss(keys);
            }
            Test::Envelope {
                part,
                m,
                parts,
                keys,
            } => {
                self.u8(6);
                self.part(*part);
                self.m(m);
                self.ss(parts);
                self.ss(keys);
            }
            Test::Header {
                index,
                m,
                names,
                keys,
            } => {
                self.u8(7);
                self.index(index);
                self.m(m);
                self.ss(names);
                self.ss(keys);
            }
            Test::Exists(v) => {
                self.u8(8);
                self.ss(v);
            }
            Test::Size { over, limit } => {
                self.u8(9);
                self.bool(*over);
                self.u64(*limit);
            }
            Test::Body { m, transform, keys } => {
                self.u8(10);
                self.m(m);
                match transform {
                    Transform::Raw => self.u8(0),
                    Transform::Content(c) => {
                        self.u8(1);
                        self.ss(c);
                    }
                    Transform::Text => self.u8(2),
                }
                self.ss(keys);
            }
            Test::String { m, sources, keys } => {
                self.u8(11);
                self.m(m);
                self.ss(sources);
                self.ss(keys);
            }
            Test::HasFlag { m, vars, keys } => {
                self.u8(12);
                self.m(m);
                self.opt_ss(vars);
                self.ss(keys);
            }
            Test::Date {
                index,
                zone,
                m,
                header,
                part,
                keys,
            } => {
                self.u8(13);
                self.index(index);
                self.zone(zone);
                self.m(m);
                self.s(header);
                self.s(part);
                self.ss(keys);
            }
            Test::CurrentDate {
                zone,
                m,
                part,
                keys,
            } => {
                self.u8(14);
                self.zone(zone);
                self.m(m);
                self.s(part);
                self.ss(keys);
            }
            Test::Duplicate {
                handle,
                source,
                seconds,
                last,
            } => {
                self.u8(15);
                self.opt_s(handle);
                match source {
                    DupSource::MessageId => self.u8(0),
                    DupSource::Header(h) => {
                        self.u8(1);
                        self.s(h);
                    }
                    DupSource::UniqueId(u) => {
                        self.u8(2);
                        self.s(u);
                    }
                }
                match seconds {
                    None => self.u8(0),
                    Some(s) => {
                        self.u8(1);
                        self.u64(*s);
                    }
                }
                self.bool(*last);
            }
            Test::ValidNotifyMethod(v) => {
                self.u8(16);
                self.ss(v);
            }
            Test::NotifyMethodCapability {
                m,
                uri,
                capability,
                keys,
            } => {
                self.u8(17);
                self.m(m);
                self.s(uri);
                self.s(capability);
                self.ss(keys);
            }
            Test::Environment { m, name, keys } => {
                self.u8(18);
                self.m(m);
                self.s(name);
                self.ss(keys);
            }
            Test::MailboxExists(v) => {
                self.u8(19);
                self.ss(v);
            }
            Test::SpamTest { percent, m, value } => {
                self.u8(20);
                self.bool(*percent);
                self.m(m);
                self.s(value);
            }
            Test::VirusTest { m, value } => {
                self.u8(21);
                self.m(m);
                self.s(value);
            }
        }
    }
}

type R<T> = Result<T, &'static str>;

struct Dec<'a> {
    b: &'a [u8],
    at: usize,
    depth: usize,
}

impl Dec<'_> {
    fn u8(&mut self) -> R<u8> {
        let v = *self.b.get(self.at).ok_or("cut short")?;
        self.at += 1;
        Ok(v)
    }
    fn u64(&mut self) -> R<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("bad number")
    }
    fn len(&mut self) -> R<usize> {
        let n = self.u64()? as usize;
        if n > MAX_LEN || n > self.b.len() {
            return Err("bad length");
        }
        Ok(n)
    }
    fn bool(&mut self) -> R<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("bad flag"),
        }
    }
    fn bytes(&mut self) -> R<Vec<u8>> {
        let n = self.len()?;
        let v = self
            .b
            .get(self.at..self.at + n)
            .ok_or("cut short")?
            .to_vec();
        self.at += n;
        Ok(v)
    }
    fn string(&mut self) -> R<String> {
        String::from_utf8(self.bytes()?).map_err(|_| "bad text")
    }
    fn s(&mut self) -> R<Str> {
        Ok(match self.u8()? {
            0 => Str::Lit(self.string()?),
            1 => {
                let n = self.len()?;
                let mut parts = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    parts.push(match self.u8()? {
                        0 => Part::Lit(self.string()?),
                        1 => Part::Var(self.string()?),
                        2 => Part::Match(u32::try_from(self.u64()?).map_err(|_| "bad match")?),
                        _ => return Err("bad part"),
                    });
                }
                Str::Tpl(parts)
            }
            _ => return Err("bad string"),
        })
    }
    fn ss(&mut self) -> R<Vec<Str>> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            v.push(self.s()?);
        }
        Ok(v)
    }
    fn opt_s(&mut self) -> R<Option<Str>> {
        Ok(if self.bool()? { Some(self.s()?) } else { None })
    }
    fn opt_ss(&mut self) -> R<Option<Vec<Str>>> {
        Ok(if self.bool()? { Some(self.ss()?) } else { None })
    }
    fn rel(&mut self) -> R<Rel> {
        Ok(match self.u8()? {
            0 => Rel::Gt,
            1 => Rel::Ge,
            2 => Rel::Lt,
            3 => Rel::Le,
            4 => Rel::Eq,
            5 => Rel::Ne,
            _ => return Err("bad relation"),
        })
    }
    fn m(&mut self) -> R<Match> {
        let cmp = match self.u8()? {
            0 => Comparator::Octet,
            1 => Comparator::AsciiCasemap,
            2 => Comparator::AsciiNumeric,
            _ => return Err("bad comparator"),
        };
        let kind = match self.u8()? {
            0 => MatchKind::Is,
            1 => MatchKind::Contains,
            2 => MatchKind::Matches,
            3 => MatchKind::Regex,
            4 => MatchKind::Value(self.rel()?),
            5 => MatchKind::Count(self.rel()?),
            _ => return Err("bad match type"),
        };
        Ok(Match { cmp, kind })
    }
    fn part(&mut self) -> R<AddrPart> {
        Ok(match self.u8()? {
            0 => AddrPart::All,
            1 => AddrPart::Local,
            2 => AddrPart::Domain,
            3 => AddrPart::User,
            4 => AddrPart::Detail,
            _ => return Err("bad address part"),
        })
    }
    fn index(&mut self) -> R<Option<Index>> {
        Ok(if self.bool()? {
            Some(Index {
                n: self.u64()?.max(1),
                last: self.bool()?,
            })
        } else {
            None
        })
    }
    fn zone(&mut self) -> R<Zone> {
        Ok(match self.u8()? {
            0 => Zone::Local,
            1 => Zone::Original,
            2 => Zone::Fixed(self.s()?),
            _ => return Err("bad zone"),
        })
    }
    fn deeper(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > 2 * crate::parser::MAX_NESTING + 4 {
            return Err("nested too deeply");
        }
        Ok(())
    }
    fn lines(&mut self) -> R<Vec<Line>> {
        self.deeper()?;
        let n = self.len()?;
        let mut v = Vec::with_capacity(n.min(256));
        for _ in 0..n {
            let line = u32::try_from(self.u64()?).map_err(|_| "bad line")?;
            v.push(Line {
                line,
                cmd: self.cmd()?,
            });
        }
        self.depth -= 1;
        Ok(v)
    }
    fn cmd(&mut self) -> R<Cmd> {
        Ok(match self.u8()? {
            0 => {
                let n = self.len()?;
                let mut branches = Vec::with_capacity(n.min(16));
                for _ in 0..n {
                    let t = self.test()?;
                    branches.push((t, self.lines()?));
                }
                let otherwise = if self.bool()? {
                    Some(self.lines()?)
                } else {
                    None
                };
                Cmd::If {
                    branches,
                    otherwise,
                }
            }
            1 => Cmd::Stop,
            2 => Cmd::Keep {
                flags: self.opt_ss()?,
            },
            3 => Cmd::Discard,
            4 => Cmd::Redirect {
                address: self.s()?,
                copy: self.bool()?,
            },
            5 => Cmd::FileInto {
                mailbox: self.s()?,
                copy: self.bool()?,
                create: self.bool()?,
                flags: self.opt_ss()?,
            },
            6 => Cmd::Reject {
                reason: self.s()?,
                ereject: self.bool()?,
            },
            7 => Cmd::Vacation(Box::new(Vacation {
                seconds: if self.bool()? {
                    Some(self.u64()?)
                } else {
                    None
                },
                days: self.bool()?,
                subject: self.opt_s()?,
                from: self.opt_s()?,
                addresses: self.ss()?,
                mime: self.bool()?,
                handle: self.opt_s()?,
                reason: self.s()?,
            })),
            8 => Cmd::Flag {
                op: match self.u8()? {
                    0 => FlagOp::Set,
                    1 => FlagOp::Add,
                    2 => FlagOp::Remove,
                    _ => return Err("bad flag op"),
                },
                var: self.opt_s()?,
                flags: self.ss()?,
            },
            9 => {
                let n = self.len()?;
                let mut modifiers = Vec::new();
                for _ in 0..n.min(8) {
                    modifiers.push(match self.u8()? {
                        0 => Modifier::EncodeUrl,
                        1 => Modifier::QuoteWildcard,
                        2 => Modifier::QuoteRegex,
                        3 => Modifier::Length,
                        4 => Modifier::Lower,
                        5 => Modifier::Upper,
                        6 => Modifier::LowerFirst,
                        7 => Modifier::UpperFirst,
                        _ => return Err("bad modifier"),
                    });
                }
                if n > 8 {
                    return Err("bad modifiers");
                }
                Cmd::Set {
                    modifiers,
                    name: self.string()?,
                    value: self.s()?,
                }
            }
            10 => Cmd::Notify(Box::new(Notify {
                method: self.s()?,
                from: self.opt_s()?,
                importance: self.opt_s()?,
                options: self.ss()?,
                message: self.opt_s()?,
            })),
            11 => Cmd::AddHeader {
                last: self.bool()?,
                name: self.s()?,
                value: self.s()?,
            },
            12 => Cmd::DeleteHeader {
                index: self.index()?,
                m: self.m()?,
                name: self.s()?,
                values: self.opt_ss()?,
            },
            13 => Cmd::Include {
                location: if self.bool()? {
                    Location::Global
                } else {
                    Location::Personal
                },
                once: self.bool()?,
                optional: self.bool()?,
                name: self.s()?,
            },
            14 => Cmd::Return,
            15 => {
                let n = self.len()?;
                let mut v = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    v.push(self.string()?);
                }
                Cmd::Global(v)
            }
            _ => return Err("bad command"),
        })
    }
    fn tests(&mut self) -> R<Vec<Test>> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            v.push(self.test()?);
        }
        Ok(v)
    }
    fn test(&mut self) -> R<Test> {
        self.deeper()?;
        let t = match self.u8()? {
            0 => Test::True,
            1 => Test::False,
            2 => Test::Not(Box::new(self.test()?)),
            3 => Test::AllOf(self.tests()?),
            4 => Test::AnyOf(self.tests()?),
            5 => Test::Address {
                index: self.index()?,
                part: self.part()?,
                m: self.m()?,
                headers: self.ss()?,
                keys: self.ss()?,
            },
            6 => Test::Envelope {
                part: self.part()?,
                m: self.m()?,
                parts: self.ss()?,
                keys: self.ss()?,
            },
            7 => Test::Header {
                index: self.index()?,
                m: self.m()?,
                names: self.ss()?,
                keys: self.ss()?,
            },
            8 => Test::Exists(self.ss()?),
            9 => Test::Size {
                over: self.bool()?,
                limit: self.u64()?,
            },
            10 => {
                let m = self.m()?;
                let transform = match self.u8()? {
                    0 => Transform::Raw,
                    1 => Transform::Content(self.ss()?),
                    2 => Transform::Text,
                    _ => return Err("bad transform"),
                };
                Test::Body {
                    m,
                    transform,
                    keys: self.ss()?,
                }
            }
            11 => Test::String {
                m: self.m()?,
                sources: self.ss()?,
                keys: self.ss()?,
            },
            12 => Test::HasFlag {
                m: self.m()?,
                vars: self.opt_ss()?,
                keys: self.ss()?,
            },
            13 => Test::Date {
                index: self.index()?,
                zone: self.zone()?,
                m: self.m()?,
                header: self.s()?,
                part: self.s()?,
                keys: self.ss()?,
            },
            14 => Test::CurrentDate {
                zone: self.zone()?,
                m: self.m()?,
                part: self.s()?,
                keys: self.ss()?,
            },
            15 => Test::Duplicate {
                handle: self.opt_s()?,
                source: match self.u8()? {
                    0 => DupSource::MessageId,
                    1 => DupSource::Header(self.s()?),
                    2 => DupSource::UniqueId(self.s()?),
                    _ => return Err("bad duplicate source"),
                },
                seconds: if self.bool()? {
                    Some(self.u64()?)
                } else {
                    None
                },
                last: self.bool()?,
            },
            16 => Test::ValidNotifyMethod(self.ss()?),
            17 => Test::NotifyMethodCapability {
                m: self.m()?,
                uri: self.s()?,
                capability: self.s()?,
                keys: self.ss()?,
            },
            18 => Test::Environment {
                m: self.m()?,
                name: self.s()?,
                keys: self.ss()?,
            },
            19 => Test::MailboxExists(self.ss()?),
            20 => Test::SpamTest {
                percent: self.bool()?,
                m: self.m()?,
                value: self.s()?,
            },
            21 => Test::VirusTest {
                m: self.m()?,
                value: self.s()?,
            },
            _ => return Err("bad test"),
        };
        self.depth -= 1;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &str = r#"require ["fileinto","reject","ereject","envelope","encoded-character","vacation",
 "vacation-seconds","subaddress","comparator-i;ascii-numeric","relational","regex","imap4flags",
 "copy","include","body","variables","enotify","environment","mailbox","date","index","duplicate",
 "editheader","spamtest","spamtestplus","virustest"];
if envelope :detail :comparator "i;octet" "to" "x" { fileinto :copy :create :flags ["\\Seen"] "a.b"; }
elsif header :regex "subject" "^(re|fwd): (.*)$" { set :lower :upperfirst "s" "${2}"; }
else { keep :flags "x"; }
if allof(not body :raw :contains "x", anyof(true, false), body :content ["text", ""] :value "lt" "x") { addflag "v" "\\Flagged"; }
if date :zone "+0100" :index 2 :last :count "eq" "date" "year" "2020" { stop; }
if currentdate :zone "-0800" "weekday" "0" { discard; }
if duplicate :seconds 60 :handle "h" :header "x-id" :last { discard; }
if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" { fileinto "Junk"; }
if virustest "5" { discard; }
if environment :is "location" "MDA" { keep; }
if mailboxexists "x" { keep; }
if valid_notify_method "mailto:a@b.c" { notify :from "x@y.z" :options ["a"] :importance "1" :message "hi" "mailto:a@b.c?subject=x"; }
if hasflag :count "ge" :comparator "i;ascii-numeric" ["v"] "1" { removeflag "f" "x"; setflag "y"; }
if string :is "${x}" "" { global ["g"]; }
if notify_method_capability "mailto:a@b.c" "online" "maybe" { return; }
if exists "x" { if size :over 1K { discard; } }
if address :index 2 :last :user "from" "a" { deleteheader :index 1 :last :contains "x-a" "b"; addheader :last "X-B" "v"; }
vacation :seconds 10 :subject "s" :from "a@b.c" :addresses ["x@y.z"] :mime :handle "h" "r";
include :global :once :optional "other";
redirect :copy "a@b.c";
ereject "${hex:41}";
"#;

    #[test]
    fn round_trip() {
        let c = crate::compile(ALL).unwrap();
        let b = encode(&c, b"id");
        assert_eq!(identity(&b), Some(&b"id"[..]));
        assert_eq!(decode(&b).unwrap(), c);
        // Every cut and every flipped byte is refused, never a panic.
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err());
            let mut x = b.clone();
            x[n] ^= 0x41;
            assert!(decode(&x).is_err(), "flip at {n}");
        }
    }
}
