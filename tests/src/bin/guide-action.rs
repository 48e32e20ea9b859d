//! Fixture: the feed action and the poll action for the plugin guide's example sources (`dir`
//! and `journal`, tests/src/guide/), in one binary (deployed twice): an activation with
//! `lifecycleEvent` is a feed call, any other a poll.

use feed_tests::guide::dir::DirSource;
use feed_tests::guide::journal::JournalSource;
use owfeed::lifecycle::handle;
use owfeed::polling::PollingFeed;
use owfeed::source::AnySource;

/// What a registry with the guide's two sources would hold.
const GUIDE: &[AnySource<'static>] = &[AnySource::Snapshot(&DirSource), AnySource::Log(&JournalSource)];

fn main() {
    owfeed::runtime::main(|ctx, params| {
        if params.has("lifecycleEvent") {
            handle(&PollingFeed::registry(GUIDE), ctx, params)
        } else {
            owfeed::polling::poll(ctx, params, GUIDE)
        }
    })
}
