//! The Kafka rigs: a topic on tansu (in memory) with the feed deployed and its state in moto,
//! and the same behind the proxy's SASL stand-in, optionally behind TLS.

use std::time::Duration;

use serde_json::{json, Value};

use crate::kafka::Tansu;
use crate::kafkaproxy::KafkaProxy;
use crate::moto::Moto;
use crate::tls::{TestCa, TlsProxy};
use crate::world::{fixture_bin, workspace_bin, World, USER};
use owfeed_kafka::{Client, Settings};

/// A broker, a world and a feed trigger `t` on `topic`.
pub struct Rig {
    /// The broker (tansu, in memory).
    pub broker: Tansu,
    /// The emulator with the package deployed.
    pub w: World,
    /// The watched topic.
    pub topic: String,
    /// What the feed's `brokers` names: tansu, or a proxy in front of it.
    pub feed_broker: String,
    /// The state store's endpoint: moto, or a fault proxy in front of it.
    pub state_endpoint: String,
}

impl Rig {
    /// A fresh topic of `partitions` on a new tansu, and the world.
    pub fn start(partitions: u32) -> Rig {
        Rig::start_with(partitions, false)
    }

    /// Like `start`, with tansu checking credentials or not (then the topic is left to the test).
    pub fn start_with(partitions: u32, authentication: bool) -> Rig {
        let broker = Tansu::start(authentication).expect("tansu starts (installed on first use)");
        let topic = Moto::unique_bucket("topic");
        if !authentication {
            broker.create_topic(&topic, partitions).expect("create topic");
        }
        Rig::on(broker, topic)
    }

    /// A new world on `broker`'s `topic`.
    pub fn on(broker: Tansu, topic: String) -> Rig {
        let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
        let feed_broker = broker.addr.clone();
        let state_endpoint = Moto::shared().expect("moto server").endpoint().to_string();
        Rig { broker, w, topic, feed_broker, state_endpoint }
    }

    /// The feed reaches the broker through `proxy` from now on.
    pub fn through(mut self, proxy: &KafkaProxy) -> Rig {
        self.feed_broker = proxy.addr.clone();
        self
    }

    /// The feed's parameters with a fresh state bucket on moto, `extra` on top.
    pub fn params(&self, extra: Value) -> Value {
        let moto = Moto::shared().expect("moto server");
        let bucket = Moto::unique_bucket("kafka-state");
        moto.create_bucket(&bucket).unwrap();
        let mut p = json!({
            "source": "kafka",
            "brokers": [self.feed_broker],
            "topic": self.topic,
            "stateBucket": bucket,
            "endpoint": self.state_endpoint,
            "accessKeyId": moto.access_key_id(),
            "secretAccessKey": moto.secret_access_key(),
        });
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
            p.extend(extra);
        }
        p
    }

    /// Creates `t` and the recording rule.
    pub fn create(&self, extra: Value) -> Value {
        let created = self.w.create_trigger("t", self.params(extra)).expect("create trigger with feed");
        self.w.record_events("t", &fixture_bin("echo-action"));
        created
    }

    /// Produces with kafka-python: (partition, offset) of each message.
    pub fn produce(&self, messages: Value) -> Vec<(i64, i64)> {
        self.broker.produce(&self.topic, messages).expect("produce with kafka-python")
    }

    /// One poll of `t`, waiting for its fires: the poll's result.
    pub fn poll(&self) -> Value {
        let result = self.w.poll_once("t").expect("poll");
        assert!(self.w.emu.wait_idle(Duration::from_secs(60)), "emulator did not go idle");
        result
    }

    /// READ of `t`.
    pub fn read(&self) -> Value {
        self.w.feed("READ", "t", json!({})).expect("READ")
    }

    /// Every payload the trigger accepted, in order.
    pub fn accepted(&self) -> Vec<Value> {
        let fires = self.w.emu.activations(USER).into_iter().filter(|a| a["name"] == "t");
        fires.map(|a| a["response"]["result"].clone()).collect()
    }

    /// Every CloudEvent the trigger accepted (batches flattened).
    pub fn events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for p in self.accepted() {
            match p.get("events").and_then(Value::as_array) {
                Some(batch) => out.extend(batch.iter().cloned()),
                None => out.push(p),
            }
        }
        out
    }

    /// Every legacy message object the trigger accepted (`{"messages": […]}` flattened).
    pub fn messages(&self) -> Vec<Value> {
        self.accepted().iter().flat_map(|p| p["messages"].as_array().cloned().expect("a messages array")).collect()
    }

    /// Our Kafka client on what the feed's `brokers` names.
    pub fn client(&self) -> Client {
        Client::new(Settings {
            brokers: vec![self.feed_broker.clone()],
            tls: None,
            sasl: None,
            client_id: "feed-tests".into(),
            timeout: Duration::from_secs(10),
        })
        .unwrap()
    }
}
/// A broker that checks SASL credentials: tansu behind the proxy's SASL stand-in (user
/// `alice`), optionally behind a TLS terminator with a private CA.
pub struct SaslRig {
    /// The rig, its feed reaching the broker through the proxy.
    pub r: Rig,
    /// The proxy in front of tansu, playing SASL.
    pub proxy: KafkaProxy,
    /// The CA and the TLS terminator in front of the proxy, when the rig speaks TLS.
    pub tls: Option<(TestCa, TlsProxy)>,
}

/// The password the SASL stand-in accepts for `alice`.
pub const SASL_PASSWORD: &str = "right-password-Q7x";

impl SaslRig {
    /// A topic behind the SASL stand-in, behind TLS when `tls`.
    pub fn start(tls: bool) -> SaslRig {
        let broker = Tansu::start(false).expect("tansu");
        let topic = Moto::unique_bucket("topic");
        broker.create_topic(&topic, 1).unwrap();
        let proxy = KafkaProxy::start(&broker.addr).expect("kafka proxy");
        proxy.require_sasl("alice", SASL_PASSWORD);
        let mut r = Rig::on(broker, topic).through(&proxy);
        let tls = tls.then(|| {
            let ca = TestCa::new().expect("test CA");
            let terminator = TlsProxy::start(&proxy.addr, &ca).expect("TLS terminator");
            let addr = terminator.url().trim_start_matches("https://").to_string();
            proxy.advertise(&addr);
            r.feed_broker = addr;
            (ca, terminator)
        });
        SaslRig { r, proxy, tls }
    }

    /// The private CA of a TLS rig, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.tls.as_ref().expect("a TLS rig").0.ca_pem
    }
}
