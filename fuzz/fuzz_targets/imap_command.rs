//! imapd's command parser: any octets as one command (literals inline),
//! never a panic; what parses has a tag.
#![no_main]
use libfuzzer_sys::fuzz_target;
use posthorn_imapd::command;

fuzz_target!(|data: &[u8]| {
    let _ = command::literal_at_end(data);
    if let Ok((tag, _)) = command::parse(data) {
        assert!(!tag.is_empty());
    }
});
