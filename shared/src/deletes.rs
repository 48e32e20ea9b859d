//! Deletes that are true: a `deleted` event only for an entry that is really gone.
//!
//! A listing can omit keys that exist (a server bug across page boundaries, an eventually
//! consistent store, a half-empty answer). So before a poll commits its deletes it asks the
//! source about each (`Lister::exists`: S3 HEAD) when there are few enough
//! (`verifyDeletes`): gone (404) is confirmed; present (200) is refuted, the entry stays in the
//! snapshot and no event fires. When there are too many to ask about and the listing lost at
//! least half of the snapshot, the deletes are held for one more poll: the next listing must
//! agree before they fire. This module is pure apart from the `exists` calls.

use crate::budget::Budget;
use crate::change::{Change, ChangeKind};
use crate::source::{Lister, SourceError};
use crate::state::{Snapshot, SnapshotWriter};

/// Default of `verifyDeletes`: most deletes per poll confirmed one by one.
pub const DEFAULT_VERIFY_DELETES: u64 = 100;

/// What checking a poll's deletes did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteCheck {
    /// Confirmed gone: their events fire.
    pub confirmed: u64,
    /// The entry still exists: no event, the entry stays.
    pub refuted: u64,
    /// Not reported this poll (a dramatic shrink, or no time left to confirm): the entries
    /// stay, and the next poll sees the deletes again.
    pub held: u64,
}

/// What `check_deletes` needs to know about the pass besides its changes.
#[derive(Clone, Copy, Debug)]
pub struct PassFacts {
    /// The previous snapshot's size.
    pub old_len: usize,
    /// The pass listed everything from the start to the end in this poll: only then does the
    /// next poll list the held keys again, so only then are deletes held.
    pub whole: bool,
    /// What the previous commit held (a second dramatic shrink in a row goes through).
    pub held_before: u64,
}

/// Checks the deletes among `changes` and keeps in `snapshot` every entry whose delete is
/// refuted or held. At most `verify` entries are asked about, while `budget` lasts; deletes
/// beyond that are reported as listed.
pub fn check_deletes(
    lister: &dyn Lister,
    changes: &mut Vec<Change>,
    snapshot: &mut Snapshot,
    facts: PassFacts,
    verify: usize,
    budget: &Budget,
) -> Result<DeleteCheck, SourceError> {
    let PassFacts { old_len, whole, held_before } = facts;
    let deletes = changes.iter().filter(|c| c.kind == ChangeKind::Deleted).count();
    let mut report = DeleteCheck::default();
    if deletes == 0 {
        return Ok(report);
    }
    let dramatic = deletes * 2 >= old_len;
    let mut keep: Vec<(String, u64)> = Vec::new();
    let mut checked = 0;
    let mut lying = false;
    if deletes > verify && dramatic && whole && held_before == 0 {
        // Too many to confirm, and more likely a store fault than a mass delete: wait a poll.
        for c in changes.iter().filter(|c| c.kind == ChangeKind::Deleted) {
            keep.push((c.key.clone(), c.old_version.unwrap_or_default()));
        }
        report.held = deletes as u64;
    } else {
        for c in changes.iter().filter(|c| c.kind == ChangeKind::Deleted) {
            let hold = |keep: &mut Vec<(String, u64)>| keep.push((c.key.clone(), c.old_version.unwrap_or_default()));
            if lying {
                hold(&mut keep);
                report.held += 1;
                continue;
            }
            if checked >= verify || budget.expired() {
                // Beyond what we can afford to ask about: reported as listed (the listing
                // said so twice, or the change is not dramatic).
                continue;
            }
            checked += 1;
            match lister.exists(&c.key)? {
                Some(true) => {
                    hold(&mut keep);
                    report.refuted += 1;
                    // A listing that omitted one existing key is not trusted for the unchecked rest.
                    lying = deletes > verify;
                }
                Some(false) => report.confirmed += 1,
                None => {}
            }
        }
    }
    if keep.is_empty() {
        return Ok(report);
    }
    let kept: std::collections::BTreeSet<&str> = keep.iter().map(|(k, _)| k.as_str()).collect();
    changes.retain(|c| !(c.kind == ChangeKind::Deleted && kept.contains(c.key.as_str())));
    *snapshot = with_entries(snapshot, keep)?;
    Ok(report)
}

/// `snapshot` with `extra` entries merged in (keys not in it).
fn with_entries(snapshot: &Snapshot, mut extra: Vec<(String, u64)>) -> Result<Snapshot, SourceError> {
    extra.sort();
    let mut w = SnapshotWriter::new();
    let mut extra = extra.into_iter().peekable();
    let fail = |e: crate::state::StateError| SourceError::Transient(e.to_string());
    for (key, hash) in snapshot.iter() {
        while let Some((k, h)) = extra.next_if(|(k, _)| k.as_str() < key.as_str()) {
            w.push(&k, h).map_err(fail)?;
        }
        // A key both listed and kept cannot happen (it was deleted); the listed one wins.
        while extra.next_if(|(k, _)| *k == key).is_some() {}
        w.push(&key, hash).map_err(fail)?;
    }
    for (k, h) in extra {
        w.push(&k, h).map_err(fail)?;
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use serde_json::{Map, Value};

    use super::*;
    use crate::source::{BlobStore, Entry, Flow, ListRange, Previous};

    /// A source where only `present` keys exist.
    struct Exists(BTreeSet<String>);

    impl Lister for Exists {
        fn source_uri(&self) -> String {
            "memory:".into()
        }
        fn event_type_prefix(&self) -> &'static str {
            "test"
        }
        fn data_context(&self) -> Map<String, Value> {
            Map::new()
        }
        fn probe(&self) -> Result<(), SourceError> {
            Ok(())
        }
        fn list(
            &self,
            _: &ListRange,
            _: Previous<'_>,
            _: &mut dyn FnMut(Vec<Entry>) -> Flow,
        ) -> Result<bool, SourceError> {
            Ok(true)
        }
        fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
            None
        }
        fn exists(&self, key: &str) -> Result<Option<bool>, SourceError> {
            Ok(Some(self.0.contains(key)))
        }
    }

    fn deleted(key: &str) -> Change {
        Change { kind: ChangeKind::Deleted, key: key.into(), entry: None, old_version: Some(7) }
    }

    fn snap(keys: &[&str]) -> Snapshot {
        let mut w = SnapshotWriter::new();
        for k in keys {
            w.push(k, 1).unwrap();
        }
        w.finish()
    }

    fn keys(s: &Snapshot) -> Vec<String> {
        s.iter().map(|(k, _)| k).collect()
    }

    fn facts(old_len: usize, held_before: u64) -> PassFacts {
        PassFacts { old_len, whole: true, held_before }
    }

    fn no_deadline() -> Budget {
        Budget::new(None, Duration::ZERO)
    }

    #[test]
    fn existing_objects_refute_their_deletes_and_stay() {
        let source = Exists(["b".to_string()].into());
        let mut changes = vec![deleted("a"), deleted("b")];
        let mut snapshot = snap(&["c", "d", "e"]);
        let r = check_deletes(&source, &mut changes, &mut snapshot, facts(5, 0), 100, &no_deadline()).unwrap();
        assert_eq!(r, DeleteCheck { confirmed: 1, refuted: 1, held: 0 });
        assert_eq!(changes.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(keys(&snapshot), ["b", "c", "d", "e"]);
    }

    #[test]
    fn a_dramatic_shrink_too_large_to_confirm_is_held_once() {
        let source = Exists(BTreeSet::new());
        let mut changes = vec![deleted("a"), deleted("b"), deleted("c")];
        let mut snapshot = snap(&["d"]);
        let r = check_deletes(&source, &mut changes, &mut snapshot, facts(4, 0), 1, &no_deadline()).unwrap();
        assert_eq!(r, DeleteCheck { confirmed: 0, refuted: 0, held: 3 });
        assert!(changes.is_empty());
        assert_eq!(keys(&snapshot), ["a", "b", "c", "d"]);
        // The next listing agrees: the deletes go through (the affordable one confirmed).
        let mut changes = vec![deleted("a"), deleted("b"), deleted("c")];
        let mut snapshot = snap(&["d"]);
        let r = check_deletes(&source, &mut changes, &mut snapshot, facts(4, 3), 1, &no_deadline()).unwrap();
        assert_eq!(r, DeleteCheck { confirmed: 1, refuted: 0, held: 0 });
        assert_eq!(changes.len(), 3);
        assert_eq!(keys(&snapshot), ["d"]);
    }

    #[test]
    fn a_resumed_listing_never_holds_deletes_it_will_not_list_again() {
        let source = Exists(BTreeSet::new());
        let mut changes = vec![deleted("a"), deleted("b"), deleted("c")];
        let mut snapshot = snap(&["d"]);
        let resumed = PassFacts { old_len: 4, whole: false, held_before: 0 };
        let r = check_deletes(&source, &mut changes, &mut snapshot, resumed, 1, &no_deadline()).unwrap();
        assert_eq!(r, DeleteCheck { confirmed: 1, refuted: 0, held: 0 });
        assert_eq!(changes.len(), 3);
    }

    #[test]
    fn a_refuted_sample_holds_the_unchecked_rest() {
        let source = Exists(["a".to_string()].into());
        let mut changes = vec![deleted("a"), deleted("b"), deleted("c")];
        let mut snapshot = snap(&["d", "e", "f", "g", "h", "i", "j"]);
        let r = check_deletes(&source, &mut changes, &mut snapshot, facts(10, 0), 1, &no_deadline()).unwrap();
        assert_eq!(r, DeleteCheck { confirmed: 0, refuted: 1, held: 2 });
        assert!(changes.is_empty());
        assert_eq!(snapshot.len(), 10);
    }
}
