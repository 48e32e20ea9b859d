//! owfeed-s3: a small blocking S3 client for the bucket poller and its state object.
//!
//! # Client
//! [`S3Client`] (built from an [`S3Config`]) does ListObjectsV2 ([`S3Client::list_objects_v2`]
//! with a [`ListRequest`], returning a [`ListPage`] of [`Object`]s), conditional writes
//! ([`S3Client::put_object`] with a [`Condition`]), reads ([`S3Client::get_object`] giving a
//! [`GetOutput`]), deletes, bucket creation and a `HEAD` bucket probe. Requests are SigV4-signed
//! with aws-sigv4 and sent with ureq; the agent never follows redirects and caps every response
//! body at `S3Config::max_response_bytes`. [`http_agent`] is the ureq agent every owfeed client
//! uses: its TCP transport acknowledges received data before each blocking read, so a server
//! that holds the end of an answer until then (Nagle) does not make each page wait 40 ms.
//!
//! # Errors
//! Every failure is an [`S3Error`] whose [`ErrorKind`] callers branch on and whose message names
//! the endpoint, bucket or parameter to fix. [`S3Error::is_retryable`] tells transient failures
//! (throttling, 5xx, transport, unreadable bodies) from permanent ones. Secrets never appear in
//! messages or `Debug` output: they are held in [`SecretString`].
//!
//! # Parsing and encoding
//! [`parse_list_objects_v2`] and [`parse_error_body`] turn XML bodies into values with no I/O;
//! [`encode_key`], [`encode_component`] and [`decode_form`] are the percent-encoding rules S3
//! signing needs. A body that cannot be parsed is an error, never an empty page.

#![warn(missing_docs)]

mod client;
mod config;
mod encode;
mod error;
mod net;
mod xml;

pub use client::{sign_request, sign_request_for, Condition, GetOutput, ListRequest, S3Client};
pub use config::{tls_config, Endpoint, S3Config, SecretString, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};
pub use encode::{decode_form, encode_component, encode_key};
pub use error::{classify, ErrorKind, S3Error};
pub use net::http_agent;
pub use xml::{
    parse_error_body, parse_list_objects_v2, parse_xml, ErrorBody, ListPage, ListParseError, Object, XmlElement,
};
