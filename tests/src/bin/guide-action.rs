//! Fixture: the feed action and the poll action for the plugin guide's example sources (`dir`
//! and `journal`, tests/src/guide/), in one binary (deployed twice): an activation with
//! `lifecycleEvent` is a feed call, any other a poll.

use feed_tests::guide::dir::DirSource;
use feed_tests::guide::journal::JournalSource;
use owfeed::lifecycle::handle;
use owfeed::polling::extensions::Extensions;
use owfeed::polling::PollingFeed;
use owfeed::s3::source::NamedS3Store;
use owfeed::source::AnySource;

/// What a registry with the guide's two sources would hold.
const SOURCES: &[AnySource<'static>] = &[AnySource::Snapshot(&DirSource), AnySource::Log(&JournalSource)];

/// The guide's sources keep no state of their own: the user names a bucket (`stateBucket`), as
/// for every source of `owfeed::registry::POLLING`.
const GUIDE: Extensions<'static> = Extensions { sources: SOURCES, named_store: Some(&NamedS3Store), change_hooks: &[] };

fn main() {
    owfeed::runtime::main(|ctx, params| {
        if params.has("lifecycleEvent") {
            handle(&PollingFeed::with(GUIDE), ctx, params)
        } else {
            owfeed::polling::poll(ctx, params, GUIDE)
        }
    })
}
