//! Rate limits of `POST /v1/actions`: token buckets per client address (checked before any
//! work) and per player (checked once the token proved who the player is, so nobody can drain
//! another's bucket).

use std::net::IpAddr;
use std::time::Duration;

pub use platform::limits::RateLimit;
use platform::limits::{Limiter, client_key};

/// The limits command-svc applies to `POST /v1/actions`.
#[derive(Clone)]
pub struct RateLimits {
    per_address: Limiter<IpAddr>,
    per_player: Limiter<String>,
}

impl RateLimits {
    /// Limits as configured.
    pub fn new(per_address: RateLimit, per_player: RateLimit) -> Self {
        Self { per_address: Limiter::new(per_address), per_player: Limiter::new(per_player) }
    }

    /// `Err(wait)` when `address` has used its budget. IPv6 clients are counted by their /64
    /// (what one subscriber is usually given), so rotating through one's own addresses does not
    /// multiply the budget; an IPv4 address mapped into IPv6 counts as that IPv4 address.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Duration> {
        self.per_address.check(&client_key(address))
    }

    /// `Err(wait)` when `player` has used its budget.
    pub fn check_player(&self, player: &str) -> Result<(), Duration> {
        self.per_player.check(&player.to_string())
    }

    /// Drops the buckets of keys that are full again, so memory follows active clients only.
    pub fn forget_idle(&self) {
        self.per_address.forget_idle();
        self.per_player.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_player_gets_a_burst_of_count_then_waits() {
        let limits = RateLimits::new(RateLimit::Off, "3/m".parse().unwrap());
        for _ in 0..3 {
            assert!(limits.check_player("alice").is_ok());
        }
        let wait = limits.check_player("alice").unwrap_err();
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limits.check_player("bob").is_ok(), "buckets are per player");
    }

    #[test]
    fn ipv6_clients_share_the_budget_of_their_64() {
        let limits = RateLimits::new("2/m".parse().unwrap(), RateLimit::Off);
        let address = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(limits.check_address(address("2001:db8:1:2::1")).is_ok());
        assert!(limits.check_address(address("2001:db8:1:2:ffff::9")).is_ok());
        assert!(limits.check_address(address("2001:db8:1:2:abcd::42")).is_err(), "same /64");
        assert!(limits.check_address(address("2001:db8:1:3::1")).is_ok(), "another /64");
        assert!(limits.check_address(address("10.0.0.1")).is_ok());
        assert!(limits.check_address(address("::ffff:10.0.0.1")).is_ok());
        assert!(limits.check_address(address("10.0.0.1")).is_err(), "mapped IPv4 is that IPv4 address");
    }

    #[test]
    fn off_never_limits() {
        let limits = RateLimits::new(RateLimit::Off, RateLimit::Off);
        for _ in 0..10_000 {
            assert!(limits.check_address(IpAddr::from([127, 0, 0, 1])).is_ok());
        }
    }
}
