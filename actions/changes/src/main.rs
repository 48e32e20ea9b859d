//! `changes`: the polling feed action (CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE) for every
//! registered source, picked with `-p source NAME` (default `s3`).

use owfeed::lifecycle::handle;
use owfeed::polling::PollingFeed;
use owfeed::registry::POLLING;

fn main() {
    owfeed::runtime::main(|ctx, params| handle(&PollingFeed::with(POLLING), ctx, params))
}
