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
            let n: usize = header(&m, "X-Seq").unwrap().parse().unwrap();
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
