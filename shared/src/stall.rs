//! No silent stall: what READ says about a feed whose polls cannot make progress, even when
//! the state store refuses the writes that would record it.
//!
//! A poll records its status in the lease blob of the state store. When that store refuses
//! writes (the very failure to report), the record is lost there; but OpenWhisk records every
//! poll's activation, with its result, in the user's namespace, and each poll result names
//! its trigger (`trigger`, in errors too). READ merges both records: the newest outcome of
//! either, how long the feed has gone without progress, how many polls in a row made none,
//! and who holds the lease until when, as the lease blob says.

use serde::Serialize;
use serde_json::{json, Value};

use crate::budget::iso;
use crate::openwhisk::{from_key_values, key_values, Client, OwError, QualifiedName};
use crate::params::Params;
use crate::runtime::ActionError;
use crate::store::{LeaseDoc, PollOutcome};

/// Poll activations READ looks at (newest first; all feeds of the namespace share them).
const ACTIVATIONS: u32 = 50;
/// Scheduler ticks READ looks at (each lists the polls of many triggers).
const TICKS: u32 = 10;
/// Polls in a row without progress after which READ says the feed is stalled.
const STALL_AFTER: usize = 3;

/// One poll as READ sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PollRecord {
    /// When it started (epoch ms).
    pub started_ms: u64,
    /// How it ended.
    pub outcome: PollOutcome,
    /// What went wrong, when something did.
    pub error: Option<String>,
}

/// The poll records of `trigger` among the newest activations of the poll action invoked
/// through each of `bindings` (the feed's config binding, and the namespace scheduler's, whose
/// ticks list their polls under `polls`), newest first. OpenWhisk indexes an activation made
/// through a binding as `{binding}/{action}` (apache/openwhisk
/// ansible/files/whisks_design_document_for_activations_db_filters_v2.1.1.json, `pathFilter`),
/// so `name={binding}/poll` selects them. Listing activations may fail (permissions, an old
/// platform): READ then shows the store's record only and says why.
pub fn poll_activations(client: &Client, bindings: &[&str], trigger: &str) -> Result<Vec<PollRecord>, OwError> {
    let mut out = Vec::new();
    for (i, binding) in bindings.iter().enumerate() {
        // A tick's result lists many triggers' polls: fewer of them say enough.
        let limit = if i == 0 { ACTIVATIONS } else { TICKS };
        let list = client.list_activations(Some(&format!("{binding}/poll")), limit)?;
        for a in list.as_array().map(Vec::as_slice).unwrap_or_default() {
            let result = &a["response"]["result"];
            let start = a["start"].as_u64().unwrap_or(0);
            if result["trigger"].as_str() == Some(trigger) {
                out.push(record_of(result, start));
            }
            for poll in result["polls"].as_array().map(Vec::as_slice).unwrap_or_default() {
                if poll["trigger"].as_str() == Some(trigger) {
                    out.push(record_of(poll, start));
                }
            }
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
    out.dedup_by_key(|r| (r.started_ms, r.outcome));
    Ok(out)
}

/// One poll's record from its result.
fn record_of(result: &Value, started_ms: u64) -> PollRecord {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let outcome = match result["status"].as_str() {
        Some(s) => PollOutcome::parse(s),
        None if result.get("error").is_some() => PollOutcome::Error,
        None => PollOutcome::Unknown,
    };
    let error = text(&result["error"]).or_else(|| text(&result["problem"])).or_else(|| {
        (outcome == PollOutcome::Busy).then(|| {
            format!(
                "the lease is held by {} until {}",
                result["holder"].as_str().unwrap_or("another poll"),
                result["until"].as_str().unwrap_or("?")
            )
        })
    });
    PollRecord { started_ms, outcome, error }
}

/// The newest poll READ knows of, and where that record came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastPoll {
    /// When it started (RFC 3339).
    pub last_poll: String,
    /// How it ended.
    pub last_outcome: PollOutcome,
    /// What went wrong (`null` when nothing did).
    pub last_error: Option<String>,
    /// `state store` or `poll activation`: the newer of the two records.
    pub last_outcome_from: &'static str,
}

/// Who holds the poll lease: `{"holder": null}` when free.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaseView {
    /// The activation holding it.
    pub holder: Option<String>,
    /// When it ends on its own (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// True once that time has passed: the next poll takes it over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<bool>,
}

/// What READ says of a feed's polls: the part of its status this module fills.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollHistory {
    /// The newest poll of either record.
    #[serde(flatten)]
    pub last: Option<LastPoll>,
    /// Polls in a row that made no progress.
    pub polls_without_progress: usize,
    /// The newest poll that made progress (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_progress: Option<String>,
    /// How long ago that was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_progress_for_ms: Option<u64>,
    /// True from [`STALL_AFTER`] polls without progress on (or a refused cursor).
    pub stalled: bool,
    /// Why, with the newest poll's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_reason: Option<String>,
    /// The lease, as the lease blob says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseView>,
    /// Why the poll activations could not be listed (READ then shows the store's record only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_activations_error: Option<String>,
}

/// READ's account of the polls: the newest one (from the newer of the store's record and the
/// activation records), the newest progress, polls in a row without it, `stalled` with the
/// reason, and the lease holder and expiry.
pub fn report(lease: Option<&LeaseDoc>, activations: Result<Vec<PollRecord>, String>, now_ms: u64) -> PollHistory {
    let stored = lease.and_then(|d| d.status.as_ref()).map(|s| PollRecord {
        started_ms: s.started_ms,
        outcome: s.outcome,
        error: s.error.clone(),
    });
    let (records, poll_activations_error) = match activations {
        Ok(r) => (r, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let newest_activation = records.first();
    let last = match (stored.as_ref(), newest_activation) {
        (Some(s), Some(a)) if a.started_ms > s.started_ms => Some((a, "poll activation")),
        (Some(s), _) => Some((s, "state store")),
        (None, Some(a)) => Some((a, "poll activation")),
        (None, None) => None,
    };
    let last = last.map(|(last, from)| LastPoll {
        last_poll: iso(last.started_ms),
        last_outcome: last.outcome,
        last_error: last.error.clone(),
        last_outcome_from: from,
    });
    // Progress: the newest progressing poll of either record.
    let mut progress: Option<u64> = records.iter().find(|r| r.outcome.progressed()).map(|r| r.started_ms);
    if let Some(s) = stored.as_ref().filter(|s| s.outcome.progressed()) {
        progress = Some(progress.map_or(s.started_ms, |p| p.max(s.started_ms)));
    }
    let without = records.iter().take_while(|r| !r.outcome.progressed() && Some(r.started_ms) > progress).count();
    let stall_reason = (without >= STALL_AFTER).then(|| {
        let why = records.first().and_then(|r| r.error.clone()).unwrap_or_else(|| records[0].outcome.to_string());
        format!("the last {without} polls made no progress (newest: {why})")
    });
    let lease = lease.map(|doc| match &doc.holder {
        Some(holder) => LeaseView {
            holder: Some(holder.clone()),
            until: Some(iso(doc.expires_ms)),
            expired: Some(doc.expires_ms <= now_ms),
        },
        None => LeaseView { holder: None, until: None, expired: None },
    });
    PollHistory {
        last,
        polls_without_progress: without,
        last_progress: progress.map(iso),
        no_progress_for_ms: progress.map(|p| now_ms.saturating_sub(p)),
        stalled: stall_reason.is_some(),
        stall_reason,
        lease,
        poll_activations_error,
    }
}

/// Sets one parameter of a feed's config binding, keeping the rest (a poll records the
/// conditional-write dialect a re-probe found). `seen` is the config the poll ran with: when
/// the binding no longer matches it (an UPDATE meanwhile), nothing is written, so the poll
/// never reverts an UPDATE; the next poll re-probes instead.
pub fn set_config_param(
    client: &Client,
    binding: &QualifiedName,
    name: &str,
    value: Value,
    seen: &Params,
) -> Result<bool, OwError> {
    let doc = client.get_package(binding)?;
    let mut params = from_key_values(&doc["parameters"]);
    if params.iter().any(|(k, v)| k != name && seen.raw(k) != Some(v)) {
        return Ok(false);
    }
    params.insert(name.to_string(), value);
    let body = json!({ "binding": doc["binding"], "parameters": key_values(&params) });
    client.put_package(binding, &body, true).map(|_| true)
}

/// A poll's error, naming its trigger so READ can find it among the activations.
pub fn tag_error(mut e: ActionError, trigger: Option<&str>) -> ActionError {
    if let Some(t) = trigger {
        let mut details = e.details.take().unwrap_or_else(|| json!({}));
        details["trigger"] = json!(t);
        e.details = Some(details);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PollStatus;

    fn rec(t: u64, outcome: PollOutcome, error: Option<&str>) -> PollRecord {
        PollRecord { started_ms: t, outcome, error: error.map(str::to_string) }
    }

    #[test]
    fn failed_polls_the_store_could_not_record_show_from_the_activations() {
        let doc = LeaseDoc {
            holder: Some("a1".into()),
            expires_ms: 5_000,
            status: Some(PollStatus { started_ms: 1_000, outcome: PollOutcome::Ok, ..PollStatus::default() }),
            ..LeaseDoc::default()
        };
        let acts = vec![
            rec(4_000, PollOutcome::Error, Some("taking the poll lease: state store: S3 failed")),
            rec(3_000, PollOutcome::Busy, Some("the lease is held by a1 until …")),
            rec(2_000, PollOutcome::Conflict, None),
            rec(1_000, PollOutcome::Ok, None),
        ];
        let s = serde_json::to_value(report(Some(&doc), Ok(acts), 10_000)).unwrap();
        assert_eq!(s["lastOutcome"], "error");
        assert_eq!(s["lastError"], "taking the poll lease: state store: S3 failed");
        assert_eq!(s["lastOutcomeFrom"], "poll activation");
        assert_eq!(s["pollsWithoutProgress"], 3);
        assert_eq!(s["noProgressForMs"], 9_000);
        assert_eq!(s["stalled"], true);
        assert_eq!(s["lease"]["holder"], "a1");
        assert_eq!(s["lease"]["expired"], true);
    }

    #[test]
    fn a_healthy_feed_is_not_stalled_and_the_store_record_wins_when_newer() {
        let doc = LeaseDoc {
            holder: None,
            expires_ms: 0,
            status: Some(PollStatus { started_ms: 9_000, outcome: PollOutcome::Ok, ..PollStatus::default() }),
            ..LeaseDoc::default()
        };
        let s = serde_json::to_value(report(Some(&doc), Err("activations: 403".into()), 10_000)).unwrap();
        assert_eq!(s["lastOutcome"], "ok");
        assert_eq!(s["lastOutcomeFrom"], "state store");
        assert_eq!(s["stalled"], false);
        assert_eq!(s["noProgressForMs"], 1_000);
        assert_eq!(s["lease"]["holder"], Value::Null);
        assert_eq!(s["pollActivationsError"], "activations: 403");
    }
}
