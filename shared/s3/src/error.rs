//! `S3Error`: what went wrong talking to S3, classified so callers can act, with a message a
//! user can act on.
//!
//! The classification from status, S3 error `Code` and region hints is a plain function with no
//! I/O. Messages name the endpoint, bucket and key involved and the parameter to fix; they never
//! contain a secret (the secret access key and session token are never passed in here).

use std::fmt;

/// What kind of failure an [`S3Error`] is; callers branch on this, users read the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The credentials are valid but not allowed to do this (403 AccessDenied).
    AccessDenied,
    /// The access key id is unknown to the server.
    InvalidAccessKeyId,
    /// The signature does not verify: usually a wrong secret access key.
    SignatureDoesNotMatch,
    /// The bucket does not exist at this endpoint.
    NoSuchBucket,
    /// The bucket lives in another region than the one configured.
    WrongRegion,
    /// A conditional write lost: the object changed, exists, or vanished (412, 409, or 404 on If-Match).
    PreconditionFailed,
    /// The server asks to slow down (503 SlowDown, 429).
    Throttled,
    /// The server failed (5xx).
    Server,
    /// The response could not be understood: bad or cut XML, a body over the size limit.
    InvalidResponse,
    /// No usable answer: connection refused, DNS, TLS, timeout.
    Transport,
    /// The server rejected the request as malformed (400) or the request could not be built.
    BadRequest,
    /// The request's time differs from the server's by more than S3 allows (15 minutes): the
    /// clock of the machine running the action is wrong.
    ClockSkew,
    /// The bucket answers through another endpoint for now (307 TemporaryRedirect right after
    /// bucket creation, while DNS propagates): retry later.
    TemporaryRedirect,
    /// The server does not implement a feature the request uses (501, or 400 NotImplemented
    /// for conditional writes on Alibaba OSS).
    NotImplemented,
    /// Anything else.
    Other,
}

/// An S3 failure: its kind, the HTTP status and S3 `Code` when there was a response, and a
/// message that says what to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    /// The classification callers act on.
    pub kind: ErrorKind,
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The S3 error `Code`, when the server sent one.
    pub code: Option<String>,
    /// The user-facing message (also what `Display` prints).
    pub message: String,
}

impl S3Error {
    /// Builds an error with no HTTP response behind it.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> S3Error {
        S3Error { kind, status: None, code: None, message: message.into() }
    }

    /// True when repeating the same request later may succeed (throttling, server errors,
    /// transport failures, unreadable responses).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttled
                | ErrorKind::Server
                | ErrorKind::Transport
                | ErrorKind::InvalidResponse
                | ErrorKind::TemporaryRedirect
        )
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for S3Error {}

/// What the request was about, so an error message can name it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The endpoint as configured.
    pub endpoint: &'a str,
    /// The configured region.
    pub region: &'a str,
    /// The access key id (not a secret).
    pub access_key_id: &'a str,
    /// The bucket, when the request was about one.
    pub bucket: Option<&'a str>,
    /// The key, when the request was about one object.
    pub key: Option<&'a str>,
}

/// The parts of an error response that classification looks at.
#[derive(Debug, Clone, Default)]
pub struct ResponseFacts {
    /// The HTTP status.
    pub status: u16,
    /// The S3 error `Code` from the body.
    pub code: Option<String>,
    /// The S3 error `Message` from the body.
    pub server_message: Option<String>,
    /// The bucket's region from `x-amz-bucket-region` or the body's `Region`.
    pub region_hint: Option<String>,
    /// The body's `Endpoint` (redirects): the host to send the request to.
    pub endpoint_hint: Option<String>,
    /// The server's time (`ServerTime` of RequestTimeTooSkewed, or the `Date` header).
    pub server_time: Option<String>,
}

/// Classifies an error response by its S3 `Code` first, then by its status.
pub fn classify(status: u16, code: Option<&str>, region_hint: Option<&str>) -> ErrorKind {
    match code {
        Some("AccessDenied" | "AllAccessDisabled" | "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired") => {
            ErrorKind::AccessDenied
        }
        Some("InvalidAccessKeyId") => ErrorKind::InvalidAccessKeyId,
        Some("SignatureDoesNotMatch") => ErrorKind::SignatureDoesNotMatch,
        Some("NoSuchBucket") => ErrorKind::NoSuchBucket,
        Some("PermanentRedirect" | "IllegalLocationConstraintException" | "InvalidRegion") => ErrorKind::WrongRegion,
        Some("RequestTimeTooSkewed") => ErrorKind::ClockSkew,
        Some("TemporaryRedirect") => ErrorKind::TemporaryRedirect,
        // The server gave up waiting for the request body: a network hiccup, not our request.
        Some("RequestTimeout") => ErrorKind::Transport,
        Some("AuthorizationHeaderMalformed") if region_hint.is_some() => ErrorKind::WrongRegion,
        Some("PreconditionFailed" | "ConditionalRequestConflict") => ErrorKind::PreconditionFailed,
        Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequests") => {
            ErrorKind::Throttled
        }
        Some("InternalError" | "ServiceUnavailable") => ErrorKind::Server,
        Some("NotImplemented") => ErrorKind::NotImplemented,
        _ => match status {
            301 | 307 if region_hint.is_some() => ErrorKind::WrongRegion,
            307 => ErrorKind::TemporaryRedirect,
            400 => ErrorKind::BadRequest,
            403 => ErrorKind::AccessDenied,
            412 => ErrorKind::PreconditionFailed,
            429 => ErrorKind::Throttled,
            501 => ErrorKind::NotImplemented,
            500..=599 => ErrorKind::Server,
            _ => ErrorKind::Other,
        },
    }
}

/// Builds the error for an S3 error response, with a message naming what to check.
pub fn from_response(ctx: &Context<'_>, facts: ResponseFacts) -> S3Error {
    let kind = classify(facts.status, facts.code.as_deref(), facts.region_hint.as_deref());
    let code_label = facts.code.clone().unwrap_or_else(|| format!("HTTP {}", facts.status));
    let detail = match &facts.server_message {
        Some(m) if !m.is_empty() => format!("{code_label}: {}", shorten(m)),
        _ => code_label.clone(),
    };
    let endpoint = ctx.endpoint;
    let bucket = ctx.bucket.unwrap_or("");
    let object = match ctx.key {
        Some(key) => format!("key '{key}' in bucket '{bucket}'"),
        None => format!("bucket '{bucket}'"),
    };
    let message = match kind {
        ErrorKind::NoSuchBucket => format!("bucket '{bucket}' does not exist at {endpoint} ({code_label})"),
        ErrorKind::InvalidAccessKeyId => format!(
            "the access key id '{}' is not known at {endpoint} ({code_label}): check accessKeyId",
            ctx.access_key_id
        ),
        ErrorKind::SignatureDoesNotMatch => format!(
            "the secret access key does not match the access key id ({code_label}): check secretAccessKey"
        ),
        ErrorKind::AccessDenied if facts.code.is_none() => format!(
            "access to {object} denied at {endpoint} (HTTP {}): check accessKeyId, secretAccessKey and the key's permissions",
            facts.status
        ),
        ErrorKind::AccessDenied => format!(
            "access to {object} denied at {endpoint} ({detail}): check the credentials' permissions and sessionToken"
        ),
        ErrorKind::WrongRegion => match (&facts.endpoint_hint, &facts.region_hint) {
            // A 301 names the endpoint to use; the region alone would get the same 301 again.
            (Some(host), region) => {
                let host = host.strip_prefix(&format!("{bucket}.")).unwrap_or(host);
                let region = region.as_ref().map(|r| format!(" -p region {r}")).unwrap_or_default();
                format!(
                    "endpoint: bucket '{bucket}' must be reached through {host}, not {endpoint} ({code_label}): set -p endpoint https://{host}{region}"
                )
            }
            (None, Some(region)) => format!(
                "region: the bucket is in '{region}' (from x-amz-bucket-region / AuthorizationHeaderMalformed), set -p region {region}"
            ),
            (None, None) => {
                format!("region: bucket '{bucket}' is not in region '{}' ({detail}): check region", ctx.region)
            }
        },
        ErrorKind::ClockSkew => format!(
            "clock: this machine's clock differs from the server's by more than S3 allows ({code_label}; server time {}, our time {}): fix the clock (NTP) of the machine running the action; the credentials are fine",
            facts.server_time.as_deref().unwrap_or("unknown"),
            chrono_now(),
        ),
        ErrorKind::TemporaryRedirect => format!(
            "S3 redirects bucket '{bucket}' temporarily{} ({code_label}): a bucket created in the last minutes is not yet reachable through every endpoint (DNS propagation); retry later, or use the bucket's regional endpoint",
            facts.endpoint_hint.as_ref().map(|h| format!(" to {h}")).unwrap_or_default()
        ),
        ErrorKind::PreconditionFailed => {
            format!("conditional write of {object} rejected ({code_label}): the object exists or changed since it was read")
        }
        ErrorKind::Throttled => format!("S3 at {endpoint} asks to slow down ({detail}): retry later"),
        ErrorKind::Transport => format!("S3 at {endpoint} timed out waiting for the request ({detail}): retry later"),
        ErrorKind::Server => {
            format!("S3 at {endpoint} failed with HTTP {} ({detail}): retry later", facts.status)
        }
        ErrorKind::BadRequest => format!("S3 at {endpoint} rejected the request for {object} ({detail})"),
        ErrorKind::NotImplemented => {
            format!("S3 at {endpoint} does not implement this request for {object} ({detail})")
        }
        _ => format!("S3 at {endpoint} answered HTTP {} for {object} ({detail})", facts.status),
    };
    S3Error { kind, status: Some(facts.status), code: facts.code, message }
}

/// Now, from this machine's clock, to set beside the server's time.
fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Keeps server-supplied text short enough for a log line.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(status: u16, code: Option<&str>, region: Option<&str>, expected: ErrorKind) {
        assert_eq!(classify(status, code, region), expected, "classify({status}, {code:?}, {region:?})");
    }

    #[test]
    fn classification() {
        check(403, Some("AccessDenied"), None, ErrorKind::AccessDenied);
        check(403, Some("InvalidAccessKeyId"), None, ErrorKind::InvalidAccessKeyId);
        check(403, Some("SignatureDoesNotMatch"), None, ErrorKind::SignatureDoesNotMatch);
        check(404, Some("NoSuchBucket"), None, ErrorKind::NoSuchBucket);
        check(400, Some("AuthorizationHeaderMalformed"), Some("eu-west-1"), ErrorKind::WrongRegion);
        check(400, Some("AuthorizationHeaderMalformed"), None, ErrorKind::BadRequest);
        check(301, None, Some("eu-west-1"), ErrorKind::WrongRegion);
        check(301, Some("PermanentRedirect"), None, ErrorKind::WrongRegion);
        check(412, Some("PreconditionFailed"), None, ErrorKind::PreconditionFailed);
        check(409, Some("ConditionalRequestConflict"), None, ErrorKind::PreconditionFailed);
        check(503, Some("SlowDown"), None, ErrorKind::Throttled);
        check(429, None, None, ErrorKind::Throttled);
        check(500, Some("InternalError"), None, ErrorKind::Server);
        check(502, None, None, ErrorKind::Server);
        check(400, Some("InvalidArgument"), None, ErrorKind::BadRequest);
        check(403, None, None, ErrorKind::AccessDenied);
        check(418, None, None, ErrorKind::Other);
    }

    fn ctx() -> Context<'static> {
        Context {
            endpoint: "https://s3.example",
            region: "us-east-1",
            access_key_id: "AKID",
            bucket: Some("b"),
            key: None,
        }
    }

    #[track_caller]
    fn check_message(facts: ResponseFacts, expected: &str) {
        assert_eq!(from_response(&ctx(), facts).to_string(), expected);
    }

    fn facts(status: u16, code: &str, region: Option<&str>) -> ResponseFacts {
        ResponseFacts {
            status,
            code: Some(code.to_string()),
            region_hint: region.map(str::to_string),
            ..ResponseFacts::default()
        }
    }

    #[test]
    fn messages_say_what_to_fix() {
        check_message(
            facts(404, "NoSuchBucket", None),
            "bucket 'b' does not exist at https://s3.example (NoSuchBucket)",
        );
        check_message(
            facts(403, "SignatureDoesNotMatch", None),
            "the secret access key does not match the access key id (SignatureDoesNotMatch): check secretAccessKey",
        );
        check_message(
            facts(403, "InvalidAccessKeyId", None),
            "the access key id 'AKID' is not known at https://s3.example (InvalidAccessKeyId): check accessKeyId",
        );
        check_message(
            facts(400, "AuthorizationHeaderMalformed", Some("eu-west-1")),
            "region: the bucket is in 'eu-west-1' (from x-amz-bucket-region / AuthorizationHeaderMalformed), set -p region eu-west-1",
        );
        let slow = ResponseFacts {
            server_message: Some("Please reduce your request rate.".into()),
            ..facts(503, "SlowDown", None)
        };
        check_message(
            slow,
            "S3 at https://s3.example asks to slow down (SlowDown: Please reduce your request rate.): retry later",
        );
    }

    #[test]
    fn redirects_clock_skew_and_timeouts_say_what_to_do() {
        check(400, Some("RequestTimeTooSkewed"), None, ErrorKind::ClockSkew);
        check(403, Some("RequestTimeTooSkewed"), None, ErrorKind::ClockSkew);
        check(400, Some("RequestTimeout"), None, ErrorKind::Transport);
        check(307, Some("TemporaryRedirect"), None, ErrorKind::TemporaryRedirect);
        check(307, None, None, ErrorKind::TemporaryRedirect);
        check(400, Some("NotImplemented"), None, ErrorKind::NotImplemented);
        check(501, None, None, ErrorKind::NotImplemented);

        let moved = ResponseFacts {
            endpoint_hint: Some("b.s3.eu-west-1.amazonaws.com".into()),
            region_hint: Some("eu-west-1".into()),
            ..facts(301, "PermanentRedirect", None)
        };
        check_message(
            moved,
            "endpoint: bucket 'b' must be reached through s3.eu-west-1.amazonaws.com, not https://s3.example (PermanentRedirect): set -p endpoint https://s3.eu-west-1.amazonaws.com -p region eu-west-1",
        );
        let skewed = ResponseFacts {
            server_time: Some("2026-11-27T17:00:00Z".into()),
            ..facts(403, "RequestTimeTooSkewed", None)
        };
        let message = from_response(&ctx(), skewed).to_string();
        assert!(message.starts_with("clock: this machine's clock differs from the server's"), "{message}");
        assert!(message.contains("server time 2026-11-27T17:00:00Z"), "{message}");
        assert!(message.contains("the credentials are fine"), "{message}");
        let timeout = from_response(&ctx(), facts(400, "RequestTimeout", None));
        assert!(timeout.is_retryable(), "{timeout}");
        assert!(timeout.message.ends_with("retry later"), "{timeout}");
        let fresh = ResponseFacts {
            endpoint_hint: Some("b.s3-eu-west-1.amazonaws.com".into()),
            ..facts(307, "TemporaryRedirect", None)
        };
        let fresh = from_response(&ctx(), fresh);
        assert!(fresh.is_retryable(), "{fresh}");
        assert!(fresh.message.contains("DNS propagation"), "{fresh}");
        assert!(fresh.message.contains("to b.s3-eu-west-1.amazonaws.com"), "{fresh}");
    }

    #[test]
    fn retryable_kinds() {
        for (kind, retryable) in [
            (ErrorKind::Throttled, true),
            (ErrorKind::Server, true),
            (ErrorKind::Transport, true),
            (ErrorKind::InvalidResponse, true),
            (ErrorKind::SignatureDoesNotMatch, false),
            (ErrorKind::PreconditionFailed, false),
            (ErrorKind::NoSuchBucket, false),
        ] {
            assert_eq!(S3Error::new(kind, "x").is_retryable(), retryable, "{kind:?}");
        }
    }
}
