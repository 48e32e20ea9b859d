//! Fixture: the poll action for the test-only `listing` source.

use feed_tests::listing_source::ListingSource;

fn main() {
    owfeed::runtime::main(|ctx, params| {
        owfeed::polling::poll(ctx, params, &[owfeed::source::AnySource::Snapshot(&ListingSource)])
    })
}
