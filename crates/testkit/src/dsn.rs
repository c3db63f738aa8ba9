//! Delivery status notifications read field by field by Python's `email` module (an
//! independent MIME parser, not ours): the one DSN reader of the tests.

use crate::mbox::python;

const PARSE_DSN_PY: &str = r#"
import email, email.policy, json, sys
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
out = {"content_type": msg.get_content_type(),
       "report_type": msg.get_param("report-type"),
       "subject": msg["Subject"], "to": msg["To"], "from": msg["From"],
       "auto_submitted": msg["Auto-Submitted"],
       "parts": [], "human": None,
       "per_message": {}, "recipients": [], "returned": None}
# Only the report's own parts: a returned message may itself be a report.
for part in (msg.get_payload() if msg.is_multipart() else []):
    ctype = part.get_content_type()
    out["parts"].append(ctype)
    if ctype == "text/plain" and out["human"] is None:
        out["human"] = part.get_payload(decode=True).decode("utf-8", "replace")
    elif ctype == "message/delivery-status":
        blocks = part.get_payload()
        out["per_message"] = dict(blocks[0].items())
        out["recipients"] = [dict(b.items()) for b in blocks[1:]]
    elif ctype == "text/rfc822-headers":
        out["returned"] = part.get_payload()
    elif ctype == "message/rfc822":
        out["returned"] = part.get_payload(0).as_string()
json.dump(out, sys.stdout)
"#;

/// A DSN as Python's `email` module reads it: `content_type`, `report_type`, `subject`,
/// `parts` (content types of the report's parts), `human` (the text part), `per_message`
/// and `recipients` (the delivery-status fields), `returned` (the returned message or
/// headers).
pub fn parse_dsn(raw: &[u8]) -> serde_json::Value {
    let out = python(PARSE_DSN_PY, &[], raw);
    serde_json::from_slice(&out).expect("DSN JSON")
}

/// Field `name` of a delivery-status block, as a string ("" if missing).
pub fn field<'a>(block: &'a serde_json::Value, name: &str) -> &'a str {
    block[name].as_str().unwrap_or_default()
}
