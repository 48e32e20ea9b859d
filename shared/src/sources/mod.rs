//! Source plugins: one file each, all implementing `source::Source`, and the registry.
//!
//! A plugin validates its parameters and lists entries; it never touches triggers, rules,
//! alarms or state (see `source.rs` for the contract).
//!
//! Adding a source is one file here plus one line in `REGISTRY`: the feed action (`changes`,
//! which picks the source with `-p source NAME`) and the `poll` action serve every registered
//! source, and tests/suite/shipping.rs fails until README documents it.

pub mod couchdb;
pub mod s3;

use crate::params::{ParamError, Params};
use crate::source::{BlobStore, Source};

/// Every source the feed and poll actions serve, by `Source::name`. The first one is what a
/// feed without `-p source` gets (S3, as before the registry existed).
pub const REGISTRY: &[&dyn Source] = &[&s3::S3Source];

/// The store a user names (`stateBucket`, with the S3 feed's endpoint and credential
/// parameters) for a source that keeps no state of its own; `Ok(None)` when none is named.
pub fn named_store(params: &Params) -> Result<Option<Box<dyn BlobStore>>, ParamError> {
    s3::named_state_store(params)
}

/// The secret parameters of a named store: READ redacts them whatever the source.
pub fn named_store_secrets() -> impl Iterator<Item = &'static str> {
    s3::S3Source.params().iter().filter(|p| p.secret).map(|p| p.name)
}

/// The registered source called `name`.
pub fn find(name: &str) -> Option<&'static dyn Source> {
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
}
