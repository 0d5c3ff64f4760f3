//! enqueue's record format: the setgid spool writer's whole input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = std::io::BufReader::new(data);
    if posthorn_spool::Envelope::read_records(&mut r).is_ok() {
        let _ = posthorn_spool::envelope::copy_chunks(&mut r, &mut std::io::sink(), 1 << 20);
    }
});
