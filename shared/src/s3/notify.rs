//! Registration of S3 bucket notifications for `source=s3` (the `s3` registration plugin):
//! the receiver URL becomes a destination of the bucket's notifications at AWS (through an
//! SNS topic), Ceph RGW (a topic with an HTTP `push-endpoint`) or MinIO (an admin-made
//! webhook target). Bucket calls go through the S3 client crate; topic calls are SigV4-signed
//! AWS Query API calls (form POST, XML answers) to the SNS endpoint (RGW for Ceph).
//!
//! # Never clobber the user's notifications
//! AWS and MinIO replace the whole notification document on PUT, so every change is a
//! read-modify-write that keeps every other element as read (unknown ones included) and
//! touches only the entry whose `Id` is ours (`owfeed-` + a hash of the receiver URL: one per
//! trigger). Ceph merges a PUT by `Id` and removes one entry with
//! `DELETE /{bucket}?notification={id}` (an empty document would remove them all there), so
//! for Ceph the feed sends only its own entry and deletes only its own Id.
//!
//! # What a registration is
//! The id the feed stores ([`Registration`]) names everything made: the notification Id, the
//! topic (and whether the feed created it), the SNS subscription. Removal (DELETE, a failed
//! CREATE, the old half of an UPDATE) removes exactly that; PAUSE removes only the bucket
//! entry and UNPAUSE puts it back, both idempotent. A topic the user gave (`topicArn`) is
//! never deleted: only the feed's policy statement (`Sid` = our Id) and subscription go.
//!
//! # Without credentials
//! For `ceph` and `minio`, no `accessKeyId` means nothing is registered (the user configures
//! the server with the URL and token CREATE prints). `aws` needs credentials.

use std::fmt;

use owfeed_s3::{parse_xml, ErrorKind, S3Client, S3Error, XmlElement};
use percent_encoding::utf8_percent_encode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::push::{Destination, Provider, PushSettings};
use super::source::{S3Fault, S3Params};
use crate::events::ChangeKind;
use crate::hooks::registrar::{base_url, Endpoint, Registrar, RegistrationError, RegistrationId, SEGMENT};
use crate::params::{ParamError, Params};
use crate::secret::REDACTED;
use crate::source::ParamSpec;

/// The S3 namespace of a notification document.
const S3_XMLNS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

/// The SNS Query API version.
const SNS_VERSION: &str = "2010-03-31";

/// How often, and how far apart, `after_stored` looks whether the receiver confirmed.
const CONFIRMATION_CHECKS: u32 = 16;
const CONFIRMATION_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// The `s3` source's registration plugin (see the module doc).
pub struct S3Notifications;

/// How many `ListSubscriptionsByTopic` pages (100 subscriptions each) are read at the most.
const MAX_SUBSCRIPTION_PAGES: usize = 100;

/// The subscriptions of a topic that deliver to the receiver URL.
#[derive(Debug, Default, PartialEq)]
struct Delivering {
    /// ARNs of the confirmed ones: each delivers every message.
    confirmed: Vec<String>,
    /// How many wait for their confirmation (listed as `PendingConfirmation`, without an ARN).
    pending: usize,
}

impl Delivering {
    /// Adds what one `ListSubscriptionsByTopic` answer lists for `url`; its `NextToken`.
    fn add_page(&mut self, answer: &XmlElement, url: &str) -> Option<String> {
        fn members<'a>(e: &'a XmlElement, out: &mut Vec<&'a XmlElement>) {
            for c in &e.children {
                if c.name == "member" {
                    out.push(c);
                } else {
                    members(c, out);
                }
            }
        }
        let mut listed = Vec::new();
        members(answer, &mut listed);
        for member in listed.into_iter().filter(|m| m.child_text("Endpoint").map(str::trim) == Some(url)) {
            match member.child_text("SubscriptionArn").map(str::trim) {
                Some(arn) if arn.starts_with("arn:") => self.confirmed.push(arn.to_string()),
                _ => self.pending += 1,
            }
        }
        answer.find_text("NextToken").map(str::trim).filter(|t| !t.is_empty()).map(str::to_string)
    }

    /// `pendingConfirmation` and the `problem` READ shows, if any; `stored` is the
    /// subscription the feed made, `topic` its topic.
    fn judge(&self, stored: &str, topic: &str) -> (bool, Option<String>) {
        match (self.confirmed.len(), self.pending) {
            (0, 0) => (
                false,
                Some(format!(
                    "topic {topic} has no subscription of the receiver URL any more (unsubscribed?): nothing is delivered; `wsk trigger update` with a new `secret` subscribes it again"
                )),
            ),
            (0, _) => (true, Some(PENDING_PROBLEM.to_string())),
            (1, _) => (false, None),
            (n, _) => {
                let others: Vec<&str> =
                    self.confirmed.iter().map(String::as_str).filter(|arn| *arn != stored).collect();
                (
                    false,
                    Some(format!(
                        "{n} subscriptions of topic {topic} deliver to the receiver URL: every message arrives {n} times (with the same event ids); remove the others with `aws sns unsubscribe --subscription-arn` {}",
                        others.join(", ")
                    )),
                )
            }
        }
    }
}

/// READ's `problem` for an SNS subscription still pending confirmation.
const PENDING_PROBLEM: &str = "the SNS subscription is still pending confirmation: nothing is delivered until the receiver confirms it, which it does when SNS's SubscriptionConfirmation reaches the receiver URL over HTTPS; `aws sns subscribe` of the same topic, protocol and URL makes SNS send it again";

/// Everything one registration made, as stored in the feed config (`registration`):
/// `{id}[;topic={arn}][;subscription={arn}][;own-topic]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The notification's `Id` in the bucket's configuration.
    pub id: String,
    /// The SNS (AWS) or RGW (Ceph) topic the notification publishes to.
    pub topic: Option<String>,
    /// The SNS subscription of the receiver URL (AWS).
    pub subscription: Option<String>,
    /// True when the feed created the topic (and so deletes it).
    pub own_topic: bool,
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        if let Some(t) = &self.topic {
            write!(f, ";topic={t}")?;
        }
        if let Some(s) = &self.subscription {
            write!(f, ";subscription={s}")?;
        }
        if self.own_topic {
            f.write_str(";own-topic")?;
        }
        Ok(())
    }
}

impl RegistrationId for Registration {
    const FORM: &'static str = "owfeed-<hex>[;topic=<arn>][;subscription=<arn>][;own-topic]";

    fn parse(stored: &str) -> Option<Registration> {
        let mut parts = stored.split(';');
        let id = parts.next().filter(|id| id.starts_with("owfeed-"))?.to_string();
        let mut reg = Registration { id, topic: None, subscription: None, own_topic: false };
        for part in parts {
            match part.split_once('=') {
                Some(("topic", t)) => reg.topic = Some(t.to_string()),
                Some(("subscription", s)) => reg.subscription = Some(s.to_string()),
                None if part == "own-topic" => reg.own_topic = true,
                _ => return None,
            }
        }
        Some(reg)
    }

    fn to_stored(&self) -> String {
        self.to_string()
    }
}

/// The notification `Id` (and topic name) of a receiver URL: one per trigger.
pub fn notification_id(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    let hex = crate::events::hex(&digest[..8]);
    format!("owfeed-{hex}")
}

/// The clients and settings of one bucket's registration.
struct Target {
    settings: PushSettings,
    s3: S3Client,
    /// Topic calls: SNS (AWS) or RGW itself (Ceph).
    topics: Option<S3Client>,
    /// MinIO's webhook target ARN.
    target_arn: Option<String>,
    /// A `topicArn` the user gave (AWS).
    given_topic: Option<String>,
    /// Values never to repeat in an error (keys; the token is added per call).
    secrets: Vec<String>,
}

/// Checks `arn:<partition>:sns:<region>:<account>:<name>`.
fn valid_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && !parts[4].is_empty()
        && !parts[5].is_empty()
}

/// Checks MinIO's `arn:minio:sqs:<region>:<id>:webhook` (region may be empty).
fn valid_minio_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 6
        && parts[..3] == ["arn", "minio", "sqs"]
        && !parts[4].is_empty()
        && parts[5] == "webhook"
        && !arn.contains(char::is_whitespace)
}

/// True when the parameters ask the feed to register (credentials given).
fn registers(params: &Params) -> bool {
    params.has("accessKeyId") || params.has("secretAccessKey")
}

impl Target {
    fn from_params(params: &Params) -> Result<Target, ParamError> {
        let settings = PushSettings::from_params(params)?;
        let endpoint = base_url(params, "endpoint", None)?;
        let config = S3Params::config(params, &endpoint, "endpoint")?;
        let mut secrets = vec![config.secret_access_key.expose().to_string()];
        if let Some(t) = &config.session_token {
            secrets.push(t.expose().to_string());
        }
        let s3 = S3Params::client(config.clone(), "endpoint")?;
        let given_topic = params.str("topicArn")?.filter(|t| !t.trim().is_empty());
        let mut target_arn = None;
        let topic_endpoint = match settings.provider {
            Provider::Aws => {
                if let Some(arn) = &given_topic {
                    if !valid_topic_arn(arn) {
                        return Err(ParamError::invalid(
                            "topicArn",
                            "an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)",
                            &json!(arn),
                        ));
                    }
                }
                let default = format!("https://sns.{}.amazonaws.com", config.region);
                Some(base_url(params, "snsEndpoint", Some(&default))?)
            }
            Provider::Ceph => Some(base_url(params, "snsEndpoint", Some(&endpoint))?),
            Provider::Minio => {
                let arn = params.required_str("targetArn")?;
                if !valid_minio_arn(&arn) {
                    return Err(ParamError::invalid(
                        "targetArn",
                        "MinIO's webhook target ARN, arn:minio:sqs:<region>:<id>:webhook (mc admin info --json ALIAS lists them)",
                        &json!(arn),
                    ));
                }
                target_arn = Some(arn);
                None
            }
        };
        let topics = match topic_endpoint {
            Some(url) => {
                let mut c = S3Params::config(params, &url, "snsEndpoint")?;
                c.path_style = true;
                Some(S3Params::client(c, "snsEndpoint")?)
            }
            None => None,
        };
        Ok(Target { settings, s3, topics, target_arn, given_topic, secrets })
    }

    /// The S3 event names the trigger's `events` ask for.
    fn events(&self) -> Vec<&'static str> {
        let f = &self.settings.filter;
        let mut events = Vec::new();
        if f.wants(ChangeKind::Created) || f.wants(ChangeKind::Updated) {
            events.push("s3:ObjectCreated:*");
        }
        if f.wants(ChangeKind::Deleted) {
            events.push("s3:ObjectRemoved:*");
        }
        events
    }

    /// Our entry of the notification document (its filters are the trigger's, as
    /// `PushSettings` read them).
    fn entry(&self, reg: &Registration) -> XmlElement {
        let (kind, destination) = match self.settings.provider.capabilities().destination {
            Destination::Queue => ("QueueConfiguration", ("Queue", self.target_arn.clone().unwrap_or_default())),
            Destination::Topic => ("TopicConfiguration", ("Topic", reg.topic.clone().unwrap_or_default())),
        };
        let mut children = vec![XmlElement::leaf("Id", &reg.id), XmlElement::leaf(destination.0, &destination.1)];
        for event in self.events() {
            children.push(XmlElement::leaf("Event", event));
        }
        let mut rules = Vec::new();
        let filter = &self.settings.filter;
        for (name, value) in [("prefix", filter.prefix()), ("suffix", filter.suffix())] {
            if let Some(value) = value {
                // AWS matches filters against the form-encoded key (a space is `+`).
                let value = match self.settings.provider {
                    Provider::Aws => form_encode(value),
                    Provider::Ceph | Provider::Minio => value.to_string(),
                };
                rules.push(XmlElement {
                    name: "FilterRule".into(),
                    text: String::new(),
                    children: vec![XmlElement::leaf("Name", name), XmlElement::leaf("Value", &value)],
                });
            }
        }
        if !rules.is_empty() {
            let s3key = XmlElement { name: "S3Key".into(), text: String::new(), children: rules };
            children.push(XmlElement { name: "Filter".into(), text: String::new(), children: vec![s3key] });
        }
        XmlElement { name: kind.into(), text: String::new(), children }
    }

    fn s3_error(&self, what: &str, e: S3Error, extra: &[&str]) -> RegistrationError {
        let message = scrub(
            &format!("{what}: {}", e.message),
            self.secrets.iter().map(String::as_str).chain(extra.iter().copied()),
        );
        match S3Fault::of(&e) {
            S3Fault::Unauthorized => RegistrationError::Unauthorized(message),
            S3Fault::Throttled => RegistrationError::RateLimited(message),
            S3Fault::Transport => RegistrationError::Transport(message),
            S3Fault::Server => RegistrationError::Server(message),
            S3Fault::NotFound | S3Fault::Config | S3Fault::Conflict | S3Fault::Other => {
                RegistrationError::Rejected { status: e.status.unwrap_or(400), message }
            }
        }
    }

    /// Adds (`Some`) or removes (`None`) our entry, keeping the rest of the document.
    fn edit_bucket(&self, id: &str, ours: Option<XmlElement>) -> Result<(), RegistrationError> {
        let bucket = &self.settings.bucket;
        if self.settings.provider.capabilities().merges_by_id {
            // RGW merges by Id and deletes one Id: never send or touch anything else.
            return match ours {
                Some(entry) => {
                    let doc = XmlElement {
                        name: "NotificationConfiguration".into(),
                        text: String::new(),
                        children: vec![entry],
                    };
                    self.s3
                        .put_bucket_notification(bucket, doc.to_xml(S3_XMLNS).into_bytes())
                        .map_err(|e| self.s3_error(&format!("adding notification {id} to bucket {bucket}"), e, &[]))
                }
                None => match self.s3.delete_bucket_notification(bucket, id) {
                    Err(e) if e.kind != ErrorKind::NoSuchBucket => {
                        Err(self.s3_error(&format!("removing notification {id} from bucket {bucket}"), e, &[]))
                    }
                    _ => Ok(()),
                },
            };
        }
        let read = match self.s3.get_bucket_notification(bucket) {
            Ok(body) => body,
            // A bucket that is gone has no notification of ours left.
            Err(e) if ours.is_none() && e.kind == ErrorKind::NoSuchBucket => return Ok(()),
            Err(e) => {
                return Err(self.s3_error(
                    &format!("reading the notification configuration of bucket {bucket}"),
                    e,
                    &[],
                ))
            }
        };
        let doc = edit_document(&read, id, ours.clone()).map_err(|e| {
            RegistrationError::Server(format!("the notification configuration of bucket {bucket} cannot be read: {e}"))
        })?;
        let Some(doc) = doc else { return Ok(()) };
        let what = if ours.is_some() { "adding" } else { "removing" };
        self.s3
            .put_bucket_notification(bucket, doc.into_bytes())
            .map_err(|e| self.s3_error(&format!("{what} notification {id} in bucket {bucket}"), e, &[]))
    }

    fn topic_call(&self, form: &[(&str, &str)], extra_secrets: &[&str]) -> Result<XmlElement, RegistrationError> {
        let action = form.first().map(|(_, a)| *a).unwrap_or_default();
        let client = self.topics.as_ref().ok_or_else(|| RegistrationError::Server("no topic endpoint".into()))?;
        let mut full = form.to_vec();
        full.push(("Version", SNS_VERSION));
        let body =
            client.query_api("sns", &full).map_err(|e| self.s3_error(&format!("topic {action}"), e, extra_secrets))?;
        parse_xml(&body).map_err(|e| RegistrationError::Server(format!("topic {action}: the answer is not XML: {e}")))
    }

    /// `secrets`: what the call sends that must not be echoed (the push-endpoint and its token).
    fn create_topic(
        &self,
        name: &str,
        push_endpoint: Option<&str>,
        secrets: &[&str],
    ) -> Result<String, RegistrationError> {
        let mut form = vec![("Action", "CreateTopic"), ("Name", name)];
        if let Some(url) = push_endpoint {
            form.push(("Attributes.entry.1.key", "push-endpoint"));
            form.push(("Attributes.entry.1.value", url));
        }
        let answer = self.topic_call(&form, secrets)?;
        answer
            .find_text("TopicArn")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistrationError::Server("topic CreateTopic: the answer has no TopicArn".into()))
    }

    fn delete_topic(&self, arn: &str) -> Result<(), RegistrationError> {
        match self.topic_call(&[("Action", "DeleteTopic"), ("TopicArn", arn)], &[]) {
            Err(RegistrationError::Rejected { status: 404, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Adds (or, with `add` false, removes) our statement in the topic's policy: S3 may
    /// publish for this bucket only.
    fn edit_policy(&self, topic: &str, sid: &str, add: bool) -> Result<(), RegistrationError> {
        let answer = self.topic_call(&[("Action", "GetTopicAttributes"), ("TopicArn", topic)], &[])?;
        let current = find_entry(&answer, "Policy")
            .map(|p| serde_json::from_str::<Value>(&p))
            .transpose()
            .map_err(|e| RegistrationError::Server(format!("topic {topic}: its Policy is not JSON: {e}")))?;
        let mut policy = current.unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}));
        if !policy.get("Statement").is_some_and(Value::is_array) {
            let one = policy.get("Statement").cloned().into_iter().filter(|s| !s.is_null()).collect::<Vec<_>>();
            policy["Statement"] = Value::Array(one);
        }
        let statements = policy["Statement"].as_array_mut().expect("made an array above");
        let before = statements.len();
        statements.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(sid));
        if !add && statements.len() == before {
            return Ok(());
        }
        if add {
            let parts: Vec<&str> = topic.split(':').collect();
            let (partition, account) = (parts.get(1).copied().unwrap_or("aws"), parts.get(4).copied().unwrap_or("*"));
            statements.push(json!({
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "SNS:Publish",
                "Resource": topic,
                "Condition": {
                    "ArnLike": {"aws:SourceArn": format!("arn:{partition}:s3:*:*:{}", self.settings.bucket)},
                    "StringEquals": {"aws:SourceAccount": account},
                },
            }));
        }
        let text = policy.to_string();
        self.topic_call(
            &[
                ("Action", "SetTopicAttributes"),
                ("TopicArn", topic),
                ("AttributeName", "Policy"),
                ("AttributeValue", &text),
            ],
            &[],
        )
        .map(|_| ())
    }

    fn subscribe(&self, topic: &str, url: &str) -> Result<String, RegistrationError> {
        let protocol = if url.to_ascii_lowercase().starts_with("https://") { "https" } else { "http" };
        let answer = self.topic_call(
            &[
                ("Action", "Subscribe"),
                ("TopicArn", topic),
                ("Protocol", protocol),
                ("Endpoint", url),
                // The real ARN even while the subscription waits for its confirmation, so it
                // can be removed later.
                ("ReturnSubscriptionArn", "true"),
            ],
            &[],
        )?;
        answer
            .find_text("SubscriptionArn")
            .map(|t| t.trim().to_string())
            .filter(|t| t.starts_with("arn:"))
            .ok_or_else(|| RegistrationError::Server("topic Subscribe: the answer has no SubscriptionArn".into()))
    }

    /// Whether the bucket's notification configuration holds an entry with Id `id`.
    fn has_entry(&self, id: &str) -> Result<bool, RegistrationError> {
        let bucket = &self.settings.bucket;
        let read = self.s3.get_bucket_notification(bucket).map_err(|e| {
            self.s3_error(&format!("reading the notification configuration of bucket {bucket}"), e, &[])
        })?;
        let root = notification_document(&read).map_err(|e| {
            RegistrationError::Server(format!("the notification configuration of bucket {bucket} cannot be read: {e}"))
        })?;
        Ok(root.children.iter().any(|c| c.child_text("Id").map(str::trim) == Some(id)))
    }

    /// The subscriptions of `topic` that deliver to `url`, every page of
    /// `ListSubscriptionsByTopic` read. Asked of the topic rather than of the stored
    /// subscription: a `Subscribe` repeated while one is pending may leave another subscription
    /// behind (seen by triggermesh/aws-event-sources#339), and each confirmed one delivers.
    fn delivering(&self, topic: &str, url: &str) -> Result<Delivering, RegistrationError> {
        let mut found = Delivering::default();
        let mut next: Option<String> = None;
        for _ in 0..MAX_SUBSCRIPTION_PAGES {
            let mut form = vec![("Action", "ListSubscriptionsByTopic"), ("TopicArn", topic)];
            if let Some(token) = &next {
                form.push(("NextToken", token));
            }
            let answer = self.topic_call(&form, &[])?;
            next = found.add_page(&answer, url);
            if next.is_none() {
                break;
            }
        }
        Ok(found)
    }

    fn unsubscribe(&self, arn: &str) -> Result<(), RegistrationError> {
        match self.topic_call(&[("Action", "Unsubscribe"), ("SubscriptionArn", arn)], &[]) {
            Err(RegistrationError::Rejected { status: 404, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Makes (or, from `previous`, re-makes) the registration; on failure removes what this
    /// call made and leaves `previous` as it was.
    fn register(
        &self,
        endpoint: &Endpoint,
        previous: Option<&Registration>,
    ) -> Result<Registration, RegistrationError> {
        let id = previous.map(|p| p.id.clone()).unwrap_or_else(|| notification_id(&endpoint.url));
        let mut reg = Registration { id: id.clone(), topic: None, subscription: None, own_topic: false };
        let mut made = Registration { id: id.clone(), topic: None, subscription: None, own_topic: false };
        let result = (|| -> Result<(), RegistrationError> {
            // Reachable bucket and working credentials before anything is made.
            // A provider that merges by Id is never asked for the whole document.
            if self.settings.provider.capabilities().merges_by_id {
                self.s3
                    .head_bucket(&self.settings.bucket)
                    .map_err(|e| self.s3_error(&format!("checking bucket {}", self.settings.bucket), e, &[]))?;
            } else {
                self.s3.get_bucket_notification(&self.settings.bucket).map_err(|e| {
                    self.s3_error(
                        &format!("reading the notification configuration of bucket {}", self.settings.bucket),
                        e,
                        &[],
                    )
                })?;
            }
            match self.settings.provider {
                Provider::Aws => {
                    let keep = previous.filter(|p| match &self.given_topic {
                        Some(given) => p.topic.as_deref() == Some(given),
                        None => p.own_topic,
                    });
                    match (keep, &self.given_topic) {
                        (Some(p), _) => {
                            reg.topic = p.topic.clone();
                            reg.own_topic = p.own_topic;
                        }
                        (None, Some(given)) => reg.topic = Some(given.clone()),
                        (None, None) => {
                            let arn = self.create_topic(&id, None, &[])?;
                            reg.topic = Some(arn.clone());
                            reg.own_topic = true;
                            made.topic = Some(arn);
                            made.own_topic = true;
                        }
                    }
                    let topic = reg.topic.clone().unwrap_or_default();
                    self.edit_policy(&topic, &id, true)?;
                    if made.topic.is_none() && keep.is_none() {
                        // A given topic: undo removes our statement, not the topic.
                        made.topic = Some(topic.clone());
                    }
                    let sub = self.subscribe(&topic, &endpoint.url)?;
                    if previous.and_then(|p| p.subscription.as_deref()) != Some(sub.as_str()) {
                        made.subscription = Some(sub.clone());
                    }
                    reg.subscription = Some(sub);
                }
                Provider::Ceph => {
                    let push = format!(
                        "{}{}access_token={}",
                        endpoint.url,
                        if endpoint.url.contains('?') { '&' } else { '?' },
                        utf8_percent_encode(endpoint.secret.expose(), SEGMENT)
                    );
                    // CreateTopic of an existing name updates its attributes (a new token).
                    let arn = self.create_topic(&id, Some(&push), &[&push, endpoint.secret.expose()])?;
                    if previous.and_then(|p| p.topic.as_deref()) != Some(arn.as_str()) {
                        made.topic = Some(arn.clone());
                        made.own_topic = true;
                    }
                    reg.topic = Some(arn);
                    reg.own_topic = true;
                }
                Provider::Minio => {}
            }
            if endpoint.active {
                self.edit_bucket(&id, Some(self.entry(&reg)))
            } else {
                Ok(())
            }
        })();
        match result {
            Ok(()) => Ok(reg),
            Err(e) => {
                // The bucket entry is added last, so a failure never leaves it half made; an
                // entry that an earlier registration had stays.
                // Only what this call made: `previous` may deliver to the same URL and stays.
                let problems = self.remove_parts(&made, false, None);
                Err(with_problems(e, problems))
            }
        }
    }

    /// Removes the topic side of `reg` (and the bucket entry when `entry`); returns what failed.
    /// With the receiver `url`, every other confirmed subscription of a kept topic that delivers
    /// to it goes too (see [`Target::delivering`]): the URL is this trigger's alone.
    fn remove_parts(&self, reg: &Registration, entry: bool, url: Option<&str>) -> Vec<String> {
        let mut problems = Vec::new();
        if entry {
            if let Err(e) = self.edit_bucket(&reg.id, None) {
                problems.push(e.to_string());
            }
        }
        // Deleting our own topic deletes its subscriptions; a separate Unsubscribe could only
        // fail on one still waiting for its confirmation.
        let topic_goes = reg.own_topic && reg.topic.is_some();
        if let Some(sub) = reg.subscription.as_ref().filter(|_| !topic_goes) {
            if let Err(e) = self.unsubscribe(sub) {
                problems.push(e.to_string());
            }
            if let (Some(topic), Some(url)) = (&reg.topic, url) {
                match self.delivering(topic, url) {
                    Ok(d) => {
                        for other in d.confirmed.iter().filter(|arn| *arn != sub) {
                            if let Err(e) = self.unsubscribe(other) {
                                problems.push(e.to_string());
                            }
                        }
                    }
                    Err(e) => problems.push(e.to_string()),
                }
            }
        }
        if let Some(topic) = &reg.topic {
            let step = if reg.own_topic {
                self.delete_topic(topic)
            } else if self.settings.provider.capabilities().via_sns {
                // A topic we did not make carries our statement in its SNS policy.
                self.edit_policy(topic, &reg.id, false)
            } else {
                Ok(())
            };
            if let Err(e) = step {
                problems.push(e.to_string());
            }
        }
        problems
    }
}

fn with_problems(e: RegistrationError, problems: Vec<String>) -> RegistrationError {
    if problems.is_empty() {
        return e;
    }
    let also = format!("; also not removed: {}", problems.join("; "));
    match e {
        RegistrationError::Unauthorized(m) => RegistrationError::Unauthorized(m + &also),
        RegistrationError::Rejected { status, message } => {
            RegistrationError::Rejected { status, message: message + &also }
        }
        RegistrationError::Server(m) => RegistrationError::Server(m + &also),
        RegistrationError::RateLimited(m) => RegistrationError::RateLimited(m + &also),
        RegistrationError::Transport(m) => RegistrationError::Transport(m + &also),
        RegistrationError::Unreadable(m) => RegistrationError::Unreadable(m + &also),
    }
}

/// Replaces each secret value (and its percent-encoded form) in `text`.
fn scrub<'a>(text: &str, secrets: impl Iterator<Item = &'a str>) -> String {
    let mut out = text.to_string();
    for s in secrets.filter(|s| s.len() >= 4) {
        out = out.replace(s, REDACTED);
        let encoded = utf8_percent_encode(s, SEGMENT).to_string();
        out = out.replace(&encoded, REDACTED);
    }
    out
}

/// Form encoding as AWS applies it to keys in notifications and filters: space as `+`.
fn form_encode(value: &str) -> String {
    value.split(' ').map(owfeed_s3::encode_key).collect::<Vec<_>>().join("+")
}

/// The value of `<entry><key>{key}</key><value>…` in an SNS attributes answer.
fn find_entry(answer: &XmlElement, key: &str) -> Option<String> {
    fn walk(e: &XmlElement, key: &str) -> Option<String> {
        if e.name == "entry" && e.child_text("key") == Some(key) {
            return e.child_text("value").map(str::to_string);
        }
        e.children.iter().find_map(|c| walk(c, key))
    }
    walk(answer, key)
}

/// A bucket's notification configuration as read: `<NotificationConfiguration>`, its entries
/// the children (an empty body has none).
fn notification_document(read: &[u8]) -> Result<XmlElement, String> {
    let mut root = if read.iter().all(u8::is_ascii_whitespace) {
        XmlElement { name: "NotificationConfiguration".into(), ..XmlElement::default() }
    } else {
        parse_xml(read)?
    };
    if root.name != "NotificationConfiguration" {
        // moto 5.2.1 answers a bucket without notifications with an empty
        // `<GetBucketNotificationResponse/>`; an empty document of any name holds no entries.
        if !root.children.is_empty() {
            return Err(format!("expected <NotificationConfiguration>, got <{}>", root.name));
        }
        root.name = "NotificationConfiguration".into();
    }
    Ok(root)
}

/// The notification document `read` with the entries whose `Id` is `id` removed and `ours`
/// appended; every other element stays as read. `Ok(None)` when nothing changes (removing an
/// entry that is not there).
pub fn edit_document(read: &[u8], id: &str, ours: Option<XmlElement>) -> Result<Option<String>, String> {
    let mut root = notification_document(read)?;
    let before = root.children.len();
    root.children.retain(|c| c.child_text("Id").map(str::trim) != Some(id));
    if ours.is_none() && root.children.len() == before {
        return Ok(None);
    }
    root.children.extend(ours);
    root.text.clear();
    Ok(Some(root.to_xml(S3_XMLNS)))
}

impl Registrar for S3Notifications {
    type Id = Registration;

    fn name(&self) -> &'static str {
        "s3"
    }
    fn params(&self) -> &'static [ParamSpec] {
        &[
            ParamSpec { name: "provider", secret: false, required: true, doc: "aws, ceph or minio" },
            ParamSpec { name: "endpoint", secret: false, required: true, doc: "the S3 endpoint URL" },
            ParamSpec {
                name: "bucket",
                secret: false,
                required: true,
                doc: "the bucket whose notifications fire the trigger",
            },
            ParamSpec { name: "prefix", secret: false, required: false, doc: "only keys with this prefix" },
            ParamSpec { name: "suffix", secret: false, required: false, doc: "only keys with this suffix" },
            ParamSpec {
                name: "events",
                secret: false,
                required: false,
                doc: "created, updated, deleted (default all)",
            },
            ParamSpec {
                name: "accessKeyId",
                secret: false,
                required: false,
                doc: "access key id: with it the feed registers the notification",
            },
            ParamSpec { name: "secretAccessKey", secret: true, required: false, doc: "secret access key" },
            ParamSpec {
                name: "sessionToken",
                secret: true,
                required: false,
                doc: "session token for temporary credentials",
            },
            ParamSpec { name: "region", secret: false, required: false, doc: "signing region (default us-east-1)" },
            ParamSpec {
                name: "pathStyle",
                secret: false,
                required: false,
                doc: "path-style bucket URLs (default: not on amazonaws.com)",
            },
            ParamSpec {
                name: "caCertificate",
                secret: false,
                required: false,
                doc: "PEM CA certificates the endpoint is checked against",
            },
            ParamSpec {
                name: "insecureSkipTlsVerify",
                secret: false,
                required: false,
                doc: "skip TLS verification of the endpoint",
            },
            ParamSpec {
                name: "snsEndpoint",
                secret: false,
                required: false,
                doc: "the topic API URL (AWS: SNS of the region; Ceph: the endpoint)",
            },
            ParamSpec {
                name: "topicArn",
                secret: false,
                required: false,
                doc: "an SNS topic of yours to use (AWS; default: one the feed makes)",
            },
            ParamSpec { name: "targetArn", secret: false, required: false, doc: "MinIO's webhook target ARN" },
        ]
    }

    fn validate(&self, params: &Params) -> Result<(), ParamError> {
        let settings = PushSettings::from_params(params)?;
        if registers(params) {
            Target::from_params(params)?;
        } else if settings.provider.capabilities().via_sns {
            // Without credentials nothing makes the SNS topic and subscription it delivers through.
            return Err(ParamError::missing(
                "accessKeyId",
                "credentials (accessKeyId, secretAccessKey) for provider aws: the feed creates the SNS topic, its subscription and the bucket notification",
            ));
        }
        Ok(())
    }
    fn register(&self, params: &Params, endpoint: &Endpoint) -> Result<Option<Registration>, RegistrationError> {
        if !registers(params) {
            return Ok(None);
        }
        let target = target(params)?;
        Ok(Some(target.register(endpoint, None)?))
    }
    fn update(
        &self,
        params: &Params,
        previous: &Registration,
        endpoint: &Endpoint,
    ) -> Option<Result<Registration, RegistrationError>> {
        if !registers(params) {
            return None;
        }
        Some((|| {
            let target = target(params)?;
            let reg = target.register(endpoint, Some(previous))?;
            // What the new registration does not reuse goes (a topic the user replaced, an old
            // subscription of another URL).
            let stale = Registration {
                id: previous.id.clone(),
                topic: previous.topic.clone().filter(|t| reg.topic.as_ref() != Some(t)),
                subscription: previous.subscription.clone().filter(|s| reg.subscription.as_ref() != Some(s)),
                own_topic: previous.own_topic,
            };
            let problems = target.remove_parts(&stale, false, None);
            if !problems.is_empty() {
                crate::runtime::log(&format!("s3 registration {previous}: not removed: {}", problems.join("; ")));
            }
            Ok(reg)
        })())
    }
    fn unregister(&self, params: &Params, reg: &Registration) -> Result<(), RegistrationError> {
        let target = target(params)?;
        let url = params.str("url").map_err(bad)?;
        let problems = target.remove_parts(reg, true, url.as_deref());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RegistrationError::Server(problems.join("; ")))
        }
    }
    fn set_active(&self, params: &Params, reg: &Registration, active: bool) -> Result<(), RegistrationError> {
        let target = target(params)?;
        let entry = active.then(|| target.entry(reg));
        target.edit_bucket(&reg.id, entry)
    }
    fn removal(&self, params: &Params, reg: &Registration) -> (String, String) {
        let bucket = params.str("bucket").ok().flatten().unwrap_or_default();
        let endpoint = params.str("endpoint").ok().flatten().unwrap_or_default();
        let place = format!("bucket {bucket} at {endpoint}, notification Id {}", reg.id);
        let topic = reg.topic.clone().unwrap_or_default();
        let command = match PushSettings::from_params(params).map(|s| s.provider) {
            Ok(Provider::Ceph) => format!(
                "radosgw-admin notification rm --bucket {bucket} --notification-id {} && radosgw-admin topic rm --topic {}",
                reg.id,
                topic.rsplit(':').next().unwrap_or_default()
            ),
            Ok(Provider::Minio) => format!(
                "mc event rm ALIAS/{bucket} {} (removes every rule of that target: re-add the others), or remove the QueueConfiguration with Id {} from aws s3api get-bucket-notification-configuration --bucket {bucket} and put it back",
                params.str("targetArn").ok().flatten().unwrap_or_default(),
                reg.id
            ),
            // Parameters that no longer parse name no provider: the AWS command is the default.
            Ok(Provider::Aws) | Err(_) => {
                let mut c = format!(
                    "remove the TopicConfiguration with Id {} from `aws s3api get-bucket-notification-configuration --bucket {bucket}` and save it with put-bucket-notification-configuration",
                    reg.id
                );
                if reg.own_topic {
                    c.push_str(&format!("; aws sns delete-topic --topic-arn {topic}"));
                } else if let Some(sub) = &reg.subscription {
                    c.push_str(&format!("; aws sns unsubscribe --subscription-arn {sub}, and remove the statement {} of the topic policy", reg.id));
                }
                c
            }
        };
        (place, command)
    }
    /// SNS sends the `SubscriptionConfirmation` while `Subscribe` runs, before the feed has
    /// stored `topicArn`, so the receiver could only answer it 503 (whether SNS retries a
    /// confirmation is not documented). Once the topic is stored, a subscription still pending
    /// is subscribed again: `Subscribe` of the same endpoint returns the same subscription, and
    /// SNS is expected to send a new confirmation for one still pending (no AWS page found that
    /// says so). Then waits a few seconds for the receiver to confirm; READ shows a
    /// subscription that stays pending.
    fn after_stored(&self, params: &Params, reg: &Registration, endpoint: &Endpoint) -> Result<(), RegistrationError> {
        let (Some(topic), Some(_)) = (&reg.topic, &reg.subscription) else { return Ok(()) };
        let target = target(params)?;
        let confirmed =
            |t: &Target| Ok::<bool, RegistrationError>(!t.delivering(topic, &endpoint.url)?.confirmed.is_empty());
        if !target.settings.provider.capabilities().via_sns || confirmed(&target)? {
            return Ok(());
        }
        target.subscribe(topic, &endpoint.url)?;
        for _ in 0..CONFIRMATION_CHECKS {
            std::thread::sleep(CONFIRMATION_PAUSE);
            if confirmed(&target)? {
                return Ok(());
            }
        }
        Ok(())
    }
    /// Checks what can silently stop deliveries: an SNS subscription still pending
    /// confirmation (AWS), and our entry gone from the bucket's notification configuration,
    /// which any other tool's `PutBucketNotificationConfiguration` replaces whole.
    fn status(&self, params: &Params, reg: &Registration, endpoint: &Endpoint) -> Option<Value> {
        if !registers(params) {
            return None;
        }
        let target = target(params).ok()?;
        let mut out = serde_json::Map::new();
        let mut problems: Vec<String> = Vec::new();
        if let (Some(subscription), Some(topic), true) =
            (&reg.subscription, &reg.topic, target.settings.provider.capabilities().via_sns)
        {
            out.insert("subscription".into(), json!(subscription));
            match target.delivering(topic, &endpoint.url) {
                Ok(delivering) => {
                    let (pending, problem) = delivering.judge(subscription, topic);
                    out.insert("pendingConfirmation".into(), json!(pending));
                    if delivering.confirmed.len() > 1 {
                        out.insert("subscriptions".into(), json!(delivering.confirmed.len()));
                    }
                    problems.extend(problem);
                }
                Err(e) => problems.push(format!("cannot list the subscriptions of topic {topic}: {e}")),
            }
        }
        let bucket = &target.settings.bucket;
        match target.has_entry(&reg.id) {
            Ok(present) => {
                out.insert("notification".into(), json!(present));
                if endpoint.active && !present {
                    problems.push(format!(
                        "bucket {bucket} has no notification {} any more (another PutBucketNotificationConfiguration may have replaced the bucket's configuration): nothing is pushed to this trigger; the lifecycle event UNPAUSE puts it back",
                        reg.id
                    ));
                }
            }
            Err(e) => problems.push(format!("cannot read the notification configuration of bucket {bucket}: {e}")),
        }
        if !problems.is_empty() {
            out.insert("problem".into(), json!(problems.join("; ")));
        }
        Some(Value::Object(out))
    }
    fn needs_token(&self, params: &Params) -> bool {
        params
            .str("provider")
            .ok()
            .flatten()
            .and_then(|p| Provider::parse(&p))
            .is_some_and(|p| p.capabilities().needs_token)
    }
    fn registration_config(&self, reg: &Registration) -> Vec<(&'static str, Value)> {
        let mut out = vec![("notificationId", json!(reg.id))];
        if let Some(t) = &reg.topic {
            out.push(("topicArn", json!(t)));
        }
        if let Some(s) = &reg.subscription {
            out.push(("subscriptionArn", json!(s)));
        }
        out
    }
}

fn target(params: &Params) -> Result<Target, RegistrationError> {
    Target::from_params(params).map_err(bad)
}

/// A parameter that does not read: refused before anything is asked of the producer.
fn bad(e: ParamError) -> RegistrationError {
    RegistrationError::Rejected { status: 400, message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Params {
        Params::from_value(v).unwrap()
    }

    #[test]
    fn registration_round_trips() {
        let reg = Registration {
            id: "owfeed-0011223344556677".into(),
            topic: Some("arn:aws:sns:us-east-1:123456789012:owfeed-0011223344556677".into()),
            subscription: Some("arn:aws:sns:us-east-1:123456789012:owfeed-0011223344556677:9f2c".into()),
            own_topic: true,
        };
        assert_eq!(Registration::parse(&reg.to_string()), Some(reg.clone()));
        let minio = Registration { id: "owfeed-ab".into(), topic: None, subscription: None, own_topic: false };
        assert_eq!(minio.to_string(), "owfeed-ab");
        assert_eq!(Registration::parse("owfeed-ab"), Some(minio));
        assert_eq!(Registration::parse("12345"), None);
        assert_eq!(Registration::parse("owfeed-ab;color=red"), None);
        assert_eq!(notification_id("https://a/x").len(), "owfeed-".len() + 16);
        assert_ne!(notification_id("https://a/x"), notification_id("https://a/y"));
    }

    /// Every form stored today reads back as itself, through the feed's view too: AWS with a
    /// topic the feed made, AWS with the user's `topicArn`, Ceph (an RGW topic ARN, which has an
    /// empty account), MinIO (the Id alone).
    #[test]
    fn stored_registrations_of_existing_triggers_parse() {
        use crate::hooks::registrar::{AnyRegistrar, StoredRegistration};
        let aws_own = "owfeed-0011223344556677;topic=arn:aws:sns:us-east-1:123456789012:owfeed-0011223344556677;subscription=arn:aws:sns:us-east-1:123456789012:owfeed-0011223344556677:9f2c4b1e-1d5c-4f6e-9d3a-2b7c8e0f1a2b;own-topic";
        let aws_given = "owfeed-0011223344556677;topic=arn:aws:sns:eu-west-1:123456789012:uploads;subscription=arn:aws:sns:eu-west-1:123456789012:uploads:5e1c";
        let ceph = "owfeed-8899aabbccddeeff;topic=arn:aws:sns:default::owfeed-8899aabbccddeeff;own-topic";
        let minio = "owfeed-8899aabbccddeeff";
        for stored in [aws_own, aws_given, ceph, minio] {
            let reg = Registration::parse(stored).unwrap_or_else(|| panic!("{stored}"));
            assert_eq!(reg.to_stored(), stored);
        }
        let reg = Registration::parse(aws_given).unwrap();
        assert_eq!((reg.topic.as_deref(), reg.own_topic), (Some("arn:aws:sns:eu-west-1:123456789012:uploads"), false));
        let ceph_reg = Registration::parse(ceph).unwrap();
        assert_eq!((ceph_reg.subscription, ceph_reg.own_topic), (None, true));
        let any: &dyn AnyRegistrar = &S3Notifications;
        assert_eq!(
            any.registration_config(&StoredRegistration::from_stored(aws_own).unwrap()),
            vec![
                ("notificationId", json!("owfeed-0011223344556677")),
                ("topicArn", json!("arn:aws:sns:us-east-1:123456789012:owfeed-0011223344556677")),
                (
                    "subscriptionArn",
                    json!("arn:aws:sns:us-east-1:123456789012:owfeed-0011223344556677:9f2c4b1e-1d5c-4f6e-9d3a-2b7c8e0f1a2b")
                ),
            ]
        );
        // Not one of ours: removing it is an error that says so, asked of no server.
        let err = any.unregister(&params(json!({})), &StoredRegistration::from_stored("12345").unwrap()).unwrap_err();
        assert!(matches!(&err, RegistrationError::Unreadable(m) if m.contains("of source s3")), "{err:?}");
    }

    #[test]
    fn editing_keeps_every_other_element() {
        let read = br#"<?xml version="1.0" encoding="UTF-8"?>
<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <QueueConfiguration><Id>users &amp; co</Id><Queue>arn:aws:sqs:us-east-1:1:q</Queue><Event>s3:ObjectCreated:Put</Event></QueueConfiguration>
  <TopicConfiguration><Id>owfeed-1</Id><Topic>arn:aws:sns:us-east-1:1:old</Topic><Event>s3:ObjectRemoved:*</Event></TopicConfiguration>
  <EventBridgeConfiguration/>
  <FutureConfiguration><Id>x</Id><Knob a="1">on</Knob></FutureConfiguration>
</NotificationConfiguration>"#;
        let ours = XmlElement {
            name: "TopicConfiguration".into(),
            text: String::new(),
            children: vec![
                XmlElement::leaf("Id", "owfeed-1"),
                XmlElement::leaf("Topic", "arn:aws:sns:us-east-1:1:new"),
            ],
        };
        let added = edit_document(read, "owfeed-1", Some(ours)).unwrap().unwrap();
        assert_eq!(
            added,
            "<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <QueueConfiguration><Id>users &amp; co</Id><Queue>arn:aws:sqs:us-east-1:1:q</Queue><Event>s3:ObjectCreated:Put</Event></QueueConfiguration>\
             <EventBridgeConfiguration></EventBridgeConfiguration>\
             <FutureConfiguration><Id>x</Id><Knob>on</Knob></FutureConfiguration>\
             <TopicConfiguration><Id>owfeed-1</Id><Topic>arn:aws:sns:us-east-1:1:new</Topic></TopicConfiguration>\
             </NotificationConfiguration>"
        );
        let removed = edit_document(added.as_bytes(), "owfeed-1", None).unwrap().unwrap();
        assert!(!removed.contains("owfeed-1") && removed.contains("users &amp; co"), "{removed}");
        // Removing what is not there writes nothing.
        assert_eq!(edit_document(removed.as_bytes(), "owfeed-1", None).unwrap(), None);
        assert_eq!(edit_document(b"", "owfeed-1", None).unwrap(), None);
        assert!(edit_document(b"<Error><Code>x</Code></Error>", "owfeed-1", None).is_err());
        let ours = XmlElement {
            name: "QueueConfiguration".into(),
            text: String::new(),
            children: vec![XmlElement::leaf("Id", "owfeed-1")],
        };
        assert_eq!(
            edit_document(b"<GetBucketNotificationResponse/>", "owfeed-1", Some(ours)).unwrap().unwrap(),
            "<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><QueueConfiguration><Id>owfeed-1</Id></QueueConfiguration></NotificationConfiguration>"
        );
        assert!(edit_document(b"<NotificationConfiguration><Topic", "owfeed-1", None).is_err());
    }

    #[test]
    fn entries_carry_events_and_filters() {
        let p = params(json!({
            "provider": "aws", "endpoint": "http://127.0.0.1:1", "bucket": "photos",
            "accessKeyId": "AKID", "secretAccessKey": "secret-key", "prefix": "in box/", "suffix": ".jpg",
            "events": "deleted",
        }));
        let target = Target::from_params(&p).unwrap();
        let reg = Registration {
            id: "owfeed-1".into(),
            topic: Some("arn:aws:sns:r:1:t".into()),
            subscription: None,
            own_topic: true,
        };
        assert_eq!(
            target.entry(&reg).to_xml(""),
            "<TopicConfiguration><Id>owfeed-1</Id><Topic>arn:aws:sns:r:1:t</Topic><Event>s3:ObjectRemoved:*</Event>\
             <Filter><S3Key><FilterRule><Name>prefix</Name><Value>in+box/</Value></FilterRule>\
             <FilterRule><Name>suffix</Name><Value>.jpg</Value></FilterRule></S3Key></Filter></TopicConfiguration>"
        );
        let mut m = p.clone();
        m.insert("provider", json!("minio"));
        m.insert("targetArn", json!("arn:minio:sqs::1:webhook"));
        m.insert("events", json!("created,updated,deleted"));
        m.remove("prefix");
        m.remove("suffix");
        let target = Target::from_params(&m).unwrap();
        assert_eq!(
            target.entry(&reg).to_xml(""),
            "<QueueConfiguration><Id>owfeed-1</Id><Queue>arn:minio:sqs::1:webhook</Queue>\
             <Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event></QueueConfiguration>"
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let base = json!({"provider": "aws", "endpoint": "http://127.0.0.1:1", "bucket": "b",
            "accessKeyId": "AKID", "secretAccessKey": "secret-key"});
        let name = |extra: Value| {
            let mut v = base.clone();
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            match Target::from_params(&params(v)) {
                Ok(_) => "ok".to_string(),
                Err(e) => e.name,
            }
        };
        assert_eq!(name(json!({})), "ok");
        assert_eq!(name(json!({"topicArn": "arn:aws:sns:us-east-1:1"})), "topicArn");
        assert_eq!(name(json!({"snsEndpoint": "ftp://x"})), "snsEndpoint");
        assert_eq!(name(json!({"region": "us east"})), "region");
        assert_eq!(name(json!({"accessKeyId": "a/b"})), "accessKeyId");
        assert_eq!(name(json!({"secretAccessKey": ""})), "secretAccessKey");
        assert_eq!(name(json!({"endpoint": "http://user:pw@h"})), "endpoint");
        assert_eq!(name(json!({"caCertificate": "not a pem"})), "caCertificate");
        assert_eq!(name(json!({"provider": "minio", "targetArn": "arn:minio:sqs::1:kafka"})), "targetArn");
        let err =
            Target::from_params(&params(json!({"provider": "aws", "endpoint": "http://u:topsecret@h", "bucket": "b",
            "accessKeyId": "AKID", "secretAccessKey": "secret-key"})))
            .err()
            .unwrap();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn secrets_are_scrubbed_in_any_form() {
        let said = "invalid push-endpoint http://h/r?access_token=a%2Bb%20c and a+b c";
        assert_eq!(
            scrub(said, ["a+b c"].into_iter()),
            "invalid push-endpoint http://h/r?access_token=[redacted] and [redacted]"
        );
        assert_eq!(form_encode("in box/a+b"), "in+box/a%2Bb");
    }

    /// A `ListSubscriptionsByTopic` answer as SNS gives it (API reference example): members of
    /// other endpoints, ours confirmed twice and once pending.
    fn subscriptions_page(next: Option<&str>) -> XmlElement {
        let member = |arn: &str, endpoint: &str| {
            format!(
                "<member><TopicArn>arn:aws:sns:us-east-1:123456789012:t</TopicArn><Protocol>https</Protocol>\
                 <SubscriptionArn>{arn}</SubscriptionArn><Owner>123456789012</Owner><Endpoint>{endpoint}</Endpoint></member>"
            )
        };
        let ours = "https://ow.example/api/v1/web/guest/default/t.owfeed-hook/receive";
        let body = format!(
            "<ListSubscriptionsByTopicResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
             <ListSubscriptionsByTopicResult><Subscriptions>{}{}{}{}</Subscriptions>{}</ListSubscriptionsByTopicResult>\
             <ResponseMetadata><RequestId>384ac68d</RequestId></ResponseMetadata></ListSubscriptionsByTopicResponse>",
            member("arn:aws:sns:us-east-1:123456789012:t:1", ours),
            member("arn:aws:sns:us-east-1:123456789012:t:2", "example@amazon.com"),
            member("PendingConfirmation", ours),
            member("arn:aws:sns:us-east-1:123456789012:t:3", &format!("{ours}x")),
            next.map(|t| format!("<NextToken>{t}</NextToken>")).unwrap_or_default(),
        );
        parse_xml(body.as_bytes()).unwrap()
    }

    #[test]
    fn subscriptions_to_the_receiver_are_counted_over_pages() {
        let ours = "https://ow.example/api/v1/web/guest/default/t.owfeed-hook/receive";
        let mut found = Delivering::default();
        assert_eq!(found.add_page(&subscriptions_page(Some("tok==")), ours), Some("tok==".to_string()));
        assert_eq!(found.add_page(&subscriptions_page(None), ours), None);
        let one = "arn:aws:sns:us-east-1:123456789012:t:1".to_string();
        assert_eq!(found, Delivering { confirmed: vec![one.clone(), one], pending: 2 });
    }

    #[test]
    fn read_judges_what_delivers_to_the_receiver() {
        let (stored, topic) = ("arn:t:1", "arn:t");
        let judge = |confirmed: &[&str], pending| {
            Delivering { confirmed: confirmed.iter().map(|s| s.to_string()).collect(), pending }.judge(stored, topic)
        };
        assert_eq!(judge(&["arn:t:1"], 0), (false, None));
        // Confirmed under another ARN than the stored one (a second Subscribe made another).
        assert_eq!(judge(&["arn:t:2"], 1), (false, None));
        assert_eq!(judge(&[], 2), (true, Some(PENDING_PROBLEM.to_string())));
        let (pending, gone) = judge(&[], 0);
        assert!(!pending && gone.unwrap().contains("no subscription of the receiver URL"));
        let (pending, twice) = judge(&["arn:t:1", "arn:t:2"], 0);
        let twice = twice.unwrap();
        assert!(!pending && twice.contains("every message arrives 2 times"), "{twice}");
        assert!(twice.ends_with("--subscription-arn` arn:t:2"), "{twice}");
    }
}
