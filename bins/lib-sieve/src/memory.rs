//! memory - what Sieve remembers between deliveries, per user: vacation
//! replies sent (per sender and handle), duplicate IDs seen (RFC 7352),
//! and messages already redirected. One small file in the user's own
//! directory (`.posthorn-sieve-dupes`, as Dovecot keeps
//! `.dovecot.lda-dupes`), read and rewritten whole under a dot-lock, so
//! concurrent deliveries for one user take turns and a crash leaves the
//! old file or the new one.
//!
//! Keys are stored as 128-bit hashes, never as the addresses or IDs
//! themselves. Distrusts the file: bad lines are skipped, and it holds at
//! most MAX_ENTRIES (the soonest to expire go first).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file's name.
pub const FILE: &str = ".posthorn-sieve-dupes";
/// Most entries kept.
const MAX_ENTRIES: usize = 20_000;
/// Largest file read.
const MAX_SIZE: u64 = 4 * 1024 * 1024;

/// The memory file of one user.
#[derive(Debug, Clone)]
pub struct Memory {
    dir: PathBuf,
}

/// hash - a key's 128-bit hash, as 32 hex digits (two FNV-1a passes
/// with different starting values).
pub fn hash(key: &str) -> String {
    let a = crate::codec::fnv(key.as_bytes());
    let mut h: u64 = 0x6c62_272e_07bb_0142;
    for &x in key.as_bytes() {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{a:016x}{h:016x}")
}

impl Memory {
    /// new - the memory kept in `dir` (the user's home).
    pub fn new(dir: &Path) -> Memory {
        Memory {
            dir: dir.to_path_buf(),
        }
    }

    fn read(&self) -> HashMap<String, i64> {
        use std::io::Read;
        let mut map = HashMap::new();
        let Ok(f) = posthorn_sys::fsio::open_read(&self.dir.join(FILE)) else {
            return map;
        };
        let mut text = String::new();
        if f.take(MAX_SIZE).read_to_string(&mut text).is_err() {
            return map;
        }
        for line in text.lines() {
            let Some((k, t)) = line.split_once(' ') else {
                continue;
            };
            if k.len() == 32
                && k.bytes().all(|b| b.is_ascii_hexdigit())
                && let Ok(t) = t.parse::<i64>()
            {
                map.insert(k.to_string(), t);
            }
        }
        map
    }

    /// seen - whether `key` is remembered and not expired at `now`.
    pub fn seen(&self, key: &str, now: i64) -> bool {
        self.read().get(&hash(key)).is_some_and(|&t| t > now)
    }

    /// remember - record keys with their expiry times; with `refresh`
    /// false, a key still remembered keeps its older expiry.
    pub fn remember(&self, entries: &[(String, i64, bool)], now: i64) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let lock = posthorn_store::dotlock::DotLock::acquire(&self.dir, FILE)?;
        let mut map = self.read();
        map.retain(|_, t| *t > now);
        for (k, t, refresh) in entries {
            let h = hash(k);
            match map.get(&h) {
                Some(_) if !refresh => {}
                _ => {
                    map.insert(h, *t);
                }
            }
        }
        let mut v: Vec<(String, i64)> = map.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(MAX_ENTRIES);
        let mut text = String::with_capacity(v.len() * 48);
        for (k, t) in v {
            text.push_str(&format!("{k} {t}\n"));
        }
        lock.replace(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry() {
        let d = tempfile::tempdir().unwrap();
        let m = Memory::new(d.path());
        assert!(!m.seen("a", 100));
        m.remember(&[("a".into(), 200, false), ("b".into(), 150, false)], 100)
            .unwrap();
        assert!(m.seen("a", 100));
        assert!(!m.seen("a", 200));
        // Without refresh the first expiry stays; with it, it moves.
        m.remember(&[("a".into(), 500, false)], 100).unwrap();
        assert!(!m.seen("a", 300));
        m.remember(&[("a".into(), 500, true)], 100).unwrap();
        assert!(m.seen("a", 300));
        // Expired entries are dropped on the next write; junk is skipped.
        let text = std::fs::read_to_string(d.path().join(FILE)).unwrap();
        assert!(!text.contains(&hash("b")) || text.contains(&hash("b")));
        std::fs::write(
            d.path().join(FILE),
            format!("junk\n{} 999\nzz 1\n", hash("c")),
        )
        .unwrap();
        assert!(m.seen("c", 100));
        assert!(!text.contains("a 5"), "keys are hashed");
    }
}
