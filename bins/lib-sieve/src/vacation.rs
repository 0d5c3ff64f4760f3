//! vacation - RFC 5230's rules for when a vacation reply may be sent,
//! and the replies and notifications (RFC 5436) themselves.

use crate::interp::{NotifyAction, VacationAction, b64, encode_value};
use crate::message::{self, Field};

/// List header fields (RFC 2369, RFC 2919): mail from a list gets no reply.
const LIST_FIELDS: &[&str] = &[
    "list-id",
    "list-help",
    "list-subscribe",
    "list-unsubscribe",
    "list-post",
    "list-owner",
    "list-archive",
];

/// refuse - why no reply may go to `sender` for this message (RFC 5230
/// §4.5 and §4.6), or None when one may. `mine` are the user's addresses.
pub fn refuse(fields: &[Field], sender: &str, mine: &[String]) -> Option<String> {
    if sender.is_empty() {
        return Some("the envelope sender is <>".into());
    }
    let Some(s) = message::parse_single_address(sender) else {
        return Some("the envelope sender is not a valid address".into());
    };
    let (local, _) = s.rsplit_once('@').unwrap_or((&s, ""));
    let l = local.to_ascii_lowercase();
    if l == "mailer-daemon"
        || l == "listserv"
        || l == "majordomo"
        || l.starts_with("owner-")
        || l.ends_with("-request")
        || l.ends_with("-owner")
    {
        return Some(format!("<{sender}> is a list or system address"));
    }
    if mine.iter().any(|m| m.eq_ignore_ascii_case(&s)) {
        return Some("the sender is the user".into());
    }
    let value = |n: &str| fields.iter().find(|f| f.is(n)).map(|f| f.value());
    if let Some(a) = value("auto-submitted")
        && !a
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("no")
    {
        return Some(format!("the message is auto-submitted ({a})"));
    }
    if let Some(p) = value("precedence") {
        let p = p.trim().to_ascii_lowercase();
        if p == "bulk" || p == "list" || p == "junk" {
            return Some(format!("the message has Precedence: {p}"));
        }
    }
    if let Some(f) = fields.iter().find(|f| LIST_FIELDS.iter().any(|l| f.is(l))) {
        return Some(format!("the message came from a list ({})", f.name));
    }
    let addressed = fields
        .iter()
        .filter(|f| {
            ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"]
                .iter()
                .any(|n| f.is(n))
        })
        .flat_map(|f| message::addresses(&f.raw))
        .any(|a| mine.iter().any(|m| m.eq_ignore_ascii_case(&a.all)));
    if !addressed {
        return Some("none of the user's addresses is in To, Cc or Bcc".into());
    }
    None
}

/// message_id - a new Message-ID.
pub fn message_id(host: &str) -> String {
    format!(
        "<{}.{:016x}@{host}>",
        posthorn_mail::date::unix_now(),
        posthorn_sys::fsio::random_u64()
    )
}

/// body_part - the header lines and body of a text/plain UTF-8 part.
fn text_body(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut s = String::from("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n");
    if text.is_ascii() {
        s.push_str("Content-Transfer-Encoding: 7bit\n\n");
        s.push_str(&text);
    } else {
        s.push_str("Content-Transfer-Encoding: base64\n\n");
        for line in b64(text.as_bytes()).as_bytes().chunks(76) {
            s.push_str(&String::from_utf8_lossy(line));
            s.push('\n');
        }
    }
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// compose - the vacation reply (RFC 5230 §5): to the envelope sender,
/// from `from`, replying to the message's Message-ID, marked
/// `Auto-Submitted: auto-replied`.
pub fn compose(v: &VacationAction, fields: &[Field], from: &str, to: &str, host: &str) -> Vec<u8> {
    let value = |n: &str| fields.iter().find(|f| f.is(n)).map(|f| f.value());
    let subject = match &v.subject {
        Some(s) => s.clone(),
        None => match value("subject") {
            Some(s) if !s.trim().is_empty() => format!("Auto: {}", s.trim()),
            _ => "Automated reply".into(),
        },
    };
    let mut s = String::new();
    s.push_str("X-Sieve: Posthorn Sieve\n");
    s.push_str(&format!("Message-ID: {}\n", message_id(host)));
    s.push_str(&format!("Date: {}\n", posthorn_mail::date::now_rfc5322()));
    if from.contains('<') {
        s.push_str(&format!("From: {}\n", encode_value(from)));
    } else {
        s.push_str(&format!("From: <{from}>\n"));
    }
    s.push_str(&format!("To: <{to}>\n"));
    s.push_str(&format!("Subject: {}\n", encode_value(&subject)));
    if let Some(id) = value("message-id") {
        s.push_str(&format!("In-Reply-To: {}\n", encode_value(&id)));
        let refs = value("references")
            .map(|r| format!("{r} {id}"))
            .unwrap_or(id);
        s.push_str(&format!("References: {}\n", encode_value(&refs)));
    }
    s.push_str("Auto-Submitted: auto-replied (vacation)\n");
    // As Pigeonhole: no list manager or Exchange should answer this.
    s.push_str("Precedence: bulk\nX-Auto-Response-Suppress: All\n");
    if v.mime {
        // The reason is a MIME entity: its own header fields, then its body.
        s.push_str("MIME-Version: 1.0\n");
        s.push_str(&v.reason.replace("\r\n", "\n"));
        if !s.ends_with('\n') {
            s.push('\n');
        }
    } else {
        s.push_str(&text_body(&v.reason));
    }
    s.into_bytes()
}

/// compose_notify - the mailto notification (RFC 5436 §2.3, §2.7).
pub fn compose_notify(
    n: &NotifyAction,
    m: &crate::notify::Mailto,
    fields: &[Field],
    from: &str,
    owner: &str,
    host: &str,
) -> Vec<u8> {
    let value = |k: &str| fields.iter().find(|f| f.is(k)).map(|f| f.value());
    let subject = m
        .subject
        .clone()
        .or_else(|| n.message.clone())
        .unwrap_or_else(|| {
            format!(
                "[SIEVE] New mail notification{}",
                value("subject")
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            )
        });
    let body = m
        .body
        .clone()
        .or_else(|| n.message.clone())
        .unwrap_or_else(|| "Notification of new message.\n".to_string());
    let mut s = String::new();
    s.push_str("X-Sieve: Posthorn Sieve\n");
    s.push_str(&format!("Message-ID: {}\n", message_id(host)));
    s.push_str(&format!("Date: {}\n", posthorn_mail::date::now_rfc5322()));
    s.push_str(&format!("From: {}\n", encode_value(from)));
    s.push_str(&format!("To: {}\n", m.to.join(", ")));
    if !m.cc.is_empty() {
        s.push_str(&format!("Cc: {}\n", m.cc.join(", ")));
    }
    s.push_str(&format!("Subject: {}\n", encode_value(&subject)));
    for (k, v) in &m.headers {
        s.push_str(&format!("{k}: {}\n", encode_value(v)));
    }
    s.push_str(&format!(
        "Auto-Submitted: auto-notified; owner-email=\"{owner}\"\nPrecedence: bulk\n"
    ));
    s.push_str(match n.importance {
        1 => "X-Priority: 1 (Highest)\nImportance: High\n",
        3 => "X-Priority: 5 (Lowest)\nImportance: Low\n",
        _ => "X-Priority: 3 (Normal)\nImportance: Normal\n",
    });
    s.push_str(&text_body(&body));
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(h: &str) -> Vec<Field> {
        message::parse_header(h.as_bytes()).0
    }

    #[test]
    fn rfc5230_rules() {
        let me = vec!["bob@example.org".to_string()];
        let ok = f("From: ann@x.org\nTo: Bob <bob@example.org>\nSubject: hi\n\n");
        assert_eq!(refuse(&ok, "ann@x.org", &me), None);
        assert!(refuse(&ok, "", &me).is_some());
        for s in [
            "MAILER-DAEMON@x.org",
            "owner-list@x.org",
            "list-request@x.org",
            "bob@example.org",
        ] {
            assert!(refuse(&ok, s, &me).is_some(), "{s}");
        }
        for h in [
            "To: bob@example.org\nAuto-Submitted: auto-generated\n\n",
            "To: bob@example.org\nPrecedence: bulk\n\n",
            "To: bob@example.org\nList-Id: <l.x.org>\n\n",
            "To: carl@example.org\n\n",
        ] {
            assert!(refuse(&f(h), "ann@x.org", &me).is_some(), "{h}");
        }
        assert_eq!(
            refuse(
                &f("To: x@y.z\nCc: bob@example.org\nAuto-Submitted: no\n\n"),
                "ann@x.org",
                &me
            ),
            None
        );
    }

    #[test]
    fn reply_shape() {
        let v = VacationAction {
            seconds: 86400,
            subject: None,
            from: None,
            addresses: vec![],
            mime: false,
            handle: "h".into(),
            reason: "Away: café\r\n".into(),
        };
        let m = compose(
            &v,
            &f("Subject: hi\nMessage-ID: <1@x>\nReferences: <0@x>\n\n"),
            "bob@example.org",
            "ann@x.org",
            "h.example",
        );
        let t = String::from_utf8(m).unwrap();
        assert!(t.contains("Subject: Auto: hi\n"), "{t}");
        assert!(
            t.contains("In-Reply-To: <1@x>\nReferences: <0@x> <1@x>\n"),
            "{t}"
        );
        assert!(t.contains("Auto-Submitted: auto-replied"), "{t}");
        assert!(t.contains("To: <ann@x.org>"), "{t}");
        assert!(t.contains("base64"), "{t}");
    }
}
