//! Where a webhook may go: destinations that resolve to loopback, private, link-local,
//! unique-local, carrier-grade NAT, multicast or unspecified addresses are refused (the server
//! must not be a way into its own network), unless WEARHOUSE_WEBHOOKS_ALLOW_PRIVATE is set.
//!
//! The check is the delivery client's DNS resolver ([`Resolver`]): the addresses it checks
//! are the ones the connection is made to, so a name that answers a public address to a check
//! and a private one to the connection (DNS rebinding) cannot get through. Hosts written as IP
//! addresses are never resolved and are checked by [`check_url`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("destination URL is not a valid http(s) URL")]
    BadUrl,
    #[error("destination host does not resolve: {0}")]
    Resolve(std::io::Error),
    #[error("destination resolves to a non-public address ({0}); set WEARHOUSE_WEBHOOKS_ALLOW_PRIVATE=true to allow it")]
    Private(IpAddr),
}

fn private_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || o[0] >= 240
}

fn private_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return private_v4(v4);
    }
    let s = a.segments();
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => private_v4(a),
        IpAddr::V6(a) => private_v6(a),
    }
}

/// Checks what can be checked of `url` without resolving it: an http(s) URL, and a host
/// written as an IP address must be public. Names are checked when the connection resolves
/// them ([`Resolver`]).
pub fn check_url(url: &str, allow_private: bool) -> Result<(), GuardError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| GuardError::BadUrl)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(GuardError::BadUrl);
    }
    let host = parsed.host_str().ok_or(GuardError::BadUrl)?;
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) if !allow_private && is_private(ip) => Err(GuardError::Private(ip)),
        _ => Ok(()),
    }
}

/// Resolves `host` and refuses the answer when any address in it is not public (unless
/// allowed): the addresses returned are the ones connected to.
pub async fn resolve(host: &str, allow_private: bool) -> Result<Vec<SocketAddr>, GuardError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(GuardError::Resolve)?
        .collect();
    if addrs.is_empty() {
        return Err(GuardError::Resolve(std::io::Error::other("no address")));
    }
    if !allow_private {
        if let Some(a) = addrs.iter().find(|a| is_private(a.ip())) {
            return Err(GuardError::Private(a.ip()));
        }
    }
    Ok(addrs)
}

/// The delivery client's DNS resolver: every name is resolved once, checked, and connected
/// to at the checked addresses.
pub struct Resolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve(&host, allow).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The guard's refusal inside a client error, if that is what failed the request.
pub fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a GuardError> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(g) = err.downcast_ref::<GuardError>() {
            return Some(g);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_refused_and_public_ones_allowed() {
        for p in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(p.parse().unwrap()), "{p}");
        }
        for p in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_private(p.parse().unwrap()), "{p}");
        }
    }

    #[tokio::test]
    async fn loopback_names_and_addresses_are_refused_unless_allowed() {
        assert!(matches!(
            resolve("localhost", false).await,
            Err(GuardError::Private(_))
        ));
        assert!(resolve("localhost", true).await.is_ok());
        assert!(matches!(
            check_url("http://127.0.0.1:9/x", false),
            Err(GuardError::Private(_))
        ));
        assert!(matches!(
            check_url("http://[::1]:9/x", false),
            Err(GuardError::Private(_))
        ));
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_url("https://example.com/x", false).is_ok());
        assert!(matches!(
            check_url("ftp://example.com", true),
            Err(GuardError::BadUrl)
        ));
    }
}
