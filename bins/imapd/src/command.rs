//! command - one complete IMAP command (its literals already read in by
//! serve.rs under their caps, inline as `{n}CRLF<n octets>`) to a typed
//! command, per RFC 3501 §9's grammar.
//!
//! Our own parser rather than imap-codec 2.0 alphas: the wire reading
//! (line and literal caps, `+` go-aheads, LITERAL+) already lives in
//! serve.rs over lib-net's Wire, and what is left is a few hundred lines
//! we can keep exact, fuzz, and not see churn under pinned alpha versions.
//!
//! Distrusts the client: every token is checked against the grammar
//! (NUL, CR and LF never inside strings, 8-bit only in literals), counts
//! are bounded (list and search nesting, sequence-set ranges), and any
//! error gives `BAD` with the reason.

/// A sequence set: ranges of numbers, with STAR for `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqSet(pub Vec<(u64, u64)>);

/// `*`, "the largest number in use" (RFC 3501 §9): above every number a
/// client can write, so that 4294967295, a valid UID, never means it.
pub const STAR: u64 = u64::MAX;

/// The one range of `$`, the saved search result (RFC 5182); 0 is never
/// a sequence number or UID, so no set from the client has it.
const SAVED: (u64, u64) = (0, 0);

impl SeqSet {
    /// saved - `$`, resolved by the session before the set is used.
    pub fn saved() -> SeqSet {
        SeqSet(vec![SAVED])
    }

    /// is_saved - whether this is `$`.
    pub fn is_saved(&self) -> bool {
        self.0 == [SAVED]
    }

    /// contains - whether `n` is in the set, with `*` meaning `max` (the
    /// highest number in use; 0 in an empty mailbox, where nothing is).
    pub fn contains(&self, n: u32, max: u32) -> bool {
        let (n, max) = (u64::from(n), u64::from(max));
        self.0.iter().any(|&(a, b)| {
            let a = if a == STAR { max } else { a };
            let b = if b == STAR { max } else { b };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            lo <= n && n <= hi
        })
    }
}

/// What part of a message a BODY[...] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    Fields(Vec<String>),
    FieldsNot(Vec<String>),
    Text,
    Mime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub path: Vec<u32>,
    pub text: Option<SectionText>,
}

/// A FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Att {
    Envelope,
    Flags,
    InternalDate,
    Rfc822,
    Rfc822Header,
    Rfc822Size,
    Rfc822Text,
    Body,
    BodyStructure,
    Uid,
    /// MODSEQ (RFC 7162).
    ModSeq,
    Section {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    /// BINARY[path]<partial> and BINARY.PEEK (RFC 3516): the part with
    /// its content-transfer-encoding undone. A section with HEADER,
    /// TEXT, MIME or HEADER.FIELDS is taken too, as Dovecot takes it (RFC
    /// 3516 allows part numbers only): it has nothing to decode and is
    /// what BODY[] gives.
    Binary {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    /// BINARY.SIZE[path] (RFC 3516): the decoded size.
    BinarySize(Section),
}

/// A SEARCH key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    All,
    And(Vec<Key>),
    Or(Box<Key>, Box<Key>),
    Not(Box<Key>),
    /// System flag bit set (or clear when `false`).
    Flag(u8, bool),
    Keyword(String, bool),
    New,
    Old,
    Recent,
    /// Header field contains.
    Header(String, String),
    /// FROM, TO, CC, BCC: an address field (lowercase name) contains,
    /// compared with its addresses as parsed (search::address_match).
    Address(String, String),
    Body(String),
    Text(String),
    /// Internal date: before / on / since (days since the epoch).
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    /// WITHIN (RFC 5032): internal date more than / at most this many
    /// seconds before the search.
    Older(u32),
    Younger(u32),
    Uid(SeqSet),
    Seq(SeqSet),
    /// MODSEQ (RFC 7162): a mod-sequence at least this.
    ModSeq(u64),
}

/// An extended LIST (RFC 5258), with RFC 5819's STATUS return option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListExt {
    pub reference: String,
    pub patterns: Vec<String>,
    /// Selection: only subscribed names.
    pub subscribed: bool,
    /// Selection: parents of matches that do not match themselves.
    pub recursive: bool,
    /// Selection: only special-use mailboxes.
    pub special: bool,
    /// Return: \Subscribed on subscribed names.
    pub ret_subscribed: bool,
    /// Return: a STATUS response after each selectable mailbox.
    pub status: Option<Vec<StatusItem>>,
}

/// A SORT criterion (RFC 5256 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    /// The display name of the first From address (RFC 5957).
    DisplayFrom,
    /// The display name of the first To address (RFC 5957).
    DisplayTo,
}

/// What an ESEARCH answers with (RFC 4731 §3.1); `RETURN ()` is ALL.
/// `save` keeps the result for `$` (RFC 5182); `partial` is a window of
/// the result (RFC 9394), `update` asks for ADDTO and REMOVEFROM as the
/// result changes and `context` is a hint (RFC 5267).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ret {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    pub save: bool,
    pub partial: Option<Partial>,
    pub update: bool,
    pub context: bool,
}

/// A PARTIAL window (RFC 9394 §3.1): result positions `lo` to `hi`
/// (1-based, lo <= hi, whichever order the client wrote them in),
/// counted from the end of the result when `from_end` (`-1:-100`, the
/// last hundred).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    pub from_end: bool,
    pub lo: u32,
    pub hi: u32,
}

impl Partial {
    /// window - the part of `ids` (a result in its order) the window
    /// covers, in the same order.
    pub fn window<'a>(&self, ids: &'a [u32]) -> &'a [u32] {
        let n = ids.len();
        let (lo, hi) = (self.lo as usize, self.hi as usize);
        let (from, to) = if self.from_end {
            (n.saturating_sub(hi), n.saturating_sub(lo - 1))
        } else {
            ((lo - 1).min(n), hi.min(n))
        };
        &ids[from..to.max(from)]
    }
}

impl std::fmt::Display for Partial {
    /// The window in its normal form, as a reply gives it back: `2:4`
    /// for `4:2`, `-1:-5` for `-5:-1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = if self.from_end { "-" } else { "" };
        write!(f, "{m}{}:{m}{}", self.lo, self.hi)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    /// SIZE (RFC 8438): the sum of the messages' RFC822.SIZE.
    Size,
    /// APPENDLIMIT (RFC 7889): the largest message APPEND takes.
    AppendLimit,
    /// HIGHESTMODSEQ (RFC 7162).
    HighestModSeq,
    /// DELETED (RFC 9051 §6.3.11): messages with \Deleted.
    Deleted,
}

/// SELECT and EXAMINE parameters (RFC 7162 §3.1.8, §3.2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectOpts {
    pub condstore: bool,
    pub qresync: Option<Qresync>,
}

/// QRESYNC's `(uidvalidity modseq [known-uids [(seqs uids)]])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub validity: u32,
    pub modseq: u64,
    pub known: Option<SeqSet>,
    /// The sequence-number/UID pairs the client knows; checked for form
    /// only: the expunges we remember make it unnecessary.
    pub seq_match: Option<(SeqSet, SeqSet)>,
}

/// FETCH modifiers (RFC 7162 §3.1.4, §3.2.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchMods {
    pub changed_since: Option<u64>,
    pub vanished: bool,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Capability,
    Noop,
    /// IDLE (RFC 2177): the caller waits for DONE, pushing updates.
    Idle,
    /// COMPRESS (RFC 4978) with its mechanism, uppercased.
    Compress(String),
    /// GETQUOTAROOT mailbox (RFC 9208).
    GetQuotaRoot(String),
    /// GETQUOTA root (RFC 9208).
    GetQuota(String),
    /// SETQUOTA (RFC 9208): limits come from the users file, never from
    /// a client; the arguments are skipped.
    SetQuota,
    /// UNSELECT (RFC 3691): CLOSE without the expunge.
    Unselect,
    /// NAMESPACE (RFC 2342).
    Namespace,
    /// ID (RFC 2971); the client's own parameters are checked and dropped.
    Id,
    /// ENABLE (RFC 5161) of these capabilities, upper-cased.
    Enable(Vec<String>),
    Logout,
    StartTls,
    Authenticate {
        mech: String,
        initial: Option<String>,
    },
    Login {
        user: String,
        pass: Vec<u8>,
    },
    Select {
        mailbox: String,
        read_only: bool,
        opts: SelectOpts,
    },
    Create(String),
    Delete(String),
    Rename(String, String),
    Subscribe(String, bool),
    List {
        reference: String,
        pattern: String,
        lsub: bool,
    },
    /// LIST with RFC 5258's extended syntax.
    ListExt(Box<ListExt>),
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: String,
        flags: Vec<String>,
        date: Option<i64>,
        message: Vec<u8>,
    },
    /// APPEND of several messages at once (RFC 3502 MULTIAPPEND): all
    /// of them or none.
    MultiAppend {
        mailbox: String,
        messages: Vec<AppendMsg>,
    },
    /// CREATE with RFC 6154's USE parameter: special-use attributes,
    /// as the client spelled them.
    CreateUse(String, Vec<String>),
    Check,
    Close,
    Expunge,
    /// UID EXPUNGE (RFC 4315).
    UidExpunge(SeqSet),
    Search {
        uid: bool,
        /// RETURN options (RFC 4731 ESEARCH), None for a plain SEARCH.
        ret: Option<Ret>,
        key: Key,
    },
    Fetch {
        uid: bool,
        set: SeqSet,
        atts: Vec<Att>,
        mods: FetchMods,
    },
    Store {
        uid: bool,
        set: SeqSet,
        /// UNCHANGEDSINCE (RFC 7162 §3.1.3).
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        flags: Vec<String>,
    },
    Copy {
        uid: bool,
        set: SeqSet,
        mailbox: String,
    },
    /// SORT and UID SORT (RFC 5256): criteria with their REVERSE, and
    /// RETURN options (RFC 5267 ESORT), None for a plain SORT.
    Sort {
        uid: bool,
        ret: Option<Ret>,
        by: Vec<(SortKey, bool)>,
        key: Key,
    },
    /// THREAD=ORDEREDSUBJECT, or THREAD=REFERENCES when `references`,
    /// and their UID forms (RFC 5256 §3).
    Thread {
        uid: bool,
        references: bool,
        key: Key,
    },
    /// CANCELUPDATE with the tags of the contexts to end (RFC 5267 §4.3.5).
    CancelUpdate(Vec<String>),
    /// MOVE and UID MOVE (RFC 6851).
    Move {
        uid: bool,
        set: SeqSet,
        mailbox: String,
    },
}

/// One message of an APPEND: its flags, internal date and octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMsg {
    pub flags: Vec<String>,
    pub date: Option<i64>,
    pub message: Vec<u8>,
}

/// Most messages in one MULTIAPPEND.
pub const MAX_APPEND_MESSAGES: usize = 1000;

/// A command that did not parse: the tag when we got that far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub tag: Option<String>,
    pub why: String,
}

/// Deepest nesting of parentheses in SEARCH keys and flag lists.
const MAX_DEPTH: usize = 32;
/// Most entries in a list (fetch atts, flags, header names, search keys).
const MAX_ITEMS: usize = 1000;

struct P<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    /// UTF-8 is allowed in quoted strings (RFC 6855 §3, RFC 9051 §9's
    /// QUOTED-CHAR), once the client enabled UTF8=ACCEPT or IMAP4rev2.
    utf8: bool,
}

type R<T> = Result<T, String>;

/// is_atom_char - ATOM-CHAR: any CHAR but atom-specials.
fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !b"(){%*\"\\]".contains(&c)
}

impl<'a> P<'a> {
    /// peek - the next octet, not taken.
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// eat - take `c` if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// expect - take `c` or fail.
    fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}'", c as char))
        }
    }

    /// sp - one space.
    fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    /// at_end - whether everything was taken.
    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    /// atom - 1*ATOM-CHAR, plus `extra` characters allowed here.
    fn atom_with(&mut self, extra: &[u8]) -> R<&'a str> {
        let s = self.i;
        while let Some(c) = self.peek() {
            if is_atom_char(c) || extra.contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        if s == self.i {
            return Err("expected an atom".into());
        }
        std::str::from_utf8(&self.b[s..self.i]).map_err(|_| "bad atom".into())
    }

    /// atom - 1*ATOM-CHAR.
    fn atom(&mut self) -> R<&'a str> {
        self.atom_with(&[])
    }

    /// quoted - `"..."` with `\"` and `\\`.
    fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut v = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string".into()),
                Some(b'"') => {
                    self.i += 1;
                    // 8-bit octets must be well-formed UTF-8 (RFC 6855
                    // §3: anything else is BAD).
                    if !v.is_ascii() && std::str::from_utf8(&v).is_err() {
                        return Err("invalid UTF-8 in quoted string".into());
                    }
                    return Ok(v);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            v.push(c);
                            self.i += 1;
                        }
                        _ => return Err("bad escape in quoted string".into()),
                    }
                }
                Some(0 | b'\r' | b'\n') => return Err("NUL, CR or LF in quoted string".into()),
                Some(c) if c >= 0x80 && !self.utf8 => {
                    return Err("8-bit octet in quoted string".into());
                }
                Some(c) => {
                    v.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// literal - `{n}` or `{n+}`, CRLF, n octets (read in by serve.rs).
    fn literal(&mut self) -> R<&'a [u8]> {
        self.expect(b'{')?;
        let n = self.number()? as usize;
        self.eat(b'+');
        self.expect(b'}')?;
        self.expect(b'\r')?;
        self.expect(b'\n')?;
        if self.b.len() - self.i < n {
            return Err("literal shorter than announced".into());
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }

    /// literal8 - a literal, or RFC 3516's `~{n}` that may hold any
    /// octet, NUL included (APPEND's message only).
    fn literal8(&mut self) -> R<&'a [u8]> {
        self.eat(b'~');
        self.literal()
    }

    /// append_msg - `[flag-list SP] [date-time SP] literal8`.
    fn append_msg(&mut self) -> R<AppendMsg> {
        let flags = if self.peek() == Some(b'(') {
            let f = self.flag_list()?;
            self.sp()?;
            f
        } else {
            Vec::new()
        };
        let date = if self.peek() == Some(b'"') {
            let d = self.quoted()?;
            self.sp()?;
            Some(parse_date_time(&String::from_utf8_lossy(&d)).ok_or("bad date-time")?)
        } else {
            None
        };
        // RFC 6855 §4: `UTF8 (~{n}...)` carries a message with UTF-8
        // header fields; otherwise a literal or literal8 (RFC 3516).
        let message = if self.peek().is_some_and(|c| c.eq_ignore_ascii_case(&b'u')) {
            if !self.atom()?.eq_ignore_ascii_case("UTF8") {
                return Err("expected a literal or UTF8".into());
            }
            self.sp()?;
            self.expect(b'(')?;
            self.expect(b'~')?;
            let m = self.literal()?.to_vec();
            self.expect(b')')?;
            m
        } else {
            self.literal8()?.to_vec()
        };
        Ok(AppendMsg {
            flags,
            date,
            message,
        })
    }

    /// partial - `<start.length>` if it comes next; `<start>` alone is
    /// from there to the end, as Dovecot reads it (RFC 3501 wants the
    /// length).
    fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let a = self.number()?;
        if self.eat(b'>') {
            return Ok(Some((a, u32::MAX)));
        }
        self.expect(b'.')?;
        let n = self.number()?;
        if n == 0 {
            return Err("partial length must not be 0".into());
        }
        self.expect(b'>')?;
        Ok(Some((a, n)))
    }

    /// string - quoted or literal.
    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal()?.to_vec()),
            _ => Err("expected a string".into()),
        }
    }

    /// status_items - `(` status-att *(SP status-att) `)`.
    fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        loop {
            items.push(match self.atom()?.to_ascii_uppercase().as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "SIZE" => StatusItem::Size,
                "APPENDLIMIT" => StatusItem::AppendLimit,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "DELETED" => StatusItem::Deleted,
                _ => return Err("unknown STATUS item".into()),
            });
            if items.len() > 16 {
                return Err("too many STATUS items".into());
            }
            if self.eat(b')') {
                return Ok(items);
            }
            self.sp()?;
        }
    }

    /// options - `(` [atom *(SP atom)] `)`, upper-cased, for LIST's
    /// selection and return options; STATUS takes its item list.
    fn options(&mut self) -> R<Vec<(String, Vec<StatusItem>)>> {
        self.expect(b'(')?;
        let mut v = Vec::new();
        while !self.eat(b')') {
            if !v.is_empty() {
                self.sp()?;
            }
            let o = self.atom()?.to_ascii_uppercase();
            let items = if o == "STATUS" {
                self.sp()?;
                self.status_items()?
            } else {
                Vec::new()
            };
            v.push((o, items));
            if v.len() > 16 {
                return Err("too many LIST options".into());
            }
        }
        Ok(v)
    }

    /// nstring - a string, or NIL (None).
    fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string().map(Some),
            _ if self.atom()?.eq_ignore_ascii_case("NIL") => Ok(None),
            _ => Err("expected a string or NIL".into()),
        }
    }

    /// astring - atom (with `]`) or string.
    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => Ok(self.atom_with(b"]")?.as_bytes().to_vec()),
        }
    }

    /// astring_utf8 - an astring that must be UTF-8.
    fn astring_utf8(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "not UTF-8".into())
    }

    /// mailbox - an astring; INBOX in any case becomes INBOX.
    fn mailbox(&mut self) -> R<String> {
        let m = self.astring_utf8()?;
        if m.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n') {
            return Err("bad mailbox name".into());
        }
        Ok(if m.eq_ignore_ascii_case("INBOX") {
            "INBOX".into()
        } else {
            m
        })
    }

    /// list_mailbox - like a mailbox but `%` and `*` are atom characters.
    fn list_mailbox(&mut self) -> R<String> {
        match self.peek() {
            Some(b'"' | b'{') => String::from_utf8(self.string()?).map_err(|_| "not UTF-8".into()),
            _ => Ok(self.atom_with(b"%*]")?.to_string()),
        }
    }

    /// number - a 32-bit decimal number.
    fn number(&mut self) -> R<u32> {
        let s = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.b[s..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| "expected a number".into())
    }

    /// number64 - a 64-bit decimal number (sizes).
    fn number64(&mut self) -> R<u64> {
        let s = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.b[s..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| "expected a number".into())
    }

    /// modseq - a mod-sequence value (RFC 7162: 63 bits).
    fn modseq(&mut self) -> R<u64> {
        let n = self.number64()?;
        if n >= 1 << 63 {
            return Err("mod-sequence too large".into());
        }
        Ok(n)
    }

    /// seq_number - `*` (STAR) or an nz-number.
    fn seq_number(&mut self) -> R<u64> {
        if self.eat(b'*') {
            return Ok(STAR);
        }
        self.nz().map(u64::from)
    }

    /// nz - an nz-number: 1 to 4294967295.
    fn nz(&mut self) -> R<u32> {
        match self.number()? {
            0 => Err("sequence numbers start at 1".into()),
            n => Ok(n),
        }
    }

    /// seq_set - `1,3:5,7:*` (at most 10,000 ranges), or `$` alone.
    fn seq_set(&mut self) -> R<SeqSet> {
        if self.eat(b'$') {
            return Ok(SeqSet::saved());
        }
        let mut v = Vec::new();
        loop {
            let a = self.seq_number()?;
            let b = if self.eat(b':') {
                self.seq_number()?
            } else {
                a
            };
            v.push((a, b));
            if v.len() > MAX_ITEMS * 10 {
                return Err("sequence set too long".into());
            }
            if !self.eat(b',') {
                return Ok(SeqSet(v));
            }
        }
    }

    /// flag_list - `(flag ...)`.
    fn flag_list(&mut self) -> R<Vec<String>> {
        self.expect(b'(')?;
        let mut v = Vec::new();
        if self.eat(b')') {
            return Ok(v);
        }
        loop {
            v.push(self.flag()?);
            if v.len() > MAX_ITEMS {
                return Err("too many flags".into());
            }
            if self.eat(b')') {
                return Ok(v);
            }
            self.sp()?;
        }
    }

    /// flag - `\System` or a keyword atom.
    fn flag(&mut self) -> R<String> {
        if self.eat(b'\\') {
            return Ok(format!("\\{}", self.atom()?));
        }
        Ok(self.atom()?.to_string())
    }

    /// date - `d-Mon-yyyy`, quoted or not, as days since the epoch.
    fn date(&mut self) -> R<i64> {
        let quoted = self.eat(b'"');
        let s = self.atom()?;
        if quoted {
            self.expect(b'"')?;
        }
        parse_date(s).ok_or_else(|| "bad date".into())
    }

    /// section - what follows `BODY[` up to and including `]` (RFC 3501 §6.4.5).
    fn section(&mut self) -> R<Section> {
        let mut path = Vec::new();
        let mut text = None;
        if self.eat(b']') {
            return Ok(Section { path, text });
        }
        loop {
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                let n = self.number()?;
                if n == 0 {
                    return Err("part numbers start at 1".into());
                }
                path.push(n);
                if path.len() > MAX_DEPTH {
                    return Err("section too deep".into());
                }
                if self.eat(b'.') {
                    continue;
                }
                break;
            }
            let word = self.atom_with(b"")?.to_ascii_uppercase();
            text = Some(match word.as_str() {
                "HEADER" => SectionText::Header,
                "TEXT" => SectionText::Text,
                "MIME" if !path.is_empty() => SectionText::Mime,
                "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                    self.sp()?;
                    self.expect(b'(')?;
                    let mut names = Vec::new();
                    loop {
                        let n = self.astring_utf8()?;
                        names.push(n.to_ascii_uppercase());
                        if names.len() > MAX_ITEMS {
                            return Err("too many header names".into());
                        }
                        if self.eat(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                    if word == "HEADER.FIELDS" {
                        SectionText::Fields(names)
                    } else {
                        SectionText::FieldsNot(names)
                    }
                }
                _ => return Err("bad section".into()),
            });
            break;
        }
        self.expect(b']')?;
        Ok(Section { path, text })
    }

    /// fetch_att - one FETCH data item.
    fn fetch_att(&mut self) -> R<Att> {
        let w = self.atom_with(b"")?.to_ascii_uppercase();
        // atom_with stops at `[`? No: `[` is an atom char; split it off.
        let (w, bracket) = match w.find('[') {
            Some(i) => {
                self.i -= w.len() - i - 1;
                (w[..i].to_string(), true)
            }
            None => (w, false),
        };
        Ok(match (w.as_str(), bracket) {
            ("ENVELOPE", false) => Att::Envelope,
            ("FLAGS", false) => Att::Flags,
            ("INTERNALDATE", false) => Att::InternalDate,
            ("RFC822", false) => Att::Rfc822,
            ("RFC822.HEADER", false) => Att::Rfc822Header,
            ("RFC822.SIZE", false) => Att::Rfc822Size,
            ("RFC822.TEXT", false) => Att::Rfc822Text,
            ("BODY", false) => Att::Body,
            ("BODYSTRUCTURE", false) => Att::BodyStructure,
            ("UID", false) => Att::Uid,
            ("MODSEQ", false) => Att::ModSeq,
            ("BINARY" | "BINARY.PEEK", true) => {
                let section = self.section()?;
                Att::Binary {
                    peek: w == "BINARY.PEEK",
                    section,
                    partial: self.partial()?,
                }
            }
            ("BINARY.SIZE", true) => Att::BinarySize(self.section()?),
            ("BODY" | "BODY.PEEK", true) => {
                let section = self.section()?;
                let partial = self.partial()?;
                Att::Section {
                    peek: w == "BODY.PEEK",
                    section,
                    partial,
                }
            }
            _ => return Err(format!("unknown FETCH item {w}")),
        })
    }

    /// fetch_atts - a parenthesized list, one item, or a macro (ALL, FAST, FULL).
    fn fetch_atts(&mut self) -> R<Vec<Att>> {
        if self.eat(b'(') {
            let mut v = Vec::new();
            loop {
                v.push(self.fetch_att()?);
                if v.len() > MAX_ITEMS {
                    return Err("too many FETCH items".into());
                }
                if self.eat(b')') {
                    return Ok(v);
                }
                self.sp()?;
            }
        }
        let save = self.i;
        let w = self.atom()?.to_ascii_uppercase();
        Ok(match w.as_str() {
            "ALL" => vec![
                Att::Flags,
                Att::InternalDate,
                Att::Rfc822Size,
                Att::Envelope,
            ],
            "FAST" => vec![Att::Flags, Att::InternalDate, Att::Rfc822Size],
            "FULL" => vec![
                Att::Flags,
                Att::InternalDate,
                Att::Rfc822Size,
                Att::Envelope,
                Att::Body,
            ],
            _ => {
                self.i = save;
                vec![self.fetch_att()?]
            }
        })
    }

    /// search_key - one key (RFC 3501 §6.4.4).
    fn search_key(&mut self) -> R<Key> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("search keys nested too deep".into());
        }
        let k = self.search_key_inner();
        self.depth -= 1;
        k
    }

    /// search_key_inner - one key without the depth count.
    fn search_key_inner(&mut self) -> R<Key> {
        use crate::flags::*;
        if self.eat(b'(') {
            let mut v = vec![self.search_key()?];
            while !self.eat(b')') {
                self.sp()?;
                v.push(self.search_key()?);
                if v.len() > MAX_ITEMS {
                    return Err("too many search keys".into());
                }
            }
            return Ok(Key::And(v));
        }
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || c == b'*' || c == b'$')
        {
            return Ok(Key::Seq(self.seq_set()?));
        }
        let w = self.atom()?.to_ascii_uppercase();
        let s = |p: &mut Self| -> R<String> {
            p.sp()?;
            Ok(String::from_utf8_lossy(&p.astring()?).into_owned())
        };
        Ok(match w.as_str() {
            "ALL" => Key::All,
            "ANSWERED" => Key::Flag(ANSWERED, true),
            "DELETED" => Key::Flag(DELETED, true),
            "DRAFT" => Key::Flag(DRAFT, true),
            "FLAGGED" => Key::Flag(FLAGGED, true),
            "SEEN" => Key::Flag(SEEN, true),
            "UNANSWERED" => Key::Flag(ANSWERED, false),
            "UNDELETED" => Key::Flag(DELETED, false),
            "UNDRAFT" => Key::Flag(DRAFT, false),
            "UNFLAGGED" => Key::Flag(FLAGGED, false),
            "UNSEEN" => Key::Flag(SEEN, false),
            "NEW" => Key::New,
            "OLD" => Key::Old,
            "RECENT" => Key::Recent,
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                Key::Keyword(self.flag()?, w == "KEYWORD")
            }
            "BCC" | "CC" | "FROM" | "TO" => Key::Address(w.to_ascii_lowercase(), s(self)?),
            "SUBJECT" => Key::Header(w.clone(), s(self)?),
            "HEADER" => {
                let f = s(self)?;
                Key::Header(f.to_ascii_uppercase(), s(self)?)
            }
            "BODY" => Key::Body(s(self)?),
            "TEXT" => Key::Text(s(self)?),
            "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
                self.sp()?;
                let d = self.date()?;
                match w.as_str() {
                    "BEFORE" => Key::Before(d),
                    "ON" => Key::On(d),
                    "SINCE" => Key::Since(d),
                    "SENTBEFORE" => Key::SentBefore(d),
                    "SENTON" => Key::SentOn(d),
                    _ => Key::SentSince(d),
                }
            }
            "LARGER" | "SMALLER" => {
                self.sp()?;
                let n = self.number64()?;
                if w == "LARGER" {
                    Key::Larger(n)
                } else {
                    Key::Smaller(n)
                }
            }
            "OLDER" | "YOUNGER" => {
                self.sp()?;
                let n = self.nz()?;
                if w == "OLDER" {
                    Key::Older(n)
                } else {
                    Key::Younger(n)
                }
            }
            "UID" => {
                self.sp()?;
                Key::Uid(self.seq_set()?)
            }
            "MODSEQ" => {
                // An optional entry name and type, which we do not keep
                // apart: every flag's change is the message's change.
                self.sp()?;
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.sp()?;
                    let t = self.atom()?.to_ascii_uppercase();
                    if !matches!(t.as_str(), "PRIV" | "SHARED" | "ALL") {
                        return Err("bad MODSEQ entry type".into());
                    }
                    self.sp()?;
                }
                Key::ModSeq(self.modseq()?)
            }
            "NOT" => {
                self.sp()?;
                Key::Not(Box::new(self.search_key()?))
            }
            "OR" => {
                self.sp()?;
                let a = self.search_key()?;
                self.sp()?;
                Key::Or(Box::new(a), Box::new(self.search_key()?))
            }
            _ => return Err(format!("unknown search key {w}")),
        })
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

pub use posthorn_mail::date::days_from_civil;

/// parse_date - `d-Mon-yyyy` to days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let d: u32 = it.next()?.parse().ok()?;
    let m = it.next()?.to_ascii_uppercase();
    let m = MONTHS.iter().position(|x| *x == m)? as u32 + 1;
    let y: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// parse_date_time - `dd-Mon-yyyy hh:mm:ss +zzzz` to seconds since the epoch.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let days = parse_date(date)?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if t.len() != 3 || t[0] > 23 || t[1] > 59 || t[2] > 60 {
        return None;
    }
    let zb = zone.as_bytes();
    if zb.len() != 5 || !(zb[0] == b'+' || zb[0] == b'-') {
        return None;
    }
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    let off = (zh * 60 + zm) * 60 * if zb[0] == b'-' { -1 } else { 1 };
    Some(days * 86400 + t[0] * 3600 + t[1] * 60 + t[2] - off)
}

/// parse - one command: `tag SP command CRLF` (the CRLF already gone),
/// with 7-bit quoted strings (RFC 3501).
pub fn parse(b: &[u8]) -> Result<(String, Cmd), Bad> {
    parse_with(b, false)
}

/// parse_with - `parse`, with UTF-8 allowed in quoted strings when
/// `utf8` (the client enabled UTF8=ACCEPT or IMAP4rev2).
pub fn parse_with(b: &[u8], utf8: bool) -> Result<(String, Cmd), Bad> {
    let mut p = P {
        b,
        i: 0,
        depth: 0,
        utf8,
    };
    let tag = match p.atom_with(b"") {
        Ok(t) if !t.contains('+') => t.to_string(),
        _ => {
            return Err(Bad {
                tag: None,
                why: "bad tag".into(),
            });
        }
    };
    let r = (|| -> R<Cmd> {
        p.sp()?;
        let name = p.atom()?.to_ascii_uppercase();
        let cmd = command(&mut p, &name)?;
        if !p.at_end() {
            return Err("unexpected text after the command".into());
        }
        Ok(cmd)
    })();
    match r {
        Ok(c) => Ok((tag, c)),
        Err(why) => Err(Bad {
            tag: Some(tag),
            why,
        }),
    }
}

/// command - the arguments of command `name`.
fn command(p: &mut P, name: &str) -> R<Cmd> {
    Ok(match name {
        "CAPABILITY" => Cmd::Capability,
        "NOOP" => Cmd::Noop,
        "IDLE" => Cmd::Idle,
        "COMPRESS" => {
            p.sp()?;
            Cmd::Compress(p.atom()?.to_ascii_uppercase())
        }
        "UNSELECT" => Cmd::Unselect,
        "CANCELUPDATE" => {
            // 1*(SP quoted): the tags of UPDATE searches (RFC 5267 §5).
            let mut tags = Vec::new();
            while p.eat(b' ') {
                tags.push(String::from_utf8_lossy(&p.quoted()?).into_owned());
                if tags.len() > MAX_ITEMS {
                    return Err("too many tags".into());
                }
            }
            if tags.is_empty() {
                return Err("CANCELUPDATE needs a tag".into());
            }
            Cmd::CancelUpdate(tags)
        }
        "NAMESPACE" => Cmd::Namespace,
        "ID" => {
            // id-params-list = "(" *(string SP nstring) ")" / nil, with
            // at most 30 pairs (RFC 2971 §3.3).
            p.sp()?;
            if p.peek() == Some(b'(') {
                p.i += 1;
                let mut pairs = 0;
                while !p.eat(b')') {
                    if pairs > 0 {
                        p.sp()?;
                    }
                    p.string()?;
                    p.sp()?;
                    p.nstring()?;
                    pairs += 1;
                    if pairs > 30 {
                        return Err("more than 30 ID parameters".into());
                    }
                }
            } else if !p.atom()?.eq_ignore_ascii_case("NIL") {
                return Err("expected a parameter list or NIL".into());
            }
            Cmd::Id
        }
        "ENABLE" => {
            let mut caps = Vec::new();
            while p.eat(b' ') {
                caps.push(p.atom()?.to_ascii_uppercase());
                if caps.len() > 32 {
                    return Err("too many capabilities".into());
                }
            }
            if caps.is_empty() {
                return Err("ENABLE needs a capability".into());
            }
            Cmd::Enable(caps)
        }
        "GETQUOTAROOT" => {
            p.sp()?;
            Cmd::GetQuotaRoot(p.mailbox()?)
        }
        "GETQUOTA" => {
            p.sp()?;
            Cmd::GetQuota(p.astring_utf8()?)
        }
        "SETQUOTA" => {
            p.sp()?;
            p.astring()?;
            // The resource list: taken whole, not interpreted.
            p.i = p.b.len();
            Cmd::SetQuota
        }
        "LOGOUT" => Cmd::Logout,
        "STARTTLS" => Cmd::StartTls,
        "CHECK" => Cmd::Check,
        "CLOSE" => Cmd::Close,
        "EXPUNGE" => Cmd::Expunge,
        "AUTHENTICATE" => {
            p.sp()?;
            let mech = p.atom()?.to_string();
            let initial = if p.eat(b' ') {
                let s = p.i;
                while p
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
                {
                    p.i += 1;
                }
                Some(String::from_utf8_lossy(&p.b[s..p.i]).into_owned())
            } else {
                None
            };
            Cmd::Authenticate { mech, initial }
        }
        "LOGIN" => {
            p.sp()?;
            let user = p.astring_utf8()?;
            p.sp()?;
            let pass = p.astring()?;
            Cmd::Login { user, pass }
        }
        "SELECT" | "EXAMINE" => {
            p.sp()?;
            let mailbox = p.mailbox()?;
            let opts = if p.eat(b' ') {
                select_opts(p)?
            } else {
                SelectOpts::default()
            };
            Cmd::Select {
                mailbox,
                read_only: name == "EXAMINE",
                opts,
            }
        }
        "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => {
            p.sp()?;
            let m = p.mailbox()?;
            match name {
                "CREATE" if p.eat(b' ') => create_params(p, m)?,
                "CREATE" => Cmd::Create(m),
                "DELETE" => Cmd::Delete(m),
                "SUBSCRIBE" => Cmd::Subscribe(m, true),
                _ => Cmd::Subscribe(m, false),
            }
        }
        "RENAME" => {
            p.sp()?;
            let a = p.mailbox()?;
            p.sp()?;
            Cmd::Rename(a, p.mailbox()?)
        }
        "LSUB" => {
            p.sp()?;
            let reference = p.mailbox()?;
            p.sp()?;
            let pattern = p.list_mailbox()?;
            Cmd::List {
                reference,
                pattern,
                lsub: true,
            }
        }
        "LIST" => list(p)?,
        "STATUS" => {
            p.sp()?;
            let mailbox = p.mailbox()?;
            p.sp()?;
            let items = p.status_items()?;
            Cmd::Status { mailbox, items }
        }
        "APPEND" => {
            p.sp()?;
            let mailbox = p.mailbox()?;
            p.sp()?;
            // RFC 3502: append-message *(SP append-message).
            let mut messages = vec![p.append_msg()?];
            while p.eat(b' ') {
                // imapclient's multiappend sends two spaces between two
                // literals in a row; Dovecot takes that, and so do we.
                p.eat(b' ');
                messages.push(p.append_msg()?);
                if messages.len() > MAX_APPEND_MESSAGES {
                    return Err("too many messages in one APPEND".into());
                }
            }
            if messages.len() == 1 {
                let m = messages.remove(0);
                Cmd::Append {
                    mailbox,
                    flags: m.flags,
                    date: m.date,
                    message: m.message,
                }
            } else {
                Cmd::MultiAppend { mailbox, messages }
            }
        }
        "UID" => {
            p.sp()?;
            let sub = p.atom()?.to_ascii_uppercase();
            match sub.as_str() {
                "FETCH" | "STORE" | "SEARCH" | "COPY" | "MOVE" => uid_command(p, &sub, true)?,
                "SORT" => sort(p, true)?,
                "THREAD" => thread(p, true)?,
                "EXPUNGE" => {
                    p.sp()?;
                    Cmd::UidExpunge(p.seq_set()?)
                }
                _ => return Err(format!("unknown UID command {sub}")),
            }
        }
        "FETCH" | "STORE" | "SEARCH" | "COPY" | "MOVE" => uid_command(p, name, false)?,
        "SORT" => sort(p, false)?,
        "THREAD" => thread(p, false)?,
        _ => return Err(format!("unknown command {name}")),
    })
}

/// create_params - RFC 4466's `(create-param ...)` after CREATE's
/// name; USE (RFC 6154 §3) is the one we know, and it must be there.
fn create_params(p: &mut P, mailbox: String) -> R<Cmd> {
    p.expect(b'(')?;
    let mut uses = None;
    loop {
        let w = p.atom()?.to_ascii_uppercase();
        if w != "USE" || uses.is_some() {
            return Err(format!("unknown CREATE parameter {w}"));
        }
        p.sp()?;
        p.expect(b'(')?;
        let mut v = Vec::new();
        while !p.eat(b')') {
            if !v.is_empty() {
                p.sp()?;
            }
            p.expect(b'\\')?;
            v.push(format!("\\{}", p.atom()?));
            if v.len() > 16 {
                return Err("too many special-use attributes".into());
            }
        }
        uses = Some(v);
        if p.eat(b')') {
            break;
        }
        p.sp()?;
    }
    Ok(Cmd::CreateUse(mailbox, uses.unwrap_or_default()))
}

/// list - LIST, plain (RFC 3501) or extended (RFC 5258: selection
/// options, several patterns, return options; RFC 5819's STATUS and
/// RFC 6154's SPECIAL-USE among them). Unknown options are BAD, as
/// RFC 5258 §3 requires.
fn list(p: &mut P) -> R<Cmd> {
    p.sp()?;
    let mut x = ListExt::default();
    let mut extended = false;
    if p.peek() == Some(b'(') {
        extended = true;
        for (o, _) in p.options()? {
            match o.as_str() {
                "SUBSCRIBED" => x.subscribed = true,
                "REMOTE" => {}
                "RECURSIVEMATCH" => x.recursive = true,
                "SPECIAL-USE" => x.special = true,
                _ => return Err(format!("unknown LIST selection option {o}")),
            }
        }
        // RFC 5258 §3.1: never alone; we have it only for SUBSCRIBED.
        if x.recursive && !x.subscribed {
            return Err("RECURSIVEMATCH needs SUBSCRIBED".into());
        }
        p.sp()?;
    }
    x.reference = p.mailbox()?;
    p.sp()?;
    if p.eat(b'(') {
        extended = true;
        loop {
            x.patterns.push(p.list_mailbox()?);
            if x.patterns.len() > MAX_ITEMS {
                return Err("too many LIST patterns".into());
            }
            if p.eat(b')') {
                break;
            }
            p.sp()?;
        }
    } else {
        x.patterns.push(p.list_mailbox()?);
    }
    if p.eat(b' ') {
        if !p.atom()?.eq_ignore_ascii_case("RETURN") {
            return Err("expected RETURN".into());
        }
        p.sp()?;
        extended = true;
        for (o, items) in p.options()? {
            match o.as_str() {
                "SUBSCRIBED" => x.ret_subscribed = true,
                "CHILDREN" | "SPECIAL-USE" => {}
                "STATUS" => x.status = Some(items),
                _ => return Err(format!("unknown LIST return option {o}")),
            }
        }
    }
    if !extended {
        return Ok(Cmd::List {
            reference: x.reference,
            pattern: x.patterns.remove(0),
            lsub: false,
        });
    }
    Ok(Cmd::ListExt(Box::new(x)))
}

/// select_opts - `(CONDSTORE)`, `(QRESYNC (...))` or both.
fn select_opts(p: &mut P) -> R<SelectOpts> {
    p.expect(b'(')?;
    let mut o = SelectOpts::default();
    loop {
        match p.atom()?.to_ascii_uppercase().as_str() {
            "CONDSTORE" => o.condstore = true,
            "QRESYNC" if o.qresync.is_none() => {
                p.sp()?;
                p.expect(b'(')?;
                let validity = p.number()?;
                p.sp()?;
                let modseq = p.modseq()?;
                if validity == 0 || modseq == 0 {
                    return Err("QRESYNC needs a UIDVALIDITY and a mod-sequence".into());
                }
                let mut q = Qresync {
                    validity,
                    modseq,
                    known: None,
                    seq_match: None,
                };
                if p.eat(b' ') {
                    if p.peek() != Some(b'(') {
                        q.known = Some(p.seq_set()?);
                        p.eat(b' ');
                    }
                    if p.eat(b'(') {
                        let seqs = p.seq_set()?;
                        p.sp()?;
                        let uids = p.seq_set()?;
                        p.expect(b')')?;
                        if seqs.is_saved() || uids.is_saved() {
                            return Err("$ is not a sequence set here".into());
                        }
                        q.seq_match = Some((seqs, uids));
                    }
                }
                p.expect(b')')?;
                if q.known.as_ref().is_some_and(SeqSet::is_saved) {
                    return Err("$ is not a UID set here".into());
                }
                o.qresync = Some(q);
            }
            w => return Err(format!("unknown SELECT parameter {w}")),
        }
        if p.eat(b')') {
            return Ok(o);
        }
        p.sp()?;
    }
}

/// search_keys - one or more search keys, ANDed.
fn search_keys(p: &mut P) -> R<Key> {
    let mut v = vec![p.search_key()?];
    while p.eat(b' ') {
        v.push(p.search_key()?);
        if v.len() > MAX_ITEMS {
            return Err("too many search keys".into());
        }
    }
    Ok(if v.len() == 1 {
        v.remove(0)
    } else {
        Key::And(v)
    })
}

/// sort - `SORT (criteria) charset keys` (RFC 5256 §3; the charset is
/// not optional there).
fn sort(p: &mut P, uid: bool) -> R<Cmd> {
    p.sp()?;
    let ret = search_return(p)?;
    p.expect(b'(')?;
    let mut by = Vec::new();
    loop {
        let mut w = p.atom()?.to_ascii_uppercase();
        let reverse = w == "REVERSE";
        if reverse {
            p.sp()?;
            w = p.atom()?.to_ascii_uppercase();
        }
        by.push((
            match w.as_str() {
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                _ => return Err("unknown SORT criterion".into()),
            },
            reverse,
        ));
        if by.len() > 16 {
            return Err("too many SORT criteria".into());
        }
        if p.eat(b')') {
            break;
        }
        p.sp()?;
    }
    p.sp()?;
    let cs = String::from_utf8_lossy(&p.astring()?).to_ascii_uppercase();
    if cs != "UTF-8" && cs != "US-ASCII" {
        return Err("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into());
    }
    p.sp()?;
    // RETURN belongs after SORT (RFC 5267 §3); after the charset it is
    // taken too, as Dovecot takes it: no search key is called RETURN.
    let ret = match ret {
        Some(r) => Some(r),
        None => search_return(p)?,
    };
    Ok(Cmd::Sort {
        uid,
        ret,
        by,
        key: search_keys(p)?,
    })
}

/// search_return - `RETURN (options) SP` before SEARCH's or SORT's
/// keys (RFC 4466's search-return-opts), None when absent: MIN, MAX,
/// ALL, COUNT (RFC 4731), SAVE (RFC 5182), CONTEXT, UPDATE and
/// `PARTIAL first:last` (RFC 5267 §4; never with ALL, nor twice).
fn search_return(p: &mut P) -> R<Option<Ret>> {
    let save = p.i;
    if !p.atom().is_ok_and(|w| w.eq_ignore_ascii_case("RETURN")) {
        p.i = save;
        return Ok(None);
    }
    p.sp()?;
    p.expect(b'(')?;
    let mut r = Ret::default();
    let mut first = true;
    while !p.eat(b')') {
        if !first {
            p.sp()?;
        }
        first = false;
        match p.atom()?.to_ascii_uppercase().as_str() {
            "MIN" => r.min = true,
            "MAX" => r.max = true,
            "ALL" => r.all = true,
            "COUNT" => r.count = true,
            "SAVE" => r.save = true,
            "CONTEXT" => r.context = true,
            "UPDATE" => r.update = true,
            "PARTIAL" => {
                if r.partial.is_some() {
                    return Err("PARTIAL given twice".into());
                }
                // partial-range = nz-number ":" nz-number, or both
                // negative (RFC 9394), either order.
                p.sp()?;
                let (from_end, a) = (p.eat(b'-'), p.nz()?);
                p.expect(b':')?;
                if p.eat(b'-') != from_end {
                    return Err("PARTIAL range ends of different signs".into());
                }
                let b = p.nz()?;
                r.partial = Some(Partial {
                    from_end,
                    lo: a.min(b),
                    hi: a.max(b),
                });
            }
            _ => return Err("unknown SEARCH RETURN option".into()),
        }
    }
    if r.all && r.partial.is_some() {
        return Err("PARTIAL and ALL together".into());
    }
    if first {
        r.all = true;
    }
    p.sp()?;
    Ok(Some(r))
}

/// thread - `THREAD algorithm charset keys`, ORDEREDSUBJECT or
/// REFERENCES.
fn thread(p: &mut P, uid: bool) -> R<Cmd> {
    p.sp()?;
    let references = match p.atom()?.to_ascii_uppercase().as_str() {
        "ORDEREDSUBJECT" => false,
        "REFERENCES" => true,
        _ => return Err("unknown THREAD algorithm".into()),
    };
    p.sp()?;
    let cs = String::from_utf8_lossy(&p.astring()?).to_ascii_uppercase();
    if cs != "UTF-8" && cs != "US-ASCII" {
        return Err("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into());
    }
    p.sp()?;
    Ok(Cmd::Thread {
        uid,
        references,
        key: search_keys(p)?,
    })
}

/// uid_command - FETCH, STORE, SEARCH and COPY, by number or by UID.
fn uid_command(p: &mut P, name: &str, uid: bool) -> R<Cmd> {
    p.sp()?;
    Ok(match name {
        "FETCH" => {
            let set = p.seq_set()?;
            p.sp()?;
            let atts = p.fetch_atts()?;
            let mut mods = FetchMods::default();
            if p.eat(b' ') {
                p.expect(b'(')?;
                loop {
                    match p.atom()?.to_ascii_uppercase().as_str() {
                        "CHANGEDSINCE" if mods.changed_since.is_none() => {
                            p.sp()?;
                            mods.changed_since = Some(p.modseq()?);
                        }
                        "VANISHED" if uid && !mods.vanished => mods.vanished = true,
                        w => return Err(format!("unknown FETCH modifier {w}")),
                    }
                    if p.eat(b')') {
                        break;
                    }
                    p.sp()?;
                }
                // RFC 7162 §3.2.6: VANISHED only with CHANGEDSINCE.
                if mods.vanished && mods.changed_since.is_none() {
                    return Err("VANISHED needs CHANGEDSINCE".into());
                }
            }
            Cmd::Fetch {
                uid,
                set,
                atts,
                mods,
            }
        }
        "STORE" => {
            let set = p.seq_set()?;
            p.sp()?;
            let mut unchanged_since = None;
            if p.eat(b'(') {
                if !p.atom()?.eq_ignore_ascii_case("UNCHANGEDSINCE") {
                    return Err("unknown STORE modifier".into());
                }
                p.sp()?;
                unchanged_since = Some(p.modseq()?);
                p.expect(b')')?;
                p.sp()?;
            }
            let w = p.atom()?.to_ascii_uppercase();
            let (mode, rest) = match w.strip_prefix('+') {
                Some(r) => (StoreMode::Add, r),
                None => match w.strip_prefix('-') {
                    Some(r) => (StoreMode::Remove, r),
                    None => (StoreMode::Replace, w.as_str()),
                },
            };
            let silent = match rest {
                "FLAGS" => false,
                "FLAGS.SILENT" => true,
                _ => return Err("expected FLAGS or FLAGS.SILENT".into()),
            };
            p.sp()?;
            let flags = if p.peek() == Some(b'(') {
                p.flag_list()?
            } else {
                let mut v = vec![p.flag()?];
                while p.eat(b' ') {
                    v.push(p.flag()?);
                }
                v
            };
            Cmd::Store {
                uid,
                set,
                unchanged_since,
                mode,
                silent,
                flags,
            }
        }
        "COPY" | "MOVE" => {
            let set = p.seq_set()?;
            p.sp()?;
            let mailbox = p.mailbox()?;
            if name == "MOVE" {
                Cmd::Move { uid, set, mailbox }
            } else {
                Cmd::Copy { uid, set, mailbox }
            }
        }
        _ => {
            let ret = search_return(p)?;
            let save = p.i;
            if p.atom().is_ok_and(|w| w.eq_ignore_ascii_case("CHARSET")) {
                p.sp()?;
                let cs = String::from_utf8_lossy(&p.astring()?).to_ascii_uppercase();
                if cs != "UTF-8" && cs != "US-ASCII" {
                    return Err("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into());
                }
                p.sp()?;
            } else {
                p.i = save;
            }
            Cmd::Search {
                uid,
                ret,
                key: search_keys(p)?,
            }
        }
    })
}

/// literal_at_end - a line ending in `{n}` or `{n+}`: (n, synchronizing).
pub fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"}")?;
    let (line, plus) = match line.strip_suffix(b"+") {
        Some(l) => (l, true),
        None => (line, false),
    };
    let open = line.iter().rposition(|&c| c == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, !plus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condstore_and_qresync_syntax() {
        assert_eq!(
            ok("a SELECT x (QRESYNC (67890007 90060115194045000 41:211,214:541) CONDSTORE)"),
            Cmd::Select {
                mailbox: "x".into(),
                read_only: false,
                opts: SelectOpts {
                    condstore: true,
                    qresync: Some(Qresync {
                        validity: 67890007,
                        modseq: 90060115194045000,
                        known: Some(SeqSet(vec![(41, 211), (214, 541)])),
                        seq_match: None
                    })
                }
            }
        );
        assert!(matches!(
            ok("a EXAMINE x (QRESYNC (1 2 1:9 (1,3 5,9)))"),
            Cmd::Select {
                opts: SelectOpts {
                    qresync: Some(Qresync {
                        seq_match: Some(_),
                        ..
                    }),
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            ok("a EXAMINE x (QRESYNC (1 2 (1,3 5,9)))"),
            Cmd::Select {
                opts: SelectOpts {
                    qresync: Some(Qresync {
                        known: None,
                        seq_match: Some(_),
                        ..
                    }),
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            ok("a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)"),
            Cmd::Fetch {
                mods: FetchMods {
                    changed_since: Some(12345),
                    vanished: true
                },
                ..
            }
        ));
        assert!(matches!(
            ok("a STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)"),
            Cmd::Store {
                unchanged_since: Some(320162338),
                silent: true,
                ..
            }
        ));
        assert!(matches!(
            ok("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338"),
            Cmd::Search {
                key: Key::ModSeq(620162338),
                ..
            }
        ));
        for bad in [
            "a FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)",
            "a UID FETCH 1 (FLAGS) (VANISHED)",
            "a SELECT x (QRESYNC (0 5))",
            "a SELECT x (FOO)",
            "a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS ()",
            "a SEARCH MODSEQ \"/flags/x\" mine 5",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(matches!(
            ok("a STATUS x (HIGHESTMODSEQ)"),
            Cmd::Status { .. }
        ));
    }

    fn ok(s: &str) -> Cmd {
        parse(s.as_bytes())
            .unwrap_or_else(|e| panic!("{s}: {e:?}"))
            .1
    }

    fn bad(s: &str) {
        assert!(parse(s.as_bytes()).is_err(), "{s}");
    }

    #[test]
    fn known_answers() {
        assert_eq!(ok("a CAPABILITY"), Cmd::Capability);
        assert_eq!(ok("a noop"), Cmd::Noop);
        assert_eq!(ok("a idle"), Cmd::Idle);
        assert_eq!(ok("a compress deflate"), Cmd::Compress("DEFLATE".into()));
        assert_eq!(
            ok("a GETQUOTAROOT inbox"),
            Cmd::GetQuotaRoot("INBOX".into())
        );
        assert_eq!(ok("a GETQUOTA \"\""), Cmd::GetQuota(String::new()));
        assert_eq!(ok("a SETQUOTA \"\" (STORAGE 512)"), Cmd::SetQuota);
        assert_eq!(ok("a UNSELECT"), Cmd::Unselect);
        assert_eq!(ok("a NAMESPACE"), Cmd::Namespace);
        assert_eq!(ok("a ID NIL"), Cmd::Id);
        assert_eq!(ok("a ID ()"), Cmd::Id);
        assert_eq!(
            ok("a ID (\"name\" \"sodr\" \"version\" NIL \"os\" {3+}\r\nbsd)"),
            Cmd::Id
        );
        bad("a ID");
        bad("a ID (\"name\")");
        bad("a ID (\"name\" \"x\"");
        bad("a ID (name \"x\")");
        bad(&format!("a ID ({})", vec!["\"k\" \"v\""; 31].join(" ")));
        assert_eq!(
            ok("a ENABLE condstore X-GOOD-IDEA"),
            Cmd::Enable(vec!["CONDSTORE".into(), "X-GOOD-IDEA".into()])
        );
        bad("a ENABLE");
        assert_eq!(
            ok("a UID MOVE 42:69 foo"),
            Cmd::Move {
                uid: true,
                set: SeqSet(vec![(42, 69)]),
                mailbox: "foo".into()
            }
        );
        assert!(matches!(
            ok("a move 1 \"a b\""),
            Cmd::Move { uid: false, .. }
        ));
        bad("a MOVE 1");
        bad("a UID MOVE foo");
        assert_eq!(
            ok("a SEARCH OLDER 3600 younger 7200"),
            Cmd::Search {
                uid: false,
                ret: None,
                key: Key::And(vec![Key::Older(3600), Key::Younger(7200)])
            }
        );
        bad("a SEARCH OLDER 0");
        assert_eq!(
            ok("a UID SEARCH RETURN (MIN count) CHARSET UTF-8 ALL"),
            Cmd::Search {
                uid: true,
                ret: Some(Ret {
                    min: true,
                    count: true,
                    ..Ret::default()
                }),
                key: Key::All
            }
        );
        assert!(matches!(
            ok("a SEARCH RETURN () 1:5"),
            Cmd::Search {
                ret: Some(Ret { all: true, .. }),
                ..
            }
        ));
        // SEARCHRES (RFC 5182): SAVE alone is not ALL, `$` only alone.
        assert_eq!(
            ok("a SEARCH RETURN (SAVE) $"),
            Cmd::Search {
                uid: false,
                ret: Some(Ret {
                    save: true,
                    ..Ret::default()
                }),
                key: Key::Seq(SeqSet::saved()),
            }
        );
        assert!(matches!(
            ok("a UID COPY $ Trash"),
            Cmd::Copy { set, .. } if set.is_saved()
        ));
        assert!(matches!(
            ok("a SEARCH NOT UID $"),
            Cmd::Search { key: Key::Not(k), .. } if *k == Key::Uid(SeqSet::saved())
        ));
        bad("a FETCH 1,$ FLAGS");
        bad("a FETCH $:3 FLAGS");
        bad("a STORE $$ +FLAGS \\Seen");
        bad("a SEARCH RETURN (BOGUS) ALL");
        bad("a SEARCH RETURN (MIN)ALL");
        bad("a SEARCH RETURN MIN ALL");
        assert_eq!(
            ok("a UID SORT (REVERSE date subject) UTF-8 ALL"),
            Cmd::Sort {
                uid: true,
                ret: None,
                by: vec![(SortKey::Date, true), (SortKey::Subject, false)],
                key: Key::All
            }
        );
        bad("a SORT (DATE) ALL");
        assert_eq!(
            ok(
                "a UID SORT RETURN (min MAX partial 10:1) (DISPLAYFROM reverse displayto) UTF-8 ALL"
            ),
            Cmd::Sort {
                uid: true,
                ret: Some(Ret {
                    min: true,
                    max: true,
                    partial: Some(Partial {
                        from_end: false,
                        lo: 1,
                        hi: 10
                    }),
                    ..Ret::default()
                }),
                by: vec![(SortKey::DisplayFrom, false), (SortKey::DisplayTo, true)],
                key: Key::All
            }
        );
        assert_eq!(
            ok("a SEARCH RETURN (UPDATE CONTEXT COUNT) ALL"),
            Cmd::Search {
                uid: false,
                ret: Some(Ret {
                    update: true,
                    context: true,
                    count: true,
                    ..Ret::default()
                }),
                key: Key::All
            }
        );
        assert!(matches!(
            ok("a SORT RETURN () (ARRIVAL) UTF-8 ALL"),
            Cmd::Sort {
                ret: Some(Ret { all: true, .. }),
                ..
            }
        ));
        assert_eq!(
            ok("a CANCELUPDATE \"B01\" \"x y\""),
            Cmd::CancelUpdate(vec!["B01".into(), "x y".into()])
        );
        bad("a CANCELUPDATE");
        bad("a CANCELUPDATE B01");
        bad("a SEARCH RETURN (PARTIAL 1:5 ALL) ALL");
        bad("a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL");
        bad("a SEARCH RETURN (PARTIAL 0:5) ALL");
        bad("a SEARCH RETURN (PARTIAL 1:*) ALL");
        bad("a SEARCH RETURN (PARTIAL) ALL");
        bad("a SORT RETURN (MIN)(DATE) UTF-8 ALL");
        assert_eq!(
            ok("a UID THREAD orderedsubject UTF-8 ALL"),
            Cmd::Thread {
                uid: true,
                references: false,
                key: Key::All
            }
        );
        assert_eq!(
            ok("a THREAD references UTF-8 ALL"),
            Cmd::Thread {
                uid: false,
                references: true,
                key: Key::All
            }
        );
        bad("a THREAD REFERENCE UTF-8 ALL");
        bad("a THREAD ORDEREDSUBJECT ALL");
        bad("a SORT () UTF-8 ALL");
        bad("a SORT (REVERSE) UTF-8 ALL");
        bad("a SORT (BOGUS) UTF-8 ALL");
        assert!(parse(b"a SORT (DATE) KOI8-R ALL").is_err());
        assert!(matches!(ok("a LIST \"\" %"), Cmd::List { lsub: false, .. }));
        let Cmd::ListExt(x) = ok(
            "a LIST (SUBSCRIBED RECURSIVEMATCH remote) \"\" (INBOX \"a.%\") RETURN (CHILDREN STATUS (MESSAGES SIZE))",
        ) else {
            panic!("not extended");
        };
        assert!(x.subscribed && x.recursive && !x.special);
        assert_eq!(x.patterns, ["INBOX", "a.%"]);
        assert_eq!(x.status, Some(vec![StatusItem::Messages, StatusItem::Size]));
        assert!(matches!(ok("a LIST () \"\" \"\""), Cmd::ListExt(_)));
        bad("a LIST (RECURSIVEMATCH) \"\" %");
        bad("a LIST (FOO) \"\" %");
        bad("a LIST \"\" % RETURN (FOO)");
        bad("a LIST \"\" % EXTRA");
        bad("a LSUB (SUBSCRIBED) \"\" %");
        bad("a SEARCH YOUNGER");
        bad("a ENABLE (CONDSTORE)");
        assert_eq!(
            ok("a LOGIN ann \"p\\\"w\""),
            Cmd::Login {
                user: "ann".into(),
                pass: b"p\"w".to_vec()
            }
        );
        assert_eq!(
            ok("a LOGIN {3}\r\nann {2+}\r\npw"),
            Cmd::Login {
                user: "ann".into(),
                pass: b"pw".to_vec()
            }
        );
        assert_eq!(
            ok("a select inbox"),
            Cmd::Select {
                mailbox: "INBOX".into(),
                read_only: false,
                opts: SelectOpts::default()
            }
        );
        assert_eq!(
            ok("a LIST \"\" %.*"),
            Cmd::List {
                reference: "".into(),
                pattern: "%.*".into(),
                lsub: false
            }
        );
        assert_eq!(
            ok("a FETCH 1:*,3 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (from To)]<0.100>)"),
            Cmd::Fetch {
                uid: false,
                set: SeqSet(vec![(1, STAR), (3, 3)]),
                atts: vec![
                    Att::Flags,
                    Att::Section {
                        peek: true,
                        section: Section {
                            path: vec![1, 2],
                            text: Some(SectionText::Fields(vec!["FROM".into(), "TO".into()]))
                        },
                        partial: Some((0, 100))
                    }
                ],
                mods: FetchMods::default()
            }
        );
        assert_eq!(
            ok("a UID FETCH 1 BODY[]"),
            Cmd::Fetch {
                uid: true,
                set: SeqSet(vec![(1, 1)]),
                atts: vec![Att::Section {
                    peek: false,
                    section: Section {
                        path: vec![],
                        text: None
                    },
                    partial: None
                }],
                mods: FetchMods::default()
            }
        );
        assert!(matches!(ok("a FETCH 1 full"), Cmd::Fetch { atts, .. } if atts.len() == 5));
        assert!(matches!(ok("a FETCH 1 BODY[3.MIME]"), Cmd::Fetch { .. }));
        assert_eq!(
            ok("a STORE 2:4 +FLAGS.SILENT (\\Deleted foo)"),
            Cmd::Store {
                uid: false,
                set: SeqSet(vec![(2, 4)]),
                unchanged_since: None,
                mode: StoreMode::Add,
                silent: true,
                flags: vec!["\\Deleted".into(), "foo".into()]
            }
        );
        assert_eq!(
            ok("a SEARCH CHARSET UTF-8 OR (FROM \"x\" 1:3) NOT SEEN SINCE 1-Feb-1994"),
            Cmd::Search {
                uid: false,
                ret: None,
                key: Key::And(vec![
                    Key::Or(
                        Box::new(Key::And(vec![
                            Key::Address("from".into(), "x".into()),
                            Key::Seq(SeqSet(vec![(1, 3)]))
                        ])),
                        Box::new(Key::Not(Box::new(Key::Flag(crate::flags::SEEN, true))))
                    ),
                    Key::Since(days_from_civil(1994, 2, 1))
                ])
            }
        );
        assert_eq!(
            ok("a APPEND saved-messages (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {3}\r\nabc"),
            Cmd::Append {
                mailbox: "saved-messages".into(),
                flags: vec!["\\Seen".into()],
                date: Some(760_686_745),
                message: b"abc".to_vec()
            }
        );
        assert_eq!(
            ok("a STATUS blurdybloop (UIDNEXT MESSAGES)"),
            Cmd::Status {
                mailbox: "blurdybloop".into(),
                items: vec![StatusItem::UidNext, StatusItem::Messages]
            }
        );
        assert_eq!(
            ok("a AUTHENTICATE PLAIN AGFubgBwdw=="),
            Cmd::Authenticate {
                mech: "PLAIN".into(),
                initial: Some("AGFubgBwdw==".into())
            }
        );
    }

    #[test]
    fn binary_multiappend_and_create_use() {
        assert_eq!(
            ok("a FETCH 1 (BINARY[1.2]<0.10> BINARY.PEEK[] BINARY.SIZE[3])"),
            Cmd::Fetch {
                uid: false,
                set: SeqSet(vec![(1, 1)]),
                atts: vec![
                    Att::Binary {
                        peek: false,
                        section: Section {
                            path: vec![1, 2],
                            text: None
                        },
                        partial: Some((0, 10))
                    },
                    Att::Binary {
                        peek: true,
                        section: Section {
                            path: vec![],
                            text: None
                        },
                        partial: None
                    },
                    Att::BinarySize(Section {
                        path: vec![3],
                        text: None
                    }),
                ],
                mods: FetchMods::default()
            }
        );
        // As Dovecot: a BINARY section may name HEADER, TEXT and the rest.
        assert!(matches!(
            ok("a FETCH 1 BINARY.PEEK[1.HEADER]<5>"),
            Cmd::Fetch { .. }
        ));
        bad("a FETCH 1 BINARY[0]");
        bad("a FETCH 1 BINARY.SIZE[1]<0.5>");
        bad("a FETCH 1 BINARY");
        // literal8 in APPEND only; it may hold NUL.
        assert_eq!(
            ok("a APPEND x ~{3}\r\na\0b"),
            Cmd::Append {
                mailbox: "x".into(),
                flags: vec![],
                date: None,
                message: b"a\0b".to_vec()
            }
        );
        bad("a SELECT ~{1}\r\nx");
        assert_eq!(
            ok("a APPEND x (\\Seen) {1}\r\nA \" 7-Feb-1994 22:43:04 -0800\" ~{1+}\r\nB {1}\r\nC"),
            Cmd::MultiAppend {
                mailbox: "x".into(),
                messages: vec![
                    AppendMsg {
                        flags: vec!["\\Seen".into()],
                        date: None,
                        message: b"A".to_vec()
                    },
                    AppendMsg {
                        flags: vec![],
                        date: Some(760_689_784),
                        message: b"B".to_vec()
                    },
                    AppendMsg {
                        flags: vec![],
                        date: None,
                        message: b"C".to_vec()
                    },
                ]
            }
        );
        bad("a APPEND x {1}\r\nA ");
        assert!(matches!(
            ok("a APPEND x {1}\r\nA  {1}\r\nB"),
            Cmd::MultiAppend { .. }
        ));
        bad("a APPEND x {1}\r\nA   {1}\r\nB");
        bad("a APPEND x {1}\r\nA (\\Seen)");
        assert_eq!(
            ok("a CREATE MySpecial (USE (\\Drafts \\Sent))"),
            Cmd::CreateUse("MySpecial".into(), vec!["\\Drafts".into(), "\\Sent".into()])
        );
        assert_eq!(
            ok("a CREATE x (use ())"),
            Cmd::CreateUse("x".into(), vec![])
        );
        assert_eq!(ok("a CREATE x"), Cmd::Create("x".into()));
        bad("a CREATE x (FOO (\\Sent))");
        bad("a CREATE x (USE (Sent))");
        bad("a CREATE x (USE (\\Sent)");
        bad("a CREATE x ()");
    }

    #[test]
    fn refusals() {
        for s in [
            "",
            "a",
            "a+ NOOP",
            "a NOOP extra",
            "a FOO",
            "a FETCH 0 FLAGS",
            "a FETCH 1 (FLAGS",
            "a FETCH 1 BODY[0]",
            "a LOGIN \"a\0b\" x",
            "a LOGIN a {5}\r\nab",
            "a SEARCH CHARSET KOI8-R ALL",
            "a SEARCH NOT",
            "a APPEND x \"bad date\" {1}\r\nx",
            "a SELECT \"x\ny\"",
        ] {
            bad(s);
        }
        let deep = format!("a SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
        bad(&deep);
        assert_eq!(parse(b"t1 BOGUS").unwrap_err().tag.as_deref(), Some("t1"));
    }

    #[test]
    fn utf8_quoted_strings_once_enabled() {
        // RFC 6855 §3: 7-bit until UTF8=ACCEPT, then well-formed UTF-8.
        let line = "a SELECT \"Entwürfe\"".as_bytes();
        assert!(parse(line).is_err());
        assert_eq!(
            parse_with(line, true).unwrap().1,
            Cmd::Select {
                mailbox: "Entwürfe".into(),
                read_only: false,
                opts: SelectOpts::default()
            }
        );
        for bad in [
            &b"a SELECT \"\xff\""[..],
            b"a SELECT \"\xc3\"",
            b"a SELECT \"\xed\xa0\x80\"",
        ] {
            assert!(parse_with(bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn append_utf8_and_status_deleted() {
        // RFC 6855 §4's data extension, and RFC 9051's STATUS DELETED.
        assert_eq!(
            ok("a APPEND INBOX (\\Seen) UTF8 (~{3}\r\nabc)"),
            Cmd::Append {
                mailbox: "INBOX".into(),
                flags: vec!["\\Seen".into()],
                date: None,
                message: b"abc".to_vec(),
            }
        );
        bad("a APPEND INBOX UTF8 ({3}\r\nabc)");
        bad("a APPEND INBOX UTF8 (~{3}\r\nabc");
        bad("a APPEND INBOX UTF7 (~{3}\r\nabc)");
        assert_eq!(
            ok("a STATUS x (DELETED SIZE)"),
            Cmd::Status {
                mailbox: "x".into(),
                items: vec![StatusItem::Deleted, StatusItem::Size],
            }
        );
    }

    #[test]
    fn literal_ends() {
        assert_eq!(literal_at_end(b"a LOGIN {3}"), Some((3, true)));
        assert_eq!(literal_at_end(b"a LOGIN {3+}"), Some((3, false)));
        assert_eq!(literal_at_end(b"a LOGIN {}"), None);
        assert_eq!(literal_at_end(b"a LOGIN x"), None);
        assert_eq!(literal_at_end(b"{99999999999999}"), None);
    }
}
