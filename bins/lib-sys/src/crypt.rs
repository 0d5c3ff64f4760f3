//! crypt - password hashes through libxcrypt's crypt_rn(3), and shadow
//! entries through getspnam_r(3).
//!
//! libxcrypt is what Debian itself uses for /etc/shadow: it knows yescrypt
//! (`$y$`, Debian's default), SHA-512 and SHA-256 crypt (`$6$`, `$5$`),
//! bcrypt (`$2b$`, `$2y$`) and the older schemes, so one audited C library
//! covers the system's hashes and Dovecot's `*-CRYPT` schemes alike.

use std::ffi::{CStr, CString};

/// Size of libxcrypt's `struct crypt_data` (CRYPT_DATA_INTERNAL_SIZE and
/// friends add up to 32768 bytes in libxcrypt 4.x).
const CRYPT_DATA_SIZE: usize = 32768;

#[link(name = "crypt")]
unsafe extern "C" {
    fn crypt_rn(
        phrase: *const libc::c_char,
        setting: *const libc::c_char,
        data: *mut libc::c_void,
        size: libc::c_int,
    ) -> *mut libc::c_char;
}

/// crypt - hash `phrase` with the algorithm and salt in `setting` (a whole
/// stored hash works as the setting). None when the setting is invalid or
/// the phrase holds a NUL.
pub fn crypt(phrase: &[u8], setting: &str) -> Option<String> {
    let p = CString::new(phrase).ok()?;
    let s = CString::new(setting).ok()?;
    let mut data = vec![0u8; CRYPT_DATA_SIZE];
    // SAFETY: p and s are NUL-terminated; data is a writable buffer of the
    // size we pass; crypt_rn returns NULL or a pointer into `data`.
    let out = unsafe {
        crypt_rn(
            p.as_ptr(),
            s.as_ptr(),
            data.as_mut_ptr().cast(),
            CRYPT_DATA_SIZE as libc::c_int,
        )
    };
    if out.is_null() {
        return None;
    }
    // SAFETY: on success crypt_rn returns a NUL-terminated string in `data`.
    let r = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    // libxcrypt signals failure with a string starting with '*'.
    if r.starts_with('*') { None } else { Some(r) }
}

/// shadow_hash - the password hash of a system account from /etc/shadow
/// (root only); None when there is no entry or we may not read it.
pub fn shadow_hash(name: &str) -> Option<String> {
    let c = CString::new(name).ok()?;
    let mut sp: libc::spwd = unsafe_zeroed_spwd();
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::spwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the sizes given; on success `result`
    // points at `sp`, whose strings live in `buf`.
    let rc = unsafe {
        libc::getspnam_r(
            c.as_ptr(),
            &mut sp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || sp.sp_pwdp.is_null() {
        return None;
    }
    // SAFETY: sp_pwdp is a NUL-terminated string inside `buf`.
    Some(
        unsafe { CStr::from_ptr(sp.sp_pwdp) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn unsafe_zeroed_spwd() -> libc::spwd {
    // SAFETY: spwd is a plain C struct of integers and pointers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        // Made with `openssl passwd -6 -salt saltsalt secret`.
        let sha512 = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert_eq!(crypt(b"secret", sha512).as_deref(), Some(sha512));
        assert_ne!(crypt(b"Secret", sha512).as_deref(), Some(sha512));
        let y = crypt(b"pw", "$y$j9T$abcdefghijklmnop$").unwrap();
        assert!(y.starts_with("$y$j9T$abcdefghijklmnop$"));
        assert_eq!(crypt(b"pw", &y), Some(y.clone()));
        assert!(crypt(b"pw", "$z$unknown$").is_none());
        assert_ne!(crypt(b"pw", "garbage").as_deref(), Some("garbage"));
        assert!(crypt(b"p\0w", &y).is_none());
    }
}
