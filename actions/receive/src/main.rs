//! `receive`: the hooks receiver, a raw-HTTP web action reached through a trigger's
//! `{trigger}.owfeed-hook` binding; verifies each delivery and fires the trigger.

fn main() {
    owfeed::runtime::main(owfeed::hooks::receiver::receive)
}
