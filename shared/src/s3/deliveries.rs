//! The S3 feature's deliveries in the hooks pattern ([`crate::hooks::extension::Deliveries`]):
//! bucket notifications posted with the hook's token (Ceph, MinIO) are mapped by `push`; SNS
//! messages (AWS), which are signed instead, are verified by `sns` and then mapped the same way.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::push::{self, PushSettings};
use super::sns::{self, SnsTrust};
use crate::hooks::extension::{Deliveries, Mapping, Verified};
use crate::hooks::{HookConfig, HookRequest, HookResponse, Outcome};
use crate::params::{ParamError, Params};

/// S3 notifications for the hooks pattern, trusting the SNS hosts `trust` names.
pub struct S3Deliveries {
    trust: SnsTrust,
}

impl S3Deliveries {
    /// What the shipped receiver uses: SNS messages are trusted from AWS's SNS hosts only.
    pub const AWS: S3Deliveries = S3Deliveries { trust: SnsTrust::AWS };

    /// Trusting `trust` instead (only the test fixture `sns-test-receive`: see `sns`).
    pub fn trusting(trust: SnsTrust) -> S3Deliveries {
        S3Deliveries { trust }
    }
}

impl Deliveries for S3Deliveries {
    fn mapping(&self, params: &Params) -> Result<Arc<dyn Mapping>, ParamError> {
        if !crate::hooks::filters_from_params(params)?.is_empty() {
            return Err(ParamError::invalid(
                "filters",
                "no subscription filters with source s3 (use prefix, suffix and events, as the S3 feed does)",
                params.raw("filters").unwrap_or(&Value::Null),
            ));
        }
        Ok(Arc::new(S3Mapping { settings: PushSettings::from_params(params)?, trust: self.trust.clone() }))
    }
}

/// One S3 hook's mapping: its push settings and the SNS hosts it trusts.
#[derive(Debug)]
struct S3Mapping {
    settings: PushSettings,
    trust: SnsTrust,
}

impl Mapping for S3Mapping {
    fn map(&self, config: &HookConfig, body: &[u8]) -> Outcome {
        match serde_json::from_slice::<Value>(body) {
            Ok(body) => push::outcome(config, &self.settings, &body),
            Err(_) => Outcome::Respond(HookResponse::bad_request(
                "S3 notification: the body is not JSON (expected {\"Records\": [...]})",
            )),
        }
    }

    fn verifies_itself(&self, req: &HookRequest) -> bool {
        self.settings.provider.capabilities().via_sns && sns::is_sns_request(req)
    }

    fn verify(&self, config: &HookConfig, params: &Params, req: &HookRequest) -> (Outcome, Option<Verified>) {
        sns::receive(config, &self.settings, params, req, &self.trust)
    }

    fn producer_wait(&self) -> Option<Duration> {
        Some(sns::SNS_WAIT)
    }
}
