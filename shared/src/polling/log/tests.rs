//! The log data path against an in-memory log source (a test double of a *source*, like the
//! S3 servers of the suite) and an in-memory blob store with conditional writes. Fires go to a
//! recorder standing in for the user's trigger, which checks at every fire what the store
//! holds at that moment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use super::super::status::Rebaselined;
use super::*;
use crate::change::ChangeKind;
use crate::delivery::DeliveryOutcome;
use crate::delivery::DeliveryReport;
use crate::openwhisk::QualifiedName;
use crate::params::Params;
use crate::source::{Batch, Blob, BlobStore, Precondition};
use crate::state::tests::Rng;

/// A log in memory: cursor `n` means "after the first n records". Cursors below `floor`, and
/// anything that is not a number, are refused, as CouchDB refuses a malformed `since`.
#[derive(Default)]
struct MemLog {
    records: Mutex<Vec<Record>>,
    floor: Mutex<usize>,
    acks: Mutex<Vec<String>>,
}

impl MemLog {
    fn with(records: Vec<Record>) -> MemLog {
        MemLog { records: Mutex::new(records), ..MemLog::default() }
    }

    fn push(&self, record: Record) {
        self.records.lock().unwrap().push(record);
    }
}

fn record(i: usize, key: &str, kind: ChangeKind) -> Record {
    let mut attrs = Map::new();
    attrs.insert("seq".to_string(), json!(i));
    Record { id: format!("{key}@{i}"), key: key.to_string(), kind, attrs, time: None }
}

impl LogReader for MemLog {
    fn source_uri(&self) -> String {
        "mem://log".to_string()
    }
    fn event_type_prefix(&self) -> &'static str {
        "test.log.record"
    }
    fn data_context(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("log".to_string(), json!("mem"));
        m
    }
    fn probe(&self) -> Result<(), SourceError> {
        Ok(())
    }
    fn current(&self) -> Result<String, SourceError> {
        Ok(self.records.lock().unwrap().len().to_string())
    }
    fn read(&self, after: Option<&str>, limit: usize, wait_until: Option<Instant>) -> Result<Batch, SourceError> {
        let from = match after {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| SourceError::CursorRejected(format!("malformed cursor {c}")))?,
        };
        if from < *self.floor.lock().unwrap() {
            return Err(SourceError::CursorRejected(format!("cursor {from} is gone")));
        }
        loop {
            let records = self.records.lock().unwrap();
            if records.len() > from || wait_until.is_none_or(|w| Instant::now() >= w) {
                let taken: Vec<Record> = records.iter().skip(from).take(limit).cloned().collect();
                let cursor = (from + taken.len()).to_string();
                return Ok(Batch { records: taken, cursor });
            }
            drop(records);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    fn acknowledge(&self, cursor: &str) -> Result<(), SourceError> {
        self.acks.lock().unwrap().push(cursor.to_string());
        Ok(())
    }
}

/// Each key's bytes and version.
type Blobs = HashMap<String, (Vec<u8>, u64)>;

/// Blobs in memory with the conditional writes of an honest store.
#[derive(Clone, Default)]
struct MemBlobs(Arc<Mutex<Blobs>>);

impl BlobStore for MemBlobs {
    fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
        let blobs = self.0.lock().unwrap();
        Ok(blobs.get(key).map(|(bytes, v)| Blob { bytes: bytes.clone(), etag: format!("\"{v}\""), modified: None }))
    }
    fn put(&self, key: &str, bytes: &[u8], condition: &Precondition) -> Result<String, StoreError> {
        let mut blobs = self.0.lock().unwrap();
        let current = blobs.get(key).map(|(_, v)| format!("\"{v}\""));
        let ok = match condition {
            Precondition::IfAbsent => current.is_none(),
            Precondition::IfMatch(tag) => current.as_deref() == Some(tag.as_str()),
            Precondition::IfMatchUnquoted(tag) => current.as_deref() == Some(&format!("\"{tag}\"")),
            Precondition::None => true,
        };
        if !ok {
            return Err(StoreError::Conflict);
        }
        let version = blobs.values().map(|(_, v)| *v).max().unwrap_or(0) + 1;
        blobs.insert(key.to_string(), (bytes.to_vec(), version));
        Ok(format!("\"{version}\""))
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }
    fn describe(&self, key: &str) -> String {
        format!("mem://{key}")
    }
    fn reserved_prefix(&self) -> Option<String> {
        None
    }
}

fn trigger() -> QualifiedName {
    QualifiedName::new("ns", None, "t")
}

fn store(blobs: &MemBlobs) -> StateStore {
    StateStore::new(Box::new(blobs.clone()), &trigger())
}

fn settings(params: Value) -> PollSettings {
    PollSettings::from_params(&Params::from_value(params).unwrap(), "mem://log").unwrap()
}

fn log_settings(params: Value) -> LogSettings {
    LogSettings::from_params(&Params::from_value(params).unwrap()).unwrap()
}

/// The user's trigger: records what it receives and, at each fire, checks that every event it
/// is handed is already in the committed outbox, with the cursor past its record.
struct Recorder {
    blobs: MemBlobs,
    fired: Vec<Value>,
    /// Fires accepted before the next one fails (a crash of the poll after that many).
    fail_after: Option<usize>,
}

impl Recorder {
    fn new(blobs: &MemBlobs) -> Recorder {
        Recorder { blobs: blobs.clone(), fired: Vec::new(), fail_after: None }
    }
}

impl Fire for Recorder {
    fn fire(&mut self, outbox: &[Value], _budget: &Budget) -> DeliveryReport {
        let (stored, _) = store(&self.blobs).load().unwrap().expect("state committed before any fire");
        let mut delivered = 0;
        for event in outbox {
            assert!(stored.outbox.contains(event), "fired an event the store does not hold: {event}");
            if self.fail_after == Some(0) {
                self.fail_after = None;
                return DeliveryReport {
                    delivered,
                    requests: delivered + 1,
                    outcome: DeliveryOutcome::Failed("crash".to_string()),
                };
            }
            self.fail_after = self.fail_after.map(|n| n - 1);
            self.fired.push(event.clone());
            delivered += 1;
        }
        DeliveryReport { delivered, requests: delivered, outcome: DeliveryOutcome::Done }
    }
}

/// Runs one poll of `reader` with the state in `blobs`.
fn poll_once(
    reader: &MemLog,
    blobs: &MemBlobs,
    fire: &mut Recorder,
    settings: &PollSettings,
    log: &LogSettings,
    budget: Budget,
) -> (Result<Ended, ActionError>, PollStatus) {
    let store = store(blobs);
    let mut status = PollStatus { outcome: PollOutcome::Ok, ..PollStatus::default() };
    let mut poller = LogPoller {
        reader,
        store: &store,
        settings,
        log,
        salt: trigger().to_string(),
        fire,
        list_margin: Duration::ZERO,
        list_cap: None,
    };
    let ended = poller.run(&budget, &mut status);
    (ended, status)
}

fn created(reader: &MemLog, blobs: &MemBlobs, since: &Since) {
    store(blobs).create(&log_baseline(reader, since).unwrap()).unwrap();
}

fn stored(blobs: &MemBlobs) -> State {
    store(blobs).load().unwrap().unwrap().0
}

fn unbounded() -> Budget {
    Budget::new(None, Duration::ZERO)
}

/// An event without its `time` (when it was read), which a replay may change.
fn timeless(event: &Value) -> Value {
    let mut e = event.clone();
    if let Value::Object(o) = &mut e {
        o.remove("time");
    }
    e
}

#[test]
fn events_are_committed_with_the_cursor_before_they_fire_and_acknowledged_after() {
    let reader = MemLog::with(vec![record(0, "old", ChangeKind::Created)]);
    let blobs = MemBlobs::default();
    created(&reader, &blobs, &Since::Now);
    assert_eq!(stored(&blobs).log.unwrap().cursor.as_deref(), Some("1"), "since=now starts after what exists");
    for i in 1..6 {
        reader.push(record(i, &format!("doc{i}"), ChangeKind::Updated));
    }
    let mut fire = Recorder::new(&blobs);
    let (ended, status) =
        poll_once(&reader, &blobs, &mut fire, &settings(json!({})), &log_settings(json!({})), unbounded());
    assert!(matches!(ended, Ok(Ended::Normally)));
    assert_eq!(status.outcome, PollOutcome::Ok);
    assert_eq!((status.listed, status.changes, status.fired, status.pending), (5, 5, 5, 0));
    let keys: Vec<&str> = fire.fired.iter().map(|e| e["subject"].as_str().unwrap()).collect();
    assert_eq!(keys, ["doc1", "doc2", "doc3", "doc4", "doc5"]);
    assert_eq!(fire.fired[0]["type"], "test.log.record.updated");
    assert_eq!(fire.fired[0]["data"]["log"], "mem");
    assert_eq!(fire.fired[0]["data"]["seq"], 1);
    let state = stored(&blobs);
    assert!(state.outbox.is_empty());
    assert_eq!(state.stats.events_fired, 5);
    assert_eq!(state.log.as_ref().unwrap().cursor.as_deref(), Some("6"));
    assert_eq!(state.log.unwrap().records_read, 5);
    assert_eq!(*reader.acks.lock().unwrap(), ["6"]);

    // Nothing new: no read moves the cursor, so nothing is written.
    let before = blobs.0.lock().unwrap().clone();
    let (_, status) =
        poll_once(&reader, &blobs, &mut fire, &settings(json!({})), &log_settings(json!({})), unbounded());
    assert_eq!((status.listed, status.fired), (0, 0));
    assert_eq!(*blobs.0.lock().unwrap(), before);
}

#[test]
fn since_zero_reads_from_the_start_and_filters_select_records() {
    let reader = MemLog::with(vec![
        record(0, "a/1.json", ChangeKind::Created),
        record(1, "b/2.json", ChangeKind::Created),
        record(2, "a/3.txt", ChangeKind::Created),
        record(3, "a/4.json", ChangeKind::Deleted),
    ]);
    let blobs = MemBlobs::default();
    let log = log_settings(json!({ "since": 0 }));
    assert_eq!(log.since, Since::Start);
    created(&reader, &blobs, &log.since);
    let mut fire = Recorder::new(&blobs);
    let filters = settings(json!({ "prefix": "a/", "suffix": ".json", "events": ["created"] }));
    let (_, status) = poll_once(&reader, &blobs, &mut fire, &filters, &log, unbounded());
    assert_eq!((status.listed, status.changes), (4, 1));
    assert_eq!(fire.fired.len(), 1);
    assert_eq!(fire.fired[0]["subject"], "a/1.json");
    // Filtered-out records still move the cursor: they are read, not pending.
    assert_eq!(stored(&blobs).log.unwrap().cursor.as_deref(), Some("4"));
}

#[test]
fn a_log_replayed_from_any_committed_cursor_yields_the_same_events_with_the_same_ids() {
    for seed in 1..60u64 {
        let mut rng = Rng(seed);
        let n = 1 + rng.below(80);
        let kinds = [ChangeKind::Created, ChangeKind::Updated, ChangeKind::Deleted];
        // Keys repeat, as documents are written again and again.
        let records: Vec<Record> =
            (0..n).map(|i| record(i, &format!("doc{}", rng.below(12)), kinds[rng.below(3)])).collect();
        let reader = MemLog::with(records.clone());
        let config = settings(json!({ "maxChangesPerPoll": 1 + rng.below(9) }));
        let log = log_settings(json!({ "since": "0" }));

        // The reference: every record read at once, by a different trigger-independent path.
        let salt = trigger().to_string();
        let reference: Vec<Value> =
            record_events(&reader, &config, &salt, &records, chrono::Utc::now()).iter().map(timeless).collect();

        // Polls with crashes at random fires, each later poll resuming from the committed state.
        let blobs = MemBlobs::default();
        created(&reader, &blobs, &log.since);
        let mut fire = Recorder::new(&blobs);
        let mut cursors = vec![None];
        for round in 0.. {
            assert!(round < 1_000, "seed {seed}: no progress");
            fire.fail_after = (rng.below(3) == 0).then(|| rng.below(4));
            let (ended, _) = poll_once(&reader, &blobs, &mut fire, &config, &log, unbounded());
            assert!(ended.is_ok() || fire.fail_after.is_none(), "seed {seed}: {:?}", ended.err());
            let state = stored(&blobs);
            let cursor = state.log.unwrap().cursor;
            if cursors.last() != Some(&cursor) {
                cursors.push(cursor.clone());
            }
            if cursor.as_deref() == Some(&n.to_string()) && state.outbox.is_empty() {
                break;
            }
        }

        // At least once, in order, each event exactly as the reference has it.
        let mut seen = Vec::new();
        for event in &fire.fired {
            let event = timeless(event);
            let want = reference.iter().find(|r| r["id"] == event["id"]);
            assert_eq!(Some(&event), want, "seed {seed}: a fired event differs from the reference");
            if !seen.contains(&event["id"]) {
                seen.push(event["id"].clone());
            }
        }
        let want_ids: Vec<Value> = reference.iter().map(|e| e["id"].clone()).collect();
        assert_eq!(seen, want_ids, "seed {seed}: every event, in log order");

        // From any committed cursor, a replay yields exactly the reference's suffix.
        for cursor in &cursors {
            let from = cursor.as_deref().map_or(0, |c| c.parse::<usize>().unwrap());
            let read = read_after(&reader, cursor.as_deref(), usize::MAX, None, &unbounded()).unwrap();
            let replay: Vec<Value> = record_events(&reader, &config, &salt, &read.records, chrono::Utc::now())
                .iter()
                .map(timeless)
                .collect();
            assert_eq!(replay, reference[from..], "seed {seed}: replay from {cursor:?}");
        }
    }
}

#[test]
fn a_rejected_cursor_stops_the_feed_visibly_in_read_and_skips_nothing() {
    let reader = MemLog::with((0..3).map(|i| record(i, "d", ChangeKind::Updated)).collect());
    let blobs = MemBlobs::default();
    created(&reader, &blobs, &Since::After("1".to_string()));
    *reader.floor.lock().unwrap() = 2;
    let mut fire = Recorder::new(&blobs);
    let config = settings(json!({}));
    let fail = log_settings(json!({}));
    assert_eq!(fail.on_cursor_rejected, OnCursorRejected::Fail);
    for _ in 0..2 {
        let (ended, _) = poll_once(&reader, &blobs, &mut fire, &config, &fail, unbounded());
        let error = ended.err().expect("a rejected cursor fails the poll").message;
        assert!(error.contains("'1'") && error.contains("cursor 1 is gone"), "{error}");
        assert!(error.contains("onCursorRejected now"), "{error}");
    }
    assert!(fire.fired.is_empty());
    let state = stored(&blobs);
    let facts = state.log.clone().unwrap();
    assert_eq!(facts.cursor.as_deref(), Some("1"), "the cursor stays where it was");
    assert!(facts.cursor_rejected.is_some());

    // READ: stalled at once, with the reason, even before any poll record says so.
    let mut read = ReadStatus {
        log: Some(log_facts(&state, Some(&fail))),
        polls: Some(crate::stall::report(None, Ok(vec![ok_poll()]), 2_000)),
        ..ReadStatus::default()
    };
    cursor_stall(&mut read, &state);
    let read = read.to_value();
    assert_eq!(read["stalled"], true);
    assert_eq!(read["cursorRejected"], true);
    assert_eq!(read["cursor"], "1");
    assert!(read["stallReason"].as_str().unwrap().contains("cursor 1 is gone"), "{read:?}");
    assert_eq!(read["lastError"], read["stallReason"]);

    // The source accepts the cursor again: the feed goes on from there and READ clears.
    *reader.floor.lock().unwrap() = 0;
    let (ended, status) = poll_once(&reader, &blobs, &mut fire, &config, &fail, unbounded());
    assert!(ended.is_ok());
    // Records 1 and 2 (after cursor "1"): nothing was skipped while the feed was stopped.
    assert_eq!(status.fired, 2);
    let seqs: Vec<&Value> = fire.fired.iter().map(|e| &e["data"]["seq"]).collect();
    assert_eq!(seqs, [&json!(1), &json!(2)]);
    let state = stored(&blobs);
    assert_eq!(state.log.as_ref().unwrap().cursor_rejected, None);
    let mut read = ReadStatus::default();
    cursor_stall(&mut read, &state);
    assert!(read.polls.is_none() && read.log.is_none(), "{read:?}");
}

/// A poll that went well, as READ's activation records show it.
fn ok_poll() -> crate::stall::PollRecord {
    crate::stall::PollRecord { started_ms: 1_000, outcome: PollOutcome::Ok, error: None }
}

#[test]
fn on_cursor_rejected_now_rebaselines_from_the_current_cursor_and_read_says_so() {
    let reader = MemLog::with((0..4).map(|i| record(i, "d", ChangeKind::Updated)).collect());
    let blobs = MemBlobs::default();
    created(&reader, &blobs, &Since::After("1".to_string()));
    *reader.floor.lock().unwrap() = 2;
    let now = log_settings(json!({ "onCursorRejected": "now" }));
    let mut fire = Recorder::new(&blobs);
    let (ended, status) = poll_once(&reader, &blobs, &mut fire, &settings(json!({})), &now, unbounded());
    assert!(ended.is_ok(), "{:?}", ended.err());
    assert_eq!(status.outcome, PollOutcome::Rebaselined);
    assert!(status.error.as_deref().unwrap().contains("onCursorRejected=now"), "{:?}", status.error);
    assert!(fire.fired.is_empty(), "records between the rejected cursor and now are not reported");
    let state = stored(&blobs);
    let facts = state.log.clone().unwrap();
    assert_eq!(facts.cursor.as_deref(), Some("4"));
    let rebaselined = facts.rebaselined.clone().unwrap();
    assert_eq!(rebaselined.previous_cursor.as_deref(), Some("1"));
    let mut read = ReadStatus {
        log: Some(log_facts(&state, Some(&now))),
        rebaselined: Rebaselined::shown(facts.rebaselined.as_ref(), 0, "T"),
        ..ReadStatus::default()
    };
    cursor_stall(&mut read, &state);
    let read = read.to_value();
    assert_eq!(read["rebaselined"]["previousCursor"], "1");
    assert_eq!(read["rebaselined"]["cause"], "cursor");
    assert!(read["rebaselined"]["reason"].as_str().unwrap().contains("cursor 1 is gone"));
    assert!(read.get("stalled").is_none());

    // What comes after the new cursor fires as usual.
    reader.push(record(4, "new", ChangeKind::Created));
    let (_, status) = poll_once(&reader, &blobs, &mut fire, &settings(json!({})), &now, unbounded());
    assert_eq!((status.outcome, status.fired), (PollOutcome::Ok, 1));
    assert_eq!(fire.fired[0]["subject"], "new");
}

#[test]
fn a_lost_state_rebaselines_from_now_and_says_why() {
    let reader = MemLog::with(vec![record(0, "d", ChangeKind::Created)]);
    let blobs = MemBlobs::default();
    let mut fire = Recorder::new(&blobs);
    let (ended, status) =
        poll_once(&reader, &blobs, &mut fire, &settings(json!({})), &log_settings(json!({})), unbounded());
    assert!(ended.is_ok());
    assert_eq!(status.outcome, PollOutcome::Rebaselined);
    assert!(status.error.unwrap().contains("state object missing"));
    let facts = stored(&blobs).log.unwrap();
    assert_eq!(facts.cursor.as_deref(), Some("1"));
    assert!(facts.rebaselined.is_some());
}

#[test]
fn connection_mode_fires_records_as_they_arrive_within_one_activation() {
    let reader = Arc::new(MemLog::default());
    let blobs = MemBlobs::default();
    created(&reader, &blobs, &Since::Now);
    let writer = {
        let reader = reader.clone();
        std::thread::spawn(move || {
            for i in 0..3 {
                std::thread::sleep(Duration::from_millis(300));
                reader.push(record(i, &format!("doc{i}"), ChangeKind::Created));
            }
        })
    };
    let mut fire = Recorder::new(&blobs);
    let started = Instant::now();
    let budget = Budget::new(Some(SystemTime::now() + Duration::from_millis(2_000)), Duration::ZERO);
    let connection = log_settings(json!({ "mode": "connection" }));
    let (ended, status) = poll_once(&reader, &blobs, &mut fire, &settings(json!({})), &connection, budget);
    writer.join().unwrap();
    assert!(ended.is_ok(), "{:?}", ended.err());
    // It waited for the records rather than returning after the first read…
    assert_eq!(fire.fired.len(), 3, "{status:?}");
    assert_eq!(status.fired, 3);
    // …and held on until its deadline, not beyond.
    let ran = started.elapsed();
    assert!(ran >= Duration::from_millis(1_900) && ran < Duration::from_millis(3_500), "{ran:?}");
    assert_eq!(stored(&blobs).log.unwrap().cursor.as_deref(), Some("3"));
    // Each arrival was committed and acknowledged on its own.
    assert_eq!(*reader.acks.lock().unwrap(), ["1", "2", "3"]);
}

#[test]
fn log_parameters_are_checked_and_name_themselves() {
    assert_eq!(log_settings(json!({})).since, Since::Now);
    assert_eq!(log_settings(json!({ "since": "now" })).since, Since::Now);
    assert_eq!(log_settings(json!({ "since": 0 })).since, Since::Start);
    assert_eq!(log_settings(json!({ "since": 42 })).since, Since::After("42".to_string()));
    assert_eq!(log_settings(json!({ "since": "7-g1AAAA" })).since, Since::After("7-g1AAAA".to_string()));
    assert_eq!(log_settings(json!({ "mode": "connection" })).mode, Mode::Connection);
    for (params, name) in [
        (json!({ "mode": "stream" }), "mode"),
        (json!({ "onCursorRejected": "skip" }), "onCursorRejected"),
        (json!({ "since": "" }), "since"),
        (json!({ "since": true }), "since"),
    ] {
        let e = LogSettings::from_params(&Params::from_value(params).unwrap()).unwrap_err();
        assert!(e.to_string().contains(&format!("parameter '{name}'")), "{e}");
    }
}

/// A registered-style log source whose reader is a fixed in-memory log (for the dry run,
/// which opens its source from parameters).
struct FixedLog;

impl crate::source::LogSource for FixedLog {
    fn name(&self) -> &'static str {
        "fixed"
    }
    fn params(&self) -> &'static [crate::source::ParamSpec] {
        &[]
    }
    fn open(&self, _params: &Params) -> Result<Box<dyn LogReader>, ParamError> {
        let kinds = [ChangeKind::Created, ChangeKind::Updated, ChangeKind::Deleted];
        Ok(Box::new(MemLog::with((0..5).map(|i| record(i, &format!("doc{i}"), kinds[i % 3])).collect())))
    }
}

#[test]
fn a_dry_run_of_a_log_source_reads_after_since_and_writes_nothing() {
    let sources = [crate::source::AnySource::Log(&FixedLog)];
    let dry = |params: Value| {
        let mut p = json!({ "source": "fixed", "stateBucket": null });
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, params) {
            p.extend(extra);
        }
        super::super::dry_run(Params::from_value(p).unwrap(), &sources)
    };
    let all = dry(json!({})).unwrap();
    assert_eq!((all["read"].as_u64(), all["wouldFire"].as_u64()), (Some(5), Some(5)), "{all}");
    assert_eq!(all["cursor"], Value::Null);
    assert_eq!(all["cursorAfter"], "5");
    let after = dry(json!({ "since": "3", "events": ["deleted"] })).unwrap();
    assert_eq!((after["read"].as_u64(), after["wouldFire"].as_u64()), (Some(2), Some(0)), "{after}");
    let now = dry(json!({ "since": "now" })).unwrap();
    assert_eq!(now["read"], 0);
    let capped = dry(json!({ "maxChangesPerPoll": 2 })).unwrap();
    assert_eq!((capped["read"].as_u64(), capped["more"].as_bool()), (Some(2), Some(true)), "{capped}");
}
