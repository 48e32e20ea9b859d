//! The S3 feature, in one place: the bucket lister (polling, diff), S3 bucket notifications
//! (push), their registration at the provider, SNS delivery, and the reconcile that joins the
//! two. It plugs into the generic patterns through their extension points and is named by the
//! registries only; `polling/` and `hooks/` know nothing about it.
//!
//! # Layout
//! - `source`: the `s3` source plugin (`S3Source`: ListObjectsV2, HEAD, the state store in the
//!   bucket), the one S3 event shape (`legacy_payload`, `entry_attributes`) and the one place
//!   where a feed's state lives in a bucket (`DEFAULT_STATE_PREFIX`, `state_location`).
//! - `push`: a bucket notification (`Records`) as the S3 source's own events, and the push
//!   providers' capability table (`Provider`).
//! - `notify`: the hooks registrar that registers the receiver at the bucket (AWS, Ceph, MinIO).
//! - `deliveries`: the hooks pattern's extension point for S3 notifications (token or SNS).
//! - `sns`: AWS SNS deliveries to the receiver (signature, subscription confirmation).
//! - `reconcile`: the hook's companion (`Reconcile`), a polling feed that catches lost notifications.
//! - `markers`: the push markers the receiver writes and the reconcile's poll reads.
//!
//! Imports run one way: `reconcile` → `markers`, `notify`/`sns` → `push` → `source`.

pub mod deliveries;
pub mod markers;
pub mod notify;
pub mod push;
pub mod reconcile;
pub mod sns;
pub mod source;

pub use source::S3Source;
