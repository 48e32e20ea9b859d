//! S3 bucket notifications (the `Records` JSON that AWS, Ceph RGW and MinIO POST) as the
//! very events the polling S3 feed fires: same types, same `source`, the same `data` built by
//! the same code (`source::ObjectAttrs`), same `legacy` shape, the same
//! `prefix`/`suffix`/`events` filters and `batch`. No I/O. The differences are what a
//! notification does not carry, which a pushed event leaves out rather than guess: a listing's
//! `storageClass`, a delete's `previousVersionHash` (tests/suite/s3_registration.rs compares
//! both paths on a real Ceph RGW).
//!
//! # Providers
//! The key encoding is chosen per record by its `eventSource` (`aws:s3`, `minio:s3`,
//! `ceph:s3`), falling back to the trigger's `provider`:
//! - AWS form-encodes keys (`red flower.jpg` → `red+flower.jpg`): `+` is a space, then `%XX`.
//! - MinIO uses Go's `url.QueryEscape` (space `+`, `/` `%2F`): decoded the same way; its
//!   `eventName` keeps the `s3:` prefix, which is dropped.
//! - Ceph sends raw keys (a `+` is a plus); releases before 2021 spell the ETag `etag`.
//!
//! # Created or updated
//! A notification does not say whether the key existed before, and the receiver keeps no
//! listing to look it up, so every `ObjectCreated:*` is reported as `created` (an overwrite
//! included); `updated` is never produced in push mode. That is why `events` must name
//! `created` when it names `updated` ([`PushSettings::from_params`]). `ObjectRemoved:*`
//! (including AWS's `DeleteMarkerCreated`) is `deleted`, without `previousVersionHash`: a
//! notification carries no previous version. Other event types (Ceph's `ObjectLifecycle:*`,
//! restores, tagging…) are not changes of the listing and are ignored, as is the test
//! message S3 sends when a configuration is saved.
//!
//! # Ids
//! [`crate::events::event_id`] with `seq` = the first 8 bytes of SHA-256 over the length-prefixed
//! bucket, decoded key, `eventName` (without `s3:`), the record's `sequencer` (else Ceph's
//! `eventId`, else `eventTime`) and `versionId`. A retried notification carries the same
//! fields, so it gets the same id; two writes of one key differ in `sequencer`. The ids are
//! not those a poll would give the same change (a poll's `seq` is its commit counter).
//!
//! # `lastModified` and `time`
//! The record's `eventTime`, normalised to the listing's form (RFC 3339, milliseconds, `Z`;
//! Ceph sends microseconds); a delete's `time` is its `eventTime` too, so a resent
//! notification gives the very same event.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::source::{legacy_payload, ObjectAttrs, StateLocation};
use crate::events::{batch_payload, cloud_event, Change, ChangeKind, EventContext, Format};
use crate::filter::ChangeFilter;
use crate::hooks::extension::Fired;
use crate::hooks::{HookConfig, HookResponse, Outcome};
use crate::params::{ParamError, Params};
use crate::polling::MAX_BATCH;
use crate::source::Entry;

/// The CloudEvents `type` prefix the S3 feed uses (`…created|updated|deleted` appended).
pub const S3_TYPE_PREFIX: &str = "org.openwhisk.feeds.s3.object";

/// Which S3 implementation sends the notifications (parameter `provider`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Amazon S3, through an SNS topic.
    Aws,
    /// Ceph RGW, pushing to an HTTP endpoint of a topic.
    Ceph,
    /// MinIO, through an admin-configured webhook target.
    Minio,
}

/// Where a provider sends a bucket's notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A topic (`TopicConfiguration`): an SNS topic on AWS, an RGW topic on Ceph.
    Topic,
    /// A queue (`QueueConfiguration`): MinIO's admin-made webhook target.
    Queue,
}

/// How a provider spells object keys in `Records`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEncoding {
    /// Form-encoded: `+` is a space, then `%XX` (AWS; MinIO's Go `url.QueryEscape`).
    FormEncoded,
    /// As stored: a `+` is a plus (Ceph).
    Raw,
}

/// What a push provider does differently, as one row of a table: everything that branches on
/// the provider reads it here or matches [`Provider`] exhaustively, never with a catch-all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The `provider` parameter value.
    pub name: &'static str,
    /// The `eventSource` of its records.
    pub event_source: &'static str,
    /// True when `PUT ?notification` merges entries by `Id` (Ceph), so we send only ours;
    /// false when it replaces the whole document (AWS, MinIO), so we edit what we read.
    pub merges_by_id: bool,
    /// Where its notifications go.
    pub destination: Destination,
    /// How its records spell keys.
    pub key_encoding: KeyEncoding,
    /// True when it delivers through SNS, signed, instead of with the hook's token (AWS).
    pub via_sns: bool,
    /// True when the user must give the token to the producer after CREATE (MinIO: an
    /// administrator sets it on the webhook target).
    pub needs_token: bool,
}

impl Provider {
    /// Every accepted value, for error messages.
    pub const ALL: &'static str = "aws, ceph or minio";
    /// Every provider (`registry::PUSH_PROVIDERS` lists them; a test checks both agree).
    pub const EVERY: [Provider; 3] = [Provider::Aws, Provider::Ceph, Provider::Minio];

    /// The provider's row of the capability table.
    pub const fn capabilities(self) -> Capabilities {
        match self {
            Provider::Aws => Capabilities {
                name: "aws",
                event_source: "aws:s3",
                merges_by_id: false,
                destination: Destination::Topic,
                key_encoding: KeyEncoding::FormEncoded,
                via_sns: true,
                needs_token: false,
            },
            Provider::Ceph => Capabilities {
                name: "ceph",
                event_source: "ceph:s3",
                merges_by_id: true,
                destination: Destination::Topic,
                key_encoding: KeyEncoding::Raw,
                via_sns: false,
                needs_token: false,
            },
            Provider::Minio => Capabilities {
                name: "minio",
                event_source: "minio:s3",
                merges_by_id: false,
                destination: Destination::Queue,
                key_encoding: KeyEncoding::FormEncoded,
                via_sns: false,
                needs_token: true,
            },
        }
    }

    /// Parses a provider name (case-insensitive).
    pub fn parse(value: &str) -> Option<Provider> {
        let value = value.trim().to_ascii_lowercase();
        Provider::EVERY.into_iter().find(|p| p.capabilities().name == value)
    }

    /// The parameter value naming this provider.
    pub fn as_str(self) -> &'static str {
        self.capabilities().name
    }

    /// The provider whose encoding a record's `eventSource` announces.
    fn from_event_source(source: &str) -> Option<Provider> {
        Provider::EVERY.into_iter().find(|p| p.capabilities().event_source == source)
    }
}

/// What a trigger wants from the notifications of one bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct PushSettings {
    /// Who sends the notifications.
    pub provider: Provider,
    /// The S3 endpoint URL (part of `source` and `data`, as in polling).
    pub endpoint: String,
    /// The watched bucket; records for other buckets are ignored.
    pub bucket: String,
    /// `prefix`, `suffix`, `events`.
    pub filter: ChangeFilter,
    /// `format`: cloudevents (default) or legacy.
    pub format: Format,
    /// `batch`: events per fire, 1 (default) to [`MAX_BATCH`].
    pub batch: usize,
    /// Keys never fired: the feed state's prefix (`super::reconcile::reserved_prefix`).
    pub reserved_prefix: Option<String>,
}

impl PushSettings {
    /// Reads `provider`, `endpoint`, `bucket`, `prefix`, `suffix`, `events`, `format` and
    /// `batch`; errors name the parameter.
    pub fn from_params(params: &Params) -> Result<PushSettings, ParamError> {
        let raw = params.required_str("provider")?;
        let provider =
            Provider::parse(&raw).ok_or_else(|| ParamError::invalid("provider", Provider::ALL, &Value::String(raw)))?;
        let endpoint = params.required_str("endpoint")?;
        let bucket = params.required_str("bucket")?;
        if bucket.is_empty() || bucket.contains('/') {
            return Err(ParamError::invalid("bucket", "a bucket name (no '/')", &Value::String(bucket)));
        }
        let filter = ChangeFilter::from_params(params)?;
        if filter.wants(ChangeKind::Updated) && !filter.wants(ChangeKind::Created) {
            return Err(ParamError::invalid(
                "events",
                "a list naming created when it names updated (push mode reports every write as created: a notification does not say whether the key existed)",
                params.raw("events").unwrap_or(&Value::Null),
            ));
        }
        let format = match params.str("format")? {
            Some(f) => Format::parse(&f)?,
            None => Format::CloudEvents,
        };
        let batch = params.u64_in("batch", 1, MAX_BATCH)?.unwrap_or(1) as usize;
        let reserved_prefix = StateLocation::from_params(params, &bucket)?.reserved_prefix();
        Ok(PushSettings { provider, endpoint, bucket, filter, format, batch, reserved_prefix })
    }

    /// The CloudEvents context shared by this trigger's events: the polling feed's.
    pub fn event_context(&self, id_salt: &str) -> EventContext {
        let mut data_context = Map::new();
        data_context.insert("bucket".into(), json!(self.bucket));
        data_context.insert("endpoint".into(), json!(self.endpoint));
        EventContext {
            source: format!("{}/{}", self.endpoint.trim_end_matches('/'), self.bucket),
            type_prefix: S3_TYPE_PREFIX.to_string(),
            data_context,
            id_salt: id_salt.to_string(),
        }
    }
}

/// The events of one notification, and what was left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mapped {
    /// Events to fire, in record order (CloudEvents or legacy payloads).
    pub events: Vec<Value>,
    /// The push marker of each event's change, in the same order (see [`push_mark`]).
    pub marks: Vec<Value>,
    /// Records that are changes but do not pass the trigger's filters.
    pub filtered: usize,
    /// Why records were ignored (not a listing change, another bucket).
    pub ignored: Vec<String>,
}

/// Why a notification body cannot be read; the producer gets a 400 with this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationError(pub String);

impl std::fmt::Display for NotificationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3 notification: {}", self.0)
    }
}

impl std::error::Error for NotificationError {}

/// One record read from a notification, before filtering.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordChange {
    /// The change the record reports.
    pub change: Change,
    /// The `seq` that makes its id (see the module doc).
    pub seq: u64,
    /// The record's `eventTime`: the event's `time`, deletes included.
    pub time: DateTime<Utc>,
}

/// Maps a notification body to the events the trigger fires (see the module doc).
///
/// Every record is checked before anything is returned, so a body with one malformed record
/// is refused as a whole and a retry cannot fire part of it twice. Never panics.
pub fn map_notification(settings: &PushSettings, id_salt: &str, body: &Value) -> Result<Mapped, NotificationError> {
    let ctx = settings.event_context(id_salt);
    let mut mapped = Mapped::default();
    for record in read_records(settings, body, &mut mapped.ignored)? {
        if !settings.filter.matches(&record.change) {
            mapped.filtered += 1;
            continue;
        }
        let ce = cloud_event(&ctx, &record.change, record.seq, record.time);
        let legacy = || Some(legacy_payload(&settings.bucket, &settings.endpoint, &record.change));
        let payload = settings.format.payload(ce, legacy);
        mapped.marks.push(push_mark(&record.change, &payload));
        mapped.events.push(payload);
    }
    Ok(mapped)
}

/// The body of the push marker the receiver writes for a change once its event is fired
/// (`markers::Pushed::write`; the reconcile reads only the marker's name): key, change,
/// ETag, and the event's `id` and `time` where its shape has them.
pub fn push_mark(change: &Change, payload: &Value) -> Value {
    let etag = change.entry.as_ref().and_then(|e| e.attrs.get("etag")).cloned().unwrap_or(Value::Null);
    json!({
        "key": change.key,
        "change": change.kind.as_str(),
        "etag": etag,
        "eventId": payload.get("id").cloned().unwrap_or(Value::Null),
        "time": payload.get("time").cloned().unwrap_or(Value::Null),
    })
}

/// The trigger payloads for `events` (with their `marks`): one event per fire, or
/// `{"events": […]}` of up to `batch` when `batch` > 1 (as the polling feed's delivery does).
/// A batch is known by its events' ids joined by commas.
pub fn fires(events: Vec<Value>, marks: Vec<Value>, batch: usize) -> Vec<Fired> {
    let id = |e: &Value| e["id"].as_str().unwrap_or_default().to_string();
    if batch <= 1 {
        return events.into_iter().zip(marks).map(|(e, m)| Fired { id: id(&e), payload: e, marks: vec![m] }).collect();
    }
    events
        .chunks(batch)
        .zip(marks.chunks(batch))
        .map(|(chunk, marks)| Fired {
            id: chunk.iter().map(id).collect::<Vec<_>>().join(","),
            payload: batch_payload(chunk.to_vec()),
            marks: marks.to_vec(),
        })
        .collect()
}

/// An authenticated S3 notification body (`Records`, or S3's test message) as the events to
/// fire: mapped, filtered and batched here; dropped while paused. Shared by the token
/// path and SNS notifications (`sns`).
pub fn outcome(config: &HookConfig, settings: &PushSettings, body: &Value) -> Outcome {
    let salt = config.trigger_name.as_deref().unwrap_or_default();
    let mapped = match map_notification(settings, salt, body) {
        Ok(mapped) => mapped,
        Err(e) => return Outcome::Respond(HookResponse::bad_request(e.to_string())),
    };
    if config.paused {
        let dropped = mapped.events.len();
        return Outcome::Respond(HookResponse::new(202, json!({ "status": "paused", "fired": 0, "dropped": dropped })));
    }
    Outcome::Fire { events: fires(mapped.events, mapped.marks, settings.batch), filtered: mapped.filtered }
}

/// Reads the changes of a notification body; records that are not listing changes, or are
/// for another bucket, go to `ignored` with the reason.
pub fn read_records(
    settings: &PushSettings,
    body: &Value,
    ignored: &mut Vec<String>,
) -> Result<Vec<RecordChange>, NotificationError> {
    let err = |m: String| NotificationError(m);
    let Value::Object(top) = body else { return Err(err("the body is not a JSON object".into())) };
    let Some(records) = top.get("Records") else {
        // S3's configuration test message (`"Event": "s3:TestEvent"`) has no Records.
        if top.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
            ignored.push("s3:TestEvent".into());
            return Ok(Vec::new());
        }
        return Err(err("no Records in the body".into()));
    };
    let Value::Array(records) = records else { return Err(err("Records is not an array".into())) };
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let at = |m: &str| err(format!("Records[{i}]: {m}"));
        let text = |v: Option<&Value>, name: &str| -> Result<Option<String>, NotificationError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(at(&format!("{name} is not a string"))),
            }
        };
        let Value::Object(_) = record else { return Err(at("not a JSON object")) };
        let event_name = text(record.get("eventName"), "eventName")?.ok_or_else(|| at("no eventName"))?;
        let event_name = event_name.strip_prefix("s3:").unwrap_or(&event_name).to_string();
        let s3 = record.get("s3").filter(|v| v.is_object()).ok_or_else(|| at("no s3 object"))?;
        let bucket = text(s3.pointer("/bucket/name"), "s3.bucket.name")?.ok_or_else(|| at("no s3.bucket.name"))?;
        let object = s3.get("object").filter(|v| v.is_object()).ok_or_else(|| at("no s3.object"))?;
        let raw_key = text(object.get("key"), "s3.object.key")?.ok_or_else(|| at("no s3.object.key"))?;
        let event_source = text(record.get("eventSource"), "eventSource")?.unwrap_or_default();
        let provider = Provider::from_event_source(&event_source).unwrap_or(settings.provider);
        let key = decode_key(provider, &raw_key).map_err(|_| at("s3.object.key does not decode to UTF-8"))?;
        let event_time = text(record.get("eventTime"), "eventTime")?.ok_or_else(|| at("no eventTime"))?;
        let at_time =
            DateTime::parse_from_rfc3339(&event_time).map_err(|_| at("eventTime is not an RFC 3339 time"))?.to_utc();
        let time = at_time.to_rfc3339_opts(SecondsFormat::Millis, true);

        let kind = if event_name.starts_with("ObjectCreated:") {
            ChangeKind::Created
        } else if event_name.starts_with("ObjectRemoved:") {
            ChangeKind::Deleted
        } else {
            ignored.push(format!("Records[{i}]: {event_name} is not a change of the listing"));
            continue;
        };
        if bucket != settings.bucket {
            ignored.push(format!("Records[{i}]: bucket {bucket:?} is not {:?}", settings.bucket));
            continue;
        }
        // The feed's own state, lease and push markers: writing them is notified too.
        if settings.reserved_prefix.as_ref().is_some_and(|p| key.starts_with(p.as_str())) {
            ignored.push(format!("Records[{i}]: the feed state's own object"));
            continue;
        }

        let etag = match text(object.get("eTag"), "s3.object.eTag")? {
            Some(e) if !e.is_empty() => Some(e),
            _ => text(object.get("etag"), "s3.object.etag")?.filter(|e| !e.is_empty()),
        }
        .map(|e| e.trim_matches('"').to_string());
        let size = match object.get("size") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_u64() => n.as_u64(),
            Some(_) => return Err(at("s3.object.size is not a whole number")),
        };
        let sequencer = text(object.get("sequencer"), "s3.object.sequencer")?.filter(|s| !s.is_empty());
        let event_id = text(record.get("eventId"), "eventId")?.filter(|s| !s.is_empty());
        let version_id = text(object.get("versionId"), "s3.object.versionId")?.unwrap_or_default();
        let order = sequencer.clone().or(event_id).unwrap_or_else(|| event_time.clone());
        let seq = seq_of(&[&bucket, &key, &event_name, &order, &version_id]);

        let change = match kind {
            ChangeKind::Deleted => Change { kind, key, entry: None, old_version: None },
            _ => {
                // Notifications carry no storage class: the one attribute a listing adds.
                let object =
                    ObjectAttrs { etag: etag.as_deref(), size, last_modified: Some(&time), storage_class: None };
                let attrs = object.to_map();
                let version = etag.clone().or(sequencer).unwrap_or_else(|| time.clone());
                Change { kind, key: key.clone(), entry: Some(Entry { key, version, attrs }), old_version: None }
            }
        };
        // Whole milliseconds, as `lastModified`: the same event time whichever server sent it.
        let millis = at_time.timestamp_millis();
        let time_ms = DateTime::from_timestamp_millis(millis).unwrap_or(at_time);
        out.push(RecordChange { change, seq, time: time_ms });
    }
    Ok(out)
}

/// The object key a provider sent, decoded (see the module doc); an error when the decoded
/// bytes are not UTF-8.
pub fn decode_key(provider: Provider, raw: &str) -> Result<String, std::str::Utf8Error> {
    match provider.capabilities().key_encoding {
        KeyEncoding::Raw => Ok(raw.to_string()),
        KeyEncoding::FormEncoded => {
            percent_encoding::percent_decode_str(&raw.replace('+', " ")).decode_utf8().map(|k| k.into_owned())
        }
    }
}

fn seq_of(fields: &[&str]) -> u64 {
    let digest = crate::events::hash_fields(fields).finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::validate_cloud_event;

    fn settings(extra: Value) -> PushSettings {
        let mut p = json!({"provider": "ceph", "endpoint": "https://s3.example.com", "bucket": "photos"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        PushSettings::from_params(&Params::from_value(p).unwrap()).unwrap()
    }

    /// One record in the shape `provider` sends (see the reference notes, sections 1, 4, 5).
    fn record(provider: Provider, event: &str, key: &str, sequencer: &str) -> Value {
        let created = event.starts_with("ObjectCreated");
        match provider {
            Provider::Aws => {
                let mut object = json!({"key": key, "sequencer": sequencer});
                if created {
                    object["size"] = json!(1024);
                    object["eTag"] = json!("9b2cf535f27731c974343645a3985328");
                }
                json!({"Records": [{
                    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                    "eventTime": "2026-11-27T18:00:00.123Z", "eventName": event,
                    "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                    "requestParameters": {"sourceIPAddress": "203.0.113.9"},
                    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
                    "s3": {"s3SchemaVersion": "1.0", "configurationId": "owfeed-guest-uploads",
                        "bucket": {"name": "photos", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                            "arn": "arn:aws:s3:::photos"},
                        "object": object}}]})
            }
            Provider::Minio => {
                let mut object = json!({"key": key, "sequencer": sequencer,
                    "userMetadata": {"content-type": "image/jpeg"}});
                if created {
                    object["size"] = json!(1024);
                    object["eTag"] = json!("9b2cf535f27731c974343645a3985328");
                    object["contentType"] = json!("image/jpeg");
                }
                json!({"EventName": format!("s3:{event}"), "Key": format!("photos/{key}"), "Records": [{
                    "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
                    "eventTime": "2026-11-27T18:00:00.123Z", "eventName": format!("s3:{event}"),
                    "userIdentity": {"principalId": "minioadmin"}, "requestParameters": {},
                    "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
                        "bucket": {"name": "photos", "ownerIdentity": {"principalId": "minioadmin"},
                            "arn": "arn:aws:s3:::photos"},
                        "object": object},
                    "source": {"host": "10.0.0.5", "port": "", "userAgent": "MinIO (linux; amd64)"}}]})
            }
            Provider::Ceph => {
                // An older release: `etag`, eventTime in microseconds, versionId "" when unversioned.
                let mut object = json!({"key": key, "sequencer": sequencer, "versionId": "",
                    "metadata": [], "tags": []});
                if created {
                    object["size"] = json!(1024);
                    object["etag"] = json!("9b2cf535f27731c974343645a3985328");
                }
                json!({"Records": [{
                    "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "default",
                    "eventTime": "2026-11-27T18:00:00.123456Z", "eventName": event,
                    "userIdentity": {"principalId": "tester"}, "requestParameters": {"sourceIPAddress": ""},
                    "responseElements": {"x-amz-request-id": "a4d0", "x-amz-id-2": "1012-default"},
                    "s3": {"s3SchemaVersion": "1.0", "configurationId": "owfeed-guest-uploads",
                        "bucket": {"name": "photos", "ownerIdentity": {"principalId": "tester"},
                            "arn": "arn:aws:s3:::photos", "id": "b0c9.4137.1"},
                        "object": object},
                    "eventId": "1606488000.123456.9b2cf535", "opaqueData": ""}]})
            }
        }
    }

    /// The key `albums/beach day+1.jpg` as each provider writes it.
    const KEYS: [(Provider, &str); 3] = [
        (Provider::Aws, "albums/beach+day%2B1.jpg"),
        (Provider::Minio, "albums%2Fbeach+day%2B1.jpg"),
        (Provider::Ceph, "albums/beach day+1.jpg"),
    ];

    fn one(settings: &PushSettings, body: &Value) -> Value {
        let mapped = map_notification(settings, "/guest/uploads", body).unwrap();
        assert_eq!(mapped.events.len(), 1, "{mapped:?}");
        mapped.events[0].clone()
    }

    #[test]
    fn every_provider_shape_gives_the_same_created_event() {
        let s = settings(json!({}));
        let expected = json!({
            "specversion": "1.0",
            "id": one(&s, &record(Provider::Aws, "ObjectCreated:Put", KEYS[0].1, "0055AED6DCD90281E5"))["id"],
            "source": "https://s3.example.com/photos",
            "type": "org.openwhisk.feeds.s3.object.created",
            "subject": "albums/beach day+1.jpg",
            "time": "2026-11-27T18:00:00.123Z",
            "datacontenttype": "application/json",
            "data": {
                "bucket": "photos", "endpoint": "https://s3.example.com",
                "etag": "9b2cf535f27731c974343645a3985328", "size": 1024,
                "lastModified": "2026-11-27T18:00:00.123Z",
                "key": "albums/beach day+1.jpg", "change": "created"
            }
        });
        for (provider, key) in KEYS {
            let event = one(&s, &record(provider, "ObjectCreated:Put", key, "0055AED6DCD90281E5"));
            assert_eq!(event, expected, "{provider:?}");
            validate_cloud_event(&event).unwrap();
        }
        // Every ObjectCreated kind is a write of the key.
        for name in ["ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload"] {
            let event = one(&s, &record(Provider::Aws, name, KEYS[0].1, "0055AED6DCD90281E5"));
            assert_eq!(event["type"], "org.openwhisk.feeds.s3.object.created", "{name}");
        }
    }

    #[test]
    fn deletes_from_every_provider() {
        let s = settings(json!({}));
        for (provider, key) in KEYS {
            for name in ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated"] {
                let event = one(&s, &record(provider, name, key, "0055AED6DCD90281E6"));
                assert_eq!(event["type"], "org.openwhisk.feeds.s3.object.deleted", "{provider:?} {name}");
                assert_eq!(event["time"], "2026-11-27T18:00:00.123Z", "{provider:?} {name}");
                assert_eq!(
                    event["data"],
                    json!({"bucket": "photos", "endpoint": "https://s3.example.com",
                        "key": "albums/beach day+1.jpg", "change": "deleted"}),
                    "{provider:?} {name}"
                );
                validate_cloud_event(&event).unwrap();
            }
        }
    }

    #[test]
    fn keys_decode_per_provider() {
        let cases = [
            (Provider::Aws, "red+flower.jpg", "red flower.jpg"),
            (Provider::Aws, "a%2Bb%20c%C3%A9", "a+b cé"),
            (Provider::Aws, "dir/sub/file", "dir/sub/file"),
            (Provider::Minio, "dir%2Fsub%2Fred+flower.jpg", "dir/sub/red flower.jpg"),
            (Provider::Minio, "100%25+sure%3F", "100% sure?"),
            (Provider::Ceph, "red+flower.jpg", "red+flower.jpg"),
            (Provider::Ceph, "100%25 raw", "100%25 raw"),
        ];
        for (provider, raw, decoded) in cases {
            assert_eq!(decode_key(provider, raw).unwrap(), decoded, "{provider:?} {raw}");
        }
        assert!(decode_key(Provider::Aws, "bad%FF").is_err());
        // The record's eventSource wins over the trigger's provider.
        let s = settings(json!({"provider": "aws"}));
        let event = one(&s, &record(Provider::Ceph, "ObjectCreated:Put", "a+b", "01"));
        assert_eq!(event["data"]["key"], "a+b");
    }

    #[test]
    fn ids_are_stable_across_retries_and_new_for_each_write() {
        let s = settings(json!({}));
        let id = |body: &Value| one(&s, body)["id"].as_str().unwrap().to_string();
        let put = record(Provider::Aws, "ObjectCreated:Put", "k", "0055AED6DCD90281E5");
        assert_eq!(id(&put), id(&put.clone()), "a retry keeps its id");
        let overwrite = record(Provider::Aws, "ObjectCreated:Put", "k", "0055AED6DCD90281F0");
        let delete = record(Provider::Aws, "ObjectRemoved:Delete", "k", "0055AED6DCD90281E5");
        let other_key = record(Provider::Aws, "ObjectCreated:Put", "k2", "0055AED6DCD90281E5");
        let mut ids = vec![id(&put), id(&overwrite), id(&delete), id(&other_key)];
        let other = map_notification(&s, "/guest/other", &put).unwrap();
        ids.push(other.events[0]["id"].as_str().unwrap().to_string());
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "write, overwrite, delete, other key, other trigger: distinct ids");
        // Ceph without a sequencer: its eventId tells writes apart.
        let mut a = record(Provider::Ceph, "ObjectCreated:Put", "k", "");
        let mut b = a.clone();
        b["Records"][0]["eventId"] = json!("1606488001.000001.9b2cf535");
        a["Records"][0]["s3"]["object"].as_object_mut().unwrap().remove("sequencer");
        b["Records"][0]["s3"]["object"].as_object_mut().unwrap().remove("sequencer");
        assert_ne!(id(&a), id(&b));
        assert_eq!(id(&a), id(&a.clone()));
    }

    #[test]
    fn filters_and_batches_as_in_polling() {
        let body = |key: &str, event: &str| record(Provider::Aws, event, key, "01");
        let s = settings(json!({"prefix": "albums/", "suffix": ".jpg", "events": ["created"]}));
        let keys = |bodies: &[Value]| -> (Vec<String>, usize) {
            let mut fired = Vec::new();
            let mut filtered = 0;
            for b in bodies {
                let m = map_notification(&s, "/guest/uploads", b).unwrap();
                fired.extend(m.events.iter().map(|e| e["data"]["key"].as_str().unwrap().to_string()));
                filtered += m.filtered;
            }
            (fired, filtered)
        };
        let bodies = [
            body("albums/a.jpg", "ObjectCreated:Put"),
            body("albums/a.png", "ObjectCreated:Put"),
            body("other/a.jpg", "ObjectCreated:Put"),
            body("albums/b.jpg", "ObjectRemoved:Delete"),
        ];
        assert_eq!(keys(&bodies), (vec!["albums/a.jpg".to_string()], 3));

        let events: Vec<Value> = (0..5).map(|i| json!({"id": i})).collect();
        let marks: Vec<Value> = (0..5).map(|i| json!({"key": i})).collect();
        let payloads = |fired: Vec<Fired>| fired.into_iter().map(|f| f.payload).collect::<Vec<_>>();
        assert_eq!(payloads(fires(events.clone(), marks.clone(), 1)), events);
        let batched = fires(events, marks, 2);
        assert_eq!(batched.iter().map(|f| f.marks.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert_eq!(
            payloads(batched),
            vec![
                json!({"events": [{"id": 0}, {"id": 1}]}),
                json!({"events": [{"id": 2}, {"id": 3}]}),
                json!({"events": [{"id": 4}]})
            ]
        );
    }

    /// The receiver writes a push marker per fired change from these marks (they replaced
    /// reading CloudEvents and legacy payloads back): key, change and ETag of each, the
    /// event's id and time where its shape has them, batches included.
    #[test]
    fn every_fired_change_carries_its_push_mark() {
        let s = settings(json!({"batch": 2}));
        let body = json!({"Records": [
            record(Provider::Aws, "ObjectCreated:Put", "a", "01")["Records"][0].clone(),
            record(Provider::Aws, "ObjectRemoved:Delete", "b", "02")["Records"][0].clone(),
        ]});
        let mapped = map_notification(&s, "/ns/t", &body).unwrap();
        let fired = fires(mapped.events, mapped.marks, s.batch);
        assert_eq!(fired.len(), 1);
        let marks = &fired[0].marks;
        assert_eq!(
            marks.iter().map(|m| (m["key"].clone(), m["change"].clone())).collect::<Vec<_>>(),
            vec![(json!("a"), json!("created")), (json!("b"), json!("deleted"))]
        );
        assert_eq!(marks[0]["eventId"], fired[0].payload["events"][0]["id"]);
        assert_eq!(marks[0]["time"], fired[0].payload["events"][0]["time"]);
        assert!(marks[0]["etag"].is_string() && marks[1]["etag"].is_null(), "{marks:?}");
        let legacy = settings(json!({"format": "legacy"}));
        let mapped = map_notification(&legacy, "/ns/t", &body).unwrap();
        let etag = mapped.events[0]["file"]["ETag"].as_str().unwrap().trim_matches('"').to_string();
        assert_eq!(mapped.marks[0]["etag"], json!(etag), "the legacy ETag without its quotes");
        assert_eq!(
            (mapped.marks[0]["eventId"].clone(), mapped.marks[0]["change"].clone()),
            (mapped.events[0]["id"].clone(), json!("created"))
        );
    }

    #[test]
    fn legacy_format_is_the_polling_feeds() {
        let s = settings(json!({"format": "legacy"}));
        let ce = one(&settings(json!({})), &record(Provider::Minio, "ObjectCreated:Put", KEYS[1].1, "01"));
        let legacy = one(&s, &record(Provider::Minio, "ObjectCreated:Put", KEYS[1].1, "01"));
        assert_eq!(
            legacy,
            json!({
                "file": {"Key": "albums/beach day+1.jpg", "ETag": "\"9b2cf535f27731c974343645a3985328\"",
                    "Size": 1024, "LastModified": "2026-11-27T18:00:00.123Z"},
                "status": "added", "bucket": "photos", "key": "albums/beach day+1.jpg",
                "endpoint": "https://s3.example.com", "id": ce["id"]
            })
        );
        let deleted = one(&s, &record(Provider::Minio, "ObjectRemoved:Delete", KEYS[1].1, "02"));
        assert_eq!(deleted["status"], "deleted");
        assert_eq!(deleted["file"], json!({"Key": "albums/beach day+1.jpg"}));
    }

    #[test]
    fn non_changes_are_ignored_with_a_reason() {
        let s = settings(json!({}));
        let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-27T18:00:00.000Z",
            "Bucket": "photos", "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw"});
        let m = map_notification(&s, "/guest/uploads", &test_event).unwrap();
        assert_eq!((m.events.len(), m.ignored), (0, vec!["s3:TestEvent".to_string()]));

        let lifecycle = record(Provider::Ceph, "ObjectLifecycle:Expiration:Current", "k", "01");
        let m = map_notification(&s, "/guest/uploads", &lifecycle).unwrap();
        assert!(m.events.is_empty());
        assert_eq!(m.ignored, vec!["Records[0]: ObjectLifecycle:Expiration:Current is not a change of the listing"]);

        let mut other = record(Provider::Aws, "ObjectCreated:Put", "k", "01");
        other["Records"][0]["s3"]["bucket"]["name"] = json!("secrets");
        let m = map_notification(&s, "/guest/uploads", &other).unwrap();
        assert!(m.events.is_empty());
        assert_eq!(m.ignored, vec!["Records[0]: bucket \"secrets\" is not \"photos\""]);
    }

    #[test]
    fn malformed_bodies_are_refused_whole_without_panicking() {
        let s = settings(json!({}));
        let good = record(Provider::Aws, "ObjectCreated:Put", "k", "01")["Records"][0].clone();
        let with = |pointer: &str, value: Value| {
            let mut r = good.clone();
            *r.pointer_mut(pointer).unwrap() = value;
            json!({"Records": [good.clone(), r]})
        };
        let cases = [
            (json!([]), "S3 notification: the body is not a JSON object"),
            (json!({"Event": "other"}), "S3 notification: no Records in the body"),
            (json!({"Records": {}}), "S3 notification: Records is not an array"),
            (json!({"Records": [good.clone(), 7]}), "S3 notification: Records[1]: not a JSON object"),
            (with("/eventName", json!(null)), "S3 notification: Records[1]: no eventName"),
            (with("/eventName", json!(5)), "S3 notification: Records[1]: eventName is not a string"),
            (with("/s3/object/key", json!(null)), "S3 notification: Records[1]: no s3.object.key"),
            (
                with("/s3/object/key", json!("%FF")),
                "S3 notification: Records[1]: s3.object.key does not decode to UTF-8",
            ),
            (with("/s3/object/size", json!(-1)), "S3 notification: Records[1]: s3.object.size is not a whole number"),
            (with("/eventTime", json!("yesterday")), "S3 notification: Records[1]: eventTime is not an RFC 3339 time"),
            (with("/s3", json!("x")), "S3 notification: Records[1]: no s3 object"),
        ];
        for (body, message) in cases {
            let err = map_notification(&s, "/guest/uploads", &body).unwrap_err();
            assert_eq!(err.to_string(), message, "{body}");
        }
    }

    #[test]
    fn settings_errors_name_the_parameter() {
        let base = json!({"provider": "minio", "endpoint": "https://s3.example.com", "bucket": "photos"});
        for (change, name) in [
            (json!({"provider": "gcs"}), "provider"),
            (json!({"provider": null}), "provider"),
            (json!({"endpoint": null}), "endpoint"),
            (json!({"bucket": "a/b"}), "bucket"),
            (json!({"events": ["updated"]}), "events"),
            (json!({"events": ["removed"]}), "events"),
            (json!({"format": "xml"}), "format"),
            (json!({"batch": 0}), "batch"),
            (json!({"batch": 101}), "batch"),
        ] {
            let mut p = base.clone();
            for (k, v) in change.as_object().unwrap() {
                p[k] = v.clone();
            }
            let err = PushSettings::from_params(&Params::from_value(p).unwrap()).unwrap_err();
            assert_eq!(err.name, name, "{err}");
        }
        let ok =
            settings(json!({"events": ["created", "updated"], "batch": 10, "format": "LEGACY", "provider": "AWS"}));
        assert_eq!((ok.provider, ok.batch, ok.format), (Provider::Aws, 10, Format::Legacy));
    }
}
