//! list - `mailq`: the queue in Postfix's format, envelope data only.

use posthorn_spool::state::State;
use posthorn_spool::{QueueId, Spool, qfile};
use posthorn_sys::exit::Exit;
use std::io::Write;

/// print - one entry per queued message, then a total.
pub fn print(spool: &Spool) -> Result<(), Exit> {
    let mut ids: Vec<(QueueId, bool)> = Vec::new();
    for (dir, held) in [(spool.incoming(), false), (spool.hold(), true)] {
        match std::fs::read_dir(&dir) {
            Ok(rd) => ids.extend(
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| QueueId::try_from(n).ok())
                    })
                    .map(|id| (id, held)),
            ),
            // A spool made before hold/ existed has none.
            Err(e) if held && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Exit::from_io(format!("cannot read {}", dir.display()), &e));
            }
        }
    }
    ids.sort();
    let out = std::io::stdout();
    let mut out = out.lock();
    if ids.is_empty() {
        let _ = writeln!(out, "Mail queue is empty");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "-Queue ID-   --Size-- ----Arrival Time---- -Sender/Recipient-------"
    );
    let (mut count, mut bytes) = (0u64, 0u64);
    for (id, held) in ids {
        let path = if held {
            spool.held(&id)
        } else {
            spool.message(&id)
        };
        let Ok(mut f) = posthorn_sys::fsio::open_read(&path) else {
            continue;
        };
        let Ok(q) = qfile::read_header(&mut f) else {
            continue;
        };
        let st = State::load(&spool.state_file(&id)).unwrap_or_default();
        count += 1;
        bytes += q.msg_size;
        let sender = if q.envelope.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &q.envelope.sender
        };
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:<20} {}",
            // Postfix marks a held message with '!' after its ID.
            if held {
                format!("{}!", id.as_str())
            } else {
                id.as_str().to_string()
            },
            q.msg_size,
            posthorn_mail::date::mailq_date(q.arrival),
            sender
        );
        for (i, r) in q.envelope.recipients.iter().enumerate() {
            // Delivered or bounced (the bounce is its own message) is finished.
            let finished = st.done.iter().chain(st.failed.keys()).any(|k| k.0 == i)
                && !st.deferred.keys().any(|k| k.0 == i);
            if finished {
                continue;
            }
            if let Some((_, (_, why))) = st.deferred.iter().find(|(k, _)| k.0 == i) {
                let _ = writeln!(out, "{:43}({})", "", why);
            }
            let _ = writeln!(out, "{:43}{}", "", r.address);
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "-- {} Kbytes in {} Request{}.",
        bytes.div_ceil(1024),
        count,
        if count == 1 { "" } else { "s" }
    );
    Ok(())
}
