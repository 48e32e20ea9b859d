//! Delivery: fire the outbox's events at the user's trigger, in order, at least once.
//!
//! The outbox is committed to state before anything is fired, and only what this returns as
//! delivered is removed afterwards, so a crash anywhere means a re-fire with the same event
//! ids, never a loss. Throttling (429) and platform errors back off within the activation's
//! budget; what is left stays in the outbox for the next poll.

use std::thread;
use std::time::Duration;

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

/// Like `deliver`, sending at most `pace` fires per calendar minute: when the minute's fires
/// are spent it waits for the next minute if the budget allows, else stops (`OutOfTime`) with
/// the rest left queued.
pub fn deliver_paced(
    client: &Client,
    trigger: &QualifiedName,
    outbox: &[Value],
    batch: usize,
    budget: &Budget,
    pace: &mut FirePace,
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
    pace: &mut FirePace,
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
    pace: &mut FirePace,
    chunk: impl Fn(&[Value]) -> (usize, Value),
) -> DeliveryReport {
    let mut report = DeliveryReport { delivered: 0, requests: 0, outcome: DeliveryOutcome::Done };
    let mut backoff = Duration::from_secs(1);
    while report.delivered < outbox.len() {
        if budget.expired() {
            report.outcome = DeliveryOutcome::OutOfTime;
            return report;
        }
        let hold = pace.wait(now_ms());
        if !hold.is_zero() {
            if !budget.allows(hold) {
                report.outcome = DeliveryOutcome::OutOfTime;
                return report;
            }
            thread::sleep(hold);
        }
        let (n, payload) = chunk(&outbox[report.delivered..]);
        let end = report.delivered + n;
        report.requests += 1;
        // A throttled or failed fire still counts: OpenWhisk counts every request it receives.
        pace.record(now_ms());
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
}
