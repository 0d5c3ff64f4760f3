//! smtp_command - smtpd's command parser on arbitrary lines: no panic, and
//! an accepted path never carries a control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_smtpd::command::{self, Command};

fuzz_target!(|data: &[u8]| {
    if let Ok(Command::Mail(p, _) | Command::Rcpt(p, _)) = command::parse(data) {
        assert!(!p.to_string().chars().any(char::is_control));
        assert!(p.local.len() <= 64 && p.domain.len() <= 257);
    }
});
