//! What the polling pattern is given by the registry the binary passes, instead of naming
//! features: the sources, the store a user names for a source that keeps no state of its own
//! ([`NamedStore`]: S3's `stateBucket`), and the change hooks ([`super::change_hook`]).

use super::change_hook::ChangeHooks;
use crate::params::{ParamError, Params};
use crate::source::{AnySource, BlobStore};

/// The polling pattern's extension points, filled by `crate::registry::POLLING`.
#[derive(Clone, Copy)]
pub struct Extensions<'a> {
    /// The sources the feed and poll actions serve (`crate::sources::REGISTRY`).
    pub sources: &'a [AnySource<'a>],
    /// Where a source without a store of its own keeps the state, when the user names one.
    pub named_store: Option<&'a dyn NamedStore>,
    /// The features with a say over a poll's changes before its commit.
    pub change_hooks: &'a [&'a dyn ChangeHooks],
}

impl<'a> Extensions<'a> {
    /// Just these sources, with no named store and no change hooks.
    pub const fn sources(sources: &'a [AnySource<'a>]) -> Extensions<'a> {
        Extensions { sources, named_store: None, change_hooks: &[] }
    }

    /// The store the user names in `params`, when a named store is registered and named.
    pub fn named_store(&self, params: &Params) -> Result<Option<Box<dyn BlobStore>>, ParamError> {
        match self.named_store {
            Some(named) => named.open(params),
            None => Ok(None),
        }
    }

    /// The secret parameters of the named store: READ redacts them whatever the source.
    pub fn named_store_secrets(&self) -> Vec<&'static str> {
        self.named_store.map(|n| n.secret_params()).unwrap_or_default()
    }
}

/// A store a user names by parameters for a source that keeps no state of its own.
pub trait NamedStore: Sync {
    /// The store `params` name; `Ok(None)` when they name none.
    fn open(&self, params: &Params) -> Result<Option<Box<dyn BlobStore>>, ParamError>;
    /// Its secret parameters.
    fn secret_params(&self) -> Vec<&'static str>;
}

impl<'a> From<&'a [AnySource<'a>]> for Extensions<'a> {
    fn from(sources: &'a [AnySource<'a>]) -> Extensions<'a> {
        Extensions::sources(sources)
    }
}

impl<'a, const N: usize> From<&'a [AnySource<'a>; N]> for Extensions<'a> {
    fn from(sources: &'a [AnySource<'a>; N]) -> Extensions<'a> {
        Extensions::sources(sources)
    }
}
