//! Fixture: the feed action and the poll action for the test-only `generated` source, in one
//! binary (deployed twice): an activation with `lifecycleEvent` is a feed call, any other a poll.

use feed_tests::gen_source::GenSource;
use owfeed::lifecycle::handle;
use owfeed::polling::PollingFeed;

fn main() {
    owfeed::runtime::main(|ctx, params| {
        if params.has("lifecycleEvent") {
            handle(&PollingFeed::new(&GenSource), ctx, params)
        } else {
            owfeed::polling::poll(ctx, params, &[owfeed::source::AnySource::Snapshot(&GenSource)])
        }
    })
}
