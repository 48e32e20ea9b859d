//! The `http` source: web resources watched by `ETag` (else `Last-Modified`) with conditional
//! GETs, so an unchanged resource costs a 304. Keys are the URLs; 404 and 410 mean absent.
//! It keeps its versions (`keeps_versions`) to send them back, and no state of its own.
//!
//! **Where the user's `headers` go.** The user decides, never the index or a server: they are
//! sent only to the origins (scheme, host, port) of the URLs the user configured (`url`, or
//! `indexUrl` itself). With `headers`, a URL an index lists on another origin is fetched only
//! when the user names that origin in `otherOrigins`, and then without the headers; any other
//! fails the poll naming the origin (nothing is fetched from it). Redirects are followed here,
//! not by the HTTP client (which keeps every header but `Authorization` across hosts): within
//! the origins the user configured with the headers, to an origin in `otherOrigins` without
//! them, anywhere else not at all; and never from `https` to `http`, headers or not.

use serde_json::{json, Map, Value};

use crate::http::{display_url, origin, resolve_location, HttpClient, HttpConfig, HttpTls, Request, Response};
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use crate::source::{BlobStore, Entry, Flow, ListRange, Lister, ParamSpec, Previous, Source, SourceError};

/// The `http` source plugin.
pub struct HttpSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec { name: "url", secret: false, required: true, doc: "the URL(s) to watch (or indexUrl)" },
    ParamSpec { name: "indexUrl", secret: false, required: false, doc: "a JSON array of the URLs to watch" },
    ParamSpec { name: "headers", secret: true, required: false, doc: "request headers (auth), a JSON object" },
    ParamSpec {
        name: "otherOrigins",
        secret: false,
        required: false,
        doc:
            "origins besides the configured URLs' that an index may list or a redirect lead to, fetched without headers",
    },
    ParamSpec { name: "stateBucket", secret: false, required: true, doc: "S3 bucket for the state (see Sources)" },
    ParamSpec { name: "caCertificate", secret: false, required: false, doc: "PEM of the CA(s) to trust" },
    ParamSpec { name: "insecureSkipTlsVerify", secret: false, required: false, doc: "no TLS verification" },
];

impl Source for HttpSource {
    fn name(&self) -> &'static str {
        "http"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn open(&self, params: &Params) -> Result<Box<dyn Lister>, ParamError> {
        let expected = "a URL, a JSON array or a comma list of URLs (or give indexUrl instead)";
        let (urls, index) = match (params.list("url")?, params.str("indexUrl")?) {
            (Some(urls), None) if !urls.is_empty() => (urls, None),
            (None, Some(index)) => (Vec::new(), Some(index)),
            (Some(_), Some(_)) => return Err(ParamError::missing("url", "either url or indexUrl, not both")),
            _ => return Err(ParamError::missing("url", expected)),
        };
        for (name, url) in urls.iter().map(|u| ("url", u)).chain(index.iter().map(|u| ("indexUrl", u))) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ParamError::invalid(name, "http:// or https:// URLs", &display_url(url).into()));
            }
        }
        let headers = match params.raw("headers") {
            None => Vec::new(),
            Some(Value::String(s)) => header_pairs(&serde_json::from_str(s).unwrap_or(Value::Null))?,
            Some(v) => header_pairs(v)?,
        };
        let other_origins = other_origins(params)?;
        // The origins the user's headers may go to: those of the URLs the user wrote.
        let mut origins: Vec<String> = urls.iter().chain(index.iter()).filter_map(|u| origin(u)).collect();
        origins.sort();
        origins.dedup();
        let tls = HttpTls::from_params(params)?;
        // Redirects are followed by `get`, which decides where the headers go.
        let config = HttpConfig { tls: tls.clone(), follow_redirects: false, ..HttpConfig::default() };
        let client =
            HttpClient::new(config).map_err(|e| ParamError { name: "caCertificate".into(), expected: e, got: None })?;
        Ok(Box::new(HttpLister { urls, index, headers, origins, other_origins, client, tls }))
    }
}

/// `otherOrigins`: origins (`https://host[:port]`, no path) as a list; each normalised.
fn other_origins(params: &Params) -> Result<Vec<String>, ParamError> {
    let expected = "origins such as https://cdn.example.com or http://host:8080 (scheme, host, port; no path)";
    let mut out = Vec::new();
    for given in params.list("otherOrigins")?.unwrap_or_default() {
        let trimmed = given.trim().trim_end_matches('/');
        let bare = trimmed.split_once("://").is_some_and(|(_, rest)| !rest.contains(['/', '?', '#']));
        match origin(trimmed).filter(|_| bare) {
            Some(o) => out.push(o),
            None if crate::http::has_userinfo(trimmed) => {
                return Err(ParamError::invalid_secret("otherOrigins", expected))
            }
            None => return Err(ParamError::invalid("otherOrigins", expected, &given.into())),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `headers` as (name, value) pairs, the values secrets from here on; errors quote no value.
fn header_pairs(v: &Value) -> Result<Vec<(String, Secret)>, ParamError> {
    let bad = || ParamError::invalid_secret("headers", "a JSON object of header names to string values");
    let pairs = v.as_object().ok_or_else(bad)?.iter();
    let token =
        |k: &str| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
    pairs.map(|(k, v)| Ok((k.clone(), Secret::new(v.as_str().filter(|_| token(k)).ok_or_else(bad)?)))).collect()
}

/// Redirects followed for one resource at most (ureq's own default).
const MAX_REDIRECTS: usize = 10;

struct HttpLister {
    urls: Vec<String>,
    index: Option<String>,
    headers: Vec<(String, Secret)>,
    /// Origins of the configured URLs: the only ones the headers go to.
    origins: Vec<String>,
    /// `otherOrigins`: also fetched, never with the headers.
    other_origins: Vec<String>,
    client: HttpClient,
    tls: HttpTls,
}

/// Whether a request to an origin may carry the user's headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    WithHeaders,
    WithoutHeaders,
}

impl HttpLister {
    /// How `url` may be fetched, or why it may not: without `headers` anything goes (no
    /// secret to leak); with them, the configured origins get them, `otherOrigins` not.
    fn reach(&self, url: &str, why: &str) -> Result<Reach, SourceError> {
        if self.headers.is_empty() {
            return Ok(Reach::WithHeaders);
        }
        let Some(o) = origin(url) else {
            return Err(SourceError::Config(format!("{why} {}: not an http(s) URL", display_url(url))));
        };
        if self.origins.contains(&o) {
            Ok(Reach::WithHeaders)
        } else if self.other_origins.contains(&o) {
            Ok(Reach::WithoutHeaders)
        } else {
            Err(SourceError::Config(format!(
                "{why} {} on another origin ({o}) than the URLs you configured: the headers go only to {}; \
                 nothing was fetched from it (name it in -p otherOrigins to fetch it without the headers)",
                display_url(url),
                self.origins.join(", ")
            )))
        }
    }

    /// GETs `url` (and a condition), following redirects as the module doc says; any failure
    /// to get an answer fails.
    fn get(&self, url: &str, condition: Option<(&'static str, &str)>) -> Result<Response, SourceError> {
        let mut current = url.to_string();
        let mut reach = self.reach(url, "the URL")?;
        for _ in 0..=MAX_REDIRECTS {
            let what = format!("HTTP resource {}", display_url(url));
            let mut request = Request::get(&current, &what).with_header("Accept", "*/*");
            if reach == Reach::WithHeaders {
                for (name, value) in &self.headers {
                    request = request.with_header(name, value.expose());
                }
            }
            if let Some((name, value)) = condition {
                request = request.with_header(name, value);
            }
            let answer = self.client.send(&request)?;
            let location = answer.header("location").filter(|_| matches!(answer.status, 301 | 302 | 303 | 307 | 308));
            let Some(location) = location else { return Ok(answer) };
            let Some(next) = resolve_location(&current, location) else {
                return Err(SourceError::Config(format!(
                    "{what}: redirected (HTTP {}) to a URL that is not http(s)",
                    answer.status
                )));
            };
            if current.starts_with("https://") && !next.starts_with("https://") {
                return Err(SourceError::Config(format!(
                    "{what}: redirected from https to http ({}): refused, the answer would not be authenticated",
                    display_url(&next)
                )));
            }
            let hop = self.reach(&next, &format!("{what}: redirected (HTTP {}) to", answer.status))?;
            // Once without the headers, always without (a later hop back is still the same chain).
            if hop == Reach::WithoutHeaders {
                reach = Reach::WithoutHeaders;
            }
            current = next;
        }
        Err(SourceError::Config(format!("HTTP resource {}: more than {MAX_REDIRECTS} redirects", display_url(url))))
    }

    /// The watched URLs, ascending: the given ones, or what the index lists now.
    fn urls(&self) -> Result<Vec<String>, SourceError> {
        let mut urls = match &self.index {
            None => self.urls.clone(),
            Some(index) => {
                let listed = self.get(index, None)?.ok_json()?;
                let urls = listed.as_array().map(|a| a.iter().filter_map(|u| u.as_str().map(String::from)).collect());
                let urls: Vec<String> = urls
                    .ok_or_else(|| SourceError::Config(format!("indexUrl {}: not a JSON array", display_url(index))))?;
                // What the index lists is input, not authority: checked before anything is fetched.
                let listed_by = format!("indexUrl {} lists", display_url(index));
                for url in &urls {
                    self.reach(url, &listed_by)?;
                }
                urls
            }
        };
        urls.sort();
        urls.dedup();
        Ok(urls)
    }

    /// The resource at `url` now (`None`: 404/410), reusing `previous` on a 304.
    fn entry(&self, url: &str, previous: Option<&str>) -> Result<Option<Entry>, SourceError> {
        // An ETag is quoted (RFC 9110 8.8.3); anything else kept is a Last-Modified date.
        let condition = previous.map(|v| match v.starts_with('"') || v.starts_with("W/") {
            true => ("If-None-Match", v),
            false => ("If-Modified-Since", v),
        });
        let answer = self.get(url, condition)?;
        match (answer.status, previous) {
            (304, Some(version)) => Ok(Some(Entry { key: url.into(), version: version.into(), attrs: Map::new() })),
            (404 | 410, _) => Ok(None),
            (200..=299, _) => {
                let (etag, modified) = (answer.header("etag"), answer.header("last-modified"));
                let Some(version) = etag.or(modified) else {
                    let what = display_url(url);
                    return Err(SourceError::Config(format!("{what}: the answer has neither ETag nor Last-Modified")));
                };
                let mut attrs = Map::new();
                attrs.insert("url".into(), json!(url));
                attrs.insert("etag".into(), json!(etag));
                attrs.insert("lastModified".into(), json!(modified));
                attrs.insert("contentType".into(), json!(answer.header("content-type")));
                attrs.insert("contentLength".into(), json!(answer.body.len()));
                attrs.insert("status".into(), json!(answer.status));
                Ok(Some(Entry { key: url.into(), version: version.into(), attrs }))
            }
            _ => Err(answer.error()),
        }
    }
}

impl Lister for HttpLister {
    fn source_uri(&self) -> String {
        match (&self.index, self.urls.as_slice()) {
            (Some(index), _) => display_url(index),
            (None, [one]) => display_url(one),
            _ => "urn:owfeed:http".to_string(),
        }
    }

    fn event_type_prefix(&self) -> &'static str {
        "org.openwhisk.feeds.http.resource"
    }

    fn data_context(&self) -> Map<String, Value> {
        Map::new()
    }

    fn probe(&self) -> Result<(), SourceError> {
        match self.urls()?.first() {
            Some(url) => self.entry(url, None).map(|_| ()),
            None => Ok(()),
        }
    }

    fn list(
        &self,
        range: &ListRange,
        previous: Previous<'_>,
        page: &mut dyn FnMut(Vec<Entry>) -> Flow,
    ) -> Result<bool, SourceError> {
        let after = |k: &str| range.start_after.as_deref().is_none_or(|s| k > s);
        let before = |k: &str| range.end_before.as_deref().is_none_or(|e| k < e);
        for url in self.urls()?.into_iter().filter(|u| after(u) && before(u)) {
            // One resource per page: the core checks its deadline between requests.
            let found = self.entry(&url, previous.get(&url))?;
            if page(found.into_iter().collect()) == Flow::Stop {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn keeps_versions(&self) -> bool {
        true
    }

    fn notices(&self) -> Vec<String> {
        self.tls.notice("the watched URLs").into_iter().collect()
    }

    fn blob_store(&self) -> Option<Box<dyn BlobStore>> {
        None // the state goes to the store the user names (stateBucket)
    }
}
