//! Exposed ports (guide A.2): OpenClaw's gateway (18789) and its other default port
//! (19890) listen on loopback only, and the config does not ask for more.

use super::machine::Machine;
use super::openclaw::OpenClaw;
use super::{guide, Check, Status};
use serde_json::Value;

/// OpenClaw's default ports, as the guide names them.
const DEFAULT_PORTS: &[u16] = &[18789, 19890];

pub fn checks(m: &Machine, oc: &OpenClaw) -> Vec<Check> {
    let mut ports: Vec<u16> = DEFAULT_PORTS.to_vec();
    if let Some(p) = oc.get("/gateway/port").and_then(Value::as_u64) {
        ports.extend(u16::try_from(p).ok());
    }
    vec![listening(m, &ports), bind_setting(oc)]
}

fn listening(m: &Machine, ports: &[u16]) -> Check {
    let id = "exposure.listeners";
    let mut seen = Vec::new();
    let mut exposed = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(m.sys_path(file)) else {
            continue;
        };
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local_address rem_address st …; st 0A is LISTEN.
            let (Some(local), Some("0A")) = (f.get(1), f.get(3).copied()) else {
                continue;
            };
            let Some((addr, port)) = local.split_once(':') else {
                continue;
            };
            let Ok(port) = u16::from_str_radix(port, 16) else {
                continue;
            };
            if !ports.contains(&port) {
                continue;
            }
            let line = format!("port {port} listens on {}", show_addr(addr, v6));
            if is_loopback(addr, v6) {
                seen.push(line);
            } else {
                exposed.push(line);
            }
        }
    }
    if !exposed.is_empty() {
        let mut c = Check::new(id, guide::NO_EXPOSED_PORTS, Status::Fail);
        for e in exposed {
            c = c.evidence(format!("{e}: reachable from the network"));
        }
        return c.fix("bind the gateway to loopback: `openclaw config set gateway.bind loopback` and restart it (`openclaw gateway restart`); reach it remotely over a VPN or `ssh -L 18789:127.0.0.1:18789`, never by port mapping or a public address");
    }
    if seen.is_empty() {
        return Check::new(id, guide::NO_EXPOSED_PORTS, Status::Pass).evidence(format!(
            "nothing listens on {}",
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut c = Check::new(id, guide::NO_EXPOSED_PORTS, Status::Pass);
    for s in seen {
        c = c.evidence(s);
    }
    c
}

fn bind_setting(oc: &OpenClaw) -> Check {
    let id = "exposure.gateway-bind";
    let bind = oc.get("/gateway/bind").and_then(Value::as_str);
    match bind {
        None | Some("loopback") => Check::new(id, guide::NO_EXPOSED_PORTS, Status::Pass).evidence(
            format!("gateway.bind is {}", bind.unwrap_or("unset (loopback)")),
        ),
        Some("tailnet") => Check::new(id, guide::NO_EXPOSED_PORTS, Status::Warn)
            .evidence("gateway.bind is tailnet: reachable over the VPN only")
            .fix("keep gateway authentication on (gateway.auth) and the tailnet limited to your own devices, or `openclaw config set gateway.bind loopback`"),
        Some(other) => Check::new(id, guide::NO_EXPOSED_PORTS, Status::Fail)
            .evidence(format!("gateway.bind is {other}: the gateway listens beyond loopback"))
            .fix("`openclaw config set gateway.bind loopback`, then `openclaw gateway restart`"),
    }
}

/// `/proc/net/tcp` addresses are the kernel's 32-bit words in host byte order (little
/// endian here): 127.0.0.1 is `0100007F`.
fn is_loopback(hex: &str, v6: bool) -> bool {
    if !v6 {
        return hex.len() == 8 && hex.ends_with("7F");
    }
    let h = hex.to_ascii_uppercase();
    h == "00000000000000000000000001000000"
        || (h.starts_with("0000000000000000FFFF0000") && h.ends_with("7F"))
}

fn show_addr(hex: &str, v6: bool) -> String {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    // Each 32-bit word is little endian.
    let fixed: Vec<u8> = bytes
        .chunks(4)
        .flat_map(|w| w.iter().rev().copied())
        .collect();
    if v6 {
        <[u8; 16]>::try_from(fixed.as_slice())
            .map(|a| std::net::Ipv6Addr::from(a).to_string())
            .unwrap_or_else(|_| hex.to_string())
    } else {
        <[u8; 4]>::try_from(fixed.as_slice())
            .map(|a| std::net::Ipv4Addr::from(a).to_string())
            .unwrap_or_else(|_| hex.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses() {
        assert!(is_loopback("0100007F", false));
        assert!(!is_loopback("00000000", false));
        assert_eq!(show_addr("0100007F", false), "127.0.0.1");
        assert_eq!(show_addr("00000000", false), "0.0.0.0");
        assert!(is_loopback("00000000000000000000000001000000", true));
        assert_eq!(show_addr("00000000000000000000000001000000", true), "::1");
        assert!(!is_loopback("00000000000000000000000000000000", true));
    }
}
