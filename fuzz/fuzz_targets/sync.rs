//! Fuzz target `sync`: see tests/fuzz_harness/mod.rs.
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

use std::sync::Mutex;

static STATE: Mutex<Option<(appliance::ipvs::director::Director, u32)>> = Mutex::new(None);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let (d, now) = g.get_or_insert_with(|| (harness::sync_director(), 1));
    harness::sync(d, now, data);
});
