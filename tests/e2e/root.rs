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

#[test]
fn as_root_deliveries_run_as_the_recipient() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let homes = homes();
    let a = TestUser::add("a", homes.path());
    let b = TestUser::add("b", homes.path());
    let i = root_instance("");
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
    chown(&b.home.join(".forward"), &b.name);
    chmod(&b.home.join(".forward"), 0o644);

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

/// homes - a directory for the test users' homes, which they may enter.
fn homes() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("posthorn-homes")
        .tempdir()
        .unwrap();
    chmod(d.path(), 0o755);
    d
}

/// chown - give `p` (not what a symlink points to) to user and group `who`.
fn chown(p: &std::path::Path, who: &str) {
    let st = std::process::Command::new("chown")
        .args(["-h", &format!("{who}:{who}")])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success(), "chown {who} {}", p.display());
}

/// root_instance - an instance for real system users: `user` is nobody,
/// the instance readable by the users deliver becomes; `extra` config.
fn root_instance(extra: &str) -> Instance {
    let mut i = Instance::new();
    i.write_config(&format!("system_users = true\nuser = \"nobody\"\n{extra}"));
    // system_users is set twice otherwise: rewrite without the instance default.
    let cfg = std::fs::read_to_string(&i.config)
        .unwrap()
        .replace("system_users = false\n", "");
    std::fs::write(&i.config, cfg).unwrap();
    chmod(&i.root, 0o755);
    i
}

/// qrun_root - one queue pass as root; its log.
fn qrun_root(i: &Instance) -> String {
    let mut c = i.cmd_root("qrun");
    c.arg("-o");
    let out = run_with_stdin(c, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stderr)
}

#[test]
fn as_root_an_mbox_planted_in_a_shared_spool_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let homes = homes();
    // /var/mail as many systems have it: world-writable and sticky.
    let spool = homes.path().join("mail");
    std::fs::create_dir(&spool).unwrap();
    chmod(&spool, 0o1777);
    let a = TestUser::add("ma", homes.path());
    let b = TestUser::add("mb", homes.path());
    let i = root_instance(&format!("mailbox = \"{}/%u\"", spool.display()));
    i.write("aliases", &format!("postmaster: {0}\nroot: {0}\n", a.name));
    qrun_root(&i);
    let mut c = i.cmd_root("sendmail");
    c.args(["-i", &b.name]);
    let out = run_with_stdin(c, b"Subject: for b\n\nsecret words\n");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mbox = spool.join(&b.name);
    // A plants /var/mail/B, mode 0666, to read B's mail.
    std::fs::write(&mbox, b"").unwrap();
    chown(&mbox, &a.name);
    chmod(&mbox, 0o666);
    let log = qrun_root(&i);
    assert!(
        log.contains("status=deferred") && log.contains(&format!("owned by uid {}", a.uid)),
        "{log}"
    );
    assert_eq!(std::fs::read(&mbox).unwrap(), b"", "nothing for A to read");
    assert_eq!(i.queue_files().len(), 1, "deferred, not lost");

    // B's own file, but with a second name elsewhere.
    std::fs::remove_file(&mbox).unwrap();
    let other = b.home.join("notes");
    std::fs::write(&other, b"").unwrap();
    chown(&other, &b.name);
    std::fs::hard_link(&other, &mbox).unwrap();
    let log = qrun_root(&i);
    assert!(log.contains("2 hard links"), "{log}");
    assert_eq!(std::fs::read(&other).unwrap(), b"");

    // A device other than /dev/null (here /dev/zero's numbers).
    std::fs::remove_file(&mbox).unwrap();
    let st = std::process::Command::new("mknod")
        .arg(&mbox)
        .args(["c", "1", "5"])
        .status()
        .unwrap();
    assert!(st.success());
    chown(&mbox, &b.name);
    let log = qrun_root(&i);
    assert!(log.contains("a device other than /dev/null"), "{log}");

    // Gone: the next pass makes B's mailbox, B's alone.
    std::fs::remove_file(&mbox).unwrap();
    let log = qrun_root(&i);
    assert!(log.contains("status=sent"), "{log}");
    let m = std::fs::metadata(&mbox).unwrap();
    assert_eq!(m.uid(), b.uid);
    assert_eq!(m.mode() & 0o777, 0o600);
    assert!(text(&std::fs::read(&mbox).unwrap()).contains("secret words"));
    assert!(i.queue_files().is_empty());
}

/// with_etc_file - a command that runs `argv` as `uid`:`gid` in a mount
/// namespace of its own where /etc (an overlay) also holds `rel` with
/// `text`: how a test gives a set-group-ID program, which reads only
/// /etc/posthorn/posthorn.toml, a configuration without touching the
/// machine's /etc.
fn with_etc_file(
    scratch: &std::path::Path,
    rel: &str,
    text: &str,
    uid: u32,
    gid: u32,
    argv: &[&str],
) -> std::process::Command {
    let upper = scratch.join("etc-upper");
    let work = scratch.join("etc-work");
    let file = upper.join(rel);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(&file, text).unwrap();
    chmod(&file, 0o644);
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-ec"])
        .arg(format!(
            "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc\nexec setpriv --reuid={uid} --regid={gid} --init-groups \"$@\"",
            upper.display(),
            work.display()
        ))
        .arg("sh")
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    c
}

#[test]
fn as_root_a_setgid_enqueue_puts_its_trace_on_top_whatever_the_caller_says() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let homes = homes();
    let u = TestUser::add("tr", homes.path());
    let i = root_instance("");
    qrun_root(&i);
    // Installed as make install does: mode 2755, group of the spool.
    let sbin = i.path("sbin");
    std::fs::create_dir_all(&sbin).unwrap();
    let enqueue = sbin.join("enqueue");
    std::fs::copy(bin_dir().join("enqueue"), &enqueue).unwrap();
    let spool_gid = std::fs::metadata(i.path("spool/incoming")).unwrap().gid();
    std::os::unix::fs::chown(&enqueue, Some(0), Some(spool_gid)).unwrap();
    chmod(&enqueue, 0o2755);
    chmod(&sbin, 0o755);
    let cfg = format!(
        "hostname = \"{HOST}\"\nspool = \"{}\"\nlog = \"stderr\"\nuser = \"nobody\"\nsystem_users = false\naliases = \"\"\n",
        i.path("spool").display()
    );
    let scratch = tempfile::tempdir().unwrap();
    let message = b"Received: from trusted.example by mx.example.org; Mon, 1 Jan 2026 00:00:00 +0000\nSubject: forged\n\nx\n";
    let mut input = b"V1\nFboss@example.org\nTann@mail.test\nD\n".to_vec();
    input.extend_from_slice(format!("{}\n", message.len()).as_bytes());
    input.extend_from_slice(message);
    input.extend_from_slice(b"0\n");
    // (caller, -s given, enqueue's field expected)
    for (uid, gid, smtpd, traced) in [
        (u.uid, u.uid, true, true),  // a user who says "I am smtpd"
        (u.uid, u.uid, false, true), // a user piping records in
        (65534, 65534, true, false), // smtpd's account (`user`)
    ] {
        let e = enqueue.to_str().unwrap();
        let argv: &[&str] = if smtpd { &[e, "-s"] } else { &[e] };
        let c = with_etc_file(
            scratch.path(),
            "posthorn/posthorn.toml",
            &cfg,
            uid,
            gid,
            argv,
        );
        let out = run_with_stdin(c, &input);
        assert!(out.status.success(), "uid {uid}: {}", text(&out.stderr));
        let id = text(&out.stdout).trim().to_string();
        let q = std::fs::read(i.path("spool/incoming").join(&id)).unwrap();
        let q = text(&q);
        // After the M record: LF, M, 20 digits, LF.
        let msg = &q[q.find("\nM0").unwrap() + 23..];
        let head = format!("Received: by {HOST} (Posthorn, from userid {uid})\n\tid {id}; ");
        assert_eq!(
            msg.starts_with(&head),
            traced,
            "uid {uid} -s {smtpd}:\n{msg}"
        );
        if !traced {
            assert!(msg.starts_with("Received: from trusted.example"), "{msg}");
        }
    }
}

#[test]
fn as_root_a_hanging_forward_command_is_killed_with_its_group() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let homes = homes();
    let a = TestUser::add("ha", homes.path());
    let b = TestUser::add("hb", homes.path());
    let i = root_instance("[local]\ncommand_time_limit = \"3s\"\n");
    i.write("aliases", &format!("postmaster: {0}\nroot: {0}\n", a.name));
    let t = 6_000_000 + (std::process::id() % 100_000) * 10;
    let (bg, fg) = (format!("sleep {t}"), format!("sleep {t}0"));
    let fwd = b.home.join(".forward");
    std::fs::write(&fwd, format!("\"|{bg} & {fg}\"\n")).unwrap();
    chown(&fwd, &b.name);
    chmod(&fwd, 0o644);
    qrun_root(&i);
    for n in 0..2 {
        let mut c = i.cmd_root("sendmail");
        c.args(["-i", &b.name, &a.name]);
        let out = run_with_stdin(c, format!("Subject: h{n}\n\nx\n").as_bytes());
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let log = qrun_root(&i);
    assert_eq!(
        log.matches("status=deferred (command time limit exceeded (3 s)")
            .count(),
        2,
        "{log}"
    );
    // a, the other recipient of the same messages, has them.
    let new = a.home.join("Maildir/new");
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 2, "{log}");
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.trim_end() == bg || c.trim_end() == fg
            })
        })
        .count();
    assert_eq!(left, 0, "the commands outlived the limit");
    assert_eq!(i.queue_files().len(), 2, "b's deliveries are deferred");
}

#[test]
fn as_root_sieve_runs_as_the_recipient() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs it)");
        return;
    }
    let homes = homes();
    let i = root_instance("");
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
