//! sieveconf - the `[sieve]` table of posthorn.toml: where deliver finds
//! the scripts it runs (Pigeonhole's sieve, sieve_dir, sieve_before,
//! sieve_after, sieve_global), and the policies of their actions.

use std::path::PathBuf;
use std::time::Duration;

/// Which envelope sender a redirected message gets (Pigeonhole's
/// sieve_redirect_envelope_from). RFC 5228 §4.2: a message with the
/// null sender is always redirected with the null sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectSender {
    /// The original envelope sender (the default).
    Sender,
    /// The recipient whose script redirects.
    Recipient,
    /// The original recipient, before aliases.
    OrigRecipient,
    /// The postmaster address.
    Postmaster,
    /// This address.
    Address(String),
}

/// `[sieve]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SieveConfig {
    /// The user's active script; `~` is the home. Empty: none.
    pub script: String,
    /// The user's script directory (include :personal, ManageSieve).
    pub dir: String,
    /// Scripts run before and after the user's: files, or directories
    /// whose `*.sieve` files run in name order.
    pub before: Vec<PathBuf>,
    pub after: Vec<PathBuf>,
    /// Where include :global finds scripts.
    pub global: Option<PathBuf>,
    pub redirect_sender: RedirectSender,
    /// spamtest and virustest read their score from these fields.
    pub spamtest_header: Option<String>,
    pub spamtest_max: f64,
    pub virustest_header: Option<String>,
    /// Vacation reply periods: default, shortest, longest.
    pub vacation_default: Duration,
    pub vacation_min: Duration,
    pub vacation_max: Duration,
    /// CPU time one delivery's scripts may use.
    pub max_cpu_time: Duration,
    /// Mail that `spam_header` marks goes to Junk when no script filed
    /// it elsewhere: the built-in spam-to-junk script runs after all.
    pub spam_to_junk: bool,
}

impl Default for SieveConfig {
    fn default() -> Self {
        SieveConfig {
            script: "~/.dovecot.sieve".into(),
            dir: "~/sieve".into(),
            before: Vec::new(),
            after: Vec::new(),
            global: None,
            redirect_sender: RedirectSender::Sender,
            spamtest_header: None,
            spamtest_max: 15.0,
            virustest_header: None,
            vacation_default: Duration::from_secs(7 * 86400),
            vacation_min: Duration::from_secs(86400),
            vacation_max: Duration::from_secs(60 * 86400),
            max_cpu_time: Duration::from_secs(30),
            spam_to_junk: true,
        }
    }
}

/// parse - the `[sieve]` table; `rel` makes a path relative to the
/// configuration file's folder; errors are "key: what is wrong".
pub fn parse(
    t: &toml::Table,
    rel: &dyn Fn(&str) -> PathBuf,
) -> Result<SieveConfig, (String, String)> {
    let mut c = SieveConfig::default();
    for (k, v) in t {
        let full = format!("sieve.{k}");
        let bad = |w: &str| (full.clone(), w.to_string());
        let string = || {
            v.as_str()
                .filter(|s| !s.contains('\0'))
                .ok_or_else(|| bad("must be a string"))
        };
        let paths = || -> Result<Vec<PathBuf>, (String, String)> {
            let arr = v.as_array().ok_or_else(|| bad("must be a list of paths"))?;
            arr.iter()
                .map(|p| {
                    p.as_str()
                        .filter(|s| !s.is_empty() && !s.contains('\0'))
                        .map(rel)
                        .ok_or_else(|| bad("must be a list of paths"))
                })
                .collect()
        };
        let dur = || {
            crate::config::duration(v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| bad("must be a duration above 0 like \"1d\""))
        };
        match k.as_str() {
            "script" => c.script = string()?.to_string(),
            "dir" => {
                let d = string()?;
                if d.is_empty() {
                    return Err(bad("must be a directory"));
                }
                c.dir = d.to_string();
            }
            "before" => c.before = paths()?,
            "after" => c.after = paths()?,
            "global" => {
                let g = string()?;
                c.global = if g.is_empty() { None } else { Some(rel(g)) };
            }
            "redirect_sender" => {
                let s = string()?;
                c.redirect_sender = match s {
                    "sender" => RedirectSender::Sender,
                    "recipient" => RedirectSender::Recipient,
                    "orig_recipient" => RedirectSender::OrigRecipient,
                    "postmaster" => RedirectSender::Postmaster,
                    a if a.starts_with('<')
                        && a.ends_with('>')
                        && a.contains('@')
                        && !a.contains(['\r', '\n', ' ']) =>
                    {
                        RedirectSender::Address(a[1..a.len() - 1].to_string())
                    }
                    _ => {
                        return Err(bad(
                            "must be \"sender\", \"recipient\", \"orig_recipient\", \"postmaster\" or \"<address>\"",
                        ));
                    }
                };
            }
            "spamtest_header" | "virustest_header" => {
                let h = string()?;
                let ok = !h.is_empty() && h.bytes().all(|b| (33..=126).contains(&b) && b != b':');
                if !ok {
                    return Err(bad("must be a header field name"));
                }
                if k == "spamtest_header" {
                    c.spamtest_header = Some(h.to_string());
                } else {
                    c.virustest_header = Some(h.to_string());
                }
            }
            "spamtest_max" => {
                let n = v
                    .as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .filter(|n| *n > 0.0)
                    .ok_or_else(|| bad("must be a number above 0"))?;
                c.spamtest_max = n;
            }
            "vacation_default_period" => c.vacation_default = dur()?,
            "vacation_min_period" => c.vacation_min = dur()?,
            "vacation_max_period" => c.vacation_max = dur()?,
            "max_cpu_time" => c.max_cpu_time = dur()?,
            "spam_to_junk" => {
                c.spam_to_junk = v.as_bool().ok_or_else(|| bad("must be true or false"))?
            }
            _ => return Err(bad("unknown key")),
        }
    }
    if c.vacation_min > c.vacation_max {
        return Err((
            "sieve.vacation_min_period".into(),
            "must not be more than sieve.vacation_max_period".into(),
        ));
    }
    Ok(c)
}

/// parse_spam_header - `spam_header`: "Name: value".
pub fn parse_spam_header(s: &str) -> Option<(String, String)> {
    let (n, v) = s.split_once(':')?;
    let n = n.trim();
    let v = v.trim();
    let ok = !n.is_empty()
        && n.bytes().all(|b| (33..=126).contains(&b))
        && !v.is_empty()
        && !v.contains(['\r', '\n']);
    ok.then(|| (n.to_string(), v.to_string()))
}
