//! addrlist - the address fields of a message header (From, To, Cc,
//! Sender, ...) parsed as RFC 5322 §3.4 writes them, with the obsolete
//! forms of §4.4 that old and odd mailers still produce: comments and
//! folding between any two tokens (`<user (c)@ (c) example.org>`),
//! dots and words in display names (`John Q. Public`), local parts with
//! empty or trailing dots, source routes (`<@a,@b:user@example.org>`),
//! and the old habit of putting the name in a comment after a bare
//! address (`user@example.org (Real Name)`, which becomes the name, as
//! Dovecot and Cyrus read it).
//!
//! Distrusts the field: it never fails. What cannot be read as an
//! address is skipped up to the next comma, a missing local part or
//! domain is left `None` for the caller to show as it must, and a group
//! that is never closed ends where the field does. Display names keep
//! RFC 2047 encoded words as written (IMAP's ENVELOPE sends them so);
//! `decoded_name` decodes them for searching and sorting.

/// One mailbox: an address, perhaps named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name as written, quoted strings unquoted and white
    /// space runs made one space; or the comment after a bare address.
    pub name: Option<String>,
    /// An obsolete source route, `@a,@b`, without its colon.
    pub route: Option<String>,
    /// The local part, quotes removed; None when the address has none.
    pub local: Option<String>,
    /// The domain (a domain literal keeps its brackets); None when the
    /// address has no `@domain`.
    pub domain: Option<String>,
}

/// One element of an address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Mailbox(Mailbox),
    /// `name: member, member;`, possibly with no members.
    Group(String, Vec<Mailbox>),
}

/// Most addresses read from one field: a field cannot make a reader
/// build an unbounded list.
pub const MAX_ADDRESSES: usize = 10_000;

/// parse - the addresses in an address field's value (unfolded or not).
pub fn parse(value: &str) -> Vec<Address> {
    let mut p = Parser {
        s: value.as_bytes(),
        at: 0,
        comment: None,
    };
    let mut out = Vec::new();
    let mut count = 0;
    loop {
        p.cfws();
        match p.peek() {
            None => break,
            Some(b',') => {
                p.at += 1;
                continue;
            }
            _ => {}
        }
        if count >= MAX_ADDRESSES {
            break;
        }
        let start = p.at;
        if let Some(g) = p.group() {
            count += 1 + match &g {
                Address::Group(_, m) => m.len(),
                Address::Mailbox(_) => 0,
            };
            out.push(g);
        } else {
            p.at = start;
            match p.mailbox() {
                Some(m) => {
                    count += 1;
                    out.push(Address::Mailbox(m));
                }
                None => p.skip_to(b","),
            }
        }
        // Whatever follows an address up to the next comma is not one.
        p.cfws();
        if p.peek().is_some_and(|c| c != b',') {
            p.skip_to(b",");
        }
    }
    out
}

/// first_mailbox - the first mailbox of a field, looking into groups:
/// what a sort by "the first address" compares.
pub fn first_mailbox(list: &[Address]) -> Option<&Mailbox> {
    list.iter().find_map(|a| match a {
        Address::Mailbox(m) => Some(m),
        Address::Group(_, m) => m.first(),
    })
}

impl Mailbox {
    /// addr_spec - `local@domain`, or what of it there is; a local part
    /// that is no dot-atom is quoted, as it must be written.
    pub fn addr_spec(&self) -> String {
        let local = quoted_local(self.local.as_deref().unwrap_or(""));
        match &self.domain {
            Some(d) => format!("{local}@{d}"),
            None => local.to_string(),
        }
    }

    /// decoded_name - the display name with RFC 2047 words decoded;
    /// None when there is none or it is empty.
    pub fn decoded_name(&self) -> Option<String> {
        let n = self.name.as_deref()?;
        let d = decode_words(n);
        let d = d.trim();
        (!d.is_empty()).then(|| d.to_string())
    }
}

/// quoted_local - a local part as written in an address: as it is when
/// it is a dot-atom (or empty), else a quoted string.
fn quoted_local(l: &str) -> std::borrow::Cow<'_, str> {
    let dot_atom = l
        .split('.')
        .all(|w| !w.is_empty() && w.bytes().all(is_atext));
    if l.is_empty() || dot_atom {
        return l.into();
    }
    let mut q = String::from("\"");
    for c in l.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q.into()
}

/// normalized - an address list written back in one canonical form, the
/// way Dovecot matches SEARCH FROM/TO/CC/BCC: `local@domain` for a bare
/// address, `Name <@route:local@domain>` otherwise, `group: a, b;` for a
/// group; names decoded. A search string then matches the name, the
/// local part, the domain or `local@domain`, whatever comments, quotes
/// or obsolete syntax the field was written with.
pub fn normalized(list: &[Address]) -> String {
    let mut out = String::new();
    for (i, a) in list.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match a {
            Address::Mailbox(m) => write_mailbox(&mut out, m),
            Address::Group(name, members) => {
                out.push_str(&decode_words(name));
                out.push(':');
                if !members.is_empty() {
                    out.push(' ');
                }
                for (j, m) in members.iter().enumerate() {
                    if j > 0 {
                        out.push_str(", ");
                    }
                    write_mailbox(&mut out, m);
                }
                out.push(';');
            }
        }
    }
    out
}

/// write_mailbox - one mailbox in normalized's form.
fn write_mailbox(out: &mut String, m: &Mailbox) {
    let name = m.decoded_name();
    if name.is_none() && m.route.is_none() {
        out.push_str(&m.addr_spec());
        return;
    }
    if let Some(n) = name {
        out.push_str(&n);
        out.push(' ');
    }
    out.push('<');
    if let Some(r) = &m.route {
        out.push_str(r);
        out.push(':');
    }
    out.push_str(&m.addr_spec());
    out.push('>');
}

/// decode_words - a phrase with its RFC 2047 encoded words decoded (as
/// mailparse decodes a header value); white space between two encoded
/// words goes, as §6.2 says.
pub fn decode_words(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_string();
    }
    let field = format!("X: {s}");
    match mailparse::parse_header(field.as_bytes()) {
        Ok((h, _)) => h.get_value(),
        Err(_) => s.to_string(),
    }
}

/// The cursor over one field value.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    /// The last comment read since `mailbox` began: a bare address's
    /// name.
    comment: Option<String>,
}

/// is_special - RFC 5322 §3.2.3's specials, which end an atom.
fn is_special(c: u8) -> bool {
    b"()<>[]:;@\\,.\"".contains(&c)
}

/// is_atext - an atom's character: printable ASCII but specials, or any
/// octet of UTF-8 text (RFC 6532).
fn is_atext(c: u8) -> bool {
    (c > b' ' && c != 0x7f && !is_special(c)) || c >= 0x80
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    /// text - the octets from `a` to `b` as text (UTF-8, lossily).
    fn text(&self, a: usize, b: usize) -> String {
        String::from_utf8_lossy(&self.s[a..b]).into_owned()
    }

    /// skip_to - on to the next of `stops` at the top level (outside
    /// quotes, comments and brackets), not past it.
    fn skip_to(&mut self, stops: &[u8]) {
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.quoted();
                }
                b'(' => {
                    self.comment_text();
                }
                b'<' => {
                    while let Some(d) = self.peek() {
                        if d == b'>' || stops.contains(&d) && d != b',' {
                            break;
                        }
                        self.at += 1;
                    }
                    if self.peek() == Some(b'>') {
                        self.at += 1;
                    }
                }
                _ if stops.contains(&c) => return,
                _ => self.at += 1,
            }
        }
    }

    /// cfws - skip white space, folding and comments, remembering the
    /// last comment's text.
    fn cfws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.at += 1,
                b'(' => {
                    let t = self.comment_text();
                    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !t.is_empty() {
                        self.comment = Some(t);
                    }
                }
                _ => return,
            }
        }
    }

    /// comment_text - a comment, nested ones included, its text without
    /// the outer parentheses and with quoted-pairs unquoted.
    fn comment_text(&mut self) -> String {
        let mut out = Vec::new();
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                b'\\' => {
                    if let Some(d) = self.peek() {
                        out.push(d);
                        self.at += 1;
                    }
                }
                b'(' => {
                    if depth > 0 {
                        out.push(c);
                    }
                    depth += 1;
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// quoted - a quoted string's content, quoted-pairs unquoted and
    /// folding removed; the cursor must be on its opening quote.
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        self.at += 1;
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(d) = self.peek() {
                        out.push(d);
                        self.at += 1;
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// atom - a run of atext, possibly empty.
    fn atom(&mut self) -> String {
        let a = self.at;
        while self.peek().is_some_and(is_atext) {
            self.at += 1;
        }
        self.text(a, self.at)
    }

    /// word - an atom or a quoted string, after CFWS; None when neither
    /// is there (nothing is consumed but the CFWS).
    fn word(&mut self) -> Option<String> {
        self.cfws();
        match self.peek() {
            Some(b'"') => Some(self.quoted()),
            Some(c) if is_atext(c) => Some(self.atom()),
            _ => None,
        }
    }

    /// phrase - a display name: words, and the dots obs-phrase allows
    /// among them, joined by single spaces (a dot sticks to the word
    /// before it). Empty when there is no word.
    fn phrase(&mut self) -> String {
        let mut out = String::new();
        loop {
            self.cfws();
            match self.peek() {
                Some(b'.') if !out.is_empty() => {
                    self.at += 1;
                    out.push('.');
                }
                Some(c) if c == b'"' || is_atext(c) => {
                    let w = self.word().unwrap_or_default();
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(&w);
                }
                _ => return out,
            }
        }
    }

    /// group - `display-name ":" [mailbox-list] ";"`; None (cursor
    /// wherever) when the text here is not a group's start.
    fn group(&mut self) -> Option<Address> {
        let name = self.phrase();
        self.cfws();
        if name.is_empty() || self.peek() != Some(b':') {
            return None;
        }
        self.at += 1;
        let mut members = Vec::new();
        loop {
            self.cfws();
            match self.peek() {
                None => break,
                Some(b';') => {
                    self.at += 1;
                    break;
                }
                Some(b',') => self.at += 1,
                _ => {
                    if members.len() >= MAX_ADDRESSES {
                        self.skip_to(b";");
                        continue;
                    }
                    match self.mailbox() {
                        Some(m) => members.push(m),
                        None => self.skip_to(b",;"),
                    }
                    self.cfws();
                    if self.peek().is_some_and(|c| c != b',' && c != b';') {
                        self.skip_to(b",;");
                    }
                }
            }
        }
        Some(Address::Group(name, members))
    }

    /// mailbox - `[display-name] angle-addr` or `addr-spec [comment]`.
    fn mailbox(&mut self) -> Option<Mailbox> {
        let start = self.at;
        self.comment = None;
        let name = self.phrase();
        self.cfws();
        if self.peek() == Some(b'<') {
            let mut m = self.angle_addr();
            m.name = (!name.is_empty()).then_some(name);
            return Some(m);
        }
        // Not a name-addr: read it again as an addr-spec, whose last
        // comment (the old `user@host (Real Name)`) names it.
        self.at = start;
        self.comment = None;
        let mut m = self.addr_spec()?;
        self.cfws();
        m.name = self.comment.take();
        Some(m)
    }

    /// angle_addr - `"<" [route ":"] addr-spec ">"`; the cursor is on
    /// the `<`. Comments inside name nothing.
    fn angle_addr(&mut self) -> Mailbox {
        self.at += 1;
        self.cfws();
        let mut route = String::new();
        while self.peek() == Some(b'@') {
            self.at += 1;
            let d = self.domain();
            if !route.is_empty() {
                route.push(',');
            }
            route.push('@');
            route.push_str(&d);
            self.cfws();
            while self.peek() == Some(b',') {
                self.at += 1;
                self.cfws();
            }
        }
        if !route.is_empty() && self.peek() == Some(b':') {
            self.at += 1;
        }
        let mut m = self.addr_spec().unwrap_or_default();
        m.route = (!route.is_empty()).then_some(route);
        self.cfws();
        // Anything before the closing bracket is dropped.
        while let Some(c) = self.peek() {
            self.at += 1;
            if c == b'>' {
                break;
            }
        }
        m
    }

    /// addr_spec - `local-part ["@" domain]`, the local part being words
    /// joined by dots (obs-local-part: CFWS around the dots, and empty
    /// words, as some mailers write); None when there is not even a
    /// local part.
    fn addr_spec(&mut self) -> Option<Mailbox> {
        let mut local = String::new();
        let mut any = false;
        loop {
            self.cfws();
            match self.peek() {
                Some(b'.') => {
                    self.at += 1;
                    local.push('.');
                    any = true;
                }
                Some(c) if c == b'"' || is_atext(c) => {
                    // Two words need a dot between them.
                    if any && !local.ends_with('.') {
                        break;
                    }
                    local.push_str(&self.word().unwrap_or_default());
                    any = true;
                }
                _ => break,
            }
        }
        self.cfws();
        let domain = if self.peek() == Some(b'@') {
            self.at += 1;
            Some(self.domain())
        } else {
            None
        };
        if !any && domain.is_none() {
            return None;
        }
        Some(Mailbox {
            name: None,
            route: None,
            local: any.then_some(local),
            domain,
        })
    }

    /// domain - a dot-atom (obs-domain: CFWS around the dots) or a
    /// domain literal, after CFWS.
    fn domain(&mut self) -> String {
        self.cfws();
        if self.peek() == Some(b'[') {
            let a = self.at;
            while let Some(c) = self.peek() {
                self.at += 1;
                if c == b']' {
                    break;
                }
                if c == b'\\' && self.peek().is_some() {
                    self.at += 1;
                }
            }
            return self.text(a, self.at);
        }
        let mut out = String::new();
        loop {
            self.cfws();
            match self.peek() {
                Some(b'.') => {
                    self.at += 1;
                    out.push('.');
                }
                Some(c) if is_atext(c) => {
                    if !out.is_empty() && !out.ends_with('.') {
                        break;
                    }
                    out.push_str(&self.atom());
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, route: Option<&str>, local: &str, domain: Option<&str>) -> Address {
        Address::Mailbox(Mailbox {
            name: name.map(String::from),
            route: route.map(String::from),
            local: Some(local.to_string()),
            domain: domain.map(String::from),
        })
    }

    #[test]
    fn rfc5322_appendix_a_examples() {
        // A.1.1, A.1.2, A.1.3.
        assert_eq!(
            parse("John Doe <jdoe@machine.example>"),
            [mb(Some("John Doe"), None, "jdoe", Some("machine.example"))]
        );
        assert_eq!(
            parse("\"Joe Q. Public\" <john.q.public@example.com>"),
            [mb(
                Some("Joe Q. Public"),
                None,
                "john.q.public",
                Some("example.com")
            )]
        );
        let l = parse("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>");
        assert_eq!(l.len(), 3);
        assert_eq!(l[1], mb(None, None, "jdoe", Some("example.org")));
        assert_eq!(l[2], mb(Some("Who?"), None, "one", Some("y.test")));
        let l = parse("<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>");
        assert_eq!(l[0], mb(None, None, "boss", Some("nil.test")));
        assert_eq!(
            l[1],
            mb(
                Some("Giant; \"Big\" Box"),
                None,
                "sysservices",
                Some("example.net")
            )
        );
        // A.1.3: groups, one of them empty.
        let l = parse(
            "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, Undisclosed recipients:;",
        );
        assert_eq!(l.len(), 2);
        match &l[0] {
            Address::Group(n, m) => {
                assert_eq!(n, "A Group");
                assert_eq!(m.len(), 3);
                assert_eq!(m[1].addr_spec(), "joe@where.test");
            }
            x => panic!("{x:?}"),
        }
        assert_eq!(
            l[1],
            Address::Group("Undisclosed recipients".into(), vec![])
        );
        // A.5: comments and folding everywhere.
        let l = parse("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>");
        assert_eq!(l, [mb(Some("Pete"), None, "pete", Some("silly.test"))]);
        let l = parse(
            "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
        );
        match &l[..] {
            [Address::Group(n, m)] => {
                assert_eq!(n, "A Group");
                assert_eq!(m[0].addr_spec(), "c@public.example");
                assert_eq!(m[0].name.as_deref(), Some("Chris Jones"));
                assert_eq!(m[2].name.as_deref(), Some("John"));
            }
            x => panic!("{x:?}"),
        }
    }

    #[test]
    fn obsolete_forms_of_section_4_4() {
        // A.6.1: obs-phrase with dots, a source route.
        let l = parse("Joe Q. Public <john.q.public@example.com>");
        assert_eq!(
            l[0],
            mb(
                Some("Joe Q. Public"),
                None,
                "john.q.public",
                Some("example.com")
            )
        );
        let l = parse("Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example");
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0],
            mb(
                Some("Mary Smith"),
                Some("@node.test"),
                "mary",
                Some("example.net")
            )
        );
        assert_eq!(l[1], mb(None, None, "jdoe", Some("test.example")));
        // Comments around the @ and the dots.
        let l = parse("<user-from (comment)@ (comment) domain.org>");
        assert_eq!(l, [mb(None, None, "user-from", Some("domain.org"))]);
        let l = parse("<@route:user@domain>");
        assert_eq!(l, [mb(None, Some("@route"), "user", Some("domain"))]);
        let l = parse("<@a.test,@b.test:user@domain>");
        assert_eq!(
            l,
            [mb(None, Some("@a.test,@b.test"), "user", Some("domain"))]
        );
        // The name in a trailing comment.
        let l = parse("user@domain (Real Name)");
        assert_eq!(l, [mb(Some("Real Name"), None, "user", Some("domain"))]);
        // Dots the RFC forbids but mailers write.
        let l = parse("a..b.@x.test");
        assert_eq!(l, [mb(None, None, "a..b.", Some("x.test"))]);
        // A quoted local part keeps its text, not its quotes.
        let l = parse("\"a b\"@x.test");
        assert_eq!(l, [mb(None, None, "a b", Some("x.test"))]);
        let l = parse("x@[192.0.2.1]");
        assert_eq!(l, [mb(None, None, "x", Some("[192.0.2.1]"))]);
    }

    #[test]
    fn broken_fields_still_give_what_they_can() {
        assert_eq!(parse(""), []);
        assert_eq!(parse("  (only a comment) "), []);
        assert_eq!(parse("user"), [mb(None, None, "user", None)]);
        // A name with no address: its first word, then the rest skipped.
        assert_eq!(parse("Real Name"), [mb(None, None, "Real", None)]);
        let l = parse("Bad <>, ok@x.test");
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0],
            Address::Mailbox(Mailbox {
                name: Some("Bad".into()),
                ..Default::default()
            })
        );
        assert_eq!(l[1], mb(None, None, "ok", Some("x.test")));
        // An unclosed group ends with the field; unclosed quotes and
        // brackets too.
        let l = parse("g: a@x.test, b@y.test");
        assert_eq!(l.len(), 1);
        assert!(matches!(&l[0], Address::Group(n, m) if n == "g" && m.len() == 2));
        let l = parse("\"unclosed <a@b>");
        assert_eq!(l, [mb(None, None, "unclosed <a@b>", None)]);
        assert_eq!(parse("<a@b.test").len(), 1);
        let l = parse("@@@, ,,, <>,x@y");
        assert_eq!(l.last(), Some(&mb(None, None, "x", Some("y"))));
    }

    #[test]
    fn normalized_is_what_address_searches_match() {
        let n = |s: &str| normalized(&parse(s));
        assert_eq!(
            n("<user-from (comment)@ (comment) domain.org>"),
            "user-from@domain.org"
        );
        assert_eq!(
            n("user@domain.org (RealFrom)"),
            "RealFrom <user@domain.org>"
        );
        assert_eq!(
            n("RealFrom <user@domain.org>"),
            "RealFrom <user@domain.org>"
        );
        assert_eq!(
            n("groupname: u1@d.org, u2@d.org;,\r\n  groupname2: u3@d.org;"),
            "groupname: u1@d.org, u2@d.org;, groupname2: u3@d.org;"
        );
        assert_eq!(n("undisclosed-recipients:;"), "undisclosed-recipients:;");
        assert_eq!(n("=?utf-8?q?J=C3=BCrgen?= <j@x.test>"), "Jürgen <j@x.test>");
        assert_eq!(n("<@r.test:u@d.test>"), "<@r.test:u@d.test>");
        assert_eq!(
            n("\"a b\"@x.test, \"a.b\"@x.test"),
            "\"a b\"@x.test, a.b@x.test"
        );
    }

    #[test]
    fn limits_hold() {
        let many = "a@b.test,".repeat(MAX_ADDRESSES + 50);
        assert_eq!(parse(&many).len(), MAX_ADDRESSES);
        // Deep comments are read without recursion; a comment before
        // an address names nothing.
        let deep = format!("{}x{}a@b", "(".repeat(50_000), ")".repeat(50_000));
        assert_eq!(parse(&deep), [mb(None, None, "a", Some("b"))]);
    }
}
