//! harness - a throwaway instance (config, spool, users, aliases,
//! mailboxes) and the real binaries run against it with stdin, env, argv.
//!
//! As root (CI), the non-root tests run the binaries as `nobody`, so they
//! test the "no root at all" path they claim to; root tests say so.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const HOST: &str = "mail.test";

/// is_root - whether the tests run as root (CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The programs the tests run.
pub const BINARIES: &[&str] = &[
    "sendmail", "enqueue", "qrun", "deliver", "pop3d", "smtpd", "imapd", "remote", "dkimkey",
];

/// bin_dir - the built binaries; as root, a copy that `nobody` can execute.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe");
        let built = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/debug")
            .to_path_buf();
        for b in BINARIES {
            assert!(
                built.join(b).exists(),
                "{} is missing: run `cargo build --workspace` first",
                built.join(b).display()
            );
        }
        if !is_root() {
            return built;
        }
        // One directory per build tree, replaced file by file through a
        // rename (never written in place: a binary may still be running),
        // so test runs do not leave a copy each in /tmp.
        let tag: u64 = built
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf29ce484222325, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
        let dir = std::env::temp_dir().join(format!("posthorn-test-bin-{tag:016x}"));
        std::fs::create_dir_all(&dir).unwrap();
        for b in BINARIES {
            let tmp = dir.join(format!(".{b}.{}", std::process::id()));
            std::fs::copy(built.join(b), &tmp).unwrap();
            std::fs::rename(&tmp, dir.join(b)).unwrap();
        }
        chmod(&dir, 0o755);
        dir
    })
}

pub fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The ids the non-root tests run as: ourselves, or nobody when root.
pub fn run_ids() -> Option<(u32, u32)> {
    if is_root() {
        Some((65534, 65534))
    } else {
        None
    }
}

/// One instance directory.
pub struct Instance {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    users: Vec<String>,
    extra_config: String,
}

impl Instance {
    /// new - an instance with users ann, bob, carl and an aliases file.
    pub fn new() -> Instance {
        let dir = tempfile::Builder::new()
            .prefix("posthorn-e2e")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        let mut i = Instance {
            config: root.join("posthorn.toml"),
            root,
            _dir: dir,
            users: Vec::new(),
            extra_config: String::new(),
        };
        for u in ["ann", "bob", "carl"] {
            i.add_user(u, None);
        }
        i.write("aliases", "postmaster: ann\nroot: ann\n");
        i.write_config("");
        i
    }

    /// write_config - the config file, with `extra` top-level keys added.
    /// Unless `extra` names one, the DNS server is a closed loopback port:
    /// no test asks the outside world, and remote mail defers at once.
    /// Unless `extra` names them, imapd makes no folders at first login
    /// (`[imap] folders = []`): the tests see only the folders they make.
    pub fn write_config(&mut self, extra: &str) {
        self.extra_config = extra.to_string();
        let mut extra = if extra.contains("resolver") {
            extra.to_string()
        } else {
            format!("resolver = \"127.0.0.1:9\"\n{extra}")
        };
        if !extra.contains("folders") {
            if extra.contains("[imap]") {
                extra = extra.replace("[imap]\n", "[imap]\nfolders = []\n");
            } else {
                extra.push_str("\n[imap]\nfolders = []\n");
            }
        }
        let text = format!(
            "hostname = \"{HOST}\"\nspool = \"spool\"\nusers = \"users\"\nsystem_users = false\naliases = \"aliases\"\nlog = \"stderr\"\nlibexec = \"{}\"\n{extra}\n[queue]\nparallel = 4\nmin_backoff = \"1s\"\nmax_backoff = \"2s\"\n",
            bin_dir().display()
        );
        self.write("posthorn.toml", &text);
    }

    /// add_user - a virtual user with a home in the instance; `mail` sets userdb_mail.
    pub fn add_user(&mut self, name: &str, mail: Option<&str>) {
        let home = self.root.join("home").join(name);
        std::fs::create_dir_all(&home).unwrap();
        let extra = mail.map(|m| format!("userdb_mail={m}")).unwrap_or_default();
        self.users
            .push(format!("{name}:{{PLAIN}}x::::{}::{extra}", home.display()));
        let text = self.users.join("\n") + "\n";
        self.write("users", &text);
    }

    /// write - a file in the instance.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, text).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// own - as root, hand the instance to nobody before running anything.
    fn own(&self) {
        if is_root() {
            chown_tree(&self.root, 65534, 65534);
        }
    }

    /// cmd - a Command for one of the binaries, as the test user, with this config.
    pub fn cmd(&self, bin: &str) -> Command {
        self.own();
        let mut c = Command::new(bin_dir().join(bin));
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("POSTHORN_CONFIG", &self.config)
            .env("TZ", "UTC");
        c.current_dir(&self.root);
        if let Some((u, g)) = run_ids() {
            c.uid(u).gid(g);
        }
        c
    }

    /// cmd_root - a Command that keeps our (root) identity: for root tests.
    pub fn cmd_root(&self, bin: &str) -> Command {
        self.own();
        let mut c = Command::new(bin_dir().join(bin));
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("POSTHORN_CONFIG", &self.config)
            .env("TZ", "UTC");
        c.current_dir(&self.root);
        c
    }

    /// run - run a binary with stdin, wait, and return its output.
    pub fn run(&self, bin: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut c = self.cmd(bin);
        c.args(args);
        run_with_stdin(c, stdin)
    }

    /// sendmail - `sendmail ARGS` with `msg` on stdin.
    pub fn sendmail(&self, args: &[&str], msg: &[u8]) -> Output {
        self.run("sendmail", args, msg)
    }

    /// qrun_once - one queue pass; panics on failure so a test sees why.
    pub fn qrun_once(&self) -> Output {
        let out = self.run("qrun", &["-o"], b"");
        assert!(
            out.status.success(),
            "qrun -o failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// maildir - the messages in a user's Maildir (new and cur), sorted by name.
    pub fn maildir(&self, user: &str) -> Vec<Vec<u8>> {
        self.maildir_at(&format!("home/{user}/Maildir"))
    }

    /// maildir_at - the messages in the Maildir at `rel`.
    pub fn maildir_at(&self, rel: &str) -> Vec<Vec<u8>> {
        let mut names = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.path(rel).join(sub)) {
                for e in rd.flatten() {
                    names.push(e.path());
                }
            }
        }
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// queue_files - names in spool/incoming.
    pub fn queue_files(&self) -> Vec<String> {
        list(&self.path("spool/incoming"))
    }

    /// tmp_files - names in spool/tmp.
    pub fn tmp_files(&self) -> Vec<String> {
        list(&self.path("spool/tmp"))
    }

    /// init_spool - create the spool (a qrun pass does that).
    pub fn init_spool(&self) {
        self.qrun_once();
    }
}

/// chown_tree - lchown every entry below `p`; entries that vanish while
/// we walk (a qrun running in the background deletes files) are skipped.
fn chown_tree(p: &Path, uid: u32, gid: u32) {
    match std::os::unix::fs::lchown(p, Some(uid), Some(gid)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("chown {}: {e}", p.display()),
    }
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                chown_tree(&e.path(), uid, gid);
            } else {
                match std::os::unix::fs::lchown(e.path(), Some(uid), Some(gid)) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => panic!("chown {}: {err}", e.path().display()),
                }
            }
        }
    }
}

fn list(p: &Path) -> Vec<String> {
    match std::fs::read_dir(p) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// run_with_stdin - spawn, feed stdin from a thread (no deadlock on big
/// inputs), collect output.
pub fn run_with_stdin(mut c: Command, stdin: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let mut w = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let t = std::thread::spawn(move || {
        let _ = w.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    let _ = t.join();
    out
}

/// text - output as a string, for assertion messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// header - the value of the first header field `name` in `msg`, unfolded.
pub fn header(msg: &[u8], name: &str) -> Option<String> {
    headers(msg, name).into_iter().next()
}

/// headers - every value of header field `name`.
pub fn headers(msg: &[u8], name: &str) -> Vec<String> {
    let t = String::from_utf8_lossy(msg);
    let head = t.split("\n\n").next().unwrap_or("");
    let mut out: Vec<String> = Vec::new();
    let mut cur: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(c) = cur.as_mut() {
                c.push(' ');
                c.push_str(line.trim());
            }
            continue;
        }
        if let Some(c) = cur.take() {
            out.push(c);
        }
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            cur = Some(v.trim().to_string());
        }
    }
    if let Some(c) = cur {
        out.push(c);
    }
    out
}

/// body - everything after the first blank line.
pub fn body(msg: &[u8]) -> Vec<u8> {
    match msg.windows(2).position(|w| w == b"\n\n") {
        Some(i) => msg[i + 2..].to_vec(),
        None => Vec::new(),
    }
}

/// wait_for - poll `f` until it is true or `limit` passes; for correctness
/// only (a generous bound), never as a measurement.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// python - run a Python snippet with args; returns stdout, panics on failure.
pub fn python(code: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python3 is needed for the tests");
    assert!(out.status.success(), "python failed: {}", text(&out.stderr));
    text(&out.stdout)
}

/// free_port - a loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Launcher - systemd-socket-activate --inetd -a running a server per connection.
pub struct Launcher {
    child: Child,
    pub port: u16,
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Launcher {
    /// pid - the launcher's process: each session's server is its child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// start - the launcher as the test user, and a bounded wait for its socket.
    pub fn start(i: &Instance, bin: &str, args: &[&str]) -> Option<Launcher> {
        Launcher::start_as(i, bin, args, run_ids())
    }

    /// start_root - the launcher as root (for root tests: the servers
    /// start as root, as under a system's inetd).
    pub fn start_root(i: &Instance, bin: &str, args: &[&str]) -> Option<Launcher> {
        Launcher::start_as(i, bin, args, None)
    }

    /// start_as - the launcher as `ids` (None: as we are).
    fn start_as(
        i: &Instance,
        bin: &str,
        args: &[&str],
        ids: Option<(u32, u32)>,
    ) -> Option<Launcher> {
        if Command::new("systemd-socket-activate")
            .arg("--help")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("skipped: systemd-socket-activate is not installed");
            return None;
        }
        let port = free_port();
        let program = bin_dir().join(bin);
        // The same user, environment and directory as cmd() gives the server.
        i.cmd(bin);
        let mut l = Command::new("systemd-socket-activate");
        l.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&i.root)
            .args(["--inetd", "-a", "-l", &format!("127.0.0.1:{port}")])
            .arg(format!("--setenv=POSTHORN_CONFIG={}", i.config.display()))
            .arg(&program)
            .args(args)
            .stdout(Stdio::null())
            // The servers' log lines, where a test can read them (a pipe nobody
            // drains could fill and stall the sessions); appended, so that
            // several launchers of one instance share the file.
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(i.path("launcher.log"))
                    .unwrap(),
            );
        if let Some((u, g)) = ids {
            use std::os::unix::process::CommandExt;
            l.uid(u).gid(g);
        }
        let child = l.spawn().unwrap();
        let up = wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|s| {
                // That connection starts a server: let it see EOF at once.
                drop(s);
                true
            })
        });
        assert!(up, "systemd-socket-activate did not listen");
        Some(Launcher { child, port })
    }
}

/// make_cert - a self-signed certificate for mail.test in cert.pem and
/// key.pem of the instance; false (and a note) without openssl.
pub fn make_cert(i: &Instance) -> bool {
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=mail.test",
            "-addext",
            "subjectAltName=DNS:mail.test",
        ])
        .arg("-keyout")
        .arg(i.path("key.pem"))
        .arg("-out")
        .arg(i.path("cert.pem"))
        .stderr(Stdio::null())
        .status();
    if !st.is_ok_and(|s| s.success()) {
        eprintln!("skipped: openssl is not installed");
        return false;
    }
    true
}

/// s_client - `openssl s_client -starttls PROTO` against a local port: each
/// step's command is sent only after the reply line starting with the
/// previous step's prefix (a client that waits where it must), and every
/// line the server sent under TLS comes back.
pub fn s_client(port: u16, proto: &str, steps: &[(&str, &str)]) -> String {
    use std::io::{BufRead, BufReader, Read};
    let mut c = Command::new("openssl")
        .args([
            "s_client",
            "-starttls",
            proto,
            "-quiet",
            "-ign_eof",
            "-connect",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let mut r = BufReader::new(c.stdout.take().unwrap());
    let mut o = String::new();
    for (cmd, until) in steps {
        stdin.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            o.push_str(&line);
            if line.starts_with(until) {
                break;
            }
        }
    }
    drop(stdin);
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    o.push_str(&rest);
    let _ = c.wait();
    o
}

/// A running aiosmtpd sink; killed on drop.
pub struct Sink {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl Sink {
    /// start - a sink on a free port writing to `out`, with extra sink.py options.
    pub fn start(out: &Path, opts: &[&str]) -> Sink {
        Sink::start_on(out, opts, free_port(), "127.0.0.1")
    }

    /// start_on - a sink on `host` port `port`.
    pub fn start_on(out: &Path, opts: &[&str], port: u16, host: &str) -> Sink {
        std::fs::create_dir_all(out).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/remote/sink.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(out)
            .args(opts)
            .args(["--host", host])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let up = wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect((host, port)).is_ok()
        });
        assert!(up, "the sink did not start");
        Sink {
            child,
            port,
            out: out.to_path_buf(),
        }
    }

    /// received - the messages accepted so far, as JSON texts, oldest first.
    pub fn received(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A dnsmasq serving only the given records on a loopback port.
pub struct Dns {
    child: Child,
    pub port: u16,
}

impl Dns {
    /// start - dnsmasq with `records` (its own options), answering NXDOMAIN
    /// for every other name under .test; None (with a message) if missing.
    pub fn start(records: &[String]) -> Option<Dns> {
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(bin) = bin else {
            eprintln!("SKIP: dnsmasq is not installed (apt-get install dnsmasq-base; CI does)");
            return None;
        };
        let port = free_port();
        let me = if is_root() {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "nobody".into())
        };
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--local=/test/",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--user={me}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Dns { child, port };
        let up = wait_for(Duration::from_secs(10), || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            // A query for test. SOA; any answer means it is listening.
            let q = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04test\x00\x00\x06\x00\x01";
            s.send_to(q, ("127.0.0.1", port)).is_ok() && s.recv(&mut [0u8; 512]).is_ok()
        });
        assert!(up, "dnsmasq did not start");
        Some(d)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
