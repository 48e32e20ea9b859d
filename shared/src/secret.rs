//! `Secret`: a string that never prints itself.
//!
//! Every credential the library handles (authKey, S3 secret keys, session tokens, webhook
//! secrets) is held in a `Secret`, so a `{:?}` or `{}` in a log line or an error message can
//! only ever show `[redacted]`. Reading the value is an explicit `expose()` call.
//!
//! Every `Secret` made also joins the activation's set of known secret values, which the
//! runtime scrubs from every result and log line at the action boundary (`redact_text`,
//! `redact_value`): a server or a user's input that echoes a credential back into an error
//! message cannot carry it out.

use std::fmt;
use std::sync::Mutex;

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// Serialises the unit tests that use the process-wide set of known secrets.
#[cfg(test)]
pub(crate) static TEST_LOCK: Mutex<()> = Mutex::new(());

/// Percent-encoding that keeps RFC 3986 unreserved characters (what URL builders use).
const UNRESERVED_KEPT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The secret values (and their encoded forms) seen in this activation, longest first.
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A credential whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// A new random secret (a webhook secret, a `stateKey`): 32 bytes from the operating
    /// system, as 64 hex characters; `what` names it in the error.
    pub fn generate(what: &str) -> Result<Secret, String> {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf).map_err(|e| format!("cannot generate a {what}: {e}"))?;
        Ok(Secret::new(crate::events::hex(&buf)))
    }

    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        remember(&value);
        Secret(value)
    }

    /// The credential itself; call only where it is sent to its owner's service.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the credential is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a redacted secret looks like in results and logs.
pub const REDACTED: &str = "[redacted]";

/// Adds a secret value to the activation's known secrets, with the forms an echo may take:
/// percent-encoded (URLs) and, for `user:password` pairs, base64 (a Basic auth header).
pub fn remember(value: &str) {
    if value.trim().is_empty() {
        return;
    }
    let mut forms = vec![value.to_string()];
    // Both common escape sets: everything but alphanumerics, and everything but unreserved.
    for set in [NON_ALPHANUMERIC, UNRESERVED_KEPT] {
        let encoded = utf8_percent_encode(value, set).to_string();
        if encoded != value && !forms.contains(&encoded) {
            forms.push(encoded);
        }
    }
    if value.contains(':') {
        forms.push(base64::engine::general_purpose::STANDARD.encode(value));
    }
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !known.contains(&form) {
            known.push(form);
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    known.sort_by_key(|k| std::cmp::Reverse(k.len()));
}

/// Remembers the password (and the whole user-info) of every `scheme://user:password@host`
/// in `text`, so a URL with credentials given as a parameter is scrubbed wherever it goes.
pub fn remember_userinfo(text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let after = &rest[i + 3..];
        let authority_end = after.find(['/', '?', '#', ' ', '"', '\'']).unwrap_or(after.len());
        let authority = &after[..authority_end];
        if let Some((userinfo, _host)) = authority.rsplit_once('@') {
            remember(userinfo);
            if let Some((_user, password)) = userinfo.split_once(':') {
                remember(password);
                if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                    remember(&decoded);
                }
            }
        }
        rest = after;
    }
}

/// Forgets every known secret (a new activation starts).
pub fn forget_all() {
    KNOWN.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// `text` with every known secret value replaced by `[redacted]`.
pub fn redact_text(text: &str) -> String {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for k in known.iter() {
        if out.contains(k.as_str()) {
            out = out.replace(k.as_str(), REDACTED);
        }
    }
    out
}

/// Scrubs every string in `value` (keys too). With `keep_whole`, a string that is exactly one
/// known secret stays: that is a deliberate disclosure (a generated token shown once), while a
/// secret inside a longer string is an echo in a message.
pub fn redact_value(value: &mut Value, keep_whole: bool) {
    match value {
        Value::String(s) => {
            let whole = keep_whole && KNOWN.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|k| k == s);
            if !whole {
                let r = redact_text(s);
                if r != *s {
                    *s = r;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, keep_whole)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                redact_value(&mut v, keep_whole);
                map.insert(redact_text(&k), v);
            }
        }
        _ => {}
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn known_secrets_are_scrubbed_in_every_form() {
        let _guard = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // As `AuthKey::parse` holds it: the key part and the whole pair.
        let _key = Secret::new("K3yV4lue/+x");
        let _pair = Secret::new("uuid-1:K3yV4lue/+x");
        remember_userinfo("see http://alice:p%40ss-W0rd@host:9000/x and more");
        let text = "a=uuid-1:K3yV4lue/+x b=K3yV4lue%2F%2Bx c=dXVpZC0xOkszeVY0bHVlLyt4 d=p@ss-W0rd e=alice:p%40ss-W0rd";
        let out = redact_text(text);
        for leak in ["K3yV4lue", "dXVpZC0x", "p@ss-W0rd", "p%40ss"] {
            assert!(!out.contains(leak), "{out}");
        }
        let mut v = serde_json::json!({"token": "p@ss-W0rd", "error": "bad p@ss-W0rd"});
        redact_value(&mut v, true);
        assert_eq!(v, serde_json::json!({"token": "p@ss-W0rd", "error": "bad [redacted]"}));
        redact_value(&mut v, false);
        assert_eq!(v["token"], REDACTED);
    }
}
