//! bounce - delivery status notifications (RFC 3464 multipart/report)
//! for recipients that failed, queued as new messages from <>.

use posthorn_mail::Config;
use posthorn_spool::envelope::{Envelope, Recipient};
use posthorn_spool::layout::StoreError;
use posthorn_spool::{QueueId, Spool};
use std::io::{Read, Seek, SeekFrom};

/// The envelope sender of double bounces; its own failures are dropped.
pub const DOUBLE_BOUNCE: &str = "double-bounce";

/// One failed recipient for the report.
#[derive(Debug, Clone)]
pub struct Failure {
    pub final_rcpt: String,
    pub original: Option<String>,
    pub dsn: String,
    pub text: String,
    /// A success report (NOTIFY=SUCCESS) rather than a failure.
    pub delivered: bool,
    /// Delivered to a server without DSN: Action: relayed.
    pub relayed: bool,
    /// A delay warning (still being retried) rather than a failure.
    pub delayed: bool,
    /// The remote server that answered (Remote-MTA), for remote deliveries.
    pub remote_mta: Option<String>,
    /// Its reply, "550 5.1.1 ..." (Diagnostic-Code: smtp).
    pub diagnostic: Option<String>,
}

/// What to return of the original message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Headers,
    Full,
}

/// Largest original returned whole with RET=FULL; past it, headers only.
const MAX_RETURN: u64 = 1024 * 1024;

/// compose - the text of a DSN for `failures` of message `id`.
pub fn compose(
    cfg: &Config,
    id: &QueueId,
    to: &str,
    arrival: u64,
    envid: Option<&str>,
    failures: &[Failure],
    original: &[u8],
    ret: Return,
) -> Vec<u8> {
    let host = &cfg.hostname;
    let boundary = format!("{id}.{}/{host}", posthorn_mail::date::unix_now());
    let date = posthorn_mail::date::now_rfc5322();
    let mut m = String::new();
    m.push_str(&format!(
        "From: MAILER-DAEMON@{host} (Mail Delivery System)\n"
    ));
    m.push_str(&format!("To: {to}\n"));
    let success = failures.iter().all(|f| f.delivered);
    let delayed = failures.iter().all(|f| f.delayed);
    m.push_str(if success {
        "Subject: Successful Mail Delivery Report\n"
    } else if delayed {
        "Subject: Delayed Mail (still being retried)\n"
    } else {
        "Subject: Undelivered Mail Returned to Sender\n"
    });
    m.push_str(&format!("Date: {date}\n"));
    m.push_str(&format!(
        "Message-ID: <{}.{:016x}@{host}>\n",
        posthorn_mail::date::unix_now(),
        posthorn_sys::fsio::random_u64()
    ));
    m.push_str("Auto-Submitted: auto-replied\n");
    m.push_str("MIME-Version: 1.0\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n"
    ));
    m.push_str("Content-Transfer-Encoding: 8bit\n\n");
    m.push_str("This is a MIME-encapsulated message.\n\n");
    m.push_str(&format!("--{boundary}\nContent-Description: Notification\nContent-Type: text/plain; charset=utf-8\n\n"));
    m.push_str(&format!("This is the mail system at host {host}.\n\n"));
    if success {
        m.push_str(
            "Your message was successfully delivered to the destination(s)\nlisted below.\n\n",
        );
    } else if delayed {
        m.push_str("Your message could not be delivered yet to the recipient(s)\nlisted below. It is still being retried; you will hear again\nonly if it fails for good. This is a warning only: there is\nno need to send it again.\n\n");
    } else {
        m.push_str("I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.\n\n");
        m.push_str("For further assistance, please send mail to postmaster.\n\n");
    }
    for f in failures {
        m.push_str(&format!("<{}>: {}\n", f.final_rcpt, f.text));
    }
    m.push('\n');
    m.push_str(&format!("--{boundary}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"));
    m.push_str(&format!("Reporting-MTA: dns; {host}\n"));
    m.push_str(&format!("X-Posthorn-Queue-ID: {id}\n"));
    if let Some(e) = envid {
        m.push_str(&format!("Original-Envelope-Id: {e}\n"));
    }
    m.push_str(&format!(
        "Arrival-Date: {}\n",
        posthorn_mail::date::rfc5322_from_unix(arrival)
    ));
    for f in failures {
        m.push('\n');
        m.push_str(&format!("Final-Recipient: rfc822; {}\n", f.final_rcpt));
        if let Some(o) = &f.original {
            let o = if o.contains(';') {
                o.clone()
            } else {
                format!("rfc822; {o}")
            };
            m.push_str(&format!("Original-Recipient: {o}\n"));
        }
        m.push_str(if f.relayed {
            "Action: relayed\n"
        } else if f.delivered {
            "Action: delivered\n"
        } else if f.delayed {
            "Action: delayed\n"
        } else {
            "Action: failed\n"
        });
        m.push_str(&format!("Status: {}\n", f.dsn));
        if let Some(mta) = &f.remote_mta {
            m.push_str(&format!("Remote-MTA: dns; {mta}\n"));
        }
        match &f.diagnostic {
            Some(d) => m.push_str(&format!("Diagnostic-Code: smtp; {d}\n")),
            None => m.push_str(&format!("Diagnostic-Code: X-Posthorn; {}\n", f.text)),
        }
    }
    m.push('\n');
    let mut out = m.into_bytes();
    match ret {
        Ret::Full => {
            out.extend_from_slice(format!("--{boundary}\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n\n").as_bytes());
            out.extend_from_slice(original);
        }
        Ret::Headers => {
            out.extend_from_slice(format!("--{boundary}\nContent-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n").as_bytes());
            out.extend_from_slice(header_of(original));
        }
    }
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

use Return as Ret;

/// header_of - the header section of a message (up to the blank line).
fn header_of(msg: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < msg.len() {
        let end = msg[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(msg.len());
        let line = &msg[i..end];
        if line == b"\n" || line == b"\r\n" {
            return &msg[..i];
        }
        i = end;
    }
    msg
}

/// read_original - what to return: the whole message if small enough and asked for.
pub fn read_original(
    f: &mut std::fs::File,
    offset: u64,
    size: u64,
    ret: Return,
) -> std::io::Result<(Vec<u8>, Return)> {
    let ret = if ret == Return::Full && size > MAX_RETURN {
        Return::Headers
    } else {
        ret
    };
    let want = if ret == Return::Full {
        size
    } else {
        size.min(256 * 1024)
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(want as usize);
    f.take(want).read_to_end(&mut buf)?;
    Ok((buf, ret))
}

/// enqueue - commit a bounce into the spool directly (qrun owns the spool).
pub fn enqueue(spool: &Spool, sender: &str, to: &str, text: &[u8]) -> std::io::Result<QueueId> {
    let now = posthorn_mail::date::since_epoch();
    let env = Envelope {
        sender: sender.to_string(),
        recipients: vec![Recipient {
            address: to.to_string(),
            notify: None,
            orcpt: None,
        }],
        ..Envelope::default()
    };
    let uid = posthorn_sys::privs::uid();
    spool
        .store(&env, uid, now, |_, w| {
            w.write_all(text).map(|()| text.len() as u64)
        })
        .map_err(|e| match e {
            StoreError::Io(e) | StoreError::Body(e) => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_shape() {
        let cfg = Config {
            hostname: "h.test".into(),
            ..Config::default()
        };
        let id = QueueId::generate(1);
        let f = Failure {
            final_rcpt: "x@h.test".into(),
            original: Some("rfc822;x@h.test".into()),
            dsn: "5.1.1".into(),
            text: "unknown user: \"x\"".into(),
            delivered: false,
            relayed: false,
            delayed: false,
            remote_mta: None,
            diagnostic: None,
        };
        let r = Failure {
            final_rcpt: "y@far.test".into(),
            original: None,
            dsn: "5.1.1".into(),
            text: "host mx.far.test[192.0.2.1] said: 550 5.1.1 no (in reply to RCPT TO command)"
                .into(),
            delivered: false,
            relayed: false,
            delayed: false,
            remote_mta: Some("mx.far.test".into()),
            diagnostic: Some("550 5.1.1 no".into()),
        };
        let m = compose(
            &cfg,
            &id,
            "a@b",
            0,
            None,
            &[r],
            b"S: x\n\n",
            Return::Headers,
        );
        let t = String::from_utf8(m).unwrap();
        assert!(
            t.contains("Remote-MTA: dns; mx.far.test\nDiagnostic-Code: smtp; 550 5.1.1 no\n"),
            "{t}"
        );
        let m = compose(
            &cfg,
            &id,
            "a@b",
            0,
            None,
            &[f],
            b"Subject: hi\n\nbody\n",
            Return::Headers,
        );
        let t = String::from_utf8(m).unwrap();
        assert!(t.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(t.contains("Status: 5.1.1\n"));
        assert!(t.contains("Original-Recipient: rfc822;x@h.test\n"));
        assert!(t.contains("Content-Type: text/rfc822-headers\n\nSubject: hi\n\n--"));
        assert!(!t.contains("body"));
    }
}
