//! admin - the postqueue/postsuper jobs: deliver chosen messages now, put
//! messages on hold, release them, delete them.
//!
//! Distrusts its arguments: a queue ID is checked as one (no path can be
//! named), and a message another qrun is working on (its file is locked)
//! is left alone and reported busy rather than moved under it.

use crate::process::{self, Ctx, Pass};
use posthorn_spool::{QueueId, qfile};
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::info;
use std::path::PathBuf;

/// What to do to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Hold,
    Release,
    Delete,
}

/// ids_in - the queue IDs in a spool directory, sorted.
fn ids_in(dir: &std::path::Path) -> Vec<QueueId> {
    let mut v: Vec<QueueId> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| QueueId::try_from(n).ok())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// parse_ids - the arguments as queue IDs; "ALL" means every one in `all`.
fn parse_ids(args: &[String], all: impl Fn() -> Vec<QueueId>) -> Result<Vec<QueueId>, Exit> {
    if args.len() == 1 && args[0] == "ALL" {
        return Ok(all());
    }
    args.iter()
        .map(|a| {
            QueueId::try_from(a.as_str())
                .map_err(|_| Exit::new(exit::USAGE, format!("{a}: not a queue ID")))
        })
        .collect()
}

/// flush - one pass now over the messages named, or over those with a
/// recipient at `domain`; prints what became of each.
pub fn flush(ctx: &Ctx, ids: &[String], domain: Option<&str>) -> Result<(), Exit> {
    let mut todo = parse_ids(ids, || ids_in(&ctx.spool.incoming()))?;
    if let Some(d) = domain {
        let d = d.trim_start_matches('@').to_ascii_lowercase();
        for id in ids_in(&ctx.spool.incoming()) {
            let Ok(mut f) = posthorn_sys::fsio::open_read(&ctx.spool.message(&id)) else {
                continue;
            };
            let Ok(q) = qfile::read_header(&mut f) else {
                continue;
            };
            let hit = q.envelope.recipients.iter().any(|r| {
                r.address
                    .rsplit_once('@')
                    .is_some_and(|(_, rd)| rd.eq_ignore_ascii_case(&d))
            });
            if hit {
                todo.push(id);
            }
        }
    }
    let mut missing = false;
    for id in todo {
        let what = match process::process(ctx, &id) {
            Pass::Done => "done".to_string(),
            Pass::Deferred(t) => format!(
                "deferred, next try {}",
                posthorn_mail::date::rfc5322_from_unix(t)
            ),
            Pass::Busy => "busy: another qrun is working on it".to_string(),
            Pass::Throttled(_) => "partly done: the rest waits for a delivery slot".to_string(),
            Pass::Gone => {
                missing = true;
                "not in the queue".to_string()
            }
        };
        println!("{id}: {what}");
    }
    ctx.pool.close();
    if missing {
        Err(Exit::new(exit::NOINPUT, "some messages were not found"))
    } else {
        Ok(())
    }
}

/// change - hold, release or delete each message named.
pub fn change(ctx: &Ctx, what: Move, args: &[String]) -> Result<(), Exit> {
    let sp = &ctx.spool;
    let ids = parse_ids(args, || match what {
        Move::Hold => ids_in(&sp.incoming()),
        Move::Release => ids_in(&sp.hold()),
        Move::Delete => [ids_in(&sp.incoming()), ids_in(&sp.hold())].concat(),
    })?;
    let _ = std::fs::create_dir_all(sp.hold());
    let mut failed = false;
    for id in ids {
        let (from, to): (PathBuf, Option<PathBuf>) = match what {
            Move::Hold => (sp.message(&id), Some(sp.held(&id))),
            Move::Release => (sp.held(&id), Some(sp.message(&id))),
            Move::Delete if sp.held(&id).exists() => (sp.held(&id), None),
            Move::Delete => (sp.message(&id), None),
        };
        let mut f = match posthorn_sys::fsio::open_read(&from) {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "qrun: {id}: {}",
                    if e.kind() == std::io::ErrorKind::NotFound {
                        "not found".to_string()
                    } else {
                        e.to_string()
                    }
                );
                failed = true;
                continue;
            }
        };
        // A delivery in progress holds the lock: leave that message alone.
        if f.try_lock().is_err() {
            eprintln!("qrun: {id}: busy: a delivery is in progress, try again");
            failed = true;
            continue;
        }
        // Durable like a commit: both directories synced after the rename.
        let done = match &to {
            Some(to) => std::fs::rename(&from, to).and_then(|()| {
                posthorn_sys::fsio::fsync_dir(&sp.incoming())?;
                posthorn_sys::fsio::fsync_dir(&sp.hold())
            }),
            None => {
                let q = qfile::read_header(&mut f).ok();
                std::fs::remove_file(&from).map(|()| {
                    let _ = std::fs::remove_file(sp.state_file(&id));
                    let _ = std::fs::remove_file(sp.dkim_file(&id));
                    if let Some(q) = &q {
                        process::uncount(ctx, q, &id);
                    }
                })
            }
        };
        match done {
            Ok(()) => {
                let (log, say) = match what {
                    Move::Hold => ("placed on hold", "held"),
                    Move::Release => ("released from hold", "released"),
                    Move::Delete => ("removed (deleted by the administrator)", "deleted"),
                };
                info!("{id}: {log}");
                println!("{id}: {say}");
            }
            Err(e) => {
                eprintln!("qrun: {id}: {e}");
                failed = true;
            }
        }
    }
    if what == Move::Release {
        sp.flush();
    }
    if failed {
        Err(Exit::new(exit::TEMPFAIL, "some messages were not changed"))
    } else {
        Ok(())
    }
}
