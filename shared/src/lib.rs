//! owfeed: the generic part of an Apache OpenWhisk feed provider, written once.
//!
//! See ARCHITECTURE.md at the repository root for the layers and the data path.

pub mod events;
pub mod openwhisk;
pub mod params;
pub mod runtime;
pub mod secret;
pub mod source;
