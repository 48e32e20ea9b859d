//! Fixture: the `receive` web action for the SNS tests. The same handler as the shipped
//! action (`owfeed::hooks::receiver::receive` over `owfeed::registry::HOOK_SOURCES`), except
//! that its S3 deliveries also trust the local HTTPS host standing in for SNS, named by the
//! parameters `snsTestHost` (`127.0.0.1:PORT`) and `snsTestCa` (its CA, PEM). Only this test
//! binary reads them: the shipped `receive` uses `S3Deliveries::AWS`, and no release zip
//! contains this binary.

use owfeed::hooks::receiver::receive;
use owfeed::registry::hook_sources_with;
use owfeed::runtime::ActionError;
use owfeed::s3::deliveries::S3Deliveries;
use owfeed::s3::sns::SnsTrust;

fn main() {
    owfeed::runtime::main(|ctx, params| {
        let text = |name: &str| params.str(name).ok().flatten();
        let trust = match (text("snsTestHost"), text("snsTestCa")) {
            (Some(host), Some(ca)) => SnsTrust::with_test_host(&host, &ca).map_err(ActionError::new)?,
            _ => SnsTrust::aws(),
        };
        let s3 = S3Deliveries::trusting(trust);
        receive(ctx, params, &hook_sources_with(&s3))
    })
}
