//! The Kafka source: a log source reading one topic, every partition, with the parameters and
//! the `legacy` payload of Apache's messaging feeds (`/whisk.system/messaging/kafkaFeed` and
//! `messageHubFeed`, apache/openwhisk-package-kafka: README.md and provider/consumer.py).
//!
//! **Cursor.** The next offset to read of every partition, as JSON text with partitions in
//! ascending order (`{"0":12,"1":5}`). A partition the cursor does not name (the topic grew
//! after CREATE, or `since=0`) is read from its earliest offset. A stored offset the broker no
//! longer holds (retention deleted it: OFFSET_OUT_OF_RANGE) or that is past the end of the
//! partition (the topic was deleted and created again) is `SourceError::CursorRejected`
//! naming the partition and the gap; `restart` moves only those partitions.
//!
//! **"Now"** is each partition's high watermark as a Fetch reports it, not ListOffsets'
//! latest offset alone: tansu 0.6 answers ListOffsets(latest) with the last batch's base
//! offset + 1 (6 for offsets 0-9 whose last batch holds 5-9), where Kafka answers 10. The
//! reader asks ListOffsets, then fetches at that offset and takes the high watermark of the
//! answer, which both brokers report correctly.
//!
//! **Events.** One record per message, id from topic, partition and offset; `subject` the key
//! where it is text; `time` the record's timestamp. A value too large for a trigger's payload
//! is never skipped (Apache's feed logs and commits past it, consumer.py:341-344): its event
//! carries `value: null`, `truncated: true` and `size`, and the offset to fetch it by.
//!
//! **Lag** (READ's `lag`): per partition, the high watermark (from a Fetch, as "now") minus
//! the cursor's offset, and their sum.
//!
//! **Consumer group.** With `groupId`, the offsets are committed to that group after the
//! feed's own state is committed (`acknowledge`), so lag monitors see the feed's progress; the
//! feed never reads them back: its state is the source of truth.
//!
//! No I/O outside `owfeed_kafka::Client`; the plugin knows nothing about triggers or state.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use owfeed_kafka::{Client, ErrorKind, Fetched, Mechanism, Message, Password, Sasl, Settings};
use serde_json::{json, Map, Value};

use crate::events::ChangeKind;
use crate::http::HttpTls;
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use crate::source::{Batch, LogReader, LogSource, ParamSpec, Record, Restart, SourceError};

/// CloudEvents type prefix of this source.
pub const EVENT_TYPE_PREFIX: &str = "org.openwhisk.feeds.kafka";
/// The CloudEvents type of every message.
const EVENT_TYPE: &str = "org.openwhisk.feeds.kafka.message";
/// A key and value taking more JSON than this fire as a reference (`truncated`): with the
/// event's other fields it stays under the fire payload limit (`delivery::MAX_FIRE_BYTES`).
const MAX_MESSAGE_JSON: usize = 800_000;
/// Bytes one fetch asks for at most (the broker returns at least one batch even if larger).
const FETCH_BYTES: i32 = 8 * 1024 * 1024;
/// The longest one Fetch is held open in connection mode; the core reads again until its
/// deadline. Kafka answers a held fetch as soon as data arrives, but tansu 0.6 sleeps half the
/// remaining wait between looks (tansu-storage src/service/fetch.rs:353), so a long wait would
/// delay delivery by up to half of it; one fetch a second costs a broker nothing.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(1);
/// How long one request to a broker may take, waits excluded.
const REQUEST_TIME: Duration = Duration::from_secs(10);

/// The `kafka` source plugin.
pub struct KafkaSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "brokers",
        secret: false,
        required: true,
        doc: "JSON array of host:port (or kafka_brokers_sasl)",
    },
    ParamSpec { name: "topic", secret: false, required: true, doc: "the topic to read" },
    ParamSpec {
        name: "kafka_brokers_sasl",
        secret: false,
        required: false,
        doc: "Message Hub form: brokers, with SASL PLAIN over TLS",
    },
    ParamSpec { name: "user", secret: false, required: false, doc: "SASL user" },
    ParamSpec { name: "password", secret: true, required: false, doc: "SASL password" },
    ParamSpec { name: "saslMechanism", secret: false, required: false, doc: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" },
    ParamSpec {
        name: "tls",
        secret: false,
        required: false,
        doc: "TLS to the brokers (default with kafka_brokers_sasl)",
    },
    ParamSpec { name: "isJSONData", secret: false, required: false, doc: "parse values as JSON" },
    ParamSpec { name: "isBinaryKey", secret: false, required: false, doc: "keys as base64" },
    ParamSpec { name: "isBinaryValue", secret: false, required: false, doc: "values as base64" },
    ParamSpec { name: "groupId", secret: false, required: false, doc: "consumer group to commit offsets to" },
    ParamSpec { name: "stateBucket", secret: false, required: true, doc: "S3 bucket for the state (see Sources)" },
    ParamSpec { name: "caCertificate", secret: false, required: false, doc: "PEM of the CA(s) to trust" },
    ParamSpec { name: "insecureSkipTlsVerify", secret: false, required: false, doc: "no TLS verification" },
];

impl LogSource for KafkaSource {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn LogReader>, ParamError> {
        let (brokers, param, message_hub) =
            match (broker_list(params, "brokers")?, broker_list(params, "kafka_brokers_sasl")?) {
                (Some(b), None) if !b.is_empty() => (b, "brokers", false),
                (None, Some(b)) if !b.is_empty() => (b, "kafka_brokers_sasl", true),
                (Some(_), Some(_)) => {
                    return Err(ParamError::missing("brokers", "either brokers or kafka_brokers_sasl, not both"))
                }
                _ => {
                    return Err(ParamError::missing(
                        "brokers",
                        "a JSON array of host:port strings (or kafka_brokers_sasl with user and password)",
                    ))
                }
            };
        for b in &brokers {
            let ok = b.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !host.contains(['/', '@', ' ']) && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                return Err(ParamError::invalid(
                    param,
                    "host:port strings, e.g. [\"kafka1:9092\"]",
                    &b.as_str().into(),
                ));
            }
        }
        let topic = params.required_str("topic")?;
        let legal = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        if topic.is_empty() || topic.len() > 249 || !topic.chars().all(legal) || topic == "." || topic == ".." {
            return Err(ParamError::invalid("topic", "a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)", &topic.into()));
        }
        let mechanism = match params.str("saslMechanism")? {
            None => None,
            Some(m) => Some(Mechanism::parse(&m).ok_or_else(|| {
                ParamError::invalid("saslMechanism", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", &m.as_str().into())
            })?),
        };
        let user = params.str("user")?.filter(|u| !u.is_empty());
        let password = params.secret("password")?;
        let sasl = match (user, password) {
            (Some(user), Some(password)) => Some(Sasl {
                mechanism: mechanism.unwrap_or(Mechanism::Plain),
                user,
                password: Password::new(password.expose().to_string()),
            }),
            (None, None) if message_hub => {
                return Err(ParamError::missing("user", "user and password with kafka_brokers_sasl"))
            }
            (None, None) if mechanism.is_some() => {
                return Err(ParamError::missing("user", "user and password with saslMechanism"))
            }
            (None, None) => None,
            (Some(_), None) => return Err(ParamError::missing("password", "the SASL password that goes with user")),
            (None, Some(_)) => return Err(ParamError::missing("user", "the SASL user that goes with password")),
        };
        let http_tls = HttpTls::from_params(params)?;
        let tls = params.bool("tls")?.unwrap_or(message_hub || http_tls.ca_pem.is_some() || http_tls.insecure);
        let json_data = params.bool("isJSONData")?.unwrap_or(false);
        let binary_value = params.bool("isBinaryValue")?.unwrap_or(false);
        let binary_key = params.bool("isBinaryKey")?.unwrap_or(false);
        if json_data && binary_value {
            return Err(ParamError::invalid(
                "isBinaryValue",
                "false when isJSONData is true (isJSONData and isBinaryValue cannot both be enabled, as in Apache's feed)",
                &Value::Bool(true),
            ));
        }
        let group = params.str("groupId")?;
        if let Some(g) = &group {
            if g.trim().is_empty() || g.len() > 255 {
                return Err(ParamError::invalid(
                    "groupId",
                    "a consumer group name (1-255 characters)",
                    &g.as_str().into(),
                ));
            }
        }
        let secret = sasl.as_ref().map(|s| Secret::new(s.password.expose()));
        let settings = Settings {
            brokers: brokers.clone(),
            tls: tls.then(|| (http_tls.ca_pem.clone(), http_tls.insecure)),
            sasl: sasl.clone(),
            client_id: "owfeed".to_string(),
            timeout: REQUEST_TIME,
        };
        let client = Client::new(settings).map_err(|e| ParamError {
            name: "caCertificate".into(),
            expected: e.message,
            got: None,
        })?;
        let mut sorted = brokers;
        sorted.sort();
        Ok(Box::new(KafkaReader {
            client,
            topic,
            brokers: sorted,
            broker_param: param,
            // The encodings differ between the formats (Apache's quirks are kept in `legacy`
            // only), so the reader reads the core's `format` too.
            values: Values {
                json_data,
                binary_key,
                binary_value,
                legacy: params.str("format")?.is_some_and(|f| f.trim() == "legacy"),
            },
            group,
            tls: tls.then_some(http_tls),
            mechanism: sasl.as_ref().map(|s| s.mechanism),
            password: secret,
        }))
    }
}

/// A list of brokers: a JSON array, the same as a string (Apache's form, `-p brokers '["h:9092"]'`
/// through a client that keeps it a string), or a comma list.
fn broker_list(params: &Params, name: &str) -> Result<Option<Vec<String>>, ParamError> {
    if let Some(Value::String(s)) = params.raw(name) {
        if s.trim_start().starts_with('[') {
            let parsed: Option<Vec<String>> = serde_json::from_str(s).ok();
            return parsed
                .map(Some)
                .ok_or_else(|| ParamError::invalid(name, "a JSON array of host:port strings", &s.as_str().into()));
        }
    }
    params.list(name)
}

/// How keys and values become JSON (`isJSONData`, `isBinaryKey`, `isBinaryValue`).
#[derive(Clone, Copy, Debug)]
struct Values {
    json_data: bool,
    binary_key: bool,
    binary_value: bool,
    /// Encode as Apache's consumer does (`format=legacy`).
    legacy: bool,
}

struct KafkaReader {
    client: Client,
    topic: String,
    brokers: Vec<String>,
    broker_param: &'static str,
    values: Values,
    group: Option<String>,
    tls: Option<HttpTls>,
    mechanism: Option<Mechanism>,
    password: Option<Secret>,
}

/// Partition → the next offset to read.
type Positions = BTreeMap<i32, i64>;

fn cursor_text(positions: &Positions) -> String {
    let parts: Vec<String> = positions.iter().map(|(p, o)| format!("\"{p}\":{o}")).collect();
    format!("{{{}}}", parts.join(","))
}

fn parse_cursor(cursor: Option<&str>) -> Result<Positions, SourceError> {
    let Some(text) = cursor else { return Ok(Positions::new()) };
    let bad = || {
        SourceError::CursorRejected(format!(
            "'{text}' is not a Kafka cursor (a JSON object of partition to next offset, e.g. {{\"0\":12}})"
        ))
    };
    let value: Value = serde_json::from_str(text).map_err(|_| bad())?;
    let object = value.as_object().ok_or_else(bad)?;
    let mut positions = Positions::new();
    for (p, o) in object {
        let p: i32 = p.parse().map_err(|_| bad())?;
        let o = o.as_i64().filter(|o| *o >= 0).ok_or_else(bad)?;
        positions.insert(p, o);
    }
    Ok(positions)
}

impl KafkaReader {
    /// A client error as a `SourceError` whose message names the parameter to look at and
    /// carries no password.
    fn error(&self, e: owfeed_kafka::Error) -> SourceError {
        let mut message = e.message;
        if let Some(secret) = &self.password {
            if !secret.expose().is_empty() {
                message = message.replace(secret.expose(), "[redacted]");
            }
        }
        let credentials = match self.mechanism {
            Some(m) => format!("user, password (SASL {})", m.name()),
            None => "user, password (none given: does the cluster require SASL?)".to_string(),
        };
        match e.kind {
            ErrorKind::Connect => SourceError::Transient(format!("{}: {message}", self.broker_param)),
            ErrorKind::Tls => SourceError::Config(format!(
                "tls, caCertificate, insecureSkipTlsVerify: {message}{}",
                if self.tls.is_none() { " (tls is off: is the listener TLS?)" } else { "" }
            )),
            ErrorKind::Auth => SourceError::Unauthorized(format!("{credentials}: {message}")),
            ErrorKind::UnknownTopic => SourceError::NotFound(format!("topic: {message}")),
            ErrorKind::Group => SourceError::Config(format!("groupId: {message}")),
            ErrorKind::Protocol => SourceError::Config(format!("{}: {message}", self.broker_param)),
            ErrorKind::Transient => SourceError::Transient(message),
        }
    }

    fn partitions(&self) -> Result<Vec<i32>, SourceError> {
        self.client.partitions(&self.topic).map_err(|e| self.error(e))
    }

    /// Each partition's earliest offset and its end (the high watermark), the end checked by
    /// a fetch rather than taken from ListOffsets alone (see the module doc: tansu's quirk).
    fn bounds(&self, partitions: &[i32]) -> Result<BTreeMap<i32, (i64, i64)>, SourceError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let earliest = self.client.list_offsets(&self.topic, partitions, false).map_err(|e| self.error(e))?;
        let latest = self.client.list_offsets(&self.topic, partitions, true).map_err(|e| self.error(e))?;
        let probe: Positions = partitions.iter().map(|p| (*p, latest.get(p).copied().unwrap_or(0).max(0))).collect();
        // One byte: the answer's high watermark is what is wanted, not its records.
        let fetched = self.client.fetch(&self.topic, &probe, Duration::ZERO, 1).map_err(|e| self.error(e))?;
        let mut out = BTreeMap::new();
        for p in partitions {
            let start = earliest.get(p).copied().unwrap_or(0).max(0);
            let listed = probe[p];
            let end = match fetched.get(p) {
                Some(f) if f.error_code == 0 && f.high_watermark >= 0 => f.high_watermark,
                _ => listed,
            };
            out.insert(*p, (start, end.max(start)));
        }
        Ok(out)
    }

    /// Why each out-of-range partition is refused, in words.
    fn gap(&self, partition: i32, offset: i64, bounds: Option<(i64, i64)>) -> String {
        match bounds {
            Some((start, _)) if offset < start => format!(
                "partition {partition}: offset {offset} is no longer held (the log starts at {start}): records \
                 {offset} to {} were deleted, by retention most likely",
                start - 1
            ),
            Some((_, end)) if offset > end => format!(
                "partition {partition}: offset {offset} is past the end of the log ({end}): the topic was deleted \
                 and created again, or truncated"
            ),
            Some(_) => format!("partition {partition}: the broker refused offset {offset} (OFFSET_OUT_OF_RANGE)"),
            None => format!("partition {partition}: it no longer exists (the topic was deleted and created again)"),
        }
    }

    fn record(&self, m: &Message) -> Record {
        let mut attrs = Map::new();
        attrs.insert("topic".into(), json!(self.topic));
        attrs.insert("partition".into(), json!(m.partition));
        attrs.insert("offset".into(), json!(m.offset));
        let key = key_json(m.key.as_deref(), self.values.binary_key, self.values.legacy);
        let value = value_json(m.value.as_deref(), self.values, self.values.legacy);
        let size = json_len(&key) + json_len(&value);
        if size > MAX_MESSAGE_JSON {
            attrs.insert("key".into(), if json_len(&key) > MAX_MESSAGE_JSON / 2 { Value::Null } else { key });
            attrs.insert("value".into(), Value::Null);
            attrs.insert("truncated".into(), json!(true));
            attrs.insert(
                "size".into(),
                json!(m.key.as_ref().map_or(0, |k| k.len()) + m.value.as_ref().map_or(0, |v| v.len())),
            );
        } else {
            attrs.insert("key".into(), key);
            attrs.insert("value".into(), value);
        }
        attrs.insert("timestamp".into(), json!(m.timestamp));
        if !m.headers.is_empty() {
            let headers: Vec<Value> = m
                .headers
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v.as_deref().map(|b| String::from_utf8_lossy(b).into_owned())}))
                .collect();
            attrs.insert("headers".into(), Value::Array(headers));
        }
        let text_key = m.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or("");
        Record {
            id: format!("{}/{}/{}", self.topic, m.partition, m.offset),
            key: text_key.to_string(),
            kind: ChangeKind::Created,
            attrs,
            time: (m.timestamp >= 0).then(|| chrono::DateTime::from_timestamp_millis(m.timestamp)).flatten(),
        }
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.len())
}

/// Python 2's `str.encode("base64")` then `.strip()`, as Apache's consumer encodes binary keys
/// and values (consumer.py:533, 546): MIME base64, a newline after every 76 characters.
fn python2_base64(bytes: &[u8]) -> String {
    let flat = STANDARD.encode(bytes);
    let lines: Vec<&str> =
        flat.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    lines.join("\n")
}

/// A key as JSON: null, base64 (`isBinaryKey`), or text with invalid UTF-8 replaced.
fn key_json(key: Option<&[u8]>, binary: bool, legacy: bool) -> Value {
    match key {
        None => Value::Null,
        Some(k) if binary && legacy => Value::String(python2_base64(k)),
        Some(k) if binary => Value::String(STANDARD.encode(k)),
        Some(k) => Value::String(String::from_utf8_lossy(k).into_owned()),
    }
}

/// A value as JSON per `isJSONData` / `isBinaryValue`. Legacy: exactly as Apache's consumer
/// (consumer.py:518-541), including its quirk of a value that is not JSON under isJSONData
/// becoming that text wrapped in double quotes.
fn value_json(value: Option<&[u8]>, values: Values, legacy: bool) -> Value {
    let Some(bytes) = value else { return Value::Null };
    let text = String::from_utf8_lossy(bytes);
    if values.json_data {
        return match serde_json::from_str::<Value>(&text) {
            Ok(v) => v,
            Err(_) if legacy => Value::String(format!("\"{text}\"")),
            Err(_) => Value::String(text.into_owned()),
        };
    }
    if values.binary_value {
        return Value::String(if legacy { python2_base64(bytes) } else { STANDARD.encode(bytes) });
    }
    Value::String(text.into_owned())
}

impl LogReader for KafkaReader {
    fn source_uri(&self) -> String {
        format!("kafka://{}/{}", self.brokers.join(","), self.topic)
    }

    fn event_type_prefix(&self) -> &'static str {
        EVENT_TYPE_PREFIX
    }

    fn event_type(&self, _record: &Record) -> String {
        EVENT_TYPE.to_string()
    }

    fn data_context(&self) -> Map<String, Value> {
        Map::new()
    }

    fn probe(&self) -> Result<(), SourceError> {
        let partitions = self.partitions()?;
        // Reading offsets needs the same rights and leaders a poll needs.
        self.bounds(&partitions).map(|_| ())
    }

    fn current(&self) -> Result<String, SourceError> {
        let partitions = self.partitions()?;
        let bounds = self.bounds(&partitions)?;
        Ok(cursor_text(&bounds.iter().map(|(p, (_, end))| (*p, *end)).collect()))
    }

    fn restart(&self, rejected: Option<&str>, to: Restart) -> Result<Option<String>, SourceError> {
        let partitions = self.partitions()?;
        let bounds = self.bounds(&partitions)?;
        // An unreadable cursor has no part worth keeping.
        let kept = parse_cursor(rejected).unwrap_or_default();
        let mut positions = Positions::new();
        for (p, (start, end)) in &bounds {
            let fresh = match to {
                Restart::Now => *end,
                Restart::Earliest => *start,
            };
            let position = match kept.get(p) {
                Some(o) if (*start..=*end).contains(o) => *o,
                Some(_) => fresh,
                // Not in the cursor: read from the earliest offset, as `read` does.
                None => *start,
            };
            positions.insert(*p, position);
        }
        Ok(Some(cursor_text(&positions)))
    }

    fn read(&self, after: Option<&str>, limit: usize, wait_until: Option<Instant>) -> Result<Batch, SourceError> {
        let partitions = self.partitions()?;
        let mut positions = parse_cursor(after)?;
        let gone: Vec<i32> = positions.keys().filter(|p| !partitions.contains(p)).copied().collect();
        if !gone.is_empty() {
            let why: Vec<String> = gone.iter().map(|p| self.gap(*p, positions[p], None)).collect();
            return Err(SourceError::CursorRejected(why.join("; ")));
        }
        let new: Vec<i32> = partitions.iter().filter(|p| !positions.contains_key(p)).copied().collect();
        if !new.is_empty() {
            // A partition the cursor does not know (the topic grew): from its earliest offset.
            let earliest = self.client.list_offsets(&self.topic, &new, false).map_err(|e| self.error(e))?;
            for p in new {
                positions.insert(p, earliest.get(&p).copied().unwrap_or(0).max(0));
            }
        }
        if positions.is_empty() {
            return Ok(Batch { records: Vec::new(), cursor: cursor_text(&positions) });
        }
        let wait =
            wait_until.map_or(Duration::ZERO, |w| w.saturating_duration_since(Instant::now())).min(MAX_FETCH_WAIT);
        let fetched = self.client.fetch(&self.topic, &positions, wait, FETCH_BYTES).map_err(|e| self.error(e))?;
        let refused: Vec<(i32, i64)> = fetched
            .iter()
            .filter(|(p, f)| {
                f.error_code == 1 || (f.error_code == 0 && f.high_watermark >= 0 && positions[p] > f.high_watermark)
            })
            .map(|(p, _)| (*p, positions[p]))
            .collect();
        if !refused.is_empty() {
            let ps: Vec<i32> = refused.iter().map(|(p, _)| *p).collect();
            let bounds = self.bounds(&ps)?;
            let why: Vec<String> = refused.iter().map(|(p, o)| self.gap(*p, *o, bounds.get(p).copied())).collect();
            return Err(SourceError::CursorRejected(why.join("; ")));
        }
        let (messages, positions) = merge(fetched, positions, limit);
        let records = messages.iter().map(|m| self.record(m)).collect();
        Ok(Batch { records, cursor: cursor_text(&positions) })
    }

    fn lag(&self, cursor: Option<&str>) -> Result<Option<Value>, SourceError> {
        let partitions = self.partitions()?;
        let bounds = self.bounds(&partitions)?;
        let positions = parse_cursor(cursor).unwrap_or_default();
        let mut each = Map::new();
        let mut total = 0;
        for (p, (start, end)) in &bounds {
            // A partition the cursor does not name is read from its earliest offset.
            let at = positions.get(p).copied().unwrap_or(*start);
            let lag = (end - at).max(0);
            total += lag;
            each.insert(
                p.to_string(),
                json!({"offset": at, "highWatermark": end, "logStartOffset": start, "lag": lag}),
            );
        }
        Ok(Some(json!({"messages": total, "partitions": each})))
    }

    fn acknowledge(&self, cursor: &str) -> Result<(), SourceError> {
        let Some(group) = &self.group else { return Ok(()) };
        let positions = parse_cursor(Some(cursor))?;
        self.client.commit(group, &self.topic, &positions).map_err(|e| self.error(e))
    }

    fn notices(&self) -> Vec<String> {
        let server = format!("the brokers of {}", self.source_uri());
        let mut notices: Vec<String> = self.tls.iter().filter_map(|t| t.notice(&server)).collect();
        if self.tls.is_none() && self.mechanism == Some(Mechanism::Plain) {
            notices
                .push("SASL PLAIN without tls: the password crosses the network in the clear; use -p tls true".into());
        }
        notices
    }

    fn legacy_event(&self, record: &Record) -> Option<Value> {
        Some(legacy_message(record))
    }

    fn legacy_batch_key(&self) -> Option<&'static str> {
        Some("messages")
    }
}

/// Apache's message object (consumer.py:478-485): `value`, `topic`, `partition`, `offset`,
/// `key` (the attrs hold Apache's encodings under `format=legacy`).
fn legacy_message(record: &Record) -> Value {
    let a = &record.attrs;
    let pick = |name: &str| a.get(name).cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("value".into(), pick("value"));
    m.insert("topic".into(), pick("topic"));
    m.insert("partition".into(), pick("partition"));
    m.insert("offset".into(), pick("offset"));
    m.insert("key".into(), pick("key"));
    if a.get("truncated").is_some() {
        m.insert("truncated".into(), json!(true));
        m.insert("size".into(), a.get("size").cloned().unwrap_or(Value::Null));
    }
    Value::Object(m)
}

/// The records of all partitions in one sequence, `limit` or a few more: per partition in
/// offset order, across partitions by timestamp; and the positions after what was taken (a
/// partition read to the end of what was fetched moves past skipped control and compacted
/// records too).
///
/// A partition is never left inside a record batch: once `limit` is reached, the rest of each
/// batch begun is taken too (at most one batch more per partition). Kafka resumes a fetch at
/// any offset, but tansu 0.6 answers a Fetch at an offset inside a batch with only the batches
/// that start after it (tansu-storage src/dynostore.rs `fetch`: `offsets.split_off(&offset)`),
/// which would skip the rest of that batch for good.
fn merge(fetched: BTreeMap<i32, Fetched>, mut positions: Positions, limit: usize) -> (Vec<Message>, Positions) {
    let mut queues: BTreeMap<i32, (VecDeque<Message>, i64)> =
        fetched.into_iter().map(|(p, f)| (p, (f.messages.into(), f.next))).collect();
    let mut out = Vec::new();
    // Partition → the end of the batch its last taken record belongs to.
    let mut begun: BTreeMap<i32, i64> = BTreeMap::new();
    while out.len() < limit {
        let next = queues.iter().filter_map(|(p, (q, _))| q.front().map(|m| (m.timestamp, *p))).min();
        let Some((_, p)) = next else { break };
        let (queue, _) = queues.get_mut(&p).expect("chosen from queues");
        let m = queue.pop_front().expect("has a front");
        positions.insert(p, m.offset + 1);
        begun.insert(p, m.batch_next);
        out.push(m);
    }
    for (p, batch_next) in begun {
        let (queue, _) = queues.get_mut(&p).expect("taken from queues");
        while queue.front().is_some_and(|m| m.batch_next == batch_next) {
            let m = queue.pop_front().expect("has a front");
            out.push(m);
        }
        // The batch is read to its end (its last records may be control or compacted away).
        let at = positions.entry(p).or_insert(batch_next);
        *at = (*at).max(batch_next);
    }
    for (p, (queue, next)) in queues {
        if queue.is_empty() {
            let at = positions.entry(p).or_insert(next);
            *at = (*at).max(next);
        }
    }
    (out, positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(v: Value) -> Result<Box<dyn LogReader>, ParamError> {
        KafkaSource.open(&Params::from_value(v).unwrap())
    }

    #[test]
    fn parameters_are_checked_by_name_and_never_echo_the_password() {
        let err = |v: Value| open(v).err().expect("refused").to_string();
        assert!(err(json!({"topic": "t"})).contains("parameter 'brokers'"));
        assert!(err(json!({"brokers": ["k:9092"]})).contains("parameter 'topic'"));
        assert!(err(json!({"brokers": ["k"], "topic": "t"})).contains("parameter 'brokers'"));
        assert!(err(json!({"brokers": "[\"k:99999\"]", "topic": "t"})).contains("parameter 'brokers'"));
        assert!(err(json!({"kafka_brokers_sasl": ["k:x"], "topic": "t"})).contains("parameter 'kafka_brokers_sasl'"));
        assert!(err(json!({"kafka_brokers_sasl": ["k:9093"], "topic": "t"})).contains("parameter 'user'"));
        assert!(err(json!({"brokers": ["k:9092"], "topic": "a/b"})).contains("parameter 'topic'"));
        let both = err(json!({"brokers": ["k:9092"], "topic": "t", "isJSONData": true, "isBinaryValue": true}));
        assert!(both.contains("parameter 'isBinaryValue'") && both.contains("isJSONData"), "{both}");
        let secret = "hunter2-secret";
        let e =
            err(json!({"brokers": ["k:9092"], "topic": "t", "user": "u", "password": secret, "saslMechanism": "MD5"}));
        assert!(e.contains("parameter 'saslMechanism'") && !e.contains(secret), "{e}");
        let e = err(json!({"brokers": ["k:9092"], "topic": "t", "password": secret}));
        assert!(e.contains("parameter 'user'") && !e.contains(secret), "{e}");
        assert!(err(json!({"brokers": ["k:9092"], "topic": "t", "groupId": ""})).contains("parameter 'groupId'"));
        // The Message Hub form: TLS and SASL PLAIN on by default.
        let r = open(
            json!({"kafka_brokers_sasl": "[\"a:9093\",\"b:9093\"]", "topic": "t", "user": "u", "password": secret}),
        )
        .expect("valid");
        assert_eq!(r.source_uri(), "kafka://a:9093,b:9093/t");
        assert!(r.notices().is_empty(), "{:?}", r.notices());
        let r = open(json!({"brokers": ["k:9092"], "topic": "t", "user": "u", "password": secret})).expect("valid");
        assert!(r.notices()[0].contains("in the clear"), "{:?}", r.notices());
    }

    #[test]
    fn cursors_round_trip_in_partition_order() {
        let p: Positions = [(10, 3), (2, 7), (0, 0)].into_iter().collect();
        let text = cursor_text(&p);
        assert_eq!(text, r#"{"0":0,"2":7,"10":3}"#);
        assert_eq!(parse_cursor(Some(&text)), Ok(p));
        assert_eq!(parse_cursor(None), Ok(Positions::new()));
        for bad in ["12", "{\"x\":1}", "{\"0\":-1}", "{\"0\":\"a\"}", "nope"] {
            assert!(matches!(parse_cursor(Some(bad)), Err(SourceError::CursorRejected(_))), "{bad}");
        }
    }

    fn msg(partition: i32, offset: i64, timestamp: i64) -> Message {
        Message { partition, offset, batch_next: offset + 1, timestamp, key: None, value: None, headers: Vec::new() }
    }

    #[test]
    fn merge_keeps_partition_order_and_moves_only_past_what_it_took() {
        let f = |messages: Vec<Message>, next: i64| Fetched {
            error_code: 0,
            high_watermark: next,
            log_start_offset: 0,
            messages,
            next,
        };
        let fetched: BTreeMap<i32, Fetched> = [
            (0, f(vec![msg(0, 5, 100), msg(0, 6, 300)], 7)),
            (1, f(vec![msg(1, 0, 200)], 1)),
            // Only a control batch: nothing to fire, the position still moves past it.
            (2, f(vec![], 9)),
        ]
        .into_iter()
        .collect();
        let start: Positions = [(0, 5), (1, 0), (2, 8)].into_iter().collect();
        let (all, after) = merge(fetched.clone(), start.clone(), 10);
        let order: Vec<(i32, i64)> = all.iter().map(|m| (m.partition, m.offset)).collect();
        assert_eq!(order, [(0, 5), (1, 0), (0, 6)]);
        assert_eq!(after, [(0, 7), (1, 1), (2, 9)].into_iter().collect());
        let (two, after) = merge(fetched, start, 2);
        assert_eq!(two.len(), 2);
        // Partition 0's offset 6 was not taken: it is read again next time.
        assert_eq!(after, [(0, 6), (1, 1), (2, 9)].into_iter().collect());
    }

    #[test]
    fn merge_never_stops_inside_a_record_batch() {
        // Partition 0: one batch of offsets 0-3 (its end 5: offset 4 compacted away);
        // partition 1: two batches, 0-1 and 2-3.
        let batch = |p: i32, offsets: std::ops::Range<i64>, end: i64, t: i64| -> Vec<Message> {
            offsets.map(|o| Message { batch_next: end, ..msg(p, o, t + o) }).collect()
        };
        let f = |messages: Vec<Message>, next: i64| Fetched {
            error_code: 0,
            high_watermark: next,
            log_start_offset: 0,
            messages,
            next,
        };
        let mut p1 = batch(1, 0..2, 2, 10);
        p1.extend(batch(1, 2..4, 4, 10));
        let fetched: BTreeMap<i32, Fetched> = [(0, f(batch(0, 0..4, 5, 0), 5)), (1, f(p1, 4))].into_iter().collect();
        let start: Positions = [(0, 0), (1, 0)].into_iter().collect();
        // The limit falls inside partition 0's batch: the batch is taken whole, partition 1 not begun.
        let (taken, after) = merge(fetched.clone(), start.clone(), 2);
        let order: Vec<(i32, i64)> = taken.iter().map(|m| (m.partition, m.offset)).collect();
        assert_eq!(order, [(0, 0), (0, 1), (0, 2), (0, 3)]);
        assert_eq!(after, [(0, 5), (1, 0)].into_iter().collect());
        // Inside partition 1's first batch: to its end, not into the second.
        let (taken, after) = merge(fetched, start, 5);
        assert_eq!(taken.len(), 6);
        assert_eq!(after, [(0, 5), (1, 2)].into_iter().collect());
    }

    #[test]
    fn values_and_keys_as_apache_encodes_them() {
        let plain = Values { json_data: false, binary_key: false, binary_value: false, legacy: true };
        let json_data = Values { json_data: true, ..plain };
        let binary = Values { binary_value: true, ..plain };
        assert_eq!(value_json(Some(b"{\"a\":1}"), json_data, true), json!({"a": 1}));
        assert_eq!(value_json(Some(b"not json"), json_data, true), json!("\"not json\""));
        assert_eq!(value_json(Some(b"not json"), json_data, false), json!("not json"));
        assert_eq!(value_json(Some(b"Some data"), binary, true), json!("U29tZSBkYXRh"));
        assert_eq!(value_json(None, binary, true), Value::Null);
        assert_eq!(value_json(Some(b"\xff\xfeok"), plain, true), json!("\u{fffd}\u{fffd}ok"));
        // Python 2's base64 codec breaks lines at 76 characters; .strip() keeps the inner ones.
        let long = python2_base64(&[0u8; 60]);
        assert_eq!(long.lines().map(str::len).collect::<Vec<_>>(), [76, 4]);
        assert_eq!(key_json(Some(b"Some key"), true, true), json!("U29tZSBrZXk="));
        assert_eq!(key_json(None, true, true), Value::Null);
    }
}
