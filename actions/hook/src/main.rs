//! `hook`: the hooks feed action (CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE): gives a trigger
//! a receiver endpoint and registers it with GitHub, a Subscriptions API manager, or nothing.

use owfeed::hooks::feed::HooksFeed;
use owfeed::lifecycle::handle;

fn main() {
    let feed = HooksFeed::new();
    owfeed::runtime::main(|ctx, params| handle(&feed, ctx, params))
}
