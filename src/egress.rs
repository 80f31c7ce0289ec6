//! Egress policy: which destinations the agent may reach at all.
//!
//! Decisions are made on the *resolved* addresses: the proxy resolves a name once, checks
//! every address, and connects only to the addresses it checked (no DNS-rebinding window).
//! IPv4-mapped/compatible IPv6 forms are folded to IPv4 before checking, and hosts written
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
    #[error("destination {0} is a cloud metadata endpoint")]
    Metadata(String),
    #[error("destination {0} is a loopback, link-local or private address, refused by default: pass --allow-private (config [egress] allow_private = true) or allow just it with an [[egress.rule]]")]
    Private(String),
    #[error("destination {0} is not on the allow list")]
    NotListed(String),
    #[error("destination {0} could not be resolved: {1}")]
    Unresolvable(String, String),
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

const METADATA_HOSTS: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

fn metadata_ip(ip: IpAddr) -> bool {
    match ip {
        // AWS/GCP/Azure/OpenStack, Alibaba Cloud, Oracle Cloud (192.0.0.192), Tencent
        // (metadata.tencentyun.com resolves into 169.254/16, covered by link-local).
        IpAddr::V4(v4) => {
            v4 == Ipv4Addr::new(169, 254, 169, 254)
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
                || v4 == Ipv4Addr::new(192, 0, 0, 192)
                || v4 == Ipv4Addr::new(169, 254, 170, 2)
        }
        IpAddr::V6(v6) => v6 == "fd00:ec2::254".parse::<Ipv6Addr>().expect("literal"),
    }
}

/// Loopback, link-local, private, CGNAT, unspecified, multicast, broadcast, and
/// documentation/benchmark ranges: nothing an agent needs to reach on the internet.
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
                // NAT64 64:ff9b::/96 wraps an IPv4 address: judge the inner one.
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]
                    && private_ip(IpAddr::V4(Ipv4Addr::new(
                        (s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8))))
        }
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
        if METADATA_HOSTS.contains(&host_lc.as_str()) || addrs.iter().any(|a| metadata_ip(a.ip())) {
            return Err(Denied::Metadata(dest));
        }
        if !self.allow_private && addrs.iter().any(|a| private_ip(a.ip())) {
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
            return Some(Denied::Metadata(format!("{host}:{port}")));
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
            Err(Denied::Metadata(_))
        ));
        assert!(matches!(
            c.check("x", 80, &[sa("100.100.100.200:80")]),
            Err(Denied::Metadata(_))
        ));
        assert!(matches!(
            c.check("x", 80, &[sa("[fd00:ec2::254]:80")]),
            Err(Denied::Metadata(_))
        ));
        assert!(matches!(
            c.check("metadata.google.internal", 80, &[sa("8.8.8.8:80")]),
            Err(Denied::Metadata(_))
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
            Err(Denied::Metadata(_))
        ));
        let c = cfg("allow_private = true");
        let a = c.resolve_and_check("127.1", 8080).await.unwrap();
        assert_eq!(a.addrs, vec![sa("127.0.0.1:8080")]);
    }
}
