//! The receiving side of Amazon SNS: S3 → SNS topic → HTTPS subscription → `receive`.
//!
//! SNS POSTs a JSON envelope with the header `x-amz-sns-message-type`. A hook with
//! `source=s3` and `provider=aws` judges such a request here instead of by the hook's token:
//! SNS cannot send our token, it signs the envelope instead.
//!
//! # What is checked, in order
//! 1. The envelope: the header's type equals the body's `Type` (`Notification`,
//!    `SubscriptionConfirmation`, `UnsubscribeConfirmation`), every field the type needs is a
//!    string, `SignatureVersion` is `1` (SHA1withRSA) or `2` (SHA256withRSA). Else 400.
//! 2. `TopicArn` is the trigger's own topic, the config parameter `topicArn`. Else 403.
//! 3. `SigningCertURL` is `https://sns.<region>.amazonaws.com[.cn]/….pem`, `<region>` being
//!    the region of the topic (the partition picks `.com` or `.com.cn`); no user-info, no other
//!    port. Else 403. AWS's validators accept any `sns.*.amazonaws.com(.cn)` host
//!    (aws/aws-js-sns-message-validator index.js `defaultHostPattern`,
//!    aws/aws-php-sns-message-validator src/MessageValidator.php `$defaultHostPattern`); the
//!    topic's own region is narrower and is where SNS serves the certificate from.
//! 4. `Timestamp` is within [`REPLAY_WINDOW`] of now (see "Replays"). Else 403, before any
//!    fetch.
//! 5. The certificate is fetched over TLS verified against the public roots, without
//!    following redirects, and kept in process memory by URL (the action process stays warm
//!    between activations; SNS rotates certificates under new URLs). A fetch that fails is a
//!    502, which SNS retries; a refusal (a 4xx, not a certificate) is remembered for
//!    [`REFUSAL_TTL`], a transient failure for [`TRANSIENT_TTL`], so repeating a bad URL costs
//!    no fetch. Nothing before the signature has verified writes anything (the receiver's
//!    rule): a stranger can cost us at most one fetch per distinct URL on the SNS host.
//! 6. The signature (base64 `Signature`) over the canonical string verifies with the
//!    certificate's RSA key. Else 403.
//!
//! # The canonical string
//! `Name\nvalue\n` for each field, in this order, values JSON-unescaped (AWS SNS Developer
//! Guide, "Verifying the signatures of Amazon SNS messages"):
//! - `Notification`: `Message`, `MessageId`, `Subject` (only when present), `Timestamp`,
//!   `TopicArn`, `Type`;
//! - `SubscriptionConfirmation` and `UnsubscribeConfirmation`: `Message`, `MessageId`,
//!   `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`.
//!
//! The same lists as aws/aws-sdk-java-v2 `SignatureValidator.buildCanonicalMessage` and, field
//! by field, aws/aws-php-sns-message-validator `getStringToSign` (which adds every field of
//! one list that is present). aws/aws-js-sns-message-validator signs an
//! `UnsubscribeConfirmation` without `Token`; we follow the documentation and the other two.
//!
//! # What each type does
//! - `SubscriptionConfirmation`: only after the signature verifies, and only when the
//!   `SubscribeURL` is `https://` on the SNS host of the topic's region with
//!   `Action=ConfirmSubscription` and our `TopicArn`, is it fetched (GET, no redirects): never
//!   an arbitrary URL. 200 when SNS confirmed.
//! - `Notification`: `Message` is the S3 event (`Records`, or S3's `s3:TestEvent`) and goes
//!   through [`super::push`] exactly as a Ceph or MinIO push does, so the events, ids,
//!   filters, `format` and `batch` are the same; a redelivered notification carries the same
//!   records, so it fires the same ids.
//! - `UnsubscribeConfirmation`: acknowledged (200), logged, nothing fired or fetched.
//!
//! # Replays
//! A signed message stays valid forever, and its unsigned fields and whitespace can change
//! without breaking the signature, so a captured notification could be replayed in endless
//! variants. Two limits, neither in AWS's own validators:
//! - `Timestamp` (signed: the time SNS published the message, the same on every retry) must
//!   be at most [`REPLAY_WINDOW`] old and at most [`CLOCK_SKEW`] in the future. SNS retries an
//!   HTTP/S delivery for at most 3600 s: "The total policy retry time for an HTTP/S endpoint
//!   cannot be greater than 3,600 seconds. This is a hard limit and cannot be increased" (AWS
//!   SNS Developer Guide, "Amazon SNS message delivery retries",
//!   docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html); the window adds
//!   [`CLOCK_SKEW`] for clocks that differ.
//! - The receiver remembers the `MessageId`s of notifications it delivered (see
//!   `receiver`, [`Verified`]), and keys a cut batch by `MessageId` rather than by the body's
//!   bytes, so every variant of one message is the same delivery.
//!
//! # The test switch
//! The trusted hosts and TLS roots are an [`SnsTrust`] value held by the
//! [`super::deliveries::S3Deliveries`] in the registry the binary's `main` passes to
//! `hooks::receiver::receive`. The shipped `receive` action uses [`SnsTrust::AWS`]
//! (`S3Deliveries::AWS`) and no parameter or environment variable can change it (OpenWhisk
//! turns `init` parameters into environment variables, so an environment switch would be
//! settable by users). Only a test fixture binary (`tests/src/bin/sns-test-receive.rs`),
//! never packaged, builds one with [`SnsTrust::with_test_host`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rustls_pki_types::{alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm};
use serde_json::{json, Value};

use super::push::{self, PushSettings};
use crate::hooks::extension::Verified;
use crate::hooks::{HookConfig, HookRequest, HookResponse, Outcome};
use crate::params::{ParamError, Params};
use crate::runtime::log;

/// The header SNS names the message type in.
pub const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";
/// The config parameter holding the trigger's SNS topic ARN (written by the registration).
pub const TOPIC_ARN_PARAM: &str = "topicArn";
/// Largest certificate document accepted from a `SigningCertURL`.
const MAX_CERT_BYTES: u64 = 64 * 1024;
/// Certificates kept in memory (SNS uses one or two at a time per region).
const MAX_CACHED_CERTS: usize = 16;
/// `Retry-After` when the certificate or the confirmation could not be fetched.
const RETRY_AFTER_SECS: &str = "30";
/// How old a message's `Timestamp` may be: SNS's hard limit on retrying one (see "Replays")
/// plus [`CLOCK_SKEW`].
pub const REPLAY_WINDOW: Duration = Duration::from_secs(3600 + CLOCK_SKEW.as_secs());
/// How far clocks may differ: a `Timestamp` this far in the future is accepted.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// How long a certificate URL that was refused (a 4xx, or not a certificate) is not fetched
/// again: SNS never names a certificate it does not serve.
pub const REFUSAL_TTL: Duration = Duration::from_secs(600);
/// How long a certificate URL whose fetch failed transiently (no answer, a 5xx) is not fetched
/// again: shorter than SNS's default 20 s between retries, so a retry fetches anew.
pub const TRANSIENT_TTL: Duration = Duration::from_secs(15);
/// Certificate URLs whose refusal is remembered.
const MAX_CACHED_REFUSALS: usize = 64;
/// How long fetching a certificate or confirming may take: SNS waits 15 s for our answer.
const FETCH_TIME: Duration = Duration::from_secs(5);

/// The SNS message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// A message published to the topic (here: an S3 event).
    Notification,
    /// Sent once after `Subscribe`: confirm by fetching `SubscribeURL`.
    SubscriptionConfirmation,
    /// Sent after the subscription was removed.
    UnsubscribeConfirmation,
}

impl MessageType {
    /// Parses the `Type` value (exact spelling, as SNS sends it).
    pub fn parse(value: &str) -> Option<MessageType> {
        match value {
            "Notification" => Some(MessageType::Notification),
            "SubscriptionConfirmation" => Some(MessageType::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(MessageType::UnsubscribeConfirmation),
            _ => None,
        }
    }

    /// The `Type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Notification => "Notification",
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

/// `SignatureVersion`: which hash the RSA PKCS#1 v1.5 signature uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureVersion {
    /// SHA-1, the topic default.
    V1,
    /// SHA-256 (topic attribute `SignatureVersion=2`).
    V2,
}

/// An SNS topic ARN, `arn:<partition>:sns:<region>:<account>:<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicArn {
    /// The whole ARN, as compared with a message's `TopicArn`.
    pub arn: String,
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// The topic's region, which names the SNS host.
    pub region: String,
}

impl TopicArn {
    /// Parses an ARN; partitions other than `aws`, `aws-cn` and `aws-us-gov` are refused.
    pub fn parse(arn: &str) -> Result<TopicArn, String> {
        let parts: Vec<&str> = arn.split(':').collect();
        let [prefix, partition, service, region, account, name] = parts[..] else {
            return Err("an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)".into());
        };
        let region_ok =
            region.len() >= 3 && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if prefix != "arn"
            || service != "sns"
            || !["aws", "aws-cn", "aws-us-gov"].contains(&partition)
            || !region_ok
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
            || !name_ok
        {
            return Err("an SNS topic ARN (arn:aws|aws-cn|aws-us-gov:sns:REGION:ACCOUNT:NAME)".into());
        }
        Ok(TopicArn { arn: arn.to_string(), partition: partition.to_string(), region: region.to_string() })
    }

    /// Reads the config parameter `topicArn` (`None` while the registration has not stored it).
    pub fn from_params(params: &Params) -> Result<Option<TopicArn>, ParamError> {
        let Some(raw) = params.str(TOPIC_ARN_PARAM)?.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
        TopicArn::parse(raw.trim())
            .map(Some)
            .map_err(|expected| ParamError::invalid(TOPIC_ARN_PARAM, &expected, &Value::String(raw)))
    }

    /// The SNS host of the topic's region: `sns.<region>.amazonaws.com`, `.com.cn` in China.
    pub fn sns_host(&self) -> String {
        let suffix = if self.partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
        format!("sns.{}.{suffix}", self.region)
    }
}

/// A parsed SNS envelope; only the fields the signature covers, plus how it is signed.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// `Type`.
    pub kind: MessageType,
    /// `Message`: the published text (for S3, the event JSON).
    pub message: String,
    /// `MessageId`: the same on SNS's retries.
    pub message_id: String,
    /// `Subject` (notifications, optional).
    pub subject: Option<String>,
    /// `SubscribeURL` (confirmations).
    pub subscribe_url: Option<String>,
    /// `Timestamp` (signed).
    pub timestamp: String,
    /// `Token` (confirmations).
    pub token: Option<String>,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `SignatureVersion`.
    pub signature_version: SignatureVersion,
    /// The decoded `Signature`.
    pub signature: Vec<u8>,
    /// `SigningCertURL`.
    pub signing_cert_url: String,
}

/// Why an SNS request is not served: the kind decides the answer, the message says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnsError {
    /// What went wrong, as the sender can act on it.
    pub kind: SnsErrorKind,
    /// What exactly, naming the field or URL (never a token).
    pub message: String,
}

/// The kinds of [`SnsError`], one HTTP answer each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnsErrorKind {
    /// Not an SNS message we can read: 400.
    Malformed,
    /// Read, but not trusted (signature, host, topic, time): 403.
    Refused,
    /// What verifying or confirming needs could not be had now (SNS retries): 502.
    Unavailable,
}

impl SnsError {
    fn new(kind: SnsErrorKind, message: impl Into<String>) -> SnsError {
        SnsError { kind, message: message.into() }
    }

    /// The receiver's answer to it.
    pub fn response(&self) -> HookResponse {
        match self.kind {
            SnsErrorKind::Malformed => HookResponse::error(400, &self.message),
            SnsErrorKind::Refused => HookResponse::error(403, &self.message),
            SnsErrorKind::Unavailable => {
                HookResponse::error(502, &self.message).with_header("Retry-After", RETRY_AFTER_SECS)
            }
        }
    }
}

impl std::fmt::Display for SnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SnsError {}

impl Envelope {
    /// Parses the body of a request whose `x-amz-sns-message-type` header is `header_type`.
    /// Every error is `Malformed`.
    pub fn parse(header_type: &str, body: &[u8]) -> Result<Envelope, SnsError> {
        let malformed = |m: String| SnsError::new(SnsErrorKind::Malformed, m);
        let kind = MessageType::parse(header_type.trim()).ok_or_else(|| {
            malformed(format!("{MESSAGE_TYPE_HEADER}: unknown SNS message type {:?}", shorten(header_type)))
        })?;
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Err(malformed("SNS message: the body is not a JSON object".into()));
        };
        let field = |name: &str| -> Result<Option<String>, SnsError> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(malformed(format!("SNS message: {name} is not a string"))),
            }
        };
        let required = |name: &str| field(name)?.ok_or_else(|| malformed(format!("SNS message: no {name}")));
        let body_type = required("Type")?;
        if body_type != kind.as_str() {
            return Err(malformed(format!(
                "SNS message: Type {:?} differs from the {MESSAGE_TYPE_HEADER} header",
                shorten(&body_type)
            )));
        }
        let confirmation = kind != MessageType::Notification;
        let for_confirmation = |name: &str| if confirmation { required(name).map(Some) } else { Ok(None) };
        let signature_version = match required("SignatureVersion")?.as_str() {
            "1" => SignatureVersion::V1,
            "2" => SignatureVersion::V2,
            other => {
                return Err(malformed(format!("SNS message: SignatureVersion {:?} is not 1 or 2", shorten(other))))
            }
        };
        let signature = BASE64
            .decode(required("Signature")?.trim())
            .map_err(|_| malformed("SNS message: Signature is not base64".to_string()))?;
        Ok(Envelope {
            kind,
            message: required("Message")?,
            message_id: required("MessageId")?,
            subject: if confirmation { None } else { field("Subject")? },
            subscribe_url: for_confirmation("SubscribeURL")?,
            timestamp: required("Timestamp")?,
            token: for_confirmation("Token")?,
            topic_arn: required("TopicArn")?,
            signature_version,
            signature,
            signing_cert_url: required("SigningCertURL")?,
        })
    }

    /// The envelope of an SNS request. With raw message delivery SNS posts the bare message,
    /// with no envelope and no signature: refused with a message saying so.
    pub fn of_request(req: &HookRequest) -> Result<Envelope, SnsError> {
        if req.header("x-amz-sns-rawdelivery").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Err(SnsError::new(
                SnsErrorKind::Malformed,
                "SNS raw message delivery is on: it sends no signature, turn it off for this subscription",
            ));
        }
        Envelope::parse(req.header(MESSAGE_TYPE_HEADER).unwrap_or_default(), &req.body)
    }

    /// The string SNS signs (see the module docs for the field lists and their sources).
    pub fn string_to_sign(&self) -> String {
        let mut fields: Vec<(&str, &str)> = vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.push(("Timestamp", &self.timestamp));
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                fields.push(("SubscribeURL", self.subscribe_url.as_deref().unwrap_or_default()));
                fields.push(("Timestamp", &self.timestamp));
                fields.push(("Token", self.token.as_deref().unwrap_or_default()));
            }
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", self.kind.as_str()));
        fields.iter().map(|(name, value)| format!("{name}\n{value}\n")).collect()
    }

    /// Checks that `Timestamp` is within [`REPLAY_WINDOW`] before `now` and [`CLOCK_SKEW`]
    /// after it (see "Replays"). No I/O.
    pub fn check_timestamp(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, SnsError> {
        let refused = |m: String| SnsError::new(SnsErrorKind::Refused, m);
        let at = DateTime::parse_from_rfc3339(self.timestamp.trim())
            .map_err(|_| refused("SNS message: Timestamp is not an RFC 3339 time".to_string()))?
            .to_utc();
        let window = chrono::Duration::from_std(REPLAY_WINDOW).unwrap_or_default();
        let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
        if at < now - window || at > now + skew {
            return Err(refused(format!(
                "SNS message: Timestamp {} is outside the {} s SNS retries a message for (a replay, or this clock is off)",
                shorten(&self.timestamp),
                REPLAY_WINDOW.as_secs()
            )));
        }
        Ok(at)
    }

    /// Checks the signature with a DER X.509 certificate's RSA key. No I/O.
    pub fn verify(&self, certificate_der: &[u8]) -> Result<(), SnsError> {
        let der = CertificateDer::from(certificate_der);
        let cert = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| refused(format!("the signing certificate is not a valid X.509 certificate ({e})")))?;
        let algorithm: &dyn SignatureVerificationAlgorithm = match self.signature_version {
            SignatureVersion::V1 => &RSA_PKCS1_SHA1,
            SignatureVersion::V2 => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        };
        cert.verify_signature(algorithm, self.string_to_sign().as_bytes(), &self.signature)
            .map_err(|_| refused("the SNS signature does not verify with the signing certificate".to_string()))
    }
}

/// RSA PKCS#1 v1.5 with SHA-1 (`SignatureVersion` 1), for webpki's signature check. webpki
/// has no SHA-1 algorithm of its own (TLS does not need it); ring's verifier does the work.
#[derive(Debug)]
struct RsaPkcs1Sha1;

static RSA_PKCS1_SHA1: RsaPkcs1Sha1 = RsaPkcs1Sha1;

/// `sha1WithRSAEncryption` (1.2.840.113549.1.1.5) with NULL parameters, the contents of its
/// AlgorithmIdentifier (only used in webpki's error values).
const SHA1_WITH_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00];

impl SignatureVerificationAlgorithm for RsaPkcs1Sha1 {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }
    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }
    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SHA1_WITH_RSA)
    }
}

fn refused(message: String) -> SnsError {
    SnsError::new(SnsErrorKind::Refused, message)
}

/// Which hosts may serve signing certificates and confirm subscriptions, and which TLS roots
/// the receiver trusts for them.
#[derive(Clone)]
pub struct SnsTrust {
    /// A `host:port` trusted besides the SNS hosts, with the TLS config that trusts its CA.
    test: Option<(String, ureq::tls::TlsConfig)>,
}

impl std::fmt::Debug for SnsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsTrust").field("test_host", &self.test.as_ref().map(|(h, _)| h)).finish()
    }
}

impl SnsTrust {
    /// What the shipped `receive` trusts: the SNS host of the topic's region, over TLS
    /// verified against the public roots.
    pub const AWS: SnsTrust = SnsTrust { test: None };

    /// [`SnsTrust::AWS`].
    pub fn aws() -> SnsTrust {
        SnsTrust::AWS
    }

    /// For tests only (see the module docs): also trust `https://{host_port}` with the CA
    /// certificates in `ca_pem`, standing in for SNS. Scheme, path and signature rules stay.
    pub fn with_test_host(host_port: &str, ca_pem: &str) -> Result<SnsTrust, String> {
        let tls = owfeed_s3::tls_config(Some(ca_pem), false, "test CA")?;
        Ok(SnsTrust { test: Some((host_port.to_ascii_lowercase(), tls)) })
    }

    /// Checks that `url` is `https://` on the topic's SNS host (or the test host): no
    /// user-info, default port. Returns the parsed URL; every error is `Refused`.
    fn trusted_url(&self, url: &str, topic: &TopicArn, what: &str) -> Result<ureq::http::Uri, SnsError> {
        let uri: ureq::http::Uri = url.parse().map_err(|_| refused(format!("{what} is not a URL")))?;
        if uri.scheme_str() != Some("https") {
            return Err(refused(format!("{what} is not an https:// URL")));
        }
        let Some(authority) = uri.authority() else { return Err(refused(format!("{what} has no host"))) };
        if authority.as_str().contains('@') {
            return Err(refused(format!("{what} carries user-info")));
        }
        let host = authority.host().to_ascii_lowercase();
        let sns = host == topic.sns_host() && matches!(authority.port_u16(), None | Some(443));
        let test = self.test.as_ref().is_some_and(|(h, _)| *h == authority.as_str().to_ascii_lowercase());
        if !sns && !test {
            return Err(refused(format!("{what} is not on {}, the SNS host of the topic's region", topic.sns_host())));
        }
        Ok(uri)
    }

    /// Checks a `SigningCertURL`: a trusted URL whose path ends in `.pem`.
    pub fn check_cert_url(&self, url: &str, topic: &TopicArn) -> Result<(), SnsError> {
        let uri = self.trusted_url(url, topic, "SigningCertURL")?;
        if !uri.path().ends_with(".pem") || uri.query().is_some() {
            return Err(refused("SigningCertURL is not a .pem certificate URL".into()));
        }
        Ok(())
    }

    /// Checks a `SubscribeURL`: a trusted URL asking `Action=ConfirmSubscription` for `topic`.
    pub fn check_subscribe_url(&self, url: &str, topic: &TopicArn) -> Result<(), SnsError> {
        let uri = self.trusted_url(url, topic, "SubscribeURL")?;
        let request = HookRequest { query: uri.query().unwrap_or_default().to_string(), ..HookRequest::default() };
        if request.query_param("Action").as_deref() != Some("ConfirmSubscription") {
            return Err(refused("SubscribeURL does not ask for ConfirmSubscription".into()));
        }
        if request.query_param("TopicArn").as_deref() != Some(topic.arn.as_str()) {
            return Err(refused("SubscribeURL is for another topic".into()));
        }
        Ok(())
    }

    fn agent(&self) -> ureq::Agent {
        let mut config = ureq::Agent::config_builder();
        if let Some((_, tls)) = &self.test {
            config = config.tls_config(tls.clone());
        }
        // No redirects: a redirect could lead off the trusted host.
        owfeed_s3::http_agent(
            config
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(FETCH_TIME))
                .timeout_global(Some(FETCH_TIME))
                .user_agent("owfeed")
                .build(),
        )
    }

    /// The DER certificate at a checked `SigningCertURL`, from the process's cache or fetched.
    /// A failed fetch is remembered too ([`REFUSAL_TTL`], [`TRANSIENT_TTL`]): the same URL
    /// fails again without a fetch until then.
    pub fn certificate(&self, url: &str) -> Result<Arc<Vec<u8>>, SnsError> {
        self.cached_certificate(url).map_err(|m| SnsError::new(SnsErrorKind::Unavailable, m))
    }

    fn cached_certificate(&self, url: &str) -> Result<Arc<Vec<u8>>, String> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
        static REFUSED: OnceLock<Mutex<HashMap<String, (String, Instant)>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let refused = REFUSED.get_or_init(Default::default);
        if let Some(der) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(url) {
            return Ok(der.clone());
        }
        if let Some((error, until)) = refused.lock().unwrap_or_else(|p| p.into_inner()).get(url) {
            if Instant::now() < *until {
                return Err(format!("{error} (remembered: not fetched again yet)"));
            }
        }
        let der = match self.fetch_certificate(url) {
            Ok(der) => Arc::new(der),
            Err((error, transient)) => {
                let ttl = if transient { TRANSIENT_TTL } else { REFUSAL_TTL };
                let mut refused = refused.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                refused.retain(|_, (_, until)| now < *until);
                if refused.len() >= MAX_CACHED_REFUSALS {
                    refused.clear();
                }
                refused.insert(url.to_string(), (error.clone(), now + ttl));
                return Err(error);
            }
        };
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_CERTS {
            cache.clear();
        }
        cache.insert(url.to_string(), der.clone());
        Ok(der)
    }

    /// The certificate's DER, or why not and whether that may pass (no answer, a 5xx).
    fn fetch_certificate(&self, url: &str) -> Result<Vec<u8>, (String, bool)> {
        let refused = |e: String| (e, false);
        let mut resp =
            self.agent().get(url).call().map_err(|e| (format!("fetching the SNS signing certificate: {e}"), true))?;
        if resp.status() != 200 {
            let status = resp.status().as_u16();
            return Err((
                format!("fetching the SNS signing certificate: HTTP {status}"),
                status >= 500 || status == 429,
            ));
        }
        let pem = resp
            .body_mut()
            .with_config()
            .limit(MAX_CERT_BYTES)
            .read_to_vec()
            .map_err(|e| (format!("reading the SNS signing certificate: {e}"), true))?;
        let der = ureq::tls::parse_pem(&pem)
            .find_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert.der().to_vec()),
                _ => None,
            })
            .ok_or_else(|| refused("the SNS signing certificate URL did not serve a PEM certificate".into()))?;
        webpki::EndEntityCert::try_from(&CertificateDer::from(der.as_slice()))
            .map_err(|e| refused(format!("the SNS signing certificate is not a valid X.509 certificate ({e})")))?;
        Ok(der)
    }

    /// Confirms a subscription: GET of a checked `SubscribeURL`.
    pub fn confirm(&self, url: &str) -> Result<(), SnsError> {
        let unavailable = |m: String| SnsError::new(SnsErrorKind::Unavailable, m);
        let resp =
            self.agent().get(url).call().map_err(|e| unavailable(format!("confirming the SNS subscription: {e}")))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(unavailable(format!("confirming the SNS subscription: SNS answered HTTP {status}"))),
        }
    }
}

/// True when the request is for this module: an S3 hook of provider `aws` and a POST with
/// the SNS message-type header.
pub fn is_sns_request(req: &HookRequest) -> bool {
    req.method == "POST" && req.header(MESSAGE_TYPE_HEADER).is_some()
}

/// SNS's wait for an answer: "The connection will time out in 15 seconds" (AWS SNS Developer
/// Guide, "Step 1: Make sure your endpoint is ready to process Amazon SNS messages",
/// docs.aws.amazon.com/sns/latest/dg/SendMessageToHttp.prepare.html).
pub const SNS_WAIT: Duration = Duration::from_secs(15);

/// Judges an SNS request (see the module docs): verifies it, confirms a subscription, or
/// maps a notification's S3 event to the events to fire. Fetches the signing certificate
/// and the confirmation URL; fires nothing itself. `Verified` is set once the signature has
/// verified: only then may the receiver write anything for this request.
pub fn receive(
    config: &HookConfig,
    settings: &PushSettings,
    params: &Params,
    req: &HookRequest,
    trust: &SnsTrust,
) -> (Outcome, Option<Verified>) {
    let mut verified = None;
    match receive_inner(config, settings, params, req, trust, &mut verified) {
        Ok(outcome) => (outcome, verified),
        Err(response) => (Outcome::Respond(response), verified),
    }
}

/// `Err` is a refusal; answers that are no refusal (a confirmation) are `Ok(Outcome::Respond)`.
fn receive_inner(
    config: &HookConfig,
    settings: &PushSettings,
    params: &Params,
    req: &HookRequest,
    trust: &SnsTrust,
    verified: &mut Option<Verified>,
) -> Result<Outcome, HookResponse> {
    config.check_size(req)?;
    let envelope = Envelope::of_request(req).map_err(|e| e.response())?;
    // SNS retries a 5xx: a confirmation that arrives before the registration stored the
    // topic is answered again once it has.
    let topic = match TopicArn::from_params(params) {
        Ok(Some(topic)) => topic,
        Ok(None) => {
            return Err(HookResponse::error(503, "the hook has no topicArn yet: retry")
                .with_header("Retry-After", RETRY_AFTER_SECS))
        }
        Err(e) => return Err(HookResponse::error(500, format!("the hook's config is invalid: {e}"))),
    };
    if envelope.topic_arn != topic.arn {
        return Err(HookResponse::error(403, "SNS message: TopicArn is not this trigger's topic"));
    }
    trust.check_cert_url(&envelope.signing_cert_url, &topic).map_err(|e| e.response())?;
    // Signed: an old one is refused before anything is fetched for it.
    let at = envelope.check_timestamp(Utc::now()).map_err(|e| e.response())?;
    let der = trust.certificate(&envelope.signing_cert_url).map_err(|e| {
        log(&format!("receive: {e}"));
        e.response()
    })?;
    envelope.verify(&der).map_err(|e| e.response())?;
    *verified = Some(Verified {
        message_id: envelope.message_id.clone(),
        timestamp: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        // Stored in the receiver's record since before the extension point: keep the form.
        record_key: format!("sns:{}", envelope.message_id),
        replay_window: REPLAY_WINDOW,
    });
    match envelope.kind {
        MessageType::SubscriptionConfirmation => {
            let url = envelope.subscribe_url.as_deref().unwrap_or_default();
            trust.check_subscribe_url(url, &topic).map_err(|e| e.response())?;
            // The confirmation token is SNS's, not ours, but it confirms the subscription: it
            // stays out of logs and answers, whatever the HTTP client's error says.
            let token = envelope.token.clone().filter(|t| !t.is_empty());
            trust.confirm(url).map_err(|mut e| {
                if let Some(t) = &token {
                    e.message = e.message.replace(t.as_str(), "[token]");
                }
                log(&format!("receive: {e}"));
                e.response()
            })?;
            log(&format!("receive: confirmed the SNS subscription to {}", topic.arn));
            Ok(Outcome::Respond(HookResponse::new(200, json!({"status": "confirmed", "topicArn": topic.arn}))))
        }
        MessageType::UnsubscribeConfirmation => {
            log(&format!("receive: SNS unsubscribed this hook from {}; nothing fired", topic.arn));
            Ok(Outcome::Respond(HookResponse::new(200, json!({"status": "unsubscribed", "topicArn": topic.arn}))))
        }
        MessageType::Notification => {
            let body: Value = serde_json::from_str(&envelope.message).map_err(|_| {
                HookResponse::error(400, "SNS notification: Message is not JSON (expected an S3 event)")
            })?;
            Ok(push::outcome(config, settings, &body))
        }
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_PEM: &str = include_str!("testdata/sns-test-cert.pem");
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:owfeed-uploads";
    const MESSAGE: &str =
        "{\"Records\":[{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectCreated:Put\"}],\n\"note\":\"line two\"}";
    /// `openssl dgst -sha1 -sign` (and `-sha256`) with the test key over the canonical string
    /// of `notification()`, written out in `the_canonical_strings_follow_the_aws_lists`.
    const SIG_SHA1: &str = "CsmEar7TxepCIruThv0k1Qnd923dIxHf3Q5PDhSOgd/rVhQnlHcoBP8H6zkOMEpFZscHCUWMWQV3DaZ2DWXkUp4nPIZ+neEf+63XxMKlz9QbDaRLs5HZQ/pexY8bCB5Xg2W+Ave8y4obtZFUaDAfWbZINVqA7cWqqU7M8v3FZb4vdzEPgO3I+cVWhnpgE1oEi5bf2K3Aw1EDEFyazJFm6hrXi3i6xnaCqpykm0yfCMFlIKK9efJAkIWEbJlNGs5CMEF6QyLueW29MirDYFDHCjD5YqS3Mrmt+4D5evNpResrvQIiS3iKdgLJfyh29tpihrlpT7l9FT7XXV5x4+Jksg==";
    const SIG_SHA256: &str = "Ppq7uSUfAPXH6LmWCadmzFS5rZbjgmRbDFUwBaFMkTNdUa3vSXbeeQKkB90fAUBnl1nHrwcuU4tFtm7PTyESSwbY7BSbECxTXiZul76XtGcYT6WOehecALTXHFGLkZPNDh3d8Lh91d38e2leXmxcJ5EgvDbQNtcjrWo8tG4XNITDWaH3vJzw3IPCdcQMGW73LFB5Djp5GOjvPNgpPmXL3B4Rohljb/rNxy4pWD/x+1SO9UB6VBRnHZnyRiF1L3O6lcSqjFhFQNQKsqXPEpSlLZjaBNuQXRL9gM4JQwVdDby+5qmCeDClNXDRWMWahTiUEnupi7d/nW/q4sGvSdQF2Q==";

    fn cert_der() -> Vec<u8> {
        ureq::tls::parse_pem(CERT_PEM.as_bytes())
            .find_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.der().to_vec()),
                _ => None,
            })
            .unwrap()
    }

    fn notification(version: &str, signature: &str) -> Value {
        json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": TOPIC,
            "Subject": "Amazon S3 Notification",
            "Message": MESSAGE,
            "Timestamp": "2026-11-27T18:00:00.250Z",
            "SignatureVersion": version,
            "Signature": signature,
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"
        })
    }

    fn parse(body: &Value) -> Result<Envelope, SnsError> {
        Envelope::parse(body["Type"].as_str().unwrap_or("Notification"), body.to_string().as_bytes())
    }

    #[test]
    fn the_canonical_strings_follow_the_aws_lists() {
        let n = parse(&notification("1", SIG_SHA1)).unwrap();
        let expected = format!(
            "Message\n{MESSAGE}\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\nAmazon S3 Notification\nTimestamp\n2026-11-27T18:00:00.250Z\nTopicArn\n{TOPIC}\nType\nNotification\n"
        );
        assert_eq!(n.string_to_sign(), expected);
        // Without Subject (or with a null one) the field is left out.
        let mut no_subject = notification("1", SIG_SHA1);
        no_subject["Subject"] = Value::Null;
        assert!(!parse(&no_subject).unwrap().string_to_sign().contains("Subject"));
        for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
            let c = json!({"Type": kind, "MessageId": "m", "Token": "t0k", "TopicArn": TOPIC, "Message": "hi",
                "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t0k",
                "Timestamp": "2026-11-27T18:00:00.250Z", "SignatureVersion": "2", "Signature": "AAAA",
                "SigningCertURL": "https://sns.us-east-1.amazonaws.com/a.pem", "Subject": "ignored"});
            assert_eq!(
                parse(&c).unwrap().string_to_sign(),
                format!("Message\nhi\nMessageId\nm\nSubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t0k\nTimestamp\n2026-11-27T18:00:00.250Z\nToken\nt0k\nTopicArn\n{TOPIC}\nType\n{kind}\n")
            );
        }
    }

    #[test]
    fn signatures_v1_and_v2_verify_and_tampering_does_not() {
        let der = cert_der();
        parse(&notification("1", SIG_SHA1)).unwrap().verify(&der).unwrap();
        parse(&notification("2", SIG_SHA256)).unwrap().verify(&der).unwrap();
        // The other hash, a changed field, a changed signature byte.
        assert!(parse(&notification("2", SIG_SHA1)).unwrap().verify(&der).is_err());
        assert!(parse(&notification("1", SIG_SHA256)).unwrap().verify(&der).is_err());
        let mut tampered = notification("1", SIG_SHA1);
        tampered["Message"] = json!(MESSAGE.replace("Put", "Copy"));
        assert!(parse(&tampered).unwrap().verify(&der).is_err());
        let mut tampered = notification("1", SIG_SHA1);
        tampered["Subject"] = Value::Null;
        assert!(parse(&tampered).unwrap().verify(&der).is_err());
        let mut sig = BASE64.decode(SIG_SHA256).unwrap();
        sig[10] ^= 1;
        assert!(parse(&notification("2", &BASE64.encode(sig))).unwrap().verify(&der).is_err());
        assert!(parse(&notification("2", SIG_SHA256)).unwrap().verify(b"not a certificate").is_err());
    }

    #[test]
    fn malformed_envelopes_are_refused_with_a_reason() {
        let good = notification("1", SIG_SHA1);
        let with = |k: &str, v: Value| {
            let mut b = good.clone();
            b[k] = v;
            b
        };
        let cases = [
            (with("SignatureVersion", json!("3")), "SNS message: SignatureVersion \"3\" is not 1 or 2"),
            (with("SignatureVersion", json!(1)), "SNS message: SignatureVersion is not a string"),
            (with("Signature", json!("%%%")), "SNS message: Signature is not base64"),
            (with("Message", Value::Null), "SNS message: no Message"),
            (with("TopicArn", json!(["x"])), "SNS message: TopicArn is not a string"),
            (
                with("Type", json!("SubscriptionConfirmation")),
                "SNS message: Type \"SubscriptionConfirmation\" differs from the x-amz-sns-message-type header",
            ),
        ];
        for (body, message) in cases {
            let err = Envelope::parse("Notification", body.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.kind, SnsErrorKind::Malformed, "{body}");
            assert_eq!(err.message, message, "{body}");
        }
        assert_eq!(
            Envelope::parse("Notification", b"[1]").unwrap_err().message,
            "SNS message: the body is not a JSON object"
        );
        assert!(Envelope::parse("Other", good.to_string().as_bytes())
            .unwrap_err()
            .message
            .contains("unknown SNS message type"));
        // Raw message delivery: no envelope to verify.
        let raw = HookRequest {
            method: "POST".into(),
            headers: [
                (MESSAGE_TYPE_HEADER.to_string(), "Notification".to_string()),
                ("x-amz-sns-rawdelivery".to_string(), "true".to_string()),
            ]
            .into(),
            query: String::new(),
            body: good.to_string().into_bytes(),
        };
        assert_eq!(
            Envelope::of_request(&raw).unwrap_err().message,
            "SNS raw message delivery is on: it sends no signature, turn it off for this subscription"
        );
        let mut signed = raw.clone();
        signed.headers.remove("x-amz-sns-rawdelivery");
        assert!(Envelope::of_request(&signed).is_ok());
        // A confirmation needs its SubscribeURL and Token.
        let mut c = with("Type", json!("SubscriptionConfirmation"));
        c["SubscribeURL"] = json!("https://sns.us-east-1.amazonaws.com/");
        assert_eq!(
            Envelope::parse("SubscriptionConfirmation", c.to_string().as_bytes()).unwrap_err().message,
            "SNS message: no Token"
        );
    }

    /// SNS retries an HTTP/S delivery for at most 3600 s ("The total policy retry time for an
    /// HTTP/S endpoint cannot be greater than 3,600 seconds. This is a hard limit", AWS SNS
    /// Developer Guide, "Amazon SNS message delivery retries"), with the same signed
    /// `Timestamp` each time: older is a replay.
    #[test]
    fn timestamps_outside_snss_retry_window_are_refused() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T18:00:00Z").unwrap().to_utc();
        let at = |t: &str| {
            let mut n = notification("1", SIG_SHA1);
            n["Timestamp"] = json!(t);
            parse(&n).unwrap().check_timestamp(now)
        };
        assert!(at("2026-11-27T18:00:00.250Z").is_ok());
        assert!(at("2026-11-27T17:00:00.000Z").is_ok(), "an hour of retries");
        assert!(at("2026-11-27T16:55:00.000Z").is_ok(), "plus the clock skew");
        assert!(at("2026-11-27T18:05:00.000Z").is_ok(), "a clock a little behind SNS's");
        let old = at("2026-11-27T16:54:59.000Z").unwrap_err();
        assert!(old.message.contains("outside the 3900 s"), "{old}");
        assert_eq!(old.response().status, 403);
        assert!(at("2001-01-01T00:00:00.000Z").is_err());
        assert!(at("2026-11-27T18:05:01.000Z").is_err(), "from the future");
        assert_eq!(at("yesterday").unwrap_err().message, "SNS message: Timestamp is not an RFC 3339 time");
    }

    #[test]
    fn topic_arns_name_their_sns_host() {
        let t = TopicArn::parse(TOPIC).unwrap();
        assert_eq!(t.sns_host(), "sns.us-east-1.amazonaws.com");
        let cn = TopicArn::parse("arn:aws-cn:sns:cn-north-1:123456789012:t").unwrap();
        assert_eq!(cn.sns_host(), "sns.cn-north-1.amazonaws.com.cn");
        let gov = TopicArn::parse("arn:aws-us-gov:sns:us-gov-west-1:123456789012:t.x_y-z").unwrap();
        assert_eq!(gov.sns_host(), "sns.us-gov-west-1.amazonaws.com");
        for bad in [
            "",
            "arn:aws:sqs:us-east-1:123456789012:t",
            "arn:aws:sns:us-east-1:1234:t",
            "arn:aws:sns:US-EAST-1:123456789012:t",
            "arn:aws:sns:evil.com/x:123456789012:t",
            "arn:aws-iso:sns:us-iso-east-1:123456789012:t",
            "arn:aws:sns:us-east-1:123456789012:",
            "arn:aws:sns:us-east-1:123456789012:t:extra",
        ] {
            assert!(TopicArn::parse(bad).is_err(), "{bad}");
        }
        let p = |v: Value| Params::from_value(json!({ "topicArn": v })).unwrap();
        assert_eq!(TopicArn::from_params(&p(json!(TOPIC))).unwrap(), Some(t));
        assert_eq!(TopicArn::from_params(&p(json!(""))).unwrap(), None);
        assert_eq!(TopicArn::from_params(&p(json!("arn:x"))).unwrap_err().name, "topicArn");
    }

    #[test]
    fn only_the_topics_sns_host_is_trusted() {
        let topic = TopicArn::parse(TOPIC).unwrap();
        let aws = SnsTrust::aws();
        let ok = [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123.pem",
            "https://SNS.us-east-1.amazonaws.com:443/a/b.pem",
        ];
        for url in ok {
            aws.check_cert_url(url, &topic).unwrap();
        }
        let refused = [
            ("http://sns.us-east-1.amazonaws.com/a.pem", "SigningCertURL is not an https:// URL"),
            (
                "https://sns.eu-west-1.amazonaws.com/a.pem",
                "SigningCertURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region",
            ),
            (
                "https://sns.us-east-1.amazonaws.com.evil.example/a.pem",
                "SigningCertURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region",
            ),
            (
                "https://bucket.s3.amazonaws.com/a.pem",
                "SigningCertURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region",
            ),
            (
                "https://sns.us-east-1.amazonaws.com:8443/a.pem",
                "SigningCertURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region",
            ),
            ("https://x@sns.us-east-1.amazonaws.com/a.pem", "SigningCertURL carries user-info"),
            ("https://sns.us-east-1.amazonaws.com/a.pem?x=.pem", "SigningCertURL is not a .pem certificate URL"),
            ("https://sns.us-east-1.amazonaws.com/a.crt", "SigningCertURL is not a .pem certificate URL"),
            (
                "https://127.0.0.1:8443/a.pem",
                "SigningCertURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region",
            ),
            ("not a url", "SigningCertURL is not a URL"),
        ];
        for (url, message) in refused {
            assert_eq!(aws.check_cert_url(url, &topic).unwrap_err().message, message, "{url}");
        }
        let confirm = format!(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={}&Token=abc",
            TOPIC.replace(':', "%3A")
        );
        aws.check_subscribe_url(&confirm, &topic).unwrap();
        for (url, message) in [
            (
                confirm.replace("https://sns.us-east-1.amazonaws.com", "https://evil.example"),
                "SubscribeURL is not on sns.us-east-1.amazonaws.com, the SNS host of the topic's region",
            ),
            (confirm.replace("https:", "http:"), "SubscribeURL is not an https:// URL"),
            (
                confirm.replace("ConfirmSubscription", "Unsubscribe"),
                "SubscribeURL does not ask for ConfirmSubscription",
            ),
            (confirm.replace("owfeed-uploads", "other"), "SubscribeURL is for another topic"),
        ] {
            assert_eq!(aws.check_subscribe_url(&url, &topic).unwrap_err().message, message, "{url}");
        }
        // The test host is trusted besides SNS, with the same scheme and path rules.
        let test = SnsTrust::with_test_host("127.0.0.1:8443", CERT_PEM).unwrap();
        test.check_cert_url("https://127.0.0.1:8443/a.pem", &topic).unwrap();
        test.check_cert_url(ok[0], &topic).unwrap();
        assert!(test.check_cert_url("http://127.0.0.1:8443/a.pem", &topic).is_err());
        assert!(test.check_cert_url("https://127.0.0.1:8444/a.pem", &topic).is_err());
    }
}
