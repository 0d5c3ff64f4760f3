//! remote_data - remote's DATA encoder on arbitrary queued text: what goes
//! on the wire has CRLF line ends only, no line over 998 octets, no lone
//! dot line before the end, and ends in CRLF.CRLF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_remote::data;

fuzz_target!(|msg: &[u8]| {
    let out = data::encode(msg);
    assert!(out.ends_with(b"\r\n.\r\n") || out == b".\r\n");
    let body = &out[..out.len() - 3];
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && body[i - 1] == b'\r', "bare LF");
        }
        if b == b'\r' {
            assert_eq!(body.get(i + 1), Some(&b'\n'), "bare CR");
        }
    }
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(line.len() <= data::MAX_LINE);
        assert!(line != b".", "a lone dot would end DATA early");
    }
});
