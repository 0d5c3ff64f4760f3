//! Commands from .forward and aliases that hang, and other ways one user
//! could stall delivery for everyone: time limits that hold whatever the
//! command does, process groups killed whole, a share of the slots per
//! recipient, and a deadline on every child of qrun.

use crate::harness::*;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// running - how many processes run with exactly this command line.
fn running(cmdline: &str) -> usize {
    let want: Vec<u8> = cmdline.replace(' ', "\0").into_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.strip_suffix(b"\0").unwrap_or(&c) == want.as_slice())
        })
        .count()
}

/// run_bounded - run `c` with `stdin`; a run past `limit` is killed and
/// fails the test (the old code hung here forever).
fn run_bounded(
    mut c: std::process::Command,
    stdin: &[u8],
    limit: Duration,
) -> std::process::Output {
    use std::io::Write;
    c.process_group(0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut w = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = w.write_all(&data);
    });
    let pid = child.id() as i32;
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            // SAFETY: kill(2) on the child's own process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let out = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}: {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Group - a child in a process group of its own, killed with its group
/// when the test ends, passed or not.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child's own process group.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// tag - a number no other test's sleep uses, to find our processes by.
fn tag(salt: u32) -> u32 {
    7_000_000 + (std::process::id() % 100_000) * 10 + salt
}

#[test]
fn a_forward_command_that_hangs_holds_up_only_its_own_user() {
    // dave's .forward runs a command that never ends (and starts another
    // in the background): eight messages for him, and mail for ann must
    // still flow while his commands hang; his never take more than their
    // share of the slots; at the time limit they are killed, group and all.
    let mut i = Instance::new();
    i.add_user("dave", None);
    i.write_config("[local]\ncommand_time_limit = \"15s\"\n");
    let t = tag(1);
    let (bg, fg) = (format!("sleep {t}"), format!("sleep {t}0"));
    i.write("home/dave/.forward", &format!("\"|{bg} & {fg}\"\n"));
    i.init_spool();
    chmod(&i.path("home/dave/.forward"), 0o644);
    for n in 0..8 {
        let out = i.sendmail(&["-i", "dave"], format!("Subject: d{n}\n\nx\n").as_bytes());
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let log_path = i.path("qrun.log");
    let mut c = i.cmd("qrun");
    c.process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let q = Group(c.spawn().unwrap());
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let started = wait_for(Duration::from_secs(30), || running(&fg) > 0);
    assert!(started, "dave's commands never started:\n{}", log());

    for n in 0..3 {
        let out = i.sendmail(&["-i", "ann"], format!("Subject: a{n}\n\nx\n").as_bytes());
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // queue.parallel is 4 here: dave may have 2 at once, never all 4.
    let mut most = 0;
    let flowed = wait_for(Duration::from_secs(12), || {
        most = most.max(running(&fg));
        i.maildir("ann").len() == 3
    });
    let hanging = running(&fg);
    assert!(
        flowed,
        "ann's mail is stuck behind dave's commands:\n{}",
        log()
    );
    assert!(
        hanging > 0,
        "ann's mail came only after dave's commands ended:\n{}",
        log()
    );
    assert!(most <= 2, "{most} of dave's commands at once:\n{}", log());

    // At the limit: killed with what they started, and deferred.
    let killed = wait_for(Duration::from_secs(60), || {
        log().contains("command time limit exceeded (15 s)")
    });
    assert!(killed, "{}", log());
    // Without the .forward his mail goes to his mailbox on the next try.
    std::fs::remove_file(i.path("home/dave/.forward")).unwrap();
    let all = wait_for(Duration::from_secs(120), || i.maildir("dave").len() == 8);
    drop(q);
    assert!(all, "dave has {} of 8:\n{}", i.maildir("dave").len(), log());
    let gone = wait_for(Duration::from_secs(10), || running(&bg) + running(&fg) == 0);
    assert!(
        gone,
        "{} commands outlived the limit",
        running(&bg) + running(&fg)
    );
    assert!(
        log().contains("status=deferred (command time limit exceeded"),
        "{}",
        log()
    );
}

#[test]
fn deliver_keeps_time_for_a_command_that_reads_nothing() {
    // A command that neither reads its input (bigger than a pipe holds) nor
    // closes its stderr: deliver used to block writing, then reading.
    let mut i = Instance::new();
    i.write_config("[local]\ncommand_time_limit = \"2s\"\n");
    let t = tag(2);
    let cmd = format!("sleep {t} & sleep {t}0");
    let mut msg = b"Subject: big\n\n".to_vec();
    msg.extend(std::iter::repeat_n(b'x', 1 << 20));
    let mut c = i.cmd("deliver");
    c.args(["--pipe", &cmd, "ann"]);
    let out = run_bounded(c, &msg, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("command time limit exceeded (2 s)"),
        "{}",
        text(&out.stderr)
    );
    let gone = wait_for(Duration::from_secs(10), || {
        running(&format!("sleep {t}")) + running(&format!("sleep {t}0")) == 0
    });
    assert!(gone, "the command's process group outlived the limit");
}

#[test]
fn a_forward_that_is_a_fifo_holds_up_nothing() {
    // Opening a FIFO for reading waits for a writer: a .forward made one
    // stopped the queue runner for good.
    let mut i = Instance::new();
    i.add_user("dave", None);
    i.init_spool();
    nix_mkfifo(&i.path("home/dave/.forward"));
    assert!(
        i.sendmail(&["-i", "dave"], b"Subject: f\n\nx\n")
            .status
            .success()
    );
    let mut c = i.cmd("qrun");
    c.arg("-o");
    let out = run_bounded(c, b"", Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(".forward: ignored: not a regular file"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(i.maildir("dave").len(), 1, "delivered to the mailbox");
}

/// nix_mkfifo - a FIFO at `p`, mode 0644.
fn nix_mkfifo(p: &std::path::Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}
