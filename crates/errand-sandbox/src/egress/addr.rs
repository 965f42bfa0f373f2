//! Which addresses the proxy may connect to.
//!
//! The proxy runs on the host, so an address that is harmless on the internet can be dangerous
//! from here: the host's own services on loopback, the LAN, the cloud metadata service on
//! 169.254.169.254, a carrier's shared space. Anything that is not a globally routable unicast
//! address is refused unless the policy says `allow_private`. The ranges follow the IANA
//! special-purpose registries (RFC 6890 and its updates); the same idea as codex's
//! `network-proxy` ("local/private networking is rejected", README) and the address checks of
//! most SSRF filters. Addresses that *embed* an IPv4 address (IPv4-mapped, NAT64, 6to4) are
//! judged by the address they embed, so `::ffff:127.0.0.1` is loopback, not "some IPv6 host".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address an IP is, as far as egress is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// A globally routable unicast address: the only kind allowed by default.
    Public,
    /// `0.0.0.0/8`, `::`: "this host" to most stacks.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and IPv6 unique local `fc00::/7`.
    Private,
    /// `169.254.0.0/16` (cloud metadata lives here), `fe80::/10`, deprecated `fec0::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64.0.0/10` (RFC 6598).
    SharedCgnat,
    /// `224.0.0.0/4`, `255.255.255.255`, `ff00::/8`.
    Multicast,
    /// Documentation, benchmarking, protocol-assignment and reserved ranges, and IPv6 forms
    /// (IPv4-compatible, Teredo) that hide their real destination.
    Reserved,
}

impl AddressClass {
    /// Words for the refusal message.
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::SharedCgnat => "carrier-grade NAT (100.64.0.0/10)",
            AddressClass::Multicast => "multicast or broadcast",
            AddressClass::Reserved => "reserved or special-purpose",
        }
    }
}

/// Classifies `ip`.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => AddressClass::Unspecified,
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) => AddressClass::Private,
        (169, 254, _) => AddressClass::LinkLocal,
        (100, 64..=127, _) => AddressClass::SharedCgnat,
        (224..=239, _, _) => AddressClass::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => AddressClass::Multicast,
        (240..=255, _, _) => AddressClass::Reserved,
        // IETF protocol assignments (192.0.0.0/24), documentation (TEST-NET-1/2/3),
        // benchmarking (198.18.0.0/15), the 6to4 relay anycast (192.88.99.0/24).
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (192, 88, 99) => {
            AddressClass::Reserved
        }
        (198, 18..=19, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    let segments = ip.segments();
    let octets = ip.octets();
    let embedded = |from: usize| {
        Ipv4Addr::new(octets[from], octets[from + 1], octets[from + 2], octets[from + 3])
    };
    // ::ffff:a.b.c.d (IPv4-mapped): the stack connects to the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // 64:ff9b::/96 (NAT64, RFC 6052): a NAT64 gateway forwards to the embedded IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded(12));
    }
    // 2002::/16 (6to4): the embedded address is the tunnel's IPv4 end point.
    if segments[0] == 0x2002 {
        return classify_v4(embedded(2));
    }
    match segments[0] {
        // ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291) and everything else in ::/8.
        0x0000..=0x00ff => AddressClass::Reserved,
        0xfc00..=0xfdff => AddressClass::Private,
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        // Site-local, deprecated (RFC 3879) but still routed privately by some networks.
        0xfec0..=0xfeff => AddressClass::LinkLocal,
        0xff00..=0xffff => AddressClass::Multicast,
        // 2001::/32 Teredo hides its IPv4 end point; 2001:db8::/32 is documentation;
        // 2001:2::/48 benchmarking; 2001:10::/28 ORCHID.
        0x2001 if segments[1] == 0 || segments[1] == 0x0db8 || segments[1] == 2 => {
            AddressClass::Reserved
        }
        0x2001 if (0x10..=0x1f).contains(&segments[1]) => AddressClass::Reserved,
        // 100::/64 discard-only.
        0x0100 if segments[1..4] == [0, 0, 0] => AddressClass::Reserved,
        // Global unicast is 2000::/3; anything else is unassigned.
        0x2000..=0x3fff => AddressClass::Public,
        _ => AddressClass::Reserved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        use AddressClass::*;
        let cases: &[(&str, AddressClass)] = &[
            ("93.184.216.34", Public),
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("172.15.255.255", Public),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("100.63.255.255", Public),
            ("100.128.0.0", Public),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Multicast),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Reserved),
            ("198.18.0.1", Reserved),
            ("203.0.113.9", Reserved),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", LinkLocal),
            ("ff02::1", Multicast),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:100.64.0.1", SharedCgnat),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:93.184.216.34", Public),
            ("::127.0.0.1", Reserved),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::5db8:d822", Public),
            ("2002:7f00:1::", Loopback),
            ("2002:c0a8:101::1", Private),
            ("2001::1", Reserved),
            ("2001:db8::1", Reserved),
            ("2606:2800:220:1:248:1893:25c8:1946", Public),
            ("2a00:1450:4001:80b::200e", Public),
            ("4000::1", Reserved),
        ];
        for (text, want) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), *want, "{text}");
        }
    }
}
