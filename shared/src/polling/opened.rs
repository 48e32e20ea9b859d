//! The source a feed names, opened with its parameters as a lister or a log reader, and the
//! store its state lives in.

use super::extensions::Extensions;
use super::CONFIG_SOURCE;
use crate::change::{Change, ChangeKind, Entry, Record};
use crate::params::{ParamError, Params};
use crate::runtime::ActionError;
use crate::source::{AnySource, BlobStore, Lister, LogReader, SourceError};

/// The state store: the source's own, else the one the user names (`stateBucket`…), so a
/// source without a store of its own still works.
pub(super) fn state_blobs(
    opened: &Opened,
    params: &Params,
    ext: &Extensions,
) -> Result<Box<dyn BlobStore>, ParamError> {
    if let Some(blobs) = opened.blob_store() {
        return Ok(blobs);
    }
    ext.named_store(params)?.ok_or_else(|| {
        ParamError::missing(
            "stateBucket",
            "a bucket for the feed state (this source keeps none of its own), reached with endpoint, \
             accessKeyId and secretAccessKey as for the S3 source",
        )
    })
}

/// The source called `name` among `sources`; the error lists the known names.
pub(super) fn find_source<'a>(sources: &[AnySource<'a>], name: &str) -> Result<AnySource<'a>, ParamError> {
    sources.iter().copied().find(|s| s.name() == name).ok_or_else(|| {
        let known: Vec<&str> = sources.iter().map(|s| s.name()).collect();
        ParamError::invalid(CONFIG_SOURCE, &format!("one of: {}", known.join(", ")), &name.into())
    })
}

/// A source's error as the action's.
pub(super) fn source_error(e: SourceError) -> ActionError {
    ActionError::new(e.to_string())
}

/// A source opened with a feed's parameters: a lister or a log reader.
pub(super) enum Opened {
    /// A snapshot source's lister.
    Snapshot(Box<dyn Lister>),
    /// A log source's reader.
    Log(Box<dyn LogReader>),
}

impl Opened {
    /// Validates the parameters and opens `source`.
    pub(super) fn open(source: AnySource<'_>, params: &Params) -> Result<Opened, ParamError> {
        Ok(match source {
            AnySource::Snapshot(s) => Opened::Snapshot(s.open(params)?),
            AnySource::Log(s) => Opened::Log(s.open(params)?),
        })
    }

    /// The CloudEvents `source` of the feed's events.
    pub(super) fn source_uri(&self) -> String {
        match self {
            Opened::Snapshot(l) => l.source_uri(),
            Opened::Log(r) => r.source_uri(),
        }
    }

    /// One cheap request that proves the config works.
    pub(super) fn probe(&self) -> Result<(), SourceError> {
        match self {
            Opened::Snapshot(l) => l.probe(),
            Opened::Log(r) => r.probe(),
        }
    }

    /// What CREATE and READ show as `notices`.
    pub(super) fn notices(&self) -> Vec<String> {
        match self {
            Opened::Snapshot(l) => l.notices(),
            Opened::Log(r) => r.notices(),
        }
    }

    /// The source's own blob store, if it offers one.
    pub(super) fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        match self {
            Opened::Snapshot(l) => l.blob_store(),
            Opened::Log(r) => r.blob_store(),
        }
    }

    /// True when the source has a legacy payload shape (`format=legacy`).
    pub(super) fn has_legacy_format(&self) -> bool {
        match self {
            Opened::Snapshot(l) => {
                let entry = Entry { key: "k".to_string(), version: "v".to_string(), attrs: Default::default() };
                let change =
                    Change { kind: ChangeKind::Created, key: "k".to_string(), entry: Some(entry), old_version: None };
                l.legacy_event(&change).is_some()
            }
            Opened::Log(r) => {
                let record = Record {
                    id: "k@1".to_string(),
                    key: "k".to_string(),
                    kind: ChangeKind::Created,
                    attrs: Default::default(),
                    time: None,
                };
                r.legacy_event(&record).is_some()
            }
        }
    }
}
