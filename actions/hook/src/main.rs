//! `hook`: the hooks feed action (CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE): gives a trigger
//! a receiver endpoint and registers it with its producer (`registry::HOOK_SOURCES`).

use owfeed::hooks::feed::HooksFeed;
use owfeed::lifecycle::handle;
use owfeed::registry::HOOK_SOURCES;

fn main() {
    let feed = HooksFeed::new(HOOK_SOURCES);
    owfeed::runtime::main(|ctx, params| handle(&feed, ctx, params))
}
