//! As root (CI): real users made with useradd; deliveries run as the
//! recipient and never as root. Skipped, with a note, when not root.

use crate::harness::*;
use std::os::unix::fs::MetadataExt;

/// A real account for the test, removed afterwards.
struct TestUser {
    name: String,
    uid: u32,
    home: std::path::PathBuf,
}

impl TestUser {
    fn add(tag: &str, base: &std::path::Path) -> TestUser {
        let name = format!("ph{tag}{}", std::process::id() % 100000);
        let home = base.join(&name);
        let st = std::process::Command::new("useradd")
            .args(["-m", "-d"])
            .arg(&home)
            .args(["-s", "/bin/sh", &name])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {name}");
        let out = std::process::Command::new("id")
            .args(["-u", &name])
            .output()
            .unwrap();
        let uid = text(&out.stdout).trim().parse().unwrap();
        TestUser { name, uid, home }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .args(["-r", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// system_instance - an instance whose users are system accounts, and a
/// directory for their homes.
fn system_instance() -> (Instance, tempfile::TempDir) {
    let mut i = Instance::new();
    let homes = tempfile::Builder::new()
        .prefix("posthorn-homes")
        .tempdir()
        .unwrap();
    chmod(homes.path(), 0o755);
    i.write_config("system_users = true\nuser = \"nobody\"");
    // system_users is set twice otherwise: rewrite without the instance default.
    let cfg = std::fs::read_to_string(&i.config)
        .unwrap()
        .replace("system_users = false\n", "");
    std::fs::write(&i.config, cfg).unwrap();
    (i, homes)
}

#[test]
fn as_root_deliveries_run_as_the_recipient() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let (i, homes) = system_instance();
    let a = TestUser::add("a", homes.path());
    let b = TestUser::add("b", homes.path());
    i.write("aliases", &format!("postmaster: {0}\nroot: {0}\n", a.name));
    std::fs::write(
        b.home.join(".forward"),
        format!(
            "\\{}, \"|/usr/bin/id -u > {}/uid.txt\"\n",
            b.name,
            b.home.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chown")
        .arg(format!("{0}:{0}", b.name))
        .arg(b.home.join(".forward"))
        .status()
        .unwrap();
    chmod(&b.home.join(".forward"), 0o644);
    chmod(&i.root, 0o755);

    let mut c = i.cmd_root("qrun");
    c.arg("-o");
    let out = run_with_stdin(c, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Submitted as root, like cron does.
    let mut c = i.cmd_root("sendmail");
    c.args(["-i", "-FCronDaemon", "-B8BITMIME", "-oem", "root", &b.name]);
    let out = run_with_stdin(c, b"Subject: as root\n\nhello\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut c = i.cmd_root("qrun");
    c.arg("-o");
    let out = run_with_stdin(c, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stderr);

    for u in [&a, &b] {
        let new = u.home.join("Maildir/new");
        let files: Vec<_> = std::fs::read_dir(&new)
            .unwrap_or_else(|e| panic!("{}: {e}\n{log}", new.display()))
            .flatten()
            .collect();
        assert_eq!(files.len(), 1, "{}: {log}", u.name);
        let m = files[0].metadata().unwrap();
        assert_eq!(m.uid(), u.uid, "the file belongs to the recipient");
        assert_eq!(m.mode() & 0o077, 0, "and no one else may read it");
    }
    let uid = std::fs::read_to_string(b.home.join("uid.txt")).expect(".forward command ran");
    assert_eq!(
        uid.trim(),
        b.uid.to_string(),
        "the command ran as the user, not root"
    );
    // The spool belongs to the unprivileged `user`, not root.
    assert_eq!(
        std::fs::metadata(i.path("spool/incoming")).unwrap().uid(),
        65534
    );

    // deliver started by root for one user becomes that user.
    let mut c = i.cmd_root("deliver");
    c.args(["-f", "x@y.example", &a.name]);
    let out = run_with_stdin(c, b"Subject: direct\n\nx\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    for e in std::fs::read_dir(a.home.join("Maildir/new"))
        .unwrap()
        .flatten()
    {
        assert_eq!(e.metadata().unwrap().uid(), a.uid);
    }
    // And it will not deliver as root.
    let mut c = i.cmd_root("deliver");
    c.args(["root"]);
    let out = run_with_stdin(c, b"Subject: to root\n\nx\n");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        !std::path::Path::new("/root/Maildir/new").exists()
            || std::fs::read_dir("/root/Maildir/new").unwrap().count() == 0
    );
}

#[test]
fn as_root_sieve_runs_as_the_recipient() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let (i, homes) = system_instance();
    let s = TestUser::add("s", homes.path());
    chmod(&i.root, 0o755);
    let script = s.home.join(".dovecot.sieve");
    std::fs::write(
        &script,
        "require [\"fileinto\", \"mailbox\", \"duplicate\"];\nif duplicate :uniqueid \"x\" { discard; }\nfileinto :create \"Junk\";\n",
    )
    .unwrap();
    std::process::Command::new("chown")
        .arg(format!("{0}:{0}", s.name))
        .arg(&script)
        .status()
        .unwrap();
    let mut c = i.cmd_root("qrun");
    c.arg("-o");
    assert!(run_with_stdin(c, b"").status.success());
    let mut c = i.cmd_root("deliver");
    c.args(["-f", "x@y.example", &s.name]);
    let msg = format!("To: {}@{HOST}\nSubject: hi\n\nx\n", s.name);
    let out = run_with_stdin(c, msg.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Everything the script made belongs to the user, never to root.
    for p in [
        s.home.join("Maildir/.Junk"),
        s.home.join(".dovecot.phsvbin"),
        s.home.join(".posthorn-sieve-dupes"),
    ] {
        let m = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}: {}", p.display(), text(&out.stderr)));
        assert_eq!(m.uid(), s.uid, "{}", p.display());
    }
    let junk: Vec<_> = std::fs::read_dir(s.home.join("Maildir/.Junk/new"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(junk.len(), 1);
    assert_eq!(junk[0].metadata().unwrap().uid(), s.uid);
}
