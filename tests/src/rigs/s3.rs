//! S3 rigs: a fresh bucket on one of the suite's S3 servers (moto, s3s-fs, s3rver, Ceph RGW)
//! with the S3 feed deployed, directly or through the fault proxy.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::{flatten, kinds_and_subjects};
use crate::ceph::Rgw;
use crate::moto::Moto;
use crate::s3proxy::{Conditionals, FaultProxy};
use crate::s3rver::{self, S3rver};
use crate::s3sfs::S3sFs;
use crate::world::{fixture_bin, workspace_bin, World, USER};
use owfeed::openwhisk::{from_key_values, QualifiedName};
use owfeed::params::Params;
use owfeed::source::Source;
use owfeed::store::{stored_key, StateStore};
use owfeed_s3::{Condition, ListRequest, S3Client, S3Config, SecretString};

/// The state object of the feed's trigger `/guest/t`.
pub const STATE_KEY: &str = ".owfeed/guest/t.state";
/// The lease object of trigger `t`.
pub const LEASE_KEY: &str = ".owfeed/guest/t.lease";

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

/// The S3 feed watching a fresh bucket of one of the suite's S3 servers.
pub struct S3World {
    /// The emulator with the package deployed.
    pub w: World,
    /// A client with the feed's credentials, for changing objects behind the feed's back.
    pub client: S3Client,
    /// The feed's access key id.
    pub access_key: String,
    /// The feed's secret access key.
    pub secret_key: String,
    /// The watched bucket.
    pub bucket: String,
    /// What the feed is given as `endpoint` (the server, or a proxy in front of it).
    pub endpoint: String,
    _s3sfs: Option<S3sFs>,
    _s3rver: Option<S3rver>,
    _rgw: Option<Rgw>,
}

/// Which S3 server a test runs against.
pub enum Server {
    /// moto verifying SigV4.
    Moto,
    /// moto not verifying signatures: its verifier rejects valid signatures for keys with
    /// `+ % & < >`, non-ASCII, and query values with `/` (prefixes). s3s-fs covers those
    /// verified.
    MotoUnverified,
    /// s3s-fs: strict SigV4, no ETags in listings.
    S3sFs,
    /// s3rver (Node.js): SigV4 with fixed credentials, conditional writes ignored.
    S3rver,
    /// Ceph's radosgw (a real one-node cluster, `feed_tests::ceph`).
    Rgw,
}

impl S3World {
    /// A world on a fresh bucket of the shared moto, SigV4 verified.
    pub fn start() -> S3World {
        S3World::on(Server::Moto, None)
    }

    /// A world on a fresh bucket of `server`, the feed reaching it through `proxy` if given.
    pub fn on(server: Server, proxy: Option<&FaultProxy>) -> S3World {
        let mut s3rver = None;
        let mut rgw = None;
        let (client, access_key, secret_key, upstream, s3sfs) = match server {
            Server::Moto | Server::MotoUnverified => {
                let moto = match server {
                    Server::Moto => Moto::shared(),
                    _ => Moto::shared_unverified(),
                }
                .expect("moto server");
                (
                    moto.client(),
                    moto.access_key_id().to_string(),
                    moto.secret_access_key().to_string(),
                    moto.endpoint().to_string(),
                    None,
                )
            }
            Server::S3sFs => {
                let fs = S3sFs::start("AKIDFEEDTEST", "feed-test-secret");
                let mut config =
                    S3Config::new(&fs.endpoint, "us-east-1", "AKIDFEEDTEST", SecretString::new("feed-test-secret"));
                config.list_url_encoding = false;
                let client = S3Client::new(config).expect("s3s-fs client");
                (client, "AKIDFEEDTEST".to_string(), "feed-test-secret".to_string(), fs.endpoint.clone(), Some(fs))
            }
            Server::S3rver => {
                let server = S3rver::start().expect("s3rver");
                let config = S3Config::new(
                    &server.endpoint,
                    "us-east-1",
                    s3rver::ACCESS_KEY,
                    SecretString::new(s3rver::SECRET_KEY),
                );
                let client = S3Client::new(config).expect("s3rver client");
                let endpoint = server.endpoint.clone();
                s3rver = Some(server);
                (client, s3rver::ACCESS_KEY.to_string(), s3rver::SECRET_KEY.to_string(), endpoint, None)
            }
            Server::Rgw => {
                let server = Rgw::start().expect("start Ceph RGW");
                let keys = (server.access_key_id().to_string(), server.secret_access_key().to_string());
                let (client, endpoint) = (server.client(), server.endpoint().to_string());
                rgw = Some(server);
                (client, keys.0, keys.1, endpoint, None)
            }
        };
        let bucket = Moto::unique_bucket("feed");
        client.create_bucket(&bucket).expect("create bucket");
        let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
        let endpoint = proxy.map(|p| p.url().to_string()).unwrap_or(upstream);
        S3World { w, client, access_key, secret_key, bucket, endpoint, _s3sfs: s3sfs, _s3rver: s3rver, _rgw: rgw }
    }
}

impl S3World {
    /// The Ceph RGW this world runs on, if it was started `on(Server::Rgw, …)`.
    pub fn rgw(&self) -> Option<&Rgw> {
        self._rgw.as_ref()
    }

    /// The feed's parameters for this server, `extra` on top.
    pub fn params(&self, extra: Value) -> Value {
        let mut p = json!({
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "accessKeyId": self.access_key,
            "secretAccessKey": self.secret_key,
        });
        if self._s3sfs.is_some() {
            p["urlEncoding"] = json!(false);
        }
        if self._rgw.is_some() {
            p["region"] = json!(crate::ceph::REGION);
        }
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
            p.extend(extra);
        }
        p
    }

    /// Creates trigger `t` and the recording rule; CREATE's result.
    pub fn create(&self, extra: Value) -> Value {
        let out = self.w.create_trigger("t", self.params(extra)).expect("create trigger with feed");
        self.w.record_events("t", &fixture_bin("echo-action"));
        out
    }

    /// Writes an object behind the feed's back.
    pub fn put(&self, key: &str, body: &str) {
        self.client.put_object(&self.bucket, key, body.as_bytes().to_vec(), Condition::None).expect("put object");
    }

    /// Deletes an object behind the feed's back.
    pub fn delete(&self, key: &str) {
        self.client.delete_object(&self.bucket, key).expect("delete object");
    }

    /// (type suffix, subject) of every event received so far, sorted.
    pub fn seen(&self) -> Vec<(String, String)> {
        kinds_and_subjects(&self.w.events())
    }

    /// Keys under the feed's reserved prefix (listed whole: moto mis-verifies `prefix=.owfeed/`).
    pub fn state_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let req = ListRequest { continuation_token: token, ..ListRequest::default() };
            let page = self.client.list_objects_v2(&self.bucket, &req).expect("list bucket");
            keys.extend(page.objects.into_iter().map(|o| o.key).filter(|k| k.starts_with(".owfeed/")));
            if !page.is_truncated {
                return keys;
            }
            token = page.next_continuation_token;
        }
    }

    /// The stored state object of `t`.
    pub fn state_bytes(&self) -> Vec<u8> {
        let out = self.client.get_object(&self.bucket, STATE_KEY).expect("get state");
        out.expect("state object exists").body
    }
}

/// One change to the bucket as an event must report it: (kind, key, etag; empty for deletes).
pub type Change = (String, String, String);

/// A feed trigger `t` on a fresh moto bucket, reached through a fault proxy.
pub struct FaultRig(ProxiedBucket);

impl std::ops::Deref for FaultRig {
    type Target = ProxiedBucket;
    fn deref(&self) -> &ProxiedBucket {
        &self.0
    }
}

impl FaultRig {
    /// A fresh bucket behind the fault proxy, and the world.
    pub fn start() -> FaultRig {
        FaultRig(ProxiedBucket::start("faults"))
    }

    /// Creates the feed trigger `t` (endpoint: the proxy) and the recording rule.
    pub fn create(&self, extra: Value) {
        self.0.create(extra, &fixture_bin("echo-action"));
    }

    /// Writes an object; the change it makes, for the expected set.
    pub fn put(&self, key: &str, body: &str, kind: &str) -> Change {
        let etag = self.client.put_object(&self.bucket, key, body.as_bytes().to_vec(), Condition::None).expect("put");
        (kind.to_string(), key.to_string(), etag.trim_matches('"').to_string())
    }

    /// Deletes an object: the change it makes.
    pub fn delete(&self, key: &str) -> Change {
        self.client.delete_object(&self.bucket, key).expect("delete object");
        ("deleted".to_string(), key.to_string(), String::new())
    }

    /// Writes many objects from a few threads (moto is slow one request at a time).
    pub fn put_many(&self, keys: &[String], body: &str, kind: &str) -> Vec<Change> {
        let chunks: Vec<&[String]> = keys.chunks(keys.len().div_ceil(4).max(1)).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| scope.spawn(move || chunk.iter().map(|k| self.put(k, body, kind)).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("put thread")).collect()
        })
    }

    /// Invokes the binding's poll action once, blocking: its result, or its error message.
    pub fn poll_once(&self) -> Result<Value, String> {
        self.w.poll_once("t")
    }

    /// `wsk action update owfeed/poll --timeout MS`.
    pub fn set_poll_timeout(&self, ms: u64) {
        self.w.set_poll_timeout(ms)
    }

    /// Polls until READ shows nothing pending and no listing in progress; waits out the lease
    /// a killed poll left behind. Returns the polls it took (busy answers included).
    pub fn recover(&self) -> usize {
        for n in 1..=10 {
            match self.poll_once() {
                Ok(r) if r["status"] == "busy" => {
                    self.wait_for_lease();
                    continue;
                }
                Ok(_) => {}
                Err(e) => panic!("a poll without faults failed: {e}"),
            }
            assert!(self.w.emu.wait_idle(Duration::from_secs(120)), "emulator did not go idle");
            let read = self.w.feed("READ", "t", json!({})).expect("READ");
            if read["status"]["eventsPending"] == 0 && read["status"]["listingInProgress"] == false {
                return n;
            }
        }
        panic!("the feed did not recover within 10 polls: {}", self.w.feed("READ", "t", json!({})).unwrap_or_default());
    }

    /// Sleeps until the lease a killed poll holds has run out (read from the lease object).
    pub fn wait_for_lease(&self) {
        let doc = self.client.get_object(&self.bucket, LEASE_KEY).expect("get lease").expect("lease exists");
        let lease: Value = serde_json::from_slice(&doc.body).expect("lease is JSON");
        let until = lease["expiresMs"].as_u64().unwrap_or(0);
        let now = owfeed::budget::now_ms();
        std::thread::sleep(Duration::from_millis(until.saturating_sub(now) + 100));
    }

    /// The stored state object of `t`.
    pub fn state_bytes(&self) -> Vec<u8> {
        self.client.get_object(&self.bucket, STATE_KEY).expect("get state").expect("state exists").body
    }

    /// Every event the recorder received so far, oldest first (batches flattened).
    pub fn received(&self) -> Vec<Value> {
        flatten(self.w.events())
    }

    /// Every event the trigger accepted, in the order the fires were accepted.
    pub fn accepted(&self) -> Vec<Value> {
        let fires = self.w.emu.activations(USER).into_iter().filter(|a| a["name"] == "t");
        flatten(fires.map(|a| a["response"]["result"].clone()).collect())
    }

    /// Writes of the state object that reached the proxy.
    pub fn state_puts(&self) -> usize {
        self.proxy.count(&format!("PUT /{}/{STATE_KEY}", self.bucket))
    }
}

/// The change an event reports.
pub fn change_of(e: &Value) -> Change {
    let kind = e["type"].as_str().unwrap_or("?").rsplit('.').next().unwrap_or("?").to_string();
    let etag = e["data"]["etag"].as_str().unwrap_or("").trim_matches('"').to_string();
    (kind, e["data"]["key"].as_str().unwrap_or("?").to_string(), etag)
}

/// A feed trigger `t` on a fresh moto bucket, reached through a fault proxy.
pub struct StoreRig(ProxiedBucket);

impl std::ops::Deref for StoreRig {
    type Target = ProxiedBucket;
    fn deref(&self) -> &ProxiedBucket {
        &self.0
    }
}

impl StoreRig {
    /// A fresh bucket behind the fault proxy, and the world.
    pub fn start() -> StoreRig {
        StoreRig(ProxiedBucket::start("stores"))
    }

    /// The proxy plays a store with `mode` from now on.
    pub fn dialect(&self, mode: Conditionals) {
        self.proxy.set_conditionals(mode, Moto::shared().expect("moto server").config());
    }

    /// Creates the feed trigger `t` through the proxy and the recording rule; CREATE's result.
    pub fn create(&self, extra: Value) -> Value {
        self.0.create(extra, &fixture_bin("echo-action"))
    }

    /// Writes an object behind the feed's back.
    pub fn put(&self, key: &str, body: &str) {
        self.client.put_object(&self.bucket, key, body.as_bytes().to_vec(), Condition::None).expect("put");
    }

    /// Deletes an object behind the feed's back.
    pub fn delete(&self, key: &str) {
        self.client.delete_object(&self.bucket, key).expect("delete");
    }

    /// Invokes the binding's poll action once, blocking, and waits for the rule-fired
    /// recorder: the poll's result, or its error message.
    pub fn poll_once(&self) -> Result<Value, String> {
        let result = self.w.poll_once("t");
        assert!(self.w.emu.wait_idle(std::time::Duration::from_secs(120)), "emulator did not go idle");
        result
    }

    /// READ of `t`.
    pub fn read(&self) -> Value {
        self.w.feed("READ", "t", json!({})).expect("READ")
    }

    /// (kind, key) of every event received, sorted.
    pub fn seen(&self) -> Vec<(String, String)> {
        kinds_and_subjects(&self.w.events())
    }

    /// Writes of the conditional-write probe's scratch object that reached the proxy.
    pub fn probe_puts(&self) -> usize {
        self.proxy.count(&format!("PUT /{}/.owfeed/guest/t.probe", self.bucket))
    }
}
