//! Fixture: a feed action for the test-only `listing` source (lifecycle tests), with the
//! registry's named store (S3's `stateBucket`) as the shipped feed has it.

use feed_tests::listing_source::ListingSource;
use owfeed::lifecycle::handle;
use owfeed::polling::extensions::Extensions;
use owfeed::polling::PollingFeed;
use owfeed::registry::POLLING;
use owfeed::source::AnySource;

fn main() {
    let ext = Extensions { sources: &[AnySource::Snapshot(&ListingSource)], ..POLLING };
    owfeed::runtime::main(|ctx, params| handle(&PollingFeed::with(ext), ctx, params))
}
