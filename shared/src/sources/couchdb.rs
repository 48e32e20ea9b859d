//! The CouchDB / Cloudant source: a log source reading a database's `_changes` feed, with
//! parameters compatible with Apache's Cloudant changes feed (openwhisk-package-cloudant),
//! and a state store offered as a regular document of the database.
//!
//! **Cursor.** Sequences are opaque: strings on CouchDB 2.x+ and Cloudant
//! (`12-g1AAAA…`), integers on CouchDB 1.x and PouchDB. A `last_seq` is kept verbatim as the
//! cursor text (a JSON number as its digits, any other non-string as its JSON text) and sent
//! back as `since` exactly as it came. A 400 on `since` is `SourceError::CursorRejected`.
//! A `_changes` body without `last_seq` is a failed read (CouchDB writes an error that
//! happens after streaming began into the 200 body).
//!
//! **Created, updated or deleted** is inferred, because a change row carries no operation:
//! `deleted: true` is a delete; a winning revision of generation 1 (`1-…`) a create; any
//! other an update. Known limits: a document created and updated between two reads is
//! first seen at generation 2 and reported as `updated`; a document re-created after a
//! delete continues its revision branch (generation 3 and up), so it is `updated`; a
//! replicated document (or `new_edits=false`) can arrive at any generation; only the latest
//! change of each document is guaranteed, so intermediate revisions are skipped.
//!
//! **Record ids** name one change of the log: the row's sequence, revision and document id.
//! The revision alone does not: when the winning revision of a conflicted document is deleted,
//! the losing one wins again and the row repeats an earlier revision at a later sequence (a
//! consumer dropping duplicates by id would drop that real change). A change the core read and
//! committed keeps its event id whatever happens next (the outbox holds it); a change the
//! server sends again at another sequence (a shard rewound to an earlier checkpoint) is, for
//! the log, another change, and gets another id. A row without `seq` (never sent by the
//! reader's requests) falls back to revision and id.
//!
//! **State store.** `_local` documents are not an optimistic lock on CouchDB 2.x+ (every
//! PUT wins), so the state is a regular document: `statePrefix` + key (default
//! `.owfeed/…`) in the watched database, or in `stateDbname`. A stale `_rev` gets 409
//! (`StoreError::Conflict`). The reader never reports documents under `statePrefix` of the
//! watched database, so the feed's own writes are never events; a read that finds only them at
//! the end of the log keeps the cursor (a poll with nothing new commits nothing), and a long
//! poll woken only by them waits on.
//!
//! No I/O outside `http::HttpClient`; the plugin knows nothing about triggers or state.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use crate::events::ChangeKind;
use crate::http::{self, Body, HttpClient, HttpConfig, HttpError, HttpTls, Method, Request, Response};
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use crate::source::{
    Batch, Blob, BlobStore, LogReader, LogSource, ParamSpec, Precondition, Record, SourceError, StoreError,
};

/// Where the state documents go in the watched database unless `statePrefix` says otherwise.
pub const DEFAULT_STATE_PREFIX: &str = ".owfeed/";
/// The IBM Cloud IAM token endpoint (`iamUrl` default).
const DEFAULT_IAM_URL: &str = "https://iam.cloud.ibm.com/identity/token";
/// CloudEvents type prefix of this source.
pub const EVENT_TYPE_PREFIX: &str = "org.openwhisk.feeds.couchdb.document";
/// How long a read without `wait_until` may take.
const READ_TIME: Duration = Duration::from_secs(60);
/// The `heartbeat` of a long poll: newlines keep idle connections (and proxies) alive.
const HEARTBEAT_MS: &str = "10000";
/// Query parameters the reader sets itself, refused in `query_params`.
const RESERVED_QUERY: &[&str] = &[
    "since",
    "limit",
    "feed",
    "heartbeat",
    "timeout",
    "include_docs",
    "filter",
    "descending",
    "style",
    "seq_interval",
    "conflicts",
    "attachments",
    "att_encoding_info",
    "last-event-id",
];

/// Percent-encoding of one path segment (a database name or document id; `/` too).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The `couchdb` source plugin.
pub struct CouchDbSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "url",
        secret: false,
        required: false,
        doc: "server URL, e.g. https://ACCOUNT.cloudant.com (without credentials); or host/protocol/port",
    },
    ParamSpec { name: "host", secret: false, required: false, doc: "server host name, e.g. ACCOUNT.cloudant.com" },
    ParamSpec { name: "protocol", secret: false, required: false, doc: "https (default) or http, with host" },
    ParamSpec { name: "port", secret: false, required: false, doc: "server port, with host (default: the protocol's)" },
    ParamSpec { name: "dbname", secret: false, required: true, doc: "the database to watch" },
    ParamSpec { name: "username", secret: false, required: false, doc: "user for Basic authentication" },
    ParamSpec { name: "password", secret: true, required: false, doc: "password for Basic authentication" },
    ParamSpec {
        name: "iamApiKey",
        secret: true,
        required: false,
        doc: "Cloudant IAM API key, exchanged for a Bearer token (instead of username/password)",
    },
    ParamSpec { name: "iamUrl", secret: false, required: false, doc: "IAM token endpoint (default IBM Cloud's)" },
    ParamSpec {
        name: "filter",
        secret: false,
        required: false,
        doc: "a filter function ddoc/name, or _doc_ids (with query_params doc_ids)",
    },
    ParamSpec {
        name: "query_params",
        secret: false,
        required: false,
        doc: "parameters for the filter (an object, or its JSON text)",
    },
    ParamSpec {
        name: "includeDocs",
        secret: false,
        required: false,
        doc: "put the winning revision's document in data.doc (default false)",
    },
    ParamSpec {
        name: "stateDbname",
        secret: false,
        required: false,
        doc: "database for the feed state (default: the watched database)",
    },
    ParamSpec {
        name: "statePrefix",
        secret: false,
        required: false,
        doc: "id prefix of the feed's state documents (default .owfeed/), never reported as events",
    },
    ParamSpec {
        name: "caCertificate",
        secret: false,
        required: false,
        doc: "PEM certificates of the CA(s) to trust for the server, instead of the public roots",
    },
    ParamSpec {
        name: "insecureSkipTlsVerify",
        secret: false,
        required: false,
        doc: "do not verify the server's TLS certificate (default false; shown as a warning in READ)",
    },
];

impl LogSource for CouchDbSource {
    fn name(&self) -> &'static str {
        "couchdb"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn LogReader>, ParamError> {
        Ok(Box::new(CouchDbReader::open(params)?))
    }
}

/// How requests authenticate.
enum Auth {
    None,
    /// The whole `Authorization: Basic …` value.
    Basic(Secret),
    /// A Cloudant IAM API key, exchanged at `url` for a Bearer token kept until it expires.
    Iam {
        api_key: Secret,
        url: String,
        token: Mutex<Option<(Secret, Instant)>>,
    },
}

/// What the reader and its store share: one client, one server, one authentication.
struct Connection {
    http: HttpClient,
    /// `scheme://host[:port][/prefix]`, no credentials, no trailing `/`.
    base: String,
    auth: Auth,
    tls: HttpTls,
}

impl Connection {
    /// The `Authorization` value of the next request, exchanging the IAM key if needed.
    fn authorization(&self) -> Result<Option<Secret>, SourceError> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Basic(value) => Ok(Some(value.clone())),
            Auth::Iam { api_key, url, token } => {
                let mut token = token.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((t, _)) = token.as_ref().filter(|(_, until)| Instant::now() < *until) {
                    return Ok(Some(http::bearer(t)));
                }
                let what = "IAM token exchange (iamUrl, iamApiKey)";
                let form = [("grant_type", "urn:ibm:params:oauth:grant-type:apikey"), ("apikey", api_key.expose())];
                let request = Request::new(Method::Post, url, what)
                    .with_body(Body::Form(&form))
                    .until(Some(Instant::now() + READ_TIME));
                let response = self.http.send(&request)?;
                if matches!(response.status, 400 | 401 | 403) {
                    // IAM answers 400 to an unknown or malformed key.
                    return Err(SourceError::Unauthorized(format!(
                        "{what}: the API key was refused (HTTP {}): check iamApiKey",
                        response.status
                    )));
                }
                let answer = response.ok_json()?;
                let Some(access) = answer.get("access_token").and_then(Value::as_str) else {
                    return Err(SourceError::Unauthorized(
                        "IAM token exchange (iamUrl, iamApiKey): the answer has no access_token".into(),
                    ));
                };
                let access = Secret::new(access);
                let lifetime = answer.get("expires_in").and_then(Value::as_u64).unwrap_or(600);
                // Renewed a minute early, so no request goes out with a token about to expire.
                let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(30));
                *token = Some((access.clone(), until));
                Ok(Some(http::bearer(&access)))
            }
        }
    }

    /// Sends a request with this connection's authentication; an IAM token refused with
    /// 401 is renewed once. The outer error is a failed token exchange.
    fn send_raw(&self, request: Request<'_>) -> Result<Result<Response, HttpError>, SourceError> {
        let auth = self.authorization()?;
        let response = self.http.send(&request.clone().with_auth(auth.as_ref()));
        if let (Ok(r), Auth::Iam { token, .. }) = (&response, &self.auth) {
            if r.status == 401 {
                token.lock().unwrap_or_else(|e| e.into_inner()).take();
                let auth = self.authorization()?;
                return Ok(self.http.send(&request.with_auth(auth.as_ref())));
            }
        }
        Ok(response)
    }

    /// `send_raw` with every failure a `SourceError`.
    fn send(&self, request: Request<'_>) -> Result<Response, SourceError> {
        Ok(self.send_raw(request)??)
    }

    fn db_url(&self, db: &str) -> String {
        format!("{}/{}", self.base, utf8_percent_encode(db, SEGMENT))
    }
}

/// The reader of one database's `_changes`.
struct CouchDbReader {
    conn: Arc<Connection>,
    db: String,
    filter: Option<String>,
    /// `query_params`, as sent.
    query: QueryPairs,
    include_docs: bool,
    state_db: String,
    state_prefix: String,
    /// What `probe` and `read` call the database in messages.
    what: String,
}

impl CouchDbReader {
    fn open(params: &Params) -> Result<CouchDbReader, ParamError> {
        // The one required parameter first: an empty CREATE asks for it.
        let db = db_name(params, "dbname")?.ok_or_else(|| ParamError::missing("dbname", "a database name"))?;
        let base = server_url(params)?;
        let auth = auth(params)?;
        let (filter, query) = filter(params)?;
        let include_docs = params.bool("includeDocs")?.unwrap_or(false);
        let state_db = db_name(params, "stateDbname")?.unwrap_or_else(|| db.clone());
        let state_prefix = params.str("statePrefix")?.unwrap_or_else(|| DEFAULT_STATE_PREFIX.to_string());
        if state_prefix.starts_with('_') || state_prefix.chars().any(char::is_control) {
            return Err(ParamError::invalid(
                "statePrefix",
                "a document id prefix not starting with '_'",
                &state_prefix.into(),
            ));
        }
        if state_prefix.is_empty() && state_db == db {
            return Err(ParamError::invalid(
                "statePrefix",
                "a non-empty prefix when the state is kept in the watched database",
                &"".into(),
            ));
        }
        let tls = HttpTls::from_params(params)?;
        let config =
            HttpConfig { tls: tls.clone(), request_time: Duration::from_secs(15 * 60), ..HttpConfig::default() };
        let http = HttpClient::new(config).map_err(|e| ParamError {
            name: http::TLS_PARAMS[0].to_string(),
            expected: format!("PEM certificates ({e})"),
            got: None,
        })?;
        let what = format!("CouchDB database '{db}' at {base}");
        Ok(CouchDbReader {
            conn: Arc::new(Connection { http, base, auth, tls }),
            db,
            filter,
            query,
            include_docs,
            state_db,
            state_prefix,
            what,
        })
    }

    fn own_document(&self, id: &str) -> bool {
        self.state_db == self.db && id.starts_with(&self.state_prefix)
    }

    /// One `_changes` request: `Ok(None)` when a long poll reached `wait_until` first.
    fn changes(
        &self,
        since: &str,
        limit: usize,
        wait_until: Option<Instant>,
    ) -> Result<Option<(Vec<Value>, String)>, SourceError> {
        let url = format!("{}/_changes", self.conn.db_url(&self.db));
        let limit = limit.max(1).to_string();
        let mut request = Request::get(&url, &self.what).with_query("since", since).with_query("limit", &limit);
        if self.include_docs {
            request = request.with_query("include_docs", "true");
        }
        if let Some(f) = &self.filter {
            request = request.with_query("filter", f);
        }
        for (k, v) in &self.query {
            request = request.with_query(k, v);
        }
        let request = match wait_until {
            // pouchdb-server ignores `timeout` and CouchDB ignores it under `heartbeat`: the
            // client's own deadline ends the wait.
            Some(until) => {
                request.with_query("feed", "longpoll").with_query("heartbeat", HEARTBEAT_MS).until(Some(until))
            }
            None => request.until(Some(Instant::now() + READ_TIME)),
        };
        let response = match self.conn.send_raw(request)? {
            Ok(r) => r,
            // The wait ended with nothing new (or cut mid-answer: read again next time).
            Err(HttpError::Timeout(_)) if wait_until.is_some() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if response.status == 400 {
            let reason = response.reason().unwrap_or_default();
            let lower = reason.to_ascii_lowercase();
            if since != "0" && (lower.contains("since") || lower.contains("sequence")) {
                return Err(SourceError::CursorRejected(format!(
                    "{}: the server no longer accepts the stored sequence ({}); the feed cannot resume where it stopped (the database was deleted and re-created, or restored)",
                    self.what,
                    reason.trim_end_matches('.')
                )));
            }
            return Err(status_error(&response));
        }
        if !response.is_success() {
            return Err(status_error(&response));
        }
        let body = response.json()?;
        parse_changes(&body, &self.what).map(Some)
    }

    fn record(&self, row: &Value) -> Result<Option<Record>, SourceError> {
        let bad = |what: &str| SourceError::Transient(format!("{}: a _changes row has no {what}", self.what));
        let id = row.get("id").and_then(Value::as_str).ok_or_else(|| bad("id"))?;
        if self.own_document(id) {
            return Ok(None);
        }
        let rev = row
            .get("changes")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(|c| c.get("rev"))
            .and_then(Value::as_str)
            .ok_or_else(|| bad("changes[0].rev"))?;
        let deleted = row.get("deleted").and_then(Value::as_bool).unwrap_or(false);
        let mut attrs = Map::new();
        attrs.insert("id".into(), json!(id));
        attrs.insert("rev".into(), json!(rev));
        attrs.insert("seq".into(), row.get("seq").cloned().unwrap_or(Value::Null));
        attrs.insert("deleted".into(), json!(deleted));
        if self.include_docs {
            if let Some(doc) = row.get("doc") {
                attrs.insert("doc".into(), doc.clone());
            }
        }
        // One change of the log: the revision alone is not one (a conflict revert makes an
        // earlier revision win again, at a later sequence), so the sequence is part of it.
        let record_id = match row.get("seq").filter(|s| !s.is_null()) {
            Some(seq) => format!("{} {rev} {id}", seq_text(seq)),
            None => format!("{rev} {id}"),
        };
        Ok(Some(Record { id: record_id, key: id.to_string(), kind: infer_kind(rev, deleted), attrs, time: None }))
    }
}

/// Created, updated or deleted, as far as a change row tells (see the module doc's limits).
fn infer_kind(rev: &str, deleted: bool) -> ChangeKind {
    if deleted {
        ChangeKind::Deleted
    } else if rev.split('-').next() == Some("1") {
        ChangeKind::Created
    } else {
        ChangeKind::Updated
    }
}

/// A sequence value as cursor text: a string verbatim, anything else as its JSON text.
fn seq_text(seq: &Value) -> String {
    match seq {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The rows and `last_seq` of a `_changes` answer; a body without `last_seq` or `results`
/// is a failed read.
fn parse_changes(body: &Value, what: &str) -> Result<(Vec<Value>, String), SourceError> {
    let last_seq = match body.get("last_seq") {
        Some(v) if !v.is_null() => seq_text(v),
        _ => {
            return Err(SourceError::Transient(format!(
                "{what}: the _changes answer has no last_seq (the server failed while answering): nothing was read, retried next time"
            )))
        }
    };
    let Some(rows) = body.get("results").and_then(Value::as_array) else {
        return Err(SourceError::Transient(format!(
            "{what}: the _changes answer has no results list: retried next time"
        )));
    };
    Ok((rows.clone(), last_seq))
}

/// The usual error for a failed answer; for 400 and 404 with CouchDB's reason, which tells a
/// missing database from a missing filter and names a bad parameter. Other statuses quote
/// nothing of the body (a proxy or a server may echo the request, credentials included), and
/// the reason itself is scrubbed of every known secret before it is cut.
fn status_error(response: &Response) -> SourceError {
    let error = response.error();
    let reason = match response.status {
        400 | 404 => response.reason().unwrap_or_default(),
        _ => String::new(),
    };
    if reason.is_empty() {
        return error;
    }
    let message = format!("{} ({})", error.message(), reason.trim_end_matches('.'));
    match error {
        SourceError::Unauthorized(_) => SourceError::Unauthorized(message),
        SourceError::NotFound(_) => SourceError::NotFound(message),
        SourceError::Config(_) => SourceError::Config(message),
        SourceError::Transient(_) => SourceError::Transient(message),
        SourceError::CursorRejected(_) => SourceError::CursorRejected(message),
    }
}

impl LogReader for CouchDbReader {
    fn source_uri(&self) -> String {
        http::display_url(&self.conn.db_url(&self.db))
    }

    fn event_type_prefix(&self) -> &'static str {
        EVENT_TYPE_PREFIX
    }

    fn data_context(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("dbname".into(), json!(self.db));
        m.insert("server".into(), json!(http::display_url(&self.conn.base)));
        m
    }

    fn probe(&self) -> Result<(), SourceError> {
        // The same request a read makes (credentials, database, filter, query_params).
        self.changes("now", 1, None).map(|_| ())
    }

    fn current(&self) -> Result<String, SourceError> {
        let url = self.conn.db_url(&self.db);
        let response = self.conn.send(Request::get(&url, &self.what).until(Some(Instant::now() + READ_TIME)))?;
        if !response.is_success() {
            return Err(status_error(&response));
        }
        match response.json()?.get("update_seq") {
            Some(seq) if !seq.is_null() => Ok(seq_text(seq)),
            _ => Err(SourceError::Transient(format!("{}: the database information has no update_seq", self.what))),
        }
    }

    fn read(&self, after: Option<&str>, limit: usize, wait_until: Option<Instant>) -> Result<Batch, SourceError> {
        let mut cursor = after.unwrap_or("0").to_string();
        loop {
            let Some((rows, last_seq)) = self.changes(&cursor, limit, wait_until)? else {
                return Ok(Batch { records: Vec::new(), cursor });
            };
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                records.extend(self.record(row)?);
            }
            if records.is_empty() && !rows.is_empty() && wait_until.is_none() && rows.len() < limit.max(1) {
                // Only the feed's own documents, and the end of the log: the cursor stays, so a
                // poll with nothing new commits nothing (the next read sees at most those few
                // rows again: CouchDB lists each document once, at its latest change).
                return Ok(Batch { records, cursor });
            }
            let advanced = last_seq != cursor;
            cursor = last_seq;
            // A long poll woken only by the feed's own state write waits on for a record.
            let waiting = wait_until.is_some_and(|u| Instant::now() < u);
            if !records.is_empty() || rows.is_empty() || !advanced || !waiting {
                return Ok(Batch { records, cursor });
            }
        }
    }

    fn notices(&self) -> Vec<String> {
        let server = format!("the CouchDB server {}", self.conn.base);
        let mut notices: Vec<String> = self.conn.tls.notice(&server).into_iter().collect();
        if self.conn.base.starts_with("http://") && !matches!(self.conn.auth, Auth::None) {
            notices.push(format!("protocol: credentials go to {} unencrypted (http); prefer https", self.conn.base));
        }
        notices
    }

    fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        Some(Box::new(CouchDbStore {
            conn: self.conn.clone(),
            db: self.state_db.clone(),
            prefix: self.state_prefix.clone(),
            shared_with_source: self.state_db == self.db,
        }))
    }

    fn legacy_event(&self, record: &Record) -> Option<Value> {
        // The Apache Cloudant feed's payload: the `follow` row plus `dbname`.
        let mut event = Map::new();
        event.insert("dbname".into(), json!(self.db));
        event.insert("id".into(), record.attrs.get("id").cloned().unwrap_or_else(|| json!(record.key)));
        event.insert("seq".into(), record.attrs.get("seq").cloned().unwrap_or(Value::Null));
        event.insert("changes".into(), json!([{ "rev": record.attrs.get("rev").cloned().unwrap_or(Value::Null) }]));
        if record.kind == ChangeKind::Deleted {
            event.insert("deleted".into(), json!(true));
        }
        Some(Value::Object(event))
    }
}

/// The server base URL from `url`, or `host` with `protocol` and `port`.
fn server_url(params: &Params) -> Result<String, ParamError> {
    let url = params.str("url")?.filter(|u| !u.trim().is_empty());
    let host = params.str("host")?.filter(|h| !h.trim().is_empty());
    match (url, host) {
        (Some(_), Some(_)) => Err(ParamError::invalid_secret("url", "either url or host, not both")),
        (None, None) => Err(ParamError::missing("host", "the server's host name (or give url)")),
        (Some(url), None) => {
            for name in ["protocol", "port"] {
                if params.has(name) {
                    return Err(ParamError::invalid_secret(name, "nothing when url is given (url names them)"));
                }
            }
            if http::has_userinfo(&url) {
                // Never echoed: the user-info is a credential.
                return Err(ParamError::invalid_secret(
                    "url",
                    "an http(s) URL without user-info (give credentials as username/password or iamApiKey)",
                ));
            }
            let url = url.trim().trim_end_matches('/');
            let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && authority_ok(rest.split('/').next().unwrap_or_default())
            }) && !url.contains(['?', '#', ' ']);
            if !ok {
                return Err(ParamError::invalid(
                    "url",
                    "an http(s) URL such as https://ACCOUNT.cloudant.com",
                    &url.into(),
                ));
            }
            Ok(url.to_string())
        }
        (None, Some(host)) => {
            let host = host.trim();
            if host.contains('@') {
                return Err(ParamError::invalid_secret("host", "a host name without user-info"));
            }
            if !authority_ok(host) {
                return Err(ParamError::invalid(
                    "host",
                    "a host name such as ACCOUNT.cloudant.com (no scheme or path)",
                    &host.into(),
                ));
            }
            let protocol = params.str("protocol")?.unwrap_or_else(|| "https".into());
            if !matches!(protocol.as_str(), "http" | "https") {
                return Err(ParamError::invalid("protocol", "http or https", &protocol.into()));
            }
            let port = params.u64_in("port", 1, 65535)?;
            match port {
                Some(_) if host.rsplit_once(':').is_some_and(|(_, p)| !p.ends_with(']')) && !host.ends_with(']') => {
                    Err(ParamError::invalid(
                        "port",
                        "nothing when host already names a port",
                        &port.unwrap_or_default().into(),
                    ))
                }
                Some(p) => Ok(format!("{protocol}://{host}:{p}")),
                None => Ok(format!("{protocol}://{host}")),
            }
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn authority_ok(authority: &str) -> bool {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') => {
                ("v6", port.strip_prefix(':').map(Some).unwrap_or(if port.is_empty() { None } else { Some("x") }))
            }
            _ => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

/// A database name: CouchDB's rule (`^[a-z][a-z0-9_$()+/-]*$`).
fn db_name(params: &Params, name: &str) -> Result<Option<String>, ParamError> {
    let Some(db) = params.str(name)? else { return Ok(None) };
    let ok = db.len() <= 238
        && db.starts_with(|c: char| c.is_ascii_lowercase())
        && db.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_$()+/-".contains(c));
    if ok {
        Ok(Some(db))
    } else {
        Err(ParamError::invalid(
            name,
            "a database name: a lowercase letter, then lowercase letters, digits or _$()+/-",
            &db.into(),
        ))
    }
}

fn auth(params: &Params) -> Result<Auth, ParamError> {
    let username = params.str("username")?.filter(|u| !u.is_empty());
    let password = params.secret("password")?;
    let iam = params.secret("iamApiKey")?;
    let iam_url = params.str("iamUrl")?;
    if iam.is_none() && iam_url.is_some() {
        return Err(ParamError::invalid_secret("iamUrl", "nothing without iamApiKey"));
    }
    match (username, password, iam) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            Err(ParamError::invalid_secret("iamApiKey", "either iamApiKey or username/password, not both"))
        }
        (None, None, Some(api_key)) => {
            let url = iam_url.unwrap_or_else(|| DEFAULT_IAM_URL.to_string());
            let ok = (url.starts_with("https://") || url.starts_with("http://")) && !http::has_userinfo(&url);
            if !ok {
                return Err(ParamError::invalid_secret("iamUrl", "an http(s) URL without user-info"));
            }
            Ok(Auth::Iam { api_key, url, token: Mutex::new(None) })
        }
        (Some(user), Some(password), None) => {
            if user.contains(':') {
                return Err(ParamError::invalid("username", "a user name without ':'", &user.into()));
            }
            Ok(Auth::Basic(http::basic_auth(&user, &password)))
        }
        (Some(_), None, None) => Err(ParamError::missing("password", "the password of username")),
        (None, Some(_), None) => Err(ParamError::missing("username", "the user whose password is given")),
        (None, None, None) => Ok(Auth::None),
    }
}

/// Query pairs as sent (arrays and objects as their JSON text).
type QueryPairs = Vec<(String, String)>;

/// `filter` and `query_params`, checked together.
fn filter(params: &Params) -> Result<(Option<String>, QueryPairs), ParamError> {
    let filter = params.str("filter")?.filter(|f| !f.trim().is_empty()).map(|f| f.trim().to_string());
    let query = match params.raw("query_params") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(v @ Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => return Err(ParamError::invalid("query_params", "an object, or its JSON text", v)),
        },
        Some(v) => return Err(ParamError::invalid("query_params", "an object, or its JSON text", v)),
    };
    match filter.as_deref() {
        None if !query.is_empty() => {
            return Err(ParamError::invalid_secret("query_params", "nothing without filter (they are the filter's)"))
        }
        None => {}
        Some("_doc_ids") => {
            let ids = query.get("doc_ids").and_then(Value::as_array);
            if !ids.is_some_and(|ids| !ids.is_empty() && ids.iter().all(Value::is_string)) {
                return Err(ParamError::invalid_secret(
                    "query_params",
                    "{\"doc_ids\": [\"id\", …]}, a non-empty list of document ids, with filter _doc_ids",
                ));
            }
        }
        Some(f) => {
            let ok = f.split_once('/').is_some_and(|(ddoc, name)| {
                !ddoc.is_empty() && !name.is_empty() && !name.contains('/') && !ddoc.starts_with('_')
            });
            if !ok {
                return Err(ParamError::invalid(
                    "filter",
                    "a filter function as designdoc/name, or _doc_ids (_selector and _design are not supported)",
                    &f.into(),
                ));
            }
        }
    }
    let mut pairs = Vec::with_capacity(query.len());
    for (k, v) in query {
        if RESERVED_QUERY.contains(&k.as_str()) {
            return Err(ParamError::invalid(
                "query_params",
                "parameters other than those the feed sets itself",
                &k.into(),
            ));
        }
        let text = match v {
            Value::String(s) => s,
            Value::Null => continue,
            other => other.to_string(),
        };
        pairs.push((k, text));
    }
    Ok((filter, pairs))
}

/// State blobs as regular documents `{prefix}{key}` of a database, each holding the bytes
/// base64-encoded; the `_rev` is the version tag (MVCC: a stale one gets 409).
struct CouchDbStore {
    conn: Arc<Connection>,
    db: String,
    prefix: String,
    shared_with_source: bool,
}

impl CouchDbStore {
    fn doc_url(&self, key: &str) -> String {
        format!("{}/{}", self.conn.db_url(&self.db), utf8_percent_encode(&format!("{}{key}", self.prefix), SEGMENT))
    }

    fn what(&self, key: &str) -> String {
        format!("CouchDB state document '{}{key}' in database '{}'", self.prefix, self.db)
    }

    fn failed(response: &Response) -> StoreError {
        StoreError::Failed(status_error(response))
    }

    fn request_deadline() -> Option<Instant> {
        Some(Instant::now() + READ_TIME)
    }

    /// The current revision of a key's document, `None` when there is none.
    fn current_rev(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(key)?.map(|b| b.etag))
    }
}

impl BlobStore for CouchDbStore {
    fn get(&self, key: &str) -> Result<Option<Blob>, StoreError> {
        let url = self.doc_url(key);
        let what = self.what(key);
        let response =
            self.conn.send(Request::get(&url, &what).until(Self::request_deadline())).map_err(StoreError::Failed)?;
        match response.status {
            404 => return Ok(None),
            200 => {}
            _ => return Err(Self::failed(&response)),
        }
        let doc = response.json().map_err(StoreError::Failed)?;
        let corrupt = || StoreError::Failed(SourceError::Transient(format!("{what}: not a state document of owfeed")));
        let rev = doc.get("_rev").and_then(Value::as_str).ok_or_else(corrupt)?;
        // Whoever can write the database can write this document: one that is not ours reads
        // as bytes the core does not trust (and replaces), never as a store failure that would
        // stop the feed for good.
        let bytes = doc.get("bytes").and_then(Value::as_str).unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD.decode(bytes).unwrap_or_default();
        Ok(Some(Blob { bytes, etag: rev.to_string(), modified: None }))
    }

    fn put(&self, key: &str, bytes: &[u8], condition: &Precondition) -> Result<String, StoreError> {
        let url = self.doc_url(key);
        let what = self.what(key);
        let write = |rev: Option<&str>| -> Result<Response, StoreError> {
            let mut doc = json!({
                "owfeed": "feed state: written by the owfeed feed actions; do not edit",
                "bytes": base64::engine::general_purpose::STANDARD.encode(bytes),
            });
            if let Some(rev) = rev {
                doc["_rev"] = json!(rev);
            }
            let request =
                Request::new(Method::Put, &url, &what).with_body(Body::Json(&doc)).until(Self::request_deadline());
            self.conn.send(request).map_err(StoreError::Failed)
        };
        let response = match condition {
            Precondition::IfAbsent => write(None)?,
            Precondition::IfMatch(rev) | Precondition::IfMatchUnquoted(rev) => write(Some(rev))?,
            Precondition::None => {
                // Unconditional: write over whatever revision is there, once more if it moved.
                let mut response = write(self.current_rev(key)?.as_deref())?;
                if response.status == 409 {
                    response = write(self.current_rev(key)?.as_deref())?;
                }
                response
            }
        };
        match response.status {
            200..=299 => {}
            409 => return Err(StoreError::Conflict),
            _ => return Err(Self::failed(&response)),
        }
        let answer = response.json().map_err(StoreError::Failed)?;
        answer.get("rev").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            StoreError::Failed(SourceError::Transient(format!("{what}: the write was answered without a rev")))
        })
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let url = self.doc_url(key);
        let what = self.what(key);
        for _ in 0..3 {
            let Some(rev) = self.current_rev(key)? else { return Ok(()) };
            let request =
                Request::new(Method::Delete, &url, &what).with_query("rev", &rev).until(Self::request_deadline());
            let response = self.conn.send(request).map_err(StoreError::Failed)?;
            match response.status {
                200..=299 | 404 => return Ok(()),
                // Written meanwhile: delete the newer revision.
                409 => continue,
                _ => return Err(Self::failed(&response)),
            }
        }
        Err(StoreError::Conflict)
    }

    fn describe(&self, key: &str) -> String {
        http::display_url(&self.doc_url(key))
    }

    fn reserved_prefix(&self) -> Option<String> {
        self.shared_with_source.then(|| self.prefix.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Params {
        Params::from_value(v).unwrap()
    }

    fn reader(extra: Value) -> CouchDbReader {
        let mut p = json!({"url": "https://acct.cloudant.com", "dbname": "orders"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        CouchDbReader::open(&params(p)).unwrap()
    }

    #[test]
    fn parameters_are_validated_with_their_names() {
        let base = json!({"host": "acct.cloudant.com", "dbname": "orders", "username": "u", "password": "p"});
        #[track_caller]
        fn check(base: &Value, change: Value, name: &str) {
            let mut p = base.clone();
            for (k, v) in change.as_object().unwrap() {
                if v.is_null() {
                    p.as_object_mut().unwrap().remove(k);
                } else {
                    p[k] = v.clone();
                }
            }
            let err = CouchDbSource.open(&Params::from_value(p).unwrap()).err().expect("must be rejected");
            assert_eq!(err.name, name, "{err}");
            assert!(err.to_string().contains(&format!("parameter '{name}'")), "{err}");
        }
        check(&base, json!({"host": null}), "host");
        check(&base, json!({"url": "https://h"}), "url");
        check(&base, json!({"host": null, "url": "ftp://h"}), "url");
        check(&base, json!({"host": null, "url": "https://u:p@h"}), "url");
        check(&base, json!({"host": null, "url": "https://h", "port": 5984}), "port");
        check(&base, json!({"host": "https://h"}), "host");
        check(&base, json!({"host": "u:p@h"}), "host");
        check(&base, json!({"host": "h:5984", "port": 6984}), "port");
        check(&base, json!({"protocol": "ftp"}), "protocol");
        check(&base, json!({"port": 70000}), "port");
        check(&base, json!({"dbname": null}), "dbname");
        check(&base, json!({"dbname": "Orders"}), "dbname");
        check(&base, json!({"dbname": "_users"}), "dbname");
        check(&base, json!({"password": null}), "password");
        check(&base, json!({"username": null}), "username");
        check(&base, json!({"password": 7}), "password");
        check(&base, json!({"iamApiKey": "k"}), "iamApiKey");
        check(&base, json!({"iamUrl": "https://iam"}), "iamUrl");
        check(&base, json!({"filter": "_selector"}), "filter");
        check(&base, json!({"filter": "nofn"}), "filter");
        check(&base, json!({"query_params": {"a": 1}}), "query_params");
        check(&base, json!({"filter": "d/f", "query_params": "[1]"}), "query_params");
        check(&base, json!({"filter": "d/f", "query_params": {"since": "0"}}), "query_params");
        check(&base, json!({"filter": "_doc_ids"}), "query_params");
        check(&base, json!({"filter": "_doc_ids", "query_params": {"doc_ids": []}}), "query_params");
        check(&base, json!({"includeDocs": "yes"}), "includeDocs");
        check(&base, json!({"stateDbname": "A"}), "stateDbname");
        check(&base, json!({"statePrefix": "_local/"}), "statePrefix");
        check(&base, json!({"statePrefix": ""}), "statePrefix");
        check(&base, json!({"caCertificate": "not pem"}), "caCertificate");
        check(&base, json!({"insecureSkipTlsVerify": "maybe"}), "insecureSkipTlsVerify");
    }

    #[test]
    fn secrets_are_never_echoed_in_parameter_errors() {
        let _guard = crate::secret::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for p in [
            json!({"url": "https://admin:hunter2@h", "dbname": "d"}),
            json!({"host": "admin:hunter2@h", "dbname": "d"}),
            json!({"host": "h", "dbname": "d", "password": "hunter2", "iamApiKey": "hunter2"}),
            json!({"host": "h", "dbname": "d", "filter": "_doc_ids", "query_params": {"doc_ids": "hunter2"}}),
        ] {
            let err = CouchDbSource.open(&params(p)).err().unwrap();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        crate::secret::forget_all();
    }

    #[test]
    fn servers_are_named_by_url_or_by_host_protocol_and_port() {
        #[track_caller]
        fn check(p: Value, expected: &str) {
            let mut p = p;
            p["dbname"] = json!("orders/2026");
            let r = CouchDbReader::open(&params(p)).unwrap();
            assert_eq!(r.source_uri(), expected);
        }
        check(json!({"url": "https://acct.cloudant.com/"}), "https://acct.cloudant.com/orders%2F2026");
        check(json!({"url": "http://127.0.0.1:5984/couch"}), "http://127.0.0.1:5984/couch/orders%2F2026");
        check(json!({"host": "acct.cloudant.com"}), "https://acct.cloudant.com/orders%2F2026");
        check(json!({"host": "localhost", "protocol": "http", "port": "5984"}), "http://localhost:5984/orders%2F2026");
        check(json!({"host": "localhost:5984", "protocol": "http"}), "http://localhost:5984/orders%2F2026");
        check(json!({"host": "[::1]", "port": 5984}), "https://[::1]:5984/orders%2F2026");
    }

    #[test]
    fn kinds_are_inferred_from_the_deleted_flag_and_the_rev_generation() {
        assert_eq!(infer_kind("1-abc", false), ChangeKind::Created);
        assert_eq!(infer_kind("2-abc", false), ChangeKind::Updated);
        assert_eq!(infer_kind("11-abc", false), ChangeKind::Updated);
        assert_eq!(infer_kind("2-abc", true), ChangeKind::Deleted);
        assert_eq!(infer_kind("garbage", false), ChangeKind::Updated);
    }

    #[test]
    fn records_keep_the_row_and_never_show_the_feeds_own_documents() {
        let r = reader(json!({"includeDocs": true}));
        let row = json!({"seq": "7-g1AAAA", "id": "a/b", "changes": [{"rev": "3-x"}], "deleted": true, "doc": {"_id": "a/b", "_deleted": true}});
        let record = r.record(&row).unwrap().unwrap();
        assert_eq!(record.id, "7-g1AAAA 3-x a/b");
        assert_eq!(record.key, "a/b");
        assert_eq!(record.kind, ChangeKind::Deleted);
        assert_eq!(
            Value::Object(record.attrs.clone()),
            json!({"id": "a/b", "rev": "3-x", "seq": "7-g1AAAA", "deleted": true, "doc": {"_id": "a/b", "_deleted": true}})
        );
        assert_eq!(
            r.legacy_event(&record).unwrap(),
            json!({"dbname": "orders", "id": "a/b", "seq": "7-g1AAAA", "changes": [{"rev": "3-x"}], "deleted": true})
        );
        let own = json!({"seq": 8, "id": ".owfeed/guest/t.state", "changes": [{"rev": "1-y"}]});
        assert_eq!(r.record(&own), Ok(None));
        // A state kept elsewhere leaves the watched database's documents alone.
        let elsewhere = reader(json!({"stateDbname": "feeds"}));
        assert!(elsewhere.record(&own).unwrap().is_some());
        assert!(matches!(r.record(&json!({"seq": 9, "id": "x"})), Err(SourceError::Transient(_))));
    }

    #[test]
    fn created_records_have_no_deleted_flag_in_the_legacy_shape() {
        let r = reader(json!({}));
        let record = r.record(&json!({"seq": 3, "id": "d", "changes": [{"rev": "1-a"}]})).unwrap().unwrap();
        assert_eq!(record.kind, ChangeKind::Created);
        assert!(!record.attrs.contains_key("doc"));
        assert_eq!(
            r.legacy_event(&record).unwrap(),
            json!({"dbname": "orders", "id": "d", "seq": 3, "changes": [{"rev": "1-a"}]})
        );
    }

    #[test]
    fn sequences_are_kept_verbatim_and_a_body_without_last_seq_fails() {
        let parse = |v: Value| parse_changes(&v, "db").map(|(rows, seq)| (rows.len(), seq));
        assert_eq!(parse(json!({"results": [], "last_seq": "12-g1AAAA+/="})), Ok((0, "12-g1AAAA+/=".into())));
        assert_eq!(parse(json!({"results": [{}], "last_seq": 12})), Ok((1, "12".into())));
        let big: Value =
            serde_json::from_str(r#"{"results": [], "last_seq": 123456789012345678901234567890}"#).unwrap();
        assert_eq!(parse(big), Ok((0, "123456789012345678901234567890".into())));
        assert!(matches!(parse(json!({"results": []})), Err(SourceError::Transient(_))));
        assert!(matches!(parse(json!({"last_seq": 1})), Err(SourceError::Transient(_))));
        assert!(matches!(
            parse(json!({"results": [], "error": "x", "last_seq": null})),
            Err(SourceError::Transient(_))
        ));
    }

    #[test]
    fn events_describe_the_database_without_credentials() {
        let r = reader(json!({"username": "admin", "password": "pw"}));
        assert_eq!(r.event_type_prefix(), "org.openwhisk.feeds.couchdb.document");
        assert_eq!(Value::Object(r.data_context()), json!({"dbname": "orders", "server": "https://acct.cloudant.com"}));
        assert_eq!(r.notices(), Vec::<String>::new());
        let plain = reader(json!({"url": "http://h:5984", "username": "admin", "password": "pw"}));
        assert_eq!(plain.notices().len(), 1);
        assert!(plain.blob_store().unwrap().describe("guest/t.state").ends_with("/orders/.owfeed%2Fguest%2Ft.state"));
        assert_eq!(plain.blob_store().unwrap().reserved_prefix().as_deref(), Some(".owfeed/"));
        assert_eq!(reader(json!({"stateDbname": "feeds"})).blob_store().unwrap().reserved_prefix(), None);
    }
}
