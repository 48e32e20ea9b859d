//! The reconcile rig: S3 push with a reconcile (`hook`, `receive`, `poll`) on a moto bucket.

use std::time::Duration;

use serde_json::{json, Value};

use crate::moto::Moto;
use crate::world::{World, PACKAGE, USER};
use ow_emulator::{Config, SYSTEM_NAMESPACE};
use owfeed::openwhisk::QualifiedName;
use owfeed_s3::ListRequest;

/// A moto bucket watched by S3 push with a reconcile.
pub struct Rig {
    /// The emulator with `hook`, `receive` and `poll`.
    pub w: World,
    /// Posts notifications to the receiver.
    pub http: ureq::Agent,
    /// The shared moto (verified or not).
    pub moto: &'static Moto,
    /// The watched bucket.
    pub bucket: String,
}

/// The hook feed action.
pub fn hook_feed() -> QualifiedName {
    QualifiedName::new(SYSTEM_NAMESPACE, Some(PACKAGE), "hook")
}
/// The emulator with the actions push and reconcile use: `hook`, `receive`, `poll`.
pub fn hooks_world() -> World {
    World::with_actions(Config::with_namespaces(&[USER, "other"]), "reconcile", &["hook", "receive", "poll"])
}

impl Rig {
    /// A rig on moto with SigV4 verified (`verified`) or not.
    pub fn start(verified: bool) -> Rig {
        // moto's SigV4 check rejects a ListObjectsV2 whose `prefix` has a `/` (the marker
        // listing's `.owfeed/{ns}/{trigger}.pushed/`), which AWS accepts: the unverified moto,
        // as for the S3 feed's prefix test (s3_feed.rs prefix_suffix_and_event_filters).
        let moto = if verified { Moto::shared() } else { Moto::shared_unverified() }.expect("moto server");
        let bucket = Moto::unique_bucket("reconcile");
        moto.create_bucket(&bucket).expect("create bucket");
        let w = hooks_world();
        let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Rig { w, http, moto, bucket }
    }

    /// The hook trigger's parameters (provider ceph), `extra` on top.
    pub fn params(&self, extra: Value) -> Value {
        let mut p = json!({"source": "s3", "provider": "ceph", "endpoint": self.moto.endpoint(),
            "bucket": self.bucket, "accessKeyId": self.moto.access_key_id(),
            "secretAccessKey": self.moto.secret_access_key()});
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
            p.extend(extra);
        }
        p
    }

    /// Invokes the hook feed action as the CLI does.
    pub fn feed(&self, event: &str, trigger: &str, params: Value) -> Result<Value, String> {
        self.w.feed_of("hook", event, trigger, params)
    }

    /// The trigger, then CREATE; on failure only the trigger is deleted (wskdeploy's way), so
    /// whatever CREATE left behind stays visible.
    pub fn create(&self, trigger: &str, params: Value) -> Result<Value, String> {
        let body = json!({"annotations": [{"key": "feed", "value": hook_feed().to_string()}], "parameters": []});
        self.w.user.put_trigger(&QualifiedName::new("_", None, trigger), &body, false).map_err(|e| e.to_string())?;
        self.feed("CREATE", trigger, params).inspect_err(|_| {
            let _ = self.w.user.delete_trigger(&QualifiedName::new("_", None, trigger));
        })
    }

    /// Writes an object: its ETag.
    pub fn put(&self, key: &str, body: &str) -> String {
        self.moto.put(&self.bucket, key, body.as_bytes()).expect("put object")
    }

    /// POSTs one notification record to the receiver, expecting 202.
    pub fn push(&self, url: &str, record: Value) {
        let body = serde_json::to_vec(&json!({"Records": [record]})).unwrap();
        let req = ureq::http::Request::builder()
            .method("POST")
            .uri(url)
            .header("Content-Type", "application/json")
            .body(body)
            .unwrap();
        let mut resp = self.http.run(req).expect("receiver answers");
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(resp.status().as_u16(), 202, "{text}");
    }

    /// What the recorder received, once the emulator is idle.
    pub fn events(&self) -> Vec<Value> {
        assert!(self.w.emu.wait_idle(Duration::from_secs(60)), "emulator did not go idle");
        self.w.events()
    }

    /// Keys under `.owfeed/` (listed whole, as tests/suite/s3_feed.rs does).
    pub fn state_keys(&self) -> Vec<String> {
        let client = self.moto.client();
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let req = ListRequest { continuation_token: token, ..ListRequest::default() };
            let page = client.list_objects_v2(&self.bucket, &req).expect("list bucket");
            keys.extend(page.objects.into_iter().map(|o| o.key).filter(|k| k.starts_with(".owfeed/")));
            if !page.is_truncated {
                return keys;
            }
            token = page.next_continuation_token;
        }
    }

    /// The push markers of trigger `t`.
    pub fn markers(&self) -> Vec<String> {
        self.state_keys().into_iter().filter(|k| k.starts_with(".owfeed/guest/t.pushed/")).collect()
    }
}
