//! Sieve against Pigeonhole: every script of tests/data/sieve/scripts on
//! every message of tests/data/sieve/messages, once through deliver and
//! once through Pigeonhole's own sieve-test (Debian's dovecot-sieve), which
//! executes the actions (-e) into a Maildir of its own and prints the mail
//! it would send. The two outcomes are compared: the folders each copy
//! landed in with its flags and keywords, and every message sent (kind,
//! envelope sender, recipient). No expected answers are written down: the
//! oracle is Pigeonhole. Scripts that do not compile are compared by the
//! line of their first error.
//!
//! Needs /usr/bin/sieve-test: without it the test fails (CI installs it).

use crate::harness::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const SIEVE_TEST: &str = "/usr/bin/sieve-test";
const SENDER: &str = "ann@example.org";
const RCPT: &str = "bob@example.org";
/// Folders both Maildirs have before each run.
const FOLDERS: &[&str] = &["Junk", "Lists", "Lists.rust", "Work", "Archive", "Other"];

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/sieve")
        .join(rel)
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn need_sieve_test() {
    assert!(
        Path::new(SIEVE_TEST).exists(),
        "{SIEVE_TEST} is missing: apt-get install dovecot-sieve (the oracle of these tests)"
    );
}

/// What happened to a message: a copy stored, or a message sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Stored {
        folder: String,
        flags: Vec<String>,
    },
    Sent {
        kind: String,
        sender: String,
        to: String,
    },
}

/// make_maildir - a Maildir with the corpus folders.
fn make_maildir(root: &Path) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
        for f in FOLDERS {
            std::fs::create_dir_all(root.join(format!(".{f}")).join(sub)).unwrap();
        }
    }
    for f in FOLDERS {
        std::fs::write(root.join(format!(".{f}/maildirfolder")), b"").unwrap();
    }
}

/// stored - every message in a Maildir and its folders, with its flags
/// (system flags by IMAP name, keywords by their dovecot-keywords name).
fn stored(root: &Path) -> Vec<Outcome> {
    let mut dirs = vec![("INBOX".to_string(), root.to_path_buf())];
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && e.path().join("cur").is_dir() {
                dirs.push((n[1..].to_string(), e.path()));
            }
        }
    }
    let mut out = Vec::new();
    for (name, dir) in dirs {
        let kw = std::fs::read_to_string(dir.join("dovecot-keywords")).unwrap_or_default();
        let kw: BTreeMap<u8, String> = kw
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(i, n)| Some((b'a' + i.parse::<u8>().ok()?, n.to_string())))
            .collect();
        for sub in ["new", "cur"] {
            let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let info = n.split_once(":2,").map_or("", |(_, i)| i);
                let mut flags: Vec<String> = info
                    .bytes()
                    .filter_map(|c| match c {
                        b'D' => Some("\\draft".to_string()),
                        b'F' => Some("\\flagged".to_string()),
                        b'R' => Some("\\answered".to_string()),
                        b'S' => Some("\\seen".to_string()),
                        b'T' => Some("\\deleted".to_string()),
                        b'a'..=b'z' => kw.get(&c).map(|k| k.to_ascii_lowercase()),
                        _ => None,
                    })
                    .collect();
                flags.sort();
                out.push(Outcome::Stored {
                    folder: name.clone(),
                    flags,
                });
            }
        }
    }
    out
}

/// kind - what a sent message is, by its Auto-Submitted field.
fn kind(msg: &str) -> String {
    let head = msg.split("\n\n").next().unwrap_or("").to_ascii_lowercase();
    if head.contains("auto-submitted: auto-replied (vacation)") {
        "vacation"
    } else if head.contains("auto-submitted: auto-replied (rejected)") {
        "reject"
    } else if head.contains("auto-submitted: auto-notified") {
        "notify"
    } else {
        "redirect"
    }
    .to_string()
}

fn norm_sender(s: &str) -> String {
    if s.to_ascii_lowercase().starts_with("postmaster@") {
        "postmaster".into()
    } else {
        s.to_string()
    }
}

/// pigeonhole - run sieve-test -e; the outcomes, or the first error line
/// when the script does not compile.
fn pigeonhole(
    dir: &Path,
    before: Option<&Path>,
    script: &Path,
    msg: &Path,
) -> Result<Vec<Outcome>, u32> {
    let home = dir.join("pigeon");
    let maildir = home.join("Maildir");
    make_maildir(&maildir);
    std::fs::create_dir_all(home.join("sieve")).unwrap();
    std::fs::copy(
        data("personal/helper.sieve"),
        home.join("sieve/helper.sieve"),
    )
    .unwrap();
    let ids = if is_root() {
        "mail_uid = nobody\nmail_gid = nogroup\n"
    } else {
        ""
    };
    let conf = format!(
        "{ids}mail_home = {h}\nmail_location = maildir:{m}\nplugin {{\n  sieve = file:{h}/sieve;active={h}/.dovecot.sieve\n  sieve_spamtest_status_type = score\n  sieve_spamtest_status_header = X-Spam-Score: ([[:digit:]]+(\\.[[:digit:]]+)?)\n  sieve_spamtest_max_value = 15\n  sieve_virustest_status_type = score\n  sieve_virustest_status_header = X-Virus-Score: ([[:digit:]]+)\n  sieve_virustest_max_value = 5\n}}\n",
        h = home.display(),
        m = maildir.display()
    );
    std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
    // sieve-test compiles next to the script: give it its own copy.
    std::fs::copy(script, home.join("script.sieve")).unwrap();
    if is_root() {
        chown_all(&home);
    }
    let mut c = Command::new(SIEVE_TEST);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TZ", "UTC")
        .arg("-c")
        .arg(dir.join("dovecot.conf"))
        .args([
            "-x",
            "+spamtest +spamtestplus +virustest +editheader +vacation-seconds",
        ])
        .args(["-e", "-l"])
        .arg(format!("maildir:{}", maildir.display()))
        .args(["-f", SENDER, "-r", RCPT, "-a", RCPT]);
    if let Some(b) = before {
        c.arg("-s").arg(b);
    }
    let out = c.arg(home.join("script.sieve")).arg(msg).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("failed to compile") {
        let line = stderr
            .lines()
            .find_map(|l| {
                l.split_once(": line ")
                    .and_then(|(_, r)| r.split(':').next()?.parse().ok())
            })
            .unwrap_or(0);
        return Err(line);
    }
    let senders: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.split_once("sending message from <"))
        .map(|(_, r)| norm_sender(r.trim_end_matches(">:").trim_end_matches('>')))
        .collect();
    let msgs = stdout.split("\nRECIPIENT: ").next().unwrap_or("");
    let rcpts: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RECIPIENT: "))
        .map(str::to_string)
        .collect();
    let bodies: Vec<&str> = msgs
        .split("X-Sieve: Pigeonhole")
        .filter(|m| !m.trim().is_empty())
        .collect();
    assert_eq!(
        senders.len(),
        rcpts.len(),
        "sieve-test output not understood:\n{stdout}\n{stderr}"
    );
    let mut v = stored(&maildir);
    for (i, (s, r)) in senders.iter().zip(&rcpts).enumerate() {
        v.push(Outcome::Sent {
            kind: kind(bodies.get(i).unwrap_or(&"")),
            sender: s.clone(),
            to: r.clone(),
        });
    }
    v.sort();
    Ok(v)
}

fn chown_all(p: &Path) {
    let _ = std::os::unix::fs::lchown(p, Some(65534), Some(65534));
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_all(&e.path());
        }
    }
}

/// queued - the messages in an instance's spool: (sender, recipients, text).
pub fn queued(i: &Instance) -> Vec<(String, Vec<String>, String)> {
    let mut v = Vec::new();
    for name in i.queue_files() {
        let b = std::fs::read(i.path("spool/incoming").join(&name)).unwrap();
        let text = String::from_utf8_lossy(&b).into_owned();
        let (head, msg) = text.split_once("\nD\n").unwrap();
        let msg = msg.split_once('\n').map_or("", |(_, m)| m).to_string();
        let mut sender = String::new();
        let mut to = Vec::new();
        for l in head.lines() {
            if let Some(s) = l.strip_prefix('F') {
                sender = s.to_string();
            } else if let Some(t) = l.strip_prefix('T') {
                to.push(t.to_string());
            }
        }
        v.push((sender, to, msg));
    }
    v
}

/// posthorn - the same through deliver; Err(line) when deliver logged a
/// compile error.
fn posthorn(before: Option<&Path>, script: &Path, msg: &[u8]) -> Result<Vec<Outcome>, u32> {
    let mut i = Instance::new();
    let before_key = before
        .map(|b| format!("before = [\"{}\"]\n", b.display()))
        .unwrap_or_default();
    // The language is compared: Pigeonhole has no built-in spam rule,
    // so deliver's is off here (tests/e2e/sieve.rs tests it).
    i.write_config(&format!(
        "domains = [\"example.org\", \"{HOST}\"]\n[sieve]\nspam_to_junk = false\n{before_key}spamtest_header = \"X-Spam-Score\"\nspamtest_max = 15\nvirustest_header = \"X-Virus-Score\"\n"
    ));
    make_maildir(&i.path("home/bob/Maildir"));
    i.write(
        "home/bob/.dovecot.sieve",
        &std::fs::read_to_string(script).unwrap(),
    );
    i.write(
        "home/bob/sieve/helper.sieve",
        &std::fs::read_to_string(data("personal/helper.sieve")).unwrap(),
    );
    i.init_spool();
    let out = i.run("deliver", &["-f", SENDER, "-a", RCPT, RCPT], msg);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "deliver failed: {err}");
    if let Some(l) = err
        .lines()
        .find(|l| l.contains("sieve:") && l.contains(": compile error: line "))
    {
        let n = l
            .split(": compile error: line ")
            .nth(1)
            .and_then(|r| r.split(':').next()?.parse().ok())
            .unwrap_or(0);
        return Err(n);
    }
    let mut v = stored(&i.path("home/bob/Maildir"));
    for (sender, to, text) in queued(&i) {
        let k = kind(&text);
        let sender = if sender.is_empty() {
            String::new()
        } else {
            norm_sender(&sender)
        };
        for t in to {
            v.push(Outcome::Sent {
                kind: k.clone(),
                sender: sender.clone(),
                to: t,
            });
        }
    }
    v.sort();
    Ok(v)
}

#[test]
fn every_script_on_every_message_as_pigeonhole_does() {
    need_sieve_test();
    let mut failures = Vec::new();
    let mut compared = 0;
    for script in files("scripts", "sieve") {
        for msg in files("messages", "eml") {
            let tmp = tempfile::tempdir().unwrap();
            let want = pigeonhole(tmp.path(), None, &script, &msg);
            let got = posthorn(None, &script, &std::fs::read(&msg).unwrap());
            compared += 1;
            if want != got {
                failures.push(format!(
                    "{} on {}:\n  pigeonhole: {want:?}\n  posthorn:   {got:?}",
                    script.file_name().unwrap().to_string_lossy(),
                    msg.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(compared > 100, "only {compared} pairs");
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn errors_are_reported_on_the_line_pigeonhole_names() {
    need_sieve_test();
    let msg = data("messages/plain.eml");
    for script in files("errors", "sieve") {
        let tmp = tempfile::tempdir().unwrap();
        let want = pigeonhole(tmp.path(), None, &script, &msg);
        assert!(want.is_err(), "{script:?} compiles in Pigeonhole");
        let got = posthorn(None, &script, &std::fs::read(&msg).unwrap());
        assert_eq!(got, want, "{script:?}");
    }
}

#[test]
fn before_scripts_run_in_sequence_as_pigeonhole_runs_them() {
    need_sieve_test();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "require \"fileinto\";\nfileinto \"Work\";\n",
            "require \"fileinto\";\nfileinto \"Other\";\n",
        ),
        ("stop;\n", "require \"fileinto\";\nfileinto \"Other\";\n"),
        (
            "require [\"fileinto\",\"copy\"];\nfileinto :copy \"Archive\";\n",
            "require \"fileinto\";\nfileinto \"Other\";\n",
        ),
        ("keep;\n", "require \"fileinto\";\nfileinto \"Other\";\n"),
        (
            "require \"imap4flags\";\naddflag \"\\\\Seen\";\n",
            "require \"fileinto\";\nfileinto \"Other\";\n",
        ),
        ("discard;\n", "require \"fileinto\";\nfileinto \"Other\";\n"),
    ];
    for (n, (before, main)) in cases.iter().enumerate() {
        let b = tmp.path().join(format!("before{n}.sieve"));
        let m = tmp.path().join(format!("main{n}.sieve"));
        std::fs::write(&b, before).unwrap();
        std::fs::write(&m, main).unwrap();
        if is_root() {
            chown_all(tmp.path());
        }
        let run = tempfile::tempdir().unwrap();
        let want = pigeonhole(run.path(), Some(&b), &m, &data("messages/plain.eml"));
        let got = posthorn(
            Some(&b),
            &m,
            &std::fs::read(data("messages/plain.eml")).unwrap(),
        );
        assert_eq!(got, want, "before {before:?} then {main:?}");
    }
}
