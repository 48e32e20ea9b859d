//! `S3Config` and endpoint validation, plus `SecretString`, the redacting holder of the secret
//! access key and session token.
//!
//! Nothing here does I/O; validation errors name the parameter (`endpoint`, `region`, …) and say
//! what was expected.

use std::fmt;
use std::time::Duration;

use crate::error::{ErrorKind, S3Error};

/// A credential whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    /// The credential itself; only the signer calls this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Default overall time allowed for one request, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default cap on a response body; a listing page is well under 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Where and how to reach S3. Build with [`S3Config::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `https://host[:port]` or `http://host[:port]`, no path or query.
    pub endpoint: String,
    /// The signing region (`us-east-1` for MinIO and moto, `auto` for R2).
    pub region: String,
    /// The access key id (not a secret; it appears in error messages).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// A session token for temporary credentials, signed as `x-amz-security-token`.
    pub session_token: Option<SecretString>,
    /// `true`: `/bucket/key` on the endpoint host; `false`: virtual-hosted `bucket.host/key`.
    pub path_style: bool,
    /// Send `encoding-type=url` with listings; turn off for servers that echo it without
    /// encoding keys (s3s-fs).
    pub list_url_encoding: bool,
    /// Overall time allowed for one request, body included (connecting is capped at 5 s).
    pub timeout: Duration,
    /// Responses with a larger body fail with [`ErrorKind::InvalidResponse`].
    pub max_response_bytes: u64,
    /// PEM certificates of the CAs to trust instead of the public roots (a private CA or a
    /// self-signed certificate of an on-prem store).
    pub ca_certificates_pem: Option<String>,
    /// Do not verify the server's certificate at all. The connection is then encrypted but
    /// not authenticated: anyone on the path can read the credentials' signatures and data.
    pub insecure_skip_tls_verify: bool,
}

impl S3Config {
    /// A path-style configuration with url-encoded listings and default limits.
    pub fn new(
        endpoint: impl Into<String>,
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: SecretString,
    ) -> S3Config {
        S3Config {
            endpoint: endpoint.into(),
            region: region.into(),
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
            path_style: true,
            list_url_encoding: true,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            ca_certificates_pem: None,
            insecure_skip_tls_verify: false,
        }
    }
}

/// The TLS settings for `ca_pem` (trusted instead of the public roots) and `insecure` (no
/// verification); `what` names the parameter in errors. Shared with the OpenWhisk client.
pub fn tls_config(ca_pem: Option<&str>, insecure: bool, what: &str) -> Result<ureq::tls::TlsConfig, String> {
    let mut builder = ureq::tls::TlsConfig::builder().disable_verification(insecure);
    if let Some(pem) = ca_pem {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(pem.as_bytes()) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => return Err(format!("{what}: not a PEM certificate bundle ({e})")),
            }
        }
        if certs.is_empty() {
            return Err(format!("{what}: expected PEM certificates (-----BEGIN CERTIFICATE-----), found none"));
        }
        builder = builder.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    Ok(builder.build())
}

/// A validated endpoint: scheme, host and optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (IPv6 in brackets).
    pub host: String,
    /// Explicit port, when given.
    pub port: Option<u16>,
}

impl Endpoint {
    /// Parses `scheme://host[:port][/]`; the error names the `endpoint` parameter.
    pub fn parse(endpoint: &str) -> Result<Endpoint, S3Error> {
        // User-info holds credentials: the message shows the endpoint without it.
        let shown = match endpoint.split_once("://") {
            Some((scheme, rest)) if rest.split(['/', '?', '#']).next().is_some_and(|a| a.contains('@')) => {
                let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or_default();
                format!("{scheme}://[user-info]@{host}")
            }
            _ => endpoint.to_string(),
        };
        let bad = |why: &str| {
            S3Error::new(
                ErrorKind::BadRequest,
                format!("endpoint: '{shown}' {why}; expected https://host[:port] or http://host[:port]"),
            )
        };
        let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad(&format!("has scheme '{scheme}'")));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("has a query or fragment"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(bad("has a path (path prefixes are not supported)"));
        }
        if authority.contains('@') {
            return Err(bad("has user info (give credentials as accessKeyId/secretAccessKey)"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inside, after) = v6.split_once(']').ok_or_else(|| bad("has an unclosed IPv6 bracket"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("has junk after the IPv6 address"))?),
            };
            (format!("[{inside}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (authority.to_string(), None),
            }
        };
        let host_ok = !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
        if !host_ok {
            return Err(bad("has no valid host"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad(&format!("has port '{p}', not a number from 1 to 65535"))),
            },
        };
        Ok(Endpoint { scheme, host: host.to_ascii_lowercase(), port })
    }

    /// `host[:port]`, optionally with the bucket prepended for virtual-hosted style.
    pub fn authority(&self, bucket: Option<&str>) -> String {
        let host = match bucket {
            Some(b) => format!("{b}.{}", self.host),
            None => self.host.clone(),
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<(&str, &str, Option<u16>), &str>) {
        let got = Endpoint::parse(input);
        match (got, expected) {
            (Ok(e), Ok((scheme, host, port))) => {
                assert_eq!((e.scheme.as_str(), e.host.as_str(), e.port), (scheme, host, port))
            }
            (Err(e), Err(fragment)) => {
                assert!(e.message.starts_with("endpoint: "), "{}", e.message);
                assert!(e.message.contains(fragment), "{:?} does not contain {fragment:?}", e.message)
            }
            (got, expected) => panic!("{input}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn endpoints() {
        check("https://s3.amazonaws.com", Ok(("https", "s3.amazonaws.com", None)));
        check("http://127.0.0.1:9000/", Ok(("http", "127.0.0.1", Some(9000))));
        check("HTTPS://Host.Example:443", Ok(("https", "host.example", Some(443))));
        check("http://[::1]:9000", Ok(("http", "[::1]", Some(9000))));
        check("s3.amazonaws.com", Err("has no scheme"));
        check("ftp://host", Err("has scheme 'ftp'"));
        check("https://host/?x=1", Err("query"));
        check("https://host/prefix", Err("has a path"));
        check("https://user:pw@host", Err("user info"));
        check("https://", Err("no valid host"));
        check("https://ho st", Err("no valid host"));
        check("https://host:0", Err("port '0'"));
        check("https://host:99999", Err("port '99999'"));
        check("https://host:", Err("port ''"));
    }

    #[test]
    fn secrets_never_print() {
        let mut config = S3Config::new("https://h", "r", "AKID", SecretString::new("hunter2"));
        config.session_token = Some(SecretString::new("tok3n"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("tok3n"), "{debug}");
        assert!(debug.contains("AKID"));
    }
}
