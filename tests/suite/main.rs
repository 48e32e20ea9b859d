//! The one integration-test binary: each module is one area, each test starts its own servers.

// what each S3 server the suite runs does with the features the feed relies on
mod conformance;
// the CouchDB source's reader and state store against pouchdb-server and a fault proxy
mod couchdb;
// the CouchDB feed end to end: real binaries, emulator, pouchdb-server, kills, connection mode
mod couchdb_feed;
// the OpenWhisk emulator follows the REST API
mod emulator;
// fault injection: polls killed at every step, throttled fires, failing S3, concurrent polls
mod faults;
// the plugin guide: its quoted examples are the example sources, which run end to end
mod guide;
// the hooks pattern: receiver web action and hook feed
mod hooks;
// the HTTP resource source end to end against real web servers (http-server, python http.server)
mod http_feed;
// the Kafka feed end to end: tansu, kafka-python producing, partitions, offsets, SASL, codecs
mod kafka_feed;
// random and mutated inputs never panic a parser, nor stop the actionloop
mod fuzz;
// feed lifecycle (CREATE … UNPAUSE) through the emulator with the test-only source
mod lifecycle;
// a log source end to end (the test-only `filelog`): cursor, events, a rejected cursor in READ
mod log_feed;
// the official OpenWhisk JavaScript client (npm `openwhisk`) against the emulator
mod official_client;
// private TLS: S3 stores and API hosts behind a self-made CA
mod private_tls;
// scale, resume, recovery, throttling, secret scan and S3 request counts ("Prove it")
mod proof;
// the source registry: feed, poll, README and manifest serve and name every registered source
mod registry;
// the action runtime driven through the real actionloop, blackbox and CLI protocols
mod runtime;
// the S3 client against moto (SigV4 verified) and s3s-fs
mod s3_client;
// S3 push registration at moto (AWS: S3 + SNS) and Ceph/MinIO dialect proxies
mod s3_registration;
// the S3 feed end to end: real binaries, emulator, real S3 servers, injected faults
mod s3_feed;
// secrets never leak through any error path, whatever a server echoes
mod secrets;
// the feed state where others can write it: forged outboxes, garbage, rollbacks, legacy feeds
mod state_trust;
// real S3 stores: conditional-write dialects, stores refusing writes, stale leases
mod stores;
// AWS S3 push through SNS: signed envelopes, certificates over HTTPS, confirmations
mod sns;
// S3 push with a reconcile: lost notifications fired by the next poll, pushed ones not again
mod reconcile;
// the local sandbox (deploy/sandbox.sh) shows created, updated and deleted events
mod sandbox;
// one namespace at OpenWhisk's default quotas: hundreds of idle and dozens of busy S3 triggers
mod quota;
// the namespace scheduler: moving feeds made before it, connection mode on one activation,
// fan-out, one tick at a time, late ticks, the namespace's budget and READ's picture of it
mod scheduler;
// manifest.yaml and deploy scripts agree with the workspace
mod shipping;
// ARCHITECTURE's claims a test can check: the patterns name no feature, every registry is complete
mod tidy;
