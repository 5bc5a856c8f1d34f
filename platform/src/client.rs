//! Who the client is: the TCP peer, or, when the peer is a proxy the operator trusts
//! (`TRUSTED_PROXIES`), the address that proxy names in `X-Forwarded-For`.
//!
//! The header is read right to left, since each proxy appends the address it received the
//! request from: the first address that is not itself a trusted proxy is the client. A header
//! from a peer that is not trusted is ignored — anyone can write one — so it cannot buy a
//! client a fresh rate-limit budget.

use std::convert::Infallible;
use std::net::IpAddr;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` names the client: CIDRs or single addresses, comma
/// separated (`10.0.0.0/8,192.0.2.7`). Empty: no proxy is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// `true` when `address` is a trusted proxy.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpNet>()
                    .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{part:?} is not a CIDR like 10.0.0.0/8 or an address"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// The client's address, as handlers extract it: resolved once per request by
/// [`crate::serve`] from the peer and, behind trusted proxies, `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The client of a request from `peer` carrying the `X-Forwarded-For` values `forwarded`.
    pub fn resolve<'h>(
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'h HeaderValue>,
        trusted: &TrustedProxies,
    ) -> Self {
        let peer = peer.to_canonical();
        if !trusted.contains(peer) {
            if forwarded.count() > 0 {
                metrics::counter!("http_forwarded_for_ignored_total").increment(1);
            }
            return Self(peer);
        }
        let mut client = peer;
        let hops = forwarded.rev().flat_map(|value| value.to_str().unwrap_or_default().rsplit(','));
        for hop in hops {
            // Anything unreadable ends the chain: nothing to its left can be vouched for.
            let Ok(address) = hop.trim().parse::<IpAddr>() else { break };
            client = address.to_canonical();
            if !trusted.contains(client) {
                break;
            }
        }
        Self(client)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    /// A request that did not come through [`crate::serve`] (a test calling the router
    /// directly) has no address: it counts as `0.0.0.0`.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts.extensions.get::<Self>().copied().unwrap_or(Self(IpAddr::from([0, 0, 0, 0]))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(peer: &str, forwarded: &[&str], trusted: &str) -> String {
        let values: Vec<HeaderValue> = forwarded.iter().map(|v| HeaderValue::from_str(v).unwrap()).collect();
        ClientIp::resolve(peer.parse().unwrap(), values.iter(), &trusted.parse().unwrap()).0.to_string()
    }

    #[test]
    fn only_a_trusted_peer_names_the_client() {
        assert_eq!(resolve("198.51.100.9", &["203.0.113.5"], ""), "198.51.100.9", "no proxy trusted");
        assert_eq!(resolve("198.51.100.9", &["203.0.113.5"], "10.0.0.0/8"), "198.51.100.9", "spoofed");
        assert_eq!(resolve("10.0.0.2", &["203.0.113.5"], "10.0.0.0/8"), "203.0.113.5");
        assert_eq!(resolve("10.0.0.2", &[], "10.0.0.0/8"), "10.0.0.2", "a proxy's own request");
    }

    #[test]
    fn the_header_is_read_right_to_left_past_trusted_hops() {
        // The client wrote "1.1.1.1" itself; 203.0.113.5 is who the first trusted proxy saw.
        let chain = ["1.1.1.1, 203.0.113.5, 10.0.0.7"];
        assert_eq!(resolve("10.0.0.2", &chain, "10.0.0.0/8"), "203.0.113.5");
        assert_eq!(resolve("10.0.0.2", &["1.1.1.1", "203.0.113.5"], "10.0.0.0/8"), "203.0.113.5", "two headers");
        assert_eq!(resolve("10.0.0.2", &["10.0.0.5, 10.0.0.7"], "10.0.0.0/8"), "10.0.0.5", "all trusted");
        assert_eq!(resolve("10.0.0.2", &["203.0.113.5, garbage"], "10.0.0.0/8"), "10.0.0.2", "unreadable");
        assert_eq!(resolve("::ffff:10.0.0.2", &["2001:db8::1"], "10.0.0.2"), "2001:db8::1");
    }

    #[test]
    fn trusted_proxies_parse_cidrs_and_addresses() {
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        let trusted: TrustedProxies = "10.0.0.0/8, 192.0.2.7,2001:db8::/32".parse().unwrap();
        assert!(trusted.contains("10.1.2.3".parse().unwrap()));
        assert!(trusted.contains("192.0.2.7".parse().unwrap()));
        assert!(!trusted.contains("192.0.2.8".parse().unwrap()));
        assert!(trusted.contains("2001:db8:5::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.internal".parse::<TrustedProxies>().is_err());
    }
}
