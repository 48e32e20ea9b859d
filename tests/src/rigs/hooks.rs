//! The hooks rig: the `hook` feed and the `receive` web action deployed from manifest.yaml,
//! and an HTTP client for the receiver.

use std::time::Duration;

use serde_json::Value;

use crate::manifest::Deployment;
use crate::world::{fixture_bin, World, USER};
use ow_emulator::Config;

/// A world with only the hooks actions of the package deployed (`hook`, `receive`).
pub struct Hooks {
    /// The emulator with the hooks actions.
    pub w: World,
    /// Posts deliveries to the receiver; statuses are answers, not errors.
    pub http: ureq::Agent,
}

/// An HTTP answer from the receiver.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers as received.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (null when not JSON).
    pub body: Value,
}

impl Answer {
    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Hooks {
    /// The hooks actions deployed as the manifest says.
    pub fn start() -> Hooks {
        Hooks::deployed(None)
    }

    /// The hooks actions deployed with `kind` (`blackbox`, as `--native` does).
    pub fn start_as(kind: &str) -> Hooks {
        Hooks::deployed(Some(kind.to_string()))
    }

    fn deployed(kind: Option<String>) -> Hooks {
        let w = World::empty(Config::with_namespaces(&[USER, "other"]), "hooks").expect("start emulator");
        w.deploy_manifest(&Deployment { kind, ..Deployment::of(&["hook", "receive"]) }).expect("deploy package");
        let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Hooks { w, http }
    }

    /// Invokes the hook feed action as the CLI does (blocking, with the user's key).
    pub fn feed(&self, event: &str, trigger: &str, params: Value) -> Result<Value, String> {
        self.w.feed_of("hook", event, trigger, params)
    }

    /// `wsk trigger create NAME --feed owfeed/hook -p …`, including the CLI's cleanup on failure.
    pub fn create(&self, trigger: &str, params: Value) -> Result<Value, String> {
        self.w.create_trigger_of("hook", trigger, params)
    }

    /// Creates a hook trigger with a rule to the echo fixture; returns the CREATE result.
    pub fn create_recorded(&self, trigger: &str, params: Value) -> Value {
        let created = self.create(trigger, params).expect("CREATE");
        self.w.record_events(trigger, &fixture_bin("echo-action"));
        created
    }

    /// Sends any request to the receiver.
    pub fn request(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = self.http.run(req.body(body.to_vec()).unwrap()).expect("receiver answers");
        let headers =
            resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string())).collect();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Answer { status: resp.status().as_u16(), headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// POSTs a delivery to the receiver.
    pub fn post(&self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        self.request("POST", url, headers, body)
    }

    /// What the recorder received, once every rule invocation is done.
    pub fn events(&self) -> Vec<Value> {
        assert!(self.w.emu.wait_idle(Duration::from_secs(60)), "emulator did not go idle");
        self.w.events()
    }

    /// The user's packages, as `package:NAME`.
    pub fn user_packages(&self) -> Vec<String> {
        self.w.user_entities().unwrap().into_iter().filter(|e| e.starts_with("package:")).collect()
    }
}
