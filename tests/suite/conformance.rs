//! The store-conformance table (BENCHMARKS.md): what each S3 server the suite runs does with
//! the features the feed relies on, measured through our own client and the feed's own
//! conditional-write probe. Each row is asserted, so a server that changes behaviour fails here
//! before it confuses a feed test.

use serde_json::json;

use feed_tests::moto::Moto;
use feed_tests::s3rver::{self, S3rver};
use feed_tests::s3sfs::S3sFs;
use owfeed::openwhisk::QualifiedName;
use owfeed::params::Params;
use owfeed::s3::S3Source;
use owfeed::source::Source;
use owfeed::store::StateStore;
use owfeed_s3::{Condition, ListRequest, S3Client, S3Config, SecretString};

/// One row: (listing sorted, ETags in listings, HEAD 200/404, If-None-Match on absent,
/// If-None-Match refused on present, If-Match quoted, If-Match unquoted, stale ETag refused,
/// dialect).
type Row = (bool, bool, bool, bool, bool, bool, bool, bool, &'static str);

fn measure(name: &str, client: &S3Client, endpoint: &str, key: &str, secret: &str, url_encoding: bool) -> Row {
    let bucket = Moto::unique_bucket("conformance");
    client.create_bucket(&bucket).expect("create bucket");
    for k in ["b", "a/2", "a/1", "c"] {
        client.put_object(&bucket, k, b"x".to_vec(), Condition::None).expect("put");
    }
    let page = client.list_objects_v2(&bucket, &ListRequest::default()).expect("list");
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    let sorted = keys == ["a/1", "a/2", "b", "c"];
    let etags = page.objects.iter().all(|o| o.etag.is_some());
    let head = client.head_object(&bucket, "b").expect("HEAD present")
        && !client.head_object(&bucket, "nope").expect("HEAD absent");
    let params = Params::from_value(json!({
        "endpoint": endpoint, "bucket": bucket, "accessKeyId": key, "secretAccessKey": secret,
        "urlEncoding": url_encoding,
    }))
    .unwrap();
    let blobs = S3Source.open(&params).expect("open").blob_store().expect("blob store");
    let probe = StateStore::new(blobs, &QualifiedName::new("guest", None, "t")).probe_dialect().expect("probe");
    let row = (
        sorted,
        etags,
        head,
        probe.if_none_match_absent,
        probe.if_none_match_present_refused,
        probe.if_match_quoted,
        probe.if_match_unquoted,
        probe.stale_refused,
        probe.dialect.as_str(),
    );
    eprintln!("| {name} | {row:?} |");
    row
}

#[test]
fn store_conformance_of_the_servers_the_suite_runs() {
    let moto = Moto::shared().expect("moto server");
    let row = measure("moto", &moto.client(), moto.endpoint(), moto.access_key_id(), moto.secret_access_key(), true);
    assert_eq!(row, (true, true, true, true, true, true, true, true, "quoted"), "moto");

    let fs = S3sFs::start("AKIDCONFORM", "conformance-secret");
    let mut config = S3Config::new(&fs.endpoint, "us-east-1", "AKIDCONFORM", SecretString::new("conformance-secret"));
    config.list_url_encoding = false;
    let client = S3Client::new(config).unwrap();
    let row = measure("s3s-fs", &client, &fs.endpoint, "AKIDCONFORM", "conformance-secret", false);
    assert_eq!(row, (true, false, true, true, true, true, true, true, "quoted"), "s3s-fs");

    let s3rver = S3rver::start().expect("s3rver");
    let client = S3Client::new(S3Config::new(
        &s3rver.endpoint,
        "us-east-1",
        s3rver::ACCESS_KEY,
        SecretString::new(s3rver::SECRET_KEY),
    ))
    .unwrap();
    let row = measure("s3rver", &client, &s3rver.endpoint, s3rver::ACCESS_KEY, s3rver::SECRET_KEY, true);
    // s3rver ignores conditional headers on PUT: a real store of the `none` dialect.
    assert_eq!(row, (true, true, true, true, false, true, true, false, "none"), "s3rver");
}
