//! Egress policy: which destinations the agent may reach at all.
//!
//! Decisions are made on the *resolved* addresses: the proxy resolves a name once, checks
//! every address, and connects only to the addresses it checked (no DNS-rebinding window).
//! IPv4-mapped/compatible IPv6 forms are folded to IPv4 before checking, every other IPv6
//! form that wraps an IPv4 address (NAT64, 6to4, Teredo, SIIT, ISATAP) is judged by the
//! address it wraps as well ([`embedded_ipv4`]), and hosts written
//! as decimal, octal or hex IPv4 (`2130706433`, `0177.1`, `0x7f.1`) are parsed the way the
//! C resolver would, so no spelling of 127.0.0.1 slips through.
//!
//! Order: explicit `[[egress.rule]]` entries, first match wins; then the built-in denials
//! (cloud metadata always, loopback/link-local/private unless `allow_private`); then the
//! default (`allow`, or `deny` in allow-list mode).

use crate::detect::policy::host_matches;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressAction {
    Allow,
    Deny,
    /// Allowed, but tunnelled blind: no interception, no inspection.
    Bypass,
}

/// One `[[egress.rule]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    /// Host glob (`*.pastebin.com`, `api.example.com`).
    #[serde(default)]
    pub host: Option<String>,
    /// Address range, checked against every resolved address (`10.1.0.0/16`).
    #[serde(default)]
    pub cidr: Option<IpNet>,
    /// Ports the rule applies to; empty = all.
    #[serde(default)]
    pub ports: Vec<u16>,
    pub action: EgressAction,
    /// Force at least this action for any finding sent to this destination
    /// (e.g. `"block"` for paste sites).
    #[serde(default)]
    pub findings: Option<crate::detect::rules::Action>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// `allow`: everything not denied is reachable. `deny`: allow-list mode.
    #[serde(default = "default_allow")]
    pub default: EgressAction,
    /// Lift the default denial of loopback and private ranges (labs, tests). Metadata
    /// endpoints stay denied unless an explicit rule allows them.
    #[serde(default)]
    pub allow_private: bool,
    #[serde(default, rename = "rule")]
    pub rules: Vec<EgressRule>,
}

fn default_allow() -> EgressAction {
    EgressAction::Allow
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            default: EgressAction::Allow,
            allow_private: false,
            rules: Vec::new(),
        }
    }
}

/// Why a destination is refused (shown to the client in the 403 body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("destination {0} is denied by egress rule #{1}")]
    Rule(String, usize),
    #[error("destination {0} is a cloud metadata endpoint ({1})")]
    Metadata(String, &'static str),
    #[error("destination {0} is a loopback, link-local or private address, refused by default: pass --allow-private (config [egress] allow_private = true) or allow just it with an [[egress.rule]]")]
    Private(String),
    #[error("destination {0} is not on the allow list")]
    NotListed(String),
    #[error("destination {0} could not be resolved: {1}")]
    Unresolvable(String, String),
}

impl Denied {
    /// A short, stable phrase for the cause (the `reason` field of the log line and the
    /// `cause` of the audit record): never names the destination.
    pub fn cause(&self) -> &'static str {
        match self {
            Denied::Rule(..) => "egress rule",
            Denied::Metadata(..) => "metadata endpoint",
            Denied::Private(_) => "private address",
            Denied::NotListed(_) => "not allow-listed",
            Denied::Unresolvable(..) => "unresolvable",
        }
    }
}

/// What the proxy should do with an allowed destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowed {
    /// The checked addresses to connect to (never re-resolve).
    pub addrs: Vec<SocketAddr>,
    pub bypass: bool,
    /// Minimum action for findings on the way to this destination.
    pub findings: Option<crate::detect::rules::Action>,
}

/// Names of metadata services (checked before any lookup, whatever they resolve to).
const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
    "metadata.packet.net",
    "api.metadata.cloud.ibm.com",
];

/// Documented instance-metadata, credential and platform-agent endpoints.
const METADATA_V4: &[(Ipv4Addr, &str)] = &[
    // AWS, GCP, Azure IMDS, OpenStack, Huawei, Oracle, DigitalOcean, Hetzner, Linode,
    // Vultr, OVH, Exoscale, Yandex, IBM …: the one address most clouds share.
    (Ipv4Addr::new(169, 254, 169, 254), "instance metadata"),
    // AWS ECS task metadata / container credentials.
    (Ipv4Addr::new(169, 254, 170, 2), "AWS ECS credentials"),
    // AWS EKS Pod Identity agent.
    (Ipv4Addr::new(169, 254, 170, 23), "AWS EKS Pod Identity"),
    // Azure WireServer (platform agent; a public address, so not covered by the
    // private ranges).
    (Ipv4Addr::new(168, 63, 129, 16), "Azure WireServer"),
    // Alibaba Cloud ECS metadata.
    (Ipv4Addr::new(100, 100, 100, 200), "Alibaba Cloud metadata"),
    // Tencent Cloud CVM metadata (metadata.tencentyun.com).
    (Ipv4Addr::new(169, 254, 0, 23), "Tencent Cloud metadata"),
    // Oracle Cloud legacy metadata.
    (Ipv4Addr::new(192, 0, 0, 192), "Oracle Cloud metadata"),
    // Scaleway instance metadata.
    (Ipv4Addr::new(169, 254, 42, 42), "Scaleway metadata"),
];

const METADATA_V6: &[(Ipv6Addr, &str)] = &[
    // AWS IMDS over IPv6 (Nitro).
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        "AWS metadata (IPv6)",
    ),
    // AWS EKS Pod Identity over IPv6.
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
        "AWS EKS Pod Identity (IPv6)",
    ),
    // GCP metadata over IPv6.
    (
        Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),
        "GCP metadata (IPv6)",
    ),
    // Scaleway metadata over IPv6.
    (
        Ipv6Addr::new(0xfd00, 0x42, 0, 0, 0, 0, 0, 0x42),
        "Scaleway metadata (IPv6)",
    ),
];

fn metadata_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => METADATA_V4.iter().find(|(a, _)| *a == v4).map(|(_, n)| *n),
        IpAddr::V6(v6) => METADATA_V6.iter().find(|(a, _)| *a == v6).map(|(_, n)| *n),
    }
}

/// Loopback, link-local, private, CGNAT, unspecified, multicast, broadcast, and
/// documentation/benchmark/protocol-assignment ranges: nothing an agent needs to reach
/// on the internet.
fn private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // 100.64.0.0/10
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // 198.18.0.0/15
                || (o[0], o[1], o[2]) == (192, 0, 0) // 192.0.0.0/24 protocol assignments
                || (o[0], o[1], o[2]) == (192, 0, 2) // TEST-NET-1
                || (o[0], o[1], o[2]) == (198, 51, 100) // TEST-NET-2
                || (o[0], o[1], o[2]) == (203, 0, 113) // TEST-NET-3
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0], s[1]) == (0x2001, 0xdb8) // documentation 2001:db8::/32
                || s[..4] == [0x100, 0, 0, 0] // discard-only 100::/64
        }
    }
}

fn v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
}

/// Every IPv4 address an IPv6 address may carry, so a check cannot be dodged by
/// wrapping a denied IPv4 address: NAT64 (the well-known `64:ff9b::/96` and the
/// local-use `64:ff9b:1::/48`, read both at the /96 position and at the RFC 6052 /48
/// position), 6to4 (`2002::/16`), Teredo (`2001::/32`: server and de-obfuscated
/// client), SIIT (`::ffff:0:a.b.c.d`) and ISATAP interface identifiers. Mapped and
/// compatible forms are folded by [`canonical`] already.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let mut out = Vec::new();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        out.push(v4(s[6], s[7]));
    }
    if (s[0], s[1], s[2]) == (0x64, 0xff9b, 1) {
        // /96 inside the /48, and RFC 6052's /48 layout (bits 48..63, then 72..87).
        out.push(v4(s[6], s[7]));
        out.push(Ipv4Addr::new(
            (s[3] >> 8) as u8,
            s[3] as u8,
            s[4] as u8,
            (s[5] >> 8) as u8,
        ));
    }
    if s[0] == 0x2002 {
        out.push(v4(s[1], s[2]));
    }
    if (s[0], s[1]) == (0x2001, 0) {
        out.push(v4(s[2], s[3])); // Teredo server
        out.push(v4(!s[6], !s[7])); // Teredo client, obfuscated by XOR
    }
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        out.push(v4(s[6], s[7])); // SIIT IPv4-translated
    }
    if (s[4] & 0xfdff) == 0 && s[5] == 0x5efe {
        out.push(v4(s[6], s[7])); // ISATAP
    }
    out
}

/// Why `ip` (or an IPv4 address wrapped in it) is a metadata endpoint, if it is.
fn metadata_any(ip: IpAddr) -> Option<&'static str> {
    metadata_ip(ip).or_else(|| match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6)
            .into_iter()
            .find_map(|a| metadata_ip(IpAddr::V4(a))),
        IpAddr::V4(_) => None,
    })
}

/// Whether `ip` (or an IPv4 address wrapped in it) is in a private range.
fn private_any(ip: IpAddr) -> bool {
    private_ip(ip)
        || match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6)
                .into_iter()
                .any(|a| private_ip(IpAddr::V4(a))),
            IpAddr::V4(_) => false,
        }
}

/// Fold IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) addresses.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
                return IpAddr::V4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Parse a host the way `inet_aton` would: `127.1`, `2130706433`, `0x7f.0.0.1`,
/// `0177.0.0.1`; plus bracketed or bare IPv6.
pub fn parse_ip_host(host: &str) -> Option<IpAddr> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let parts: Vec<&str> = h.split('.').collect();
    if parts.is_empty() || parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let n = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if room < 64 && *last >= (1u64 << room) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, &n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    v |= last;
    Some(IpAddr::V4(Ipv4Addr::from(v as u32)))
}

/// Whether connecting to `dest` reaches one of `own` (the addresses this process listens
/// on). A wildcard listener (`0.0.0.0`, `::`) is reached through every local address.
pub fn is_own_listener(dest: &SocketAddr, own: &[SocketAddr]) -> bool {
    let ip = canonical(dest.ip());
    let mut local = None;
    own.iter().any(|l| {
        if l.port() != dest.port() {
            return false;
        }
        let lip = canonical(l.ip());
        // Connecting to the unspecified address reaches the local host.
        if lip == ip || ip.is_unspecified() {
            return true;
        }
        if lip.is_unspecified() {
            return ip.is_loopback()
                || *local.get_or_insert_with(|| local_addresses().contains(&ip));
        }
        false
    })
}

/// The addresses of this host's interfaces (getifaddrs(3)).
fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match (*addr).sa_family as i32 {
                    libc::AF_INET => {
                        let a = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))));
                    }
                    libc::AF_INET6 => {
                        let a = &*(addr as *const libc::sockaddr_in6);
                        out.push(canonical(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr))));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

impl EgressConfig {
    /// Decide for `host:port` given its resolved addresses.
    pub fn check(&self, host: &str, port: u16, addrs: &[SocketAddr]) -> Result<Allowed, Denied> {
        let dest = format!("{host}:{port}");
        let addrs: Vec<SocketAddr> = addrs
            .iter()
            .map(|a| SocketAddr::new(canonical(a.ip()), a.port()))
            .collect();
        let host_lc = host.trim_end_matches('.').to_ascii_lowercase();
        for (i, r) in self.rules.iter().enumerate() {
            if !r.ports.is_empty() && !r.ports.contains(&port) {
                continue;
            }
            let host_ok = r.host.as_ref().is_none_or(|g| host_matches(g, &host_lc));
            // A CIDR rule must hold for every address, or a name could mix a listed
            // address with an unlisted one.
            let cidr_ok = r
                .cidr
                .is_none_or(|net| !addrs.is_empty() && addrs.iter().all(|a| net.contains(&a.ip())));
            if !(host_ok && cidr_ok) {
                continue;
            }
            return match r.action {
                EgressAction::Deny => Err(Denied::Rule(dest, i + 1)),
                EgressAction::Allow | EgressAction::Bypass => Ok(Allowed {
                    addrs,
                    bypass: r.action == EgressAction::Bypass,
                    findings: r.findings,
                }),
            };
        }
        if METADATA_HOSTS.contains(&host_lc.as_str()) {
            return Err(Denied::Metadata(dest, "a metadata service name"));
        }
        if let Some(what) = addrs.iter().find_map(|a| metadata_any(a.ip())) {
            return Err(Denied::Metadata(dest, what));
        }
        if !self.allow_private && addrs.iter().any(|a| private_any(a.ip())) {
            return Err(Denied::Private(dest));
        }
        match self.default {
            EgressAction::Deny => Err(Denied::NotListed(dest)),
            d => Ok(Allowed {
                addrs,
                bypass: d == EgressAction::Bypass,
                findings: None,
            }),
        }
    }

    /// Resolve `host` (IP literals in any inet_aton spelling included) and check it.
    pub async fn resolve_and_check(&self, host: &str, port: u16) -> Result<Allowed, Denied> {
        let addrs: Vec<SocketAddr> = match parse_ip_host(host) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => {
                if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
                    return Err(Denied::Unresolvable(host.into(), "not a host name".into()));
                }
                // Check host-only rules before touching DNS, so denied names leak no lookup.
                if let Some(d) = self.denied_by_name(host, port) {
                    return Err(d);
                }
                tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| Denied::Unresolvable(format!("{host}:{port}"), e.to_string()))?
                    .collect()
            }
        };
        if addrs.is_empty() {
            return Err(Denied::Unresolvable(
                format!("{host}:{port}"),
                "no addresses".into(),
            ));
        }
        self.check(host, port, &addrs)
    }

    fn denied_by_name(&self, host: &str, port: u16) -> Option<Denied> {
        let host_lc = host.trim_end_matches('.').to_ascii_lowercase();
        for (i, r) in self.rules.iter().enumerate() {
            if r.cidr.is_some() || (!r.ports.is_empty() && !r.ports.contains(&port)) {
                continue;
            }
            if r.host.as_ref().is_some_and(|g| host_matches(g, &host_lc)) {
                return (r.action == EgressAction::Deny)
                    .then(|| Denied::Rule(format!("{host}:{port}"), i + 1));
            }
        }
        if METADATA_HOSTS.contains(&host_lc.as_str()) {
            return Some(Denied::Metadata(
                format!("{host}:{port}"),
                "a metadata service name",
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn cfg(toml_text: &str) -> EgressConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn inet_aton_spellings_of_loopback() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for h in [
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "0x7f000001",
            "[::ffff:127.0.0.1]",
            "::ffff:7f00:1",
        ] {
            assert_eq!(parse_ip_host(h), Some(lo), "{h}");
        }
        assert_eq!(parse_ip_host("example.com"), None);
        assert_eq!(parse_ip_host("256.1.1.1"), None);
        assert_eq!(parse_ip_host("1.2.3.4.5"), None);
    }

    #[test]
    fn defaults_deny_metadata_and_private() {
        let c = EgressConfig::default();
        assert!(matches!(
            c.check("x", 80, &[sa("169.254.169.254:80")]),
            Err(Denied::Metadata(..))
        ));
        assert!(matches!(
            c.check("x", 80, &[sa("100.100.100.200:80")]),
            Err(Denied::Metadata(..))
        ));
        assert!(matches!(
            c.check("x", 80, &[sa("[fd00:ec2::254]:80")]),
            Err(Denied::Metadata(..))
        ));
        assert!(matches!(
            c.check("metadata.google.internal", 80, &[sa("8.8.8.8:80")]),
            Err(Denied::Metadata(..))
        ));
        for a in [
            "127.0.0.1:80",
            "10.1.2.3:80",
            "192.168.0.1:80",
            "172.16.0.1:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[fe80::1]:80",
            "[64:ff9b::a00:1]:80",
            "0.0.0.0:80",
        ] {
            assert!(
                matches!(c.check("x", 80, &[sa(a)]), Err(Denied::Private(_))),
                "{a}"
            );
        }
        assert!(c
            .check("example.com", 443, &[sa("93.184.216.34:443")])
            .is_ok());
        // A name that resolves to one public and one private address is refused.
        assert!(c
            .check("mixed", 443, &[sa("93.184.216.34:443"), sa("10.0.0.1:443")])
            .is_err());
    }

    #[test]
    fn every_documented_metadata_endpoint_is_denied_even_with_allow_private() {
        let c = cfg("allow_private = true");
        for a in [
            "169.254.169.254:80",
            "169.254.170.2:80",
            "169.254.170.23:80",
            "168.63.129.16:80",
            "100.100.100.200:80",
            "169.254.0.23:80",
            "192.0.0.192:80",
            "169.254.42.42:80",
            "[fd00:ec2::254]:80",
            "[fd00:ec2::23]:80",
            "[fd20:ce::254]:80",
            "[fd00:42::42]:80",
            // Wrapped: mapped, compatible, NAT64 (both prefixes), 6to4, Teredo, SIIT.
            "[::ffff:169.254.169.254]:80",
            "[::169.254.169.254]:80",
            "[64:ff9b::a9fe:a9fe]:80",
            "[64:ff9b:1::a9fe:a9fe]:80",
            "[64:ff9b:1:a9fe:a9:fe00::]:80",
            "[2002:a9fe:a9fe::1]:80",
            "[2001:0:a9fe:a9fe::5601:5601]:80",
            "[2001:0:4136:e378:8000:63bf:5601:5601]:80",
            "[::ffff:0:a83f:8110]:80",
        ] {
            assert!(
                matches!(c.check("x", 80, &[sa(a)]), Err(Denied::Metadata(..))),
                "{a}"
            );
        }
        assert!(matches!(
            c.check("metadata.tencentyun.com", 80, &[sa("8.8.8.8:80")]),
            Err(Denied::Metadata(..))
        ));
    }

    #[test]
    fn wrapped_private_addresses_are_private() {
        let c = EgressConfig::default();
        for a in [
            "[64:ff9b:1::7f00:1]:80",
            "[2002:7f00:1::1]:80",
            "[2002:a00:1::]:80",
            "[::ffff:0:7f00:1]:80",
            "[2001:db8::1]:80",
            "[fe80::5efe:a00:1]:80",
            "203.0.113.5:80",
        ] {
            assert!(
                matches!(c.check("x", 80, &[sa(a)]), Err(Denied::Private(_))),
                "{a}"
            );
        }
        // A 6to4 address wrapping a public address is public.
        assert!(c.check("x", 80, &[sa("[2002:5db8:d822::1]:80")]).is_ok());
    }

    #[test]
    fn allow_private_keeps_metadata_denied_unless_listed() {
        let c = cfg("allow_private = true");
        assert!(c.check("x", 80, &[sa("127.0.0.1:80")]).is_ok());
        assert!(c.check("x", 80, &[sa("169.254.169.254:80")]).is_err());
        let c = cfg(
            "allow_private = true\n[[rule]]\ncidr = \"169.254.169.254/32\"\naction = \"allow\"\n",
        );
        assert!(c.check("x", 80, &[sa("169.254.169.254:80")]).is_ok());
    }

    #[test]
    fn rules_by_host_cidr_port_and_allow_list_mode() {
        let c = cfg(r#"
default = "deny"
[[rule]]
host = "*.pastebin.com"
action = "deny"
[[rule]]
host = "api.openai.com"
ports = [443]
action = "allow"
[[rule]]
host = "*.icloud.com"
action = "bypass"
[[rule]]
cidr = "203.0.113.0/24"
action = "allow"
findings = "block"
"#);
        let public = [sa("93.184.216.34:443")];
        assert_eq!(
            c.check("x.pastebin.com", 443, &public),
            Err(Denied::Rule("x.pastebin.com:443".into(), 1))
        );
        assert!(c.check("API.OpenAI.com", 443, &public).is_ok());
        assert!(matches!(
            c.check("api.openai.com", 80, &public),
            Err(Denied::NotListed(_))
        ));
        assert!(c.check("p.icloud.com", 443, &public).unwrap().bypass);
        let a = c.check("h", 443, &[sa("203.0.113.9:443")]).unwrap();
        assert_eq!(a.findings, Some(crate::detect::rules::Action::Block));
        assert!(matches!(
            c.check("other.com", 443, &public),
            Err(Denied::NotListed(_))
        ));
    }

    #[test]
    fn globs() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.EXAMPLE.com."));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "evilexample.com"));
        assert!(host_matches("example.com", "Example.COM"));
    }

    #[test]
    fn own_listeners() {
        let own = [sa("127.0.0.1:8383"), sa("0.0.0.0:9383")];
        assert!(is_own_listener(&sa("127.0.0.1:8383"), &own));
        assert!(is_own_listener(&sa("[::ffff:127.0.0.1]:8383"), &own));
        assert!(is_own_listener(&sa("0.0.0.0:8383"), &own));
        assert!(!is_own_listener(&sa("127.0.0.2:8383"), &own));
        assert!(!is_own_listener(&sa("127.0.0.1:8384"), &own));
        assert!(is_own_listener(&sa("127.0.0.9:9383"), &own));
        assert!(is_own_listener(&sa("[::1]:9383"), &own));
        assert!(!is_own_listener(&sa("93.184.216.34:9383"), &own));
    }

    #[tokio::test]
    async fn resolution_checks_the_resolved_address() {
        // `localhost` resolves to loopback: refused without allow_private.
        let c = EgressConfig::default();
        assert!(matches!(
            c.resolve_and_check("localhost", 80).await,
            Err(Denied::Private(_))
        ));
        assert!(matches!(
            c.resolve_and_check("2130706433", 80).await,
            Err(Denied::Private(_))
        ));
        assert!(matches!(
            c.resolve_and_check("metadata.google.internal", 80).await,
            Err(Denied::Metadata(..))
        ));
        let c = cfg("allow_private = true");
        let a = c.resolve_and_check("127.1", 8080).await.unwrap();
        assert_eq!(a.addrs, vec![sa("127.0.0.1:8080")]);
    }
}
