//! Fixture: the feed action and the poll action for the test-only `filelog` log source, in one
//! binary (deployed twice): an activation with `lifecycleEvent` is a feed call, any other a poll.
//! With the registry's named store, as the shipped actions have it.

use feed_tests::file_log_source::FileLogSource;
use owfeed::lifecycle::handle;
use owfeed::polling::extensions::Extensions;
use owfeed::polling::PollingFeed;
use owfeed::registry::POLLING;
use owfeed::source::AnySource;

fn main() {
    let ext = Extensions { sources: &[AnySource::Log(&FileLogSource)], ..POLLING };
    owfeed::runtime::main(|ctx, params| {
        if params.has("lifecycleEvent") {
            handle(&PollingFeed::with(ext), ctx, params)
        } else {
            owfeed::polling::poll(ctx, params, ext)
        }
    })
}
