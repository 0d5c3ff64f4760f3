//! imapd's command parser: any octets as one command (literals inline),
//! in 7-bit and in UTF-8 mode (UTF8=ACCEPT, IMAP4rev2), never a panic;
//! what parses has a tag. LIST's wildcard matching takes any UTF-8
//! pattern against INBOX and a UTF-8 name without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use posthorn_imapd::{command, folders};

fuzz_target!(|data: &[u8]| {
    let _ = command::literal_at_end(data);
    if let Ok((tag, _)) = command::parse(data) {
        assert!(!tag.is_empty());
    }
    if let Ok((tag, _)) = command::parse_with(data, true) {
        assert!(!tag.is_empty());
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = folders::matches(s, "INBOX");
        let _ = folders::matches(s, "INBOX.日本語");
    }
});
