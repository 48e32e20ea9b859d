//! Fixture: the feed action and the poll action for the test-only `filelog` log source, in one
//! binary (deployed twice): an activation with `lifecycleEvent` is a feed call, any other a poll.

use feed_tests::file_log_source::FileLogSource;
use owfeed::lifecycle::handle;
use owfeed::polling::PollingFeed;
use owfeed::source::AnySource;

fn main() {
    owfeed::runtime::main(|ctx, params| {
        if params.has("lifecycleEvent") {
            handle(&PollingFeed::log(&FileLogSource), ctx, params)
        } else {
            owfeed::polling::poll(ctx, params, &[AnySource::Log(&FileLogSource)])
        }
    })
}
