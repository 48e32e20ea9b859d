//! Rigs more than one suite module builds the same way.

use std::path::Path;

use serde_json::{json, Value};

use crate::moto::Moto;
use crate::s3proxy::FaultProxy;
use crate::world::{workspace_bin, World, USER};
use owfeed::openwhisk::{from_key_values, QualifiedName};
use owfeed::params::Params;
use owfeed::source::Source;
use owfeed::store::{stored_key, StateStore};
use owfeed_s3::S3Client;

/// The S3 feed (`changes`, `poll`) in a fresh world, watching a fresh bucket of the shared moto
/// (SigV4 verified) through a fault proxy; the trigger is `t`.
pub struct ProxiedBucket {
    /// The emulator with the package deployed.
    pub w: World,
    /// Between the feed and moto: faults and other stores' dialects.
    pub proxy: FaultProxy,
    /// Talks to moto directly, behind the feed's back (no faults, no dialect).
    pub client: S3Client,
    /// The watched bucket.
    pub bucket: String,
}

impl ProxiedBucket {
    /// A new bucket named after `tag`, the proxy in front of moto, and the world.
    pub fn start(tag: &str) -> ProxiedBucket {
        let moto = Moto::shared().expect("moto server");
        let proxy = FaultProxy::start(moto.endpoint()).expect("fault proxy");
        let bucket = Moto::unique_bucket(tag);
        let client = moto.client();
        client.create_bucket(&bucket).expect("create bucket");
        let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
        ProxiedBucket { w, proxy, client, bucket }
    }

    /// Creates the feed trigger `t` (endpoint: the proxy; `extra` parameters on top) and a
    /// rule to the echo fixture `echo`; CREATE's result.
    pub fn create(&self, extra: Value, echo: &Path) -> Value {
        let moto = Moto::shared().expect("moto server");
        let mut params = json!({
            "endpoint": self.proxy.url(),
            "bucket": self.bucket,
            "accessKeyId": moto.access_key_id(),
            "secretAccessKey": moto.secret_access_key(),
        });
        if let (Value::Object(p), Value::Object(extra)) = (&mut params, extra) {
            p.extend(extra);
        }
        let out = self.w.create_trigger("t", params).expect("create trigger with feed");
        self.w.record_events("t", echo);
        out
    }

    /// Trigger `t`'s state store as its polls open it, with the key its config binding holds
    /// (the namespace can read it): what another poll of the feed writes with.
    pub fn state_store(&self) -> StateStore {
        let binding = self.w.user.get_package(&QualifiedName::new(USER, None, "t.owfeed")).expect("config binding");
        let params = Params::from_value(Value::Object(from_key_values(&binding["parameters"]))).expect("params");
        let blobs = owfeed::sources::s3::S3Source.open(&params).expect("S3 config").blob_store().expect("a store");
        StateStore::new(blobs, &QualifiedName::new(USER, None, "t")).with_key(stored_key(&params).as_ref())
    }
}
