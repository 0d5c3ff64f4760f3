//! parser - tokens into the generic command tree of RFC 5228 §8.2:
//! commands with arguments, tests and blocks, not yet checked against
//! what each command means (that is compile.rs).
//!
//! Distrusts nesting: blocks and tests nest at most MAX_NESTING deep, so
//! a hostile script cannot overflow the stack of the parser, the
//! compiler or the interpreter.

use crate::Error;
use crate::lexer::{Tok, Token};

/// How deep blocks and tests may nest (Pigeonhole's limit is 32 too).
pub const MAX_NESTING: usize = 32;

/// One argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A string or a string list; `single` when written without brackets.
    Strs {
        list: Vec<String>,
        single: bool,
    },
    Num(u64),
    Tag(String),
}

/// A test: `name args (tests)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestNode {
    pub name: String,
    pub line: u32,
    pub args: Vec<(Arg, u32)>,
    pub tests: Vec<TestNode>,
}

/// A command: `name args [test|(tests)] (; | { block })`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandNode {
    pub name: String,
    pub line: u32,
    pub args: Vec<(Arg, u32)>,
    pub tests: Vec<TestNode>,
    /// Whether a test list in parentheses was given (vs. a single test).
    pub test_list: bool,
    pub block: Option<Vec<CommandNode>>,
}

/// parse - the whole script.
/// `eof_line` is the line the script ends on, where errors about a
/// missing end are reported (as Pigeonhole reports them).
pub fn parse(tokens: &[Token], eof_line: u32) -> Result<Vec<CommandNode>, Error> {
    let mut p = Parser {
        t: tokens,
        i: 0,
        eof_line,
    };
    let cmds = p.commands(0)?;
    if let Some(t) = p.peek() {
        return Err(Error::at(t.line, "unexpected '}'"));
    }
    Ok(cmds)
}

struct Parser<'a> {
    t: &'a [Token],
    i: usize,
    eof_line: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.t.get(self.i)
    }

    fn last_line(&self) -> u32 {
        self.eof_line
    }

    /// commands - until `}` or the end.
    fn commands(&mut self, depth: usize) -> Result<Vec<CommandNode>, Error> {
        let mut v = Vec::new();
        while let Some(t) = self.peek() {
            match &t.tok {
                Tok::RBrace => break,
                Tok::Ident(_) => v.push(self.command(depth)?),
                other => {
                    return Err(Error::at(
                        t.line,
                        format!("expected a command, found {}", describe(other)),
                    ));
                }
            }
        }
        Ok(v)
    }

    fn command(&mut self, depth: usize) -> Result<CommandNode, Error> {
        let (name, line) = self.ident()?;
        let (args, tests, test_list) = self.arguments(depth)?;
        let block = match self.peek() {
            Some(Token { tok: Tok::Semi, .. }) => {
                self.i += 1;
                None
            }
            Some(Token {
                tok: Tok::LBrace,
                line: bl,
            }) => {
                let bl = *bl;
                if depth + 1 > MAX_NESTING {
                    return Err(Error::at(bl, "blocks nested too deeply"));
                }
                self.i += 1;
                let body = self.commands(depth + 1)?;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RBrace, ..
                    }) => self.i += 1,
                    _ => {
                        return Err(Error::at(
                            self.last_line(),
                            format!("missing '}}' for the block opened on line {bl}"),
                        ));
                    }
                }
                Some(body)
            }
            Some(t) => {
                return Err(Error::at(
                    t.line,
                    format!(
                        "missing semicolon ';' after {name} command, found {}",
                        describe(&t.tok)
                    ),
                ));
            }
            None => {
                return Err(Error::at(
                    self.last_line(),
                    format!("missing semicolon ';' after {name} command"),
                ));
            }
        };
        Ok(CommandNode {
            name,
            line,
            args,
            tests,
            test_list,
            block,
        })
    }

    fn ident(&mut self) -> Result<(String, u32), Error> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(n),
                line,
            }) => {
                let r = (n.clone(), *line);
                self.i += 1;
                Ok(r)
            }
            Some(t) => Err(Error::at(
                t.line,
                format!("expected an identifier, found {}", describe(&t.tok)),
            )),
            None => Err(Error::at(self.last_line(), "unexpected end of script")),
        }
    }

    /// arguments - `*argument [test / test-list]`.
    #[allow(clippy::type_complexity)]
    fn arguments(&mut self, depth: usize) -> Result<(Vec<(Arg, u32)>, Vec<TestNode>, bool), Error> {
        let mut args = Vec::new();
        while let Some(t) = self.peek() {
            let line = t.line;
            match &t.tok {
                Tok::Num(n) => {
                    args.push((Arg::Num(*n), line));
                    self.i += 1;
                }
                Tok::Tag(s) => {
                    args.push((Arg::Tag(s.clone()), line));
                    self.i += 1;
                }
                Tok::Str(s) => {
                    args.push((
                        Arg::Strs {
                            list: vec![s.clone()],
                            single: true,
                        },
                        line,
                    ));
                    self.i += 1;
                }
                Tok::LBracket => {
                    self.i += 1;
                    let mut list = Vec::new();
                    loop {
                        match self.peek().map(|t| &t.tok) {
                            Some(Tok::Str(s)) => {
                                list.push(s.clone());
                                self.i += 1;
                            }
                            _ => {
                                return Err(Error::at(
                                    line,
                                    "expected a string in the string list",
                                ));
                            }
                        }
                        match self.peek().map(|t| &t.tok) {
                            Some(Tok::Comma) => self.i += 1,
                            Some(Tok::RBracket) => {
                                self.i += 1;
                                break;
                            }
                            _ => {
                                return Err(Error::at(
                                    line,
                                    "expected ',' or ']' in the string list",
                                ));
                            }
                        }
                    }
                    args.push((
                        Arg::Strs {
                            list,
                            single: false,
                        },
                        line,
                    ));
                }
                _ => break,
            }
        }
        let mut tests = Vec::new();
        let mut test_list = false;
        match self.peek().map(|t| (&t.tok, t.line)) {
            Some((Tok::Ident(_), _)) => tests.push(self.test(depth + 1)?),
            Some((Tok::LParen, line)) => {
                self.i += 1;
                test_list = true;
                loop {
                    tests.push(self.test(depth + 1)?);
                    match self.peek().map(|t| &t.tok) {
                        Some(Tok::Comma) => self.i += 1,
                        Some(Tok::RParen) => {
                            self.i += 1;
                            break;
                        }
                        _ => return Err(Error::at(line, "expected ',' or ')' in the test list")),
                    }
                }
            }
            _ => {}
        }
        Ok((args, tests, test_list))
    }

    fn test(&mut self, depth: usize) -> Result<TestNode, Error> {
        if depth > MAX_NESTING {
            return Err(Error::at(
                self.peek().map_or(self.last_line(), |t| t.line),
                "tests nested too deeply",
            ));
        }
        let (name, line) = self.ident()?;
        let (args, tests, _) = self.arguments(depth)?;
        Ok(TestNode {
            name,
            line,
            args,
            tests,
        })
    }
}

/// describe - a token as an error message names it.
fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("identifier '{s}'"),
        Tok::Tag(s) => format!("tag ':{s}'"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Str(_) => "a string".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::Comma => "','".into(),
        Tok::Semi => "';'".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn p(s: &str) -> Result<Vec<CommandNode>, Error> {
        parse(&tokenize(s)?, s.matches('\n').count() as u32 + 1)
    }

    #[test]
    fn shapes() {
        let c =
            p("if anyof (true, header :is \"a\" [\"b\",\"c\"]) { keep; } else { stop; }").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "if");
        assert_eq!(c[0].tests[0].name, "anyof");
        assert_eq!(c[0].tests[0].tests.len(), 2);
        assert_eq!(c[0].tests[0].tests[1].args.len(), 3);
        assert_eq!(c[1].name, "else");
        assert!(c[1].block.is_some());
    }

    #[test]
    fn errors_name_the_line() {
        for (bad, line) in [
            ("keep", 1),
            ("keep;\nfileinto \"x\"", 2),
            ("if true {\nkeep;\n", 3),
            ("}", 1),
            ("keep;\n[\"a\"];", 2),
            ("if anyof(true, ) {}", 1),
        ] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.line, line, "{bad:?}: {e}");
        }
        let deep = format!("{}{}", "if true {".repeat(40), "}".repeat(40));
        assert!(p(&deep).unwrap_err().message.contains("nested"));
        let deep = format!("if {}true{};", "not ".repeat(40), "");
        assert!(p(&deep).unwrap_err().message.contains("nested"));
    }
}
