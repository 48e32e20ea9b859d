//! Delivery: fire the outbox's events at the user's trigger, in order, at least once.
//!
//! The outbox is committed to state before anything is fired, and only what this returns as
//! delivered is removed afterwards, so a crash anywhere means a re-fire with the same event
//! ids, never a loss. Throttling (429) and platform errors back off within the activation's
//! budget; what is left stays in the outbox for the next poll.
//!
//! Every fire first asks a [`Pace`]: a trigger's own `maxFiresPerMinute` ([`FirePace`]) and,
//! when the namespace scheduler polls it, the namespace's share of the quotas that every
//! trigger it polls draws from ([`NamespacePace`], joined with the trigger's own by
//! [`TriggerPace`]).

use std::cell::Cell;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::budget::{now_ms, Budget};
use crate::events::batch_payload;
use crate::openwhisk::{Client, OwError, QualifiedName};

/// How a delivery run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum DeliveryOutcome {
    /// Everything was fired.
    Done,
    /// Time ran out (while throttled, or before the end); the rest stays queued.
    OutOfTime,
    /// The trigger is gone (404): the feed should remove itself.
    TriggerGone,
    /// A failure retrying will not fix this time (unauthorized, payload rejected).
    Failed(String),
}

/// What a delivery run did.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryReport {
    /// How many events from the front of the outbox were fired.
    pub delivered: usize,
    /// How many fire requests were sent (including retries).
    pub requests: usize,
    /// Why it stopped.
    pub outcome: DeliveryOutcome,
}

/// Most bytes of JSON one fire carries. OpenWhisk refuses a larger activation payload
/// (`whisk.activation.payload.max`, 1 MiB by default, apache/openwhisk
/// common/scala/src/main/resources/application.conf); Apache's Kafka feed stops its batches
/// at 900000 bytes for the same reason (openwhisk-package-kafka provider/consumer.py:41).
pub const MAX_FIRE_BYTES: usize = 900_000;

/// Longest wait between two attempts when the server gives no hint.
const MAX_BACKOFF: Duration = Duration::from_secs(16);

/// Fires allowed per calendar minute, counted the way OpenWhisk's fire throttle counts them:
/// per subject in fixed minutes (`System.currentTimeMillis / 60000`, apache/openwhisk
/// core/controller/.../entitlement/RateThrottler.scala:85).
#[derive(Clone, Debug)]
pub struct FirePace {
    per_minute: u32,
    minute: u64,
    fired: u32,
}

impl FirePace {
    /// At most `per_minute` fires in any calendar minute.
    pub fn new(per_minute: u32) -> FirePace {
        FirePace { per_minute: per_minute.max(1), minute: 0, fired: 0 }
    }

    /// How long to wait at `now_ms` before the next fire (zero: fire now).
    pub fn wait(&self, now_ms: u64) -> Duration {
        let minute = now_ms / 60_000;
        if minute != self.minute || self.fired < self.per_minute {
            Duration::ZERO
        } else {
            Duration::from_millis((minute + 1) * 60_000 - now_ms)
        }
    }

    /// Counts a fire sent at `now_ms`.
    pub fn record(&mut self, now_ms: u64) {
        let minute = now_ms / 60_000;
        if minute != self.minute {
            self.minute = minute;
            self.fired = 0;
        }
        self.fired += 1;
    }

    /// Fires this pace allows in `time` (at least one minute's worth).
    pub fn capacity(&self, time: Option<Duration>) -> usize {
        let minutes = time.map(|t| t.as_secs().div_ceil(60).max(1)).unwrap_or(1);
        self.per_minute as usize * minutes as usize
    }
}

/// Decides when the next fire may be sent.
pub trait Pace {
    /// Waits until one more fire may be sent and counts it; false (nothing counted) when none
    /// may be sent before `budget` ends.
    fn admit(&mut self, budget: &Budget) -> bool;
    /// Fires this pace expects to allow in `time` (at least one): how far a backlog can be
    /// carried one event per fire.
    fn capacity(&self, time: Option<Duration>) -> usize;
}

impl Pace for FirePace {
    fn admit(&mut self, budget: &Budget) -> bool {
        let hold = self.wait(now_ms());
        if !hold.is_zero() {
            if !budget.allows(hold) {
                return false;
            }
            thread::sleep(hold);
        }
        self.record(now_ms());
        true
    }

    fn capacity(&self, time: Option<Duration>) -> usize {
        FirePace::capacity(self, time)
    }
}

/// How much of the namespace's quotas the feeds of one scheduler activation may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceLimits {
    /// Trigger fires per calendar minute, for every trigger together.
    pub fires_per_minute: u32,
    /// Invocations per calendar minute: the scheduler's own activations and the rule
    /// invocations the fires cause.
    pub invocations_per_minute: u32,
    /// Most fires sent back to back; after that, one every `60 s / fires_per_minute`.
    pub burst: u32,
}

/// What a namespace pace has counted in one calendar minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    /// The calendar minute (`epoch ms / 60000`).
    pub minute: u64,
    /// Fires sent in it.
    pub fires: u32,
    /// Invocations counted in it (fires' rules and the scheduler's activations).
    pub invocations: u32,
}

/// The namespace's fire budget, shared by every trigger one scheduler activation polls (its
/// threads). A fire is granted when the calendar minute still has room for it and for the
/// rule invocations it causes, and a token of the burst is left (tokens come back at
/// `fires_per_minute` a minute, so fires are spread over the minute rather than sent at once:
/// the rule invocations they cause then overlap less, which is what the namespace's
/// concurrency limit counts). An activation whose window ends before the minute does (a tick
/// ends at 57 s) spreads the minute's fires left over the window's time left instead, at most
/// twice as fast ([`NamespacePace::with_window`]). Requests are granted in the order they were made: a trigger
/// that has fired asks again at the back of the line, so busy triggers are served in turn.
///
/// It also hands out work slots ([`NamespacePace::work_slot`]): how many polls may list, read and
/// commit at once. A poll that has to wait for its turn to fire lends its slot to another poll
/// for good (what is left to it is firing and a small commit), so waiting to fire never holds
/// up the polls of triggers that have nothing to fire.
#[derive(Debug)]
pub struct NamespacePace {
    limits: NamespaceLimits,
    state: Mutex<NsState>,
    changed: Condvar,
    slots: Mutex<usize>,
    slot_freed: Condvar,
}

thread_local! {
    /// True while this thread holds one of a namespace pace's work slots.
    static HOLDS_SLOT: Cell<bool> = const { Cell::new(false) };
}

/// A work slot of a [`NamespacePace`], given back on drop unless its poll lent it meanwhile.
pub struct WorkSlot<'a> {
    pace: &'a NamespacePace,
}

impl Drop for WorkSlot<'_> {
    fn drop(&mut self) {
        self.pace.lend_slot();
    }
}

#[derive(Debug)]
struct NsState {
    spent: Spent,
    tokens: f64,
    refilled_ms: u64,
    queue: VecDeque<u64>,
    next_ticket: u64,
    next_id: u64,
    /// Triggers that asked to fire in the current minute (for their fair share).
    firers: BTreeSet<u64>,
    /// When the activation stops firing (epoch ms), if it does before the minute ends.
    window_end: Option<u64>,
}

impl NsState {
    /// Takes a fire costing `cost` invocations at `now_ms`, or says how long to wait (ms).
    fn take(&mut self, limits: &NamespaceLimits, cost: u32, now_ms: u64) -> Result<(), u64> {
        let minute = now_ms / 60_000;
        if minute != self.spent.minute {
            self.spent = Spent { minute, fires: 0, invocations: 0 };
            self.firers.clear();
        }
        let rate = self.rate(limits, now_ms);
        let elapsed = now_ms.saturating_sub(self.refilled_ms) as f64;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(limits.burst.max(1)));
        self.refilled_ms = now_ms;
        let cost = cost.min(limits.invocations_per_minute);
        if self.spent.fires >= limits.fires_per_minute
            || self.spent.invocations.saturating_add(cost) > limits.invocations_per_minute
        {
            return Err((minute + 1) * 60_000 - now_ms);
        }
        if self.tokens < 1.0 {
            return Err((((1.0 - self.tokens) / rate).ceil() as u64).max(1));
        }
        self.tokens -= 1.0;
        self.spent.fires += 1;
        self.spent.invocations += cost;
        Ok(())
    }

    /// Fires a millisecond: the minute's pace, or the pace that fits the minute's fires left
    /// into the window's time left in the minute, the last one before the window ends (at most
    /// twice the minute's pace, so rule invocations do not bunch up), whichever is faster.
    /// Without it a tick ending at 57 s would leave a few of the minute's fires unsent while
    /// busy triggers wait.
    fn rate(&self, limits: &NamespaceLimits, now_ms: u64) -> f64 {
        let nominal = f64::from(limits.fires_per_minute.max(1)) / 60_000.0;
        let Some(end) = self.window_end else { return nominal };
        let end = end.min((now_ms / 60_000 + 1) * 60_000);
        let left_ms = end.saturating_sub(now_ms).max(1) as f64;
        let left_fires = f64::from(limits.fires_per_minute.saturating_sub(self.spent.fires));
        // Not `clamp`: its panic message would link float formatting (14 kB) into the actions.
        ((left_fires + 1.0) / left_ms).max(nominal).min(2.0 * nominal)
    }
}

impl NamespacePace {
    /// A pace with `limits`, counting what was already spent (by an earlier activation in the
    /// same calendar minute, and this activation's own invocations).
    pub fn new(limits: NamespaceLimits, spent: Spent) -> NamespacePace {
        let state = NsState {
            spent,
            tokens: f64::from(limits.burst.max(1)),
            refilled_ms: now_ms(),
            queue: VecDeque::new(),
            next_ticket: 0,
            next_id: 0,
            firers: BTreeSet::new(),
            window_end: None,
        };
        NamespacePace {
            limits,
            state: Mutex::new(state),
            changed: Condvar::new(),
            slots: Mutex::new(usize::MAX),
            slot_freed: Condvar::new(),
        }
    }

    /// The same pace with `n` work slots (unlimited without).
    pub fn with_work_slots(self, n: usize) -> NamespacePace {
        *self.slots.lock().unwrap_or_else(|e| e.into_inner()) = n.max(1);
        self
    }

    /// The same pace for an activation that stops firing at `end`.
    pub fn with_window(self, end: SystemTime) -> NamespacePace {
        let ms = end.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.lock().window_end = Some(ms);
        self
    }

    /// Waits for a work slot for this thread's poll.
    pub fn work_slot(&self) -> WorkSlot<'_> {
        let mut free = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.slot_freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        HOLDS_SLOT.with(|h| h.set(true));
        WorkSlot { pace: self }
    }

    /// Gives this thread's slot back, if it holds one.
    fn lend_slot(&self) {
        if HOLDS_SLOT.with(|h| h.replace(false)) {
            *self.slots.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            self.slot_freed.notify_one();
        }
    }

    /// The limits it keeps.
    pub fn limits(&self) -> NamespaceLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new requester's id.
    fn enlist(&self) -> u64 {
        let mut st = self.lock();
        st.next_id += 1;
        st.next_id
    }

    /// Waits for a fire costing `cost` invocations, in turn, until `until` at the latest;
    /// false (nothing counted) when it was not granted by then.
    fn admit(&self, who: u64, cost: u32, until: Option<SystemTime>) -> bool {
        let mut st = self.lock();
        st.firers.insert(who);
        st.next_ticket += 1;
        let ticket = st.next_ticket;
        st.queue.push_back(ticket);
        loop {
            let first = st.queue.front() == Some(&ticket);
            // Those behind the first wait to be woken; the first waits for its token.
            let wait = if first {
                match st.take(&self.limits, cost, now_ms()) {
                    Ok(()) => {
                        st.queue.pop_front();
                        self.changed.notify_all();
                        return true;
                    }
                    Err(ms) => Duration::from_millis(ms),
                }
            } else {
                Duration::from_secs(1)
            };
            // Waiting: another poll may work meanwhile.
            self.lend_slot();
            let left = until.map(|u| u.duration_since(SystemTime::now()).unwrap_or_default());
            if left.is_some_and(|l| l.is_zero() || (first && l < wait)) {
                st.queue.retain(|t| *t != ticket);
                self.changed.notify_all();
                return false;
            }
            let sleep = left.map_or(wait, |l| l.min(wait));
            st = match self.changed.wait_timeout(st, sleep) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// A trigger's fair share of the fires in `time`: the minute's fires divided among the
    /// triggers that asked to fire in it (at least one).
    pub fn share(&self, who: u64, time: Option<Duration>) -> usize {
        let mut st = self.lock();
        st.firers.insert(who);
        let minutes = time.map(|t| t.as_secs().div_ceil(60).max(1)).unwrap_or(1) as usize;
        let per_minute = self.limits.fires_per_minute as usize / st.firers.len().max(1);
        (per_minute * minutes).max(1)
    }

    /// What was counted in the current calendar minute.
    pub fn spent(&self) -> Spent {
        let st = self.lock();
        if st.spent.minute == now_ms() / 60_000 {
            st.spent
        } else {
            Spent { minute: now_ms() / 60_000, ..Spent::default() }
        }
    }
}

/// A trigger's pace: its own `maxFiresPerMinute`, and when the scheduler polls it, its turn in
/// the namespace's pace, each fire costing as many invocations as the trigger has active
/// rules (asked once, when it first fires).
pub struct TriggerPace<'a> {
    own: FirePace,
    namespace: Option<(&'a NamespacePace, u64)>,
    cost: Option<u32>,
    rules: Box<dyn FnMut() -> u32 + 'a>,
}

impl<'a> TriggerPace<'a> {
    /// The trigger's own pace only (a poll of one trigger).
    pub fn own(per_minute: u32) -> TriggerPace<'a> {
        TriggerPace { own: FirePace::new(per_minute), namespace: None, cost: Some(1), rules: Box::new(|| 1) }
    }

    /// The trigger's own pace within `namespace`'s; `rules` counts its active rules.
    pub fn within(per_minute: u32, namespace: &'a NamespacePace, rules: impl FnMut() -> u32 + 'a) -> TriggerPace<'a> {
        let who = namespace.enlist();
        TriggerPace {
            own: FirePace::new(per_minute),
            namespace: Some((namespace, who)),
            cost: None,
            rules: Box::new(rules),
        }
    }
}

impl Pace for TriggerPace<'_> {
    fn admit(&mut self, budget: &Budget) -> bool {
        let hold = self.own.wait(now_ms());
        if !hold.is_zero() {
            if !budget.allows(hold) {
                return false;
            }
            thread::sleep(hold);
        }
        if let Some((ns, who)) = self.namespace {
            let cost = *self.cost.get_or_insert_with(|| (self.rules)());
            let until = budget.remaining().map(|r| SystemTime::now() + r);
            if !ns.admit(who, cost, until) {
                return false;
            }
        }
        self.own.record(now_ms());
        true
    }

    fn capacity(&self, time: Option<Duration>) -> usize {
        let own = self.own.capacity(time);
        match self.namespace {
            Some((ns, who)) => own.min(ns.share(who, time)),
            None => own,
        }
    }
}

/// Fires `outbox` at `trigger`, `batch` events per fire (`{"events": […]}` when > 1).
pub fn deliver(
    client: &Client,
    trigger: &QualifiedName,
    outbox: &[Value],
    batch: usize,
    budget: &Budget,
) -> DeliveryReport {
    deliver_paced(client, trigger, outbox, batch, budget, &mut FirePace::new(u32::MAX))
}

/// Like `deliver`, sending each fire when `pace` admits it: when the minute's fires are spent
/// it waits for the next minute if the budget allows, else stops (`OutOfTime`) with the rest
/// left queued.
pub fn deliver_paced(
    client: &Client,
    trigger: &QualifiedName,
    outbox: &[Value],
    batch: usize,
    budget: &Budget,
    pace: &mut dyn Pace,
) -> DeliveryReport {
    let batch = batch.max(1);
    deliver_chunks(client, trigger, outbox, budget, pace, |rest| {
        let n = fitting(rest, batch, 20);
        let payload = if batch == 1 { rest[0].clone() } else { batch_payload(rest[..n].to_vec()) };
        (n, payload)
    })
}

/// Like `deliver_paced`, every fire `{key: [events…]}` with as many events as fit
/// `MAX_FIRE_BYTES` (at least one): the shape of a legacy feed that batches by size
/// (`LogReader::legacy_batch_key`).
pub fn deliver_wrapped(
    client: &Client,
    trigger: &QualifiedName,
    outbox: &[Value],
    key: &str,
    budget: &Budget,
    pace: &mut dyn Pace,
) -> DeliveryReport {
    deliver_chunks(client, trigger, outbox, budget, pace, |rest| {
        let n = fitting(rest, usize::MAX, key.len() + 8);
        let mut payload = serde_json::Map::new();
        payload.insert(key.to_string(), Value::Array(rest[..n].to_vec()));
        (n, Value::Object(payload))
    })
}

/// How many events from the front of `events` go into one fire: at most `most`, and no more
/// than fit `MAX_FIRE_BYTES` with `overhead` bytes of wrapper, but always one.
fn fitting(events: &[Value], most: usize, overhead: usize) -> usize {
    let mut size = overhead;
    let mut n = 0;
    for event in events.iter().take(most) {
        let bytes = serde_json::to_string(event).map_or(0, |s| s.len()) + 1;
        if n > 0 && size + bytes > MAX_FIRE_BYTES {
            break;
        }
        size += bytes;
        n += 1;
    }
    n.max(1)
}

/// Fires `outbox` in chunks; `chunk` gives the number of events and the payload of the next
/// fire from the events not yet delivered (never empty).
fn deliver_chunks(
    client: &Client,
    trigger: &QualifiedName,
    outbox: &[Value],
    budget: &Budget,
    pace: &mut dyn Pace,
    chunk: impl Fn(&[Value]) -> (usize, Value),
) -> DeliveryReport {
    let mut report = DeliveryReport { delivered: 0, requests: 0, outcome: DeliveryOutcome::Done };
    let mut backoff = Duration::from_secs(1);
    while report.delivered < outbox.len() {
        if budget.expired() {
            report.outcome = DeliveryOutcome::OutOfTime;
            return report;
        }
        // A throttled or failed fire still counts: OpenWhisk counts every request it receives.
        if !pace.admit(budget) {
            report.outcome = DeliveryOutcome::OutOfTime;
            return report;
        }
        let (n, payload) = chunk(&outbox[report.delivered..]);
        let end = report.delivered + n;
        report.requests += 1;
        let wait = match client.fire_trigger(trigger, &payload) {
            Ok(_) => {
                report.delivered = end;
                backoff = Duration::from_secs(1);
                continue;
            }
            Err(OwError::NotFound(_)) => {
                report.outcome = DeliveryOutcome::TriggerGone;
                return report;
            }
            Err(OwError::Throttled { retry_after, .. }) => retry_after.unwrap_or(backoff),
            Err(OwError::Server { .. }) | Err(OwError::Transport(_)) => backoff,
            Err(e) => {
                report.outcome = DeliveryOutcome::Failed(format!("firing trigger {trigger}: {e}"));
                return report;
            }
        };
        if !budget.allows(wait) {
            report.outcome = DeliveryOutcome::OutOfTime;
            return report;
        }
        thread::sleep(wait);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_counts_fires_per_calendar_minute() {
        let minute = 28_000_000 * 60_000u64;
        let mut pace = FirePace::new(2);
        assert_eq!(pace.wait(minute + 1_000), Duration::ZERO);
        pace.record(minute + 1_000);
        pace.record(minute + 2_000);
        // the minute's two fires are spent: wait for the next calendar minute, not 60 s
        assert_eq!(pace.wait(minute + 50_000), Duration::from_secs(10));
        assert_eq!(pace.wait(minute + 60_000), Duration::ZERO);
        pace.record(minute + 60_500);
        assert_eq!(pace.wait(minute + 61_000), Duration::ZERO);
        assert_eq!(pace.capacity(Some(Duration::from_secs(50))), 2);
        assert_eq!(pace.capacity(Some(Duration::from_secs(150))), 6);
        assert_eq!(FirePace::new(0).capacity(None), 1);
    }

    fn limits(fires: u32, invocations: u32, burst: u32) -> NamespaceLimits {
        NamespaceLimits { fires_per_minute: fires, invocations_per_minute: invocations, burst }
    }

    fn state(spent: Spent, tokens: f64, at: u64) -> NsState {
        NsState {
            spent,
            tokens,
            refilled_ms: at,
            queue: VecDeque::new(),
            next_ticket: 0,
            next_id: 0,
            firers: BTreeSet::new(),
            window_end: None,
        }
    }

    #[test]
    fn the_namespace_pace_keeps_the_minute_the_invocations_and_the_burst() {
        let minute = 28_000_000 * 60_000u64;
        let l = limits(6, 10, 2);
        let mut st = state(Spent { minute: minute / 60_000, ..Spent::default() }, 2.0, minute);
        // The burst: two at once, then one every 10 s (6 a minute).
        assert_eq!(st.take(&l, 1, minute), Ok(()));
        assert_eq!(st.take(&l, 1, minute), Ok(()));
        assert_eq!(st.take(&l, 1, minute), Err(10_000));
        assert_eq!(st.take(&l, 1, minute + 5_000), Err(5_000));
        assert_eq!(st.take(&l, 1, minute + 10_000), Ok(()));
        // A fire whose rules would pass the invocation limit waits for the next minute.
        assert_eq!(st.take(&l, 8, minute + 20_000), Err(40_000));
        assert_eq!(st.take(&l, 7, minute + 20_000), Ok(()));
        assert_eq!(st.spent, Spent { minute: minute / 60_000, fires: 4, invocations: 10 });
        // A new calendar minute starts from nothing (what an earlier activation spent in the
        // minute is given to `new`).
        assert_eq!(st.take(&l, 1, minute + 60_000), Ok(()));
        assert_eq!(st.spent, Spent { minute: minute / 60_000 + 1, fires: 1, invocations: 1 });
        // Fires per minute: never more, whatever the tokens.
        let mut full = state(Spent { minute: minute / 60_000, fires: 6, invocations: 0 }, 2.0, minute);
        assert_eq!(full.take(&l, 0, minute + 1_000), Err(59_000));
    }

    #[test]
    fn a_window_shorter_than_the_minute_spreads_the_fires_left_over_it_at_most_twice_as_fast() {
        let minute = 28_000_000 * 60_000u64;
        let l = limits(6, 100, 1);
        let at = |window: Option<u64>| {
            let mut st = state(Spent { minute: minute / 60_000, ..Spent::default() }, 1.0, minute);
            st.window_end = window.map(|w| minute + w);
            assert_eq!(st.take(&l, 1, minute), Ok(()));
            st.take(&l, 1, minute)
        };
        // 5 fires left: one every 10 s without a window (or with one past the minute's end),
        // one every 6 s to fit them in 36 s, never faster than one every 5 s.
        assert_eq!(at(None), Err(10_000));
        assert_eq!(at(Some(90_000)), Err(10_000));
        assert_eq!(at(Some(36_000)), Err(6_000));
        assert_eq!(at(Some(10_000)), Err(5_000));
        // Within a 45 s window the minute's pace sends 5 of its 6 fires; spread over the
        // window, all 6 go.
        let mut st = state(Spent { minute: minute / 60_000, ..Spent::default() }, 1.0, minute);
        st.window_end = Some(minute + 45_000);
        let mut now = minute;
        let mut sent = 0;
        while now < minute + 45_000 {
            match st.take(&l, 1, now) {
                Ok(()) => sent += 1,
                Err(wait) => now += wait,
            }
        }
        assert_eq!(sent, 6);
    }

    #[test]
    fn busy_triggers_are_served_in_turn() {
        // 600 fires a minute with a burst of 1: one fire every 100 ms, granted in request order.
        let pace = NamespacePace::new(limits(600, 10_000, 1), Spent { minute: now_ms() / 60_000, ..Spent::default() });
        let order = Mutex::new(Vec::new());
        let until = Some(SystemTime::now() + Duration::from_secs(20));
        thread::scope(|s| {
            for t in 0..3u64 {
                let (pace, order) = (&pace, &order);
                s.spawn(move || {
                    let who = pace.enlist();
                    thread::sleep(Duration::from_millis(10 * t));
                    for _ in 0..4 {
                        assert!(pace.admit(who, 1, until));
                        order.lock().unwrap().push(t);
                    }
                });
            }
        });
        let order = order.into_inner().unwrap();
        assert_eq!(order.len(), 12);
        // No trigger gets two fires in a row while another one waits: from the moment all three
        // have asked, each fire goes to another trigger than the one before.
        let all_asked = (0..order.len()).find(|i| (0..3).all(|t| order[..=*i].contains(&t))).unwrap();
        for i in all_asked.saturating_sub(1)..order.len() - 1 {
            assert_ne!(order[i], order[i + 1], "{order:?}");
        }
        assert!(!pace.admit(pace.enlist(), 1, Some(SystemTime::now())), "no time: not granted");
    }

    #[test]
    fn a_poll_waiting_for_its_turn_to_fire_lends_its_work_slot() {
        // One work slot; the burst spent: a fire must wait about a second for a token.
        let pace = NamespacePace::new(limits(60, 1_000, 1), Spent { minute: now_ms() / 60_000, ..Spent::default() })
            .with_work_slots(1);
        let until = Some(SystemTime::now() + Duration::from_secs(10));
        let first = pace.enlist();
        assert!(pace.admit(first, 1, until));
        let other_worked = std::sync::atomic::AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                let _slot = pace.work_slot();
                assert!(pace.admit(first, 1, until), "granted within the second");
                // While it waited, the other poll had the slot.
                assert!(other_worked.load(std::sync::atomic::Ordering::SeqCst));
            });
            thread::sleep(Duration::from_millis(200));
            let _slot = pace.work_slot();
            other_worked.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        // The lent slot is not given back twice: one slot, taken and returned once more.
        drop(pace.work_slot());
        assert_eq!(*pace.slots.lock().unwrap(), 1);
    }
}
