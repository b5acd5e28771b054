//! The firewall-mark classifier: ordered rules standing in for the iptables and
//! ip6tables mangle rules of the LVS tutorials (`-j MARK --set-mark N`). Each rule
//! matches on destination and source prefix, protocol, destination port range and
//! source MAC (possibly negated: "not from the other director"); as with iptables'
//! non-terminal MARK target, the last matching rule's mark wins. IPv4 and IPv6
//! packets have rule lists of their own, as iptables and ip6tables have tables of
//! their own.

use super::Protocol;
use crate::net::ethernet::EthernetAddress;
use crate::net::ipv4::Ipv4Cidr;
use crate::net::ipv6::Ipv6Cidr;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An address prefix of one family, as a rule matches it.
pub trait Prefix: Copy + PartialEq + Eq + std::fmt::Debug {
    type Addr: Copy + PartialEq + Eq + std::fmt::Debug;
    fn covers(&self, a: Self::Addr) -> bool;
}

impl Prefix for Ipv4Cidr {
    type Addr = Ipv4Addr;
    #[inline]
    fn covers(&self, a: Ipv4Addr) -> bool {
        self.contains(a)
    }
}

impl Prefix for Ipv6Cidr {
    type Addr = Ipv6Addr;
    #[inline]
    fn covers(&self, a: Ipv6Addr) -> bool {
        self.contains(a)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule<C: Prefix = Ipv4Cidr> {
    pub dst: Option<C>,
    pub src: Option<C>,
    pub proto: Option<Protocol>,
    /// Inclusive destination port range.
    pub dports: Option<(u16, u16)>,
    /// Inclusive source port range.
    pub sports: Option<(u16, u16)>,
    /// Source MAC, and whether the match is negated (`! --mac-source`).
    pub src_mac: Option<(EthernetAddress, bool)>,
    pub mark: u32,
}

impl<C: Prefix> Rule<C> {
    /// A rule that matches everything and sets `mark`; narrow it with the fields.
    pub fn mark(mark: u32) -> Rule<C> {
        Rule { dst: None, src: None, proto: None, dports: None, sports: None, src_mac: None, mark }
    }

    /// The same matches on no address, for the other family (a rule without
    /// addresses marks packets of both).
    pub fn without_addresses<D: Prefix>(&self) -> Rule<D> {
        Rule {
            dst: None,
            src: None,
            proto: self.proto,
            dports: self.dports,
            sports: self.sports,
            src_mac: self.src_mac,
            mark: self.mark,
        }
    }
}

/// What the classifier looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<A = Ipv4Addr> {
    pub src_mac: EthernetAddress,
    pub proto: u8,
    pub src: A,
    pub dst: A,
    /// 0 for protocols without ports.
    pub dport: u16,
    pub sport: u16,
}

impl<C: Prefix> Rule<C> {
    #[inline]
    pub fn matches(&self, p: &Packet<C::Addr>) -> bool {
        self.dst.is_none_or(|c| c.covers(p.dst))
            && self.src.is_none_or(|c| c.covers(p.src))
            && self.proto.is_none_or(|pr| pr.number() == p.proto)
            && self
                .dports
                .is_none_or(|(lo, hi)| (lo..=hi).contains(&p.dport) && Protocol::from_number(p.proto).is_some())
            && self
                .sports
                .is_none_or(|(lo, hi)| (lo..=hi).contains(&p.sport) && Protocol::from_number(p.proto).is_some())
            && self.src_mac.is_none_or(|(m, negate)| (m == p.src_mac) != negate)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classifier {
    rules: Vec<Rule>,
    rules6: Vec<Rule<Ipv6Cidr>>,
}

impl Classifier {
    /// IPv4 rules only.
    pub fn new(rules: Vec<Rule>) -> Classifier {
        Classifier { rules, rules6: Vec::new() }
    }

    /// Rules for IPv4 packets and rules for IPv6 packets.
    pub fn both(rules: Vec<Rule>, rules6: Vec<Rule<Ipv6Cidr>>) -> Classifier {
        Classifier { rules, rules6 }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rules6(&self) -> &[Rule<Ipv6Cidr>] {
        &self.rules6
    }

    /// No IPv4 rules: IPv4 packets need not be classified.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// No IPv6 rules.
    pub fn is_empty6(&self) -> bool {
        self.rules6.is_empty()
    }

    /// The IPv4 packet's mark (0: unmarked).
    #[inline]
    pub fn classify(&self, p: &Packet) -> u32 {
        self.rules.iter().rev().find(|r| r.matches(p)).map_or(0, |r| r.mark)
    }

    /// The IPv6 packet's mark (0: unmarked).
    pub fn classify6(&self, p: &Packet<Ipv6Addr>) -> u32 {
        self.rules6.iter().rev().find(|r| r.matches(p)).map_or(0, |r| r.mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const OTHER_DIRECTOR: EthernetAddress = EthernetAddress([0x02, 0xd1, 0, 0, 0, 2]);

    fn pkt(proto: u8, dport: u16) -> Packet {
        Packet {
            src_mac: EthernetAddress([2, 0xc1, 0, 0, 0, 1]),
            proto,
            src: Ipv4Addr::new(198, 18, 0, 100),
            dst: VIP,
            dport,
            sport: 40000,
        }
    }

    #[test]
    fn source_ports_match_their_range() {
        let c = Classifier::new(vec![Rule { proto: Some(Protocol::Udp), sports: Some((1000, 2000)), ..Rule::mark(7) }]);
        assert_eq!(c.classify(&Packet { sport: 1000, ..pkt(17, 53) }), 7);
        assert_eq!(c.classify(&Packet { sport: 2001, ..pkt(17, 53) }), 0);
        assert_eq!(c.classify(&Packet { sport: 1500, ..pkt(6, 53) }), 0, "udp only");
    }

    fn vip() -> Option<Ipv4Cidr> {
        Some(Ipv4Cidr::new(VIP, 32).unwrap())
    }

    #[test]
    fn http_and_https_share_a_mark() {
        // iptables -t mangle -A PREROUTING -d VIP -p tcp --dport 80  -j MARK --set-mark 1
        // iptables -t mangle -A PREROUTING -d VIP -p tcp --dport 443 -j MARK --set-mark 1
        let c = Classifier::new(vec![
            Rule { dst: vip(), proto: Some(Protocol::Tcp), dports: Some((80, 80)), ..Rule::mark(1) },
            Rule { dst: vip(), proto: Some(Protocol::Tcp), dports: Some((443, 443)), ..Rule::mark(1) },
        ]);
        assert_eq!(c.classify(&pkt(6, 80)), 1);
        assert_eq!(c.classify(&pkt(6, 443)), 1);
        assert_eq!(c.classify(&pkt(6, 8080)), 0);
        assert_eq!(c.classify(&pkt(17, 80)), 0, "udp not marked");
        assert_eq!(c.classify(&Packet { dst: Ipv4Addr::new(198, 18, 0, 11), ..pkt(6, 80) }), 0);
    }

    #[test]
    fn passive_ftp_control_and_data_ports() {
        let c = Classifier::new(vec![
            Rule { dst: vip(), proto: Some(Protocol::Tcp), dports: Some((21, 21)), ..Rule::mark(21) },
            Rule { dst: vip(), proto: Some(Protocol::Tcp), dports: Some((10000, 20000)), ..Rule::mark(21) },
        ]);
        for (port, mark) in [(21, 21), (10000, 21), (15000, 21), (20000, 21), (20001, 0), (9999, 0), (22, 0)] {
            assert_eq!(c.classify(&pkt(6, port)), mark, "port {port}");
        }
    }

    #[test]
    fn not_from_the_other_directors_mac() {
        let c = Classifier::new(vec![Rule { dst: vip(), src_mac: Some((OTHER_DIRECTOR, true)), ..Rule::mark(1) }]);
        assert_eq!(c.classify(&pkt(6, 80)), 1);
        assert_eq!(c.classify(&Packet { src_mac: OTHER_DIRECTOR, ..pkt(6, 80) }), 0);
        let only = Classifier::new(vec![Rule { src_mac: Some((OTHER_DIRECTOR, false)), ..Rule::mark(7) }]);
        assert_eq!(only.classify(&Packet { src_mac: OTHER_DIRECTOR, ..pkt(6, 80) }), 7);
        assert_eq!(only.classify(&pkt(6, 80)), 0);
    }

    #[test]
    fn source_prefix_and_last_match_wins() {
        let c = Classifier::new(vec![
            Rule { dst: vip(), ..Rule::mark(1) },
            Rule { src: Some("198.18.0.0/25".parse().unwrap()), ..Rule::mark(2) },
        ]);
        assert_eq!(c.classify(&pkt(6, 80)), 2, "later rule overrides, as iptables MARK does");
        assert_eq!(c.classify(&Packet { src: Ipv4Addr::new(198, 18, 0, 200), ..pkt(6, 80) }), 1);
        assert_eq!(c.classify(&pkt(1, 0)), 2, "no port match needed");
        let ports = Classifier::new(vec![Rule { dports: Some((0, 65535)), ..Rule::mark(3) }]);
        assert_eq!(ports.classify(&pkt(1, 0)), 0, "a port match needs a protocol with ports");
    }

    #[test]
    fn ipv6_rules_mark_ipv6_packets_only() {
        // ip6tables -t mangle -A PREROUTING -d 2001:2::10 -p tcp --dport 80 -j MARK --set-mark 6
        let vip6: Ipv6Cidr = "2001:2::10/128".parse().unwrap();
        let c = Classifier::both(
            vec![Rule { dst: vip(), ..Rule::mark(4) }],
            vec![Rule { dst: Some(vip6), proto: Some(Protocol::Tcp), dports: Some((80, 80)), ..Rule::mark(6) }],
        );
        let p6 = |dst: &str, dport| Packet {
            src_mac: EthernetAddress([2, 0xc1, 0, 0, 0, 1]),
            proto: 6,
            src: "2001:2::100".parse().unwrap(),
            dst: dst.parse().unwrap(),
            dport,
            sport: 40000,
        };
        assert_eq!(c.classify6(&p6("2001:2::10", 80)), 6);
        assert_eq!(c.classify6(&p6("2001:2::10", 443)), 0);
        assert_eq!(c.classify6(&p6("2001:2::11", 80)), 0);
        assert_eq!(c.classify(&pkt(6, 80)), 4, "IPv4 packets see the IPv4 rules");
        let prefix =
            Classifier::both(vec![], vec![Rule { src: Some("2001:2::/64".parse().unwrap()), ..Rule::mark(9) }]);
        assert!(prefix.is_empty() && !prefix.is_empty6());
        assert_eq!(prefix.classify6(&p6("2001:2::10", 80)), 9);
        assert_eq!(prefix.classify6(&Packet { src: "2001:2:0:1::100".parse().unwrap(), ..p6("2001:2::10", 80) }), 0);
    }
}
