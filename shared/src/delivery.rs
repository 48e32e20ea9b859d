//! Delivery: fire the outbox's events at the user's trigger, in order, at least once.
//!
//! The outbox is committed to state before anything is fired, and only what this returns as
//! delivered is removed afterwards, so a crash anywhere means a re-fire with the same event
//! ids, never a loss. Throttling (429) and platform errors back off within the activation's
//! budget; what is left stays in the outbox for the next poll.

use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::budget::Budget;
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

/// Longest wait between two attempts when the server gives no hint.
const MAX_BACKOFF: Duration = Duration::from_secs(16);

/// Fires `outbox` at `trigger`, `batch` events per fire (`{"events": […]}` when > 1).
pub fn deliver(
    client: &Client,
    trigger: &QualifiedName,
    outbox: &[Value],
    batch: usize,
    budget: &Budget,
) -> DeliveryReport {
    let batch = batch.max(1);
    let mut report = DeliveryReport { delivered: 0, requests: 0, outcome: DeliveryOutcome::Done };
    let mut backoff = Duration::from_secs(1);
    while report.delivered < outbox.len() {
        if budget.expired() {
            report.outcome = DeliveryOutcome::OutOfTime;
            return report;
        }
        let end = (report.delivered + batch).min(outbox.len());
        let chunk = &outbox[report.delivered..end];
        let payload = if batch == 1 { chunk[0].clone() } else { batch_payload(chunk.to_vec()) };
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
