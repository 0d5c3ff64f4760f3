//! The users passwd-file parser and login-name checks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = posthorn_mail::users::parse_line_for_fuzzing(line);
        let _ = posthorn_auth::login::check_name(line);
    }
});
