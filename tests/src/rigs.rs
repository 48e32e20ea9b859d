//! The rigs of the integration suite, one home for all: each starts the servers a test area
//! needs, an emulator with the package deployed from manifest.yaml ([`crate::manifest`]) and
//! the trigger it watches with, and offers the few verbs its tests use.
//!
//! - [`s3`]: [`s3::S3World`] (a bucket on moto, s3s-fs, s3rver or Ceph RGW: `s3_feed`),
//!   [`s3::ProxiedBucket`] (moto behind the fault proxy) and its two faces [`s3::FaultRig`]
//!   (`faults`: kills, held fires, tallies) and [`s3::StoreRig`] (`stores`: other stores'
//!   dialects).
//! - [`couchdb`]: [`couchdb::Rig`], a database of the shared pouchdb-server behind the CouchDB
//!   proxy (`couchdb_feed`).
//! - [`kafka`]: [`kafka::Rig`], a topic on tansu, and [`kafka::SaslRig`], tansu behind the
//!   proxy's SASL stand-in, optionally TLS (`kafka_feed`).
//! - [`hooks`]: [`hooks::Hooks`], the `hook` and `receive` actions (`hooks`).
//! - [`sns`]: [`sns::Sns`], `receive` as the `sns-test-receive` fixture next to the shipped one,
//!   with an SNS stand-in (`sns`).
//! - [`reconcile`]: [`reconcile::Rig`], `hook`, `receive` and `poll` on a moto bucket with Ceph
//!   notifications (`reconcile`).
//!
//! A test area's own helpers (expected-event builders, tallies) stay in its suite module.

use serde_json::Value;

pub mod couchdb;
pub mod hooks;
pub mod kafka;
pub mod reconcile;
pub mod s3;
pub mod sns;

/// Every event in `payloads`, batches (`{"events": […]}`) flattened, in order.
pub fn flatten(payloads: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for p in payloads {
        match p.get("events").and_then(Value::as_array) {
            Some(batch) => out.extend(batch.iter().cloned()),
            None => out.push(p),
        }
    }
    out
}

/// (kind, subject) of every event, sorted: the kind is the last part of the CloudEvents `type`
/// (`created`, `updated`, `deleted`, …). Compared with an expected list, every event counts: a
/// duplicate or a wrong kind fails where a set would not.
pub fn kinds_and_subjects(events: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap_or("?").rsplit('.').next().unwrap_or("?").to_string();
            (kind, e["subject"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    out.sort();
    out
}
