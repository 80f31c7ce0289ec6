//! Inside the new network namespace: bring the loopback up and bind the one listener
//! ClawGuard serves there. Nothing else is configured: no other interface, no route.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

/// `ip link set lo up`. A new network namespace starts with `lo` down; `rustix` has no
/// interface-flags call, so this `ioctl` is written by hand.
pub fn loopback_up() -> io::Result<()> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: `ifreq` is plain data; the kernel reads and writes at most its size.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The proxy's listener at `127.0.0.1:port` inside the namespace.
pub fn listen(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// The interfaces of the calling process's network namespace with their addresses
/// (`getifaddrs`), e.g. `lo 127.0.0.1 ::1`, for the profile.
pub fn describe() -> Vec<String> {
    let mut by_name: Vec<(String, Vec<String>)> = Vec::new();
    // SAFETY: getifaddrs allocates a list we only read and then free.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return vec![format!("unknown ({})", io::Error::last_os_error())];
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                .to_string_lossy()
                .into_owned();
            let addr = if ifa.ifa_addr.is_null() {
                None
            } else {
                match (*ifa.ifa_addr).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).to_string())
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).to_string())
                    }
                    _ => None,
                }
            };
            let slot = match by_name.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    by_name.push((name, Vec::new()));
                    by_name.len() - 1
                }
            };
            if let Some(a) = addr {
                by_name[slot].1.push(a);
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    by_name
        .into_iter()
        .map(|(n, a)| format!("{n} {}", a.join(" ")).trim().to_string())
        .collect()
}
