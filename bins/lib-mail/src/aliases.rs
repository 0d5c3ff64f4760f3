//! aliases - the sendmail/Postfix aliases(5) file, read as text.
//!
//! `name: value, value, ...`; a line starting with white space continues
//! the previous one; `#` starts a comment line. Values are addresses,
//! `|command`, `/file`, `:include:/file`, each optionally in double quotes.
//! Names match case-insensitively. There is no compiled database: the text
//! is small and read once per queue pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Longest logical line, and most values per alias: bounds on what we hold.
const MAX_LINE: usize = 64 * 1024;
const MAX_VALUES: usize = 10_000;

/// One destination an alias expands to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Another address, local or remote. `\user` (no further aliasing) keeps its backslash.
    Address(String),
    /// `|command`: run with the message on stdin.
    Pipe(String),
    /// `/path`: append to the file in mbox format.
    File(PathBuf),
    /// `:include:/path`: more values, one list in a file.
    Include(PathBuf),
}

/// A syntax problem, by file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// A parsed aliases file: name -> values, with the line each came from.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    pub file: PathBuf,
    map: HashMap<String, (usize, Vec<Value>)>,
    pub problems: Vec<Problem>,
}

impl Aliases {
    /// load - read an aliases file; a missing file is an empty table.
    pub fn load(path: &Path) -> std::io::Result<Aliases> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Aliases::parse(&String::from_utf8_lossy(&bytes), path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Aliases {
                file: path.to_path_buf(),
                ..Aliases::default()
            }),
            Err(e) => Err(e),
        }
    }

    /// parse - parse aliases text; bad lines are recorded and skipped.
    pub fn parse(text: &str, file: &Path) -> Aliases {
        let mut a = Aliases {
            file: file.to_path_buf(),
            ..Aliases::default()
        };
        for (line, logical) in logical_lines(text) {
            let problem = |m: String| Problem {
                file: file.to_path_buf(),
                line,
                message: m,
            };
            if logical.len() > MAX_LINE {
                a.problems
                    .push(problem(format!("line longer than {MAX_LINE} bytes")));
                continue;
            }
            let Some(colon) = logical.find(':') else {
                a.problems
                    .push(problem("missing ':' after the alias name".into()));
                continue;
            };
            let name = logical[..colon]
                .trim()
                .trim_matches('"')
                .to_ascii_lowercase();
            if name.is_empty() || name.contains(char::is_whitespace) {
                a.problems.push(problem(format!(
                    "bad alias name \"{}\"",
                    logical[..colon].trim()
                )));
                continue;
            }
            match parse_values(&logical[colon + 1..]) {
                Ok(v) if v.is_empty() => a
                    .problems
                    .push(problem(format!("alias \"{name}\" has no value"))),
                Ok(v) => {
                    if let Some((first, _)) = a.map.get(&name) {
                        let first = *first;
                        a.problems.push(problem(format!(
                            "duplicate alias \"{name}\" (first on line {first}); the first wins"
                        )));
                    } else {
                        a.map.insert(name, (line, v));
                    }
                }
                Err(m) => a.problems.push(problem(format!("alias \"{name}\": {m}"))),
            }
        }
        a
    }

    /// get - the values of an alias, if there is one.
    pub fn get(&self, name: &str) -> Option<&[Value]> {
        self.map
            .get(&name.to_ascii_lowercase())
            .map(|(_, v)| v.as_slice())
    }

    /// iter - every alias with its values, in the order of the file.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Value])> {
        let mut v: Vec<(&usize, &str, &[Value])> = self
            .map
            .iter()
            .map(|(n, (line, vals))| (line, n.as_str(), vals.as_slice()))
            .collect();
        v.sort_by_key(|(line, _, _)| **line);
        v.into_iter().map(|(_, n, vals)| (n, vals))
    }

    /// len - how many aliases there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// is_empty - whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// logical_lines - join continuation lines, drop comments and blanks,
/// and number each logical line by its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim_end_matches('\r');
        if l.trim_start().starts_with('#') {
            continue;
        }
        if l.trim().is_empty() {
            continue;
        }
        if l.starts_with([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push(' ');
            last.1.push_str(l.trim());
            continue;
        }
        out.push((i + 1, l.to_string()));
    }
    out
}

/// parse_values - split a value list at commas outside double quotes,
/// then classify each value. Used for aliases, :include: files and .forward.
pub fn parse_values(list: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut escaped = false;
    for c in list.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => {
                escaped = true;
            }
            '"' => {
                in_quote = !in_quote;
                cur.push(c);
            }
            ',' if !in_quote => {
                items.push(std::mem::take(&mut cur));
            }
            _ => cur.push(c),
        }
    }
    if in_quote {
        return Err("unbalanced double quote".into());
    }
    items.push(cur);
    let mut values = Vec::new();
    for item in items {
        let t = item.trim();
        if t.is_empty() {
            continue;
        }
        let unq = if t.len() >= 2
            && t.starts_with('"')
            && t.ends_with('"')
            && !t[1..t.len() - 1].contains('"')
        {
            &t[1..t.len() - 1]
        } else {
            t
        };
        values.push(classify(unq)?);
        if values.len() > MAX_VALUES {
            return Err(format!("more than {MAX_VALUES} values"));
        }
    }
    Ok(values)
}

fn classify(v: &str) -> Result<Value, String> {
    if v.bytes().any(|b| b == 0) {
        return Err("NUL byte in value".into());
    }
    if let Some(cmd) = v.strip_prefix('|') {
        let cmd = cmd.trim();
        if cmd.is_empty() {
            return Err("empty command after '|'".into());
        }
        return Ok(Value::Pipe(cmd.to_string()));
    }
    if let Some(rest) = v.strip_prefix(":include:") {
        let p = rest.trim();
        if !p.starts_with('/') {
            return Err(format!(":include: needs an absolute path, not \"{p}\""));
        }
        return Ok(Value::Include(PathBuf::from(p)));
    }
    if v.starts_with('/') {
        return Ok(Value::File(PathBuf::from(v)));
    }
    let a = crate::address::strip_brackets(v);
    if a.is_empty() {
        return Err("empty address".into());
    }
    if a.contains(char::is_whitespace) && !a.starts_with('"') {
        return Err(format!("\"{a}\" is not an address (a comma missing?)"));
    }
    Ok(Value::Address(a.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let text = "# comment\npostmaster: root\nroot: ann, bob@example.org,\n  carl\nlist: :include:/etc/list\nlog: /var/log/mail.txt\nbot: \"|/usr/bin/bot --flag, x\"\nQuoted: \"|cmd\"\n";
        let a = Aliases::parse(text, Path::new("/etc/aliases"));
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        assert_eq!(
            a.get("postmaster").unwrap(),
            &[Value::Address("root".into())]
        );
        assert_eq!(
            a.get("ROOT").unwrap(),
            &[
                Value::Address("ann".into()),
                Value::Address("bob@example.org".into()),
                Value::Address("carl".into())
            ]
        );
        assert_eq!(
            a.get("list").unwrap(),
            &[Value::Include("/etc/list".into())]
        );
        assert_eq!(
            a.get("log").unwrap(),
            &[Value::File("/var/log/mail.txt".into())]
        );
        assert_eq!(
            a.get("bot").unwrap(),
            &[Value::Pipe("/usr/bin/bot --flag, x".into())]
        );
        assert_eq!(a.get("quoted").unwrap(), &[Value::Pipe("cmd".into())]);
    }

    #[test]
    fn problems_name_file_and_line() {
        let text = "ok: a\nbroken line\n\nx: \"unbalanced\nlist: :include:relative\ny:\nok: b\n";
        let a = Aliases::parse(text, Path::new("/etc/aliases"));
        let lines: Vec<String> = a.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(lines[0].starts_with("/etc/aliases:2: missing ':'"));
        assert!(lines[1].starts_with("/etc/aliases:4: alias \"x\": unbalanced"));
        assert!(
            lines[2]
                .starts_with("/etc/aliases:5: alias \"list\": :include: needs an absolute path")
        );
        assert!(lines[3].starts_with("/etc/aliases:6: alias \"y\" has no value"));
        assert!(lines[4].starts_with("/etc/aliases:7: duplicate alias \"ok\""));
        assert_eq!(a.get("ok").unwrap(), &[Value::Address("a".into())]);
    }
}
