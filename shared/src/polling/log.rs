//! The log data path: a log source's records after the stored cursor become events.
//!
//! A log poll takes the lease (the caller does), delivers what an earlier poll left in the
//! outbox, reads after the cursor (at most `maxChangesPerPoll` records, until the deadline),
//! filters, builds events whose ids come from each record's own identity, commits the new
//! cursor together with the events in the outbox (one conditional write), and only then fires,
//! commits what was delivered and acknowledges the cursor to the source. A crash anywhere
//! re-fires committed events with the same ids or reads the same records again, which give the
//! same ids: at least once, never lost. A cursor the source refuses stops the feed where it is,
//! visibly, unless the user allowed a re-baseline from "now" (`onCursorRejected=now`).
//!
//! In connection mode (`mode=connection`) one activation reads again and again, each read held
//! open by the source until records arrive or the activation's deadline minus the commit
//! margin, and commits and fires as records arrive: consecutive activations cover the log
//! almost continuously.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::opened::source_error;
use super::outbox::{fire_and_commit, paced_batch, Ended};
use super::status::{LogFacts, ReadStatus};
use super::PollSettings;
use crate::budget::{now_ms, Budget};
use crate::change::Record;
use crate::delivery::{deliver_paced, deliver_wrapped, DeliveryReport, TriggerPace};
use crate::events::{record_event, EventContext, Format};
use crate::openwhisk::{Client, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::ActionError;
use crate::source::{LogReader, Restart, SourceError, StoreError};
use crate::stall::PollHistory;
use crate::state::{LogState, Rebaseline, State};
use crate::store::{LoadError, PollOutcome, PollStatus, StateStore};

/// Records one read asks for at most; a poll reads again while pages come back full.
const READ_PAGE: usize = 1000;

/// A source that answers a waiting read at once with nothing is asked again after this long,
/// so a source that cannot wait does not make connection mode spin.
const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// How an activation reads the log (`mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each poll reads what is new and ends.
    Poll,
    /// Each poll waits for records until its deadline, firing as they arrive.
    Connection,
}

impl Mode {
    /// The parameter value naming this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Poll => "poll",
            Mode::Connection => "connection",
        }
    }
}

/// What a poll does when the source refuses the stored cursor (`onCursorRejected`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnCursorRejected {
    /// Stop and say so in READ; nothing is skipped.
    Fail,
    /// Start again from the source's current cursor; what happened in between is not
    /// reported, and READ says when and why.
    Now,
    /// Start again from the oldest record the source still holds (only the refused part of
    /// the cursor, where the source's cursor has parts); READ says when and why.
    Earliest,
}

impl OnCursorRejected {
    /// Where the source goes on, unless the feed fails.
    fn restart(self) -> Option<Restart> {
        match self {
            OnCursorRejected::Fail => None,
            OnCursorRejected::Now => Some(Restart::Now),
            OnCursorRejected::Earliest => Some(Restart::Earliest),
        }
    }
}

/// Where a new feed starts reading (`since`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Since {
    /// From the start of the log (`since=0`).
    Start,
    /// From what is current at CREATE (`since=now`, the default).
    Now,
    /// After this cursor, verbatim.
    After(String),
}

/// The core's parameters for a log source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// `mode`: `poll` (default) or `connection`.
    pub mode: Mode,
    /// `onCursorRejected`: `fail` (default) or `now`.
    pub on_cursor_rejected: OnCursorRejected,
    /// `since`: `now` (default), `0`, or a cursor of the source.
    pub since: Since,
}

impl LogSettings {
    /// Reads and checks `mode`, `onCursorRejected` and `since`.
    pub fn from_params(params: &Params) -> Result<LogSettings, ParamError> {
        let mode = match params.str("mode")?.as_deref().map(str::trim) {
            None | Some("poll") => Mode::Poll,
            Some("connection") => Mode::Connection,
            Some(other) => return Err(ParamError::invalid("mode", "poll or connection", &other.into())),
        };
        let on_cursor_rejected = match params.str("onCursorRejected")?.as_deref().map(str::trim) {
            None | Some("fail") => OnCursorRejected::Fail,
            Some("now") => OnCursorRejected::Now,
            Some("earliest") => OnCursorRejected::Earliest,
            Some(other) => return Err(ParamError::invalid("onCursorRejected", "fail, now or earliest", &other.into())),
        };
        // `-p since 0` arrives as a number, a CouchDB 2+ sequence as a string.
        let since = match params.raw("since") {
            None | Some(Value::Null) => Since::Now,
            Some(Value::Number(n)) if n.to_string() == "0" => Since::Start,
            Some(Value::Number(n)) => Since::After(n.to_string()),
            Some(Value::String(s)) if s.trim() == "now" => Since::Now,
            Some(Value::String(s)) if s.trim() == "0" => Since::Start,
            Some(Value::String(s)) if !s.trim().is_empty() => Since::After(s.clone()),
            Some(other) => {
                return Err(ParamError::invalid("since", "now, 0, or a cursor (sequence) of the source", other))
            }
        };
        Ok(LogSettings { mode, on_cursor_rejected, since })
    }
}

/// The cursor a feed starting `since` reads after (`None`: from the start of the log).
pub(super) fn baseline_cursor(reader: &dyn LogReader, since: &Since) -> Result<Option<String>, SourceError> {
    match since {
        Since::Start => Ok(None),
        Since::Now => reader.current().map(Some),
        Since::After(cursor) => Ok(Some(cursor.clone())),
    }
}

/// A new log feed's state: the cursor `since` names, an empty outbox.
pub(super) fn log_baseline(reader: &dyn LogReader, since: &Since) -> Result<State, SourceError> {
    let mut state = State::new(reader.source_uri());
    state.baselined = true;
    state.log = Some(LogState { cursor: baseline_cursor(reader, since)?, ..LogState::default() });
    Ok(state)
}

/// The events for `records` that pass the filter, in the configured format. Ids depend only
/// on `id_salt` (the trigger), the source and each record's id.
pub(super) fn record_events(
    reader: &dyn LogReader,
    settings: &PollSettings,
    id_salt: &str,
    records: &[Record],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    let ectx = EventContext {
        source: reader.source_uri(),
        type_prefix: reader.event_type_prefix().to_string(),
        data_context: reader.data_context(),
        id_salt: id_salt.to_string(),
    };
    let mut events = Vec::new();
    let batched_legacy = settings.format == Format::Legacy && reader.legacy_batch_key().is_some();
    for record in records.iter().filter(|r| settings.filter.matches_key(r.kind, &r.key)) {
        if batched_legacy {
            // The batch's shape is the legacy contract: the records as the source built them.
            events.push(reader.legacy_event(record).unwrap_or(Value::Null));
            continue;
        }
        let ce = record_event(&ectx, record, &reader.event_type(record), now);
        events.push(settings.format.payload(ce, || reader.legacy_event(record)));
    }
    events
}

/// What reading after a cursor gave.
pub(super) struct Read {
    /// The records, in log order.
    pub(super) records: Vec<Record>,
    /// The cursor after the last of them.
    pub(super) cursor: String,
    /// True when the cap or the deadline ended the reading before the log did.
    pub(super) cut: bool,
}

/// Reads after `after` page by page until a page comes back short (the log is read up to
/// now), `cap` records were read, or the budget ends. Only the first read waits.
pub(super) fn read_after(
    reader: &dyn LogReader,
    after: Option<&str>,
    cap: usize,
    wait_until: Option<Instant>,
    budget: &Budget,
) -> Result<Read, SourceError> {
    let cap = cap.max(1);
    let mut records = Vec::new();
    let mut cursor = after.map(str::to_string);
    let mut wait = wait_until;
    loop {
        let limit = READ_PAGE.min(cap.saturating_sub(records.len())).max(1);
        let batch = reader.read(cursor.as_deref(), limit, wait)?;
        let n = batch.records.len();
        records.extend(batch.records);
        if n < limit {
            return Ok(Read { records, cursor: batch.cursor, cut: false });
        }
        if records.len() >= cap || budget.expired() {
            return Ok(Read { records, cursor: batch.cursor, cut: true });
        }
        cursor = Some(batch.cursor);
        wait = None;
    }
}

/// Fires events from the front of an outbox: the user's trigger for a poll.
pub(super) trait Fire {
    /// Fires `outbox` in order within `budget`; says how many were delivered and why it stopped.
    fn fire(&mut self, outbox: &[Value], budget: &Budget) -> DeliveryReport;
}

/// Fires at the user's trigger, at most `maxFiresPerMinute` fires per calendar minute (and,
/// under the scheduler, within the namespace's pace).
pub(super) struct TriggerFire<'a> {
    pub(super) client: &'a Client,
    pub(super) trigger: &'a QualifiedName,
    pub(super) batch: usize,
    pub(super) pace: TriggerPace<'a>,
    /// Fire legacy events under this key, batched by size (`LogReader::legacy_batch_key`).
    pub(super) wrap: Option<&'static str>,
}

impl Fire for TriggerFire<'_> {
    fn fire(&mut self, outbox: &[Value], budget: &Budget) -> DeliveryReport {
        if let Some(key) = self.wrap {
            return deliver_wrapped(self.client, self.trigger, outbox, key, budget, &mut self.pace);
        }
        let batch = paced_batch(self.batch, outbox.len(), &self.pace, budget);
        deliver_paced(self.client, self.trigger, outbox, batch, budget, &mut self.pace)
    }
}

/// One log poll's collaborators.
pub(super) struct LogPoller<'a> {
    pub(super) reader: &'a dyn LogReader,
    pub(super) store: &'a StateStore,
    pub(super) settings: &'a PollSettings,
    pub(super) log: &'a LogSettings,
    /// Mixed into event ids: the trigger.
    pub(super) salt: String,
    pub(super) fire: &'a mut dyn Fire,
    /// Time kept after reading (poll mode) for committing and firing.
    pub(super) list_margin: Duration,
    /// When reading must stop at the latest in poll mode (in a scheduler tick).
    pub(super) list_cap: Option<std::time::SystemTime>,
}

impl LogPoller<'_> {
    /// One poll (or, in connection mode, one activation's worth of polls).
    pub(super) fn run(&mut self, budget: &Budget, status: &mut PollStatus) -> Result<Ended, ActionError> {
        let Some((mut state, mut etag)) = self.load(status)? else { return Ok(Ended::Normally) };
        // Events an earlier poll committed but did not fire go first, in order.
        if let Some(ended) = self.deliver(&mut state, &mut etag, budget, status)? {
            return Ok(ended);
        }
        if !self.rescope(&mut state, &mut etag, status)? {
            return Ok(Ended::Normally);
        }
        let mut reads = Reads::new(self.log, budget, self.list_margin, self.list_cap);
        while !reads.budget.expired() {
            let started = Instant::now();
            let read = match self.read(&mut state, &mut etag, &mut reads, status)? {
                Reading::Read(read) => read,
                Reading::Restarted => continue,
                Reading::Conflict => return Ok(Ended::Normally),
            };
            let Some(moved) = self.take(&mut state, &mut etag, &read, status)? else { return Ok(Ended::Normally) };
            let ended = self.deliver(&mut state, &mut etag, budget, status)?;
            if moved {
                // The records are safe in the committed outbox, fired or not.
                if let Err(e) = self.reader.acknowledge(&read.cursor) {
                    crate::runtime::log(&format!("poll: the source did not take the acknowledgement: {e}"));
                }
            }
            if let Some(ended) = ended {
                return Ok(ended);
            }
            if read.cut && status.outcome == PollOutcome::Ok {
                status.outcome = PollOutcome::Partial;
            }
            if !reads.connection {
                break;
            }
            reads.pause_if_idle(read.records.is_empty(), started);
        }
        Ok(Ended::Normally)
    }

    /// The stored state and its etag; a missing, rejected or foreign one is replaced
    /// (`recover`), and `None` says the poll ends there.
    fn load(&self, status: &mut PollStatus) -> Result<Option<(State, String)>, ActionError> {
        match self.store.load() {
            Ok(Some((state, etag))) if state.log.is_some() => Ok(Some((state, etag))),
            Ok(Some((_, etag))) => {
                self.recover("the state holds no log cursor", "rejected", Some(&etag), status)?;
                Ok(None)
            }
            Ok(None) => self.recover("state object missing", "missing", None, status),
            Err(LoadError::Corrupt(e)) => {
                self.recover(&format!("state object rejected ({e})"), "rejected", None, status)
            }
            Err(LoadError::Store(e)) => Err(ActionError::new(format!("reading the feed state: {e}"))),
        }
    }

    /// UPDATE pointed the feed at another log: the old cursor means nothing there, the feed
    /// goes on from that log's current cursor. False when another poll committed first.
    fn rescope(&self, state: &mut State, etag: &mut String, status: &mut PollStatus) -> Result<bool, ActionError> {
        let scope = self.reader.source_uri();
        if state.scope == scope {
            return Ok(true);
        }
        let why = format!("the source changed from {} to {scope}", state.scope);
        self.rebaseline(state, why, "scope", status)?;
        state.scope = scope;
        let Some(new) = self.commit(state, etag, status)? else { return Ok(false) };
        *etag = new;
        Ok(true)
    }

    /// Reads after the stored cursor. A cursor the source refuses is moved where
    /// `onCursorRejected` says (once: the source's own cursor refused too stops the poll), or
    /// stops the feed where it is, visibly.
    fn read(
        &self,
        state: &mut State,
        etag: &mut String,
        reads: &mut Reads,
        status: &mut PollStatus,
    ) -> Result<Reading, ActionError> {
        let after = state.log.as_ref().and_then(|l| l.cursor.clone());
        let after = after.as_deref();
        let why = match read_after(self.reader, after, self.settings.max_changes, reads.wait_until(), &reads.budget) {
            Ok(read) => return Ok(Reading::Read(read)),
            Err(SourceError::CursorRejected(why)) => why,
            Err(e) => return Err(source_error(e)),
        };
        match self.log.on_cursor_rejected.restart() {
            Some(to) if !reads.restarted => {
                reads.restarted = true;
                self.restart(state, after, to, restart_reason(to, after, &why), status)?;
                let Some(new) = self.commit(state, etag, status)? else { return Ok(Reading::Conflict) };
                *etag = new;
                Ok(Reading::Restarted)
            }
            // The cursor `current()` just gave is refused too: nothing sensible to skip to.
            Some(_) => Err(ActionError::new(format!(
                "the source rejects even its current cursor ({why}); the feed cannot read"
            ))),
            None => Err(self.stop_at(state, etag, after, &why)),
        }
    }

    /// Stops the feed at the refused cursor `after`: the state says so (READ shows it), and so
    /// does the returned error.
    fn stop_at(&self, state: &mut State, etag: &str, after: Option<&str>, why: &str) -> ActionError {
        let message = format!(
            "the source rejects the stored cursor {} ({why}): no record is read or skipped until this is resolved; \
             to start again from now (changes since that cursor are not reported) update the trigger with -p \
             onCursorRejected now, or with -p onCursorRejected earliest to go on from the oldest record the source \
             still holds",
            describe_cursor(after)
        );
        let log = state.log.get_or_insert_with(LogState::default);
        if log.cursor_rejected.as_deref() != Some(message.as_str()) {
            log.cursor_rejected = Some(message.clone());
            // Best effort: READ shows it from the state; the poll's error says it anyway.
            if let Err(e) = self.store.commit(state, etag) {
                crate::runtime::log(&format!("poll: could not record the rejected cursor: {e}"));
            }
        }
        ActionError::new(message)
    }

    /// Takes a read into the state: the new cursor and the events, committed in one conditional
    /// write before anything fires. Says whether the cursor moved; `None` when another poll
    /// committed first.
    fn take(
        &self,
        state: &mut State,
        etag: &mut String,
        read: &Read,
        status: &mut PollStatus,
    ) -> Result<Option<bool>, ActionError> {
        let n = read.records.len();
        status.listed += n as u64;
        let events = record_events(self.reader, self.settings, &self.salt, &read.records, chrono::Utc::now());
        status.changes += events.len() as u64;
        let log = state.log.get_or_insert_with(LogState::default);
        let moved = n > 0 || log.cursor.as_deref() != Some(read.cursor.as_str());
        if !moved && log.cursor_rejected.is_none() {
            return Ok(Some(false));
        }
        log.cursor = Some(read.cursor.clone());
        log.records_read += n as u64;
        log.cursor_rejected = None;
        state.outbox.extend(events);
        state.seq += 1;
        if n > 0 {
            state.stats.last_change_ms = Some(now_ms());
        }
        let Some(new) = self.commit(state, etag, status)? else { return Ok(None) };
        *etag = new;
        Ok(Some(moved))
    }

    /// Replaces a missing, rejected or foreign state so the feed goes on: with the last
    /// authenticated state this poller's process holds (`StateStore::last_good`), whose
    /// outbox and cursor the poll then goes on with (`Some`: no record is lost), else with one
    /// starting at the source's current cursor (`None`: the poll ends). The state records when
    /// and why; READ shows it until the user acknowledges it.
    fn recover(
        &self,
        why: &str,
        cause: &str,
        etag: Option<&str>,
        status: &mut PollStatus,
    ) -> Result<Option<(State, String)>, ActionError> {
        let good = self.store.last_good().filter(|s| s.log.is_some());
        let recovered = good.is_some();
        let (mut state, what) = match good {
            Some(state) => (
                state,
                "replaced by the last authenticated state this poller held; the records after its cursor are read \
                 now, so none is lost",
            ),
            None => (
                log_baseline(self.reader, &Since::Now).map_err(source_error)?,
                "re-baselined from now, changes since the last good poll were not reported",
            ),
        };
        let reason = format!("{why}: {what}");
        if let Some(log) = state.log.as_mut() {
            let cause = cause.to_string();
            log.rebaselined =
                Some(Rebaseline { at_ms: now_ms(), reason: reason.clone(), previous_cursor: None, cause });
        }
        let written = match etag {
            Some(etag) => self.store.commit(&state, etag),
            None => self.store.overwrite(&state),
        };
        let etag = match written {
            Ok(etag) => etag,
            Err(StoreError::Conflict) => {
                status.outcome = PollOutcome::Conflict;
                return Ok(None);
            }
            Err(e) => return Err(ActionError::new(format!("writing the feed state: {e}"))),
        };
        status.outcome = PollOutcome::Rebaselined;
        status.error = Some(reason);
        Ok(recovered.then_some((state, etag)))
    }

    /// Moves the cursor to the source's current one and records why (not yet committed).
    fn rebaseline(
        &self,
        state: &mut State,
        reason: String,
        cause: &str,
        status: &mut PollStatus,
    ) -> Result<(), ActionError> {
        let now = self.reader.current().map_err(source_error)?;
        self.moved_to(state, Some(now), reason, cause, status);
        Ok(())
    }

    /// Moves a refused cursor where the source says `to` leads, and records why (not yet
    /// committed).
    fn restart(
        &self,
        state: &mut State,
        rejected: Option<&str>,
        to: Restart,
        reason: String,
        status: &mut PollStatus,
    ) -> Result<(), ActionError> {
        let cursor = self.reader.restart(rejected, to).map_err(source_error)?;
        self.moved_to(state, cursor, reason, "cursor", status);
        Ok(())
    }

    fn moved_to(
        &self,
        state: &mut State,
        cursor: Option<String>,
        reason: String,
        cause: &str,
        status: &mut PollStatus,
    ) {
        let log = state.log.get_or_insert_with(LogState::default);
        let previous_cursor = log.cursor.take();
        let cause = cause.to_string();
        log.rebaselined = Some(Rebaseline { at_ms: now_ms(), reason: reason.clone(), previous_cursor, cause });
        log.cursor = cursor;
        log.cursor_rejected = None;
        state.seq += 1;
        status.outcome = PollOutcome::Rebaselined;
        status.error = Some(reason);
    }

    /// Commits `state` over `etag`; `None` when another poll committed first (this one must
    /// then fire nothing: those records are the other poll's).
    fn commit(&self, state: &State, etag: &str, status: &mut PollStatus) -> Result<Option<String>, ActionError> {
        match self.store.commit(state, etag) {
            Ok(etag) => Ok(Some(etag)),
            Err(StoreError::Conflict) => {
                status.outcome = PollOutcome::Conflict;
                Ok(None)
            }
            Err(e) => Err(ActionError::new(format!("committing the feed state: {e}"))),
        }
    }

    /// Fires the outbox and commits what was delivered; `Some` when the poll must end.
    fn deliver(
        &mut self,
        state: &mut State,
        etag: &mut String,
        budget: &Budget,
        status: &mut PollStatus,
    ) -> Result<Option<Ended>, ActionError> {
        let (fire, store) = (&mut self.fire, self.store);
        fire_and_commit(
            state,
            etag,
            status,
            |outbox| fire.fire(outbox, budget),
            |state, etag| store.commit(state, etag),
        )
    }
}

/// A cursor for messages: quoted, or "the start of the log".
fn describe_cursor(cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("'{c}'"),
        None => "(the start of the log)".to_string(),
    }
}

/// How one activation reads the log: once, within the poll's listing time (poll mode), or
/// again and again until its deadline (connection mode).
struct Reads {
    /// Connection mode needs a deadline to wait for; without one (the CLI) it reads once.
    connection: bool,
    /// Until when reading may go on.
    budget: Budget,
    /// True once a refused cursor was moved.
    restarted: bool,
}

impl Reads {
    fn new(log: &LogSettings, budget: &Budget, list_margin: Duration, list_cap: Option<SystemTime>) -> Reads {
        let connection = log.mode == Mode::Connection && budget.remaining().is_some();
        let budget = if connection { *budget } else { budget.with_margin(list_margin).capped(list_cap) };
        Reads { connection, budget, restarted: false }
    }

    /// Until when a read may wait for records: the deadline, in connection mode.
    fn wait_until(&self) -> Option<Instant> {
        if self.connection {
            self.budget.remaining().map(|r| Instant::now() + r)
        } else {
            None
        }
    }

    /// After a waiting read that the source answered at once with nothing, a pause: connection
    /// mode must not spin.
    fn pause_if_idle(&self, empty: bool, started: Instant) {
        if empty && !self.budget.expired() && started.elapsed() < IDLE_PAUSE {
            std::thread::sleep(IDLE_PAUSE.min(self.budget.remaining().unwrap_or(IDLE_PAUSE)));
        }
    }
}

/// What a read after the stored cursor came to.
enum Reading {
    /// Records (maybe none) and the cursor after them.
    Read(Read),
    /// The refused cursor was moved and committed: read again.
    Restarted,
    /// Another poll committed first: this one ends.
    Conflict,
}

/// Why the refused cursor `after` moved `to` where the source said.
fn restart_reason(to: Restart, after: Option<&str>, why: &str) -> String {
    match to {
        Restart::Now => format!(
            "the source rejected the cursor {} ({why}): re-baselined from now as onCursorRejected=now allows; \
             changes after that cursor and before now are not reported",
            describe_cursor(after)
        ),
        Restart::Earliest => format!(
            "the source rejected the cursor {} ({why}): re-baselined from the earliest record the source still holds \
             as onCursorRejected=earliest allows; records the source no longer holds are not reported",
            describe_cursor(after)
        ),
    }
}

/// READ's facts about a log feed's state: `mode`, `cursor`, `recordsRead` (its `rebaselined`
/// is shown by the feed, as for any source, until an UPDATE acknowledges it).
pub(super) fn log_facts(state: &State, log: Option<&LogSettings>) -> LogFacts {
    let facts = state.log.clone().unwrap_or_default();
    LogFacts {
        mode: log.map(|l| l.mode.as_str()),
        cursor: facts.cursor,
        records_read: facts.records_read,
        ..LogFacts::default()
    }
}

/// READ's `lag`: how far the stored cursor is behind the log, as the source tells it
/// (`LogReader::lag`); `lagError` when the source cannot be asked now.
pub(super) fn log_lag(s: &mut ReadStatus, reader: &dyn LogReader, state: &State) {
    let cursor = state.log.as_ref().and_then(|l| l.cursor.as_deref());
    let facts = s.log.get_or_insert_with(LogFacts::default);
    match reader.lag(cursor) {
        Ok(lag) => facts.lag = lag,
        Err(e) => facts.lag_error = Some(e.to_string()),
    }
}

/// A rejected cursor is a stall from the first poll that met it, not after a few: READ says
/// so (`stalled`, `stallReason`, `cursorRejected`, and `lastError` when the newest poll record has none).
pub(super) fn cursor_stall(s: &mut ReadStatus, state: &State) {
    let Some(why) = state.log.as_ref().and_then(|l| l.cursor_rejected.clone()) else { return };
    s.log.get_or_insert_with(LogFacts::default).cursor_rejected = Some(true);
    let polls = s.polls.get_or_insert_with(PollHistory::default);
    polls.stalled = true;
    polls.stall_reason = Some(why.clone());
    if let Some(last) = &mut polls.last {
        last.last_error.get_or_insert(why);
    }
}

#[cfg(test)]
mod tests;
