//! Source plugins: one file each, implementing `source::Source` (a snapshot to diff) or
//! `source::LogSource` (records after a cursor), and the registry.
//!
//! A plugin validates its parameters and lists entries or reads records; it never touches
//! triggers, rules, alarms or state (see `source.rs` for the contract).
//!
//! Adding a source is one file here plus one line in `REGISTRY` (`AnySource::Snapshot(&…)` or
//! `AnySource::Log(&…)`): the feed action (`changes`, which picks the source with
//! `-p source NAME`) and the `poll` action serve every registered source, and
//! tests/suite/registry.rs fails until README and manifest.yaml name it.

pub mod couchdb;
pub mod http;
pub mod kafka;
/// The S3 lister lives in the S3 feature module (`crate::s3`); this is its registry path.
pub use crate::s3::source as s3;

use crate::source::AnySource;

/// Every source the feed and poll actions serve, one line each, by name. The first one is
/// what a feed without `-p source` gets (S3, as before the registry existed).
pub const REGISTRY: &[AnySource<'static>] = &[
    AnySource::Snapshot(&s3::S3Source),
    AnySource::Log(&couchdb::CouchDbSource),
    AnySource::Snapshot(&http::HttpSource),
    AnySource::Log(&kafka::KafkaSource),
];

/// The registered source called `name`.
pub fn find(name: &str) -> Option<AnySource<'static>> {
    REGISTRY.iter().copied().find(|s| s.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for source in REGISTRY {
            assert_eq!(find(source.name()).map(|s| s.name()), Some(source.name()));
            assert_eq!(REGISTRY.iter().filter(|s| s.name() == source.name()).count(), 1, "{}", source.name());
        }
        assert!(find("no-such-source").is_none());
    }

    #[test]
    fn no_source_reads_the_parameter_that_picks_it() {
        for source in REGISTRY {
            assert!(source.params().iter().all(|p| p.name != "source"), "{}", source.name());
        }
    }

    #[test]
    fn no_log_source_reads_a_parameter_of_the_core() {
        // The core owns the cursor: `since`, `mode` and `onCursorRejected` are its parameters,
        // so a source that read them too would disagree with the state.
        for source in REGISTRY.iter().filter(|s| s.is_log()) {
            for p in source.params() {
                assert!(!crate::polling::LOG_PARAMS.contains(&p.name), "{}: {}", source.name(), p.name);
            }
        }
    }
}
