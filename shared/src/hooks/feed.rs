//! The hooks feed action (`hook`): a `Feed` that gives a trigger its own receiver endpoint and
//! registers it with the producer through a registration plugin.
//!
//! CREATE makes, in the user's namespace and with the user's key, a package binding
//! `{trigger}.owfeed-hook` to our shared package whose parameters hold the hook's config,
//! the secret and the producer's registration id (never on the shared package, and the
//! user's key never appears in a URL). OpenWhisk serves web actions through bindings and
//! merges the binding's parameters in, so the receiver URL is
//! `{apiHost}/api/v1/web/{ns}/{trigger}.owfeed-hook/receive.http` and `receive` runs as the
//! user. Then the plugin registers that URL with the producer; a failure undoes both steps.
//! A retried CREATE reuses the stored secret and registration.
//!
//! READ shows the config (secrets redacted), the URL and the registration; UPDATE merges new
//! parameters and, when a plugin parameter or the secret changed, updates the registration in
//! place where the producer can (GitHub, S3 notifications) or re-registers (paused if the trigger is paused); DELETE removes
//! the registration (naming it in the result when the producer cannot be reached) and the
//! binding, whatever is left of them; PAUSE/UNPAUSE tell the
//! producer when it can be told and always flag the binding, so the receiver drops deliveries
//! while paused.
//!
//! What lives with a registration (S3's reconcile polling feed) is a source's
//! [`Companion`]: every event above drives it too, by entry, never by name.

use percent_encoding::utf8_percent_encode;
use serde::Serialize;
use serde_json::{json, Value};

use super::extension::{Companion, HookSource};
use super::receiver::batches_record_for;
use super::registrar::{base_url, AnyRegistrar, Endpoint, StoredRegistration, SEGMENT};
use super::{HookConfig, SourceKind};
use crate::lifecycle::{ignore_missing, redact, Feed, FeedRequest, Undo};
use crate::openwhisk::{from_key_values, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::ActionError;
use crate::secret::Secret;

/// Config keys the feed writes itself; users cannot set them.
const CONFIG_TRIGGER: &str = "triggerName";
const CONFIG_URL: &str = "url";
const CONFIG_REGISTRATION: &str = "registration";
const CONFIG_PAUSED: &str = "paused";
const CONFIG_SECRET: &str = "secret";
const RESERVED: [&str; 4] = [CONFIG_TRIGGER, CONFIG_URL, CONFIG_REGISTRATION, CONFIG_PAUSED];

/// Shortest `secret` a user may choose.
pub const MIN_SECRET_LEN: usize = 16;

/// The binding that is a trigger's receiver endpoint: `{trigger}.owfeed-hook`.
pub fn binding_for(trigger: &QualifiedName) -> QualifiedName {
    QualifiedName::new(&trigger.namespace, None, &format!("{}.owfeed-hook", trigger.name))
}

/// The receiver URL of a binding: `{api_host}/api/v1/web/{ns}/{binding}/receive.http`.
pub fn receiver_url(api_host: &str, binding: &QualifiedName) -> String {
    format!(
        "{}/api/v1/web/{}/{}/receive.http",
        api_host.trim_end_matches('/'),
        utf8_percent_encode(&binding.namespace, SEGMENT),
        utf8_percent_encode(&binding.name, SEGMENT)
    )
}

/// What READ shows of a hook under `status`: its one definition, serialised once.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    /// The `source` the hook was created with.
    pub source: Option<String>,
    /// True when the producer holds a registration of ours.
    pub registered: bool,
    /// The producer's id of it.
    pub registration: Option<String>,
    /// False while paused.
    pub active: bool,
    /// True while paused (deliveries are answered and dropped).
    pub paused: bool,
    /// The receiver's binding `{trigger}.owfeed-hook`.
    pub endpoint: String,
    /// The receiver's last delivery it could not fire (`at`, `status`, `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Value>,
    /// Batches cut by a failure whose retry has not come yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batches_cut: Option<usize>,
    /// What the producer says of the registration (`Registrar::status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<Value>,
    /// Each companion's status under its name (`Companion::name`; `null` when not asked for).
    #[serde(flatten)]
    pub companions: std::collections::BTreeMap<&'static str, Option<Value>>,
}

/// The hooks feed, over a registry of hook sources selected by `source`.
pub struct HooksFeed<'a> {
    sources: &'a [HookSource<'a>],
}

fn fail(context: &str, e: impl std::fmt::Display) -> ActionError {
    ActionError::new(format!("{context}: {e}"))
}

impl<'a> HooksFeed<'a> {
    /// The feed serving `sources` (the binary passes the registry's).
    pub fn new(sources: &'a [HookSource<'a>]) -> HooksFeed<'a> {
        HooksFeed { sources }
    }

    fn entry(&self, kind: SourceKind) -> Result<HookSource<'a>, ActionError> {
        HookSource::find(self.sources, kind).ok_or_else(|| {
            ParamError::invalid("source", "a source this feed was built with", &json!(kind.as_str())).into()
        })
    }

    /// Checks everything CREATE and UPDATE need before anything is made.
    pub(crate) fn validate(&self, params: &Params) -> Result<HookSource<'a>, ActionError> {
        let kind = SourceKind::from_params(params)?;
        if let Some(secret) = params.secret(CONFIG_SECRET)? {
            if secret.expose().chars().count() < MIN_SECRET_LEN {
                return Err(ParamError::invalid_secret(CONFIG_SECRET, "at least 16 characters").into());
            }
        }
        // The receiver's view of the config, with a stand-in for a secret not chosen yet.
        let mut probe = params.clone();
        if !probe.has(CONFIG_SECRET) {
            probe.insert(CONFIG_SECRET, json!("x".repeat(MIN_SECRET_LEN)));
        }
        HookConfig::from_params(&probe, self.sources)?;
        crate::store::key_request(params)?;
        let entry = self.entry(kind)?;
        entry.registrar.validate(params)?;
        // A companion's parameter given to a source without that companion is refused by it.
        for companion in self.sources.iter().filter_map(|s| s.companion) {
            companion.wanted(params)?;
        }
        if let Some(companion) = entry.companion {
            companion.validate(params)?;
        }
        Ok(entry)
    }

    /// The trigger with its namespace resolved (the receiver URL needs a real one).
    fn trigger(req: &FeedRequest) -> QualifiedName {
        let mut t = req.trigger.clone();
        if t.namespace == "_" && !req.ctx.namespace.is_empty() {
            t.namespace = req.ctx.namespace.clone();
        }
        t
    }

    pub(crate) fn redact(&self, config: &Params) -> Value {
        let mut secret: Vec<&str> = vec![CONFIG_SECRET, crate::store::CONFIG_STATE_KEY];
        for s in self.sources {
            secret.extend(s.registrar.params().iter().filter(|p| p.secret).map(|p| p.name));
        }
        redact(config, &secret)
    }

    /// The entry of a stored config's `source`; a `source` that no longer reads is an error
    /// naming it (never "no registrar, nothing to remove").
    fn stored_entry(&self, config: &Params) -> Result<HookSource<'a>, ActionError> {
        self.entry(SourceKind::from_params(config)?)
    }

    /// Removes a stored config's registration at the producer: `None` when it is gone (or
    /// there is none), else what could not be removed and why, for DELETE's `notRemoved`.
    fn remove_registration(&self, config: &Params) -> Option<Value> {
        let id = match registration(config) {
            Ok(id) => id?,
            Err(e) => {
                return Some(json!({
                    "where": "the producer (unknown: the hook config's registration does not read)",
                    "reason": e.to_string(),
                }))
            }
        };
        let registrar = match self.stored_entry(config) {
            Ok(entry) => entry.registrar,
            Err(e) => {
                return Some(json!({
                    "registration": id.as_str(),
                    "where": "the producer (unknown: the hook config's source does not read)",
                    "reason": e.message,
                }))
            }
        };
        let e = registrar.unregister(config, &id).err()?;
        let (place, command) = registrar.removal(config, &id);
        Some(json!({ "registration": id.as_str(), "where": place, "command": command, "reason": e.to_string() }))
    }

    fn require_stored(&self, req: &FeedRequest, binding: &QualifiedName) -> Result<Params, ActionError> {
        req.read_config(binding, "hook config")?.ok_or_else(|| {
            ActionError::new(format!("trigger {} has no hook config: was it created with this feed?", req.trigger))
        })
    }
}

fn user_params(params: &Params) -> Params {
    let mut p = params.clone();
    for k in RESERVED {
        p.remove(k);
    }
    p
}

/// Stores registration `id` and the config entries its registrar derives from it.
fn store_registration(config: &mut Params, registrar: &dyn AnyRegistrar, id: &StoredRegistration) {
    config.insert(CONFIG_REGISTRATION, json!(id.as_str()));
    for (k, v) in registrar.registration_config(id) {
        config.insert(k, v);
    }
}

/// Lets the registrar finish what needed the stored config (see `Registrar::after_stored`);
/// returns what the producer says about the registration then. A failure there leaves the
/// registration in place and is said in the status.
fn after_stored(
    registrar: &dyn AnyRegistrar,
    params: &Params,
    id: &StoredRegistration,
    endpoint: &Endpoint,
) -> Option<Value> {
    let failed = registrar.after_stored(params, id, endpoint).err();
    let mut status = registrar.status(params, id, endpoint);
    if let Some(e) = failed {
        crate::runtime::log(&format!("hook registration {id}: {e}"));
        let problem = format!("asking the producer to confirm the registration failed: {e}");
        match &mut status {
            Some(Value::Object(m)) if !m.contains_key("problem") => {
                m.insert("problem".into(), json!(problem));
            }
            Some(_) => {}
            None => status = Some(json!({ "problem": problem })),
        }
    }
    status
}

fn registrar_status(
    registrar: &dyn AnyRegistrar,
    config: &Params,
    id: &StoredRegistration,
    active: bool,
) -> Option<Value> {
    let url = config.str(CONFIG_URL).ok().flatten().unwrap_or_default();
    let secret = config.required_secret(CONFIG_SECRET).ok()?;
    let endpoint = Endpoint { url, secret: Secret::new(secret.expose()), active };
    registrar.status(config, id, &endpoint)
}

/// A companion's key (the S3 reconcile's state and the receiver's push markers are sealed with
/// it), so it is kept in the hook config, which the receiver reads, and passed to the
/// companion. `requested` is the request's `stateKey` (`new` rotates it), `stored` the config
/// before. Without a companion no key is kept.
fn set_state_key(
    config: &mut Params,
    companion: Option<&dyn Companion>,
    requested: &Params,
    stored: Option<&Params>,
) -> Result<(), ActionError> {
    let key = crate::store::CONFIG_STATE_KEY;
    config.remove(key);
    if !companion.map(|c| c.wanted(config)).transpose()?.unwrap_or(false) {
        return Ok(());
    }
    let request = crate::store::key_request(requested)?;
    let (secret, _) =
        crate::store::resolve_key(request, stored.and_then(crate::store::stored_key)).map_err(ActionError::new)?;
    config.insert(key, json!(secret.expose()));
    Ok(())
}

/// The stored registration, if any (an empty one is none); one that is not a string is an
/// error naming `registration`, never "nothing registered".
fn registration(config: &Params) -> Result<Option<StoredRegistration>, ParamError> {
    Ok(config.str(CONFIG_REGISTRATION)?.and_then(|s| StoredRegistration::from_stored(&s)))
}

impl Feed for HooksFeed<'_> {
    fn create(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let params = user_params(&req.params);
        let entry = self.validate(&params)?;
        let registrar = entry.registrar;
        let trigger = HooksFeed::trigger(req);
        let binding = binding_for(&trigger);
        let api_host = base_url(&params, "apiHost", req.ctx.api_host.as_deref())?;
        let url = receiver_url(&api_host, &binding);
        let stored = req.read_config(&binding, "hook config")?;
        let same_source =
            stored.as_ref().filter(|s| s.str("source").ok().flatten() == params.str("source").ok().flatten());
        // A leftover endpoint of another source (an older trigger of this name): drop its registration.
        if let (Some(old), None) = (&stored, same_source) {
            if let Some(id) = registration(old)? {
                let removing = format!("removing the old registration {id}");
                let r = self.stored_entry(old).map_err(|e| fail(&removing, e.message))?.registrar;
                r.unregister(old, &id).map_err(|e| fail(&removing, e))?;
            }
        }
        // A retried CREATE keeps the secret and registration an earlier attempt stored.
        let secret =
            match (params.secret(CONFIG_SECRET)?, same_source.and_then(|s| s.secret(CONFIG_SECRET).ok().flatten())) {
                (Some(given), _) => given,
                (None, Some(kept)) => kept,
                (None, None) => Secret::generate("webhook secret").map_err(ActionError::new)?,
            };
        let mut config = params.clone();
        config.insert(CONFIG_TRIGGER, json!(trigger.to_string()));
        config.insert(CONFIG_URL, json!(url));
        config.insert(CONFIG_SECRET, json!(secret.expose()));
        set_state_key(&mut config, entry.companion, &params, same_source)?;
        let kept = same_source.map(registration).transpose()?.flatten();
        if let Some(id) = &kept {
            store_registration(&mut config, registrar, id);
        }
        let client = &req.client;
        let mut undo = Undo::new();
        req.write_config(&binding, &config).map_err(|e| fail(&format!("creating the hook endpoint {binding}"), e))?;
        if stored.is_none() {
            undo.push("hook endpoint", || ignore_missing(client.delete_package(&binding)));
        }
        let mut id = kept.clone();
        if kept.is_none() {
            let endpoint = Endpoint { url: url.clone(), secret: secret.clone(), active: true };
            let step = registrar.register(&params, &endpoint).map_err(|e| fail("registering the hook", e));
            let registered = match step {
                Ok(r) => r,
                Err(e) => return Err(undo.fail_with(e)),
            };
            if let Some(new_id) = registered {
                let reg_params = params.clone();
                let undo_id = new_id.clone();
                undo.push("registration", move || {
                    registrar.unregister(&reg_params, &undo_id).map_err(|e| e.to_string())
                });
                store_registration(&mut config, registrar, &new_id);
                if let Err(e) = req.write_config(&binding, &config) {
                    return Err(undo.fail_with(fail(&format!("storing the registration in {binding}"), e)));
                }
                id = Some(new_id);
            }
        }
        // What lives with the registration (S3's reconcile), transactional itself.
        let companion_made = match entry.companion.map(|c| c.create(req, &config)).transpose() {
            Ok(r) => r.flatten(),
            Err(e) => return Err(undo.fail_with(e)),
        };
        undo.commit();
        let mut out = json!({
            "status": "created",
            "trigger": trigger.to_string(),
            "source": registrar.name(),
            "url": url,
            "registration": id.as_ref().map(StoredRegistration::as_str),
            "endpoint": binding.to_string(),
        });
        if let (Some(companion), Some(r)) = (entry.companion, companion_made) {
            out[companion.name()] = r;
        }
        if let Some(id) = &id {
            let endpoint = Endpoint { url: url.clone(), secret: secret.clone(), active: true };
            if let Some(status) = after_stored(registrar, &params, id, &endpoint) {
                out["producer"] = status;
            }
        }
        // The token is shown once, to paste into the producer: when nothing was registered, or
        // when the producer still needs it from the user.
        if (id.is_none() || registrar.needs_token(&params)) && !params.has(CONFIG_SECRET) {
            out["token"] = json!(secret.expose());
        }
        Ok(out)
    }

    fn read(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let binding = binding_for(&HooksFeed::trigger(req));
        let config = self.require_stored(req, &binding)?;
        let paused = config.bool(CONFIG_PAUSED).ok().flatten().unwrap_or(false);
        let mut status = HookStatus {
            source: config.str("source").ok().flatten(),
            registered: matches!(registration(&config), Ok(Some(_))),
            registration: registration(&config).ok().flatten().map(|r| r.as_str().to_string()),
            active: !paused,
            paused,
            endpoint: binding.to_string(),
            ..HookStatus::default()
        };
        let entry = self.stored_entry(&config);
        if let Some(companion) = entry.as_ref().ok().and_then(|e| e.companion) {
            status.companions.insert(companion.name(), companion.read(req, &config));
        }
        // The receiver's record (hooks/receiver.rs): the last delivery it could not fire, and
        // batches cut by a failure and not yet completed by the producer's retry.
        let trigger = HooksFeed::trigger(req);
        if let Ok(record) = req.client.get_package(&batches_record_for(&trigger)) {
            let record = from_key_values(&record["parameters"]);
            status.last_failure = record.get("lastFailure").cloned();
            if let Some(Value::Object(cut)) = record.get("batches") {
                status.batches_cut = Some(cut.len());
            }
        }
        // What the producer says (e.g. an SNS subscription still pending confirmation).
        status.producer = match (registration(&config), &entry) {
            (Ok(None), _) => None,
            (Ok(Some(id)), Ok(entry)) => registrar_status(entry.registrar, &config, &id, !paused),
            (Ok(Some(id)), Err(e)) => {
                Some(json!({ "problem": format!("registration {id} cannot be checked: {}", e.message) }))
            }
            (Err(e), _) => Some(json!({ "problem": format!("the registration cannot be checked: {e}") })),
        };
        Ok(json!({
            "config": self.redact(&config),
            "url": config.str(CONFIG_URL).ok().flatten(),
            "status": status,
        }))
    }

    fn update(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let binding = binding_for(&HooksFeed::trigger(req));
        let old = self.require_stored(req, &binding)?;
        let mut merged = old.clone();
        for (k, v) in user_params(&req.params).as_map() {
            if v.is_null() {
                merged.remove(k);
            } else {
                merged.insert(k, v.clone());
            }
        }
        if merged.str("source")? != old.str("source")? {
            return Err(ParamError::invalid(
                "source",
                "the source the trigger was created with (delete and re-create the trigger to change it)",
                merged.raw("source").unwrap_or(&Value::Null),
            )
            .into());
        }
        let entry = self.validate(&merged)?;
        let registrar = entry.registrar;
        set_state_key(&mut merged, entry.companion, &req.params, Some(&old))?;
        let secret = merged.required_secret(CONFIG_SECRET)?;
        let api_host = base_url(&merged, "apiHost", req.ctx.api_host.as_deref())?;
        merged.insert(CONFIG_URL, json!(receiver_url(&api_host, &binding)));
        let changed = registrar
            .params()
            .iter()
            .map(|p| p.name)
            .chain([CONFIG_SECRET, CONFIG_URL])
            .any(|k| old.raw(k) != merged.raw(k));
        let old_id = registration(&old)?;
        let mut problems = Vec::new();
        let mut producer = None;
        if changed {
            let url = merged.str(CONFIG_URL)?.unwrap_or_default();
            let active = !merged.bool(CONFIG_PAUSED)?.unwrap_or(false);
            let endpoint = Endpoint { url, secret: Secret::new(secret.expose()), active };
            match old_id.as_ref().and_then(|id| registrar.update(&merged, id, &endpoint)) {
                // In place (GitHub refuses a second hook for the same URL and events).
                Some(result) => {
                    let id = result.map_err(|e| fail("updating the registration", e))?;
                    store_registration(&mut merged, registrar, &id);
                    req.write_config(&binding, &merged)
                        .map_err(|e| fail(&format!("updating the hook config {binding}"), e))?;
                    producer = after_stored(registrar, &merged, &id, &endpoint);
                }
                // A new registration first, then the old one removed: deliveries never stop.
                None => {
                    merged.remove(CONFIG_REGISTRATION);
                    let new_id =
                        registrar.register(&merged, &endpoint).map_err(|e| fail("re-registering the hook", e))?;
                    let mut undo = Undo::new();
                    if let Some(id) = &new_id {
                        store_registration(&mut merged, registrar, id);
                        let (undo_params, undo_id) = (merged.clone(), id.clone());
                        undo.push("new registration", move || {
                            registrar.unregister(&undo_params, &undo_id).map_err(|e| e.to_string())
                        });
                    }
                    if let Err(e) = req.write_config(&binding, &merged) {
                        return Err(undo.fail_with(fail(&format!("updating the hook config {binding}"), e)));
                    }
                    undo.commit();
                    if let Some(id) = &new_id {
                        producer = after_stored(registrar, &merged, id, &endpoint);
                    }
                    if let Some(id) = &old_id {
                        if let Err(e) = registrar.unregister(&old, id) {
                            problems.push(format!("could not remove the old registration {id}: {e}"));
                        }
                    }
                }
            }
        } else {
            req.write_config(&binding, &merged).map_err(|e| fail(&format!("updating the hook config {binding}"), e))?;
        }
        // What lives with the registration: created, updated or removed as `merged` says.
        let companion_now = entry.companion.map(|c| c.update(req, &old, &merged)).transpose()?.flatten();
        let mut out = json!({
            "status": "updated",
            "trigger": req.trigger.to_string(),
            "reregistered": changed,
            "url": merged.str(CONFIG_URL)?,
            "registration": registration(&merged)?.as_ref().map(StoredRegistration::as_str),
            "problems": problems,
        });
        if let Some(producer) = producer {
            out["producer"] = producer;
        }
        if let Some(companion) = entry.companion {
            out[companion.name()] = json!(companion_now);
        }
        Ok(out)
    }

    /// Removes the registration, the endpoint and the batch record. `wsk trigger delete`
    /// ignores a failed DELETE and deletes the trigger anyway (apache/openwhisk-cli
    /// 23f3cf7 commands/trigger.go:286-289 only logs configureFeed's error, then :296 deletes),
    /// and a second DELETE never reaches the feed: so everything in the user's namespace is
    /// always removed, and what could not be removed at the producer is
    /// named in the result (`notRemoved`: where, and the command that removes it).
    fn delete(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        let trigger = HooksFeed::trigger(req);
        let binding = binding_for(&trigger);
        let mut not_removed = Vec::new();
        match req.read_config(&binding, "hook config") {
            Ok(Some(config)) => not_removed.extend(self.remove_registration(&config)),
            Ok(None) => {}
            Err(e) => not_removed.push(json!({
                "where": "the producer (unknown: the hook config could not be read)",
                "reason": e.message,
            })),
        }
        let mut failed = Vec::new();
        // What lives with the registration (S3's reconcile: its alarm, rule, config and
        // state); every source's companion when the config cannot say which source it is.
        let hook_config = req.read_config(&binding, "hook config").ok().flatten();
        let companions: Vec<&dyn Companion> = match hook_config.as_ref().and_then(|c| self.stored_entry(c).ok()) {
            Some(entry) => entry.companion.into_iter().collect(),
            None => self.sources.iter().filter_map(|s| s.companion).collect(),
        };
        for companion in companions {
            if let Err(e) = companion.delete(req, hook_config.as_ref()) {
                failed.push(e.message);
            }
        }
        for (what, name) in [("hook endpoint", binding), ("batch record", batches_record_for(&trigger))] {
            if let Err(e) = ignore_missing(req.client.delete_package(&name)) {
                failed.push(format!("could not remove the {what} {name}: {e}"));
            }
        }
        if !failed.is_empty() {
            let mut message = failed.join("; ");
            if !not_removed.is_empty() {
                message.push_str(&format!("; also not removed at the producer: {}", Value::Array(not_removed)));
            }
            return Err(ActionError::new(message));
        }
        let mut out = json!({ "status": "deleted", "trigger": req.trigger.to_string() });
        if !not_removed.is_empty() {
            out["notRemoved"] = Value::Array(not_removed);
        }
        Ok(out)
    }

    fn pause(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        self.set_active(req, false)
    }

    fn unpause(&self, req: &FeedRequest) -> Result<Value, ActionError> {
        self.set_active(req, true)
    }
}

impl HooksFeed<'_> {
    fn set_active(&self, req: &FeedRequest, active: bool) -> Result<Value, ActionError> {
        let binding = binding_for(&HooksFeed::trigger(req));
        let mut config = self.require_stored(req, &binding)?;
        let entry = self.stored_entry(&config)?;
        if let Some(id) = registration(&config)? {
            entry.registrar.set_active(&config, &id, active).map_err(|e| fail("telling the producer", e))?;
        }
        if let Some(companion) = entry.companion {
            companion.set_active(req, &config, active)?;
        }
        config.insert(CONFIG_PAUSED, json!(!active));
        req.write_config(&binding, &config).map_err(|e| fail(&format!("updating the hook config {binding}"), e))?;
        Ok(json!({ "status": if active { "active" } else { "paused" }, "trigger": req.trigger.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_url_encodes_each_segment() {
        let t = QualifiedName::new("me@x.com_dev", None, "my hook");
        let b = binding_for(&t);
        assert_eq!(b.to_string(), "/me@x.com_dev/my hook.owfeed-hook");
        assert_eq!(
            receiver_url("https://ow.example/", &b),
            "https://ow.example/api/v1/web/me%40x.com_dev/my%20hook.owfeed-hook/receive.http"
        );
    }
}
