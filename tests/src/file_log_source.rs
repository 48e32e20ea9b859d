//! A test-only log source: records are the lines of a JSON-lines file, blobs live in a
//! directory. It runs the real log core through the emulator without a database server.
//!
//! `log` names the file; each line is `{"id": …, "key": …, "kind": "created|updated|deleted"}`
//! plus any attributes. Cursor `n` means "after the first n lines". A file `{log}.floor` holding
//! a number makes every smaller cursor rejected (as a database that lost its history refuses
//! an old sequence), and cursors that are not numbers are rejected too. `stateDir` is a
//! directory for the state blobs (without it the user names a store). A waiting read polls
//! the file until a line arrives or the wait ends.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::listing_source::DirStore;
use owfeed::change::{ChangeKind, Record};
use owfeed::params::{ParamError, Params};
use owfeed::source::{Batch, BlobStore, LogReader, LogSource, ParamSpec, SourceError};

/// The `filelog` test source.
pub struct FileLogSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec { name: "log", secret: false, required: true, doc: "path of the JSON-lines log file" },
    ParamSpec { name: "stateDir", secret: false, required: false, doc: "directory for state blobs" },
];

impl LogSource for FileLogSource {
    fn name(&self) -> &'static str {
        "filelog"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn LogReader>, ParamError> {
        let log = PathBuf::from(params.required_str("log")?);
        let state_dir = params.str("stateDir")?.map(PathBuf::from);
        Ok(Box::new(FileLog { log, state_dir }))
    }
}

struct FileLog {
    log: PathBuf,
    state_dir: Option<PathBuf>,
}

/// Appends records to a log file as the source reads them.
pub fn append(log: &Path, records: &[Value]) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().create(true).append(true).open(log).expect("open log");
    for r in records {
        writeln!(f, "{r}").expect("append to log");
    }
}

impl FileLog {
    fn lines(&self) -> Result<Vec<Value>, SourceError> {
        let text = match fs::read_to_string(&self.log) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(SourceError::Transient(format!("log {}: {e}", self.log.display()))),
        };
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(|e| SourceError::Transient(format!("log: invalid line: {e}"))))
            .collect()
    }

    fn floor(&self) -> usize {
        let path = PathBuf::from(format!("{}.floor", self.log.display()));
        fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }
}

fn to_record(line: &Value) -> Record {
    let kind = match line["kind"].as_str() {
        Some("deleted") => ChangeKind::Deleted,
        Some("updated") => ChangeKind::Updated,
        _ => ChangeKind::Created,
    };
    let mut attrs: Map<String, Value> = line.as_object().cloned().unwrap_or_default();
    for k in ["id", "key", "kind"] {
        attrs.remove(k);
    }
    Record {
        id: line["id"].as_str().unwrap_or_default().to_string(),
        key: line["key"].as_str().unwrap_or_default().to_string(),
        kind,
        attrs,
        time: None,
    }
}

impl LogReader for FileLog {
    fn source_uri(&self) -> String {
        format!("file://{}", self.log.display())
    }

    fn event_type_prefix(&self) -> &'static str {
        "test.filelog.record"
    }

    fn data_context(&self) -> Map<String, Value> {
        Map::new()
    }

    fn probe(&self) -> Result<(), SourceError> {
        self.lines().map(|_| ())
    }

    fn current(&self) -> Result<String, SourceError> {
        Ok(self.lines()?.len().to_string())
    }

    fn read(&self, after: Option<&str>, limit: usize, wait_until: Option<Instant>) -> Result<Batch, SourceError> {
        let from = match after {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| SourceError::CursorRejected(format!("malformed cursor {c}")))?,
        };
        if from < self.floor() {
            return Err(SourceError::CursorRejected(format!("cursor {from} is older than the log's history")));
        }
        loop {
            let lines = self.lines()?;
            if lines.len() > from || wait_until.is_none_or(|w| Instant::now() >= w) {
                let records: Vec<Record> = lines.iter().skip(from).take(limit).map(to_record).collect();
                let cursor = (from + records.len()).to_string();
                return Ok(Batch { records, cursor });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        let dir = self.state_dir.clone()?;
        Some(Box::new(DirStore { dir }))
    }
}
