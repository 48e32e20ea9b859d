//! Changes and the events built from them: CloudEvents 1.0 structured JSON with
//! deterministic ids, the batch payload, a validator for CloudEvents we produce or receive,
//! and the value codec for HTTP binary-mode `ce-*` headers. No I/O.
//!
//! This module does not build a source's legacy payload (`format=legacy`): the source plugin
//! does that in `Lister::legacy_event`; here we only parse the `format` parameter. It does
//! not filter changes either (`filter` does), nor deliver anything (`delivery` does).
//!
//! # Event shape
//! - `type` = `{type_prefix}.created|updated|deleted` (e.g. `org.openwhisk.feeds.s3.object.created`).
//! - `source` = the lister's URI-reference (endpoint and container); `subject` = the key, as
//!   the spec's blob-storage convention suggests.
//! - `id` = [`event_id`]: the same change detected again (a retried poll) gets the same id.
//! - `time` = the entry's `lastModified` for created/updated when it is RFC 3339, else the
//!   detection time.
//! - `data` = the lister's data context (bucket, endpoint…) + every entry attribute + `key` +
//!   `change`; a deleted key carries only the context, `key`, `change` and
//!   `previousVersionHash`.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::change::Record;
pub use crate::change::{Change, ChangeKind};
use crate::params::ParamError;

/// What every event of one trigger shares: where it comes from and how it is named.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventContext {
    /// CloudEvents `source` (a URI-reference naming endpoint and container).
    pub source: String,
    /// Prefix of CloudEvents `type`, e.g. `org.openwhisk.feeds.s3.object`.
    pub type_prefix: String,
    /// Fields copied into every event's `data` (e.g. `bucket`, `endpoint`).
    pub data_context: Map<String, Value>,
    /// A per-trigger constant mixed into ids (e.g. `/namespace/trigger`), so two triggers
    /// watching the same bucket do not emit equal ids.
    pub id_salt: String,
}

/// Lower-case hex of `bytes`: every hex string the crate writes (ids, names, secrets).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 over length-prefixed `fields` (u64 big-endian length, then the bytes), so no two
/// lists of fields hash alike; callers may add more before finishing.
pub fn hash_fields(fields: &[&str]) -> Sha256 {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher
}

/// The deterministic CloudEvents `id` of a change.
///
/// Hex of the first 16 bytes of SHA-256 over the length-prefixed fields (u64 big-endian
/// length, then the bytes) `id_salt`, `source`, kind, key, version, then `seq` as u64
/// big-endian. The version field is `v:<entry version>` when the change has an entry
/// (created/updated) and `h:<old version hash as 16 hex digits>` otherwise (deleted).
///
/// Same inputs give the same id, so a poll that is retried before its state commit
/// re-emits the same ids and consumers can drop duplicates by `source`+`id`. `seq` is the
/// state's commit counter at detection: a key deleted and later re-created with identical
/// content is detected under a different `seq` and gets a new id.
pub fn event_id(ctx: &EventContext, change: &Change, seq: u64) -> String {
    let version = match (&change.entry, change.old_version) {
        (Some(entry), _) => format!("v:{}", entry.version),
        (None, Some(hash)) => format!("h:{hash:016x}"),
        (None, None) => String::new(),
    };
    let mut hasher = hash_fields(&[&ctx.id_salt, &ctx.source, change.kind.as_str(), &change.key, &version]);
    hasher.update(seq.to_be_bytes());
    hex(&hasher.finalize()[..16])
}

/// A change as a CloudEvents 1.0 structured-mode JSON event (see the module doc for the shape).
///
/// `time` is used when the entry has no RFC 3339 `lastModified` attribute (and for deletes).
pub fn cloud_event(ctx: &EventContext, change: &Change, seq: u64, time: DateTime<Utc>) -> Value {
    let mut data = ctx.data_context.clone();
    let entry = change.entry.as_ref().filter(|_| change.kind != ChangeKind::Deleted);
    if let Some(entry) = entry {
        for (name, value) in &entry.attrs {
            data.insert(name.clone(), value.clone());
        }
    }
    data.insert("key".to_string(), Value::String(change.key.clone()));
    data.insert("change".to_string(), Value::String(change.kind.as_str().to_string()));
    if change.kind == ChangeKind::Deleted {
        if let Some(hash) = change.old_version {
            data.insert("previousVersionHash".to_string(), Value::String(format!("{hash:016x}")));
        }
    }

    let time = entry
        .and_then(|e| e.attrs.get("lastModified"))
        .and_then(Value::as_str)
        .filter(|t| DateTime::parse_from_rfc3339(t).is_ok())
        .map(str::to_string)
        .unwrap_or_else(|| time.to_rfc3339_opts(SecondsFormat::AutoSi, true));

    let mut event = Map::new();
    let mut put = |name: &str, value: Value| {
        event.insert(name.to_string(), value);
    };
    put("specversion", Value::from("1.0"));
    put("id", Value::from(event_id(ctx, change, seq)));
    put("source", Value::from(ctx.source.as_str()));
    put("type", Value::from(format!("{}.{}", ctx.type_prefix, change.kind.as_str())));
    // A key with control characters is a legal S3 key but not a legal CloudEvents string;
    // `subject` is optional, and `data.key` still carries the key.
    if !change.key.is_empty() && !change.key.chars().any(forbidden_char) {
        put("subject", Value::from(change.key.as_str()));
    }
    put("time", Value::from(time));
    put("datacontenttype", Value::from("application/json"));
    put("data", Value::Object(data));
    Value::Object(event)
}

/// The deterministic CloudEvents `id` of a log source's record.
///
/// Hex of the first 16 bytes of SHA-256 over the length-prefixed fields (u64 big-endian
/// length, then the bytes) `id_salt`, `source`, `record`, and the record's own id. It depends
/// on nothing a poll chose (no commit number, no cursor), so a record read again after a
/// crash, or redelivered by the source, gets the same id.
fn record_event_id(ctx: &EventContext, record: &Record) -> String {
    hex(&hash_fields(&[&ctx.id_salt, &ctx.source, "record", &record.id]).finalize()[..16])
}

/// A log source's record as a CloudEvents 1.0 structured-mode JSON event: `type`
/// `event_type` (the source's, by default `{type_prefix}.{kind}`), `subject` the record's
/// key, `time` the record's own time or else when it was read (`time`), `data` the data
/// context plus the record's attributes (deletes included: a log says what it knows), `key`
/// and `change`.
pub fn record_event(ctx: &EventContext, record: &Record, event_type: &str, time: DateTime<Utc>) -> Value {
    let mut data = ctx.data_context.clone();
    for (name, value) in &record.attrs {
        data.insert(name.clone(), value.clone());
    }
    // A source's own `key` attribute (null, or base64 of binary bytes) stays as it gave it.
    data.entry("key").or_insert_with(|| Value::String(record.key.clone()));
    data.insert("change".to_string(), Value::String(record.kind.as_str().to_string()));
    let mut event = Map::new();
    event.insert("specversion".to_string(), Value::from("1.0"));
    event.insert("id".to_string(), Value::from(record_event_id(ctx, record)));
    event.insert("source".to_string(), Value::from(ctx.source.as_str()));
    event.insert("type".to_string(), Value::from(event_type));
    if !record.key.is_empty() && !record.key.chars().any(forbidden_char) {
        event.insert("subject".to_string(), Value::from(record.key.as_str()));
    }
    let time = record.time.unwrap_or(time);
    event.insert("time".to_string(), Value::from(time.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
    event.insert("datacontenttype".to_string(), Value::from("application/json"));
    event.insert("data".to_string(), Value::Object(data));
    Value::Object(event)
}

/// Prefix of the parameters OpenWhisk reserves for itself (`__ow_headers`, `__ow_method`, …).
const RESERVED_PREFIX: &str = "__ow_";

/// Removes every platform-reserved field (`__ow_*`) from a fire's payload: at the top level,
/// where the controller would merge it over its own (`__ow_headers` carries the fire's
/// `authorization`), and from each event of a `{"events": [...]}` batch. Returns how many were
/// removed. Payloads are built from stored data (an outbox, a document), which must never speak
/// for the platform, whatever it says.
pub fn strip_reserved(payload: &mut Value) -> usize {
    fn strip(map: &mut Map<String, Value>) -> usize {
        let before = map.len();
        map.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
        before - map.len()
    }
    let Value::Object(top) = payload else { return 0 };
    let mut removed = strip(top);
    if let Some(Value::Array(events)) = top.get_mut("events") {
        for event in events.iter_mut() {
            if let Value::Object(e) = event {
                removed += strip(e);
            }
        }
    }
    removed
}

/// True when `payload` holds a field `strip_reserved` would remove.
pub fn has_reserved(payload: &Value) -> bool {
    let reserved = |m: &Map<String, Value>| m.keys().any(|k| k.starts_with(RESERVED_PREFIX));
    match payload {
        Value::Object(top) => {
            reserved(top)
                || top
                    .get("events")
                    .and_then(Value::as_array)
                    .is_some_and(|events| events.iter().any(|e| e.as_object().is_some_and(reserved)))
        }
        _ => false,
    }
}

/// The payload of one trigger fire that carries several events: `{"events": [...]}`.
///
/// A trigger's parameters must be a JSON object, hence the wrapper instead of the JSON
/// batch format's bare array.
pub fn batch_payload(events: Vec<Value>) -> Value {
    let mut payload = Map::new();
    payload.insert("events".to_string(), Value::Array(events));
    Value::Object(payload)
}

/// The payload format a trigger fires with (parameter `format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CloudEvents 1.0 structured JSON.
    CloudEvents,
    /// The source's legacy payload shape (`Lister::legacy_event`).
    Legacy,
}

impl Format {
    /// Parses the `format` parameter: `cloudevents` or `legacy` (any case).
    pub fn parse(value: &str) -> Result<Format, ParamError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "cloudevents" => Ok(Format::CloudEvents),
            "legacy" => Ok(Format::Legacy),
            _ => Err(ParamError::invalid("format", "cloudevents or legacy", &Value::from(value))),
        }
    }

    /// The parameter value naming this format.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CloudEvents => "cloudevents",
            Format::Legacy => "legacy",
        }
    }

    /// The payload fired for an event in this format: the CloudEvent itself, or the source's
    /// legacy shape (built only when asked for) carrying the CloudEvent's id too, so
    /// duplicates stay recognisable.
    pub fn payload(self, cloud_event: Value, legacy: impl FnOnce() -> Option<Value>) -> Value {
        match self {
            Format::CloudEvents => cloud_event,
            Format::Legacy => {
                let mut legacy = legacy().unwrap_or(Value::Null);
                if let (Value::Object(obj), Some(id)) = (&mut legacy, cloud_event.get("id")) {
                    obj.entry("id").or_insert(id.clone());
                }
                legacy
            }
        }
    }
}

/// Why a JSON value is not a valid CloudEvent, or a header value does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudEventError {
    /// The event is not a JSON object.
    NotAnObject,
    /// A required attribute is absent or null.
    Missing(&'static str),
    /// A required attribute is an empty string.
    Empty(&'static str),
    /// `specversion` is not "1.0" (the value received).
    SpecVersion(String),
    /// An attribute name outside `[a-z0-9]` or not starting with a letter.
    BadName(String),
    /// An attribute value of a type the attribute cannot have.
    WrongType {
        /// The attribute.
        name: String,
        /// What it must be.
        expected: &'static str,
    },
    /// An attribute string holding a control character or a Unicode noncharacter.
    ForbiddenChar(String),
    /// `time` is not an RFC 3339 timestamp (the value received).
    BadTime(String),
    /// Both `data` and `data_base64` are present.
    DataConflict,
    /// A header value with a `%` not followed by two hex digits, or a broken quoted string.
    BadEscape(String),
    /// A header value whose percent-decoded bytes are not UTF-8.
    NotUtf8,
}

impl fmt::Display for CloudEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudEventError::NotAnObject => f.write_str("cloudevent: expected a JSON object"),
            CloudEventError::Missing(name) => write!(f, "cloudevent: required attribute '{name}' is missing"),
            CloudEventError::Empty(name) => write!(f, "cloudevent: attribute '{name}' must not be empty"),
            CloudEventError::SpecVersion(got) => write!(f, "cloudevent: specversion must be \"1.0\", got {got}"),
            CloudEventError::BadName(name) => write!(
                f,
                "cloudevent: attribute name '{}' must be lowercase letters and digits starting with a letter",
                shorten(name)
            ),
            CloudEventError::WrongType { name, expected } => {
                write!(f, "cloudevent: attribute '{name}' must be {expected}")
            }
            CloudEventError::ForbiddenChar(name) => {
                write!(f, "cloudevent: attribute '{name}' contains a control character or noncharacter")
            }
            CloudEventError::BadTime(got) => write!(f, "cloudevent: time must be RFC 3339, got {}", shorten(got)),
            CloudEventError::DataConflict => f.write_str("cloudevent: data and data_base64 are mutually exclusive"),
            CloudEventError::BadEscape(got) => write!(f, "cloudevent header: bad escape in {}", shorten(got)),
            CloudEventError::NotUtf8 => f.write_str("cloudevent header: percent-decoded value is not UTF-8"),
        }
    }
}

impl std::error::Error for CloudEventError {}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 60 {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(57).collect();
        format!("{head:?}...")
    }
}

/// Attributes whose value must be a string.
const STRING_ATTRIBUTES: [&str; 8] =
    ["specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time"];

/// Checks a structured-mode JSON CloudEvent against the 1.0 rules.
///
/// Required `specversion` ("1.0"), `id`, `source`, `type` (non-empty strings); names
/// `[a-z0-9]` starting with a letter (names over 20 characters are allowed: the limit is a
/// recommendation); known attributes are strings, extensions
/// strings, booleans or 32-bit integers; strings without control characters; `time` RFC
/// 3339; `data_base64` valid base64; `data` and `data_base64` not both. A `null` attribute
/// counts as absent. `source` and `dataschema` are not parsed as URIs. Never panics.
pub fn validate_cloud_event(v: &Value) -> Result<(), CloudEventError> {
    let Value::Object(event) = v else { return Err(CloudEventError::NotAnObject) };
    let present = |name: &str| event.get(name).filter(|v| !v.is_null());

    for name in ["specversion", "id", "source", "type"] {
        match present(name) {
            None => return Err(CloudEventError::Missing(name)),
            Some(Value::String(s)) if s.is_empty() => return Err(CloudEventError::Empty(name)),
            Some(Value::String(_)) => {}
            Some(_) => return Err(CloudEventError::WrongType { name: name.to_string(), expected: "a string" }),
        }
    }
    if let Some(version) = present("specversion").and_then(Value::as_str) {
        if version != "1.0" {
            return Err(CloudEventError::SpecVersion(shorten(version)));
        }
    }

    for (name, value) in event {
        if name == "data" {
            continue;
        }
        if name == "data_base64" {
            let decodes = match value {
                Value::Null => true,
                Value::String(s) => BASE64.decode(s).is_ok(),
                _ => false,
            };
            if !decodes {
                return Err(CloudEventError::WrongType { name: name.clone(), expected: "a base64 string" });
            }
            continue;
        }
        if !valid_attribute_name(name) {
            return Err(CloudEventError::BadName(name.clone()));
        }
        let is_known = STRING_ATTRIBUTES.contains(&name.as_str());
        match value {
            Value::Null => {}
            Value::String(s) => {
                if s.chars().any(forbidden_char) {
                    return Err(CloudEventError::ForbiddenChar(name.clone()));
                }
            }
            Value::Bool(_) if !is_known => {}
            Value::Number(n) if !is_known => {
                if n.as_i64().and_then(|i| i32::try_from(i).ok()).is_none() {
                    return Err(CloudEventError::WrongType { name: name.clone(), expected: "a 32-bit integer" });
                }
            }
            _ if is_known => return Err(CloudEventError::WrongType { name: name.clone(), expected: "a string" }),
            _ => {
                return Err(CloudEventError::WrongType {
                    name: name.clone(),
                    expected: "a string, a boolean or a 32-bit integer",
                })
            }
        }
    }

    if let Some(time) = present("time").and_then(Value::as_str) {
        if DateTime::parse_from_rfc3339(time).is_err() {
            return Err(CloudEventError::BadTime(time.to_string()));
        }
    }
    if event.contains_key("data") && event.contains_key("data_base64") {
        return Err(CloudEventError::DataConflict);
    }
    Ok(())
}

fn valid_attribute_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z')) && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Characters a CloudEvents String must not hold: controls and Unicode noncharacters.
fn forbidden_char(c: char) -> bool {
    let n = c as u32;
    c.is_control() || (0xFDD0..=0xFDEF).contains(&n) || (n & 0xFFFE) == 0xFFFE
}

/// Percent-encodes an attribute value for a binary-mode `ce-*` HTTP header.
///
/// Space, `"`, `%` and every character outside printable ASCII (U+0021..U+007E) become
/// `%XY` per UTF-8 byte, upper-case hex (HTTP protocol binding 3.1.3.2).
pub fn encode_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '"' || c == '%' || !('!'..='~').contains(&c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes a binary-mode `ce-*` header value back into the attribute value.
///
/// Surrounding spaces and tabs are dropped; a value that is one RFC 7230 quoted string is
/// unquoted first (older encoders produced those); then exactly one round of
/// percent-decoding, accepting lower-case hex and needlessly encoded characters. A `%` not
/// followed by two hex digits, a broken quoted string, or bytes that are not UTF-8
/// (overlong forms included) are errors.
pub fn decode_header_value(raw: &str) -> Result<String, CloudEventError> {
    let trimmed = raw.trim_matches(|c| c == ' ' || c == '\t');
    let unquoted = if trimmed.starts_with('"') { unquote(trimmed)? } else { trimmed.to_string() };

    let bytes = unquoted.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| CloudEventError::BadEscape(raw.to_string()))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| CloudEventError::NotUtf8)
}

/// Unquotes `"…"` with backslash escapes; the quoted string must be the whole value.
fn unquote(value: &str) -> Result<String, CloudEventError> {
    let bad = || CloudEventError::BadEscape(value.to_string());
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().skip(1);
    loop {
        match chars.next() {
            None => return Err(bad()),
            Some('"') => break,
            Some('\\') => out.push(chars.next().ok_or_else(bad)?),
            Some(c) => out.push(c),
        }
    }
    if chars.next().is_some() {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::change::Entry;
    use chrono::TimeZone;

    #[test]
    fn reserved_platform_fields_are_stripped_from_payloads_and_batches() {
        let mut single = serde_json::json!({"id": "1", "data": {"__ow_headers": "kept: not the platform's"},
            "__ow_headers": {"authorization": "Basic forged"}, "__ow_method": "post", "__owner": "kept"});
        assert!(has_reserved(&single));
        assert_eq!(strip_reserved(&mut single), 2);
        assert_eq!(
            single,
            serde_json::json!({"id": "1", "data": {"__ow_headers": "kept: not the platform's"}, "__owner": "kept"})
        );
        assert!(!has_reserved(&single));
        let mut batch =
            serde_json::json!({"events": [{"id": "a", "__ow_user": "x"}, {"id": "b"}, 7], "__ow_path": "/"});
        assert!(has_reserved(&batch));
        assert_eq!(strip_reserved(&mut batch), 2);
        assert_eq!(batch, serde_json::json!({"events": [{"id": "a"}, {"id": "b"}, 7]}));
        for mut other in [serde_json::json!([1]), serde_json::json!("s"), serde_json::json!(null)] {
            assert!(!has_reserved(&other));
            assert_eq!(strip_reserved(&mut other), 0);
        }
    }
    use serde_json::json;

    fn ctx() -> EventContext {
        let Value::Object(data_context) = json!({"bucket": "photos", "endpoint": "https://s3.eu-west-1.amazonaws.com"})
        else {
            unreachable!()
        };
        EventContext {
            source: "https://s3.eu-west-1.amazonaws.com/photos".to_string(),
            type_prefix: "org.openwhisk.feeds.s3.object".to_string(),
            data_context,
            id_salt: "/guest/photoTrigger".to_string(),
        }
    }

    fn entry(key: &str, etag: &str) -> Entry {
        let Value::Object(attrs) = json!({
            "etag": etag,
            "size": 1024,
            "lastModified": "2026-11-20T08:15:30.000Z",
            "storageClass": "STANDARD",
        }) else {
            unreachable!()
        };
        Entry { key: key.to_string(), version: etag.to_string(), attrs }
    }

    fn change(kind: ChangeKind) -> Change {
        let key = "2026/cat.jpg";
        match kind {
            ChangeKind::Created => {
                Change { kind, key: key.into(), entry: Some(entry(key, "abc123")), old_version: None }
            }
            ChangeKind::Updated => Change {
                kind,
                key: key.into(),
                entry: Some(entry(key, "def456")),
                old_version: Some(0x0123_4567_89ab_cdef),
            },
            ChangeKind::Deleted => {
                Change { kind, key: key.into(), entry: None, old_version: Some(0x0123_4567_89ab_cdef) }
            }
        }
    }

    fn detected_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 21, 0, 0).unwrap()
    }

    fn doc_record(kind: ChangeKind) -> Record {
        let Value::Object(attrs) = json!({"rev": "2-abc", "seq": "12-g1AAAA"}) else { unreachable!() };
        Record { id: "doc1@2-abc".to_string(), key: "doc1".to_string(), kind, attrs, time: None }
    }

    #[test]
    fn record_events_take_their_id_from_the_record_alone() {
        let record = doc_record(ChangeKind::Deleted);
        let event = record_event(&ctx(), &record, "org.openwhisk.feeds.s3.object.deleted", detected_at());
        assert_eq!(event["id"], record_event_id(&ctx(), &record));
        assert_eq!(event["type"], "org.openwhisk.feeds.s3.object.deleted");
        assert_eq!(event["subject"], "doc1");
        assert_eq!(event["time"], "2026-11-23T21:00:00Z");
        // A log record keeps its facts when deleted, unlike a listing's delete.
        assert_eq!(event["data"]["rev"], "2-abc");
        assert_eq!(event["data"]["bucket"], "photos");
        assert_eq!(event["data"]["change"], "deleted");
        assert_eq!(validate_cloud_event(&event), Ok(()));
        // Read again later (another poll, another time): the same id.
        let later = record_event(&ctx(), &record, "t", detected_at() + chrono::Duration::hours(1));
        assert_eq!(later["id"], event["id"]);
        // Another record, trigger or source: another id.
        let mut other = record.clone();
        other.id = "doc1@3-def".to_string();
        let salted = EventContext { id_salt: "/guest/other".to_string(), ..ctx() };
        let sourced = EventContext { source: "couchdb://elsewhere".to_string(), ..ctx() };
        let ids = [
            record_event_id(&ctx(), &record),
            record_event_id(&ctx(), &other),
            record_event_id(&salted, &record),
            record_event_id(&sourced, &record),
        ];
        for (i, a) in ids.iter().enumerate() {
            assert_eq!(a.len(), 32);
            assert!(ids[i + 1..].iter().all(|b| b != a), "{ids:?}");
        }
    }

    /// Snapshot text: serde_json's own printer, since insta's serializer cannot print the
    /// exact (arbitrary-precision) numbers serde_json is built with.
    pub(crate) fn pretty(value: &impl serde::Serialize) -> String {
        serde_json::to_string_pretty(value).expect("JSON")
    }

    #[test]
    fn created_event() {
        let event = cloud_event(&ctx(), &change(ChangeKind::Created), 7, detected_at());
        validate_cloud_event(&event).unwrap();
        insta::assert_snapshot!(pretty(&event));
    }

    #[test]
    fn updated_event() {
        let event = cloud_event(&ctx(), &change(ChangeKind::Updated), 8, detected_at());
        validate_cloud_event(&event).unwrap();
        insta::assert_snapshot!(pretty(&event));
    }

    #[test]
    fn deleted_event() {
        let event = cloud_event(&ctx(), &change(ChangeKind::Deleted), 9, detected_at());
        validate_cloud_event(&event).unwrap();
        insta::assert_snapshot!(pretty(&event));
    }

    #[test]
    fn time_falls_back_to_detection_time_when_last_modified_is_absent_or_bad() {
        let mut c = change(ChangeKind::Created);
        let attrs = &mut c.entry.as_mut().unwrap().attrs;
        attrs.insert("lastModified".into(), json!("yesterday"));
        let event = cloud_event(&ctx(), &c, 1, detected_at());
        assert_eq!(event["time"], "2026-11-23T21:00:00Z");
        validate_cloud_event(&event).unwrap();
    }

    #[test]
    fn ids_are_stable_and_depend_on_every_input() {
        let base = event_id(&ctx(), &change(ChangeKind::Created), 7);
        assert_eq!(base.len(), 32);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(base, event_id(&ctx(), &change(ChangeKind::Created), 7), "same inputs, same id");

        let mut others = vec![
            event_id(&ctx(), &change(ChangeKind::Created), 8),
            event_id(&ctx(), &change(ChangeKind::Updated), 7),
            event_id(&ctx(), &change(ChangeKind::Deleted), 7),
        ];
        let mut salted = ctx();
        salted.id_salt = "/guest/otherTrigger".into();
        others.push(event_id(&salted, &change(ChangeKind::Created), 7));
        let mut sourced = ctx();
        sourced.source = "https://s3.eu-west-1.amazonaws.com/other".into();
        others.push(event_id(&sourced, &change(ChangeKind::Created), 7));
        let mut rekeyed = change(ChangeKind::Created);
        rekeyed.key = "2026/dog.jpg".into();
        others.push(event_id(&ctx(), &rekeyed, 7));
        let mut reversioned = change(ChangeKind::Created);
        reversioned.entry.as_mut().unwrap().version = "zzz".into();
        others.push(event_id(&ctx(), &reversioned, 7));
        let mut old_hash = change(ChangeKind::Deleted);
        old_hash.old_version = Some(1);
        others.push(event_id(&ctx(), &old_hash, 7));
        for other in &others {
            assert_ne!(&base, other);
        }
        // The length prefix keeps field boundaries: moving a character between salt and
        // source changes the id.
        let a = EventContext { id_salt: "ab".into(), source: "c".into(), ..ctx() };
        let b = EventContext { id_salt: "a".into(), source: "bc".into(), ..ctx() };
        assert_ne!(event_id(&a, &change(ChangeKind::Created), 1), event_id(&b, &change(ChangeKind::Created), 1));
    }

    #[test]
    fn keys_with_control_characters_keep_the_event_valid() {
        let mut c = change(ChangeKind::Deleted);
        c.key = "bad\nkey".into();
        let event = cloud_event(&ctx(), &c, 1, detected_at());
        assert!(event.get("subject").is_none());
        assert_eq!(event["data"]["key"], "bad\nkey");
        validate_cloud_event(&event).unwrap();
    }

    #[test]
    fn format_parameter() {
        assert_eq!(Format::parse("cloudevents").unwrap(), Format::CloudEvents);
        assert_eq!(Format::parse(" Legacy ").unwrap(), Format::Legacy);
        assert_eq!(
            Format::parse("xml").unwrap_err().to_string(),
            "parameter 'format': expected cloudevents or legacy, got \"xml\""
        );
    }

    #[test]
    fn batch_wraps_events_in_an_object() {
        assert_eq!(
            batch_payload(vec![json!({"id": "1"}), json!({"id": "2"})]),
            json!({"events": [{"id": "1"}, {"id": "2"}]})
        );
    }

    #[track_caller]
    fn check_valid(event: Value, expected: Result<(), CloudEventError>) {
        assert_eq!(validate_cloud_event(&event), expected, "event: {event}");
    }

    #[test]
    fn validation() {
        let minimal = json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"});
        check_valid(minimal.clone(), Ok(()));
        let with = |name: &str, value: Value| {
            let mut e = minimal.clone();
            e[name] = value;
            e
        };
        let without = |name: &str| {
            let mut e = minimal.clone();
            e.as_object_mut().unwrap().remove(name);
            e
        };
        use CloudEventError as E;
        check_valid(json!([1]), Err(E::NotAnObject));
        check_valid(json!(null), Err(E::NotAnObject));
        check_valid(without("id"), Err(E::Missing("id")));
        check_valid(without("specversion"), Err(E::Missing("specversion")));
        check_valid(with("source", json!(null)), Err(E::Missing("source")));
        check_valid(with("type", json!("")), Err(E::Empty("type")));
        check_valid(with("id", json!(5)), Err(E::WrongType { name: "id".into(), expected: "a string" }));
        check_valid(with("specversion", json!("0.3")), Err(E::SpecVersion("\"0.3\"".into())));
        check_valid(with("Type2", json!("x")), Err(E::BadName("Type2".into())));
        check_valid(with("2abc", json!("x")), Err(E::BadName("2abc".into())));
        check_valid(with("my_ext", json!("x")), Err(E::BadName("my_ext".into())));
        check_valid(with("", json!("x")), Err(E::BadName("".into())));
        check_valid(with("averyveryverylongextensionname", json!("x")), Ok(()));
        check_valid(with("ext1", json!(true)), Ok(()));
        check_valid(with("ext1", json!(-2147483648i64)), Ok(()));
        check_valid(with("ext1", json!(null)), Ok(()));
        let int32 = "a 32-bit integer";
        check_valid(with("ext1", json!(2147483648i64)), Err(E::WrongType { name: "ext1".into(), expected: int32 }));
        check_valid(with("ext1", json!(1.5)), Err(E::WrongType { name: "ext1".into(), expected: int32 }));
        let any = "a string, a boolean or a 32-bit integer";
        check_valid(with("ext1", json!({"a": 1})), Err(E::WrongType { name: "ext1".into(), expected: any }));
        check_valid(with("subject", json!(true)), Err(E::WrongType { name: "subject".into(), expected: "a string" }));
        check_valid(with("subject", json!("a\u{0007}b")), Err(E::ForbiddenChar("subject".into())));
        check_valid(with("subject", json!("a\u{FFFF}")), Err(E::ForbiddenChar("subject".into())));
        check_valid(with("subject", json!("Euro € 😀")), Ok(()));
        check_valid(with("time", json!("2018-04-05T17:31:00Z")), Ok(()));
        check_valid(with("time", json!("2018-04-05T17:31:00.123+02:00")), Ok(()));
        check_valid(with("time", json!("2018-04-05")), Err(E::BadTime("2018-04-05".into())));
        check_valid(with("data", json!({"x": [1, {"Y_": null}]})), Ok(()));
        check_valid(with("data", json!(null)), Ok(()));
        check_valid(with("data_base64", json!("aGk=")), Ok(()));
        let base64 = E::WrongType { name: "data_base64".into(), expected: "a base64 string" };
        check_valid(with("data_base64", json!("not base64!")), Err(base64.clone()));
        check_valid(with("data_base64", json!(12)), Err(base64));
        let mut both = with("data", json!("x"));
        both["data_base64"] = json!("aGk=");
        check_valid(both, Err(E::DataConflict));
    }

    #[test]
    fn odd_json_is_rejected_without_panicking() {
        let odd = [
            json!(null),
            json!(true),
            json!(1e308),
            json!("1.0"),
            json!([]),
            json!({}),
            json!({"specversion": ["1.0"], "id": {}, "source": 1, "type": null}),
            json!({"specversion": "1.0", "id": "1", "source": "/", "type": "t", "ünïcode": "x"}),
            json!({"specversion": "1.0", "id": "1", "source": "/", "type": "t", "time": 12345}),
            json!({"specversion": "1.0", "id": "1", "source": "/", "type": "t", "ext": u64::MAX}),
        ];
        for v in odd {
            assert!(validate_cloud_event(&v).is_err(), "accepted {v}");
        }
    }

    #[test]
    fn header_encoding_follows_the_spec_example() {
        assert_eq!(encode_header_value("Euro € 😀"), "Euro%20%E2%82%AC%20%F0%9F%98%80");
        assert_eq!(decode_header_value("Euro%20%E2%82%AC%20%F0%9F%98%80").unwrap(), "Euro € 😀");
    }

    #[test]
    fn header_encoding_escapes_space_quote_percent_and_non_printable() {
        assert_eq!(encode_header_value("a b\"c%d"), "a%20b%22c%25d");
        assert_eq!(encode_header_value("tab\there\u{7f}\u{80}"), "tab%09here%7F%C2%80");
        assert_eq!(encode_header_value("!~/mycontext:1?x=y"), "!~/mycontext:1?x=y");
        for s in ["", "plain", "a b\"c%d", "tab\there\u{7f}\u{80}", "Euro € 😀", "100% \"sure\""] {
            assert_eq!(decode_header_value(&encode_header_value(s)).unwrap(), s);
        }
    }

    #[track_caller]
    fn check_decode(raw: &str, expected: Result<&str, CloudEventError>) {
        assert_eq!(decode_header_value(raw), expected.map(str::to_string), "raw: {raw:?}");
    }

    #[test]
    fn header_decoding() {
        use CloudEventError as E;
        check_decode("%e2%82%ac", Ok("€"));
        check_decode("%41%42c", Ok("ABc"));
        check_decode("%2541", Ok("%41"));
        check_decode("  com.example  ", Ok("com.example"));
        check_decode("\"quoted value\"", Ok("quoted value"));
        check_decode("\"a \\\"b\\\" c%20d\"", Ok("a \"b\" c d"));
        check_decode("\"open", Err(E::BadEscape("\"open".into())));
        check_decode("\"a\"b", Err(E::BadEscape("\"a\"b".into())));
        check_decode("%C0%A0", Err(E::NotUtf8));
        check_decode("%E2%82", Err(E::NotUtf8));
        check_decode("%FF", Err(E::NotUtf8));
        check_decode("50%", Err(E::BadEscape("50%".into())));
        check_decode("%4", Err(E::BadEscape("%4".into())));
        check_decode("%zz", Err(E::BadEscape("%zz".into())));
        check_decode("%+1", Err(E::BadEscape("%+1".into())));
        check_decode("%€", Err(E::BadEscape("%€".into())));
        check_decode("", Ok(""));
        check_decode("\"\"", Ok(""));
        check_decode("\"", Err(E::BadEscape("\"".into())));
        check_decode("\"\\", Err(E::BadEscape("\"\\".into())));
        check_decode("%", Err(E::BadEscape("%".into())));
    }
}
