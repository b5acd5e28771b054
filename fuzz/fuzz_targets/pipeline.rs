//! Fuzz target `pipeline`: arbitrary frames through one long-lived pipeline with
//! the fixtures' services (NAT, DR, TUN, UDP), so connections accumulate and
//! later inputs meet them. See tests/fuzz_harness/mod.rs.
#![no_main]

#[path = "../../tests/fixtures/mod.rs"]
mod fixtures;
#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

use std::cell::RefCell;

thread_local! {
    static STATE: RefCell<(appliance::pipeline::Pipeline, u64)> = RefCell::new((fixtures::pipeline(), 1_000));
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    STATE.with(|s| {
        let (p, now) = &mut *s.borrow_mut();
        harness::pipeline(p, now, data);
    })
});
