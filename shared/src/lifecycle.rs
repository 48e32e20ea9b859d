//! The feed lifecycle: parse a feed action's parameters, check the caller owns the trigger,
//! and dispatch `CREATE`, `READ`, `UPDATE`, `DELETE`, `PAUSE`, `UNPAUSE` to a `Feed`.
//!
//! This layer assumes no pattern: the polling pattern (`polling`) and the hooks pattern are
//! both `Feed` implementations. It does no I/O of its own beyond the ownership check.

use std::fmt;

use serde_json::Value;

use serde_json::{json, Map};

use crate::openwhisk::{from_key_values, key_values, AuthKey, Client, OwError, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::{ActionError, Context};
use crate::secret::REDACTED;

/// The lifecycle events a feed action handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// `wsk trigger create --feed`: set the feed up.
    Create,
    /// `wsk trigger get`: show config and status.
    Read,
    /// `wsk trigger update`: change parameters.
    Update,
    /// `wsk trigger delete`: tear everything down; must succeed when nothing is there.
    Delete,
    /// Stop producing events, keep everything.
    Pause,
    /// Produce events again.
    Unpause,
}

impl LifecycleEvent {
    /// Every accepted value, for error messages.
    pub const ALL: &'static str = "CREATE, READ, UPDATE, DELETE, PAUSE or UNPAUSE";

    /// Parses a `lifecycleEvent` value (case-insensitive).
    pub fn parse(value: &str) -> Option<LifecycleEvent> {
        match value.trim().to_ascii_uppercase().as_str() {
            "CREATE" => Some(LifecycleEvent::Create),
            "READ" => Some(LifecycleEvent::Read),
            "UPDATE" => Some(LifecycleEvent::Update),
            "DELETE" => Some(LifecycleEvent::Delete),
            "PAUSE" => Some(LifecycleEvent::Pause),
            "UNPAUSE" => Some(LifecycleEvent::Unpause),
            _ => None,
        }
    }
}

impl fmt::Display for LifecycleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            LifecycleEvent::Create => "CREATE",
            LifecycleEvent::Read => "READ",
            LifecycleEvent::Update => "UPDATE",
            LifecycleEvent::Delete => "DELETE",
            LifecycleEvent::Pause => "PAUSE",
            LifecycleEvent::Unpause => "UNPAUSE",
        };
        f.write_str(s)
    }
}

/// The parameters only the lifecycle layer reads; a feed sees the rest in `FeedRequest::params`.
const LIFECYCLE_PARAMS: [&str; 3] = ["lifecycleEvent", "triggerName", "authKey"];

/// One lifecycle call, parsed and with the trigger's ownership checked.
pub struct FeedRequest<'a> {
    /// The activation's context.
    pub ctx: &'a Context,
    /// Which lifecycle event.
    pub event: LifecycleEvent,
    /// The user's trigger, with its namespace resolved when the trigger exists.
    pub trigger: QualifiedName,
    /// The trigger document, when it exists (`None` only for DELETE of a missing trigger).
    pub trigger_doc: Option<Value>,
    /// A client acting with the user's authKey.
    pub client: Client,
    /// This feed action's own package (`/ns/pkg`), where sibling actions such as `poll` live.
    pub package: Option<QualifiedName>,
    /// Every other parameter the user passed (and the package bound).
    pub params: Params,
}

impl FeedRequest<'_> {
    /// Reads a feed's per-trigger config: the parameters of its package binding in the user's
    /// namespace (`None` when there is none). `what` names it in errors ("feed config").
    pub fn read_config(&self, binding: &QualifiedName, what: &str) -> Result<Option<Params>, ActionError> {
        match read_binding(&self.client, binding, what)? {
            None => Ok(None),
            Some(doc) => Ok(Some(Params::from_value(Value::Object(from_key_values(&doc["parameters"])))?)),
        }
    }

    /// Writes (or replaces) a feed's per-trigger config: a binding of this feed action's own
    /// package, so credentials stay in the user's namespace and never on the shared package.
    /// Its annotations are kept.
    pub fn write_config(&self, binding: &QualifiedName, config: &Params) -> Result<(), OwError> {
        self.write_config_annotated(binding, config, None)
    }

    /// Like `write_config`, replacing the binding's annotations with `annotations` when given
    /// (`[{"key", "value"}, …]`): what a pattern records about the trigger where listing the
    /// namespace's packages shows it (they carry annotations, not parameters).
    pub fn write_config_annotated(
        &self,
        binding: &QualifiedName,
        config: &Params,
        annotations: Option<&Value>,
    ) -> Result<(), OwError> {
        let package = self.package.as_ref().ok_or_else(|| OwError::BadRequest {
            status: 400,
            message: "runtime: cannot tell this feed action's package from its name".into(),
        })?;
        let mut body = json!({
            "binding": { "namespace": package.namespace, "name": package.name },
            "parameters": key_values(config.as_map()),
        });
        if let Some(a) = annotations {
            body["annotations"] = a.clone();
        }
        self.client.put_package(binding, &body, true).map(|_| ())
    }
}

/// Reads a package binding in the caller's namespace, parameters and annotations (`None` when
/// there is none). `what` names it in errors.
pub fn read_binding(client: &Client, binding: &QualifiedName, what: &str) -> Result<Option<Value>, ActionError> {
    match client.get_package(binding) {
        Ok(doc) => Ok(Some(doc)),
        Err(OwError::NotFound(_)) => Ok(None),
        // With `shared-packages-execute-only`, GET of a binding to another namespace's
        // package is refused with 403 once the binding is found (apache/openwhisk
        // Packages.scala:343-344). A PUT with an empty body changes nothing (every field
        // absent keeps its value, Packages.scala:288-305) and answers the binding with its
        // own parameters, which are the whole config (ApiUtils.scala:346; with
        // `require-response-payload = false` it answers nothing, and we say so).
        Err(OwError::Unauthorized(m)) if m.contains("binding of a shared package") => {
            let refused = |why: String| {
                ActionError::new(format!(
                    "reading the {what} {binding}: this OpenWhisk refuses GET of bindings of shared packages \
                     (shared-packages-execute-only=true) and {why}; ask the operator to allow GET of \
                     shared packages or to enable whisk.feature-flags.require-response-payload"
                ))
            };
            let doc = client
                .put_package(binding, &json!({}), true)
                .map_err(|e| refused(format!("reading it back with an empty PUT failed: {e}")))?;
            if !doc["parameters"].is_array() {
                return Err(refused("an empty PUT answered no parameters".to_string()));
            }
            Ok(Some(doc))
        }
        Err(e) => Err(ActionError::new(format!("reading the {what} {binding}: {e}"))),
    }
}

/// Refuses any http(s) URL parameter with user-info: credentials have parameters of their
/// own, and a URL is shown in results and messages. The value is never repeated.
fn reject_userinfo_urls(params: &Params) -> Result<(), ParamError> {
    for (name, value) in params.as_map() {
        let Some(url) = value.as_str() else { continue };
        let lower = url.trim().to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) else { continue };
        if rest.split(['/', '?', '#']).next().is_some_and(|authority| authority.contains('@')) {
            return Err(ParamError::invalid_secret(
                name,
                "an http(s) URL without user-info (give credentials in their own parameters)",
            ));
        }
    }
    Ok(())
}

/// A delete or undo step's result: a missing entity (404) counts as done.
pub fn ignore_missing(r: Result<(), OwError>) -> Result<(), String> {
    match r {
        Ok(()) | Err(OwError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The config as READ shows it: every parameter named in `secret` replaced by `[redacted]`.
pub fn redact(config: &Params, secret: &[&str]) -> Value {
    let out: Map<String, Value> = config
        .as_map()
        .iter()
        .map(|(k, v)| (k.clone(), if secret.contains(&k.as_str()) { json!(REDACTED) } else { v.clone() }))
        .collect();
    Value::Object(out)
}

/// A feed: what to do for each lifecycle event. `DELETE` must be idempotent.
pub trait Feed {
    /// Sets the feed up; idempotent, and leaves nothing behind when it fails.
    fn create(&self, req: &FeedRequest) -> Result<Value, ActionError>;
    /// Returns config (secrets redacted) and status.
    fn read(&self, req: &FeedRequest) -> Result<Value, ActionError>;
    /// Applies new parameters without losing state.
    fn update(&self, req: &FeedRequest) -> Result<Value, ActionError>;
    /// Removes everything the feed made; succeeds when some or all of it is gone.
    fn delete(&self, req: &FeedRequest) -> Result<Value, ActionError>;
    /// Stops producing events.
    fn pause(&self, req: &FeedRequest) -> Result<Value, ActionError>;
    /// Produces events again.
    fn unpause(&self, req: &FeedRequest) -> Result<Value, ActionError>;
}

/// The feed action's handler: parse, check ownership, dispatch.
pub fn handle(feed: &dyn Feed, ctx: &Context, mut params: Params) -> Result<Value, ActionError> {
    let event_name = params.required_str("lifecycleEvent")?;
    let event = LifecycleEvent::parse(&event_name).ok_or_else(|| {
        ActionError::from(ParamError::invalid("lifecycleEvent", LifecycleEvent::ALL, &Value::String(event_name)))
    })?;
    let trigger_name = params.required_str("triggerName")?;
    let mut trigger = QualifiedName::parse(&trigger_name, "_").map_err(|e| {
        ActionError::from(ParamError::invalid(
            "triggerName",
            &format!("/namespace/trigger ({e})"),
            &trigger_name.into(),
        ))
    })?;
    if trigger.package.is_some() {
        return Err(ParamError::invalid("triggerName", "/namespace/trigger", &trigger.to_string().into()).into());
    }
    let auth_key = AuthKey::parse(params.required_secret("authKey")?.expose())
        .map_err(|_| ParamError::invalid_secret("authKey", "<uuid>:<key>"))?;
    for name in LIFECYCLE_PARAMS {
        params.remove(name);
    }
    if matches!(event, LifecycleEvent::Create | LifecycleEvent::Update) {
        reject_userinfo_urls(&params)?;
    }
    let api_host = ctx
        .api_host
        .clone()
        .ok_or_else(|| ActionError::new("runtime: __OW_API_HOST is not set, cannot reach OpenWhisk"))?;
    let tls = crate::openwhisk::ApiTls::from_params(&params)?;
    let client = Client::new(&api_host, auth_key).with_tls(&tls).map_err(ActionError::new)?;

    // Ownership: the trigger must be visible to the supplied key. DELETE tolerates a missing
    // trigger: `wsk trigger delete` invokes it before deleting the trigger (openwhisk-cli
    // commands/trigger.go:275-296), but a trigger removed without the feed (the REST API, or
    // wskdeploy after a failed CREATE, servicedeployer.go:940-947) leaves helpers to remove.
    let trigger_doc = match client.get_trigger(&trigger) {
        Ok(doc) => {
            if let Some(ns) = doc.get("namespace").and_then(Value::as_str) {
                trigger.namespace = ns.to_string();
            }
            Some(doc)
        }
        Err(OwError::NotFound(_)) if event == LifecycleEvent::Delete => None,
        Err(OwError::NotFound(_)) => {
            return Err(ActionError::new(format!(
                "trigger {trigger} does not exist or is not visible with the supplied authKey"
            )))
        }
        Err(OwError::Unauthorized(_)) => {
            return Err(ActionError::new(format!("authKey is not allowed to manage trigger {trigger}")))
        }
        Err(e) => return Err(ActionError::new(format!("could not check trigger {trigger}: {e}"))),
    };
    let package = ctx.package().and_then(|p| QualifiedName::parse(p, &ctx.namespace).ok());
    let req = FeedRequest { ctx, event, trigger, trigger_doc, client, package, params };
    match event {
        LifecycleEvent::Create => feed.create(&req),
        LifecycleEvent::Read => feed.read(&req),
        LifecycleEvent::Update => feed.update(&req),
        LifecycleEvent::Delete => feed.delete(&req),
        LifecycleEvent::Pause => feed.pause(&req),
        LifecycleEvent::Unpause => feed.unpause(&req),
    }
}

/// One compensating action: what it undoes, and how.
type UndoStep<'a> = (String, Box<dyn FnOnce() -> Result<(), String> + 'a>);

/// Compensating actions recorded while CREATE makes things, run in reverse if it fails.
pub struct Undo<'a> {
    steps: Vec<UndoStep<'a>>,
}

impl<'a> Undo<'a> {
    /// An empty undo log.
    pub fn new() -> Undo<'a> {
        Undo { steps: Vec::new() }
    }

    /// Records how to undo one step that just succeeded.
    pub fn push(&mut self, what: impl Into<String>, undo: impl FnOnce() -> Result<(), String> + 'a) {
        self.steps.push((what.into(), Box::new(undo)));
    }

    /// Everything succeeded: forget the log.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// Undoes every recorded step and returns `error`, naming what could not be undone.
    pub fn fail_with(self, error: ActionError) -> ActionError {
        let left = self.rollback();
        if left.is_empty() {
            error
        } else {
            let message = format!("{} (and could not remove: {})", error.message, left.join("; "));
            ActionError { message, details: error.details }
        }
    }

    /// Undoes every recorded step, newest first; returns what could not be undone.
    pub fn rollback(mut self) -> Vec<String> {
        let mut left = Vec::new();
        while let Some((what, undo)) = self.steps.pop() {
            if let Err(e) = undo() {
                left.push(format!("{what}: {e}"));
            }
        }
        left
    }
}

impl Default for Undo<'_> {
    fn default() -> Self {
        Undo::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_names() {
        assert_eq!(LifecycleEvent::parse("create"), Some(LifecycleEvent::Create));
        assert_eq!(LifecycleEvent::parse(" UNPAUSE"), Some(LifecycleEvent::Unpause));
        assert_eq!(LifecycleEvent::parse("RESTART"), None);
        assert_eq!(LifecycleEvent::Pause.to_string(), "PAUSE");
    }

    #[test]
    fn urls_with_user_info_are_refused_without_echo() {
        let params = |v: Value| Params::from_value(v).unwrap();
        let err = reject_userinfo_urls(&params(json!({"githubApi": "https://u:PW-77@ghe.example/api"}))).unwrap_err();
        assert_eq!(err.name, "githubApi");
        assert!(!err.to_string().contains("PW-77"), "{err}");
        for fine in [json!({"a": "https://host/x@y"}), json!({"b": "mailto:me@x"}), json!({"c": 1})] {
            assert!(reject_userinfo_urls(&params(fine.clone())).is_ok(), "{fine}");
        }
    }

    #[test]
    fn undo_runs_newest_first_and_reports_failures() {
        let log = std::cell::RefCell::new(Vec::new());
        let mut undo = Undo::new();
        undo.push("a", || {
            log.borrow_mut().push("a");
            Ok(())
        });
        undo.push("b", || Err("boom".to_string()));
        undo.push("c", || {
            log.borrow_mut().push("c");
            Ok(())
        });
        assert_eq!(undo.rollback(), vec!["b: boom".to_string()]);
        assert_eq!(*log.borrow(), vec!["c", "a"]);
    }
}
