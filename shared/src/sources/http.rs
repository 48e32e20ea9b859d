//! The `http` source: web resources watched by `ETag` (else `Last-Modified`) with conditional
//! GETs, so an unchanged resource costs a 304. Keys are the URLs; 404 and 410 mean absent.
//! It keeps its versions (`keeps_versions`) to send them back, and no state of its own.

use serde_json::{json, Map, Value};

use crate::http::{display_url, HttpClient, HttpConfig, HttpTls, Request, Response};
use crate::params::{ParamError, Params};
use crate::secret::Secret;
use crate::source::{BlobStore, Entry, Flow, ListRange, Lister, ParamSpec, Previous, Source, SourceError};

/// The `http` source plugin.
pub struct HttpSource;

const PARAMS: &[ParamSpec] = &[
    ParamSpec { name: "url", secret: false, required: true, doc: "the URL(s) to watch (or indexUrl)" },
    ParamSpec { name: "indexUrl", secret: false, required: false, doc: "a JSON array of the URLs to watch" },
    ParamSpec { name: "headers", secret: true, required: false, doc: "request headers (auth), a JSON object" },
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
        let tls = HttpTls::from_params(params)?;
        let client = HttpClient::new(HttpConfig { tls: tls.clone(), ..HttpConfig::default() })
            .map_err(|e| ParamError { name: "caCertificate".into(), expected: e, got: None })?;
        Ok(Box::new(HttpLister { urls, index, headers, client, tls }))
    }
}

/// `headers` as (name, value) pairs, the values secrets from here on; errors quote no value.
fn header_pairs(v: &Value) -> Result<Vec<(String, Secret)>, ParamError> {
    let bad = || ParamError::invalid_secret("headers", "a JSON object of header names to string values");
    let pairs = v.as_object().ok_or_else(bad)?.iter();
    let token =
        |k: &str| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
    pairs.map(|(k, v)| Ok((k.clone(), Secret::new(v.as_str().filter(|_| token(k)).ok_or_else(bad)?)))).collect()
}

struct HttpLister {
    urls: Vec<String>,
    index: Option<String>,
    headers: Vec<(String, Secret)>,
    client: HttpClient,
    tls: HttpTls,
}

impl HttpLister {
    /// GETs `url` with the user's headers (and a condition); any failure to get an answer fails.
    fn get(&self, url: &str, condition: Option<(&'static str, &str)>) -> Result<Response, SourceError> {
        let what = format!("HTTP resource {}", display_url(url));
        let mut request = Request::get(url, &what).with_header("Accept", "*/*");
        for (name, value) in &self.headers {
            request = request.with_header(name, value.expose());
        }
        if let Some((name, value)) = condition {
            request = request.with_header(name, value);
        }
        Ok(self.client.send(&request)?)
    }

    /// The watched URLs, ascending: the given ones, or what the index lists now.
    fn urls(&self) -> Result<Vec<String>, SourceError> {
        let mut urls = match &self.index {
            None => self.urls.clone(),
            Some(index) => {
                let listed = self.get(index, None)?.ok_json()?;
                let urls = listed.as_array().map(|a| a.iter().filter_map(|u| u.as_str().map(String::from)).collect());
                urls.ok_or_else(|| SourceError::Config(format!("indexUrl {}: not a JSON array", display_url(index))))?
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
