//! config - the one TOML file every program reads, checked strictly.
//!
//! Order: `-C FILE` > `$POSTHORN_CONFIG` > /etc/posthorn/posthorn.toml >
//! built-in defaults. A missing default file means defaults; a missing file
//! that was asked for by name is an error. Relative paths are relative to
//! the file's folder, so a whole instance can live in one directory.

use posthorn_sys::exit::{self, Exit};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration file.
pub const DEFAULT_FILE: &str = "/etc/posthorn/posthorn.toml";

/// The installed helper directory, fixed at build time by `make install`.
pub const LIBEXEC: &str = match option_env!("POSTHORN_LIBEXEC") {
    Some(p) => p,
    None => "/usr/local/libexec/posthorn",
};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    Syslog,
    Stderr,
}

/// Queue runner settings (`[queue]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Deliveries run at once.
    pub parallel: usize,
    /// First retry delay; doubles per attempt.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Give up and bounce after this long in the queue.
    pub lifetime: Duration,
    /// Rescan the queue at least this often.
    pub scan_interval: Duration,
    /// Warn the sender once about mail still deferred after this long; zero is off.
    pub delay_warning: Duration,
    /// Most messages one submitting uid may have in the spool; 0 is no limit.
    pub uid_max_messages: u64,
    /// Most message bytes one submitting uid may have in the spool; 0 is no limit.
    pub uid_max_bytes: u64,
}

/// Local delivery settings (`[local]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// How long a command from aliases or .forward may run (Postfix's
    /// command_time_limit); then its process group is killed.
    pub command_time_limit: Duration,
    /// Deliveries at once to one local recipient (a user, or an alias's
    /// command); None means half of `queue.parallel` (at least 1).
    pub destination_concurrency: Option<usize>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            command_time_limit: Duration::from_secs(1000),
            destination_concurrency: None,
        }
    }
}

/// Where mail for a domain goes (`relayhost`, `[transport]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Delivered here, as for `domains`.
    Local,
    /// By SMTP to `host`: `[host]` means that host's addresses, a bare host
    /// its MX records (as in Postfix); `port` None means `remote_port`.
    Smtp {
        host: String,
        port: Option<u16>,
        mx: bool,
    },
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Local => f.write_str("local"),
            Route::Smtp { host, port, mx } => {
                if *mx {
                    f.write_str(host)?;
                } else {
                    write!(f, "[{host}]")?;
                }
                match port {
                    Some(p) => write!(f, ":{p}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// parse_route - `local`, `[host]:port`, `[host]`, `host:port` or `host`;
/// the host a name (letters, digits, '.', '-') or an IP address.
pub fn parse_route(s: &str) -> Result<Route, String> {
    const WHAT: &str = "must be \"local\", \"[host]:port\", \"[host]\", \"host:port\" or \"host\"";
    let s = s.trim();
    if s.eq_ignore_ascii_case("local") {
        return Ok(Route::Local);
    }
    let (host, rest, mx) = if let Some(r) = s.strip_prefix('[') {
        let (h, rest) = r.split_once(']').ok_or(WHAT)?;
        (h, rest, false)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, &s[h.len()..][..p.len() + 1], true),
            _ => (s, "", true),
        }
    };
    let port = match rest {
        "" => None,
        r => {
            let p = r.strip_prefix(':').ok_or(WHAT)?;
            Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or(WHAT)?)
        }
    };
    let ip = host.parse::<std::net::IpAddr>().is_ok();
    let name = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !(ip && !mx || name) {
        return Err(WHAT.into());
    }
    Ok(Route::Smtp {
        host: host.to_ascii_lowercase(),
        port,
        mx,
    })
}

/// Remote delivery settings: `resolver`, `remote_port`, `[relay]`,
/// `[smtp]`, `[transport]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The DNS server to ask; None means the nameservers of /etc/resolv.conf.
    pub resolver: Option<std::net::SocketAddr>,
    /// Port for MX deliveries.
    pub port: u16,
    /// `[relay] user`: AUTH to the relayhost as this user.
    pub relay_user: Option<String>,
    /// `[relay] password_file`: its first line is the password.
    pub relay_password_file: Option<PathBuf>,
    /// `[relay] tls_required`: the relayhost must do TLS with a verified certificate.
    pub relay_tls_required: bool,
    /// `[smtp] tls_required`: the same for every other destination.
    pub tls_required: bool,
    /// `[smtp] ca_file`: more trusted CA certificates (PEM), beside the system's.
    pub ca_file: Option<PathBuf>,
    /// `[smtp] connect_timeout`.
    pub connect_timeout: Duration,
    /// `[smtp] reply_timeout`: None means RFC 5321's per-command values.
    pub reply_timeout: Option<Duration>,
    /// `[transport]`: domain -> route, a leading '.' for subdomains.
    pub transport: Vec<(String, Route)>,
    /// `[smtp] destination_concurrency`: connections at once to one destination.
    pub destination_concurrency: usize,
    /// `[smtp] message_timeout`: the most one delivery attempt may take in all.
    pub message_timeout: Duration,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            resolver: None,
            port: 25,
            relay_user: None,
            relay_password_file: None,
            relay_tls_required: true,
            tls_required: false,
            ca_file: None,
            connect_timeout: Duration::from_secs(30),
            reply_timeout: None,
            transport: Vec::new(),
            destination_concurrency: 20,
            message_timeout: Duration::from_secs(3600),
        }
    }
}

/// The whole configuration, with every default filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, None for built-in defaults.
    pub file: Option<PathBuf>,
    pub hostname: String,
    pub domains: Vec<String>,
    pub spool: PathBuf,
    pub mailbox: String,
    pub users: Option<PathBuf>,
    pub system_users: bool,
    pub aliases: Option<PathBuf>,
    pub relayhost: Option<String>,
    /// Remote delivery (qrun and its `remote` helper).
    pub remote: RemoteConfig,
    pub log: LogSink,
    pub libexec: PathBuf,
    /// The unprivileged account programs switch to when started as root.
    pub user: String,
    /// The account pop3d's and imapd's pre-login processes run as when
    /// started as root: it owns nothing (`login_user`).
    pub login_user: String,
    /// Largest message `sendmail` and `enqueue` accept, in bytes.
    pub message_size_limit: u64,
    /// Whom to tell about double bounces.
    pub postmaster: String,
    pub queue: QueueConfig,
    /// Local delivery (deliver, and qrun's limits on it).
    pub local: LocalConfig,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Failed logins per connection before it is closed (`[auth] max_failures`).
    pub auth_max_failures: u32,
    /// Allow plaintext passwords without TLS from non-loopback clients (`[auth] allow_plaintext`).
    pub auth_allow_plaintext: bool,
    /// The lowest uid that may log in (`[auth] first_valid_uid`); uid 0
    /// never may.
    pub auth_first_valid_uid: u32,
    /// Networks allowed to send a PROXY protocol header (`[proxy] trusted`).
    pub proxy_trusted: Vec<crate::net::Net>,
    pub smtpd: SmtpdConfig,
    /// Over-quota mail is deferred (4.2.2) rather than bounced (5.2.2).
    pub quota_full_tempfail: bool,
    /// The IMAP hierarchy separator, `.` or `/` (`[imap] separator`); on
    /// disk Maildir++ folders are always `.Parent.Child`.
    pub imap_separator: char,
    /// Folders imapd makes, subscribed and with their special use, at a
    /// user's first login (`[imap] folders`); empty makes none.
    pub imap_folders: Vec<String>,
    /// Secret files opened while privileged (`hold_secrets`).
    pub held: Held,
    /// Sieve filtering in deliver (`[sieve]`).
    pub sieve: crate::sieveconf::SieveConfig,
    /// The header field and value that mark spam (`spam_header`).
    pub spam_header: (String, String),
    /// DKIM signing, SPF/DKIM/DMARC checks, `spam_header`.
    pub mailauth: crate::authconf::MailAuth,
}

/// SMTP server limits and policy (`[smtpd]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpdConfig {
    /// Recipients per message.
    pub max_recipients: usize,
    /// Error replies per session before `421` and close.
    pub max_errors: u32,
    /// Waiting for the client, per read (RFC 5321 4.5.3.2: 5 minutes).
    pub idle_timeout: Duration,
    /// The whole session.
    pub session_timeout: Duration,
    /// Authenticated users may send only as themselves.
    pub sender_check: bool,
}

/// Files a server opens while it may, before it gives up root: reading
/// them later needs no privilege, and nothing else of root's is kept.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// The `users` file.
    pub users: Option<std::sync::Arc<std::fs::File>>,
}

impl Default for Config {
    fn default() -> Self {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        Config {
            file: None,
            domains: vec![hostname.to_ascii_lowercase(), "localhost".to_string()],
            hostname,
            spool: PathBuf::from("/var/spool/posthorn"),
            mailbox: "~/Maildir/".to_string(),
            users: None,
            system_users: true,
            aliases: Some(PathBuf::from("/etc/aliases")),
            relayhost: None,
            remote: RemoteConfig::default(),
            log: LogSink::Syslog,
            libexec: default_libexec(),
            user: "posthorn".to_string(),
            login_user: "posthorn-login".to_string(),
            message_size_limit: 25 * 1024 * 1024,
            postmaster: "postmaster".to_string(),
            queue: QueueConfig {
                parallel: 8,
                min_backoff: Duration::from_secs(300),
                max_backoff: Duration::from_secs(4000),
                lifetime: Duration::from_secs(5 * 86400),
                scan_interval: Duration::from_secs(300),
                delay_warning: Duration::ZERO,
                uid_max_messages: 0,
                uid_max_bytes: 0,
            },
            local: LocalConfig::default(),
            tls_cert: None,
            tls_key: None,
            auth_max_failures: 3,
            auth_allow_plaintext: false,
            auth_first_valid_uid: 1000,
            proxy_trusted: Vec::new(),
            smtpd: SmtpdConfig {
                max_recipients: 1000,
                max_errors: 20,
                idle_timeout: Duration::from_secs(300),
                session_timeout: Duration::from_secs(3600),
                sender_check: true,
            },
            imap_separator: '.',
            imap_folders: ["Drafts", "Sent", "Junk", "Trash", "Archive"]
                .map(String::from)
                .to_vec(),
            held: Held::default(),
            quota_full_tempfail: false,
            sieve: crate::sieveconf::SieveConfig::default(),
            spam_header: ("X-Spam".to_string(), "Yes".to_string()),
            mailauth: crate::authconf::MailAuth::default(),
        }
    }
}

/// default_libexec - the running program's own directory in a build tree
/// (where the helpers sit beside it), else the installed libexec directory.
fn default_libexec() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
        && dir.join("enqueue").is_file()
        && dir.join("deliver").is_file()
    {
        return dir.to_path_buf();
    }
    PathBuf::from(LIBEXEC)
}

/// Which file to read, and whether its absence is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Named with -C or $POSTHORN_CONFIG: must exist.
    Named(PathBuf),
    /// The default file: may be missing.
    Default,
}

impl Source {
    /// choose - -C wins over $POSTHORN_CONFIG; a privileged program passes
    /// `trust_caller = false` and always gets the default file.
    pub fn choose(cli: Option<&Path>, trust_caller: bool) -> Source {
        if !trust_caller {
            return Source::Default;
        }
        if let Some(p) = cli {
            return Source::Named(p.to_path_buf());
        }
        match std::env::var_os("POSTHORN_CONFIG") {
            Some(p) if !p.is_empty() => Source::Named(PathBuf::from(p)),
            _ => Source::Default,
        }
    }
}

impl Config {
    /// load - read and check the configuration; errors exit 78 (or 75 when
    /// the file could not be read for a passing reason).
    pub fn load(source: &Source) -> Result<Config, Exit> {
        let (path, must_exist) = match source {
            Source::Named(p) => (p.clone(), true),
            Source::Default => (PathBuf::from(DEFAULT_FILE), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Config::default());
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Exit::new(
                    exit::CONFIG,
                    format!("{}: not UTF-8 text", path.display()),
                ));
            }
            Err(e) => {
                let code = match e.kind() {
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                        exit::CONFIG
                    }
                    _ => exit::TEMPFAIL,
                };
                return Err(Exit::new(
                    code,
                    format!("{}: cannot read: {e}", path.display()),
                ));
            }
        };
        Config::parse(&text, &path)
    }

    /// parse - build a Config from the text of `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Exit> {
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.to_path_buf())
        };
        let base = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let fname = path.display().to_string();
        let bad =
            |key: &str, what: &str| Exit::new(exit::CONFIG, format!("{fname}: {key}: {what}"));
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let msg = e.message().to_string();
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => Exit::new(exit::CONFIG, format!("{fname}:{l}: {msg}")),
                None => Exit::new(exit::CONFIG, format!("{fname}: {msg}")),
            }
        })?;
        let mut c = Config {
            file: Some(abs.clone()),
            ..Config::default()
        };
        let mut domains_set = false;
        let mut mail_auth = None;
        let rel = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        for (key, val) in &table {
            match key.as_str() {
                "hostname" => {
                    let h = string(val).ok_or_else(|| bad(key, "must be a string"))?;
                    if h.is_empty()
                        || !h
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
                    {
                        return Err(bad(key, "must be a host name (letters, digits, '.', '-')"));
                    }
                    c.hostname = h.to_string();
                }
                "domains" => {
                    let arr = val
                        .as_array()
                        .ok_or_else(|| bad(key, "must be a list of strings"))?;
                    let mut v = Vec::new();
                    for d in arr {
                        let d = string(d).ok_or_else(|| bad(key, "must be a list of strings"))?;
                        v.push(d.to_ascii_lowercase());
                    }
                    c.domains = v;
                    domains_set = true;
                }
                "spool" => c.spool = rel(path_str(val).ok_or_else(|| bad(key, "must be a path"))?),
                "mailbox" => {
                    let m = path_str(val).ok_or_else(|| bad(key, "must be a path"))?;
                    // Relative mailbox paths are relative to the user's home, not to this file.
                    c.mailbox = m.to_string();
                }
                "users" => {
                    c.users = Some(rel(path_str(val).ok_or_else(|| bad(key, "must be a path"))?))
                }
                "system_users" => {
                    c.system_users = val
                        .as_bool()
                        .ok_or_else(|| bad(key, "must be true or false"))?
                }
                "aliases" => {
                    let a = string(val).ok_or_else(|| bad(key, "must be a path or \"\""))?;
                    c.aliases = if a.is_empty() { None } else { Some(rel(a)) };
                }
                "relayhost" => {
                    let r = string(val)
                        .ok_or_else(|| bad(key, "must be a string like \"[host]:port\""))?;
                    c.relayhost = if r.is_empty() {
                        None
                    } else {
                        match parse_route(r) {
                            Ok(Route::Smtp { .. }) => Some(r.to_string()),
                            _ => return Err(bad(key, "must be a string like \"[host]:port\"")),
                        }
                    };
                }
                "log" => {
                    c.log = match string(val) {
                        Some("syslog") => LogSink::Syslog,
                        Some("stderr") => LogSink::Stderr,
                        _ => return Err(bad(key, "must be \"syslog\" or \"stderr\"")),
                    }
                }
                "libexec" => {
                    c.libexec = rel(path_str(val).ok_or_else(|| bad(key, "must be a path"))?)
                }
                "user" => {
                    let u = string(val).ok_or_else(|| bad(key, "must be a user name"))?;
                    if u.is_empty() || u.contains(['/', ':', '\0']) {
                        return Err(bad(key, "must be a user name"));
                    }
                    c.user = u.to_string();
                }
                "login_user" => {
                    let u = string(val).ok_or_else(|| bad(key, "must be a user name"))?;
                    if u.is_empty() || u.contains(['/', ':', '\0']) {
                        return Err(bad(key, "must be a user name"));
                    }
                    c.login_user = u.to_string();
                }
                "message_size_limit" => {
                    let n = val
                        .as_integer()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad(key, "must be a positive number of bytes"))?;
                    c.message_size_limit = n as u64;
                }
                "postmaster" => {
                    let p =
                        string(val).filter(|p| !p.is_empty() && !p.contains(['\r', '\n', '\0']));
                    c.postmaster = p.ok_or_else(|| bad(key, "must be an address"))?.to_string();
                }
                "queue" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [queue]"))?;
                    for (k, v) in t {
                        let full = format!("queue.{k}");
                        match k.as_str() {
                            "parallel" => {
                                let n = v.as_integer().filter(|n| (1..=1000).contains(n));
                                c.queue.parallel = n
                                    .ok_or_else(|| bad(&full, "must be a number from 1 to 1000"))?
                                    as usize;
                            }
                            "min_backoff" => {
                                c.queue.min_backoff = duration(v).map_err(|w| bad(&full, &w))?
                            }
                            "max_backoff" => {
                                c.queue.max_backoff = duration(v).map_err(|w| bad(&full, &w))?
                            }
                            "lifetime" => {
                                c.queue.lifetime = duration(v).map_err(|w| bad(&full, &w))?
                            }
                            "delay_warning" => {
                                c.queue.delay_warning = duration(v).map_err(|w| bad(&full, &w))?
                            }
                            "scan_interval" => {
                                c.queue.scan_interval = duration(v).map_err(|w| bad(&full, &w))?
                            }
                            "uid_max_messages" | "uid_max_bytes" => {
                                let n =
                                    v.as_integer().filter(|n| *n >= 0).ok_or_else(|| {
                                        bad(&full, "must be a number, 0 for no limit")
                                    })? as u64;
                                if k == "uid_max_messages" {
                                    c.queue.uid_max_messages = n;
                                } else {
                                    c.queue.uid_max_bytes = n;
                                }
                            }
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                    if c.queue.max_backoff < c.queue.min_backoff {
                        return Err(bad(
                            "queue.max_backoff",
                            "must not be less than queue.min_backoff",
                        ));
                    }
                }
                "local" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [local]"))?;
                    for (k, v) in t {
                        let full = format!("local.{k}");
                        match k.as_str() {
                            "command_time_limit" => {
                                c.local.command_time_limit = duration(v)
                                    .ok()
                                    .filter(|d| !d.is_zero())
                                    .ok_or_else(|| bad(&full, "must be a duration above 0"))?
                            }
                            "destination_concurrency" => {
                                let n = v.as_integer().filter(|n| (1..=1000).contains(n));
                                c.local.destination_concurrency =
                                    Some(n.ok_or_else(|| {
                                        bad(&full, "must be a number from 1 to 1000")
                                    })? as usize);
                            }
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                }
                "auth" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [auth]"))?;
                    for (k, v) in t {
                        let full = format!("auth.{k}");
                        match k.as_str() {
                            "max_failures" => {
                                let n = v.as_integer().filter(|n| (1..=20).contains(n));
                                c.auth_max_failures = n
                                    .ok_or_else(|| bad(&full, "must be a number from 1 to 20"))?
                                    as u32;
                            }
                            "allow_plaintext" => {
                                c.auth_allow_plaintext = v
                                    .as_bool()
                                    .ok_or_else(|| bad(&full, "must be true or false"))?;
                            }
                            "first_valid_uid" => {
                                let n =
                                    v.as_integer().filter(|n| (1..=u32::MAX as i64).contains(n));
                                c.auth_first_valid_uid = n.ok_or_else(|| {
                                    bad(&full, "must be a uid from 1 up (uid 0 never logs in)")
                                })? as u32;
                            }
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                }
                "proxy" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [proxy]"))?;
                    for (k, v) in t {
                        let full = format!("proxy.{k}");
                        match k.as_str() {
                            "trusted" => {
                                let arr = v.as_array().ok_or_else(|| {
                                    bad(&full, "must be a list of networks like \"10.0.0.0/8\"")
                                })?;
                                let mut nets = Vec::new();
                                for n in arr {
                                    let text = n.as_str().ok_or_else(|| {
                                        bad(&full, "must be a list of networks like \"10.0.0.0/8\"")
                                    })?;
                                    nets.push(text.parse().map_err(|e: String| bad(&full, &e))?);
                                }
                                c.proxy_trusted = nets;
                            }
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                }
                "sieve" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [sieve]"))?;
                    c.sieve = crate::sieveconf::parse(t, &|p: &str| rel(p))
                        .map_err(|(k, w)| bad(&k, &w))?;
                }
                "spam_header" => {
                    c.spam_header = string(val)
                        .and_then(crate::sieveconf::parse_spam_header)
                        .ok_or_else(|| bad(key, "must be a string like \"X-Spam: Yes\""))?;
                }
                "quota_full_tempfail" => {
                    c.quota_full_tempfail = val
                        .as_bool()
                        .ok_or_else(|| bad(key, "must be true or false"))?
                }
                "smtpd" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [smtpd]"))?;
                    for (k, v) in t {
                        let full = format!("smtpd.{k}");
                        let s = &mut c.smtpd;
                        match k.as_str() {
                            "max_recipients" => {
                                let n = v.as_integer().filter(|n| (1..=10_000).contains(n));
                                s.max_recipients = n
                                    .ok_or_else(|| bad(&full, "must be a number from 1 to 10000"))?
                                    as usize;
                            }
                            "max_errors" => {
                                let n = v.as_integer().filter(|n| (1..=1000).contains(n));
                                s.max_errors = n
                                    .ok_or_else(|| bad(&full, "must be a number from 1 to 1000"))?
                                    as u32;
                            }
                            "idle_timeout" | "session_timeout" => {
                                let d = duration(v)
                                    .and_then(|d| {
                                        if d.is_zero() {
                                            Err("must be more than 0".to_string())
                                        } else {
                                            Ok(d)
                                        }
                                    })
                                    .map_err(|w| bad(&full, &w))?;
                                if k == "idle_timeout" {
                                    s.idle_timeout = d;
                                } else {
                                    s.session_timeout = d;
                                }
                            }
                            "sender_check" => {
                                s.sender_check = v
                                    .as_bool()
                                    .ok_or_else(|| bad(&full, "must be true or false"))?;
                            }
                            "mail_auth" => {
                                mail_auth = Some(
                                    v.as_bool()
                                        .ok_or_else(|| bad(&full, "must be true or false"))?,
                                );
                            }
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                }
                "imap" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [imap]"))?;
                    for (k, v) in t {
                        let full = format!("imap.{k}");
                        match k.as_str() {
                            "separator" => {
                                c.imap_separator = match v.as_str() {
                                    Some(".") => '.',
                                    Some("/") => '/',
                                    _ => return Err(bad(&full, "must be \".\" or \"/\"")),
                                };
                            }
                            "folders" => {
                                let msg = "must be a list of top-level folder names";
                                let arr = v.as_array().ok_or_else(|| bad(&full, msg))?;
                                let mut names = Vec::new();
                                for n in arr {
                                    let n = string(n).ok_or_else(|| bad(&full, msg))?;
                                    // Plain top-level names: no hierarchy, nothing
                                    // a path or a LIST pattern would read.
                                    if n.is_empty()
                                        || n.len() > 64
                                        || n.eq_ignore_ascii_case("INBOX")
                                        || !n.bytes().all(|b| {
                                            (0x20..0x7f).contains(&b) && !b"./\\%*&~\"".contains(&b)
                                        })
                                    {
                                        return Err(bad(&full, msg));
                                    }
                                    names.push(n.to_string());
                                }
                                c.imap_folders = names;
                            }
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                }
                "tls" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [tls]"))?;
                    for (k, v) in t {
                        let full = format!("tls.{k}");
                        let p = path_str(v).ok_or_else(|| bad(&full, "must be a path"))?;
                        match k.as_str() {
                            "cert" => c.tls_cert = Some(rel(p)),
                            "key" => c.tls_key = Some(rel(p)),
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                }
                "resolver" => {
                    let r = string(val)
                        .and_then(|r| {
                            r.parse::<std::net::SocketAddr>().ok().or_else(|| {
                                r.parse::<std::net::IpAddr>()
                                    .ok()
                                    .map(|ip| std::net::SocketAddr::new(ip, 53))
                            })
                        })
                        .ok_or_else(|| {
                            bad(key, "must be an address like \"127.0.0.1:5353\" or \"::1\"")
                        })?;
                    c.remote.resolver = Some(r);
                }
                "remote_port" => {
                    c.remote.port = val
                        .as_integer()
                        .filter(|n| (1..=65535).contains(n))
                        .ok_or_else(|| bad(key, "must be a port number from 1 to 65535"))?
                        as u16;
                }
                "relay" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [relay]"))?;
                    for (k, v) in t {
                        let full = format!("relay.{k}");
                        match k.as_str() {
                            "user" => {
                                let u = string(v)
                                    .filter(|u| !u.is_empty() && !u.contains(['\r', '\n', '\0']));
                                c.remote.relay_user = Some(
                                    u.ok_or_else(|| bad(&full, "must be a user name"))?.into(),
                                );
                            }
                            "password_file" => {
                                c.remote.relay_password_file = Some(rel(
                                    path_str(v).ok_or_else(|| bad(&full, "must be a path"))?
                                ))
                            }
                            "tls_required" => {
                                c.remote.relay_tls_required = v
                                    .as_bool()
                                    .ok_or_else(|| bad(&full, "must be true or false"))?
                            }
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                }
                "smtp" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [smtp]"))?;
                    for (k, v) in t {
                        let full = format!("smtp.{k}");
                        match k.as_str() {
                            "tls_required" => {
                                c.remote.tls_required = v
                                    .as_bool()
                                    .ok_or_else(|| bad(&full, "must be true or false"))?
                            }
                            "ca_file" => {
                                c.remote.ca_file = Some(rel(
                                    path_str(v).ok_or_else(|| bad(&full, "must be a path"))?
                                ))
                            }
                            "connect_timeout" => {
                                c.remote.connect_timeout = duration(v)
                                    .ok()
                                    .filter(|d| !d.is_zero())
                                    .ok_or_else(|| bad(&full, "must be a duration above 0"))?
                            }
                            "message_timeout" => {
                                c.remote.message_timeout = duration(v)
                                    .ok()
                                    .filter(|d| !d.is_zero())
                                    .ok_or_else(|| bad(&full, "must be a duration above 0"))?
                            }
                            "destination_concurrency" => {
                                let n = v.as_integer().filter(|n| (1..=1000).contains(n));
                                c.remote.destination_concurrency = n
                                    .ok_or_else(|| bad(&full, "must be a number from 1 to 1000"))?
                                    as usize;
                            }
                            "reply_timeout" => {
                                c.remote.reply_timeout = Some(
                                    duration(v)
                                        .ok()
                                        .filter(|d| !d.is_zero())
                                        .ok_or_else(|| bad(&full, "must be a duration above 0"))?,
                                )
                            }
                            _ => return Err(bad(&full, "unknown key")),
                        }
                    }
                }
                "transport" => {
                    let t = val
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table [transport]"))?;
                    for (k, v) in t {
                        let full = format!("transport.\"{k}\"");
                        let r = string(v).ok_or_else(|| bad(&full, "must be a string"))?;
                        let r = parse_route(r).map_err(|w| bad(&full, &w))?;
                        c.remote.transport.push((k.to_ascii_lowercase(), r));
                    }
                }
                "dkim" => {
                    c.mailauth.dkim_keys = crate::authconf::parse_dkim(val, &|p| rel(p))
                        .map_err(|(k, w)| bad(&k, &w))?;
                }
                "dmarc" | "spf" => {
                    let known = if key == "dmarc" {
                        "enforce"
                    } else {
                        "reject_fail"
                    };
                    for (k, on) in crate::authconf::parse_bool_table(key, val, &[known])
                        .map_err(|(k, w)| bad(&k, &w))?
                    {
                        match k.as_str() {
                            "enforce" => c.mailauth.dmarc_enforce = on,
                            _ => c.mailauth.spf_reject_fail = on,
                        }
                    }
                }
                _ => return Err(bad(key, "unknown key")),
            }
        }
        if let Some(on) = mail_auth {
            c.mailauth.checks = on;
        }
        if !domains_set {
            c.domains = vec![c.hostname.to_ascii_lowercase(), "localhost".to_string()];
        }
        Ok(c)
    }

    /// is_spam_field - whether a header field (name and unfolded value)
    /// is the `spam_header` line: the name without regard to case, the
    /// value trimmed, without regard to case.
    pub fn is_spam_field(&self, name: &str, value: &str) -> bool {
        name.trim().eq_ignore_ascii_case(&self.spam_header.0)
            && value.trim().eq_ignore_ascii_case(&self.spam_header.1)
    }

    /// local_concurrency - deliveries at once to one local recipient:
    /// `local.destination_concurrency`, by default half of `queue.parallel`,
    /// so that one user's slow commands leave the other half for everyone else.
    pub fn local_concurrency(&self) -> usize {
        self.local
            .destination_concurrency
            .unwrap_or(self.queue.parallel / 2)
            .max(1)
    }

    /// is_local_domain - whether mail for `domain` is delivered here
    /// (`domains`, the hostname, or a `[transport]` route of "local").
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        self.domains.iter().any(|x| x.eq_ignore_ascii_case(d))
            || self.hostname.eq_ignore_ascii_case(d)
            || self.transport_for(d) == Some(&Route::Local)
    }

    /// transport_for - the `[transport]` route of `domain`: the domain
    /// itself first, then ".parent" entries from the nearest up.
    pub fn transport_for(&self, domain: &str) -> Option<&Route> {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        let find = |k: &str| {
            self.remote
                .transport
                .iter()
                .find(|(x, _)| x == k)
                .map(|(_, r)| r)
        };
        if let Some(r) = find(&d) {
            return Some(r);
        }
        let mut rest = d.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(r) = find(&format!(".{parent}")) {
                return Some(r);
            }
            rest = parent;
        }
        None
    }

    /// mail_account - the `user` account that programs started as root run as.
    pub fn mail_account(&self) -> Result<posthorn_sys::privs::Account, Exit> {
        match posthorn_sys::privs::lookup_user(&self.user) {
            Ok(Some(a)) if a.uid != 0 => Ok(a),
            Ok(Some(_)) => Err(Exit::new(
                exit::CONFIG,
                format!("user \"{}\" (the `user` key) must not be root", self.user),
            )),
            Ok(None) => Err(Exit::new(
                exit::CONFIG,
                format!(
                    "user \"{}\" (the `user` key) does not exist: create it, or set `user`",
                    self.user
                ),
            )),
            Err(e) => Err(Exit::from_io(
                format!("looking up user \"{}\"", self.user),
                &e,
            )),
        }
    }

    /// login_account - the `login_user` account pop3d's and imapd's
    /// pre-login processes run as when started as root.
    pub fn login_account(&self) -> Result<posthorn_sys::privs::Account, Exit> {
        match posthorn_sys::privs::lookup_user(&self.login_user) {
            Ok(Some(a)) if a.uid != 0 && a.gid != 0 => Ok(a),
            Ok(Some(_)) => Err(Exit::new(
                exit::CONFIG,
                format!(
                    "user \"{}\" (the `login_user` key) must not be root or in group 0",
                    self.login_user
                ),
            )),
            Ok(None) => Err(Exit::new(
                exit::CONFIG,
                format!(
                    "user \"{}\" (the `login_user` key) does not exist: create it (useradd --system --no-create-home --shell /usr/sbin/nologin {}), or set `login_user`",
                    self.login_user, self.login_user
                ),
            )),
            Err(e) => Err(Exit::from_io(
                format!("looking up user \"{}\"", self.login_user),
                &e,
            )),
        }
    }

    /// hold_secrets - open the users file now, while privileged, so that
    /// recipient lookups keep working after root is given up for good. A
    /// file that is missing is simply not held. (Passwords are checked by
    /// a process of their own, which reads the file and /etc/shadow then.)
    pub fn hold_secrets(&mut self) -> Result<(), Exit> {
        if let Some(u) = &self.users {
            self.held.users = match std::fs::File::open(u) {
                Ok(f) => Some(std::sync::Arc::new(f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Exit::from_io(format!("opening {}", u.display()), &e)),
            };
        }
        Ok(())
    }

    /// helper - the path of a helper program such as `enqueue` or `deliver`.
    pub fn helper(&self, name: &str) -> PathBuf {
        self.libexec.join(name)
    }

    /// args - the `-C FILE` arguments that make a child read this same file.
    pub fn args(&self) -> Vec<std::ffi::OsString> {
        match &self.file {
            Some(f) => vec!["-C".into(), f.clone().into_os_string()],
            None => Vec::new(),
        }
    }
}

fn string(v: &toml::Value) -> Option<&str> {
    v.as_str()
}

fn path_str(v: &toml::Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty() && !s.contains('\0'))
}

/// duration - seconds as a number, or a string with a unit: "90s", "5m", "2h", "5d".
pub(crate) fn duration(v: &toml::Value) -> Result<Duration, String> {
    const WHAT: &str = "must be seconds or a duration like \"300s\", \"5m\", \"1h\", \"5d\"";
    if let Some(n) = v.as_integer() {
        return if n >= 0 {
            Ok(Duration::from_secs(n as u64))
        } else {
            Err(WHAT.into())
        };
    }
    let s = v.as_str().ok_or_else(|| WHAT.to_string())?.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| WHAT.to_string())?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(WHAT.into()),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| WHAT.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, Exit> {
        Config::parse(t, Path::new("/inst/posthorn.toml"))
    }

    #[test]
    fn spam_header_names_a_field_and_value_compared_ignoring_case() {
        let c = Config::parse(
            "spam_header = \"X-Spam-Flag: YES\"\n",
            Path::new("/x/p.toml"),
        );
        let c = c.unwrap();
        assert_eq!(c.spam_header, ("X-Spam-Flag".into(), "YES".into()));
        assert!(c.is_spam_field("x-spam-flag", " yes"));
        assert!(!c.is_spam_field("x-spam-flag", "no"));
        assert!(Config::parse("spam_header = \"nocolon\"\n", Path::new("/x/p.toml")).is_err());
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let c = parse("spool = \"spool\"\nusers = \"etc/users\"\naliases = \"/etc/aliases\"\n")
            .unwrap();
        assert_eq!(c.spool, PathBuf::from("/inst/spool"));
        assert_eq!(c.users, Some(PathBuf::from("/inst/etc/users")));
        assert_eq!(c.aliases, Some(PathBuf::from("/etc/aliases")));
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = parse("spoool = \"x\"\n").unwrap_err();
        assert_eq!(e.code, exit::CONFIG);
        assert_eq!(e.message, "/inst/posthorn.toml: spoool: unknown key");
        let e = parse("[queue]\nparalel = 3\n").unwrap_err();
        assert_eq!(e.message, "/inst/posthorn.toml: queue.paralel: unknown key");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let e = parse("log = \"file\"\n").unwrap_err();
        assert!(
            e.message.contains("log: must be \"syslog\" or \"stderr\""),
            "{}",
            e.message
        );
        let e = parse("[queue]\nlifetime = \"5 years\"\n").unwrap_err();
        assert!(e.message.contains("queue.lifetime"), "{}", e.message);
        let e = parse("system_users = 1\n").unwrap_err();
        assert!(e.message.contains("system_users: must be true or false"));
        let e = parse("hostname = [\n").unwrap_err();
        assert!(
            e.message.starts_with("/inst/posthorn.toml:1:"),
            "{}",
            e.message
        );
    }

    #[test]
    fn local_delivery_limits() {
        let d = parse("").unwrap();
        assert_eq!(d.local.command_time_limit, Duration::from_secs(1000));
        assert_eq!(d.local_concurrency(), 4, "half of 8");
        assert_eq!(
            parse("[queue]\nparallel = 1\n")
                .unwrap()
                .local_concurrency(),
            1
        );
        let c =
            parse("[local]\ncommand_time_limit = \"2s\"\ndestination_concurrency = 3\n").unwrap();
        assert_eq!(
            (c.local.command_time_limit, c.local_concurrency()),
            (Duration::from_secs(2), 3)
        );
        let e = parse("[local]\ncommand_time_limit = 0\n").unwrap_err();
        assert!(
            e.message.contains("local.command_time_limit"),
            "{}",
            e.message
        );
    }

    #[test]
    fn per_uid_spool_limits_are_off_unless_set() {
        let d = parse("").unwrap();
        assert_eq!((d.queue.uid_max_messages, d.queue.uid_max_bytes), (0, 0));
        let c = parse("[queue]\nuid_max_messages = 100\nuid_max_bytes = 50000000\n").unwrap();
        assert_eq!(
            (c.queue.uid_max_messages, c.queue.uid_max_bytes),
            (100, 50_000_000)
        );
        let e = parse("[queue]\nuid_max_bytes = -1\n").unwrap_err();
        assert!(
            e.message.contains("queue.uid_max_bytes: must be a number"),
            "{}",
            e.message
        );
    }

    #[test]
    fn auth_and_proxy() {
        let c = parse("[auth]\nmax_failures = 5\nallow_plaintext = true\n[proxy]\ntrusted = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        assert_eq!(
            (
                c.auth_max_failures,
                c.auth_allow_plaintext,
                c.proxy_trusted.len()
            ),
            (5, true, 2)
        );
        assert!(c.proxy_trusted[0].contains("10.9.8.7".parse().unwrap()));
        let e = parse("[proxy]\ntrusted = [\"10.0.0.0/40\"]\n").unwrap_err();
        assert!(
            e.message.contains("proxy.trusted: bad prefix length"),
            "{}",
            e.message
        );
        let d = parse("").unwrap();
        assert_eq!((d.auth_max_failures, d.auth_allow_plaintext), (3, false));
        assert_eq!(d.auth_first_valid_uid, 1000);
        assert_eq!(d.login_user, "posthorn-login");
        let c = parse("login_user = \"imaplogin\"\n[auth]\nfirst_valid_uid = 500\n").unwrap();
        assert_eq!(
            (c.login_user.as_str(), c.auth_first_valid_uid),
            ("imaplogin", 500)
        );
        // Root can never be let in by configuration.
        let e = parse("[auth]\nfirst_valid_uid = 0\n").unwrap_err();
        assert!(e.message.contains("auth.first_valid_uid"), "{}", e.message);
        assert!(parse("login_user = \"a/b\"\n").is_err());
    }

    #[test]
    fn imap_folders() {
        assert_eq!(
            parse("").unwrap().imap_folders,
            ["Drafts", "Sent", "Junk", "Trash", "Archive"]
        );
        assert!(
            parse("[imap]\nfolders = []\n")
                .unwrap()
                .imap_folders
                .is_empty()
        );
        assert_eq!(
            parse("[imap]\nfolders = [\"Sent Items\"]\n")
                .unwrap()
                .imap_folders,
            ["Sent Items"]
        );
        for bad in ["[\"a.b\"]", "[\"INBOX\"]", "[\"\"]", "\"Sent\"", "[1]"] {
            let e = parse(&format!("[imap]\nfolders = {bad}\n")).unwrap_err();
            assert!(e.message.contains("imap.folders: must be"), "{bad}");
        }
    }

    #[test]
    fn sieve_keys() {
        let c = parse("spam_header = \"X-Spam-Flag: YES\"\n[sieve]\nscript = \"~/active.sieve\"\nbefore = [\"sieve/before.d\"]\nafter = [\"/etc/a.sieve\"]\nredirect_sender = \"<bounces@example.org>\"\nspamtest_header = \"X-Spam-Score\"\nspamtest_max = 5\nvacation_min_period = \"1h\"\n").unwrap();
        assert_eq!(
            c.spam_header,
            ("X-Spam-Flag".to_string(), "YES".to_string())
        );
        assert_eq!(c.sieve.script, "~/active.sieve");
        assert_eq!(c.sieve.before, [PathBuf::from("/inst/sieve/before.d")]);
        assert_eq!(c.sieve.after, [PathBuf::from("/etc/a.sieve")]);
        assert_eq!(
            c.sieve.redirect_sender,
            crate::sieveconf::RedirectSender::Address("bounces@example.org".into())
        );
        assert_eq!(c.sieve.spamtest_max, 5.0);
        assert_eq!(c.sieve.vacation_min, Duration::from_secs(3600));
        let d = parse("").unwrap();
        assert_eq!(d.spam_header, ("X-Spam".to_string(), "Yes".to_string()));
        assert_eq!(d.sieve.script, "~/.dovecot.sieve");
        for bad in [
            "[sieve]\nbefore = \"x\"\n",
            "[sieve]\nredirect_sender = \"me\"\n",
            "[sieve]\nnope = 1\n",
            "spam_header = \"X-Spam\"\n",
            "[sieve]\nvacation_min_period = \"90d\"\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, exit::CONFIG, "{bad}");
        }
    }

    #[test]
    fn imap_separator() {
        assert_eq!(parse("").unwrap().imap_separator, '.');
        assert_eq!(
            parse("[imap]\nseparator = \"/\"\n").unwrap().imap_separator,
            '/'
        );
        let e = parse("[imap]\nseparator = \":\"\n").unwrap_err();
        assert_eq!(e.code, exit::CONFIG);
        assert!(
            e.message.contains("imap.separator: must be"),
            "{}",
            e.message
        );
    }

    #[test]
    fn durations_and_domains() {
        let c = parse("hostname = \"Mx.Example.org\"\n[queue]\nmin_backoff = \"1m\"\nmax_backoff = 120\nlifetime = \"5d\"\n").unwrap();
        assert_eq!(c.queue.min_backoff, Duration::from_secs(60));
        assert_eq!(c.queue.max_backoff, Duration::from_secs(120));
        assert_eq!(c.queue.lifetime, Duration::from_secs(432000));
        assert_eq!(
            c.domains,
            vec!["mx.example.org".to_string(), "localhost".to_string()]
        );
        assert!(c.is_local_domain("MX.example.org."));
        assert!(!c.is_local_domain("example.org"));
    }

    #[test]
    fn routes_and_remote_keys() {
        let smtp = |h: &str, p: Option<u16>, mx: bool| Route::Smtp {
            host: h.into(),
            port: p,
            mx,
        };
        for (text, want) in [
            ("local", Ok(Route::Local)),
            (
                "[Relay.Example]:587",
                Ok(smtp("relay.example", Some(587), false)),
            ),
            ("[127.0.0.1]", Ok(smtp("127.0.0.1", None, false))),
            ("[::1]:2525", Ok(smtp("::1", Some(2525), false))),
            ("mx.example:26", Ok(smtp("mx.example", Some(26), true))),
            ("example.org", Ok(smtp("example.org", None, true))),
            ("[relay]:0", Err(())),
            ("[relay]x", Err(())),
            ("re lay", Err(())),
            ("", Err(())),
        ] {
            assert_eq!(parse_route(text).map_err(|_| ()), want, "{text}");
        }
        let c = parse("relayhost = \"[smart.example]:465\"\nresolver = \"127.0.0.1:5353\"\nremote_port = 2525\n[relay]\nuser = \"ann\"\npassword_file = \"pw\"\n[smtp]\nca_file = \"ca.pem\"\nreply_timeout = \"5s\"\n[transport]\n\"lan.example\" = \"local\"\n\".corp.example\" = \"[10.0.0.1]:25\"\n").unwrap();
        assert_eq!(c.remote.resolver, Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(c.remote.port, 2525);
        assert_eq!(
            c.remote.relay_password_file,
            Some(PathBuf::from("/inst/pw"))
        );
        assert_eq!(c.remote.ca_file, Some(PathBuf::from("/inst/ca.pem")));
        assert_eq!(c.remote.reply_timeout, Some(Duration::from_secs(5)));
        assert!(c.is_local_domain("LAN.example"));
        assert_eq!(
            c.transport_for("a.b.corp.example"),
            Some(&smtp("10.0.0.1", Some(25), false))
        );
        assert_eq!(c.transport_for("corp.example"), None);
        let e = parse("relayhost = \"[x\"\n").unwrap_err();
        assert!(e.message.contains("relayhost: must be"), "{}", e.message);
        let e = parse("[transport]\n\"x.example\" = \"[a b]\"\n").unwrap_err();
        assert!(
            e.message.contains("transport.\"x.example\": must be"),
            "{}",
            e.message
        );
        let e = parse("resolver = \"dns\"\n").unwrap_err();
        assert!(
            e.message.contains("resolver: must be an address"),
            "{}",
            e.message
        );
    }

    #[test]
    fn missing_default_file_means_defaults_but_named_file_must_exist() {
        let e = Config::load(&Source::Named(PathBuf::from("/nonexistent/p.toml"))).unwrap_err();
        assert_eq!(e.code, exit::CONFIG);
        assert!(e.message.contains("/nonexistent/p.toml"));
    }
}
