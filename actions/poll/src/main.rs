//! `poll`: one poll of a polling feed, invoked by the feed's helper rule on each alarm.
//! With `-p dryRun true` (CLI mode) it only shows what a poll would fire.

use owfeed::registry::POLLING;

fn main() {
    owfeed::runtime::main(|ctx, params| {
        if params.bool("dryRun")?.unwrap_or(false) {
            owfeed::polling::dry_run(params, POLLING)
        } else {
            owfeed::polling::poll(ctx, params, POLLING)
        }
    })
}
