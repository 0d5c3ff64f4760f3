//! script - the compiled form of a script: commands and tests checked
//! against what they mean, with every literal already decoded
//! (encoded-character) and every string that needs variable expansion
//! cut into parts. This is what the interpreter runs and what the cache
//! file stores (codec.rs).

/// The extensions a script may `require`. Anything else is a compile error.
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "vacation",
    "vacation-seconds",
    "subaddress",
    "comparator-i;ascii-numeric",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "relational",
    "regex",
    "imap4flags",
    "copy",
    "include",
    "body",
    "variables",
    "enotify",
    "environment",
    "mailbox",
    "date",
    "index",
    "duplicate",
    "editheader",
    "spamtest",
    "spamtestplus",
    "virustest",
];

/// A string as written in the script: a literal, or (with "variables")
/// a template expanded at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Str {
    Lit(String),
    Tpl(Vec<Part>),
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    /// A variable, its name lowercased; namespaced names keep their dots.
    Var(String),
    /// A match variable `${N}`.
    Match(u32),
}

impl Str {
    /// literal - the text when it needs no expansion.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Str::Lit(s) => Some(s),
            Str::Tpl(_) => None,
        }
    }
}

/// Comparators (RFC 4790, RFC 5228 §2.7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    AsciiNumeric,
}

/// Relational operators (RFC 5231).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

/// Match types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Is,
    Contains,
    Matches,
    Regex,
    Value(Rel),
    Count(Rel),
}

/// A comparator with a match type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub cmp: Comparator,
    pub kind: MatchKind,
}

impl Default for Match {
    fn default() -> Self {
        Match {
            cmp: Comparator::AsciiCasemap,
            kind: MatchKind::Is,
        }
    }
}

/// Address parts (RFC 5228 §2.7.4, RFC 5233).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrPart {
    All,
    Local,
    Domain,
    User,
    Detail,
}

/// `:index N [:last]` (RFC 5260 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub n: u64,
    pub last: bool,
}

/// Where `date` takes its zone from (RFC 5260).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    Local,
    Original,
    Fixed(Str),
}

/// The body transforms (RFC 5173).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    Raw,
    Content(Vec<Str>),
    Text,
}

/// Where `duplicate` takes its ID from (RFC 7352).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DupSource {
    MessageId,
    Header(Str),
    UniqueId(Str),
}

/// A test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Address {
        index: Option<Index>,
        part: AddrPart,
        m: Match,
        headers: Vec<Str>,
        keys: Vec<Str>,
    },
    Envelope {
        part: AddrPart,
        m: Match,
        parts: Vec<Str>,
        keys: Vec<Str>,
    },
    Header {
        index: Option<Index>,
        m: Match,
        names: Vec<Str>,
        keys: Vec<Str>,
    },
    Exists(Vec<Str>),
    Size {
        over: bool,
        limit: u64,
    },
    Body {
        m: Match,
        transform: Transform,
        keys: Vec<Str>,
    },
    String {
        m: Match,
        sources: Vec<Str>,
        keys: Vec<Str>,
    },
    HasFlag {
        m: Match,
        vars: Option<Vec<Str>>,
        keys: Vec<Str>,
    },
    Date {
        index: Option<Index>,
        zone: Zone,
        m: Match,
        header: Str,
        part: Str,
        keys: Vec<Str>,
    },
    CurrentDate {
        zone: Zone,
        m: Match,
        part: Str,
        keys: Vec<Str>,
    },
    Duplicate {
        handle: Option<Str>,
        source: DupSource,
        seconds: Option<u64>,
        last: bool,
    },
    ValidNotifyMethod(Vec<Str>),
    NotifyMethodCapability {
        m: Match,
        uri: Str,
        capability: Str,
        keys: Vec<Str>,
    },
    Environment {
        m: Match,
        name: Str,
        keys: Vec<Str>,
    },
    MailboxExists(Vec<Str>),
    SpamTest {
        percent: bool,
        m: Match,
        value: Str,
    },
    VirusTest {
        m: Match,
        value: Str,
    },
}

/// `set` modifiers (RFC 5229 §4.1, RFC 5435 :encodeurl), applied in
/// order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Modifier {
    EncodeUrl,
    QuoteWildcard,
    QuoteRegex,
    Length,
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
}

/// imap4flags commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Set,
    Add,
    Remove,
}

/// `include` locations (RFC 6609).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Personal,
    Global,
}

/// `vacation` (RFC 5230, RFC 6131).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacation {
    /// The period in seconds, None for the default.
    pub seconds: Option<u64>,
    /// Whether the period was given as :days (for messages and limits).
    pub days: bool,
    pub subject: Option<Str>,
    pub from: Option<Str>,
    pub addresses: Vec<Str>,
    pub mime: bool,
    pub handle: Option<Str>,
    pub reason: Str,
}

/// `notify` (RFC 5435).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub method: Str,
    pub from: Option<Str>,
    pub importance: Option<Str>,
    pub options: Vec<Str>,
    pub message: Option<Str>,
}

/// A command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    If {
        branches: Vec<(Test, Vec<Line>)>,
        otherwise: Option<Vec<Line>>,
    },
    Stop,
    Keep {
        flags: Option<Vec<Str>>,
    },
    Discard,
    Redirect {
        address: Str,
        copy: bool,
    },
    FileInto {
        mailbox: Str,
        copy: bool,
        create: bool,
        flags: Option<Vec<Str>>,
    },
    Reject {
        reason: Str,
        ereject: bool,
    },
    Vacation(Box<Vacation>),
    Flag {
        op: FlagOp,
        var: Option<Str>,
        flags: Vec<Str>,
    },
    Set {
        modifiers: Vec<Modifier>,
        name: String,
        value: Str,
    },
    Notify(Box<Notify>),
    AddHeader {
        last: bool,
        name: Str,
        value: Str,
    },
    DeleteHeader {
        index: Option<Index>,
        m: Match,
        name: Str,
        values: Option<Vec<Str>>,
    },
    Include {
        location: Location,
        once: bool,
        optional: bool,
        name: Str,
    },
    Return,
    Global(Vec<String>),
}

/// A command and the line it was written on, for runtime errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: u32,
    pub cmd: Cmd,
}

/// A compiled script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The extensions it requires, as indexes into EXTENSIONS (bit i).
    pub requires: u64,
    pub commands: Vec<Line>,
}

impl Script {
    /// has - whether the script requires extension `name`.
    pub fn has(&self, name: &str) -> bool {
        EXTENSIONS
            .iter()
            .position(|e| *e == name)
            .is_some_and(|i| self.requires & (1 << i) != 0)
    }
}
