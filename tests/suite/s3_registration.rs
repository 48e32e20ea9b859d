//! S3 push registration end to end: the real `hook` feed action in the emulator registers the
//! receiver at moto (S3 and SNS, SigV4 verified) for `provider aws`, and at a dialect proxy in
//! front of moto for Ceph RGW and MinIO (tests/src/s3dialect.rs says what it plays and from
//! which docs). Every test starts with a notification of the user's own on the bucket and
//! checks it is untouched after every lifecycle event.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use feed_tests::moto::Moto;
use feed_tests::s3dialect::{Dialect, DialectProxy};
use feed_tests::s3proxy::{Fault, FaultProxy, Rule};
use feed_tests::world::{latency_line, World, USER};
use ow_emulator::Config;
use owfeed::hooks::feed::{binding_for, receiver_url};
use owfeed::openwhisk::QualifiedName;
use owfeed::s3::notify::notification_id;
use owfeed_s3::{parse_xml, XmlElement};

const XMLNS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

/// The emulator with the hooks actions.
fn world() -> World {
    World::with_actions(Config::with_namespaces(&[USER]), "s3reg", &["hook", "receive"])
}

/// Invokes the hook feed action as the CLI does.
fn feed(w: &World, event: &str, trigger: &str, params: Value) -> Result<Value, String> {
    w.feed_of("hook", event, trigger, params)
}

/// `wsk trigger create T --feed owfeed/hook …`, with the CLI's cleanup when CREATE fails.
fn create(w: &World, trigger: &str, params: Value) -> Result<Value, String> {
    w.create_trigger_of("hook", trigger, params)
}

fn collect<'a>(e: &'a XmlElement, name: &str, out: &mut Vec<&'a XmlElement>) {
    for c in &e.children {
        if c.name == name {
            out.push(c);
        }
        collect(c, name, out);
    }
}

/// One signed SNS Query API call to moto.
fn sns(moto: &Moto, form: &[(&str, &str)]) -> XmlElement {
    let mut form = form.to_vec();
    form.push(("Version", "2010-03-31"));
    parse_xml(&moto.client().query_api("sns", &form).expect("SNS call")).unwrap()
}

fn topics(moto: &Moto) -> Vec<String> {
    let answer = sns(moto, &[("Action", "ListTopics")]);
    let mut arns = Vec::new();
    collect(&answer, "TopicArn", &mut arns);
    arns.into_iter().map(|e| e.text.clone()).collect()
}

/// (endpoint, protocol, arn) of the topic's subscriptions.
fn subscriptions(moto: &Moto, topic: &str) -> Vec<(String, String, String)> {
    let answer = sns(moto, &[("Action", "ListSubscriptionsByTopic"), ("TopicArn", topic)]);
    let mut members = Vec::new();
    collect(&answer, "member", &mut members);
    let text = |m: &XmlElement, n: &str| m.child_text(n).unwrap_or_default().to_string();
    members.iter().map(|m| (text(m, "Endpoint"), text(m, "Protocol"), text(m, "SubscriptionArn"))).collect()
}

fn policy(moto: &Moto, topic: &str) -> Value {
    let answer = sns(moto, &[("Action", "GetTopicAttributes"), ("TopicArn", topic)]);
    let mut entries = Vec::new();
    collect(&answer, "entry", &mut entries);
    let policy = entries.iter().find(|e| e.child_text("key") == Some("Policy")).and_then(|e| e.child_text("value"));
    serde_json::from_str(policy.expect("a Policy attribute")).unwrap()
}

/// The bucket's notification entries at moto.
fn entries(moto: &Moto, bucket: &str) -> Vec<XmlElement> {
    parse_xml(&moto.client().get_bucket_notification(bucket).unwrap()).unwrap().children
}

fn without_whitespace(mut e: XmlElement) -> XmlElement {
    if !e.children.is_empty() {
        e.text.clear();
    }
    e.children = e.children.into_iter().map(without_whitespace).collect();
    e
}

fn by_id<'a>(entries: &'a [XmlElement], id: &str) -> Vec<&'a XmlElement> {
    entries.iter().filter(|e| e.child_text("Id") == Some(id)).collect()
}

fn text_of(e: &XmlElement, path: &[&str]) -> Vec<String> {
    match path {
        [] => vec![e.text.clone()],
        [first, rest @ ..] => e.children.iter().filter(|c| c.name == *first).flat_map(|c| text_of(c, rest)).collect(),
    }
}

/// The topic the feed makes for `trigger` in moto's default account.
fn topic_of(w: &World, trigger: &str) -> String {
    let binding = binding_for(&QualifiedName::new(USER, None, trigger));
    let id = notification_id(&receiver_url(&w.emu.url(), &binding));
    format!("arn:aws:sns:us-east-1:123456789012:{id}")
}

/// The user's own notification, as the bucket holds it before the feed touches it.
fn users_entry(kind: &str, destination: (&str, &str)) -> String {
    format!(
        "<NotificationConfiguration {XMLNS}><{kind}><Id>users-rule</Id><{0}>{1}</{0}>\
         <Event>s3:ObjectCreated:Put</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>logs/</Value>\
         </FilterRule></S3Key></Filter></{kind}></NotificationConfiguration>",
        destination.0, destination.1
    )
}

/// AWS: CREATE makes a topic with a policy for the bucket, subscribes the receiver and adds one
/// TopicConfiguration; PAUSE/UNPAUSE take it out and put it back (twice each: idempotent);
/// UPDATE of a filter rewrites it; DELETE removes topic, subscription and entry. The user's
/// queue notification is the same after each step.
#[test]
fn aws_registration_keeps_the_users_notifications_through_every_lifecycle_event() {
    let moto = Moto::shared().expect("moto");
    let bucket = Moto::unique_bucket("s3reg-aws");
    moto.create_bucket(&bucket).unwrap();
    let user_doc = users_entry("QueueConfiguration", ("Queue", "arn:aws:sqs:us-east-1:123456789012:users-queue"));
    moto.client().put_bucket_notification(&bucket, user_doc.clone().into_bytes()).unwrap();
    let users = without_whitespace(by_id(&entries(moto, &bucket), "users-rule")[0].clone());
    let topics_before = topics(moto);
    let w = world();
    let secret = moto.secret_access_key().to_string();
    let params = json!({"source": "s3", "provider": "aws", "endpoint": moto.endpoint(), "snsEndpoint": moto.endpoint(),
        "bucket": bucket, "accessKeyId": moto.access_key_id(), "secretAccessKey": secret,
        "prefix": "in box/", "suffix": ".jpg"});
    let created = create(&w, "uploads", params).expect("CREATE");
    let url = created["url"].as_str().unwrap().to_string();
    assert!(created.get("token").is_none(), "SNS needs no token from the user: {created}");

    // The feed config names the topic and subscription (the SNS receiver checks `topicArn`).
    let read = feed(&w, "READ", "uploads", json!({})).unwrap();
    let config = &read["config"];
    let topic = config["topicArn"].as_str().expect("topicArn stored").to_string();
    let id = config["notificationId"].as_str().expect("notificationId stored").to_string();
    let subscription = config["subscriptionArn"].as_str().expect("subscriptionArn stored").to_string();
    assert_eq!(config["secretAccessKey"], "[redacted]");
    assert!(!topics_before.contains(&topic) && topics(moto).contains(&topic));
    assert_eq!(topic, topic_of(&w, "uploads"));
    assert_eq!(subscriptions(moto, &topic), vec![(url.clone(), "http".to_string(), subscription.clone())]);
    let statement = policy(moto, &topic)["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == json!(id))
        .cloned()
        .expect("our statement in the topic policy");
    assert_eq!(statement["Principal"], json!({"Service": "s3.amazonaws.com"}));
    assert_eq!(statement["Condition"]["ArnLike"]["aws:SourceArn"], json!(format!("arn:aws:s3:*:*:{bucket}")));

    let check = |ours: usize| {
        let now = entries(moto, &bucket);
        assert_eq!(
            by_id(&now, "users-rule").iter().map(|e| without_whitespace((*e).clone())).collect::<Vec<_>>(),
            vec![users.clone()]
        );
        let mine = by_id(&now, &id);
        assert_eq!(mine.len(), ours, "{now:?}");
        assert_eq!(now.len(), 1 + ours, "{now:?}");
        mine.first().map(|e| (*e).clone())
    };
    let entry = check(1).unwrap();
    assert_eq!(entry.name, "TopicConfiguration");
    assert_eq!(text_of(&entry, &["Topic"]), vec![topic.clone()]);
    assert_eq!(text_of(&entry, &["Event"]), vec!["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]);
    // AWS matches filters against form-encoded keys: a space is `+`.
    assert_eq!(text_of(&entry, &["Filter", "S3Key", "FilterRule", "Value"]), vec!["in+box/", ".jpg"]);

    let producer = |w: &World| feed(w, "READ", "uploads", json!({})).unwrap()["status"]["producer"].clone();
    assert_eq!(producer(&w), json!({"subscription": subscription, "pendingConfirmation": false, "notification": true}));
    for _ in 0..2 {
        feed(&w, "PAUSE", "uploads", json!({})).expect("PAUSE");
        check(0);
    }
    assert_eq!(subscriptions(moto, &topic).len(), 1, "PAUSE keeps the topic and subscription");
    // Paused, the entry is gone on purpose: no problem.
    assert_eq!(producer(&w)["notification"], false);
    assert!(producer(&w).get("problem").is_none(), "{}", producer(&w));
    for _ in 0..2 {
        feed(&w, "UNPAUSE", "uploads", json!({})).expect("UNPAUSE");
        check(1);
    }

    // Another tool puts the bucket's configuration back as it knew it, without our entry
    // (PutBucketNotificationConfiguration replaces the whole document): pushes stop, and READ
    // says so and how to put it back.
    moto.client().put_bucket_notification(&bucket, user_doc.into_bytes()).unwrap();
    check(0);
    let lost = producer(&w);
    assert_eq!(lost["notification"], false, "{lost}");
    let problem = lost["problem"].as_str().expect("a problem");
    assert!(problem.contains(&format!("bucket {bucket} has no notification {id}")) && problem.contains("UNPAUSE"));
    feed(&w, "UNPAUSE", "uploads", json!({})).expect("UNPAUSE");
    check(1);
    assert_eq!(producer(&w)["notification"], true);

    let updated = feed(&w, "UPDATE", "uploads", json!({"suffix": ".png", "events": "deleted"})).expect("UPDATE");
    assert_eq!(updated["reregistered"], true, "{updated}");
    let entry = check(1).unwrap();
    assert_eq!(text_of(&entry, &["Filter", "S3Key", "FilterRule", "Value"]), vec!["in+box/", ".png"]);
    assert_eq!(text_of(&entry, &["Event"]), vec!["s3:ObjectRemoved:*"]);
    let read = feed(&w, "READ", "uploads", json!({})).unwrap();
    assert_eq!(read["config"]["topicArn"], json!(topic), "UPDATE keeps the topic");
    assert_eq!(subscriptions(moto, &topic).len(), 1);

    // An UPDATE of a paused trigger keeps it paused; UNPAUSE brings the updated entry.
    feed(&w, "PAUSE", "uploads", json!({})).expect("PAUSE");
    feed(&w, "UPDATE", "uploads", json!({"suffix": ".gif"})).expect("UPDATE while paused");
    check(0);
    feed(&w, "UNPAUSE", "uploads", json!({})).expect("UNPAUSE");
    let entry = check(1).unwrap();
    assert_eq!(text_of(&entry, &["Filter", "S3Key", "FilterRule", "Value"]), vec!["in+box/", ".gif"]);

    // Someone unsubscribes the receiver: READ says nothing is delivered, and the UPDATE it
    // names (a new secret) subscribes it again.
    sns(moto, &[("Action", "Unsubscribe"), ("SubscriptionArn", &subscription)]);
    let gone = producer(&w);
    assert!(gone["problem"].as_str().unwrap().contains("no subscription of the receiver URL"), "{gone}");
    let renewed = feed(&w, "UPDATE", "uploads", json!({"secret": "a-new-secret-of-32-characters-xy"})).expect("UPDATE");
    assert_eq!(renewed["reregistered"], true, "{renewed}");
    let again = producer(&w);
    assert!(again.get("problem").is_none(), "{again}");
    assert_eq!(subscriptions(moto, &topic).len(), 1);

    let deleted = feed(&w, "DELETE", "uploads", json!({})).expect("DELETE");
    assert!(deleted.get("notRemoved").is_none(), "{deleted}");
    check(0);
    assert!(!topics(moto).contains(&topic), "the feed's topic is gone");
    for result in [&created, &updated, &deleted, &read] {
        assert!(!result.to_string().contains(&secret), "{result}");
    }
}

/// A topic the user gives is used, never deleted: UPDATE to it from the feed's own topic
/// deletes the own one; DELETE removes only the feed's subscription and policy statement.
#[test]
fn a_given_topic_replaces_the_own_one_and_survives_delete() {
    let moto = Moto::shared().expect("moto");
    let bucket = Moto::unique_bucket("s3reg-given");
    moto.create_bucket(&bucket).unwrap();
    let created = sns(moto, &[("Action", "CreateTopic"), ("Name", &bucket)]);
    let given = created.find_text("TopicArn").unwrap().to_string();
    let before = policy(moto, &given);
    let w = world();
    let params = json!({"source": "s3", "provider": "aws", "endpoint": moto.endpoint(), "snsEndpoint": moto.endpoint(),
        "bucket": bucket, "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key()});
    create(&w, "given", params).expect("CREATE");
    let own = topic_of(&w, "given");
    assert!(topics(moto).contains(&own));

    let updated = feed(&w, "UPDATE", "given", json!({"topicArn": given})).expect("UPDATE");
    assert_eq!(updated["problems"], json!([]), "{updated}");
    assert!(!topics(moto).contains(&own), "the feed's own topic is deleted once replaced");
    let config = feed(&w, "READ", "given", json!({})).unwrap()["config"].clone();
    assert_eq!(config["topicArn"], json!(given));
    let during = policy(moto, &given);
    assert_eq!(during["Statement"].as_array().unwrap().len(), before["Statement"].as_array().unwrap().len() + 1);
    let subs = subscriptions(moto, &given);
    assert_eq!(subs.len(), 1);
    assert_eq!(config["subscriptionArn"], json!(subs[0].2));
    let now = entries(moto, &bucket);
    assert_eq!(now.len(), 1);
    assert_eq!(text_of(&now[0], &["Topic"]), vec![given.clone()]);

    feed(&w, "DELETE", "given", json!({})).expect("DELETE");
    assert!(topics(moto).contains(&given), "the user's topic stays");
    assert_eq!(policy(moto, &given), before, "only our statement is removed");
    assert!(subscriptions(moto, &given).is_empty());
    assert!(entries(moto, &bucket).is_empty());
}

/// A failed CREATE leaves nothing: not for a missing bucket (nothing is made), nor when the
/// topic policy is refused after the topic was created (a fault proxy in front of moto's SNS
/// answers SetTopicAttributes, the third topic call, with 403).
#[test]
fn failed_aws_registration_leaves_nothing_behind() {
    let moto = Moto::shared().expect("moto");
    let w = world();
    let base = |bucket: &str, sns_endpoint: &str| {
        json!({"source": "s3", "provider": "aws", "endpoint": moto.endpoint(), "snsEndpoint": sns_endpoint,
            "bucket": bucket, "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key()})
    };
    // Other tests share this moto: look for the topic this trigger's registration would make.
    let topic_of = |trigger: &str| topic_of(&w, trigger);
    let missing = Moto::unique_bucket("s3reg-missing");
    let err = create(&w, "missing", base(&missing, moto.endpoint())).unwrap_err();
    assert!(err.contains(&missing) && err.contains("does not exist"), "{err}");
    assert!(!topics(moto).contains(&topic_of("missing")));

    let bucket = Moto::unique_bucket("s3reg-refused");
    moto.create_bucket(&bucket).unwrap();
    let user_doc = users_entry("QueueConfiguration", ("Queue", "arn:aws:sqs:us-east-1:123456789012:users-queue"));
    moto.client().put_bucket_notification(&bucket, user_doc.into_bytes()).unwrap();
    let before = entries(moto, &bucket);
    let proxy = FaultProxy::start(moto.endpoint()).unwrap();

    // CreateTopic, GetTopicAttributes, then SetTopicAttributes is refused.
    proxy.add(Rule { method: "POST", contains: "/", skip: 2, count: 1, fault: Fault::Status(403) });
    let err = create(&w, "refused", base(&bucket, proxy.url())).unwrap_err();
    assert!(err.contains("SetTopicAttributes"), "{err}");
    assert!(!err.contains(moto.secret_access_key()), "{err}");
    // CreateTopic, GetTopicAttributes, SetTopicAttributes (refused), DeleteTopic.
    assert_eq!(proxy.count("POST /"), 4);
    assert!(!topics(moto).contains(&topic_of("refused")), "the topic made before the refusal is deleted");
    assert_eq!(entries(moto, &bucket), before);
    let packages: Vec<String> = w
        .user_entities()
        .unwrap()
        .into_iter()
        .filter(|e| e.starts_with("package:") || e.starts_with("trigger:"))
        .collect();
    assert!(packages.is_empty(), "{packages:?}");
}

/// Ceph RGW (through the dialect proxy): a topic whose push-endpoint carries the token, our
/// TopicConfiguration merged by Id, removal by `DELETE ?notification=id`; the push-endpoint
/// really reaches the trigger, and UPDATE of the secret rotates the token in the topic.
#[test]
fn ceph_registration_pushes_to_the_receiver_and_removes_only_its_own_entry() {
    let moto = Moto::shared().expect("moto");
    let rgw = DialectProxy::start(moto.endpoint(), Dialect::Ceph).unwrap();
    let bucket = Moto::unique_bucket("s3reg-ceph");
    moto.create_bucket(&bucket).unwrap();
    let users_topic = "arn:aws:sns:default::users-topic";
    let ceph_client =
        owfeed_s3::S3Client::new(owfeed_s3::S3Config { endpoint: rgw.url().to_string(), ..moto.config() }).unwrap();
    ceph_client
        .put_bucket_notification(&bucket, users_entry("TopicConfiguration", ("Topic", users_topic)).into_bytes())
        .unwrap();
    let users = rgw.entries(&bucket);
    let w = world();
    let params = json!({"source": "s3", "provider": "ceph", "endpoint": rgw.url(), "bucket": bucket,
        "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key()});
    let created = create(&w, "rgw", params).expect("CREATE");
    w.record_events("rgw", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    assert!(created.get("token").is_none(), "the feed put the token into the topic itself: {created}");
    let config = feed(&w, "READ", "rgw", json!({})).unwrap()["config"].clone();
    let (topic, id) =
        (config["topicArn"].as_str().unwrap().to_string(), config["notificationId"].as_str().unwrap().to_string());

    let push_endpoints = || -> Vec<String> {
        rgw.topic_calls()
            .iter()
            .filter(|f| f.iter().any(|(k, v)| k == "Action" && v == "CreateTopic"))
            .filter_map(|f| {
                f.iter()
                    .find(|(k, v)| k == "Attributes.entry.1.key" && v == "push-endpoint")
                    .and(f.iter().find(|(k, _)| k == "Attributes.entry.1.value"))
                    .map(|(_, v)| v.clone())
            })
            .collect()
    };
    let push = push_endpoints().last().cloned().expect("CreateTopic with a push-endpoint");
    assert!(push.starts_with(&format!("{}?access_token=", created["url"].as_str().unwrap())), "{push}");
    let now = rgw.entries(&bucket);
    assert_eq!(now.len(), 2);
    assert_eq!(now[0], users[0]);
    assert_eq!(text_of(&now[1], &["Topic"]), vec![topic.clone()]);
    assert_eq!(text_of(&now[1], &["Id"]), vec![id.clone()]);

    // What RGW would POST to the push-endpoint (reference notes §4: raw key, no auth header).
    let http = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let deliver = |url: &str| {
        let record = json!({"Records": [{"eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "default",
            "eventTime": "2026-11-27T18:00:00.250000Z", "eventName": "ObjectCreated:Put", "eventId": "1700000000.1.obj",
            "s3": {"bucket": {"name": bucket}, "object": {"key": "a b.jpg", "size": 5, "eTag": "5d41402abc4b2a76b9719d911017c592"}}}]});
        http.post(url).header("Content-Type", "application/json").send(record.to_string()).unwrap().status().as_u16()
    };
    assert_eq!(deliver(&push), 202);

    feed(&w, "PAUSE", "rgw", json!({})).expect("PAUSE");
    assert_eq!(rgw.entries(&bucket), users);
    feed(&w, "UNPAUSE", "rgw", json!({})).expect("UNPAUSE");
    assert_eq!(rgw.entries(&bucket).len(), 2);

    // `DELETE ?notification` without an id removes every notification of the bucket at RGW,
    // ours too: READ says the trigger gets nothing, and UNPAUSE puts ours back.
    let producer = |w: &World| feed(w, "READ", "rgw", json!({})).unwrap()["status"]["producer"].clone();
    assert_eq!(producer(&w), json!({"notification": true}));
    ceph_client.delete_bucket_notification(&bucket, "").unwrap();
    assert!(rgw.entries(&bucket).is_empty());
    let lost = producer(&w);
    assert_eq!(lost["notification"], false, "{lost}");
    assert!(lost["problem"].as_str().unwrap().contains(&format!("has no notification {id}")), "{lost}");
    feed(&w, "UNPAUSE", "rgw", json!({})).expect("UNPAUSE");
    assert_eq!(producer(&w), json!({"notification": true}));
    ceph_client
        .put_bucket_notification(&bucket, users_entry("TopicConfiguration", ("Topic", users_topic)).into_bytes())
        .unwrap();
    assert_eq!(rgw.entries(&bucket).len(), 2);

    // Rotation: the topic gets the new token at once; the old one stops working.
    let updated = feed(&w, "UPDATE", "rgw", json!({"secret": "a-new-token-of-32-characters-xyz"})).expect("UPDATE");
    assert_eq!(updated["reregistered"], true);
    let rotated = push_endpoints().last().cloned().unwrap();
    assert!(rotated.ends_with("access_token=a-new-token-of-32-characters-xyz"), "{rotated}");
    assert_eq!(deliver(&push), 401);
    assert_eq!(deliver(&rotated), 202);
    assert_eq!(rgw.entries(&bucket).len(), 2);
    assert!(!updated.to_string().contains("a-new-token"), "{updated}");

    feed(&w, "DELETE", "rgw", json!({})).expect("DELETE");
    assert_eq!(rgw.entries(&bucket), users);
    assert!(!topics(moto).contains(&topic), "the feed's topic is deleted");
    assert!(w.emu.wait_idle(Duration::from_secs(60)));
    assert_eq!(w.events().len(), 2, "{:?}", w.events());
}

/// Ceph for real: radosgw (Debian's Ceph 16.2, `feed_tests::ceph`) takes the feed's topic
/// and notification itself and POSTs its own records to the receiver, so the events below are
/// what a real RGW sends, key with a space and a plus included. The user's notification stays
/// through every lifecycle event; PAUSE stops deliveries; UPDATE's new token reaches the
/// topic (RGW's CreateTopic of an existing name replaces its attributes); DELETE removes the
/// feed's entry and topic.
#[test]
fn a_real_ceph_rgw_pushes_its_notifications_through_the_hook() {
    let rgw = feed_tests::ceph::Rgw::start().expect("start Ceph RGW");
    let client = rgw.client();
    let bucket = "photos";
    client.create_bucket(bucket).unwrap();
    let topic_call = |form: &[(&str, &str)]| parse_xml(&client.query_api("sns", form).expect("topic call")).unwrap();
    // The user's own topic and notification (on logs/ only: nothing below is sent to it).
    let users_topic = topic_call(&[
        ("Action", "CreateTopic"),
        ("Name", "users-topic"),
        ("Attributes.entry.1.key", "push-endpoint"),
        ("Attributes.entry.1.value", "http://127.0.0.1:9/users"),
    ])
    .find_text("TopicArn")
    .unwrap()
    .trim()
    .to_string();
    client
        .put_bucket_notification(bucket, users_entry("TopicConfiguration", ("Topic", &users_topic)).into_bytes())
        .unwrap();
    let rgw_entries = || parse_xml(&client.get_bucket_notification(bucket).unwrap()).unwrap().children;
    let users = rgw_entries();
    assert_eq!(users.len(), 1, "{users:?}");

    let w = world();
    let params = json!({"source": "s3", "provider": "ceph", "endpoint": rgw.endpoint(), "region": "default",
        "bucket": bucket, "accessKeyId": rgw.access_key_id(), "secretAccessKey": rgw.secret_access_key()});
    let created = create(&w, "rgw", params).unwrap_or_else(|e| panic!("CREATE: {e}\n{}", rgw.log_tail()));
    w.record_events("rgw", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let read = feed(&w, "READ", "rgw", json!({})).unwrap();
    let (topic, id) = (
        read["config"]["topicArn"].as_str().unwrap().to_string(),
        read["config"]["notificationId"].as_str().unwrap().to_string(),
    );
    assert_eq!(read["status"]["producer"], json!({"notification": true}), "{read}");
    let now = rgw_entries();
    assert_eq!(now.len(), 2, "{now:?}");
    assert_eq!(by_id(&now, "users-rule"), vec![&users[0]]);
    assert_eq!(text_of(by_id(&now, &id)[0], &["Topic"]), vec![topic.clone()]);

    let key = "dir/my file+1.txt";
    let put = |key: &str, body: &str| {
        client.put_object(bucket, key, body.as_bytes().to_vec(), owfeed_s3::Condition::None).unwrap()
    };
    let seen = |w: &World| -> Vec<(String, String, String)> {
        assert!(w.emu.wait_idle(Duration::from_secs(60)));
        let mut events: Vec<_> = w
            .events()
            .iter()
            .map(|e| {
                let kind = e["type"].as_str().unwrap_or_default().rsplit('.').next().unwrap().to_string();
                (
                    kind,
                    e["subject"].as_str().unwrap_or_default().to_string(),
                    e["data"]["etag"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        events.sort();
        events
    };
    let etag1 = put(key, "first");
    let etag2 = put(key, "second, longer");
    client.delete_object(bucket, key).unwrap();
    let unquote = |e: &str| e.trim_matches('"').to_string();
    let mut want = vec![
        ("created".to_string(), key.to_string(), unquote(&etag1)),
        ("created".to_string(), key.to_string(), unquote(&etag2)),
        ("deleted".to_string(), key.to_string(), String::new()),
    ];
    want.sort();
    let got = seen(&w);
    // RGW 16.2 puts the deleted object's eTag on a delete record; the event carries no etag.
    assert_eq!(got, want, "{:?}\n{}", w.events(), rgw.log_tail());
    for e in w.events() {
        assert_eq!(e["source"], json!(format!("{}/{bucket}", rgw.endpoint())), "{e}");
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }

    feed(&w, "PAUSE", "rgw", json!({})).expect("PAUSE");
    assert_eq!(rgw_entries(), users);
    put("paused.txt", "nobody hears this");
    feed(&w, "UNPAUSE", "rgw", json!({})).expect("UNPAUSE");
    assert_eq!(rgw_entries().len(), 2);
    let updated = feed(&w, "UPDATE", "rgw", json!({"secret": "a-new-token-of-32-characters-xyz"})).expect("UPDATE");
    assert_eq!(updated["reregistered"], true, "{updated}");
    put("after.txt", "heard through the new token");
    let got = seen(&w);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().any(|(k, s, _)| k == "created" && s == "after.txt"), "{got:?}");
    assert!(!got.iter().any(|(_, s, _)| s == "paused.txt"), "{got:?}");

    feed(&w, "DELETE", "rgw", json!({})).expect("DELETE");
    assert_eq!(rgw_entries(), users, "only the user's notification is left");
    let attrs = client.query_api("sns", &[("Action", "GetTopicAttributes"), ("TopicArn", &topic)]);
    assert!(attrs.is_err(), "the feed's topic is deleted");
    assert!(client.query_api("sns", &[("Action", "GetTopicAttributes"), ("TopicArn", &users_topic)]).is_ok());
    for result in [&created, &read, &updated] {
        assert!(!result.to_string().contains(rgw.secret_access_key()), "{result}");
    }
}

/// Benchmark, not a test (`#[ignore]`, prints; asserts only that every write fired): push
/// write-to-fire on a real Ceph RGW. RGW posts a non-persistent topic's notification inside the
/// S3 request and waits for the receiver's answer, which comes after the fire was accepted, so
/// each PUT's wall time is an upper bound of write-to-fire; the same PUTs to a bucket without
/// notifications give RGW's own cost.
/// `cargo test -p feed-tests --test suite s3_registration::bench_ceph_push_write_to_fire -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_ceph_push_write_to_fire() {
    let rgw = feed_tests::ceph::Rgw::start().expect("start Ceph RGW");
    let client = rgw.client();
    for bucket in ["pushed", "plain"] {
        client.create_bucket(bucket).unwrap();
    }
    let w = world();
    let params = json!({"source": "s3", "provider": "ceph", "endpoint": rgw.endpoint(), "region": "default",
        "bucket": "pushed", "accessKeyId": rgw.access_key_id(), "secretAccessKey": rgw.secret_access_key()});
    create(&w, "bench", params).expect("CREATE");
    w.record_events("bench", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    let writes = 50;
    for (bucket, what) in [("pushed", "Ceph push write-to-fire"), ("plain", "Ceph PUT without notification")] {
        let millis: Vec<f64> = (0..writes)
            .map(|i| {
                let started = std::time::Instant::now();
                client
                    .put_object(bucket, &format!("bench/{i}.txt"), b"hello".to_vec(), owfeed_s3::Condition::None)
                    .unwrap();
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        eprintln!("{}", latency_line(what, &millis));
    }
    assert!(w.emu.wait_idle(Duration::from_secs(60)));
    assert_eq!(w.fired("bench").len(), writes, "every write fired once");
}

/// MinIO (through the dialect proxy, which refuses all but `arn:minio:sqs` queue entries and
/// replaces on PUT): a QueueConfiguration for the given webhook target, read-modify-write;
/// CREATE prints the token the administrator sets on the target.
#[test]
fn minio_registration_adds_a_queue_configuration_and_prints_the_token() {
    let moto = Moto::shared().expect("moto");
    let minio = DialectProxy::start(moto.endpoint(), Dialect::Minio).unwrap();
    let bucket = Moto::unique_bucket("s3reg-minio");
    moto.create_bucket(&bucket).unwrap();
    let minio_client =
        owfeed_s3::S3Client::new(owfeed_s3::S3Config { endpoint: minio.url().to_string(), ..moto.config() }).unwrap();
    minio_client
        .put_bucket_notification(
            &bucket,
            users_entry("QueueConfiguration", ("Queue", "arn:minio:sqs::archive:webhook")).into_bytes(),
        )
        .unwrap();
    // The dialect is what MinIO documents: a topic entry is refused.
    assert!(minio_client
        .put_bucket_notification(
            &bucket,
            users_entry("TopicConfiguration", ("Topic", "arn:aws:sns:r:1:t")).into_bytes()
        )
        .is_err());
    let users = minio.entries(&bucket);
    let w = world();
    let base = json!({"source": "s3", "provider": "minio", "endpoint": minio.url(), "bucket": bucket,
        "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key()});
    let mut bad = base.clone();
    bad["targetArn"] = json!("arn:aws:sqs:us-east-1:1:q");
    let err = create(&w, "bad", bad).unwrap_err();
    assert!(err.contains("targetArn"), "{err}");
    let mut params = base;
    params["targetArn"] = json!("arn:minio:sqs::uploads:webhook");
    let created = create(&w, "m", params).expect("CREATE");
    assert_eq!(created["token"].as_str().map(str::len), Some(64), "{created}");
    let id = feed(&w, "READ", "m", json!({})).unwrap()["config"]["notificationId"].as_str().unwrap().to_string();
    let now = minio.entries(&bucket);
    assert_eq!(now.len(), 2);
    assert_eq!(now[0], users[0]);
    assert_eq!(now[1].name, "QueueConfiguration");
    assert_eq!(text_of(&now[1], &["Id"]), vec![id]);
    assert_eq!(text_of(&now[1], &["Queue"]), vec!["arn:minio:sqs::uploads:webhook"]);
    feed(&w, "PAUSE", "m", json!({})).expect("PAUSE");
    assert_eq!(minio.entries(&bucket), users);
    feed(&w, "UNPAUSE", "m", json!({})).expect("UNPAUSE");
    assert_eq!(minio.entries(&bucket).len(), 2);
    feed(&w, "DELETE", "m", json!({})).expect("DELETE");
    assert_eq!(minio.entries(&bucket), users);
}

/// A server that echoes the request into its error (the push-endpoint with the token, the
/// session token header) cannot carry a secret into CREATE's error, result or logs.
#[test]
fn secrets_echoed_by_the_server_never_reach_results_or_logs() {
    let moto = Moto::shared().expect("moto");
    let rgw = DialectProxy::start(moto.endpoint(), Dialect::Ceph).unwrap();
    let bucket = Moto::unique_bucket("s3reg-echo");
    moto.create_bucket(&bucket).unwrap();
    rgw.refuse_topics_echoing();
    let w = world();
    let token = "echoed-token-0123456789abcdef";
    let params = json!({"source": "s3", "provider": "ceph", "endpoint": rgw.url(), "bucket": bucket,
        "accessKeyId": moto.access_key_id(), "secretAccessKey": moto.secret_access_key(), "secret": token});
    let err = create(&w, "echo", params).unwrap_err();
    assert!(err.contains("CreateTopic") && err.contains("InvalidArgument"), "{err}");
    let calls = rgw.topic_calls();
    let sent = calls.last().expect("the topic call was made");
    assert!(sent.iter().any(|(_, v)| v.contains(token)), "the server did get the token: {sent:?}");
    let activations = serde_json::to_string(&w.emu.activations(USER)).unwrap();
    assert!(activations.contains("CreateTopic"), "the error is in the activation record");
    for secret in [token, moto.secret_access_key()] {
        assert!(!err.contains(secret), "{err}");
        assert!(!activations.contains(secret), "{activations}");
    }
    assert!(rgw.entries(&bucket).is_empty());
}

/// Push and poll agree (issue 22): one real Ceph RGW bucket watched both ways, by the polling S3
/// feed and by an S3 push hook; for each write and delete, the pushed event and the polled
/// event have the same `type`, `source`, `subject` and `data`, except what a notification does
/// not carry: the listing's `storageClass` and a delete's `previousVersionHash` (both absent
/// from the pushed event, never guessed), and `lastModified`, which push takes from the
/// record's `eventTime` and a poll from the listing's `LastModified` (RGW's two clocks of one
/// write; both RFC 3339, `Z`).
#[test]
fn pushed_and_polled_events_of_one_bucket_carry_the_same_data() {
    let rgw = feed_tests::ceph::Rgw::start().expect("start Ceph RGW");
    let client = rgw.client();
    let bucket = "parity";
    client.create_bucket(bucket).unwrap();
    let w = World::with_actions(
        Config::with_namespaces(&[USER, "other"]),
        "parity",
        &["changes", "poll", "hook", "receive"],
    );
    let s3 = json!({"endpoint": rgw.endpoint(), "region": feed_tests::ceph::REGION, "bucket": bucket,
        "accessKeyId": rgw.access_key_id(), "secretAccessKey": rgw.secret_access_key()});
    let mut polled_params = s3.clone();
    polled_params["source"] = json!("s3");
    w.create_trigger("polled", polled_params).expect("CREATE of the polling feed");
    let mut pushed_params = s3;
    pushed_params["source"] = json!("s3");
    pushed_params["provider"] = json!("ceph");
    create(&w, "pushed", pushed_params).unwrap_or_else(|e| panic!("CREATE of the push hook: {e}\n{}", rgw.log_tail()));
    // A trigger without a rule records no activation: a recorder on each.
    for trigger in ["polled", "pushed"] {
        w.record_events(trigger, Path::new(env!("CARGO_BIN_EXE_echo-action")));
    }

    let key = "dir/a file+1.txt";
    client.put_object(bucket, key, b"first".to_vec(), owfeed_s3::Condition::None).unwrap();
    assert!(w.emu.wait_idle(Duration::from_secs(60)));
    w.poll_once("polled").expect("poll after the write");
    client.delete_object(bucket, key).unwrap();
    assert!(w.emu.wait_idle(Duration::from_secs(60)));
    w.poll_once("polled").expect("poll after the delete");

    // Everything but the two attributes a notification cannot give the same way.
    let comparable = |e: &Value| {
        let mut data = e["data"].clone();
        let object = data.as_object_mut().expect("data is an object");
        let last_modified = object.remove("lastModified");
        let not_pushed = [object.remove("storageClass"), object.remove("previousVersionHash")];
        let event = json!({"type": e["type"], "source": e["source"], "subject": e["subject"], "data": data});
        (event, last_modified, not_pushed)
    };
    let pushed: Vec<_> = w.fired("pushed").iter().map(comparable).collect();
    let polled: Vec<_> = w.fired("polled").iter().map(comparable).collect();
    assert_eq!(
        pushed.iter().map(|(e, ..)| e).collect::<Vec<_>>(),
        polled.iter().map(|(e, ..)| e).collect::<Vec<_>>(),
        "pushed and polled events differ\n{}",
        rgw.log_tail()
    );
    assert_eq!(pushed.len(), 2, "{pushed:?}");
    let (created_push, created_poll) = (&pushed[0], &polled[0]);
    assert_eq!(created_push.2, [None, None], "a notification carries no storage class: none is made up");
    assert!(created_poll.2[0].as_ref().is_some_and(Value::is_string), "RGW lists a StorageClass: {created_poll:?}");
    assert_eq!(pushed[1].2, [None, None], "a notification carries no previous version");
    assert!(polled[1].2[1].as_ref().is_some_and(Value::is_string), "a poll knows the deleted version: {polled:?}");
    for (_, last_modified, _) in [created_push, created_poll] {
        let lm = last_modified.as_ref().and_then(Value::as_str).expect("a created event has lastModified");
        assert!(lm.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(lm).is_ok(), "{lm}");
    }
    assert!(pushed[1].1.is_none() && polled[1].1.is_none(), "a delete has no lastModified");
}
