//! Sieve scripts and compiled-script cache files: compiled, round-tripped
//! and run, or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    posthorn_sieve::fuzz::one(data);
});
