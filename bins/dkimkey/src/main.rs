//! dkimkey - make a DKIM signing key and print the DNS TXT record to
//! publish for it, as opendkim-genkey and rspamadm dkim_keygen do; or,
//! with -p, print the record of a key that exists. See dkimkey(8).
//!
//! Ed25519 keys are made here (ring); RSA keys by `openssl genpkey`, as
//! opendkim-genkey does (ring cannot make RSA keys), then read back and
//! checked like any key qrun will load. The key file is created new, mode
//! 0600, never over an existing file.

#![forbid(unsafe_code)]

use clap::Parser;
use posthorn_mailauth::key::{self, PrivateKey};
use posthorn_sys::exit::{self, Exit};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Command line, as in dkimkey(8).
#[derive(Parser, Debug)]
#[command(
    name = "dkimkey",
    about = "Make a DKIM signing key and print its DNS record",
    disable_version_flag = true,
    override_usage = "dkimkey [-a ed25519|rsa] [-b bits] -d domain -s selector file\n       dkimkey -p -d domain -s selector file"
)]
struct Args {
    /// Key type: ed25519 (RFC 8463) or rsa.
    #[arg(short = 'a', value_name = "TYPE", default_value = "ed25519")]
    algorithm: String,
    /// RSA key size: 2048 to 4096 bits.
    #[arg(short = 'b', value_name = "BITS", default_value_t = 2048)]
    bits: u32,
    /// The signing domain (d=).
    #[arg(short = 'd', value_name = "DOMAIN")]
    domain: String,
    /// The selector (s=).
    #[arg(short = 's', value_name = "SELECTOR")]
    selector: String,
    /// Print the record of the existing key in FILE; make nothing.
    #[arg(short = 'p')]
    print: bool,
    /// The private key's PEM file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

fn main() -> ExitCode {
    posthorn_sys::fsio::harden(0o077);
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.kind() == clap::error::ErrorKind::DisplayHelp {
                0
            } else {
                exit::USAGE
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dkimkey: {e}");
            ExitCode::from(e.code)
        }
    }
}

/// is_label_list - a domain or selector: dot-separated labels of letters,
/// digits, '-' and '_'.
fn is_label_list(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// run - make (or read) the key, then print the record.
fn run(a: &Args) -> Result<(), Exit> {
    let domain = a.domain.trim_end_matches('.').to_ascii_lowercase();
    if !is_label_list(&domain) || !is_label_list(&a.selector) {
        return Err(Exit::new(exit::USAGE, "-d and -s take domain names"));
    }
    if !a.print {
        match a.algorithm.as_str() {
            "ed25519" => {
                let pem = key::generate_ed25519().map_err(|e| Exit::new(exit::SOFTWARE, e))?;
                write_new(&a.file, pem.as_bytes())?;
            }
            "rsa" => {
                if !(2048..=4096).contains(&a.bits) {
                    return Err(Exit::new(
                        exit::USAGE,
                        "-b: RSA keys have 2048 to 4096 bits",
                    ));
                }
                make_rsa(&a.file, a.bits)?;
            }
            other => {
                return Err(Exit::new(
                    exit::USAGE,
                    format!("-a {other}: the types are ed25519 and rsa"),
                ));
            }
        }
    }
    let pem =
        std::fs::read(&a.file).map_err(|e| Exit::from_io(a.file.display().to_string(), &e))?;
    let k = PrivateKey::from_pem(&pem)
        .map_err(|e| Exit::new(exit::DATAERR, format!("{}: {e}", a.file.display())))?;
    print!("{}", zone_text(&domain, &a.selector, &k, &a.file));
    Ok(())
}

/// io_exit - an I/O error as the exit code dkimkey(8) documents: 77
/// permission denied, 66 no such file to read, 73 any other failure to
/// create or write.
fn io_exit(path: &Path, e: &std::io::Error, creating: bool) -> Exit {
    let code = match e.kind() {
        std::io::ErrorKind::PermissionDenied => exit::NOPERM,
        std::io::ErrorKind::NotFound if !creating => exit::NOINPUT,
        _ if creating => exit::CANTCREAT,
        _ => exit::IOERR,
    };
    Exit::new(code, format!("{}: {e}", path.display()))
}

/// write_new - create `path` (it must not exist) with mode 0600.
fn write_new(path: &Path, data: &[u8]) -> Result<(), Exit> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_exit(path, &e, true))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_exit(path, &e, true))
}

/// make_rsa - `openssl genpkey` into a new file of our own making (so
/// its mode and newness are ours, not openssl's).
fn make_rsa(path: &Path, bits: u32) -> Result<(), Exit> {
    write_new(path, b"")?;
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .stderr(std::process::Stdio::piped())
        .output();
    let pem = match out {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => {
            let _ = std::fs::remove_file(path);
            return Err(Exit::new(
                exit::SOFTWARE,
                format!(
                    "openssl genpkey failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            ));
        }
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(Exit::new(
                exit::UNAVAILABLE,
                format!("RSA keys are made by openssl, which did not run: {e}"),
            ));
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_exit(path, &e, true))?;
    f.write_all(&pem)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_exit(path, &e, true))
}

/// zone_text - the record in zone-file form, its text cut into strings
/// of at most 255 octets (RFC 1035 character-strings), and the
/// posthorn.toml lines that use the key.
fn zone_text(domain: &str, selector: &str, k: &PrivateKey, file: &Path) -> String {
    let rec = k.record();
    let strings: Vec<String> = rec
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )\n; {} key, {} bits, for posthorn.toml:\n; [[dkim.key]]\n; domain = \"{domain}\"\n; selector = \"{selector}\"\n; file = \"{}\"\n",
        strings.join("\n\t"),
        k.algorithm().k(),
        k.bits(),
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_strings_fit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        write_new(&p, key::generate_ed25519().unwrap().as_bytes()).unwrap();
        assert!(write_new(&p, b"x").is_err(), "never over an existing file");
        let k = PrivateKey::from_pem(&std::fs::read(&p).unwrap()).unwrap();
        let t = zone_text("example.org", "sel", &k, &p);
        assert!(t.starts_with("sel._domainkey.example.org. IN TXT ( \"v=DKIM1; k=ed25519; p="));
        assert!(is_label_list("a-b.c_d") && !is_label_list("a..b") && !is_label_list("a b"));
    }
}
