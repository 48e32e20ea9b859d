//! Fixture: the poll action for the test-only `listing` source, with the registry's named
//! store and change hooks as the shipped poll has them.

use feed_tests::listing_source::ListingSource;
use owfeed::polling::extensions::Extensions;
use owfeed::registry::POLLING;
use owfeed::source::AnySource;

fn main() {
    let ext = Extensions { sources: &[AnySource::Snapshot(&ListingSource)], ..POLLING };
    owfeed::runtime::main(|ctx, params| owfeed::polling::poll(ctx, params, ext))
}
