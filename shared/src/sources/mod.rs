//! Source plugins: one file each, all implementing `source::Source`.
//!
//! A plugin validates its parameters and lists entries; it never touches triggers, rules,
//! alarms or state (see `source.rs` for the contract).

pub mod s3;
