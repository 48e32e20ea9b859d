//! `S3Client`: the only I/O in this crate. Builds each request, signs it with SigV4, sends it
//! with a blocking ureq agent and turns the answer into a value or an [`S3Error`].
//!
//! Signing follows S3's rules, not the generic SigV4 defaults: keys are percent-encoded once
//! here and the signer neither re-encodes nor normalises the path (so `%`, `//` and `/./` in
//! keys verify), and the payload hash is sent as `x-amz-content-sha256`. Parsing of bodies lives
//! in `xml`; error classification in `error`.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{Method, Request};

use crate::config::{Endpoint, S3Config};
use crate::encode::{encode_component, encode_key};
use crate::error::{from_response, Context, ErrorKind, ResponseFacts, S3Error};
use crate::xml::{parse_error_body, parse_list_objects_v2, strip_quotes, ListPage, ListParseError};

/// Time allowed to open a connection (TLS included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Parameters of one ListObjectsV2 call; `Default` lists from the start with the server's page size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Group keys by this delimiter into `ListPage::common_prefixes`.
    pub delimiter: Option<String>,
    /// Only keys after this one (UTF-8 binary order on AWS).
    pub start_after: Option<String>,
    /// The `next_continuation_token` of the previous page.
    pub continuation_token: Option<String>,
    /// Page size; the server caps it at 1000.
    pub max_keys: Option<u32>,
}

/// A precondition for [`S3Client::put_object`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Write unconditionally.
    None,
    /// Write only if no object exists under the key (`If-None-Match: *`).
    IfNoneMatchStar,
    /// Write only if the current object has this ETag, sent quoted as RFC 7232 says (quotes in
    /// the value are optional).
    IfMatch(String),
    /// Like `IfMatch`, with the ETag sent without quotes: some stores (DigitalOcean Spaces and
    /// others) answer 412 to the quoted form and accept only this one.
    IfMatchUnquoted(String),
}

/// An object read by [`S3Client::get_object`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOutput {
    /// The object's bytes.
    pub body: Vec<u8>,
    /// The ETag without quotes; empty when the server sent none.
    pub etag: String,
    /// The `Last-Modified` header as sent.
    pub last_modified: Option<String>,
}

/// A blocking S3 client for one endpoint and one set of credentials.
pub struct S3Client {
    config: S3Config,
    endpoint: Endpoint,
    agent: ureq::Agent,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A response with its body read (within the size limit).
struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

impl S3Client {
    /// Validates the configuration (endpoint, region, access key id) and builds the HTTP agent.
    pub fn new(config: S3Config) -> Result<S3Client, S3Error> {
        let endpoint = Endpoint::parse(&config.endpoint)?;
        let bad = |message: &str| Err(S3Error::new(ErrorKind::BadRequest, message));
        if config.region.trim().is_empty() || config.region.contains(|c: char| c.is_whitespace() || c == '/') {
            return bad(&format!("region: '{}' is not a region name such as us-east-1", config.region));
        }
        if config.access_key_id.trim().is_empty()
            || config.access_key_id.contains(|c: char| c.is_whitespace() || c == '/')
        {
            return bad("accessKeyId: expected a non-empty access key id without spaces or '/'");
        }
        if config.secret_access_key.expose().is_empty() {
            return bad("secretAccessKey: expected a non-empty secret access key");
        }
        let tls = crate::config::tls_config(
            config.ca_certificates_pem.as_deref(),
            config.insecure_skip_tls_verify,
            "caCertificate",
        )
        .map_err(|e| S3Error::new(ErrorKind::BadRequest, e))?;
        let agent_config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            // S3 redirects mean a wrong region; following them would re-send to another host.
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(config.timeout))
            .build();
        Ok(S3Client { config, endpoint, agent: crate::net::http_agent(agent_config) })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Lists one page of objects (ListObjectsV2). A body that cannot be parsed is an
    /// [`ErrorKind::InvalidResponse`] error, never an empty page.
    pub fn list_objects_v2(&self, bucket: &str, request: &ListRequest) -> Result<ListPage, S3Error> {
        let ctx = self.context(bucket, None);
        let mut query = vec![("list-type", "2".to_string())];
        let optional = [
            ("continuation-token", &request.continuation_token),
            ("delimiter", &request.delimiter),
            ("prefix", &request.prefix),
            ("start-after", &request.start_after),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        if let Some(max_keys) = request.max_keys {
            query.push(("max-keys", max_keys.to_string()));
        }
        if self.config.list_url_encoding {
            query.push(("encoding-type", "url".to_string()));
        }
        let reply = self.execute(&ctx, Method::GET, bucket, None, &query, &[], Vec::new())?;
        if reply.status != 200 {
            return Err(self.error_from(&ctx, &reply));
        }
        parse_list_objects_v2(&reply.body, self.config.list_url_encoding).map_err(|e| match e {
            ListParseError::Malformed(detail) => S3Error {
                kind: ErrorKind::InvalidResponse,
                status: Some(reply.status),
                code: None,
                message: format!("invalid listing from {} for bucket '{bucket}': {detail}", self.config.endpoint),
            },
            ListParseError::ErrorDocument(body) => from_response(
                &ctx,
                ResponseFacts {
                    status: reply.status,
                    code: body.code,
                    server_message: body.message,
                    region_hint: body.region,
                    endpoint_hint: body.endpoint,
                    server_time: body.server_time,
                },
            ),
        })
    }

    /// Reads an object; `Ok(None)` when the key does not exist.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Option<GetOutput>, S3Error> {
        let ctx = self.context(bucket, Some(key));
        let reply = self.execute(&ctx, Method::GET, bucket, Some(key), &[], &[], Vec::new())?;
        match reply.status {
            200 => Ok(Some(GetOutput {
                etag: reply.header("etag").map(|e| strip_quotes(&e).to_string()).unwrap_or_default(),
                last_modified: reply.header("last-modified"),
                body: reply.body,
            })),
            404 => {
                let error = self.error_from(&ctx, &reply);
                if error.kind == ErrorKind::NoSuchBucket {
                    Err(error)
                } else {
                    Ok(None)
                }
            }
            _ => Err(self.error_from(&ctx, &reply)),
        }
    }

    /// Whether an object exists (HEAD object): `Ok(true)` on 200, `Ok(false)` on 404.
    pub fn head_object(&self, bucket: &str, key: &str) -> Result<bool, S3Error> {
        let ctx = self.context(bucket, Some(key));
        let reply = self.execute(&ctx, Method::HEAD, bucket, Some(key), &[], &[], Vec::new())?;
        match reply.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.error_from(&ctx, &reply)),
        }
    }

    /// Writes an object under `cond`; returns the new ETag without quotes (empty when the server
    /// sent none). A lost condition (412, 409 ConditionalRequestConflict, or 404 for `IfMatch`
    /// on a missing key) is an [`ErrorKind::PreconditionFailed`] error.
    pub fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>, cond: Condition) -> Result<String, S3Error> {
        let ctx = self.context(bucket, Some(key));
        let headers: Vec<(&str, String)> = match &cond {
            Condition::None => Vec::new(),
            Condition::IfNoneMatchStar => vec![("if-none-match", "*".to_string())],
            Condition::IfMatch(etag) => vec![("if-match", format!("\"{}\"", strip_quotes(etag)))],
            Condition::IfMatchUnquoted(etag) => vec![("if-match", strip_quotes(etag).to_string())],
        };
        let reply = self.execute(&ctx, Method::PUT, bucket, Some(key), &[], &headers, body)?;
        if (200..300).contains(&reply.status) {
            return Ok(reply.header("etag").map(|e| strip_quotes(&e).to_string()).unwrap_or_default());
        }
        let mut error = self.error_from(&ctx, &reply);
        let missing_key = reply.status == 404 && error.kind != ErrorKind::NoSuchBucket;
        if missing_key && matches!(cond, Condition::IfMatch(_) | Condition::IfMatchUnquoted(_)) {
            error.kind = ErrorKind::PreconditionFailed;
            error.message =
                format!("conditional write of key '{key}' in bucket '{bucket}' rejected: the object no longer exists");
        }
        Err(error)
    }

    /// Deletes an object; a missing key is not an error.
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        let ctx = self.context(bucket, Some(key));
        let reply = self.execute(&ctx, Method::DELETE, bucket, Some(key), &[], &[], Vec::new())?;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        let error = self.error_from(&ctx, &reply);
        if reply.status == 404 && error.kind != ErrorKind::NoSuchBucket {
            return Ok(());
        }
        Err(error)
    }

    /// Creates a bucket in the configured region; a bucket this account already owns is fine.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let ctx = self.context(bucket, None);
        // us-east-1 is the default location and AWS rejects naming it explicitly.
        let body = if self.config.region == "us-east-1" {
            Vec::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.config.region
            )
            .into_bytes()
        };
        let reply = self.execute(&ctx, Method::PUT, bucket, None, &[], &[], body)?;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        let error = self.error_from(&ctx, &reply);
        if error.code.as_deref() == Some("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(error)
    }

    /// Checks that the bucket exists and the credentials reach it (HEAD bucket). HEAD answers
    /// carry no error body, so a 403 cannot tell a wrong secret from a missing permission.
    pub fn head_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let ctx = self.context(bucket, None);
        let reply = self.execute(&ctx, Method::HEAD, bucket, None, &[], &[], Vec::new())?;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        let mut facts = self.facts(&reply);
        if reply.status == 404 {
            // The only 404 a bucket HEAD can give; the bodiless answer has no Code to say so.
            facts.code = Some("NoSuchBucket".to_string());
        }
        Err(from_response(&ctx, facts))
    }

    /// Reads the bucket's notification configuration (`GET /{bucket}?notification`): the XML
    /// as the server sent it.
    pub fn get_bucket_notification(&self, bucket: &str) -> Result<Vec<u8>, S3Error> {
        let ctx = self.context(bucket, None);
        let query = [("notification", String::new())];
        let reply = self.execute(&ctx, Method::GET, bucket, None, &query, &[], Vec::new())?;
        if reply.status == 200 {
            return Ok(reply.body);
        }
        Err(self.error_from(&ctx, &reply))
    }

    /// Replaces (AWS, MinIO) or merges by `Id` (Ceph RGW) the bucket's notification
    /// configuration (`PUT /{bucket}?notification`).
    pub fn put_bucket_notification(&self, bucket: &str, body: Vec<u8>) -> Result<(), S3Error> {
        let ctx = self.context(bucket, None);
        let query = [("notification", String::new())];
        let headers = [("content-type", "application/xml".to_string())];
        let reply = self.execute(&ctx, Method::PUT, bucket, None, &query, &headers, body)?;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        Err(self.error_from(&ctx, &reply))
    }

    /// Removes one notification by `Id` (`DELETE /{bucket}?notification={id}`), a Ceph RGW
    /// extension; an unknown id is not an error there.
    pub fn delete_bucket_notification(&self, bucket: &str, id: &str) -> Result<(), S3Error> {
        let ctx = self.context(bucket, None);
        let query = [("notification", id.to_string())];
        let reply = self.execute(&ctx, Method::DELETE, bucket, None, &query, &[], Vec::new())?;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        Err(self.error_from(&ctx, &reply))
    }

    /// One AWS Query API call to this endpoint (`POST /`, form body, SigV4 for `service`), as
    /// SNS and Ceph RGW's topics take them; returns the XML answer. `form` is `Action` and its
    /// parameters, encoded here; an `<ErrorResponse>` becomes an [`S3Error`] naming the action.
    pub fn query_api(&self, service: &str, form: &[(&str, &str)]) -> Result<Vec<u8>, S3Error> {
        let action = form.iter().find(|(k, _)| *k == "Action").map(|(_, v)| *v).unwrap_or("call");
        let endpoint = &self.config.endpoint;
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect::<Vec<_>>()
            .join("&");
        let uri = format!("{}://{}/", self.endpoint.scheme, self.endpoint.authority(None));
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .body(body.into_bytes())
            .map_err(|e| S3Error::new(ErrorKind::BadRequest, format!("{service} {action}: request: {e}")))?;
        sign_request_for(&self.config, &mut request, SystemTime::now(), service)?;
        let ctx = Context {
            endpoint,
            region: &self.config.region,
            access_key_id: &self.config.access_key_id,
            bucket: None,
            key: None,
        };
        let mut response = self.agent.run(request).map_err(|e| self.transport_error(&ctx, e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.config.max_response_bytes)
            .read_to_vec()
            .map_err(|e| self.transport_error(&ctx, e))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let parsed = crate::xml::parse_xml(&body).ok();
        let error = parsed.as_ref().map(|root| root.child("Error").unwrap_or(root));
        let code = error.and_then(|e| e.child_text("Code")).map(str::to_string);
        let said = error.and_then(|e| e.child_text("Message")).unwrap_or_default();
        let kind = crate::error::classify(status, code.as_deref(), None);
        let label = code.clone().unwrap_or_else(|| format!("HTTP {status}"));
        let detail: String = said.trim().chars().take(200).collect();
        let message = match kind {
            ErrorKind::SignatureDoesNotMatch => format!(
                "{service} {action} at {endpoint}: the secret access key does not match the access key id ({label}): check secretAccessKey"
            ),
            ErrorKind::InvalidAccessKeyId => format!(
                "{service} {action} at {endpoint}: the access key id '{}' is not known ({label}): check accessKeyId",
                self.config.access_key_id
            ),
            _ if detail.is_empty() => format!("{service} {action} at {endpoint} failed (HTTP {status}, {label})"),
            _ => format!("{service} {action} at {endpoint} failed (HTTP {status}, {label}: {detail})"),
        };
        Err(S3Error { kind, status: Some(status), code, message })
    }

    fn context<'a>(&'a self, bucket: &'a str, key: Option<&'a str>) -> Context<'a> {
        Context {
            endpoint: &self.config.endpoint,
            region: &self.config.region,
            access_key_id: &self.config.access_key_id,
            bucket: Some(bucket),
            key,
        }
    }

    fn facts(&self, reply: &Reply) -> ResponseFacts {
        let body = parse_error_body(&reply.body).unwrap_or_default();
        ResponseFacts {
            status: reply.status,
            code: body.code,
            server_message: body.message,
            region_hint: reply.header("x-amz-bucket-region").or(body.region),
            endpoint_hint: body.endpoint,
            // A HEAD answer has no body; its Date header is the server's time.
            server_time: body.server_time.or_else(|| reply.header("date")),
        }
    }

    fn error_from(&self, ctx: &Context<'_>, reply: &Reply) -> S3Error {
        from_response(ctx, self.facts(reply))
    }

    /// Builds, signs and sends one request, then reads the whole body within the size limit.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        ctx: &Context<'_>,
        method: Method,
        bucket: &str,
        key: Option<&str>,
        query: &[(&str, String)],
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, S3Error> {
        let request = self.build_request(method, bucket, key, query, headers, body)?;
        let send = |mut request: Request<Vec<u8>>| {
            sign_request(&self.config, &mut request, SystemTime::now())?;
            let result = if request.body().is_empty() && request.method() != Method::PUT {
                self.agent.run(request.map(|_| ()))
            } else {
                self.agent.run(request)
            };
            Ok::<_, S3Error>(result)
        };
        let mut result = send(request.clone())?;
        if result.as_ref().is_err_and(closed_before_answering) {
            // A pooled connection the server closed as we reused it (a server closes one
            // after answering a request whose body it did not read): the request never
            // reached it, so sending it once more on a fresh connection is safe.
            result = send(request)?;
        }
        let mut response = result.map_err(|e| self.transport_error(ctx, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.body_mut().with_config().limit(self.config.max_response_bytes).read_to_vec().map_err(
            |e| match e {
                // The headers arrived, so a failing read is a cut body, not an unreachable server.
                ureq::Error::Io(io) => S3Error {
                    kind: ErrorKind::InvalidResponse,
                    status: Some(status),
                    code: None,
                    message: format!("response body from {} was cut short: {io}", ctx.endpoint),
                },
                other => self.transport_error(ctx, other),
            },
        )?;
        Ok(Reply { status, headers, body })
    }

    /// The request for one bucket (and optionally one key), with path- or virtual-hosted addressing.
    fn build_request(
        &self,
        method: Method,
        bucket: &str,
        key: Option<&str>,
        query: &[(&str, String)],
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Request<Vec<u8>>, S3Error> {
        check_bucket_name(bucket)?;
        if key.is_some_and(str::is_empty) {
            return Err(S3Error::new(ErrorKind::BadRequest, format!("key: empty object key in bucket '{bucket}'")));
        }
        // A bucket name with dots cannot be a TLS host name under a wildcard certificate
        // (*.s3.amazonaws.com matches one label): such buckets go path style, as the SDKs do.
        let path_style = self.config.path_style || (bucket.contains('.') && self.endpoint.scheme == "https");
        let (authority, mut path) = if path_style {
            (self.endpoint.authority(None), format!("/{}", encode_component(bucket)))
        } else {
            (self.endpoint.authority(Some(bucket)), String::new())
        };
        match key {
            Some(key) => {
                path.push('/');
                path.push_str(&encode_key(key));
            }
            None if path.is_empty() => path.push('/'),
            None => {}
        }
        let mut uri = format!("{}://{authority}{path}", self.endpoint.scheme);
        for (i, (name, value)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(name);
            uri.push('=');
            uri.push_str(&encode_component(value));
        }
        let mut builder = Request::builder().method(method).uri(&uri);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(body).map_err(|e| {
            S3Error::new(ErrorKind::BadRequest, format!("request for bucket '{bucket}' could not be built: {e}"))
        })
    }

    fn transport_error(&self, ctx: &Context<'_>, error: ureq::Error) -> S3Error {
        let endpoint = ctx.endpoint;
        let tls_advice = if self.config.ca_certificates_pem.is_some() {
            "check the endpoint scheme, and that caCertificate holds the CA that signed the server's certificate"
        } else {
            "check the endpoint scheme; for a private CA or a self-signed certificate give the CA's PEM as -p caCertificate (or, not recommended, -p insecureSkipTlsVerify true)"
        };
        let (kind, message) = match &error {
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::TlsRequired => {
                (ErrorKind::Transport, format!("TLS: {error} talking to {endpoint}: {tls_advice}"))
            }
            // rustls reports handshake and certificate failures as InvalidData I/O errors.
            ureq::Error::Io(io) if self.endpoint.scheme == "https" && io.kind() == std::io::ErrorKind::InvalidData => {
                (ErrorKind::Transport, format!("TLS: {io} talking to {endpoint}: {tls_advice}"))
            }
            ureq::Error::Protocol(_) => (
                ErrorKind::Transport,
                format!("transport: {endpoint} did not speak HTTP ({error}): check the endpoint scheme/port"),
            ),
            ureq::Error::Timeout(which) => (
                ErrorKind::Transport,
                format!(
                    "timeout: no answer from {endpoint} ({which} timeout, overall limit {:?})",
                    self.config.timeout
                ),
            ),
            ureq::Error::HostNotFound => {
                (ErrorKind::Transport, format!("endpoint: the host of {endpoint} was not found (DNS)"))
            }
            ureq::Error::BodyExceedsLimit(limit) => {
                (ErrorKind::InvalidResponse, format!("response from {endpoint} is larger than the {limit}-byte limit"))
            }
            _ => (ErrorKind::Transport, format!("transport: cannot talk to {endpoint}: {error}")),
        };
        S3Error::new(kind, message)
    }
}

/// Rejects bucket names that cannot form a request path or host name.
fn check_bucket_name(bucket: &str) -> Result<(), S3Error> {
    let ok = !bucket.is_empty()
        && bucket.len() <= 255
        && bucket.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(S3Error::new(
            ErrorKind::BadRequest,
            format!("bucket: '{bucket}' is not a bucket name (letters, digits, '.', '-', '_')"),
        ))
    }
}

/// Signs `request` in place with SigV4 for S3 at `time`: single percent-encoding, no path
/// normalisation, `x-amz-content-sha256` over the body, and the session token (when set) signed
/// as `x-amz-security-token`.
pub fn sign_request(config: &S3Config, request: &mut Request<Vec<u8>>, time: SystemTime) -> Result<(), S3Error> {
    sign_request_for(config, request, time, "s3")
}

/// Like [`sign_request`], for another service of the credential scope (`sns` for the Query API
/// calls an S3 server's topics take: AWS SNS, Ceph RGW).
pub fn sign_request_for(
    config: &S3Config,
    request: &mut Request<Vec<u8>>,
    time: SystemTime,
    service: &str,
) -> Result<(), S3Error> {
    let credentials = Credentials::new(
        config.access_key_id.clone(),
        config.secret_access_key.expose().to_string(),
        config.session_token.as_ref().map(|t| t.expose().to_string()),
        None,
        "owfeed-s3",
    );
    let identity = Identity::from(credentials);
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let signing_error =
        |what: &str, e: &dyn std::fmt::Display| S3Error::new(ErrorKind::BadRequest, format!("signing: {what}: {e}"));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&config.region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| signing_error("bad signing parameters", &e))?
        .into();
    let instructions = {
        let uri = request.uri().to_string();
        let mut headers = Vec::new();
        for (name, value) in request.headers() {
            let value = value.to_str().map_err(|e| signing_error("header value is not ASCII", &e))?;
            headers.push((name.as_str(), value));
        }
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers.into_iter(),
            SignableBody::Bytes(request.body()),
        )
        .map_err(|e| signing_error("request cannot be signed", &e))?;
        let (instructions, _signature) =
            sign(signable, &params).map_err(|e| signing_error("request cannot be signed", &e))?.into_parts();
        instructions
    };
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// Whether the server closed the connection without a byte of an answer (ureq's "Peer
/// disconnected": the request was not processed).
fn closed_before_answering(error: &ureq::Error) -> bool {
    matches!(error, ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    fn config(token: Option<&str>) -> S3Config {
        let mut config =
            S3Config::new("http://127.0.0.1:9000", "us-east-1", "AKIDEXAMPLE", SecretString::new("s3cr3t"));
        config.session_token = token.map(SecretString::new);
        config
    }

    fn signed(config: S3Config, key: &str) -> Request<Vec<u8>> {
        let client = S3Client::new(config.clone()).unwrap();
        let query = [("list-type", "2".to_string()), ("start-after", "a b+c".to_string())];
        let mut request =
            client.build_request(Method::PUT, "bucket", Some(key), &query, &[], b"body".to_vec()).unwrap();
        sign_request(&config, &mut request, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)).unwrap();
        request
    }

    /// A server that takes each request on a kept-alive connection and closes the connection
    /// without answering the second one (as a server does when it dropped an idle connection
    /// just as the client reused it); every new connection gets answers.
    #[test]
    fn a_request_the_server_closed_unanswered_is_sent_once_more() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                for answered in 0.. {
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        line.clear();
                    }
                    if answered == 1 {
                        break;
                    }
                    let reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                    if stream.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut config = config(None);
        config.endpoint = format!("http://127.0.0.1:{port}");
        config.path_style = true;
        let client = S3Client::new(config).unwrap();
        client.head_bucket("bucket").unwrap();
        client.head_bucket("bucket").expect("the unanswered request is sent again on a new connection");
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    fn header(request: &Request<Vec<u8>>, name: &str) -> String {
        request.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    }

    #[test]
    fn session_token_is_sent_and_signed() {
        let request = signed(config(Some("TOKEN/with+chars=")), "k");
        assert_eq!(header(&request, "x-amz-security-token"), "TOKEN/with+chars=");
        let authorization = header(&request, "authorization");
        assert!(authorization.contains("x-amz-security-token"), "{authorization}");
        assert!(!authorization.contains("s3cr3t"), "{authorization}");
    }

    #[test]
    fn payload_hash_is_sent_and_signed() {
        let request = signed(config(None), "k");
        // sha256("body")
        assert_eq!(
            header(&request, "x-amz-content-sha256"),
            "230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5"
        );
        assert!(header(&request, "authorization").contains("x-amz-content-sha256"));
        assert!(header(&request, "x-amz-security-token").is_empty());
    }

    #[test]
    fn paths_and_queries_are_encoded_once() {
        let request = signed(config(None), "/a b/./c%+");
        assert_eq!(request.uri().path(), "/bucket//a%20b/./c%25%2B");
        assert_eq!(request.uri().query(), Some("list-type=2&start-after=a%20b%2Bc"));
        let mut virtual_hosted = config(None);
        virtual_hosted.path_style = false;
        let request = signed(virtual_hosted, "k");
        assert_eq!(request.uri().to_string(), "http://bucket.127.0.0.1:9000/k?list-type=2&start-after=a%20b%2Bc");
    }

    #[test]
    fn dotted_buckets_over_tls_go_path_style() {
        let mut aws = config(None);
        aws.endpoint = "https://s3.eu-west-1.amazonaws.com".into();
        aws.path_style = false;
        let client = S3Client::new(aws).unwrap();
        let dotted = client.build_request(Method::GET, "logs.example.com", Some("k"), &[], &[], Vec::new()).unwrap();
        assert_eq!(dotted.uri().to_string(), "https://s3.eu-west-1.amazonaws.com/logs.example.com/k");
        let plain = client.build_request(Method::GET, "logs", Some("k"), &[], &[], Vec::new()).unwrap();
        assert_eq!(plain.uri().to_string(), "https://logs.s3.eu-west-1.amazonaws.com/k");
    }

    #[test]
    fn bad_input_is_named() {
        let client = S3Client::new(config(None)).unwrap();
        let err = client.build_request(Method::GET, "a/b", None, &[], &[], Vec::new()).unwrap_err();
        assert!(err.message.starts_with("bucket: 'a/b'"), "{err}");
        let err = client.build_request(Method::GET, "b", Some(""), &[], &[], Vec::new()).unwrap_err();
        assert!(err.message.starts_with("key: "), "{err}");
        let mut bad = config(None);
        bad.endpoint = "localhost:9000".into();
        assert!(S3Client::new(bad).unwrap_err().message.starts_with("endpoint: "));
        let mut bad = config(None);
        bad.region = String::new();
        assert!(S3Client::new(bad).unwrap_err().message.starts_with("region: "));
    }
}
