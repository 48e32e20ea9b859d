//! The hooks pattern's extension points: what a hook source plugs into the feed and the
//! receiver besides its registrar. The pattern calls them by entry, never by name, so a
//! feature (S3 push, its reconcile) lives in its own module and `hooks/` imports none.
//!
//! - [`HookSource`]: one line of a registry (`crate::registry::HOOK_SOURCES`): the `source`
//!   value, its registrar ([`AnyRegistrar`]), and the optional extension points below.
//! - [`Deliveries`] / [`Mapping`]: deliveries in a producer's own format (S3 `Records`),
//!   mapped to events by the source, and requests the source verifies itself (SNS signs
//!   instead of sending the hook's token).
//! - [`Companion`]: something that lives with a hook's registration and is created, shown,
//!   updated, paused and deleted with it (the reconcile's polling feed); [`FireHook`]: told
//!   what the receiver fired (the reconcile's push markers).

use std::time::SystemTime;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::registrar::AnyRegistrar;
use super::{HookConfig, HookRequest, HookResponse, Outcome, SourceKind};
use crate::lifecycle::FeedRequest;
use crate::params::{ParamError, Params};
use crate::runtime::ActionError;

/// One hook source: the `source` value that selects it, its registration plugin and the
/// extension points it fills.
#[derive(Clone, Copy)]
pub struct HookSource<'a> {
    /// The `source` value.
    pub kind: SourceKind,
    /// Registers the receiver URL at the producer.
    pub registrar: &'a dyn AnyRegistrar,
    /// Deliveries in the producer's own format, when they are not CloudEvents or plain bodies.
    pub deliveries: Option<&'a dyn Deliveries>,
    /// What lives with the registration, when anything does.
    pub companion: Option<&'a dyn Companion>,
    /// Told what the receiver fired, when anything is (the companion's receiver half, apart
    /// so that the receiver links none of the companion's lifecycle).
    pub fired: Option<&'a dyn FireHook>,
}

impl<'a> HookSource<'a> {
    /// The entry of `kind` in `sources`.
    pub fn find(sources: &[HookSource<'a>], kind: SourceKind) -> Option<HookSource<'a>> {
        sources.iter().copied().find(|s| s.kind == kind)
    }
}

impl fmt::Debug for HookSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookSource").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A source whose deliveries are its producer's own format.
pub trait Deliveries: Sync {
    /// Reads this hook's delivery settings from its config (no I/O); errors name the parameter.
    fn mapping(&self, params: &Params) -> Result<Arc<dyn Mapping>, ParamError>;
}

/// One hook's delivery settings: how its bodies become events.
pub trait Mapping: fmt::Debug + Send + Sync {
    /// The events of a body authenticated by the hook's token (no I/O); `Respond` for an
    /// answer without a fire (a paused hook, a refused body).
    fn map(&self, config: &HookConfig, body: &[u8]) -> Outcome;
    /// True for a request the source verifies itself instead of by the hook's token.
    fn verifies_itself(&self, req: &HookRequest) -> bool;
    /// Judges such a request (may fetch what verifying needs); [`Verified`] once it verified,
    /// since only then may the receiver write anything for it.
    fn verify(&self, config: &HookConfig, params: &Params, req: &HookRequest) -> (Outcome, Option<Verified>);
    /// How long the producer of such a request waits for the answer.
    fn producer_wait(&self) -> Option<Duration>;
}

/// A message whose producer signature verified: one delivery whatever its bytes (every
/// variant of a signed message shares it), remembered by the receiver against replays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The producer's message id: the same on its retries and on every variant.
    pub message_id: String,
    /// When the producer sent it, RFC 3339 with milliseconds and `Z`.
    pub timestamp: String,
    /// The delivery's key in the receiver's record (stored: its form never changes).
    pub record_key: String,
    /// How long a replay of the message is answered `duplicate` (older ones the source refuses).
    pub replay_window: Duration,
}

/// What lives with a hook's registration (see the module doc).
pub trait Companion: Sync {
    /// The key its results and status are shown under (CREATE, READ, UPDATE).
    fn name(&self) -> &'static str;
    /// True when the hook config asks for it; errors name the parameter.
    fn wanted(&self, config: &Params) -> Result<bool, ParamError>;
    /// Checks its parameters before anything is made (no I/O).
    fn validate(&self, config: &Params) -> Result<(), ActionError>;
    /// CREATE, after the hook's registration (a failure undoes the hook too).
    fn create(&self, req: &FeedRequest, config: &Params) -> Result<Option<Value>, ActionError>;
    /// READ: its status, `None` when the config asks for none.
    fn read(&self, req: &FeedRequest, config: &Params) -> Option<Value>;
    /// UPDATE: created, updated or removed as `merged` says.
    fn update(&self, req: &FeedRequest, old: &Params, merged: &Params) -> Result<Option<Value>, ActionError>;
    /// DELETE (`config` is `None` when the hook config could not be read: then whatever is
    /// there is removed).
    fn delete(&self, req: &FeedRequest, config: Option<&Params>) -> Result<(), ActionError>;
    /// PAUSE and UNPAUSE.
    fn set_active(&self, req: &FeedRequest, config: &Params, active: bool) -> Result<(), ActionError>;
}

/// What the receiver tells a source after a fire (S3's reconcile: the push markers).
pub trait FireHook: Sync {
    /// After the receiver fired `fired` for a hook with this config; returns by `until`, when
    /// the receiver must answer (what is not done by then may go on, or be lost: the hook says
    /// what that costs).
    fn after_fire(&self, config: &Params, fired: &[&Fired], until: SystemTime);
}

/// One payload the receiver fires at the trigger, typed: nothing downstream parses it back.
#[derive(Clone, Debug, PartialEq)]
pub struct Fired {
    /// The trigger payload (an event, or a batch of them).
    pub payload: Value,
    /// The id the payload is known by (a batch's: its events' ids joined by commas), which the
    /// receiver's record of cut batches keeps.
    pub id: String,
    /// What the source's companion needs to know of each change in it, in the source's own
    /// terms (S3: the push marker of each change); opaque to the pattern.
    pub marks: Vec<Value>,
}

impl Fired {
    /// A payload that is one CloudEvent with its `id`, and no marks.
    pub fn event(payload: Value) -> Fired {
        let id = payload["id"].as_str().unwrap_or_default().to_string();
        Fired { payload, id, marks: Vec::new() }
    }
}

impl HookResponse {
    /// A 400 answer (a body the source cannot read).
    pub fn bad_request(message: impl Into<String>) -> HookResponse {
        HookResponse::error(400, message)
    }
}
