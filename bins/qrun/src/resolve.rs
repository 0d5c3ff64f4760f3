//! resolve - what one envelope recipient expands to: aliases(5) (lists,
//! :include:, |command, /file, nested aliases, owner- lists), ~/.forward,
//! the users file and system accounts. Loops end in an error, never a hang.

use posthorn_mail::aliases::{Aliases, Value, parse_values};
use posthorn_mail::users::{self, MailUser};
use posthorn_mail::{Config, address};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Deepest alias nesting followed.
const MAX_DEPTH: usize = 20;
/// Most targets one recipient may expand to.
const MAX_TARGETS: usize = 10_000;

/// Whose rights a command or file delivery runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// qrun's own (unprivileged) user.
    Qrun,
    /// `nobody`: commands and files from a root-owned aliases file when qrun
    /// runs as root (Postfix's default_privs).
    Nobody,
    /// A named account.
    User { name: String, uid: u32, gid: u32 },
}

/// One final destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Mailbox {
        user: MailUser,
        detail: Option<String>,
        address: String,
    },
    Pipe {
        command: String,
        run_as: RunAs,
        home: Option<PathBuf>,
        address: String,
    },
    File {
        path: PathBuf,
        run_as: RunAs,
        home: Option<PathBuf>,
        address: String,
    },
    Remote {
        address: String,
    },
    /// A permanent failure found while expanding (unknown user, loop).
    Fail {
        address: String,
        dsn: &'static str,
        text: String,
    },
    /// A temporary failure found while expanding (unreadable file).
    Defer {
        address: String,
        dsn: &'static str,
        text: String,
    },
}

/// A target with its state key and where errors go.
#[derive(Debug, Clone)]
pub struct Expanded {
    pub key: String,
    pub target: Target,
    /// `owner-<list>` when the target came through a list that has one.
    pub errors_to: Option<String>,
}

/// Reads a user's .forward; qrun as root must do that as the user.
pub trait ForwardReader {
    /// read - the text of `user`'s .forward, None when there is none.
    fn read(&self, user: &MailUser) -> Result<Option<String>, String>;
}

/// Reads .forward directly: right when qrun runs as an ordinary user.
#[cfg(test)]
#[derive(Debug)]
pub struct DirectForward;

#[cfg(test)]
impl ForwardReader for DirectForward {
    fn read(&self, user: &MailUser) -> Result<Option<String>, String> {
        users::read_forward_file(&user.home.join(".forward"), user.uid)
    }
}

/// The expansion of one recipient.
pub struct Resolver<'a> {
    pub cfg: &'a Config,
    pub aliases: &'a Aliases,
    /// Whose rights commands and files from the aliases file get.
    pub aliases_run_as: RunAs,
    pub forward: &'a dyn ForwardReader,
}

impl Resolver<'_> {
    /// expand - all targets for the envelope recipient `addr`, deduplicated by key.
    pub fn expand(&self, addr: &str) -> Vec<Expanded> {
        let mut out = Vec::new();
        // `\user` skips aliases and .forward; it is for the values in those
        // files only. On an envelope recipient it would let any sender past
        // a user's .forward or an alias (Postfix's local(8) does not honour
        // it there either): bad syntax, whichever way it was queued.
        let bare = address::strip_brackets(addr);
        let (local, domain) = address::split(bare);
        if local.starts_with('\\') && domain.is_none_or(|d| self.cfg.is_local_domain(d)) {
            let address = match domain {
                Some(_) => bare.to_string(),
                None => format!("{bare}@{}", self.cfg.hostname),
            };
            let t = Target::Fail {
                address,
                dsn: "5.1.3",
                text: "bad address syntax: a leading backslash belongs in aliases(5) and .forward only".into(),
            };
            self.push(&mut out, t, &None);
            return out;
        }
        let mut chain = Vec::new();
        self.walk(addr, 0, &mut chain, None, &mut out);
        let mut seen = std::collections::HashSet::new();
        out.retain(|e| seen.insert(e.key.clone()));
        out
    }

    fn push(&self, out: &mut Vec<Expanded>, target: Target, errors_to: &Option<String>) {
        if out.len() >= MAX_TARGETS {
            return;
        }
        let key = match &target {
            Target::Mailbox { user, detail, .. } => match detail {
                Some(d) => format!("mailbox:{}+{d}", user.name),
                None => format!("mailbox:{}", user.name),
            },
            Target::Pipe {
                command, address, ..
            } => format!("pipe:{address}:{command}"),
            Target::File { path, .. } => format!("file:{}", path.display()),
            Target::Remote { address } => format!("remote:{}", address.to_ascii_lowercase()),
            Target::Fail { address, .. } | Target::Defer { address, .. } => {
                format!("error:{}", address.to_ascii_lowercase())
            }
        };
        out.push(Expanded {
            key,
            target,
            errors_to: errors_to.clone(),
        });
    }

    fn walk(
        &self,
        addr: &str,
        depth: usize,
        chain: &mut Vec<String>,
        errors_to: Option<String>,
        out: &mut Vec<Expanded>,
    ) {
        let addr = address::strip_brackets(addr);
        let (local, domain) = address::split(addr);
        if let Some(d) = domain
            && !self.cfg.is_local_domain(d)
        {
            self.push(
                out,
                Target::Remote {
                    address: addr.to_string(),
                },
                &errors_to,
            );
            return;
        }
        let display = match domain {
            Some(_) => addr.to_string(),
            None => format!("{addr}@{}", self.cfg.hostname),
        };
        if depth > MAX_DEPTH {
            let t = Target::Fail {
                address: display,
                dsn: "5.4.6",
                text: "alias expansion too deep (a loop?)".into(),
            };
            self.push(out, t, &errors_to);
            return;
        }
        // `\user` (from .forward or aliases): straight to the mailbox.
        let no_alias = local.starts_with('\\');
        let local = local.trim_start_matches('\\');
        let lname = local.to_ascii_lowercase();
        let (base, detail) = address::split_detail(&lname);
        let base = base.to_string();
        let detail = detail.map(str::to_string);

        if !no_alias {
            let name = if self.aliases.get(&lname).is_some() {
                Some(lname.clone())
            } else if self.aliases.get(&base).is_some() {
                Some(base.clone())
            } else {
                None
            };
            if let Some(name) = name {
                if chain.contains(&name) {
                    // An alias that reaches itself: its own mailbox, if there is one.
                    if let Ok(Some(_)) = users::lookup(self.cfg, &base, domain) {
                        self.mailbox(&base, detail, domain, &display, &errors_to, out, true);
                    } else {
                        let path = format!("{} -> {name}", chain.join(" -> "));
                        let t = Target::Fail {
                            address: display,
                            dsn: "5.4.6",
                            text: format!("alias loop: {path}"),
                        };
                        self.push(out, t, &errors_to);
                    }
                    return;
                }
                let owner = format!("owner-{name}");
                let errors_to = if self.aliases.get(&owner).is_some() {
                    Some(format!("{owner}@{}", self.cfg.hostname))
                } else {
                    errors_to
                };
                chain.push(name.clone());
                let values = self.aliases.get(&name).unwrap_or(&[]).to_vec();
                self.values(
                    &values,
                    &self.aliases_run_as,
                    None,
                    &display,
                    depth,
                    chain,
                    &errors_to,
                    out,
                );
                chain.pop();
                return;
            }
        }
        self.mailbox(&base, detail, domain, &display, &errors_to, out, no_alias);
    }

    /// values - expand a list of alias or .forward values.
    #[allow(clippy::too_many_arguments)]
    fn values(
        &self,
        values: &[Value],
        run_as: &RunAs,
        home: Option<&Path>,
        display: &str,
        depth: usize,
        chain: &mut Vec<String>,
        errors_to: &Option<String>,
        out: &mut Vec<Expanded>,
    ) {
        for v in values {
            match v {
                Value::Address(a) => self.walk(a, depth + 1, chain, errors_to.clone(), out),
                Value::Pipe(c) => {
                    let t = Target::Pipe {
                        command: c.clone(),
                        run_as: run_as.clone(),
                        home: home.map(Path::to_path_buf),
                        address: display.to_string(),
                    };
                    self.push(out, t, errors_to);
                }
                Value::File(p) => {
                    let t = Target::File {
                        path: p.clone(),
                        run_as: run_as.clone(),
                        home: home.map(Path::to_path_buf),
                        address: display.to_string(),
                    };
                    self.push(out, t, errors_to);
                }
                Value::Include(p) => match std::fs::read(p) {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        // Commands and files in an include run as the include file's owner (or qrun's user for root).
                        let inc_run_as = include_owner(p).unwrap_or_else(|| run_as.clone());
                        for (i, line) in text.lines().enumerate() {
                            let line = line.trim();
                            if line.is_empty() || line.starts_with('#') {
                                continue;
                            }
                            match parse_values(line) {
                                Ok(vs) => self.values(
                                    &vs,
                                    &inc_run_as,
                                    home,
                                    display,
                                    depth + 1,
                                    chain,
                                    errors_to,
                                    out,
                                ),
                                Err(m) => posthorn_sys::warning!("{}:{}: {m}", p.display(), i + 1),
                            }
                        }
                    }
                    Err(e) => {
                        let t = Target::Defer {
                            address: display.to_string(),
                            dsn: "4.3.0",
                            text: format!("cannot read :include: file {}: {e}", p.display()),
                        };
                        self.push(out, t, errors_to);
                    }
                },
            }
        }
    }

    /// mailbox - a local user: their .forward, or their mailbox.
    #[allow(clippy::too_many_arguments)]
    fn mailbox(
        &self,
        base: &str,
        detail: Option<String>,
        domain: Option<&str>,
        display: &str,
        errors_to: &Option<String>,
        out: &mut Vec<Expanded>,
        skip_forward: bool,
    ) {
        let user = match users::lookup(self.cfg, base, domain) {
            Ok(Some(u)) => u,
            Ok(None) => {
                let t = Target::Fail {
                    address: display.to_string(),
                    dsn: "5.1.1",
                    text: format!("unknown user: \"{base}\""),
                };
                self.push(out, t, errors_to);
                return;
            }
            Err(e) => {
                let t = Target::Defer {
                    address: display.to_string(),
                    dsn: "4.3.0",
                    text: format!("cannot look up \"{base}\": {e}"),
                };
                self.push(out, t, errors_to);
                return;
            }
        };
        if !skip_forward {
            match self.forward.read(&user) {
                Ok(Some(text)) => {
                    let mut values = Vec::new();
                    for line in text.lines() {
                        let line = line.trim();
                        if line.is_empty() || line.starts_with('#') {
                            continue;
                        }
                        match parse_values(line) {
                            Ok(v) => values.extend(v),
                            Err(m) => {
                                posthorn_sys::warning!("{}/.forward: {m}", user.home.display())
                            }
                        }
                    }
                    if !values.is_empty() {
                        let run_as = match (user.uid, user.gid) {
                            (Some(uid), Some(gid)) => RunAs::User {
                                name: user.name.clone(),
                                uid,
                                gid,
                            },
                            _ => RunAs::Qrun,
                        };
                        // The user's own name in their .forward means their mailbox.
                        let mut chain = vec![base.to_string()];
                        let fixed: Vec<Value> = values
                            .into_iter()
                            .map(|v| match v {
                                Value::Address(a)
                                    if address::split(address::strip_brackets(&a))
                                        .0
                                        .eq_ignore_ascii_case(base)
                                        && address::split(&a)
                                            .1
                                            .is_none_or(|d| self.cfg.is_local_domain(d)) =>
                                {
                                    Value::Address(format!("\\{base}"))
                                }
                                // :include: is for the aliases file only.
                                Value::Include(p) => Value::Address(format!("\\{}", p.display())),
                                o => o,
                            })
                            .collect();
                        self.values(
                            &fixed,
                            &run_as,
                            Some(&user.home),
                            display,
                            1,
                            &mut chain,
                            errors_to,
                            out,
                        );
                        return;
                    }
                }
                Ok(None) => {}
                Err(m) => {
                    let t = Target::Defer {
                        address: display.to_string(),
                        dsn: "4.3.0",
                        text: m,
                    };
                    self.push(out, t, errors_to);
                    return;
                }
            }
        }
        let address = match detail.as_deref() {
            Some(d) => format!("{}+{d}@{}", user.name, domain.unwrap_or(&self.cfg.hostname)),
            None => format!("{}@{}", user.name, domain.unwrap_or(&self.cfg.hostname)),
        };
        self.push(
            out,
            Target::Mailbox {
                user,
                detail,
                address,
            },
            errors_to,
        );
    }
}

/// include_owner - commands in a non-root-owned :include: file run as its owner.
fn include_owner(p: &Path) -> Option<RunAs> {
    let m = std::fs::metadata(p).ok()?;
    if m.uid() == 0 {
        return None;
    }
    let a = posthorn_sys::privs::lookup_uid(m.uid()).ok().flatten()?;
    Some(RunAs::User {
        name: a.name,
        uid: a.uid,
        gid: a.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(aliases: &str) -> (tempfile::TempDir, Config, Aliases) {
        let d = tempfile::tempdir().unwrap();
        let users = d.path().join("users");
        std::fs::write(
            &users,
            format!(
                "ann:x::::{0}/ann::\nbob:x::::{0}/bob::\n",
                d.path().display()
            ),
        )
        .unwrap();
        let cfg = Config {
            users: Some(users),
            system_users: false,
            hostname: "h.test".into(),
            domains: vec!["h.test".into()],
            ..Config::default()
        };
        let a = Aliases::parse(aliases, Path::new("/etc/aliases"));
        (d, cfg, a)
    }

    fn keys(r: &Resolver<'_>, addr: &str) -> Vec<String> {
        r.expand(addr).into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn lists_nesting_loops_and_unknowns() {
        let (_d, cfg, a) = setup(
            "team: ann, bob@h.test, x@remote.org\nall: team, ann, \"|/bin/cat\"\nloop1: loop2\nloop2: loop1\nself: ann, self\nann2: ann+lists\n",
        );
        let r = Resolver {
            cfg: &cfg,
            aliases: &a,
            aliases_run_as: RunAs::Qrun,
            forward: &DirectForward,
        };
        assert_eq!(
            keys(&r, "team@h.test"),
            ["mailbox:ann", "mailbox:bob", "remote:x@remote.org"]
        );
        assert_eq!(
            keys(&r, "all"),
            [
                "mailbox:ann",
                "mailbox:bob",
                "remote:x@remote.org",
                "pipe:all@h.test:/bin/cat"
            ]
        );
        assert_eq!(keys(&r, "loop1"), ["error:loop1@h.test"]);
        let e = r.expand("loop1");
        assert!(
            matches!(&e[0].target, Target::Fail { dsn: "5.4.6", .. }),
            "{:?}",
            e[0].target
        );
        assert_eq!(keys(&r, "nobody@h.test"), ["error:nobody@h.test"]);
        assert_eq!(keys(&r, "ANN+Stuff@H.TEST"), ["mailbox:ann+stuff"]);
        assert_eq!(keys(&r, "ann2"), ["mailbox:ann+lists"]);
    }

    #[test]
    fn owner_lists_and_forward() {
        let (d, cfg, a) = setup("list: ann, ghost\nowner-list: bob\n");
        std::fs::create_dir_all(d.path().join("bob")).unwrap();
        std::fs::write(
            d.path().join("bob/.forward"),
            "bob, \"|/usr/bin/procmail\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.path().join("bob/.forward"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let r = Resolver {
            cfg: &cfg,
            aliases: &a,
            aliases_run_as: RunAs::Qrun,
            forward: &DirectForward,
        };
        let e = r.expand("list");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].errors_to.as_deref(), Some("owner-list@h.test"));
        assert_eq!(
            keys(&r, "bob"),
            ["mailbox:bob", "pipe:bob@h.test:/usr/bin/procmail"]
        );
    }
}
