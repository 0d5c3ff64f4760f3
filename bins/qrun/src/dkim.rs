//! dkim - DKIM signing of outgoing mail (RFC 6376, RFC 8463), once per
//! message, before its first remote delivery attempt.
//!
//! Who signs and holds the keys: qrun. Started as root it reads every
//! `[[dkim.key]]` file before it becomes the `user` account, so a key
//! file can be root's alone (mode 0600): smtpd, which runs as that same
//! account and reads strangers' bytes, cannot open it, and cannot read
//! qrun's memory either (qrun keeps root as its saved uid and changed
//! credentials, which makes it non-dumpable and not ptrace-able by the
//! account). Without root (tests, `make run`) qrun reads the files as
//! itself.
//!
//! What is signed (Postfix with OpenDKIM's usual setup): mail submitted
//! here (sendmail, SMTP submission after AUTH, `smtpd --local`) and the
//! bounces qrun writes, when the From: domain, or the nearest parent
//! domain, has keys (OpenDKIM's SigningTable with SubDomains); every key
//! of that domain signs (an Ed25519 and an RSA key: dual signing). Mail
//! from unauthenticated SMTP clients (the envelope's X record) is never
//! signed, not even when an alias forwards it: it is not ours to vouch
//! for.
//!
//! Made once: the fields go to spool/dkim/ID (written to a temporary
//! name, fsynced, renamed, directory fsynced) before the first attempt,
//! and every retry sends the very same fields. The message is signed as
//! remote(8) will send it (CRLF, long lines broken), so remote's folding
//! does not break the signature.

use posthorn_mail::Config;
use posthorn_mail::authconf::DkimKey;
use posthorn_mailauth::canon::Canon;
use posthorn_mailauth::dkim::{self, Signer};
use posthorn_mailauth::header;
use posthorn_mailauth::key::PrivateKey;
use posthorn_spool::qfile::QueueFile;
use posthorn_spool::{QueueId, Spool};
use posthorn_sys::{info, warning};
use std::io::{Read, Seek, SeekFrom, Write};

/// Longest signature file read back.
const MAX_FIELDS: u64 = 64 * 1024;

/// The configured keys, loaded at start.
#[derive(Debug, Default)]
pub struct Keys {
    keys: Vec<(DkimKey, Result<PrivateKey, String>)>,
}

impl Keys {
    /// load - read every key file now. A key that cannot be read is kept
    /// as its error: mail that needs it is deferred, never sent unsigned.
    pub fn load(cfg: &Config) -> Keys {
        let mut keys = Vec::new();
        for k in &cfg.mailauth.dkim_keys {
            let r = read_key(k);
            if let Err(e) = &r {
                warning!(
                    "DKIM key {} (s={}, d={}): {e}",
                    k.file.display(),
                    k.selector,
                    k.domain
                );
            }
            keys.push((k.clone(), r));
        }
        Keys { keys }
    }

    /// first_error - the first key that could not be loaded.
    pub fn first_error(&self) -> Option<String> {
        self.keys.iter().find_map(|(k, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("DKIM key {}: {e}", k.file.display()))
        })
    }

    /// for_domain - the keys for a From: domain: its own, else those of
    /// its nearest parent that has any.
    fn for_domain(&self, domain: &str) -> Vec<&(DkimKey, Result<PrivateKey, String>)> {
        let mut d = domain.trim_end_matches('.').to_ascii_lowercase();
        loop {
            let v: Vec<_> = self.keys.iter().filter(|(k, _)| k.domain == d).collect();
            if !v.is_empty() {
                return v;
            }
            match d.split_once('.') {
                Some((_, parent)) if parent.contains('.') => d = parent.to_string(),
                _ => return Vec::new(),
            }
        }
    }
}

/// read_key - one PEM file; a file others may read is used, with a warning.
fn read_key(k: &DkimKey) -> Result<PrivateKey, String> {
    use std::os::unix::fs::MetadataExt;
    let f = posthorn_sys::fsio::open_read(&k.file).map_err(|e| e.to_string())?;
    if let Ok(m) = f.metadata()
        && m.mode() & 0o077 != 0
    {
        warning!(
            "DKIM key {} may be read by others than its owner (mode {:o}): chmod 600 it",
            k.file.display(),
            m.mode() & 0o777
        );
    }
    let mut pem = Vec::new();
    f.take(1 << 20)
        .read_to_end(&mut pem)
        .map_err(|e| e.to_string())?;
    PrivateKey::from_pem(&pem)
}

/// fields - the DKIM-Signature fields for message `id`: the ones made
/// before, else new ones (stored durably first), else none. Err is a
/// reason to defer the remote deliveries.
pub fn fields(
    keys: &Keys,
    spool: &Spool,
    id: &QueueId,
    q: &QueueFile,
    f: &mut std::fs::File,
) -> Result<Vec<u8>, String> {
    if q.envelope.external || keys.keys.is_empty() {
        return Ok(Vec::new());
    }
    let path = spool.dkim_file(id);
    match std::fs::File::open(&path) {
        Ok(sf) => {
            let mut v = Vec::new();
            sf.take(MAX_FIELDS)
                .read_to_end(&mut v)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            return Ok(v);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    }
    let mut msg = Vec::new();
    f.seek(SeekFrom::Start(q.msg_offset))
        .and_then(|_| f.take(q.msg_size).read_to_end(&mut msg))
        .map_err(|e| format!("reading the queue file: {e}"))?;
    let (hdr, _) = header::split(&msg);
    let froms: Vec<_> = hdr.iter().filter(|h| h.is("from")).collect();
    // One From: with one domain, or nothing is signed (RFC 6376 5.3).
    let [from] = froms.as_slice() else {
        return Ok(Vec::new());
    };
    let Ok(domains) = header::from_domains(&from.text()) else {
        return Ok(Vec::new());
    };
    if domains.iter().any(|d| *d != domains[0]) {
        return Ok(Vec::new());
    }
    let chosen = keys.for_domain(&domains[0]);
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let wire = posthorn_remote::data::as_sent(&msg);
    let now = posthorn_mail::date::unix_now();
    let mut out = String::new();
    let mut names = Vec::new();
    for (k, key) in chosen {
        let key = key
            .as_ref()
            .map_err(|e| format!("DKIM key {} cannot be used: {e}", k.file.display()))?;
        let canon = |relaxed| {
            if relaxed {
                Canon::Relaxed
            } else {
                Canon::Simple
            }
        };
        let s = Signer {
            domain: &k.domain,
            selector: &k.selector,
            key,
            header_canon: canon(k.header_relaxed),
            body_canon: canon(k.body_relaxed),
            expire: k.expire.map(|d| d.as_secs()),
        };
        out.push_str(&dkim::sign(&wire, &s, now)?);
        names.push(format!(
            "s={}, d={}, a={}",
            k.selector,
            k.domain,
            key.algorithm().name()
        ));
    }
    store(spool, &path, out.as_bytes()).map_err(|e| format!("storing {}: {e}", path.display()))?;
    for n in names {
        info!("{id}: DKIM-Signature field added ({n})");
    }
    Ok(out.into_bytes())
}

/// store - write the fields durably: temporary name, fsync, rename,
/// directory fsync (a crash leaves the old state or the new, never half).
fn store(spool: &Spool, path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let dir = spool.dkim();
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    posthorn_sys::fsio::fsync_dir(&dir)
}
