//! Announcing VIPs to a routing daemon beside rvsd (BIRD, FRR): a director of an
//! ECMP cluster holds each VIP as a host address (/32, /128) on its kernel
//! interface while the VIP's services are healthy; the routing daemon exports the
//! interface's host routes over BGP. A VIP whose service loses its quorum is
//! withdrawn; when rvsd stops, its kernel interface and the addresses on it go,
//! and the route with them. DPDK-free: `wanted` says what to hold, `Announcer`
//! what to change; the daemon runs `ip` for it.

use super::model::Model;
use super::protocol::ServiceKey;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The VIPs to hold: every virtual address of the model's services whose every
/// service holds its quorum (a VIP one of whose services cannot be served is left
/// to the directors that can serve them all). Firewall-mark services have no address.
pub fn wanted(model: &Model, quorum_lost: &[ServiceKey]) -> BTreeSet<IpAddr> {
    let all: BTreeSet<IpAddr> = model.services.iter().filter_map(|(s, _)| s.service.ip()).collect();
    let failing: BTreeSet<IpAddr> = quorum_lost.iter().filter_map(ServiceKey::ip).collect();
    all.difference(&failing).copied().collect()
}

/// What the kernel interface holds now, and the `ip` command lines that change it.
#[derive(Debug, Default)]
pub struct Announcer {
    pub ifname: String,
    pub held: BTreeSet<IpAddr>,
}

/// One change: add (announce) or delete (withdraw) `addr` on the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub announce: bool,
    pub addr: IpAddr,
}

impl Step {
    /// The `ip` arguments for it (`ip addr add 198.18.0.10/32 dev k0`; IPv6 without
    /// duplicate address detection: the data plane answers for it on the wire).
    pub fn args(&self, ifname: &str) -> Vec<String> {
        let verb = if self.announce { "add" } else { "del" };
        let mut v: Vec<String> = match self.addr {
            IpAddr::V4(a) => vec!["addr".into(), verb.into(), format!("{a}/32")],
            IpAddr::V6(a) => vec!["-6".into(), "addr".into(), verb.into(), format!("{a}/128")],
        };
        v.extend(["dev".to_string(), ifname.to_string()]);
        if self.announce && self.addr.is_ipv6() {
            v.push("nodad".into());
        }
        v
    }
}

impl Announcer {
    pub fn new(ifname: &str) -> Announcer {
        Announcer { ifname: ifname.to_string(), held: BTreeSet::new() }
    }

    /// The steps from what is held to `want`: withdrawals first.
    pub fn steps(&self, want: &BTreeSet<IpAddr>) -> Vec<Step> {
        let del = self.held.difference(want).map(|a| Step { announce: false, addr: *a });
        let add = want.difference(&self.held).map(|a| Step { announce: true, addr: *a });
        del.chain(add).collect()
    }

    /// `step` was carried out.
    pub fn done(&mut self, step: &Step) {
        if step.announce {
            self.held.insert(step.addr);
        } else {
            self.held.remove(&step.addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{Change, DestSpec, ServiceSpec};
    use crate::ipvs::dest::FwdMethod;
    use crate::ipvs::Protocol;

    fn model() -> Model {
        let mut m = Model::default();
        for (addr, port) in [("198.18.0.10", 80), ("198.18.0.10", 443), ("198.18.0.20", 80), ("2001:2::10", 80)] {
            let service = ServiceKey::of_ip(Protocol::Tcp, addr.parse().unwrap(), port);
            let spec = ServiceSpec {
                service,
                scheduler: "mh".into(),
                flags: vec![],
                persistent: None,
                netmask: None,
                prefix6: None,
            };
            m.apply(&Change::AddService(spec)).unwrap();
            let rs: IpAddr =
                if addr.contains(':') { "2001:2::11".parse().unwrap() } else { "198.18.1.11".parse().unwrap() };
            let d = DestSpec { service, addr: rs, port, forward: FwdMethod::Route, weight: 1, upper: 0, lower: 0 };
            m.apply(&Change::AddDest(d)).unwrap();
        }
        m.apply(&Change::AddService(ServiceSpec {
            service: ServiceKey::Fwmark(1),
            scheduler: "rr".into(),
            flags: vec![],
            persistent: None,
            netmask: None,
            prefix6: None,
        }))
        .unwrap();
        m
    }

    fn ips(v: &[&str]) -> BTreeSet<IpAddr> {
        v.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_vip_is_held_while_every_service_on_it_holds_its_quorum() {
        let m = model();
        assert_eq!(wanted(&m, &[]), ips(&["198.18.0.10", "198.18.0.20", "2001:2::10"]));
        let https = ServiceKey::of_ip(Protocol::Tcp, "198.18.0.10".parse().unwrap(), 443);
        assert_eq!(wanted(&m, &[https]), ips(&["198.18.0.20", "2001:2::10"]), "one service down: the VIP goes");
        assert_eq!(wanted(&m, &[ServiceKey::Fwmark(1)]), ips(&["198.18.0.10", "198.18.0.20", "2001:2::10"]));
    }

    #[test]
    fn steps_withdraw_first_and_follow_what_was_done() {
        let mut a = Announcer::new("k0");
        let want = ips(&["198.18.0.10", "2001:2::10"]);
        let steps = a.steps(&want);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].args("k0"), ["addr", "add", "198.18.0.10/32", "dev", "k0"]);
        assert_eq!(steps[1].args("k0"), ["-6", "addr", "add", "2001:2::10/128", "dev", "k0", "nodad"]);
        for s in &steps {
            a.done(s);
        }
        assert!(a.steps(&want).is_empty(), "nothing to change");
        let steps = a.steps(&ips(&["198.18.0.20", "2001:2::10"]));
        assert_eq!(steps[0], Step { announce: false, addr: "198.18.0.10".parse().unwrap() });
        assert_eq!(steps[1], Step { announce: true, addr: "198.18.0.20".parse().unwrap() });
        assert_eq!(steps[0].args("k0"), ["addr", "del", "198.18.0.10/32", "dev", "k0"]);
    }
}
