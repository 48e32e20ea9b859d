//! Private TLS: an S3 store and an OpenWhisk API host behind a TLS terminator whose
//! certificate a self-made CA signed (rcgen + rustls in `feed_tests::tls`). Without the CA
//! every call fails with a message naming the parameter to set; with it (or with the explicit,
//! visible opt-out) everything works.

use std::path::Path;

use serde_json::{json, Value};

use feed_tests::moto::Moto;
use feed_tests::tls::{TestCa, TlsProxy};
use feed_tests::world::{workspace_bin, World, USER};
use owfeed::openwhisk::{ApiTls, AuthKey, Client, QualifiedName};
use owfeed::params::Params;
use owfeed_s3::{Condition, ErrorKind, ListRequest, S3Client};

#[test]
fn an_s3_client_needs_the_private_ca_or_the_explicit_opt_out() {
    let moto = Moto::shared().expect("moto server");
    let ca = TestCa::new().expect("test CA");
    let proxy = TlsProxy::start(moto.endpoint(), &ca).expect("TLS proxy");
    let bucket = Moto::unique_bucket("tls");
    moto.client().create_bucket(&bucket).expect("create bucket");
    let mut config = moto.config();
    config.endpoint = proxy.url().to_string();

    let err = S3Client::new(config.clone()).unwrap().list_objects_v2(&bucket, &ListRequest::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transport, "{err}");
    assert!(err.message.starts_with("TLS: "), "{err}");
    assert!(err.message.contains("-p caCertificate"), "{err}");

    let mut trusted = config.clone();
    trusted.ca_certificates_pem = Some(ca.ca_pem.clone());
    let client = S3Client::new(trusted).unwrap();
    client.put_object(&bucket, "k", b"v".to_vec(), Condition::IfNoneMatchStar).expect("put through TLS");
    assert_eq!(client.list_objects_v2(&bucket, &ListRequest::default()).unwrap().objects.len(), 1);

    // Another CA's certificate does not make this server trusted.
    let mut wrong = config.clone();
    wrong.ca_certificates_pem = Some(TestCa::new().unwrap().ca_pem);
    let err = S3Client::new(wrong).unwrap().list_objects_v2(&bucket, &ListRequest::default()).unwrap_err();
    assert!(err.message.contains("caCertificate holds the CA"), "{err}");

    let mut insecure = config.clone();
    insecure.insecure_skip_tls_verify = true;
    assert!(S3Client::new(insecure).unwrap().list_objects_v2(&bucket, &ListRequest::default()).is_ok());

    let mut garbage = config;
    garbage.ca_certificates_pem = Some("not a certificate".into());
    let err = S3Client::new(garbage).unwrap_err();
    assert!(err.message.starts_with("caCertificate: "), "{err}");
}

#[test]
fn the_s3_feed_reaches_a_store_with_a_private_ca() {
    let moto = Moto::shared().expect("moto server");
    let ca = TestCa::new().expect("test CA");
    let proxy = TlsProxy::start(moto.endpoint(), &ca).expect("TLS proxy");
    let bucket = Moto::unique_bucket("tls-feed");
    let direct = moto.client();
    direct.create_bucket(&bucket).expect("create bucket");
    let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
    let params = |extra: Value| {
        let mut p = json!({
            "endpoint": proxy.url(),
            "bucket": bucket,
            "accessKeyId": moto.access_key_id(),
            "secretAccessKey": moto.secret_access_key(),
        });
        if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
            p.extend(extra);
        }
        p
    };

    let err = w.create_trigger("t", params(json!({}))).expect_err("CREATE without the CA fails");
    assert!(err.contains("TLS: ") && err.contains("-p caCertificate"), "{err}");
    assert_eq!(w.user_entities().unwrap(), Vec::<String>::new(), "a failed CREATE leaves nothing");

    let created = w.create_trigger("t", params(json!({ "caCertificate": ca.ca_pem }))).expect("CREATE with the CA");
    let notice = created["notices"][0].as_str().unwrap_or_default().to_string();
    assert!(notice.starts_with("caCertificate: ") && notice.contains("1 certificate"), "{created}");
    w.record_events("t", Path::new(env!("CARGO_BIN_EXE_echo-action")));
    direct.put_object(&bucket, "a.txt", b"1".to_vec(), Condition::None).expect("put");
    w.poll();
    let kinds: Vec<Value> = w.events().iter().map(|e| e["subject"].clone()).collect();
    assert_eq!(kinds, vec![json!("a.txt")], "the poller, with the CA from the config binding, delivered");
    let read = w.feed("READ", "t", json!({})).expect("READ");
    assert_eq!(read["status"]["lastOutcome"], "ok", "{read}");
    assert_eq!(read["config"]["caCertificate"], json!(ca.ca_pem), "{read}");
    assert_eq!(read["status"]["notices"][0], json!(notice), "{read}");

    // The explicit opt-out works too, and READ says loudly what it costs.
    let created = w.create_trigger("u", params(json!({ "insecureSkipTlsVerify": true }))).expect("CREATE insecure");
    assert!(created["notices"][0].as_str().unwrap_or_default().contains("NOT verified"), "{created}");
    let read = w.feed("READ", "u", json!({})).expect("READ");
    assert!(read["status"]["notices"][0].as_str().unwrap_or_default().contains("NOT verified"), "{read}");
}

#[test]
fn the_openwhisk_client_needs_the_api_hosts_private_ca_or_the_explicit_opt_out() {
    let w = World::empty(ow_emulator::Config::with_namespaces(&[USER]), "tls-api").expect("emulator");
    let ca = TestCa::new().expect("test CA");
    let proxy = TlsProxy::start(&w.emu.url(), &ca).expect("TLS proxy");
    let trigger = QualifiedName::new(USER, None, "t");
    let client =
        |tls: &ApiTls| Client::new(proxy.url(), AuthKey::parse(&w.user_key).unwrap()).with_tls(tls).expect("client");

    let err = client(&ApiTls::default()).put_trigger(&trigger, &json!({}), true).unwrap_err().to_string();
    assert!(err.contains("TLS: ") && err.contains("-p apiHostCaCertificate"), "{err}");

    let params = Params::from_value(json!({ "apiHostCaCertificate": ca.ca_pem })).unwrap();
    let trusted = ApiTls::from_params(&params).expect("valid PEM");
    client(&trusted).put_trigger(&trigger, &json!({}), true).expect("through TLS with the CA");
    assert!(trusted.notice(proxy.url()).unwrap().contains("verified against the 1 certificate"));

    let params = Params::from_value(json!({ "apiHostInsecureSkipTlsVerify": true })).unwrap();
    let insecure = ApiTls::from_params(&params).unwrap();
    client(&insecure).get_trigger(&trigger).expect("through TLS unverified");
    assert!(insecure.notice(proxy.url()).unwrap().contains("NOT verified"));

    let params = Params::from_value(json!({ "apiHostCaCertificate": "-----BEGIN nonsense" })).unwrap();
    assert_eq!(ApiTls::from_params(&params).unwrap_err().name, "apiHostCaCertificate");
}
