//! A test-only polling source: entries come from a JSON file, blobs live in a directory.
//!
//! It lets the lifecycle and polling tests run the real core through the emulator without
//! an S3 server: `listing` names a JSON file `[{"key": "a", "version": "1"}, …]` (listed in
//! file order, in pages of `pageSize`), `stateDir` a directory for the state blobs (without it the
//! source offers no store, and the core keeps the state in the one the user names). `token`
//! is a secret parameter (never shown by READ) and `failProbe` makes CREATE's probe fail. A
//! file `{listing}.delay` holding a number makes every listing take that many milliseconds
//! longer (a slow store), without slowing down the CREATEs made before it was written.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use owfeed::params::{ParamError, Params};
use owfeed::source::{
    Blob, BlobStore, Entry, Flow, ListRange, Lister, ParamSpec, Precondition, Previous, Source, SourceError, StoreError,
};

/// The `listing` test source.
pub struct ListingSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec { name: "listing", secret: false, required: true, doc: "path of the JSON listing file" },
    ParamSpec { name: "stateDir", secret: false, required: false, doc: "directory for state blobs" },
    ParamSpec { name: "token", secret: true, required: false, doc: "a secret, to test redaction" },
    ParamSpec { name: "pageSize", secret: false, required: false, doc: "entries per page (default 2)" },
    ParamSpec { name: "failProbe", secret: false, required: false, doc: "make the probe fail" },
];

impl Source for ListingSource {
    fn name(&self) -> &'static str {
        "listing"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn Lister>, ParamError> {
        let listing = PathBuf::from(params.required_str("listing")?);
        let state_dir = params.str("stateDir")?.map(PathBuf::from);
        let _ = params.secret("token")?;
        let page_size = params.u64_in("pageSize", 1, 1000)?.unwrap_or(2) as usize;
        let fail_probe = params.bool("failProbe")?.unwrap_or(false);
        Ok(Box::new(ListingLister { listing, state_dir, page_size, fail_probe }))
    }
}

struct ListingLister {
    listing: PathBuf,
    state_dir: Option<PathBuf>,
    page_size: usize,
    fail_probe: bool,
}

impl ListingLister {
    fn read(&self) -> Result<Vec<Entry>, SourceError> {
        let text = fs::read_to_string(&self.listing)
            .map_err(|e| SourceError::Transient(format!("listing {}: {e}", self.listing.display())))?;
        let items: Vec<Value> =
            serde_json::from_str(&text).map_err(|e| SourceError::Transient(format!("listing: invalid JSON: {e}")))?;
        Ok(items
            .into_iter()
            .map(|i| Entry {
                key: i["key"].as_str().unwrap_or_default().to_string(),
                version: i["version"].as_str().unwrap_or_default().to_string(),
                attrs: Map::new(),
            })
            .collect())
    }
}

impl Lister for ListingLister {
    fn source_uri(&self) -> String {
        format!("file://{}", self.listing.display())
    }

    fn event_type_prefix(&self) -> &'static str {
        "test.listing.entry"
    }

    fn data_context(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("listing".into(), json!(self.listing.display().to_string()));
        m
    }

    fn probe(&self) -> Result<(), SourceError> {
        if self.fail_probe {
            return Err(SourceError::Unauthorized("listing: probe refused (failProbe)".to_string()));
        }
        self.read().map(|_| ())
    }

    fn list(
        &self,
        range: &ListRange,
        _previous: Previous<'_>,
        page: &mut dyn FnMut(Vec<Entry>) -> Flow,
    ) -> Result<bool, SourceError> {
        let delay = fs::read_to_string(format!("{}.delay", self.listing.display()));
        if let Some(ms) = delay.ok().and_then(|d| d.trim().parse::<u64>().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let entries: Vec<Entry> = self
            .read()?
            .into_iter()
            .filter(|e| range.start_after.as_deref().is_none_or(|s| e.key.as_str() > s))
            .collect();
        for chunk in entries.chunks(self.page_size) {
            if page(chunk.to_vec()) == Flow::Stop {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        let dir = self.state_dir.clone()?;
        Some(Box::new(DirStore { dir }))
    }
}

/// Blobs as files; the version tag is a hash of the content. Conditional writes hold a
/// lock file so two processes cannot interleave a check and a write.
pub struct DirStore {
    /// The directory holding the blobs.
    pub dir: PathBuf,
}

impl DirStore {
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace('/', "%2F"))
    }

    fn lock(&self, key: &str) -> Result<LockFile, StoreError> {
        let path = self.path(&format!("{key}.lck"));
        for _ in 0..2000 {
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(LockFile(path)),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        Err(StoreError::Failed(SourceError::Transient(format!("lock {} held too long", path.display()))))
    }
}

struct LockFile(PathBuf);

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The version tag of a blob's bytes (FNV-1a, hex).
pub fn etag_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Failed(SourceError::Transient(format!("state dir: {e}")))
}

impl BlobStore for DirStore {
    fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
        match fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(Blob { etag: etag_of(&bytes), bytes, modified: None })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8], condition: &Precondition) -> Result<String, StoreError> {
        fs::create_dir_all(&self.dir).map_err(io_error)?;
        let _lock = self.lock(key)?;
        let current = self.get(key)?;
        let ok = match (condition, &current) {
            (Precondition::None, _) => true,
            (Precondition::IfAbsent, None) => true,
            (Precondition::IfAbsent, Some(_)) => false,
            (Precondition::IfMatch(tag) | Precondition::IfMatchUnquoted(tag), Some(blob)) => &blob.etag == tag,
            (Precondition::IfMatch(_) | Precondition::IfMatchUnquoted(_), None) => false,
        };
        if !ok {
            return Err(StoreError::Conflict);
        }
        let tmp = self.path(&format!("{key}.tmp"));
        let mut f = fs::File::create(&tmp).map_err(io_error)?;
        f.write_all(bytes).map_err(io_error)?;
        fs::rename(&tmp, self.path(key)).map_err(io_error)?;
        Ok(etag_of(bytes))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    fn describe(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }

    fn reserved_prefix(&self) -> Option<String> {
        None
    }
}
