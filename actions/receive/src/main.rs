//! `receive`: the hooks receiver, a raw-HTTP web action reached through a trigger's
//! `{trigger}.owfeed-hook` binding; verifies each delivery and fires the trigger.

use owfeed::registry::RECEIVE_SOURCES;

fn main() {
    owfeed::runtime::main(|ctx, params| owfeed::hooks::receiver::receive(ctx, params, RECEIVE_SOURCES))
}
