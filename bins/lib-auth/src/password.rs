//! password - check a password against a stored hash, in constant time.
//!
//! Dovecot's `{SCHEME}hash` forms and bare crypt(3) hashes:
//! `{SHA512-CRYPT}`/`$6$`, `{SHA256-CRYPT}`/`$5$`, `{BLF-CRYPT}`/`$2y$`,
//! `{CRYPT}`, `$y$` (yescrypt, Debian's /etc/shadow default) through
//! libxcrypt; `{ARGON2ID}`/`$argon2id$` through the argon2 crate; `{PLAIN}`
//! accepted with a warning. A locked or empty hash never matches.

use argon2::password_hash::{PasswordHash, PasswordVerifier};

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password matches.
    Match,
    /// It matches, but the hash is {PLAIN}: log a warning.
    MatchPlain,
    /// It does not match (or the hash is locked or empty).
    Mismatch,
    /// The hash's scheme is one we do not know: a configuration problem.
    Unsupported,
}

/// ct_eq - compare without an early exit, so timing does not tell how much matched.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// verify - check `given` against `stored`.
pub fn verify(stored: &str, given: &[u8]) -> Verdict {
    let stored = stored.trim();
    let (scheme, hash) = match stored.strip_prefix('{').and_then(|r| r.split_once('}')) {
        Some((s, h)) => (s.to_ascii_uppercase(), h),
        None => (String::new(), stored),
    };
    match scheme.as_str() {
        "" | "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "BLF-CRYPT" | "MD5-CRYPT"
        | "DES-CRYPT" => {
            if hash.starts_with("$argon2") {
                return argon(hash, given);
            }
            if hash.is_empty() || hash.starts_with(['!', '*']) {
                return Verdict::Mismatch;
            }
            match posthorn_sys::crypt::crypt(given, hash) {
                Some(out) if ct_eq(out.as_bytes(), hash.as_bytes()) => Verdict::Match,
                Some(_) => Verdict::Mismatch,
                // An unusable setting: the hash is malformed or of an unknown kind.
                None if given.contains(&0) => Verdict::Mismatch,
                None => Verdict::Unsupported,
            }
        }
        "ARGON2ID" | "ARGON2I" | "ARGON2" => argon(hash, given),
        "PLAIN" | "CLEARTEXT" | "CLEAR" => {
            if ct_eq(hash.as_bytes(), given) {
                Verdict::MatchPlain
            } else {
                Verdict::Mismatch
            }
        }
        _ => Verdict::Unsupported,
    }
}

fn argon(hash: &str, given: &[u8]) -> Verdict {
    match PasswordHash::new(hash) {
        Ok(h) => match argon2::Argon2::default().verify_password(given, &h) {
            Ok(()) => Verdict::Match,
            Err(_) => Verdict::Mismatch,
        },
        Err(_) => Verdict::Unsupported,
    }
}

/// A hash that costs what a real one costs, checked when the user does not
/// exist, so the time taken does not tell whether a user exists.
pub const DUMMY_HASH: &str = "$6$rounds=5000$posthorndummy$0vIR5kl3fzVKEwvMkm.yjx8ZzLS9D4kG8eJvbl3wW7FFNbrC.DnXyK1YSVvOWH6Xh9zOVoMYJ3ryMHxgwlAPg.";

#[cfg(test)]
mod tests {
    use super::*;

    // Made with: openssl passwd -6 -salt saltsalt secret; openssl passwd -5 -salt saltsalt secret;
    // python3 -c 'import bcrypt; print(bcrypt.hashpw(b"secret", bcrypt.gensalt(4)))' (then $2b$ -> $2y$ as Dovecot writes);
    // mkpasswd -m yescrypt secret; argon2-cffi's PasswordHasher().hash("secret").
    const SHA512: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    #[test]
    fn crypt_schemes() {
        assert_eq!(verify(SHA512, b"secret"), Verdict::Match);
        assert_eq!(
            verify(&format!("{{SHA512-CRYPT}}{SHA512}"), b"secret"),
            Verdict::Match
        );
        assert_eq!(
            verify(&format!("{{CRYPT}}{SHA512}"), b"secret"),
            Verdict::Match
        );
        assert_eq!(verify(SHA512, b"Secret"), Verdict::Mismatch);
        assert_eq!(verify(SHA512, b"secret\0"), Verdict::Mismatch);
        let y = posthorn_sys::crypt::crypt(b"secret", "$y$j9T$saltsaltsaltsalt$").unwrap();
        assert_eq!(verify(&y, b"secret"), Verdict::Match);
        assert_eq!(verify(&y, b"wrong"), Verdict::Mismatch);
        let b = posthorn_sys::crypt::crypt(b"secret", "$2b$04$abcdefghijklmnopqrstuu").unwrap();
        assert_eq!(
            verify(&format!("{{BLF-CRYPT}}{b}"), b"secret"),
            Verdict::Match
        );
        assert_eq!(
            verify(
                &format!("{{BLF-CRYPT}}{}", b.replacen("$2b$", "$2y$", 1)),
                b"secret"
            ),
            Verdict::Match
        );
    }

    #[test]
    fn plain_locked_and_unknown() {
        assert_eq!(verify("{PLAIN}secret", b"secret"), Verdict::MatchPlain);
        assert_eq!(verify("{PLAIN}secret", b"secre"), Verdict::Mismatch);
        assert_eq!(verify("!", b""), Verdict::Mismatch);
        assert_eq!(verify("", b""), Verdict::Mismatch);
        assert_eq!(verify(&format!("!{SHA512}"), b"secret"), Verdict::Mismatch);
        assert_eq!(verify("{MD4}abc", b"x"), Verdict::Unsupported);
        assert_eq!(verify("$z$nonsense", b"x"), Verdict::Unsupported);
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab"));
        assert_eq!(verify(DUMMY_HASH, b"anything"), Verdict::Mismatch);
    }

    #[test]
    fn argon2id() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        let h = argon2::Argon2::default()
            .hash_password(b"secret", &salt)
            .unwrap()
            .to_string();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(
            verify(&format!("{{ARGON2ID}}{h}"), b"secret"),
            Verdict::Match
        );
        assert_eq!(verify(&h, b"secret"), Verdict::Match);
        assert_eq!(verify(&h, b"nope"), Verdict::Mismatch);
    }
}
