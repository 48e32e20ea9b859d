//! The version strings kept for a source that asks for them (`Lister::keeps_versions`): the
//! previous ones go to `Lister::list`, the listed ones into the next state. No I/O.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::source::{Entry, Lister, Previous};
use crate::state::{version_hash, Snapshot};

/// One pass's versions: what the state kept, and what the listing showed.
pub(super) struct Memo<'a> {
    previous: Option<&'a BTreeMap<String, String>>,
    /// `None` when the source keeps no versions: nothing is recorded.
    seen: Option<Mutex<BTreeMap<String, String>>>,
}

impl<'a> Memo<'a> {
    /// The memo of a pass of `lister` over a state that kept `previous`.
    pub(super) fn new(lister: &dyn Lister, previous: Option<&'a BTreeMap<String, String>>) -> Memo<'a> {
        let keeps = lister.keeps_versions();
        Memo { previous: previous.filter(|_| keeps), seen: keeps.then(Mutex::default) }
    }

    /// A memo that hands nothing and keeps nothing.
    #[cfg(test)]
    pub(super) fn none() -> Memo<'static> {
        Memo { previous: None, seen: None }
    }

    /// The lookup `Lister::list` gets.
    pub(super) fn previous(&self) -> Previous<'a> {
        self.previous.map(Previous::new).unwrap_or_default()
    }

    /// Notes the versions of a listed page.
    pub(super) fn record(&self, page: &[Entry]) {
        if let Some(seen) = &self.seen {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.extend(page.iter().map(|e| (e.key.clone(), e.version.clone())));
        }
    }

    /// The versions to keep with `snapshot` (the pass's, deletes checked): the listed version
    /// of each key, else the previous one, and only where its hash is the snapshot's, so
    /// `Previous` never hands a source a version the snapshot does not hold (a listing cut
    /// before a page was diffed, a delete refuted).
    pub(super) fn finish(self, snapshot: &Snapshot) -> Option<BTreeMap<String, String>> {
        let seen = self.seen?.into_inner().unwrap_or_else(|e| e.into_inner());
        let previous = self.previous;
        let kept = snapshot.iter().filter_map(|(key, hash)| {
            let holds = |v: &&String| version_hash(v) == hash;
            let version = seen.get(&key).filter(holds).or_else(|| previous?.get(&key).filter(holds))?.clone();
            Some((key, version))
        });
        Some(kept.collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;
    use crate::source::{BlobStore, Flow, ListRange, SourceError};
    use crate::state::SnapshotWriter;

    struct Keeps(bool);

    impl Lister for Keeps {
        fn source_uri(&self) -> String {
            "test:".to_string()
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
        fn keeps_versions(&self) -> bool {
            self.0
        }
        fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
            None
        }
    }

    fn entry(key: &str, version: &str) -> Entry {
        Entry { key: key.to_string(), version: version.to_string(), attrs: Map::new() }
    }

    fn snapshot(entries: &[(&str, &str)]) -> Snapshot {
        let mut w = SnapshotWriter::new();
        for (k, v) in entries {
            w.push(k, version_hash(v)).unwrap();
        }
        w.finish()
    }

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_lookup_hands_back_what_the_state_kept() {
        let kept = map(&[("a", "\"1\""), ("b", "\"2\"")]);
        let memo = Memo::new(&Keeps(true), Some(&kept));
        assert_eq!(memo.previous().get("a"), Some("\"1\""));
        assert_eq!(memo.previous().get("c"), None);
        // A source that keeps no versions gets none, even from a state that has them.
        assert_eq!(Memo::new(&Keeps(false), Some(&kept)).previous().get("a"), None);
        assert_eq!(Previous::default().get("a"), None);
    }

    #[test]
    fn kept_versions_follow_the_snapshot() {
        let kept = map(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        let memo = Memo::new(&Keeps(true), Some(&kept));
        // Listed: a changed, e new; b not listed (a cut listing keeps it); c deleted; d listed
        // but not in the snapshot's version (a page the differ never took).
        memo.record(&[entry("a", "1b"), entry("d", "4b"), entry("e", "5")]);
        let next = memo.finish(&snapshot(&[("a", "1b"), ("b", "2"), ("d", "4"), ("e", "5")]));
        assert_eq!(next, Some(map(&[("a", "1b"), ("b", "2"), ("d", "4"), ("e", "5")])));
    }

    #[test]
    fn a_source_that_keeps_no_versions_stores_none() {
        let memo = Memo::new(&Keeps(false), None);
        memo.record(&[entry("a", "1")]);
        assert_eq!(memo.finish(&snapshot(&[("a", "1")])), None);
        assert_eq!(Memo::none().finish(&snapshot(&[("a", "1")])), None);
    }
}
