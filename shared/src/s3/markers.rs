//! The reconcile of S3 push (`owfeed/hook -p source s3 -p reconcile …`): a polling feed of
//! the same bucket whose config carries [`CONFIG_RECONCILE`], run as a safety net for
//! notifications that were lost on the way.
//!
//! After the receiver has fired a pushed change it writes a *marker*: an empty-ish object
//! `{namespace}/{trigger}.pushed/{name}` in the feed's state store, next to the state (under
//! `statePrefix`, so no listing ever reports it). The name says everything the reconcile needs
//! ([`marker_name`]): a hash of the key, the kind (`created` or `deleted`) and, for writes, a
//! hash of the ETag; the body (key, change, etag, event id, time) is for people. So one LIST
//! per 1000 markers loads them, with no GET per marker.
//!
//! A reconcile poll lists the markers *before* it lists the bucket ([`Pushed::load`]). A change
//! of its diff that a marker covers is not fired again ([`Markers::unpushed`]): a write by key
//! and ETag (`created` or `updated`: push reports every write as created), a delete by key.
//! Every other change is fired as the S3 feed fires it, with `data.reconciled: true` (or
//! `reconciled: true` in the legacy shape). After a whole listing (not a resumed or cut one)
//! that committed, the markers it loaded are deleted ([`Pushed::cleanup`]): each was written
//! after its change happened, hence before this listing started, so the listing saw that change
//! or a later one. Markers written meanwhile stay for the next reconcile.
//!
//! The receiver writes the marker after the fire: a marker that could not be written costs a
//! duplicate (the reconcile fires the change again, with another id), never a lost event.
//!
//! **Authentication.** Markers live where the bucket's writers can write too, and a marker
//! suppresses a fire. So with the feed's `stateKey` (the hook config holds it and passes it to
//! the reconcile) a marker's name also carries when it was written and an HMAC of the rest
//! ([`sealed_marker_name`]): `{name}.{ms, hex}.{tag}`. A reconcile honours only markers whose tag
//! verifies, and only those written since shortly before its previous whole listing started
//! (an older one is about a change that listing already saw: put back, it must not suppress a
//! later change of the same key and ETag). Every other name under the marker prefix is ignored,
//! logged and deleted. A feed created before keys existed writes and reads bare names as before.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::events::{hex, Change, ChangeKind};
use crate::openwhisk::QualifiedName;
use crate::params::Params;
use crate::polling::change_hook::{ChangeHook, ChangeHooks};
use crate::runtime::ActionError;
use crate::source::{BlobStore, Flow, ListRange, Lister, Precondition, Source, StoreError};
use crate::store::Seal;

use super::source::StateLocation;

/// The HMAC domain of a push marker's name.
const MARKER_DOMAIN: &str = "marker";

/// Bytes of the tag in a sealed marker name (hex: twice as many characters).
const MARKER_TAG_BYTES: usize = 16;

/// How much earlier than the previous whole listing's start a marker may have been written and
/// still count: the receiver's and the poller's clocks are different machines' clocks.
pub const MARKER_CLOCK_SLACK_MS: u64 = 10 * 60 * 1000;

/// Config key of a polling feed that reconciles a push hook: its events are marked
/// `reconciled` and changes the receiver marked as pushed are not fired again.
pub const CONFIG_RECONCILE: &str = "reconcile";

/// The markers' place in the state store, relative to its prefix: `{ns}/{trigger}.pushed/`.
pub fn markers_prefix(trigger: &QualifiedName) -> String {
    format!("{}/{}.pushed/", trigger.namespace, trigger.name)
}

fn hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..16])
}

/// An ETag as listings and notifications both give it: no quotes, lower case.
fn normal_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_ascii_lowercase()
}

/// The marker name of a pushed change: `{hash(key)}.deleted`, or
/// `{hash(key)}.created.{hash(etag)}` for a write (`none` without an ETag).
pub fn marker_name(deleted: bool, key: &str, etag: Option<&str>) -> String {
    if deleted {
        return format!("{}.deleted", hash(key));
    }
    let etag = etag.map(|e| hash(&normal_etag(e))).unwrap_or_else(|| "none".to_string());
    format!("{}.created.{etag}", hash(key))
}

/// The authenticated name of a marker `name` written at `written_ms`:
/// `{name}.{written_ms, hex}.{HMAC of the rest, 16 bytes hex}`.
pub fn sealed_marker_name(seal: &Seal, name: &str, written_ms: u64) -> String {
    let unsealed = format!("{name}.{written_ms:x}");
    let tag = seal.tag_hex(MARKER_DOMAIN, unsealed.as_bytes(), MARKER_TAG_BYTES);
    format!("{unsealed}.{tag}")
}

/// The marker name and write time a sealed name carries, when its tag verifies.
pub fn open_marker_name(seal: &Seal, sealed: &str) -> Option<(String, u64)> {
    let (unsealed, tag) = sealed.rsplit_once('.')?;
    let (name, written) = unsealed.rsplit_once('.')?;
    if tag.len() != 2 * MARKER_TAG_BYTES || !seal.verify_hex(MARKER_DOMAIN, unsealed.as_bytes(), tag) {
        return None;
    }
    Some((name.to_string(), u64::from_str_radix(written, 16).ok()?))
}

/// The marker name that would cover `change`, if any could.
fn name_for(change: &Change) -> Option<String> {
    match change.kind {
        ChangeKind::Deleted => Some(marker_name(true, &change.key, None)),
        ChangeKind::Created | ChangeKind::Updated => {
            let etag = change.entry.as_ref()?.attrs.get("etag")?.as_str()?;
            Some(marker_name(false, &change.key, Some(etag)))
        }
    }
}

/// Where a reconcile poll finds its markers: a listing of the marker prefix in the state
/// bucket, and the state store to delete them from.
pub struct Pushed {
    lister: Box<dyn Lister>,
    blobs: Box<dyn BlobStore>,
    /// The listed keys start with this; the rest is the marker name.
    listed_prefix: String,
    /// The blob keys start with this.
    blob_prefix: String,
    /// The feed's key: only markers it authenticates count (`None`: a feed without a key).
    seal: Option<Seal>,
}

/// The markers one reconcile poll loaded.
#[derive(Debug, Default)]
pub struct Markers {
    /// The names of the markers that count (without time and tag).
    names: std::collections::BTreeSet<String>,
    /// Everything listed under the marker prefix, as stored: deleted after a whole listing.
    listed: std::collections::BTreeSet<String>,
    /// Names under the marker prefix that are not authenticated markers of this feed.
    rejected: usize,
}

impl Pushed {
    /// The markers of `trigger` for a poll whose config is `params`; `None` unless the config
    /// is a reconcile's. The listing goes through the source itself (the S3 source, in the
    /// state bucket, with the marker prefix as its `prefix`).
    pub fn open(params: &Params, source: &dyn Source, trigger: &QualifiedName) -> Result<Option<Pushed>, ActionError> {
        if !params.bool(CONFIG_RECONCILE)?.unwrap_or(false) {
            return Ok(None);
        }
        let bucket = params.required_str("bucket")?;
        let state = StateLocation::from_params(params, &bucket)?;
        let blob_prefix = markers_prefix(trigger);
        let listed_prefix = format!("{}{blob_prefix}", state.prefix);
        let mut listing = params.clone();
        listing.insert("bucket", json!(state.bucket));
        listing.insert("prefix", json!(listed_prefix));
        listing.remove("stateBucket");
        let lister = source.open(&listing)?;
        let blobs = source
            .open(params)?
            .blob_store()
            .ok_or_else(|| ActionError::new("reconcile: the source keeps no state store for the push markers"))?;
        let seal = crate::store::stored_key(params).map(|k| crate::store::seal_for(&k, trigger));
        Ok(Some(Pushed { lister, blobs, listed_prefix, blob_prefix, seal }))
    }

    /// Lists the markers (before the bucket is listed: see the module doc). With a key, a name
    /// counts only when its tag verifies and it was written no earlier than the slack before
    /// `horizon_ms` (when the previous whole listing started).
    pub fn load(&self, horizon_ms: Option<u64>) -> Result<Markers, ActionError> {
        let mut listed = std::collections::BTreeSet::new();
        let mut page = |entries: Vec<crate::source::Entry>| {
            for e in entries {
                if let Some(name) = e.key.strip_prefix(&self.listed_prefix) {
                    listed.insert(name.to_string());
                }
            }
            Flow::Continue
        };
        self.lister
            .list(&ListRange::default(), crate::source::Previous::default(), &mut page)
            .map_err(|e| ActionError::new(format!("reconcile: listing the push markers: {e}")))?;
        let mut markers = Markers { listed, ..Markers::default() };
        let earliest = horizon_ms.map_or(0, |h| h.saturating_sub(MARKER_CLOCK_SLACK_MS));
        for listed in &markers.listed {
            match &self.seal {
                None => {
                    markers.names.insert(listed.clone());
                }
                Some(seal) => match open_marker_name(seal, listed) {
                    Some((name, written)) if written >= earliest => {
                        markers.names.insert(name);
                    }
                    // Authentic but older than the previous whole listing: put back, not new.
                    Some(_) => markers.rejected += 1,
                    None => markers.rejected += 1,
                },
            }
        }
        if markers.rejected > 0 {
            crate::runtime::log(&format!(
                "reconcile: ignored {} names under the push marker prefix that are not authenticated markers of \
                 this feed written since its previous whole listing (forged, put back, or from another key)",
                markers.rejected
            ));
        }
        Ok(markers)
    }

    /// Deletes what was listed under the marker prefix once a whole listing consumed it; one
    /// that stays only costs a LIST entry (and is deleted by a later reconcile).
    pub fn cleanup(&self, markers: &Markers) -> usize {
        let mut deleted = 0;
        for name in &markers.listed {
            match self.blobs.delete(&format!("{}{name}", self.blob_prefix)) {
                Ok(()) => deleted += 1,
                Err(e) => crate::runtime::log(&format!("reconcile: deleting a push marker: {e}")),
            }
        }
        deleted
    }

    /// Writes the marker of one pushed change (the receiver's side), sealed with `seal` (the
    /// feed's key) at `now_ms` when it has one.
    pub fn write(
        blobs: &dyn BlobStore,
        trigger: &QualifiedName,
        seal: Option<&Seal>,
        now_ms: u64,
        deleted: bool,
        body: &Value,
    ) -> Result<(), StoreError> {
        let key = body["key"].as_str().unwrap_or_default();
        let name = marker_name(deleted, key, body["etag"].as_str());
        let name = match seal {
            Some(seal) => sealed_marker_name(seal, &name, now_ms),
            None => name,
        };
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        blobs.put(&format!("{}{name}", markers_prefix(trigger)), &bytes, &Precondition::None).map(|_| ())
    }
}

impl Markers {
    /// Number of markers loaded.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no marker was loaded.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Names under the marker prefix that did not count (not authenticated, or put back).
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// The changes no marker covers, and how many were covered.
    pub fn unpushed(&self, changes: &[Change]) -> (Vec<Change>, usize) {
        let (covered, rest): (Vec<&Change>, Vec<&Change>) =
            changes.iter().partition(|c| name_for(c).is_some_and(|n| self.names.contains(&n)));
        (rest.into_iter().cloned().collect(), covered.len())
    }
}

/// Marks events a reconcile fires: `data.reconciled: true` (CloudEvents) or `reconciled: true`
/// (legacy payloads, which have no `data`).
pub fn mark_reconciled(events: &mut [Value]) {
    for event in events {
        match event.get_mut("data").and_then(Value::as_object_mut) {
            Some(data) => {
                data.insert("reconciled".into(), Value::Bool(true));
            }
            None => {
                if let Some(obj) = event.as_object_mut() {
                    obj.insert("reconciled".into(), Value::Bool(true));
                }
            }
        }
    }
}

/// The reconcile's change hook for the polling core (`polling::ChangeHooks`): a poll whose
/// config carries [`CONFIG_RECONCILE`] loads the push markers before its listing, fires only the
/// changes no marker covers, marks them `reconciled`, and deletes the markers after a whole
/// listing.
pub struct ReconcileHooks;

impl ChangeHooks for ReconcileHooks {
    fn open(
        &self,
        params: &Params,
        source: &dyn Source,
        trigger: &QualifiedName,
    ) -> Result<Option<Box<dyn ChangeHook>>, ActionError> {
        let pushed = Pushed::open(params, source, trigger)?;
        Ok(pushed.map(|pushed| Box::new(ReconcileHook { pushed, markers: None }) as Box<dyn ChangeHook>))
    }
}

/// One reconcile poll: the marker store and the markers it loaded.
struct ReconcileHook {
    pushed: Pushed,
    markers: Option<Markers>,
}

impl ChangeHook for ReconcileHook {
    fn before_listing(&mut self, whole_listing_started_ms: Option<u64>) -> Result<(), ActionError> {
        self.markers = Some(self.pushed.load(whole_listing_started_ms)?);
        Ok(())
    }

    fn keep(&self, changes: &[Change]) -> Vec<Change> {
        match &self.markers {
            Some(markers) => markers.unpushed(changes).0,
            None => changes.to_vec(),
        }
    }

    fn mark(&self, events: &mut [Value]) {
        mark_reconciled(events)
    }

    fn after_whole_listing(&self) {
        if let Some(markers) = &self.markers {
            self.pushed.cleanup(markers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Entry;
    use serde_json::Map;

    fn write(key: &str, etag: Option<&str>, kind: ChangeKind) -> Change {
        let mut attrs = Map::new();
        if let Some(e) = etag {
            attrs.insert("etag".into(), json!(e));
        }
        let entry = Entry { key: key.into(), version: etag.unwrap_or("v").into(), attrs };
        Change { kind, key: key.into(), entry: Some(entry), old_version: None }
    }

    fn delete(key: &str) -> Change {
        Change { kind: ChangeKind::Deleted, key: key.into(), entry: None, old_version: None }
    }

    #[test]
    fn markers_cover_writes_by_key_and_etag_and_deletes_by_key() {
        let markers = Markers {
            listed: Default::default(),
            rejected: 0,
            names: [
                marker_name(false, "a", Some("\"ABC\"")),
                marker_name(true, "gone", None),
                marker_name(false, "none", None),
            ]
            .into_iter()
            .collect(),
        };
        let changes = vec![
            write("a", Some("abc"), ChangeKind::Created),
            write("a", Some("abc"), ChangeKind::Updated),
            write("a", Some("def"), ChangeKind::Updated),
            write("b", Some("abc"), ChangeKind::Created),
            delete("gone"),
            delete("a"),
            write("gone", Some("abc"), ChangeKind::Created),
            write("none", None, ChangeKind::Created),
        ];
        let (rest, covered) = markers.unpushed(&changes);
        assert_eq!(covered, 3);
        let keys: Vec<(&str, &str)> = rest.iter().map(|c| (c.key.as_str(), c.kind.as_str())).collect();
        assert_eq!(
            keys,
            vec![("a", "updated"), ("b", "created"), ("a", "deleted"), ("gone", "created"), ("none", "created")]
        );
    }

    #[test]
    fn marker_names_are_short_and_safe_whatever_the_key() {
        let long = "k/".repeat(600);
        for key in ["", "a b+c.jpg", "ü/../x", long.as_str()] {
            for name in [marker_name(true, key, None), marker_name(false, key, Some("d41d8cd9-2"))] {
                assert!(name.len() < 80, "{name}");
                assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'), "{name}");
            }
        }
        assert_ne!(marker_name(false, "a", Some("x")), marker_name(false, "a", Some("y")));
        assert_eq!(marker_name(false, "a", Some("\"AB\"")), marker_name(false, "a", Some("ab")));
    }

    #[test]
    fn sealed_marker_names_verify_only_as_written() {
        let key = crate::secret::Secret::new("k".repeat(40));
        let trigger = QualifiedName::new("ns", None, "t");
        let seal = crate::store::seal_for(&key, &trigger);
        let name = marker_name(false, "photos/a.jpg", Some("\"abc\""));
        let sealed = sealed_marker_name(&seal, &name, 0x18f_0000_0000);
        assert_eq!(open_marker_name(&seal, &sealed), Some((name.clone(), 0x18f_0000_0000)));
        assert!(sealed.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') && sealed.len() < 160, "{sealed}");
        // What a writer of the bucket can make: the bare name (the format before keys), another
        // key's, another trigger's, a name or time swapped under a genuine tag.
        let other_key = crate::store::seal_for(&crate::secret::Secret::new("x".repeat(40)), &trigger);
        let other_trigger = crate::store::seal_for(&key, &QualifiedName::new("ns", None, "u"));
        let (_, tag) = sealed.rsplit_once('.').unwrap();
        let deleted = marker_name(true, "photos/a.jpg", None);
        for forged in [
            name.clone(),
            format!("{name}.18f00000000"),
            format!("{name}.18f00000000.{}", "0".repeat(32)),
            sealed_marker_name(&other_key, &name, 0x18f_0000_0000),
            sealed_marker_name(&other_trigger, &name, 0x18f_0000_0000),
            format!("{deleted}.18f00000000.{tag}"),
            format!("{name}.18f00000001.{tag}"),
            format!("{sealed}0"),
            String::new(),
            "..".to_string(),
        ] {
            assert_eq!(open_marker_name(&seal, &forged), None, "{forged}");
        }
    }

    #[test]
    fn reconciled_events_say_so_in_both_formats() {
        let mut events = vec![json!({"id": "1", "data": {"key": "k"}}), json!({"key": "k", "status": "added"})];
        mark_reconciled(&mut events);
        assert_eq!(events[0]["data"]["reconciled"], true);
        assert_eq!(events[1]["reconciled"], true);
    }
}
