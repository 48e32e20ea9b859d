//! The SNS rig: `receive` deployed as the `sns-test-receive` fixture (it also trusts the local
//! SNS stand-in) next to the shipped one, signed envelopes posted to a trigger's receiver.

use std::time::Duration;

use serde_json::{json, Value};

use crate::manifest::Deployment;
use crate::sns::{FakeSnsHost, SnsSigner};
use crate::world::{fixture_bin, workspace_bin, World, PACKAGE, USER};
use ow_emulator::{Config, SYSTEM_NAMESPACE};
use owfeed::hooks::feed::{binding_for, receiver_url};
use owfeed::hooks::receiver::batches_record_for;
use owfeed::openwhisk::{from_key_values, key_values, QualifiedName};

/// The topic the rig's envelopes come from.
pub const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:owfeed-uploads";
/// The S3 endpoint the rig's bindings name.
pub const ENDPOINT: &str = "https://s3.us-east-1.amazonaws.com";
/// The hook secret of the rig's bindings (never in an answer).
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// A package holding the shipped `receive`, next to the fixture's.
pub const SHIPPED: &str = "owfeed-shipped";

/// The receivers (fixture and shipped), the SNS stand-in and a signer.
pub struct Sns {
    /// The emulator with both receivers.
    pub w: World,
    /// The local HTTPS host standing in for `sns.us-east-1.amazonaws.com`.
    pub host: FakeSnsHost,
    /// Signs envelopes with the test key.
    pub signer: SnsSigner,
    /// Posts envelopes; statuses are answers, not errors.
    pub http: ureq::Agent,
}

/// An HTTP answer from the receiver.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (null when not JSON).
    pub body: Value,
}

impl Sns {
    /// The emulator, both receivers and the SNS stand-in.
    pub fn start() -> Sns {
        let w = World::empty(Config::with_namespaces(&[USER]), "sns").expect("start emulator");
        let host = FakeSnsHost::start().expect("start the SNS stand-in");
        // The test host goes on the shared packages, where a deployer would put settings.
        let params = json!([{"key": "snsTestHost", "value": host.host_port()},
            {"key": "snsTestCa", "value": host.ca.ca_pem}]);
        let fixture = fixture_bin("sns-test-receive");
        for (package, binary) in [(PACKAGE, fixture), (SHIPPED, workspace_bin("receive"))] {
            let package = Some(package.to_string());
            let deployment =
                Deployment { package, parameters: params.clone(), ..Deployment::with([("receive", binary)]) };
            w.deploy_manifest(&deployment).expect("deploy package");
        }
        let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Sns { w, host, signer: SnsSigner::new(), http }
    }

    /// A trigger with a rule to the recorder and its hook binding to `package`; returns the
    /// receiver URL. `config` is merged over the binding's parameters (`null` removes one).
    pub fn hook(&self, trigger: &str, package: &str, config: Value) -> String {
        let name = QualifiedName::new(USER, None, trigger);
        self.w.user.put_trigger(&name, &json!({}), true).unwrap();
        self.w.record_events(trigger, &fixture_bin("echo-action"));
        let binding = binding_for(&name);
        let url = receiver_url(&self.w.emu.url(), &binding);
        let mut params = json!({"source": "s3", "provider": "aws", "endpoint": ENDPOINT, "bucket": "photos",
            "secret": SECRET, "triggerName": format!("/{USER}/{trigger}"), "url": url, "topicArn": TOPIC});
        for (k, v) in config.as_object().unwrap() {
            match v {
                Value::Null => params.as_object_mut().unwrap().remove(k),
                v => params.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        let body = json!({"binding": {"namespace": SYSTEM_NAMESPACE, "name": package},
            "parameters": key_values(params.as_object().unwrap())});
        self.w.user.put_package(&binding, &body, true).unwrap();
        url
    }

    /// An unsigned envelope of `kind` from our topic, published now, its certificate on the
    /// SNS stand-in.
    pub fn envelope(&self, kind: &str, message: &str, id: &str) -> Value {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut e = json!({"Type": kind, "MessageId": id, "TopicArn": TOPIC, "Message": message,
            "Timestamp": now, "SigningCertURL": self.host.cert_url()});
        if kind == "Notification" {
            e["Subject"] = json!("Amazon S3 Notification");
            e["UnsubscribeURL"] =
                json!(format!("{}/?Action=Unsubscribe&SubscriptionArn={TOPIC}:0c8f", self.host.url()));
        } else {
            e["Token"] = json!("2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92");
            // An UnsubscribeConfirmation's SubscribeURL would subscribe again: it is never fetched.
            e["SubscribeURL"] = json!(format!(
                "{}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92",
                self.host.url()
            ));
        }
        e
    }

    /// `envelope` signed with SignatureVersion `version`.
    pub fn signed(&self, mut envelope: Value, version: &str) -> Value {
        self.signer.sign(&mut envelope, version);
        envelope
    }

    /// POSTs an envelope as SNS does (text/plain, the message-type and id headers).
    pub fn post(&self, url: &str, envelope: &Value) -> Answer {
        let kind = envelope["Type"].as_str().unwrap_or("Notification");
        let req = ureq::http::Request::builder()
            .method("POST")
            .uri(url)
            .header("Content-Type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", kind)
            .header("x-amz-sns-message-id", envelope["MessageId"].as_str().unwrap_or_default())
            .header("x-amz-sns-topic-arn", envelope["TopicArn"].as_str().unwrap_or_default())
            .header("User-Agent", "Amazon Simple Notification Service Agent")
            .body(envelope.to_string().into_bytes())
            .unwrap();
        let mut resp = self.http.run(req).expect("receiver answers");
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert!(!text.contains(SECRET), "{text}");
        Answer { status: resp.status().as_u16(), body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// What the recorder received, once the emulator is idle.
    pub fn events(&self) -> Vec<Value> {
        assert!(self.w.emu.wait_idle(Duration::from_secs(60)), "emulator did not go idle");
        self.w.events()
    }

    /// The `lastFailure` the receiver recorded for `trigger` (what the hook's READ shows).
    pub fn last_failure(&self, trigger: &str) -> Option<Value> {
        let record = batches_record_for(&QualifiedName::new(USER, None, trigger));
        let doc = self.w.user.get_package(&record).ok()?;
        from_key_values(&doc["parameters"]).remove("lastFailure")
    }
}
