//! The registries: one list per extension kind, one line per feature, above the features and
//! the patterns they plug into (the action binaries name these lists, nothing else does).
//!
//! - [`crate::sources::REGISTRY`]: the polling feed's sources.
//! - [`HOOK_SOURCES`]: the hooks feed's sources, keyed by [`SourceKind`]: each with its
//!   registrar and the extension points it fills ([`HookSource`]).
//! - [`PUSH_PROVIDERS`]: the S3 push providers, each with its capabilities.
//! - [`CHANGE_HOOKS`]: the features with a say over a poll's changes before its commit.
//! - [`POLLING`]: what the polling pattern is given (sources, S3 as the named store, change hooks).
//!
//! tests/suite/registry.rs and the tests below check each list is complete.

use crate::github::GitHub;
use crate::hooks::extension::HookSource;
use crate::hooks::registrar::Unregistered;
use crate::hooks::SourceKind;
use crate::polling::change_hook::ChangeHooks;
use crate::polling::extensions::Extensions;
use crate::s3::deliveries::S3Deliveries;
use crate::s3::markers::ReconcileHooks;
use crate::s3::notify::S3Notifications;
use crate::s3::push::Provider;
use crate::s3::reconcile::{PushMarkers, Reconcile};
use crate::s3::source::NamedS3Store;
use crate::subscription::Subscriptions;

/// Every hook source the `hook` and `receive` actions serve, one line each.
const HOOKS: [HookSource<'static>; 4] = [
    HookSource { kind: SourceKind::GitHub, registrar: &GitHub, deliveries: None, companion: None, fired: None },
    HookSource {
        kind: SourceKind::Subscription,
        registrar: &Subscriptions,
        deliveries: None,
        companion: None,
        fired: None,
    },
    HookSource {
        kind: SourceKind::S3,
        registrar: &S3Notifications,
        deliveries: Some(&S3Deliveries::AWS),
        companion: Some(&Reconcile),
        fired: Some(&PushMarkers),
    },
    HookSource { kind: SourceKind::None, registrar: &Unregistered, deliveries: None, companion: None, fired: None },
];

/// The hook sources (the `hook` action's list).
pub const HOOK_SOURCES: &[HookSource<'static>] = &HOOKS;

/// The same lines without the companions' lifecycle, which the receiver never calls: the
/// `receive` binary then links none of it (the reconcile's polling feed is 0.22 MB of zip).
pub const RECEIVE_SOURCES: &[HookSource<'static>] = &without_companions(HOOKS);

const fn without_companions<const N: usize>(mut sources: [HookSource<'static>; N]) -> [HookSource<'static>; N] {
    let mut i = 0;
    while i < N {
        sources[i].companion = None;
        i += 1;
    }
    sources
}

/// [`RECEIVE_SOURCES`] with S3 deliveries of the caller's (the test fixture
/// `sns-test-receive`, which trusts a local SNS stand-in).
pub fn hook_sources_with(s3: &S3Deliveries) -> Vec<HookSource<'_>> {
    RECEIVE_SOURCES
        .iter()
        .map(|s| match s.kind {
            SourceKind::S3 => HookSource { deliveries: Some(s3), ..*s },
            _ => *s,
        })
        .collect()
}

/// Every S3 push provider (`-p provider`), one line each.
pub const PUSH_PROVIDERS: &[Provider] = &[Provider::Aws, Provider::Ceph, Provider::Minio];

/// Every change hook the poll action applies (each only to the feeds whose config asks).
pub const CHANGE_HOOKS: &[&dyn ChangeHooks] = &[&ReconcileHooks];

/// What the `changes` and `poll` actions give the polling pattern.
pub const POLLING: Extensions<'static> =
    Extensions { sources: crate::sources::REGISTRY, named_store: Some(&NamedS3Store), change_hooks: CHANGE_HOOKS };

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::hooks::feed::HooksFeed;
    use crate::params::Params;
    use crate::secret::REDACTED;

    /// The receiver's list is the hook sources line for line, less the companions' lifecycle.
    #[test]
    fn the_receivers_list_is_the_hook_sources_without_their_lifecycle() {
        assert_eq!(RECEIVE_SOURCES.len(), HOOK_SOURCES.len());
        for (r, h) in RECEIVE_SOURCES.iter().zip(HOOK_SOURCES) {
            assert_eq!((r.kind, r.registrar.name()), (h.kind, h.registrar.name()));
            assert_eq!((r.deliveries.is_some(), r.fired.is_some()), (h.deliveries.is_some(), h.fired.is_some()));
            assert!(r.companion.is_none(), "{:?}", r.kind);
        }
        assert!(HOOK_SOURCES.iter().any(|h| h.companion.is_some()), "S3's reconcile is a companion");
    }

    /// Each `SourceKind` has exactly one entry whose registrar answers to its name; adding a
    /// kind fails to compile in `every_kind` until it is listed there, and here until registered.
    #[test]
    fn every_hook_source_kind_is_registered_once() {
        fn every_kind(kind: SourceKind) -> SourceKind {
            match kind {
                SourceKind::GitHub | SourceKind::Subscription | SourceKind::S3 | SourceKind::None => kind,
            }
        }
        let kinds = [SourceKind::GitHub, SourceKind::Subscription, SourceKind::S3, SourceKind::None];
        for kind in kinds.map(every_kind) {
            let entries: Vec<_> = HOOK_SOURCES.iter().filter(|s| s.kind == kind).collect();
            assert_eq!(entries.len(), 1, "{kind:?}");
            assert_eq!(entries[0].registrar.name(), kind.as_str());
            assert_eq!(SourceKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HOOK_SOURCES.len(), kinds.len());
        for kind in kinds {
            assert!(SourceKind::ALL.contains(kind.as_str()), "{kind:?}");
        }
    }

    #[test]
    fn every_push_provider_is_registered_once() {
        for provider in PUSH_PROVIDERS {
            let caps = provider.capabilities();
            assert_eq!(Provider::parse(caps.name), Some(*provider));
            assert_eq!(PUSH_PROVIDERS.iter().filter(|p| *p == provider).count(), 1, "{}", caps.name);
            assert!(Provider::ALL.contains(caps.name), "{}", caps.name);
        }
        assert_eq!(Provider::EVERY.len(), PUSH_PROVIDERS.len());
    }

    #[test]
    fn validation_names_the_parameter() {
        let feed = HooksFeed::new(HOOK_SOURCES);
        let p = |v: Value| Params::from_value(v).unwrap();
        let param = |v: Value| match feed.validate(&p(v)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        assert!(feed.validate(&p(json!({"source": "none"}))).is_ok());
        assert_eq!(param(json!({})).details.unwrap()["parameter"], "source");
        assert_eq!(param(json!({"source": "gitlab"})).details.unwrap()["parameter"], "source");
        let err = param(json!({"source": "none", "secret": "short"}));
        assert!(!err.message.contains("short"), "{}", err.message);
        assert_eq!(err.details.unwrap()["parameter"], "secret");
        let err = param(json!({"source": "none", "filters": [{"sql": "a"}]}));
        assert_eq!(err.details.unwrap()["parameter"], "filters");
        let err = param(json!({"source": "github", "repository": "o/r"}));
        assert_eq!(err.details.unwrap()["parameter"], "accessToken");
        let err = param(json!({"source": "none", "maxBodyBytes": 0}));
        assert_eq!(err.details.unwrap()["parameter"], "maxBodyBytes");
        let s3 = json!({"source": "s3", "provider": "ceph", "endpoint": "http://rgw", "bucket": "b"});
        assert!(feed.validate(&p(s3.clone())).is_ok());
        let mut aws = s3.clone();
        aws["provider"] = json!("aws");
        assert_eq!(param(aws.clone()).details.unwrap()["parameter"], "accessKeyId");
        aws["accessKeyId"] = json!("AKID");
        aws["secretAccessKey"] = json!("secret-key");
        aws["topicArn"] = json!("arn:aws:s3:::b");
        assert_eq!(param(aws).details.unwrap()["parameter"], "topicArn");
        let mut minio = s3.clone();
        minio["provider"] = json!("minio");
        minio["accessKeyId"] = json!("AKID");
        minio["secretAccessKey"] = json!("secret-key");
        assert_eq!(param(minio.clone()).details.unwrap()["parameter"], "targetArn");
        minio["targetArn"] = json!("arn:aws:sqs:us-east-1:1:q");
        assert_eq!(param(minio.clone()).details.unwrap()["parameter"], "targetArn");
        minio["targetArn"] = json!("arn:minio:sqs::uploads:webhook");
        assert!(feed.validate(&p(minio)).is_ok());
        let mut no_bucket = s3;
        no_bucket.as_object_mut().unwrap().remove("bucket");
        assert_eq!(param(no_bucket).details.unwrap()["parameter"], "bucket");
    }

    #[test]
    fn read_redacts_every_secret() {
        let feed = HooksFeed::new(HOOK_SOURCES);
        let config =
            Params::from_value(json!({"secret": "s", "accessToken": "a", "managerToken": "m", "repository": "o/r"}))
                .unwrap();
        assert_eq!(
            feed.redact(&config),
            json!({"secret": REDACTED, "accessToken": REDACTED, "managerToken": REDACTED, "repository": "o/r"})
        );
    }
}
