//! DNS for the upstream client without a rebinding window.
//!
//! The proxy decides on a destination with [`EgressConfig::resolve_and_check`], which
//! resolves the name once and checks every address. The hyper client must then connect
//! to exactly those addresses: if it resolved the name again, an attacker's DNS could
//! answer "public address" to the check and "169.254.169.254" to the connect. So the
//! client's resolver does not resolve at all: it hands back the addresses the data path
//! pinned for that name just before calling the client, and fails closed for a name
//! nobody checked.
//!
//! Pins are per name, not per (name, port): if DNS answers two concurrent checks of one
//! name with different address sets, a request may connect to the other set, which was
//! itself checked for that name under the same policy. Only a port-specific CIDR rule
//! could judge the two sets differently.
//!
//! [`EgressConfig::resolve_and_check`]: crate::egress::EgressConfig::resolve_and_check

use dashmap::DashMap;
use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Pinned names at most; beyond that the table is cleared (a request in flight then fails
/// closed with "not checked" rather than connecting anywhere unchecked).
const PIN_LIMIT: usize = 50_000;

/// Checked addresses per host name (lowercase, as the proxy writes request URIs).
#[derive(Clone, Default)]
pub struct Pins {
    map: Arc<DashMap<Box<str>, Arc<[SocketAddr]>>>,
}

impl Pins {
    /// Record the checked addresses for `host` (called right before the client connects).
    pub fn pin(&self, host: &str, addrs: &Arc<[SocketAddr]>) {
        if let Some(cur) = self.map.get(host) {
            if Arc::ptr_eq(cur.value(), addrs) || **cur.value() == **addrs {
                return; // the common case: nothing to write
            }
        }
        if self.map.len() >= PIN_LIMIT {
            self.map.clear();
        }
        self.map.insert(host.into(), addrs.clone());
    }

    fn get(&self, host: &str) -> Option<Arc<[SocketAddr]>> {
        self.map.get(host).map(|a| a.clone())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("egress: {0} was not checked by the egress policy; refusing to resolve it")]
pub struct NotPinned(String);

/// The upstream client's resolver: pinned addresses only.
#[derive(Clone)]
pub struct PinnedResolver {
    pub pins: Pins,
}

/// Addresses with port 0: hyper's connector sets the request's port on each.
pub struct Addrs {
    addrs: Arc<[SocketAddr]>,
    next: usize,
}

impl Iterator for Addrs {
    type Item = SocketAddr;
    fn next(&mut self) -> Option<SocketAddr> {
        let a = self.addrs.get(self.next).copied()?;
        self.next += 1;
        Some(SocketAddr::new(a.ip(), 0))
    }
}

impl tower_service::Service<Name> for PinnedResolver {
    type Response = Addrs;
    type Error = NotPinned;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, NotPinned>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), NotPinned>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let r = match self.pins.get(name.as_str()) {
            Some(addrs) => Ok(Addrs { addrs, next: 0 }),
            None => Err(NotPinned(name.as_str().to_string())),
        };
        Box::pin(std::future::ready(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[tokio::test]
    async fn only_pinned_names_resolve() {
        let pins = Pins::default();
        let mut r = PinnedResolver { pins: pins.clone() };
        let name: Name = "example.com".parse().unwrap();
        assert!(r.call(name.clone()).await.is_err());
        let addrs: Arc<[SocketAddr]> = Arc::from(vec!["93.184.216.34:443".parse().unwrap()]);
        pins.pin("example.com", &addrs);
        let got: Vec<SocketAddr> = r.call(name).await.unwrap().collect();
        assert_eq!(got, vec!["93.184.216.34:0".parse::<SocketAddr>().unwrap()]);
    }
}
