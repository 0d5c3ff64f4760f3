//! smtp_data - smtpd's message-data checker on arbitrary octets split at an
//! arbitrary point: no panic, the same verdict however the input is cut,
//! and a clean message comes out with CRLF as LF and no CR at all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_smtpd::body::Body;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let run = |pieces: &[&[u8]]| {
        let mut b = Body::new(1 << 16);
        let mut out = Vec::new();
        for p in pieces {
            b.push(p, &mut out);
        }
        (b.finish(), out)
    };
    let (whole, out) = run(&[rest]);
    let (split, out2) = run(&[&rest[..cut], &rest[cut..]]);
    assert_eq!(whole, split);
    if whole.is_none() {
        assert_eq!(out, out2);
        assert!(!out.contains(&b'\r'));
    }
});
