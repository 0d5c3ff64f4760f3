//! privs - who we are and how to become someone else.

use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;

/// A resolved Unix account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
    pub shell: std::path::PathBuf,
    /// The full name: the first comma-separated part of the GECOS field.
    pub full_name: String,
}

/// lookup_user - getpwnam(3); None when there is no such account.
pub fn lookup_user(name: &str) -> std::io::Result<Option<Account>> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(Some(account(u))),
        Ok(None) => Ok(None),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// lookup_uid - getpwuid(3).
pub fn lookup_uid(uid: u32) -> std::io::Result<Option<Account>> {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(u) => Ok(u.map(account)),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// lookup_group - getgrnam(3) to a gid.
pub fn lookup_group(name: &str) -> Option<u32> {
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

fn account(u: User) -> Account {
    Account {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir,
        full_name: u
            .gecos
            .to_string_lossy()
            .split(',')
            .next()
            .unwrap_or("")
            .to_string(),
        shell: u.shell,
    }
}

/// euid - the effective uid.
pub fn euid() -> u32 {
    Uid::effective().as_raw()
}

/// uid - the real uid.
pub fn uid() -> u32 {
    Uid::current().as_raw()
}

/// is_privileged - whether we run with more rights than the caller
/// (setuid or setgid), so caller-supplied paths must be ignored.
pub fn is_privileged() -> bool {
    Uid::effective() != Uid::current() || Gid::effective() != Gid::current()
}

/// become_user - initgroups, setgid, setuid, in that order, and check that
/// root cannot be regained. Only for a process that is about to exec.
pub fn become_user(name: &str, uid: u32, gid: u32) -> std::io::Result<()> {
    let cname = CString::new(name).map_err(|_| std::io::Error::other("NUL in user name"))?;
    let g = Gid::from_raw(gid);
    let u = Uid::from_raw(uid);
    // Regain full root if the saved uid allows it (qrun keeps it for this);
    // an ordinary user simply fails here and must already be the target.
    let root = nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok();
    if !root {
        if Uid::effective() == u && Gid::effective() == g {
            return Ok(());
        }
        return Err(std::io::Error::other(format!(
            "cannot become {name} (uid {uid}) without root"
        )));
    }
    nix::unistd::initgroups(&cname, g)?;
    nix::unistd::setresgid(g, g, g)?;
    nix::unistd::setresuid(u, u, u)?;
    if uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(std::io::Error::other(
            "could still regain root after setuid",
        ));
    }
    Ok(())
}

/// drop_effective - run as `uid`/`gid` but keep the saved uid 0, so that a
/// forked child can still become a recipient (qrun's one use of root).
pub fn drop_effective(uid: u32, gid: u32) -> std::io::Result<()> {
    // Keep the saved uid 0 so a child can still become a recipient.
    nix::unistd::setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(0))?;
    nix::unistd::setgroups(&[Gid::from_raw(gid)])?;
    nix::unistd::setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(0))?;
    Ok(())
}

/// The ids a child process should run with, computed before fork so the
/// child only makes system calls (no NSS lookups between fork and exec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Ids {
    /// for_user - the user's ids with its supplementary groups (getgrouplist).
    pub fn for_user(name: &str, uid: u32, gid: u32) -> Ids {
        let groups = CString::new(name)
            .ok()
            .and_then(|c| nix::unistd::getgrouplist(&c, Gid::from_raw(gid)).ok())
            .map(|v| v.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|| vec![gid]);
        Ids { uid, gid, groups }
    }
}

/// command_as - make `cmd` run as `ids`: the child regains root through the
/// saved uid, sets groups, gid, uid (in that order), and checks that root
/// is gone before exec. Only async-signal-safe calls run in the child.
pub fn command_as(cmd: &mut std::process::Command, ids: &Ids) {
    use std::os::unix::process::CommandExt;
    let ids = ids.clone();
    let groups: Vec<libc::gid_t> = ids.groups.iter().map(|g| *g as libc::gid_t).collect();
    // SAFETY: the closure runs between fork and exec and only calls
    // setresuid/setgroups/setresgid/geteuid, which are async-signal-safe;
    // `groups` was allocated before fork and is only read.
    unsafe {
        cmd.pre_exec(move || {
            let _ = libc::setresuid(0, 0, 0);
            if libc::geteuid() == 0 && libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setresgid(ids.gid, ids.gid, ids.gid) != 0 && libc::getegid() != ids.gid {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setresuid(ids.uid, ids.uid, ids.uid) != 0 && libc::geteuid() != ids.uid {
                return Err(std::io::Error::last_os_error());
            }
            if ids.uid != 0 && (libc::geteuid() == 0 || libc::setuid(0) == 0) {
                return Err(std::io::Error::other("root could be regained"));
            }
            Ok(())
        });
    }
}
