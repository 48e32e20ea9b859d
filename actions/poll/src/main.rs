//! `poll`: one poll of a polling feed, invoked by the feed's helper rule on each alarm.
//! With `-p dryRun true` (CLI mode) it only shows what a poll would fire.

use owfeed::sources::REGISTRY;

fn main() {
    owfeed::runtime::main(|ctx, params| {
        if params.bool("dryRun")?.unwrap_or(false) {
            owfeed::polling::dry_run(params, REGISTRY)
        } else {
            owfeed::polling::poll(ctx, params, REGISTRY)
        }
    })
}
