//! `changes`: the S3 bucket-changes feed action (CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE).

use owfeed::lifecycle::handle;
use owfeed::polling::PollingFeed;
use owfeed::sources::s3::S3Source;

fn main() {
    owfeed::runtime::main(|ctx, params| handle(&PollingFeed::new(&S3Source), ctx, params))
}
