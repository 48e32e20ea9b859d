//! Fixture: a feed action for the test-only `listing` source (lifecycle tests).

use feed_tests::listing_source::ListingSource;
use owfeed::lifecycle::handle;
use owfeed::polling::PollingFeed;

fn main() {
    owfeed::runtime::main(|ctx, params| handle(&PollingFeed::new(&ListingSource), ctx, params))
}
