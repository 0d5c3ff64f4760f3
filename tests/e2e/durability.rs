//! Nothing lost, nothing repeated: kills at random moments, and a full disk.

use crate::harness::*;
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// limit_file_size - run the command with RLIMIT_FSIZE set, as a full disk would act.
fn limit_file_size(c: &mut std::process::Command, bytes: u64) {
    // SAFETY: setrlimit is async-signal-safe; it only lowers our own limit.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn disk_full_sendmail_exits_75_and_leaves_nothing() {
    let i = Instance::new();
    i.init_spool();
    let mut msg = b"Subject: big\n\n".to_vec();
    msg.extend(std::iter::repeat_n(b"0123456789abcdef\n", 20_000).flatten());
    let mut c = i.cmd("sendmail");
    c.args(["-i", "ann"]);
    limit_file_size(&mut c, 64 * 1024);
    let out = run_with_stdin(c, &msg);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(i.queue_files().is_empty(), "nothing committed");
    assert!(
        i.tmp_files().is_empty(),
        "nothing half-written: {:?}",
        i.tmp_files()
    );
}

#[test]
fn disk_full_deliver_defers_and_qrun_retries_intact() {
    let i = Instance::new();
    i.init_spool();
    let mut msg = b"Subject: big\n\n".to_vec();
    msg.extend(std::iter::repeat_n(b"0123456789abcdef\n", 20_000).flatten());
    assert!(i.sendmail(&["-i", "ann"], &msg).status.success());
    let mut c = i.cmd("qrun");
    c.arg("-o");
    limit_file_size(&mut c, 64 * 1024);
    let out = run_with_stdin(c, b"");
    let log = text(&out.stderr);
    assert!(log.contains("status=deferred"), "{log}");
    assert!(i.maildir("ann").is_empty());
    assert!(
        std::fs::read_dir(i.path("home/ann/Maildir/tmp"))
            .map(|r| r.count())
            .unwrap_or(0)
            == 0,
        "no half-written file"
    );
    assert_eq!(i.queue_files().len(), 1, "the message stays queued");
    i.qrun_once();
    let m = i.maildir("ann");
    assert_eq!(m.len(), 1);
    assert_eq!(body(&m[0]), body(&msg), "delivered intact");
    assert!(i.queue_files().is_empty());
}

/// Start qrun in its own process group, so a kill takes its deliver children too.
fn start_qrun(i: &Instance) -> std::process::Child {
    let mut c = i.cmd("qrun");
    c.process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c.spawn().unwrap()
}

fn kill_group(ch: &mut std::process::Child) {
    // SAFETY: kill(2) on the child's own process group.
    unsafe { libc::kill(-(ch.id() as i32), libc::SIGKILL) };
    let _ = ch.wait();
}

#[test]
fn kill_9_at_random_moments_loses_nothing() {
    const MESSAGES: usize = 500;
    const PARALLEL: usize = 4;
    let mut i = Instance::new();
    for u in ["dave", "erin"] {
        i.add_user(u, None);
    }
    i.write("aliases", "postmaster: ann\ncrew: carl, dave, erin\n");
    i.init_spool();

    let submitter = {
        let cfg = i.config.clone();
        let root = i.root.clone();
        let bin = bin_dir().join("sendmail");
        std::thread::spawn(move || {
            for n in 0..MESSAGES {
                let mut c = std::process::Command::new(&bin);
                c.env_clear()
                    .env("POSTHORN_CONFIG", &cfg)
                    .current_dir(&root)
                    .args(["-i", "ann", "bob@mail.test", "crew"]);
                if let Some((u, g)) = run_ids() {
                    c.uid(u).gid(g);
                }
                let out = run_with_stdin(
                    c,
                    format!("Subject: n {n}\nX-Seq: {n}\n\nmessage {n}\n").as_bytes(),
                );
                assert!(out.status.success(), "sendmail {n}: {}", text(&out.stderr));
            }
        })
    };
    let mut kills = 0usize;
    let mut q = start_qrun(&i);
    let start = Instant::now();
    let mut seed: u64 = 0x9e3779b97f4a7c15 ^ std::process::id() as u64;
    while !submitter.is_finished() || (kills < 15 && start.elapsed() < Duration::from_secs(60)) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(30 + seed % 300));
        kill_group(&mut q);
        kills += 1;
        q = start_qrun(&i);
    }
    submitter.join().unwrap();
    let done = wait_for(Duration::from_secs(300), || i.queue_files().is_empty());
    kill_group(&mut q);
    assert!(done, "queue not empty: {:?}", i.queue_files().len());

    let mut dups = 0usize;
    for u in ["ann", "bob", "carl", "dave", "erin"] {
        let mut seen: HashMap<usize, usize> = HashMap::new();
        for m in i.maildir(u) {
            let n: usize = header(&m, "X-Seq")
                .unwrap_or_else(|| panic!("{u}: {}", text(&m)))
                .parse()
                .unwrap();
            *seen.entry(n).or_default() += 1;
        }
        let missing: Vec<usize> = (0..MESSAGES).filter(|n| !seen.contains_key(n)).collect();
        assert!(
            missing.is_empty(),
            "{u} is missing {} messages, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        dups += seen.values().map(|c| c - 1).sum::<usize>();
    }
    // A kill between a delivery and its record repeats at most that delivery:
    // at most one per worker per kill.
    assert!(
        dups <= kills * PARALLEL,
        "{dups} duplicates for {kills} kills"
    );
    eprintln!("kill test: {kills} kills, {dups} duplicate deliveries");
}

/// strace - run `bin ARGS` with `stdin` under strace, tracing the calls
/// named in `calls` in every thread and child; its output and the trace.
pub fn strace(
    i: &Instance,
    bin: &str,
    args: &[&str],
    calls: &str,
    stdin: &[u8],
) -> (std::process::Output, String) {
    let trace = i.path(&format!("strace.{bin}.{}", std::process::id()));
    let _ = std::fs::remove_file(&trace);
    let prog = i.cmd(bin);
    let mut c = std::process::Command::new("strace");
    c.args(["-f", "-qq", "-e", &format!("trace={calls}"), "-o"])
        .arg(&trace)
        .arg(prog.get_program())
        .args(args)
        .env_clear()
        .envs(prog.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(&i.root);
    if let Some((u, g)) = run_ids() {
        c.uid(u).gid(g);
    }
    let which = std::process::Command::new("strace").arg("-V").output();
    assert!(
        which.is_ok_and(|o| o.status.success()),
        "strace is needed for this test (apt-get install strace)"
    );
    let out = run_with_stdin(c, stdin);
    let t = std::fs::read_to_string(&trace).expect("strace wrote no trace");
    let _ = std::fs::remove_file(&trace);
    (out, t)
}

#[test]
fn the_first_delivery_record_is_made_durable_with_its_directory() {
    // A message whose one recipient defers: its state file is created by
    // the pass's last sync. Before the fix only the file was synced, so
    // after a power loss the records (and so the deliveries already made)
    // could be lost with the directory entry.
    let i = Instance::new();
    i.init_spool();
    assert!(
        i.sendmail(
            &["-i", "ann", "someone@remote.example"],
            b"Subject: x\n\nx\n"
        )
        .status
        .success()
    );
    let ids = i.queue_files();
    assert_eq!(ids.len(), 1);
    let state_dir = i.path("spool/state");
    let state_file = state_dir.join(&ids[0]);
    let (out, t) = strace(&i, "qrun", &["-o"], "openat,fsync,fdatasync", b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(state_file.exists(), "the deferral is recorded");
    // pid -> (fd of the created state file, fd of state/ opened after it)
    let mut created: Option<(String, String)> = None;
    let mut dir_fd: Option<String> = None;
    let mut dir_synced = false;
    for line in t.lines() {
        let (pid, call) = line.split_once(' ').unwrap_or(("", line));
        let call = call.trim_start();
        let fd_of = |c: &str| c.rsplit_once("= ").map(|(_, r)| r.trim().to_string());
        if call.starts_with("openat(")
            && call.contains(&format!("\"{}\"", state_file.display()))
            && call.contains("O_CREAT")
        {
            created = fd_of(call).map(|fd| (pid.to_string(), fd));
        } else if let Some((p, _)) = &created {
            if p == pid
                && call.starts_with("openat(")
                && call.contains(&format!("\"{}\"", state_dir.display()))
                && call.contains("O_DIRECTORY")
            {
                dir_fd = fd_of(call);
            } else if p == pid
                && dir_fd
                    .as_deref()
                    .is_some_and(|fd| call.starts_with(&format!("fsync({fd})")))
            {
                dir_synced = true;
            }
        }
    }
    assert!(
        created.is_some(),
        "no state file created under strace:\n{t}"
    );
    assert!(
        dir_synced,
        "spool/state was not fsynced after the state file was created:\n{t}"
    );
}

#[test]
fn imapd_makes_its_uid_and_modseq_files_durable_with_their_directory() {
    // dovecot-uidlist and posthorn-modseq are replaced by a rename; the
    // rename is lost on power loss unless the folder is fsynced after it,
    // and then UIDs or mod-sequences already given to a client come back.
    let i = Instance::new();
    i.init_spool();
    for n in 0..2 {
        let msg = format!("Subject: m{n}\n\nbody {n}\n");
        assert!(i.sendmail(&["-i", "ann"], msg.as_bytes()).status.success());
    }
    i.qrun_once();
    let folder = i.path("home/ann/Maildir");
    let input = "a LOGIN ann x\nb ENABLE CONDSTORE\nc SELECT INBOX\nd STORE 1 +FLAGS (\\Flagged)\ne LOGOUT\n"
        .replace('\n', "\r\n");
    let calls = "openat,rename,renameat,renameat2,fsync";
    let (out, t) = strace(&i, "imapd", &[], calls, input.as_bytes());
    let reply = text(&out.stdout);
    assert!(reply.contains("d OK"), "{reply}\n{}", text(&out.stderr));
    for file in ["dovecot-uidlist", "posthorn-modseq"] {
        let target = format!("\"{}\"", folder.join(file).display());
        let dir = format!("\"{}\"", folder.display());
        let mut renamed = false;
        let mut dir_fd: Option<String> = None;
        let mut synced = false;
        for line in t.lines() {
            let call = line.split_once(' ').map_or(line, |(_, c)| c.trim_start());
            if call.starts_with("rename") && call.contains(&format!(", {target}")) {
                renamed = true;
                (dir_fd, synced) = (None, false);
            } else if renamed
                && call.starts_with("openat(")
                && call.contains(&format!("{dir}, "))
                && call.contains("O_DIRECTORY")
            {
                dir_fd = call.rsplit_once("= ").map(|(_, r)| r.trim().to_string());
            } else if let Some(fd) = &dir_fd
                && call.starts_with(&format!("fsync({fd})"))
            {
                synced = true;
            }
        }
        assert!(renamed, "{file} was never replaced:\n{t}");
        assert!(
            synced,
            "{file}: the folder was not fsynced after the rename:\n{t}"
        );
    }
}
