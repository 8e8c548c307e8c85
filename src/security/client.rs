//! Who a request comes from, for the rate limiter's buckets: the direct
//! peer, unless it is a trusted proxy, in which case `X-Forwarded-For` is
//! read from the right, skipping the trusted hops. A client that sends its
//! own `X-Forwarded-For` to a process no trusted proxy fronts is ignored.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address: the first untrusted hop from the right.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(address) => {
                    client = canonical(address);
                    if !self.trusts(client) {
                        break;
                    }
                }
                // A hop that is not an address ends what can be believed.
                Err(_) => break,
            }
        }
        Some(client)
    }
}

/// `::ffff:10.0.0.1` is `10.0.0.1`.
fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

/// `10.0.0.0/8`, or an address alone (`10.0.0.7`, a /32).
pub fn parse_proxy(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{raw:?} is not an address or a CIDR like 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(forwarded).unwrap(),
        );
        map
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies(vec![parse_proxy("10.0.0.0/8").unwrap()]);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let spoofed = headers("1.1.1.1, 198.51.100.7, 10.9.9.9");
        // Through the proxy: the first hop from the right it did not add.
        assert_eq!(
            trusted.client(Some(proxy), &spoofed),
            Some("198.51.100.7".parse().unwrap())
        );
        // Straight from a client: its header is its own word, ignored.
        assert_eq!(trusted.client(Some(stranger), &spoofed), Some(stranger));
        // No proxies trusted: the peer, always.
        assert_eq!(
            TrustedProxies::default().client(Some(proxy), &spoofed),
            Some(proxy)
        );
        assert!(parse_proxy("10.0.0.1").is_ok() && parse_proxy("nope").is_err());
    }
}
