//! owfeed: the generic part of an Apache OpenWhisk feed provider, written once.
//!
//! A feed is a set of stateless action binaries; this crate is everything they share. See
//! ARCHITECTURE.md at the repository root for the layers, the data path and the invariants.
//!
//! # Runtime
//! [`runtime::main`] is the entry point of every action binary: the actionloop protocol
//! (stdin line in, fd 3 line out), blackbox mode and a human CLI, with a [`runtime::Context`]
//! per activation. [`params::Params`] gives typed parameters whose errors name the parameter;
//! [`secret::Secret`] never prints itself; [`budget::Budget`] is the time left before the
//! activation's deadline.
//!
//! # OpenWhisk client
//! [`openwhisk::Client`]: triggers, rules, packages and bindings, actions, activations, with
//! typed [`openwhisk::OwError`]s.
//!
//! # HTTP
//! [`http::HttpClient`] is the one HTTP edge for plugins and registrars that speak plain
//! HTTP(S): TLS from parameters, per-request deadlines, JSON, errors as
//! [`source::SourceError`]s that never quote a URL's credentials or a response body.
//!
//! # Lifecycle
//! [`lifecycle::handle`] parses a feed action's parameters, checks the trigger's ownership and
//! dispatches `CREATE` … `UNPAUSE` to a [`lifecycle::Feed`]; [`lifecycle::Undo`] makes CREATE
//! transactional.
//!
//! # Patterns
//! [`polling::PollingFeed`] and [`polling::poll`]: the polling pattern over any
//! [`source::Source`] (the namespace scheduler, config binding, state, diff, delivery), with
//! [`schedule::Schedule`]. [`hooks`]: the hooks pattern (receiver web action, hook feed).
//! Neither names a feature: they offer extension points ([`polling::extensions::Extensions`],
//! [`polling::change_hook::ChangeHook`], [`hooks::extension::HookSource`]) that the features
//! fill and [`registry`] lists.
//!
//! # State, diff, events, delivery
//! [`store::StateStore`] keeps [`state::State`] in a [`source::BlobStore`] with conditional
//! writes and a lease; [`diff::Differ`] merges a sorted listing with the snapshot;
//! [`events`] builds CloudEvents with deterministic ids; [`filter`] selects changes and
//! events; [`delivery::deliver`] fires the outbox in order.
//!
//! # Features and registries
//! [`source`] is the plugin contract; [`sources::REGISTRY`] lists the sources the actions
//! serve; [`s3`] is the S3 feature in one place (lister, push mapping, registration, SNS,
//! reconcile), [`github`] and [`subscription`] the hooks pattern's GitHub and Subscriptions API
//! registrars; [`registry`] lists every extension kind (hook sources, push providers, change
//! hooks, what polling is given), one line per feature. [`writing_a_source`] is the guide
//! (docs/writing-a-source.md), whose examples are compiled as doc tests and run by the suite.

pub mod budget;
pub mod change;
pub mod deletes;
pub mod delivery;
pub mod diff;
pub mod events;
pub mod filter;
pub mod github;
pub mod hooks;
pub mod http;
pub mod lifecycle;
pub mod openwhisk;
pub mod params;
pub mod polling;
pub mod registry;
pub mod runtime;
pub mod s3;
pub mod schedule;
pub mod secret;
pub mod source;
pub mod sources;
pub mod stall;
pub mod state;
pub mod store;
pub mod subscription;

#[doc = include_str!("../../docs/writing-a-source.md")]
pub mod writing_a_source {}
