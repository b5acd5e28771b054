//! The sync datagram fixtures (tests/fixtures/sync.rs) through `ipvs::sync::parse`:
//! each good entry kept, each fault told by its own reason.

#[path = "fixtures/sync.rs"]
mod fixtures;

use appliance::ipvs::sync::{parse, Fault, Parsed};

#[test]
fn every_datagram_parses_as_the_kernel_would() {
    let mut seen = std::collections::BTreeSet::new();
    for c in fixtures::cases() {
        let mut p = Parsed::default();
        parse(&c.datagram, c.syncid, &mut p);
        let faults: Vec<&str> = p.faults.iter().map(|f| f.label()).collect();
        assert_eq!((p.entries.len(), faults.clone()), (c.entries, c.faults.clone()), "{}", c.name);
        seen.extend(faults);
    }
    for f in Fault::ALL {
        assert!(seen.contains(f.label()), "no fixture for {}", f.label());
    }
}
