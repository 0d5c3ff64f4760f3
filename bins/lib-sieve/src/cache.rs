//! cache - scripts compiled once and kept beside their source, as
//! Pigeonhole keeps `.svbin` files: `NAME.sieve` has `NAME.phsvbin` (our
//! own format, codec.rs, so the two never read each other's files).
//!
//! A cache file records the identity of the script it was made from
//! (device, inode, size, modification time to the nanosecond, and the
//! compiler's version); when any of these differ the script is compiled
//! again. Concurrent deliveries may all compile and write: each writes a
//! temporary file of its own and renames it into place, so a reader sees
//! a whole file, old or new. A cache that cannot be written (a global
//! script in a directory the user may not write) only costs a compile.

use crate::{Error, MAX_SCRIPT_SIZE, Script};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The cache file's extension.
pub const EXTENSION: &str = "phsvbin";
/// Largest cache file read.
const MAX_CACHE: u64 = 64 * 1024 * 1024;

/// Why a script could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// There is no such script.
    Missing,
    /// It could not be read.
    Io(std::io::Error),
    /// It does not compile.
    Compile(Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Missing => write!(f, "no such script"),
            LoadError::Io(e) => write!(f, "{e}"),
            LoadError::Compile(e) => write!(f, "{e}"),
        }
    }
}

/// cache_path - where the compiled form of `script` (its real path, any
/// symlink followed) is kept.
pub fn cache_path(real: &Path) -> PathBuf {
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.strip_suffix(".sieve").unwrap_or(&name);
    real.with_file_name(format!("{base}.{EXTENSION}"))
}

/// load - the compiled script at `path`, from its cache when that is
/// current, else compiled (and cached when `write` is set).
pub fn load(path: &Path, write: bool) -> Result<Script, LoadError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadError::Missing),
        Err(e) => return Err(LoadError::Io(e)),
    };
    let meta = f.metadata().map_err(LoadError::Io)?;
    if !meta.is_file() {
        return Err(LoadError::Io(std::io::Error::other("not a regular file")));
    }
    let identity = format!(
        "{}:{}:{}:{}.{}:{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        env!("CARGO_PKG_VERSION")
    );
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let cpath = cache_path(&real);
    if let Some(s) = read_cache(&cpath, identity.as_bytes()) {
        return Ok(s);
    }
    let mut src = Vec::new();
    (&mut f)
        .take(MAX_SCRIPT_SIZE as u64 + 1)
        .read_to_end(&mut src)
        .map_err(LoadError::Io)?;
    let text = String::from_utf8(src)
        .map_err(|_| LoadError::Compile(Error::at(1, "script is not UTF-8")))?;
    let script = crate::compile(&text).map_err(LoadError::Compile)?;
    if write {
        let bytes = crate::codec::encode(&script, identity.as_bytes());
        // A cache we cannot write is only a missed saving.
        let _ = posthorn_sys::fsio::write_atomic(&cpath, &bytes, 0o600);
    }
    Ok(script)
}

/// read_cache - the cached script if the file is there, whole, ours, and
/// made from this very version of the script.
fn read_cache(cpath: &Path, identity: &[u8]) -> Option<Script> {
    let f = posthorn_sys::fsio::open_read(cpath).ok()?;
    // Only a cache this very user wrote, and no one else may change: in
    // a directory others can write, another user could otherwise forge
    // the compiled form of a script shared with them.
    let m = f.metadata().ok()?;
    if m.uid() != posthorn_sys::privs::euid() || m.mode() & 0o022 != 0 || !m.is_file() {
        return None;
    }
    let mut data = Vec::new();
    f.take(MAX_CACHE).read_to_end(&mut data).ok()?;
    if crate::codec::identity(&data)? != identity {
        return None;
    }
    crate::codec::decode(&data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_then_invalidated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.sieve");
        std::fs::write(&p, "require \"fileinto\"; fileinto \"x\";").unwrap();
        let s1 = load(&p, true).unwrap();
        let c = d.path().join("a.phsvbin");
        assert!(c.is_file());
        // The cache is what is used while the script is unchanged: a
        // cache we forge for the same identity is believed.
        let data = std::fs::read(&c).unwrap();
        let id = crate::codec::identity(&data).unwrap().to_vec();
        let other = crate::compile("discard;").unwrap();
        std::fs::write(&c, crate::codec::encode(&other, &id)).unwrap();
        assert_eq!(load(&p, true).unwrap(), other);
        // A changed script (new size and mtime) is compiled again.
        std::fs::write(&p, "require \"fileinto\"; fileinto \"yy\";").unwrap();
        let s2 = load(&p, true).unwrap();
        assert_ne!(s1, s2);
        assert_ne!(s2, other);
        // A cache others may write is not believed.
        std::fs::write(
            &c,
            crate::codec::encode(
                &other,
                crate::codec::identity(&std::fs::read(&c).unwrap()).unwrap(),
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(load(&p, false).unwrap(), s2);
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&p, false).unwrap(), other);
        // Damage means a compile, not an error.
        std::fs::write(&c, b"PHSVBIN 1\ngarbage").unwrap();
        assert_eq!(load(&p, true).unwrap(), s2);
        // Errors keep their line.
        std::fs::write(&p, "keep;\nfrob;").unwrap();
        match load(&p, true) {
            Err(LoadError::Compile(e)) => assert_eq!(e.line, 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            load(&d.path().join("none.sieve"), true),
            Err(LoadError::Missing)
        ));
    }
}
