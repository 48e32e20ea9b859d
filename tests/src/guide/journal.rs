//! The guide's log source (docs/writing-a-source.md quotes everything below).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use owfeed::change::{ChangeKind, Record};
use owfeed::params::{ParamError, Params};
use owfeed::source::{Batch, LogReader, LogSource, ParamSpec, SourceError};
use serde_json::{json, Map, Value};

/// The `journal` source: an append-only file of JSON lines, one change each, such as
/// `{"key": "invoice-7", "op": "update", "time": "2026-12-05T08:00:00Z", "total": 12}`.
pub struct JournalSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec { name: "journal", secret: false, required: true, doc: "the journal file" },
    ParamSpec { name: "stateBucket", secret: false, required: true, doc: "S3 bucket for the state (see Sources)" },
];

impl LogSource for JournalSource {
    fn name(&self) -> &'static str {
        "journal"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn LogReader>, ParamError> {
        let path = params.required_str("journal")?;
        if !path.starts_with('/') {
            return Err(ParamError::invalid("journal", "an absolute path", &path.into()));
        }
        Ok(Box::new(Journal { path: PathBuf::from(path) }))
    }
}

/// The cursor is the byte offset after the last line read: an append-only file never moves a
/// line, so a line's offset is also its identity.
struct Journal {
    path: PathBuf,
}

impl Journal {
    fn open(&self) -> Result<(File, u64), SourceError> {
        let file = File::open(&self.path).map_err(|e| SourceError::NotFound(format!("journal: {e}")))?;
        let len = file.metadata().map_err(|e| SourceError::Transient(format!("journal: {e}")))?.len();
        Ok((file, len))
    }

    /// The journal from `offset` to the end of its last complete line: a line still being
    /// written has no newline yet and is read once it is whole.
    fn complete_lines_from(&self, offset: u64) -> Result<Vec<u8>, SourceError> {
        let (mut file, len) = self.open()?;
        if offset > len {
            return Err(SourceError::CursorRejected(format!(
                "the journal has {len} bytes, fewer than the cursor {offset}: it was truncated or replaced"
            )));
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| SourceError::Transient(format!("journal: {e}")))?;
        bytes.truncate(bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1));
        Ok(bytes)
    }
}

fn offset(cursor: Option<&str>) -> Result<u64, SourceError> {
    let Some(cursor) = cursor else { return Ok(0) };
    cursor.parse().map_err(|_| SourceError::CursorRejected(format!("cursor '{cursor}' is not a byte offset")))
}

/// The line at byte `at` as a record; a line that is not a change stops the feed with a message
/// naming it (skipping it would lose it silently).
fn record(at: u64, line: &[u8]) -> Result<Record, SourceError> {
    let bad = |what: &str| SourceError::Config(format!("journal line at byte {at}: {what}"));
    let Ok(Value::Object(mut attrs)) = serde_json::from_slice::<Value>(line) else {
        return Err(bad("not a JSON object"));
    };
    let Some(Value::String(key)) = attrs.remove("key") else { return Err(bad("no string `key`")) };
    let kind = match attrs.remove("op").as_ref().and_then(Value::as_str) {
        Some("create") => ChangeKind::Created,
        Some("update") => ChangeKind::Updated,
        Some("delete") => ChangeKind::Deleted,
        _ => return Err(bad("`op` is none of create, update, delete")),
    };
    // When the journal says the change happened; without it the event's time is when it was read.
    let time = attrs.get("time").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    Ok(Record { id: at.to_string(), key, kind, attrs, time: time.map(|t| t.with_timezone(&Utc)) })
}

impl LogReader for Journal {
    fn source_uri(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn event_type_prefix(&self) -> &'static str {
        "org.example.journal.entry"
    }

    fn data_context(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("journal".into(), json!(self.path.display().to_string()));
        m
    }

    fn probe(&self) -> Result<(), SourceError> {
        self.open().map(drop)
    }

    fn current(&self) -> Result<String, SourceError> {
        Ok(self.complete_lines_from(0)?.len().to_string())
    }

    fn read(&self, after: Option<&str>, limit: usize, wait_until: Option<Instant>) -> Result<Batch, SourceError> {
        let start = offset(after)?;
        loop {
            let bytes = self.complete_lines_from(start)?;
            if !bytes.is_empty() || wait_until.is_none_or(|w| Instant::now() >= w) {
                let mut records = Vec::new();
                let mut at = start;
                for line in bytes.split_inclusive(|b| *b == b'\n').take(limit) {
                    if !line.trim_ascii().is_empty() {
                        records.push(record(at, line)?);
                    }
                    at += line.len() as u64;
                }
                return Ok(Batch { records, cursor: at.to_string() });
            }
            // Connection mode: hold the read open until a line arrives or the wait ends.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn lag(&self, cursor: Option<&str>) -> Result<Option<Value>, SourceError> {
        let (_, len) = self.open()?;
        Ok(Some(json!({ "bytes": len.saturating_sub(offset(cursor)?) })))
    }
}
