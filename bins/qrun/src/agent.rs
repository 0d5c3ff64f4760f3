//! agent - run `deliver` for one target, as the right user, with the
//! message on a pipe, and turn its exit status into an outcome.

use crate::resolve::{RunAs, Target};
use posthorn_sys::exit;
use posthorn_sys::privs::{self, Ids};
use posthorn_sys::{child, warning};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long reading a user's .forward may take (a hung home directory).
const FORWARD_LIMIT: Duration = Duration::from_secs(60);
/// deliver's own waits beyond a command's time limit: two mbox locks of
/// 30 seconds each, and the writing.
const DELIVER_SLACK: Duration = Duration::from_secs(120);

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Deferred { dsn: String, text: String },
    Failed { dsn: String, text: String },
}

/// How qrun runs its children.
#[derive(Debug, Clone)]
pub struct Agent {
    pub deliver: PathBuf,
    pub config_args: Vec<std::ffi::OsString>,
    /// Set when qrun started as root: the ids of `user` and of `nobody`.
    pub root: Option<RootIds>,
    /// `local.command_time_limit`: deliver gets that and DELIVER_SLACK.
    pub command_limit: Duration,
    /// The most one remote(8) job may take (`smtp.message_timeout` and a minute).
    pub remote_limit: Duration,
}

/// The accounts a root-started qrun hands work to.
#[derive(Debug, Clone)]
pub struct RootIds {
    /// The `user` account: qrun itself, and virtual users without a uid.
    pub mail: Ids,
    /// Commands and files from a root-owned aliases file (Postfix's default_privs).
    pub nobody: Ids,
}

impl Agent {
    /// ids_for - whose rights a child gets; None means "as qrun already is".
    fn ids_for(&self, run_as: &RunAs) -> Result<Option<Ids>, String> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        match run_as {
            RunAs::User { name, uid, gid } => {
                if *uid == 0 {
                    return Err(format!(
                        "will not run a delivery as root for {name}: alias root to a user in aliases(5)"
                    ));
                }
                Ok(Some(Ids::for_user(name, *uid, *gid)))
            }
            RunAs::Nobody => Ok(Some(root.nobody.clone())),
            RunAs::Qrun => Ok(Some(root.mail.clone())),
        }
    }

    /// read_forward - a user's .forward, read as that user.
    pub fn read_forward(
        &self,
        user: &posthorn_mail::users::MailUser,
    ) -> Result<Option<String>, String> {
        // Without root, or for a virtual user without a uid (whose mail runs
        // as qrun's own user anyway), qrun may read the file itself.
        if self.root.is_none() || user.uid.is_none() {
            return posthorn_mail::users::read_forward_file(&user.home.join(".forward"), user.uid);
        }
        let run_as = match (user.uid, user.gid) {
            (Some(u), Some(g)) => RunAs::User {
                name: user.name.clone(),
                uid: u,
                gid: g,
            },
            _ => RunAs::Qrun,
        };
        let ids = match self.ids_for(&run_as) {
            Ok(i) => i,
            // Root's own .forward is not read as root; root should be an alias.
            Err(_) => return Ok(None),
        };
        let mut cmd = Command::new(&self.deliver);
        cmd.args(&self.config_args)
            .arg("--show-forward")
            .arg("--home")
            .arg(&user.home)
            .arg(&user.name);
        if let Some(ids) = &ids {
            privs::command_as(&mut cmd, ids);
        }
        // deliver prints at most the 64 KiB it reads of the file.
        let limits = child::Limits {
            deadline: Instant::now() + FORWARD_LIMIT,
            stdout_cap: 64 * 1024,
            stderr_cap: 4096,
            kill_as: ids.clone(),
        };
        let out = child::run(&mut cmd, &mut std::io::empty(), &limits)
            .map_err(|e| format!("cannot run {}: {e}", self.deliver.display()))?;
        let Some(status) = out.status else {
            return Err(format!(
                "cannot read {}/.forward: no answer in {} seconds",
                user.home.display(),
                FORWARD_LIMIT.as_secs()
            ));
        };
        if !status.success() {
            return Err(format!(
                "cannot read {}/.forward: {}",
                user.home.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(if text.trim().is_empty() {
            None
        } else {
            Some(text)
        })
    }

    /// deliver - run deliver for `target`, feeding it the message from `msg`.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &self,
        qid: &str,
        arrival: f64,
        sender: &str,
        original: &str,
        target: &Target,
        msg: &mut File,
        offset: u64,
        size: u64,
    ) -> Outcome {
        let mut cmd = Command::new(&self.deliver);
        cmd.args(&self.config_args);
        cmd.arg("-q")
            .arg(qid)
            .arg("--arrival")
            .arg(format!("{arrival:.6}"));
        cmd.arg("-f").arg(sender).arg("-a").arg(original);
        // So that a qrun killed half-way through the message (deliver has
        // a process group of its own and outlives it) delivers nothing.
        cmd.arg("--size").arg(size.to_string());
        let (run_as, user_arg) = match target {
            Target::Mailbox { user, address, .. } => {
                cmd.arg("--mailbox")
                    .arg(&user.mailbox)
                    .arg("--home")
                    .arg(&user.home);
                // deliver runs as the user and cannot read the users file.
                if let Some(q) = user.quota {
                    cmd.arg("--quota").arg(format!(
                        "{}:{}",
                        q.storage.unwrap_or(0),
                        q.messages.unwrap_or(0)
                    ));
                }
                let ra = match (user.uid, user.gid) {
                    (Some(u), Some(g)) => RunAs::User {
                        name: user.name.clone(),
                        uid: u,
                        gid: g,
                    },
                    _ => RunAs::Qrun,
                };
                (ra, address.clone())
            }
            Target::Pipe {
                command,
                run_as,
                home,
                address,
            } => {
                cmd.arg("--pipe").arg(command);
                if let Some(h) = home {
                    cmd.arg("--home").arg(h);
                }
                (run_as.clone(), address.clone())
            }
            Target::File {
                path,
                run_as,
                home,
                address,
            } => {
                cmd.arg("--file").arg(path);
                if let Some(h) = home {
                    cmd.arg("--home").arg(h);
                }
                (run_as.clone(), address.clone())
            }
            _ => {
                return Outcome::Deferred {
                    dsn: "4.3.0".into(),
                    text: "internal error: not a local target".into(),
                };
            }
        };
        let ids = match self.ids_for(&run_as) {
            Ok(i) => i,
            Err(m) => {
                return Outcome::Deferred {
                    dsn: "4.3.0".into(),
                    text: m,
                };
            }
        };
        if let Some(ids) = &ids {
            privs::command_as(&mut cmd, ids);
        }
        cmd.arg("--").arg(&user_arg);
        if let Err(e) = msg.seek(SeekFrom::Start(offset)) {
            return Outcome::Deferred {
                dsn: "4.3.0".into(),
                text: format!("reading the queue file: {e}"),
            };
        }
        // deliver never runs longer than its command may, and its locks:
        // past that it is stuck, and is killed with what it started.
        let limit = self.command_limit + DELIVER_SLACK;
        let limits = child::Limits {
            deadline: Instant::now() + limit,
            stdout_cap: 0,
            stderr_cap: 16 * 1024,
            kill_as: ids.clone(),
        };
        // A write error (EPIPE) means deliver stopped reading: its status tells why.
        let done = match child::run(&mut cmd, &mut (&mut *msg).take(size), &limits) {
            Ok(d) => d,
            Err(e) => {
                return Outcome::Deferred {
                    dsn: "4.3.0".into(),
                    text: format!("cannot run {}: {e}", self.deliver.display()),
                };
            }
        };
        let Some(status) = done.status else {
            let text = format!("delivery agent killed after {} seconds", limit.as_secs());
            warning!("{qid}: to=<{user_arg}>, relay=local, dsn=4.3.0, status=deferred ({text})");
            return Outcome::Deferred {
                dsn: "4.3.0".into(),
                text,
            };
        };
        let err = done.stderr;
        // deliver's stderr holds its log lines (with log = "stderr") and its
        // one-line reason: pass the first on, keep the second.
        let err = String::from_utf8_lossy(&err);
        let mut text = String::new();
        for line in err.lines() {
            if line.starts_with("posthorn/") {
                eprintln!("{line}");
            } else if let Some(r) = line.strip_prefix("deliver: ") {
                text = r.trim().to_string();
            } else if text.is_empty() {
                text = line.trim().to_string();
            }
        }
        match status.code() {
            Some(0) => Outcome::Delivered,
            Some(c) => {
                let (dsn, temp) = exit::dsn_for(c);
                let dsn = exit::dsn_from_text(&text, temp).unwrap_or(dsn).to_string();
                let text = if text.is_empty() {
                    format!("deliver exited with status {c}")
                } else {
                    text
                };
                if temp {
                    Outcome::Deferred { dsn, text }
                } else {
                    Outcome::Failed { dsn, text }
                }
            }
            None => {
                use std::os::unix::process::ExitStatusExt;
                let sig = status.signal().unwrap_or(0);
                let text = format!("delivery agent was killed by signal {sig}");
                posthorn_sys::warning!(
                    "{qid}: to=<{user_arg}>, relay=local, dsn=4.3.0, status=deferred ({text})"
                );
                Outcome::Deferred {
                    dsn: "4.3.0".into(),
                    text,
                }
            }
        }
    }
}
