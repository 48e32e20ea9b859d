//! OpenWhisk REST client (blocking, on `ureq`): triggers, rules, packages, actions.
//!
//! CONTRACT (owned by the client helper; signatures fixed, bodies to be written).

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;

/// An OpenWhisk API key, `<uuid>:<key>`; the key part is a `Secret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthKey {
    /// The subject's uuid (the Basic-auth user name).
    pub uuid: String,
    /// The key (the Basic-auth password).
    pub key: Secret,
}

/// A fully qualified entity name: `/namespace/[package/]name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QualifiedName {
    /// The namespace; `_` means the caller's own.
    pub namespace: String,
    /// The package, for actions in a package.
    pub package: Option<String>,
    /// The entity's own name.
    pub name: String,
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.package {
            Some(p) => write!(f, "/{}/{}/{}", self.namespace, p, self.name),
            None => write!(f, "/{}/{}", self.namespace, self.name),
        }
    }
}

/// A failed OpenWhisk call, by what the caller can do about it.
#[derive(Clone, Debug, PartialEq)]
pub enum OwError {
    /// 404: the entity does not exist (or is not visible to this key).
    NotFound(String),
    /// 409: the entity exists (create without overwrite) or a concurrent update.
    Conflict(String),
    /// 429: over a rate limit; retry after the hint when given.
    Throttled {
        /// The server's message.
        message: String,
        /// From `Retry-After`, when present.
        retry_after: Option<Duration>,
    },
    /// 401/403: the key is wrong or not allowed.
    Unauthorized(String),
    /// 400/413 and other 4xx: the request itself is wrong.
    BadRequest {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 502 from a blocking invoke: the action ran and returned an error result.
    Application(Value),
    /// 202 from a blocking invoke: still running after the blocking wait.
    Accepted(String),
    /// 5xx: the platform failed; retry later.
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// No HTTP answer (connection refused, timeout, TLS).
    Transport(String),
}

/// Talks to one OpenWhisk API host with one key.
pub struct Client {
    base: String,
    auth: AuthKey,
    agent: ureq::Agent,
}
