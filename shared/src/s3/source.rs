//! The S3 source: lists a bucket (ListObjectsV2, every page) and offers an object in the same
//! service as the state store.
//!
//! Version = the ETag, or `LastModified/Size` where a server omits ETags. What changed, what
//! fires and when is the core's business; this file only speaks S3.

use serde_json::{json, Map, Value};

use std::sync::Arc;

use owfeed_s3::{Condition, ErrorKind, ListRequest, S3Client, S3Config, S3Error, SecretString};

use crate::events::{Change, ChangeKind};
use crate::params::{ParamError, Params};
use crate::polling::extensions::NamedStore;
use crate::source::{
    Blob, BlobStore, Entry, Flow, ListRange, Lister, ParamSpec, Precondition, Previous, Probe, Source, SourceError,
    StoreError,
};

/// Where the state object goes inside the state bucket unless `statePrefix` says otherwise.
pub const DEFAULT_STATE_PREFIX: &str = ".owfeed/";
/// The default signing region (what MinIO and most S3-compatible stores expect).
pub const DEFAULT_REGION: &str = "us-east-1";

/// The `s3` source plugin.
pub struct S3Source;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "endpoint",
        secret: false,
        required: true,
        doc: "S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com",
    },
    ParamSpec { name: "bucket", secret: false, required: true, doc: "the bucket to watch" },
    ParamSpec { name: "accessKeyId", secret: false, required: true, doc: "access key id" },
    ParamSpec { name: "secretAccessKey", secret: true, required: true, doc: "secret access key" },
    ParamSpec { name: "sessionToken", secret: true, required: false, doc: "session token for temporary credentials" },
    ParamSpec { name: "region", secret: false, required: false, doc: "signing region (default us-east-1; R2: auto)" },
    ParamSpec {
        name: "pathStyle",
        secret: false,
        required: false,
        doc: "path-style addressing (default true, false for *.amazonaws.com)",
    },
    ParamSpec {
        name: "prefix",
        secret: false,
        required: false,
        doc: "only keys starting with this (listed server-side)",
    },
    ParamSpec {
        name: "stateBucket",
        secret: false,
        required: false,
        doc: "bucket for the feed state (default: the watched bucket)",
    },
    ParamSpec {
        name: "statePrefix",
        secret: false,
        required: false,
        doc: "key prefix of the feed state (default .owfeed/)",
    },
    ParamSpec {
        name: "pageSize",
        secret: false,
        required: false,
        doc: "keys per LIST request, 1 to 1000 (default 1000)",
    },
    ParamSpec {
        name: "caCertificate",
        secret: false,
        required: false,
        doc: "PEM certificates of the CA(s) to trust for the endpoint, instead of the public roots",
    },
    ParamSpec {
        name: "insecureSkipTlsVerify",
        secret: false,
        required: false,
        doc: "do not verify the endpoint's TLS certificate (default false; shown as a warning in READ)",
    },
    ParamSpec {
        name: "urlEncoding",
        secret: false,
        required: false,
        doc: "ask for encoding-type=url listings (default true)",
    },
];

impl Source for S3Source {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn Lister>, ParamError> {
        Ok(Box::new(open_s3(params)?))
    }
}

/// An object's attributes as every S3 event carries them in `data` (and the legacy shape in
/// `file`): the one S3 event shape, filled by the lister from a listing and by `push` from a
/// notification record. An attribute the producer does not give is absent, never guessed:
/// notifications carry no storage class, and some servers list none (or no ETag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectAttrs<'a> {
    /// The ETag without quotes.
    pub etag: Option<&'a str>,
    /// Bytes.
    pub size: Option<u64>,
    /// RFC 3339.
    pub last_modified: Option<&'a str>,
    /// `StorageClass` as listed.
    pub storage_class: Option<&'a str>,
}

impl ObjectAttrs<'_> {
    /// `etag`, `size`, `lastModified`, `storageClass`: the `Entry` attributes events are built from.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut attrs = Map::new();
        if let Some(etag) = self.etag {
            attrs.insert("etag".into(), json!(etag));
        }
        if let Some(size) = self.size {
            attrs.insert("size".into(), json!(size));
        }
        if let Some(lm) = self.last_modified {
            attrs.insert("lastModified".into(), json!(lm));
        }
        if let Some(sc) = self.storage_class {
            attrs.insert("storageClass".into(), json!(sc));
        }
        attrs
    }
}

/// The state store of a source that keeps none of its own: objects under `statePrefix` in the
/// bucket `stateBucket`, reached with the S3 feed's `endpoint`, credential and TLS parameters;
/// `Ok(None)` when no `stateBucket` is given.
pub fn named_state_store(params: &Params) -> Result<Option<Box<dyn BlobStore>>, ParamError> {
    let Some(bucket) = bucket_name(params, "stateBucket")? else { return Ok(None) };
    let mut params = params.clone();
    params.insert("bucket", json!(bucket));
    let s3 = open_s3(&params)?;
    Ok(Some(Box::new(S3BlobStore {
        client: s3.client,
        bucket: s3.state_bucket,
        prefix: s3.state_prefix,
        shared_with_source: false,
    })))
}

/// The S3 connection every part of the S3 feature reads the same way (the lister, the state
/// store, the notification registrar and its topic calls): `accessKeyId`, `secretAccessKey`,
/// `sessionToken`, `region`, `pathStyle`, `caCertificate`, `insecureSkipTlsVerify`, and an
/// endpoint read by the caller (`endpoint_param` names it in errors). One parse, one set of rules.
pub struct S3Params;

impl S3Params {
    /// The client configuration for `endpoint`; errors name the parameter.
    pub fn config(params: &Params, endpoint: &str, endpoint_param: &str) -> Result<S3Config, ParamError> {
        let access_key_id = params.required_str("accessKeyId")?;
        if access_key_id.trim().is_empty() || access_key_id.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(ParamError::invalid(
                "accessKeyId",
                "an access key id without spaces or '/'",
                &json!(access_key_id),
            ));
        }
        let secret = params.required_secret("secretAccessKey")?;
        if secret.is_empty() {
            return Err(ParamError::invalid_secret("secretAccessKey", "a non-empty secret access key"));
        }
        let region = params.str("region")?.unwrap_or_else(|| DEFAULT_REGION.to_string());
        // A '/' would end the signing scope's region early: refused, not signed wrongly.
        if region.trim().is_empty() || region.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(ParamError::invalid("region", "a region name such as us-east-1", &json!(region)));
        }
        if endpoint
            .split_once("://")
            .is_some_and(|(_, rest)| rest.split(['/', '?', '#']).next().is_some_and(|a| a.contains('@')))
        {
            // Never echoed: the user-info is a credential.
            return Err(ParamError::invalid_secret(
                endpoint_param,
                "an http(s) URL without user-info (give credentials as accessKeyId/secretAccessKey)",
            ));
        }
        let ca_certificate = params.str("caCertificate")?.filter(|c| !c.trim().is_empty());
        if let Some(pem) = &ca_certificate {
            owfeed_s3::tls_config(Some(pem), false, "caCertificate").map_err(|e| ParamError {
                name: "caCertificate".to_string(),
                expected: format!("PEM certificates ({e})"),
                got: None,
            })?;
        }
        let mut config = S3Config::new(endpoint, &region, &access_key_id, SecretString::new(secret.expose()));
        config.session_token = params.secret("sessionToken")?.map(|t| SecretString::new(t.expose()));
        config.path_style = params.bool("pathStyle")?.unwrap_or(!endpoint.contains(".amazonaws.com"));
        config.ca_certificates_pem = ca_certificate;
        config.insecure_skip_tls_verify = params.bool("insecureSkipTlsVerify")?.unwrap_or(false);
        Ok(config)
    }

    /// The client for `config`; an error names the parameter the client's message is about,
    /// else `endpoint_param`.
    pub fn client(config: S3Config, endpoint_param: &str) -> Result<S3Client, ParamError> {
        let endpoint = config.endpoint.clone();
        S3Client::new(config).map_err(|e| {
            // The crate's messages start with the parameter they are about.
            let name = ["region", "accessKeyId", "secretAccessKey", "caCertificate"]
                .into_iter()
                .find(|p| e.message.starts_with(&format!("{p}:")))
                .unwrap_or(endpoint_param);
            let got = (name == endpoint_param).then(|| Value::String(endpoint).to_string());
            ParamError { name: name.to_string(), expected: format!("an http(s) URL ({})", e.message), got }
        })
    }
}

/// Where a feed's state lives in S3 (the state, the lease and the push markers), read in this
/// one place: the bucket `stateBucket` (default: the watched bucket) under `statePrefix`
/// (default [`DEFAULT_STATE_PREFIX`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateLocation {
    /// The bucket that holds the state.
    pub bucket: String,
    /// The key prefix of every state object.
    pub prefix: String,
    /// True when that bucket is the watched one (its notifications then include state writes).
    pub in_watched_bucket: bool,
}

impl StateLocation {
    /// Reads `stateBucket` and `statePrefix` for the watched `bucket`; errors name the parameter.
    pub fn from_params(params: &Params, bucket: &str) -> Result<StateLocation, ParamError> {
        let state_bucket = bucket_name(params, "stateBucket")?.unwrap_or_else(|| bucket.to_string());
        let prefix = params.str("statePrefix")?.unwrap_or_else(|| DEFAULT_STATE_PREFIX.to_string());
        let in_watched_bucket = state_bucket == bucket;
        Ok(StateLocation { bucket: state_bucket, prefix, in_watched_bucket })
    }

    /// Keys of the watched bucket that are the feed's own, which a push must never fire
    /// (their writes are notified too); `None` when the state is in another bucket.
    pub fn reserved_prefix(&self) -> Option<String> {
        Some(self.prefix.clone()).filter(|p| self.in_watched_bucket && !p.is_empty())
    }
}

/// S3 as the store a user names for a source that keeps no state of its own (`stateBucket`,
/// with this source's endpoint and credential parameters): the polling pattern's `NamedStore`.
pub struct NamedS3Store;

impl NamedStore for NamedS3Store {
    fn open(&self, params: &Params) -> Result<Option<Box<dyn BlobStore>>, ParamError> {
        named_state_store(params)
    }

    fn secret_params(&self) -> Vec<&'static str> {
        PARAMS.iter().filter(|p| p.secret).map(|p| p.name).collect()
    }
}

fn open_s3(params: &Params) -> Result<S3Lister, ParamError> {
    let endpoint = params.required_str("endpoint")?;
    let bucket = bucket_name(params, "bucket")?.ok_or_else(|| ParamError::missing("bucket", "a bucket name"))?;
    let prefix = params.str("prefix")?.unwrap_or_default();
    let url_encoding = params.bool("urlEncoding")?.unwrap_or(true);
    let page_size = params.u64_in("pageSize", 1, 1000)?.map(|n| n as u32);
    let state = StateLocation::from_params(params, &bucket)?;
    if state.prefix.is_empty() && state.in_watched_bucket {
        return Err(ParamError::invalid(
            "statePrefix",
            "a non-empty prefix when the state is kept in the watched bucket",
            &"".into(),
        ));
    }
    let mut config = S3Params::config(params, &endpoint, "endpoint")?;
    config.list_url_encoding = url_encoding;
    let tls = match (config.insecure_skip_tls_verify, &config.ca_certificates_pem) {
        (true, _) => TlsMode::Insecure,
        (false, Some(pem)) => TlsMode::PrivateCa(pem.matches("-----BEGIN CERTIFICATE-----").count()),
        (false, None) => TlsMode::PublicRoots,
    };
    let client = S3Params::client(config, "endpoint")?;
    Ok(S3Lister {
        client: Arc::new(client),
        endpoint,
        bucket,
        prefix,
        state_bucket: state.bucket,
        state_prefix: state.prefix,
        page_size,
        tls,
    })
}

fn bucket_name(params: &Params, name: &str) -> Result<Option<String>, ParamError> {
    let Some(b) = params.str(name)? else { return Ok(None) };
    let ok = (1..=255).contains(&b.len())
        && !b.contains('/')
        && b.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(Some(b))
    } else {
        Err(ParamError::invalid(name, "a bucket name (letters, digits, '.', '-', '_'; no '/')", &b.into()))
    }
}

/// How the endpoint's certificate is checked.
enum TlsMode {
    PublicRoots,
    /// Trusts the user's CA bundle (this many certificates) instead.
    PrivateCa(usize),
    Insecure,
}

struct S3Lister {
    client: Arc<S3Client>,
    endpoint: String,
    bucket: String,
    prefix: String,
    state_bucket: String,
    state_prefix: String,
    page_size: Option<u32>,
    tls: TlsMode,
}

/// What an S3 failure means to the S3 feature, whichever part met it: the one reading of
/// `owfeed_s3::ErrorKind`, which the lister (`SourceError`), the state store (`StoreError`)
/// and the registrar (`RegistrationError`) each turn into their own error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Fault {
    /// The credentials are refused or not allowed.
    Unauthorized,
    /// The bucket does not exist.
    NotFound,
    /// The configuration is wrong for this server (region, request, clock, a feature it lacks).
    Config,
    /// A conditional write lost (412).
    Conflict,
    /// Throttled: retry later.
    Throttled,
    /// No answer.
    Transport,
    /// The server failed or answered what we cannot use.
    Server,
    /// Anything else the server refused.
    Other,
}

impl S3Fault {
    /// The fault of an S3 error.
    pub fn of(e: &S3Error) -> S3Fault {
        match e.kind {
            ErrorKind::AccessDenied | ErrorKind::InvalidAccessKeyId | ErrorKind::SignatureDoesNotMatch => {
                S3Fault::Unauthorized
            }
            ErrorKind::NoSuchBucket => S3Fault::NotFound,
            ErrorKind::WrongRegion | ErrorKind::BadRequest | ErrorKind::ClockSkew | ErrorKind::NotImplemented => {
                S3Fault::Config
            }
            ErrorKind::PreconditionFailed => S3Fault::Conflict,
            ErrorKind::Throttled => S3Fault::Throttled,
            ErrorKind::Transport => S3Fault::Transport,
            ErrorKind::Server | ErrorKind::InvalidResponse | ErrorKind::TemporaryRedirect => S3Fault::Server,
            // `ErrorKind` is non-exhaustive: a kind added to the client is `Other` until read here.
            _ => S3Fault::Other,
        }
    }
}

fn source_error(e: S3Error) -> SourceError {
    let msg = e.to_string();
    match S3Fault::of(&e) {
        S3Fault::Unauthorized => SourceError::Unauthorized(msg),
        S3Fault::NotFound => SourceError::NotFound(msg),
        S3Fault::Config => SourceError::Config(msg),
        S3Fault::Conflict | S3Fault::Throttled | S3Fault::Transport | S3Fault::Server | S3Fault::Other => {
            SourceError::Transient(msg)
        }
    }
}

impl Lister for S3Lister {
    fn source_uri(&self) -> String {
        format!("{}/{}", self.endpoint.trim_end_matches('/'), self.bucket)
    }

    fn event_type_prefix(&self) -> &'static str {
        "org.openwhisk.feeds.s3.object"
    }

    fn data_context(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("bucket".into(), json!(self.bucket));
        m.insert("endpoint".into(), json!(self.endpoint));
        m
    }

    fn probe(&self) -> Result<(), SourceError> {
        let prefix = Some(self.prefix.clone()).filter(|p| !p.is_empty());
        let req = ListRequest { prefix, max_keys: Some(1), ..ListRequest::default() };
        self.client.list_objects_v2(&self.bucket, &req).map(|_| ()).map_err(source_error)
    }

    fn list(
        &self,
        range: &ListRange,
        _previous: Previous<'_>,
        page: &mut dyn FnMut(Vec<Entry>) -> Flow,
    ) -> Result<bool, SourceError> {
        let mut token: Option<String> = None;
        loop {
            let req = ListRequest {
                prefix: Some(self.prefix.clone()).filter(|p| !p.is_empty()),
                // S3 ignores start-after once a continuation token is given.
                start_after: if token.is_none() { range.start_after.clone() } else { None },
                continuation_token: token.clone(),
                max_keys: self.page_size,
                ..ListRequest::default()
            };
            let out = self.client.list_objects_v2(&self.bucket, &req).map_err(source_error)?;
            let mut reached_end = false;
            let mut entries = Vec::with_capacity(out.objects.len());
            for o in out.objects {
                if range.end_before.as_deref().is_some_and(|end| o.key.as_str() >= end) {
                    reached_end = true;
                    break;
                }
                let version = match &o.etag {
                    Some(etag) => etag.clone(),
                    None => format!("{}/{}", o.last_modified.clone().unwrap_or_default(), o.size),
                };
                let object = ObjectAttrs {
                    etag: o.etag.as_deref(),
                    size: Some(o.size),
                    last_modified: o.last_modified.as_deref(),
                    storage_class: o.storage_class.as_deref(),
                };
                entries.push(Entry { key: o.key, version, attrs: object.to_map() });
            }
            let flow = page(entries);
            if reached_end || !out.is_truncated {
                return Ok(true);
            }
            if flow == Flow::Stop {
                return Ok(false);
            }
            token = out.next_continuation_token;
        }
    }

    fn notices(&self) -> Vec<String> {
        let https = self.endpoint.to_ascii_lowercase().starts_with("https://");
        match (&self.tls, https) {
            (TlsMode::Insecure, true) => vec![format!(
                "insecureSkipTlsVerify: the certificate of {} is NOT verified; the connection is encrypted but anyone on the path can impersonate the store. Prefer -p caCertificate with the store's CA",
                self.endpoint
            )],
            (TlsMode::PrivateCa(n), true) => {
                vec![format!("caCertificate: {} is verified against the {n} certificate(s) given, not the public roots", self.endpoint)]
            }
            _ => Vec::new(),
        }
    }

    fn first_after(&self, after: Option<&str>) -> Result<Probe, SourceError> {
        let req = ListRequest {
            prefix: Some(self.prefix.clone()).filter(|p| !p.is_empty()),
            start_after: after.map(str::to_string),
            max_keys: Some(1),
            ..ListRequest::default()
        };
        let out = self.client.list_objects_v2(&self.bucket, &req).map_err(source_error)?;
        Ok(out.objects.into_iter().next().map_or(Probe::End, |o| Probe::Key(o.key)))
    }

    fn exists(&self, key: &str) -> Result<Option<bool>, SourceError> {
        self.client.head_object(&self.bucket, key).map(Some).map_err(source_error)
    }

    fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        Some(Box::new(S3BlobStore {
            client: self.client.clone(),
            bucket: self.state_bucket.clone(),
            prefix: self.state_prefix.clone(),
            shared_with_source: self.state_bucket == self.bucket,
        }))
    }

    fn legacy_event(&self, change: &Change) -> Option<Value> {
        Some(legacy_payload(&self.bucket, &self.endpoint, change))
    }
}

/// A change in the Node.js S3 feed's event shape (`format=legacy`); push mode builds its
/// legacy events here too, so both modes stay identical.
pub fn legacy_payload(bucket: &str, endpoint: &str, change: &Change) -> Value {
    // The shape of the Node.js S3 feed's events, so its users can switch.
    let status = match change.kind {
        ChangeKind::Created => "added",
        ChangeKind::Updated => "modified",
        ChangeKind::Deleted => "deleted",
    };
    let mut file = Map::new();
    file.insert("Key".into(), json!(change.key));
    if let Some(entry) = &change.entry {
        if let Some(etag) = entry.attrs.get("etag").and_then(Value::as_str) {
            file.insert("ETag".into(), json!(format!("\"{etag}\"")));
        }
        if let Some(size) = entry.attrs.get("size") {
            file.insert("Size".into(), size.clone());
        }
        if let Some(lm) = entry.attrs.get("lastModified") {
            file.insert("LastModified".into(), lm.clone());
        }
        if let Some(sc) = entry.attrs.get("storageClass") {
            file.insert("StorageClass".into(), sc.clone());
        }
    }
    json!({
        "file": file,
        "status": status,
        "bucket": bucket,
        "key": change.key,
        "endpoint": endpoint,
    })
}

/// Blobs as objects under a prefix of a bucket, written with S3 conditional requests.
struct S3BlobStore {
    client: Arc<S3Client>,
    bucket: String,
    prefix: String,
    shared_with_source: bool,
}

impl S3BlobStore {
    fn object_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

fn store_error(e: S3Error) -> StoreError {
    match (S3Fault::of(&e), e.kind) {
        (S3Fault::Conflict, _) => StoreError::Conflict,
        // A store without conditional writes answers 501: the dialect probe's cue.
        (_, ErrorKind::NotImplemented) => StoreError::Unsupported(e.to_string()),
        _ => StoreError::Failed(source_error(e)),
    }
}

impl BlobStore for S3BlobStore {
    fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
        let out = self.client.get_object(&self.bucket, &self.object_key(key)).map_err(store_error)?;
        Ok(out.map(|o| Blob { bytes: o.body, etag: o.etag, modified: None }))
    }

    fn put(&self, key: &str, bytes: &[u8], condition: &Precondition) -> Result<String, StoreError> {
        let cond = match condition {
            Precondition::IfAbsent => Condition::IfNoneMatchStar,
            Precondition::IfMatch(etag) => Condition::IfMatch(etag.clone()),
            Precondition::IfMatchUnquoted(etag) => Condition::IfMatchUnquoted(etag.clone()),
            Precondition::None => Condition::None,
        };
        self.client.put_object(&self.bucket, &self.object_key(key), bytes.to_vec(), cond).map_err(store_error)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client.delete_object(&self.bucket, &self.object_key(key)).map_err(store_error)
    }

    fn describe(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.object_key(key))
    }

    fn reserved_prefix(&self) -> Option<String> {
        self.shared_with_source.then(|| self.prefix.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{cloud_event, EventContext};

    fn lister() -> Box<dyn Lister> {
        let params = Params::from_value(json!({
            "endpoint": "https://s3.example.com",
            "bucket": "photos",
            "accessKeyId": "AKIDEXAMPLE",
            "secretAccessKey": "wJalrXUtnFEMI/K7MDENG",
        }))
        .unwrap();
        S3Source.open(&params).unwrap()
    }

    fn entry_change(kind: ChangeKind) -> Change {
        let mut attrs = Map::new();
        attrs.insert("etag".into(), json!("9b2cf535f27731c974343645a3985328"));
        attrs.insert("size".into(), json!(1024));
        attrs.insert("lastModified".into(), json!("2026-11-23T20:00:00.000Z"));
        attrs.insert("storageClass".into(), json!("STANDARD"));
        let key = "albums/2026/beach day.jpg".to_string();
        let entry = Entry { key: key.clone(), version: "9b2cf535f27731c974343645a3985328".into(), attrs };
        match kind {
            ChangeKind::Deleted => Change { kind, key, entry: None, old_version: Some(0x1234_5678_9abc_def0) },
            _ => Change { kind, key, entry: Some(entry), old_version: None },
        }
    }

    #[test]
    fn legacy_payloads_have_the_node_feed_shape() {
        let l = lister();
        let all: Vec<Value> = [ChangeKind::Created, ChangeKind::Updated, ChangeKind::Deleted]
            .into_iter()
            .map(|k| l.legacy_event(&entry_change(k)).unwrap())
            .collect();
        insta::assert_snapshot!("legacy_payloads", crate::events::tests::pretty(&all));
    }

    #[test]
    fn cloudevent_payload_of_the_s3_source() {
        let l = lister();
        let ctx = EventContext {
            source: l.source_uri(),
            type_prefix: l.event_type_prefix().to_string(),
            data_context: l.data_context(),
            id_salt: "/guest/uploads".to_string(),
        };
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-23T21:00:00Z").unwrap().to_utc();
        let event = cloud_event(&ctx, &entry_change(ChangeKind::Created), 7, time);
        crate::events::validate_cloud_event(&event).unwrap();
        insta::assert_snapshot!("s3_cloudevent_created", crate::events::tests::pretty(&event));
    }

    #[test]
    fn parameters_are_validated_with_their_names() {
        let base =
            json!({"endpoint": "https://s3.example.com", "bucket": "b", "accessKeyId": "A", "secretAccessKey": "S"});
        for (change, name) in [
            (json!({"bucket": "a/b"}), "bucket"),
            (json!({"bucket": null}), "bucket"),
            (json!({"secretAccessKey": 7}), "secretAccessKey"),
            (json!({"region": "us east"}), "region"),
            (json!({"pathStyle": "maybe"}), "pathStyle"),
            (json!({"pageSize": 5000}), "pageSize"),
            (json!({"endpoint": "s3.example.com/path?x"}), "endpoint"),
            (json!({"statePrefix": ""}), "statePrefix"),
        ] {
            let mut p = base.clone();
            for (k, v) in change.as_object().unwrap() {
                p[k] = v.clone();
            }
            let err = S3Source.open(&Params::from_value(p).unwrap()).err().expect("must be rejected");
            assert_eq!(err.name, name, "{err}");
            if name == "secretAccessKey" {
                assert_eq!(err.got, None, "a secret's value is never echoed: {err}");
            }
        }
    }

    #[test]
    fn the_state_prefix_is_reserved_unless_the_state_is_elsewhere() {
        let p = |v: Value| Params::from_value(v).unwrap();
        let rp = |p: &Params| StateLocation::from_params(p, "b").map(|l| l.reserved_prefix());
        assert_eq!(rp(&p(json!({"bucket": "b"}))).unwrap().as_deref(), Some(".owfeed/"));
        assert_eq!(rp(&p(json!({"bucket": "b", "statePrefix": "s/"}))).unwrap().as_deref(), Some("s/"));
        assert_eq!(rp(&p(json!({"bucket": "b", "stateBucket": "b"}))).unwrap().as_deref(), Some(".owfeed/"));
        assert_eq!(rp(&p(json!({"bucket": "b", "stateBucket": "other"}))).unwrap(), None);
    }
}
