//! The guide's snapshot source (docs/writing-a-source.md quotes everything below).

use std::fs;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use owfeed::params::{ParamError, Params};
use owfeed::source::{BlobStore, Entry, Flow, ListRange, Lister, ParamSpec, Previous, Source, SourceError};
use serde_json::{json, Map, Value};

/// The `dir` source: the files of one directory (what a mounted volume holds).
pub struct DirSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec { name: "directory", secret: false, required: true, doc: "the directory to watch" },
    ParamSpec { name: "stateBucket", secret: false, required: true, doc: "S3 bucket for the state (see Sources)" },
];

impl Source for DirSource {
    fn name(&self) -> &'static str {
        "dir"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn Lister>, ParamError> {
        let dir = params.required_str("directory")?;
        if !dir.starts_with('/') {
            return Err(ParamError::invalid("directory", "an absolute path", &dir.into()));
        }
        Ok(Box::new(DirLister { dir: PathBuf::from(dir) }))
    }
}

struct DirLister {
    dir: PathBuf,
}

impl DirLister {
    fn entries(&self) -> Result<Vec<Entry>, SourceError> {
        let read = fs::read_dir(&self.dir).map_err(|e| SourceError::NotFound(format!("directory: {e}")))?;
        let mut entries = Vec::new();
        for file in read {
            let file = file.map_err(|e| SourceError::Transient(format!("directory: {e}")))?;
            let meta = file.metadata().map_err(|e| SourceError::Transient(format!("directory: {e}")))?;
            let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
            // Changes whenever the content does: the modification time and the size.
            let version = format!("{}/{}", modified.map_or(0, |d| d.as_nanos()), meta.len());
            let mut attrs = Map::new();
            attrs.insert("size".into(), json!(meta.len()));
            entries.push(Entry { key: file.file_name().to_string_lossy().into_owned(), version, attrs });
        }
        // Ascending by key bytes: the core then merges in one streaming pass.
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }
}

impl Lister for DirLister {
    fn source_uri(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn event_type_prefix(&self) -> &'static str {
        "org.example.dir.file"
    }

    fn data_context(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("directory".into(), json!(self.dir.display().to_string()));
        m
    }

    fn probe(&self) -> Result<(), SourceError> {
        self.entries().map(|_| ())
    }

    fn list(
        &self,
        range: &ListRange,
        _previous: Previous<'_>, // the versions the core kept: only for `keeps_versions` sources
        page: &mut dyn FnMut(Vec<Entry>) -> Flow,
    ) -> Result<bool, SourceError> {
        let in_range = |k: &str| {
            range.start_after.as_deref().is_none_or(|s| k > s) && range.end_before.as_deref().is_none_or(|e| k < e)
        };
        let entries: Vec<Entry> = self.entries()?.into_iter().filter(|e| in_range(&e.key)).collect();
        for chunk in entries.chunks(1000) {
            if page(chunk.to_vec()) == Flow::Stop {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        None // the state goes to the store the user names (stateBucket)
    }
}
