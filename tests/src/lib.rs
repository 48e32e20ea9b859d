//! Test support for the integration suite (`tests/suite`): servers started on 127.0.0.1 by the
//! tests themselves, the actionloop driver, the test-only `listing` source and the test-only
//! `filelog` log source.

pub mod actionloop;
pub mod ceph;
pub mod couchproxy;
pub mod emulator_support;
pub mod fake_github;
pub mod fake_subscriptions;
pub mod file_log_source;
pub mod gen_source;
pub mod kafka;
pub mod kafkaproxy;
pub mod listing_source;
pub mod moto;
pub mod pouchdb;
pub mod rigs;
pub mod s3dialect;
pub mod s3proxy;
pub mod s3rver;
pub mod s3sfs;
pub mod sns;
pub mod tls;
pub mod tools;
pub mod webserver;
pub mod world;
