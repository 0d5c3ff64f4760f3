//! body - the body extension's transforms (RFC 5173): :raw, :content and
//! :text, over the MIME structure mailparse finds.

use crate::interp::Message;
use crate::script::Transform;

/// extract - the strings a body test compares: the raw body, or the
/// decoded parts whose type matches.
pub fn extract(msg: &Message, t: &Transform, types: Option<&[String]>) -> Vec<String> {
    if let Transform::Raw = t {
        return vec![String::from_utf8_lossy(&msg.body).into_owned()];
    }
    let mut whole = crate::message::render_header(&msg.fields);
    whole.push(b'\n');
    whole.extend_from_slice(&msg.body);
    let Ok(mail) = mailparse::parse_mail(&whole) else {
        return vec![String::from_utf8_lossy(&msg.body).into_owned()];
    };
    let mut out = Vec::new();
    walk(&mail, t, types, &mut out, 0);
    out
}

/// type_matches - RFC 5173 §5.2: "" matches all, "text" all of text/*,
/// "text/plain" exactly.
fn type_matches(want: &str, mime: &str) -> bool {
    let want = want.to_ascii_lowercase();
    let (top, _) = mime.split_once('/').unwrap_or((mime, ""));
    want.is_empty() || want == mime || (!want.contains('/') && want == top)
}

fn walk(
    p: &mailparse::ParsedMail<'_>,
    t: &Transform,
    types: Option<&[String]>,
    out: &mut Vec<String>,
    depth: usize,
) {
    if depth > 20 || out.len() > 1000 {
        return;
    }
    let mime = p.ctype.mimetype.to_ascii_lowercase();
    let multipart = mime.starts_with("multipart/");
    match t {
        Transform::Content(_) => {
            let types = types.unwrap_or(&[]);
            if types.iter().any(|w| type_matches(w, &mime)) && !multipart {
                let text = if mime.starts_with("text/") {
                    p.get_body().ok()
                } else {
                    p.get_body_raw()
                        .ok()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                };
                if let Some(text) = text {
                    out.push(text);
                }
            }
        }
        _ => {
            if (mime.starts_with("text/") || (mime.is_empty() && p.subparts.is_empty()))
                && let Ok(text) = p.get_body()
            {
                if mime == "text/html" {
                    out.push(strip_html(&text));
                } else {
                    out.push(text);
                }
            }
        }
    }
    for s in &p.subparts {
        walk(s, t, types, out, depth + 1);
    }
}

/// strip_html - HTML reduced to its text, roughly, as :text wants it.
fn strip_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}
