//! Fixture: the `receive` web action for the SNS tests. The same handler as the shipped
//! action (`owfeed::hooks::receiver::receive_with`), except that it also trusts the local
//! HTTPS host standing in for SNS, named by the parameters `snsTestHost` (`127.0.0.1:PORT`)
//! and `snsTestCa` (its CA, PEM). Only this test binary reads them: the shipped `receive`
//! passes `SnsTrust::aws()`, and no release zip contains this binary.

use owfeed::hooks::receiver::receive_with;
use owfeed::runtime::ActionError;
use owfeed::s3::sns::SnsTrust;

fn main() {
    owfeed::runtime::main(|ctx, params| {
        let text = |name: &str| params.str(name).ok().flatten();
        let trust = match (text("snsTestHost"), text("snsTestCa")) {
            (Some(host), Some(ca)) => SnsTrust::with_test_host(&host, &ca).map_err(ActionError::new)?,
            _ => SnsTrust::aws(),
        };
        receive_with(ctx, params, &trust)
    })
}
