//! lexer - a Sieve script cut into tokens (RFC 5228 §8.1), each with its
//! line number for error messages.
//!
//! Distrusts the script: it is at most MAX_SCRIPT_SIZE bytes (checked by
//! the caller), must be UTF-8, and every token is bounded by the script.
//! CRLF and bare LF both end lines, as Pigeonhole accepts both.

use crate::Error;

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    Tag(String),
    Num(u64),
    Str(String),
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Semi,
}

/// A token and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub line: u32,
}

/// tokenize - the whole script as tokens.
pub fn tokenize(src: &str) -> Result<Vec<Token>, Error> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line: u32 = 1;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = line;
                i += 2;
                loop {
                    if i + 1 >= b.len() {
                        return Err(Error::at(start, "unterminated comment"));
                    }
                    if b[i] == b'*' && b[i + 1] == b'/' {
                        i += 2;
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            b'[' | b']' | b'(' | b')' | b'{' | b'}' | b',' | b';' => {
                let tok = match c {
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'{' => Tok::LBrace,
                    b'}' => Tok::RBrace,
                    b',' => Tok::Comma,
                    _ => Tok::Semi,
                };
                out.push(Token { tok, line });
                i += 1;
            }
            b'"' => {
                let start = line;
                i += 1;
                let mut s = Vec::new();
                loop {
                    let Some(&ch) = b.get(i) else {
                        return Err(Error::at(start, "unterminated string"));
                    };
                    match ch {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            // `\"` and `\\` are the escapes; a backslash
                            // before anything else is dropped (§2.4.2).
                            let Some(&n) = b.get(i + 1) else {
                                return Err(Error::at(start, "unterminated string"));
                            };
                            if n == b'\n' {
                                line += 1;
                            }
                            s.push(n);
                            i += 2;
                        }
                        b'\n' => {
                            line += 1;
                            s.push(ch);
                            i += 1;
                        }
                        _ => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Str(utf8(s, start)?),
                    line: start,
                });
            }
            b':' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j == start || b[start].is_ascii_digit() {
                    return Err(Error::at(line, "expected a tag name after ':'"));
                }
                out.push(Token {
                    tok: Tok::Tag(src[start..j].to_ascii_lowercase()),
                    line,
                });
                i = j;
            }
            b'0'..=b'9' => {
                let mut j = i;
                let mut n: u64 = 0;
                while j < b.len() && b[j].is_ascii_digit() {
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(b[j] - b'0')))
                        .ok_or_else(|| Error::at(line, "number too large"))?;
                    j += 1;
                }
                let mult = match b.get(j).map(u8::to_ascii_uppercase) {
                    Some(b'K') => 1 << 10,
                    Some(b'M') => 1 << 20,
                    Some(b'G') => 1 << 30,
                    _ => 1,
                };
                if mult != 1 {
                    j += 1;
                }
                let n = n
                    .checked_mul(mult)
                    .filter(|n| *n <= i64::MAX as u64)
                    .ok_or_else(|| Error::at(line, "number too large"))?;
                if b.get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    return Err(Error::at(line, "bad number"));
                }
                out.push(Token {
                    tok: Tok::Num(n),
                    line,
                });
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let word = &src[i..j];
                if word.eq_ignore_ascii_case("text") && b.get(j) == Some(&b':') {
                    let (s, next, lines) = multiline(b, j + 1, line)?;
                    out.push(Token {
                        tok: Tok::Str(s),
                        line,
                    });
                    line += lines;
                    i = next;
                } else {
                    out.push(Token {
                        tok: Tok::Ident(word.to_ascii_lowercase()),
                        line,
                    });
                    i = j;
                }
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(Error::at(line, format!("unexpected character '{ch}'")));
            }
        }
    }
    Ok(out)
}

/// multiline - `text:` already read up to `at`: blanks, an optional
/// comment, the line end, then lines up to a lone `.`; `..` at a line
/// start stands for `.`. Returns the text, where it ends, and the lines
/// it took.
fn multiline(b: &[u8], mut at: usize, line: u32) -> Result<(String, usize, u32), Error> {
    while at < b.len() && (b[at] == b' ' || b[at] == b'\t') {
        at += 1;
    }
    if b.get(at) == Some(&b'#') {
        while at < b.len() && b[at] != b'\n' {
            at += 1;
        }
    }
    if b.get(at) == Some(&b'\r') {
        at += 1;
    }
    if b.get(at) != Some(&b'\n') {
        return Err(Error::at(line, "text: must be followed by a line end"));
    }
    at += 1;
    let mut lines = 1;
    let mut s = Vec::new();
    loop {
        if at >= b.len() {
            return Err(Error::at(line, "unterminated multi-line string"));
        }
        let end = b[at..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| at + p);
        let mut l = &b[at..end];
        if l.last() == Some(&b'\r') {
            l = &l[..l.len() - 1];
        }
        lines += 1;
        at = (end + 1).min(b.len());
        if l == b"." {
            break;
        }
        if end >= b.len() {
            return Err(Error::at(line, "unterminated multi-line string"));
        }
        if l.starts_with(b"..") {
            l = &l[1..];
        }
        s.extend_from_slice(l);
        s.extend_from_slice(b"\r\n");
    }
    Ok((utf8(s, line)?, at, lines - 1))
}

/// utf8 - a string token's bytes as text (RFC 5228 §2.4.2: UTF-8).
fn utf8(s: Vec<u8>, line: u32) -> Result<String, Error> {
    String::from_utf8(s).map_err(|_| Error::at(line, "string is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            toks("if size :over 100K { discard; } # c\n/* x\n*/"),
            vec![
                Tok::Ident("if".into()),
                Tok::Ident("size".into()),
                Tok::Tag("over".into()),
                Tok::Num(102400),
                Tok::LBrace,
                Tok::Ident("discard".into()),
                Tok::Semi,
                Tok::RBrace
            ]
        );
        assert_eq!(toks(r#""a\"b\\c\d""#), vec![Tok::Str("a\"b\\cd".into())]);
        assert_eq!(
            toks("text: # x\r\nline\r\n..dot\r\n.\r\n;"),
            vec![Tok::Str("line\r\n.dot\r\n".into()), Tok::Semi]
        );
        assert_eq!(toks("[\"a\",\"b\"]").len(), 5);
    }

    #[test]
    fn line_numbers_and_errors() {
        let t = tokenize("keep;\n\n\"a\nb\"\nstop;").unwrap();
        assert_eq!(
            t.iter().map(|t| t.line).collect::<Vec<_>>(),
            [1, 1, 3, 5, 5]
        );
        for (bad, line) in [
            ("\n\"abc", 2),
            ("/* x", 1),
            ("keep;\n:1x", 2),
            ("99999999999999999999", 1),
            ("8G8", 1),
            ("text:\nabc\n", 1),
            ("text: x\nabc\n.\n", 1),
            ("@", 1),
        ] {
            let e = tokenize(bad).unwrap_err();
            assert_eq!(e.line, line, "{bad:?}: {e}");
        }
    }
}
