//! owfeed: the generic part of an Apache OpenWhisk feed provider, written once.
//!
//! See ARCHITECTURE.md at the repository root for the layers and the data path.

pub mod diff;
pub mod events;
pub mod filter;
pub mod openwhisk;
pub mod params;
pub mod runtime;
pub mod secret;
pub mod source;
pub mod state;
pub mod budget;
pub mod delivery;
pub mod lifecycle;
pub mod hooks;
pub mod polling;
pub mod schedule;
pub mod store;
pub mod sources;
