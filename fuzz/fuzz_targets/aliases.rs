//! aliases(5) text: every line parses or becomes a problem, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = posthorn_mail::aliases::Aliases::parse(&text, std::path::Path::new("fuzz"));
});
