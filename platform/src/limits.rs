//! Limits keyed by client, shared by every service that limits what clients take: token-bucket
//! rates, and places (connections, live streams, reads in flight) capped per address and in total.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// A token bucket: `count` requests per `period`, bursts of up to `count`; or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// No limit.
    Off,
    /// `count` per `period`.
    Every {
        /// Requests allowed per period (and the burst size).
        count: NonZeroU32,
        /// The period.
        period: Duration,
    },
}

impl FromStr for RateLimit {
    type Err = String;

    /// Reads `off` or `<count>/<s|m|h>`, e.g. `10/s`, `600/m`.
    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == "off" {
            return Ok(Self::Off);
        }
        let invalid = || format!("{text:?} is not a rate limit like 10/s, 600/m, 5000/h or off");
        let (count, unit) = text.trim().split_once('/').ok_or_else(invalid)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| invalid())?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(invalid()),
        };
        // The bucket refills one request every period / count: it must be measurable.
        if Quota::with_period(period / count.get()).is_none() {
            return Err(format!("{text:?} refills faster than once a nanosecond: write a smaller count or `off`"));
        }
        Ok(Self::Every { count, period })
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// One keyed token-bucket limiter, or none (`off`).
#[derive(Clone)]
pub struct Limiter<K: Hash + Eq + Clone>(Option<Arc<Keyed<K>>>);

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter keeping `limit` per key.
    pub fn new(limit: RateLimit) -> Self {
        Self(match limit {
            RateLimit::Off => None,
            RateLimit::Every { count, period } => {
                let quota = Quota::with_period(period / count.get()).map(|q| q.allow_burst(count));
                quota.map(|quota| Arc::new(RateLimiter::keyed(quota)))
            }
        })
    }

    /// `Err(wait)` when `key` has used its budget.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Takes `tokens` from `key`'s budget at once (at most a whole burst), for a request that
    /// costs that many ordinary ones; `Err(wait)` when the budget holds fewer.
    pub fn check_n(&self, key: &K, tokens: u32) -> Result<(), Duration> {
        let (Some(limiter), Some(tokens)) = (&self.0, NonZeroU32::new(tokens)) else { return Ok(()) };
        let burst = |n: NonZeroU32| limiter.check_key_n(key, n);
        let checked = burst(tokens).or_else(|too_many| burst(NonZeroU32::new(too_many.0).unwrap_or(NonZeroU32::MIN)));
        match checked {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
            // A burst larger than the quota's: cannot happen after clamping to it.
            Err(_) => Err(Duration::from_secs(1)),
        }
    }

    /// Drops the buckets of keys that are full again, so memory follows active clients only.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Places of one kind (connections, live streams, database reads in flight): at most
/// `total_max` taken at once, `per_address_max` of them by one client address (its
/// [`client_key`]).
#[derive(Debug, Default)]
pub struct Slots {
    total_max: usize,
    per_address_max: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why no place was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// All `total_max` are taken.
    Total,
    /// The client's address holds `per_address_max`.
    PerAddress,
}

impl Full {
    /// The metric label: `total` or `per_address`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::PerAddress => "per_address",
        }
    }
}

impl Slots {
    /// `total_max` places, `per_address_max` per address.
    pub fn new(total_max: usize, per_address_max: usize) -> Arc<Self> {
        Arc::new(Self { total_max, per_address_max, open: Mutex::default() })
    }

    /// A place for `client`, held until the [`Slot`] is dropped.
    pub fn take(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Full> {
        self.take_as(Some(client_key(client)))
    }

    /// A place counted against the total only (for a peer whose connections carry many
    /// clients' requests, such as a trusted proxy).
    pub fn take_unkeyed(self: &Arc<Self>) -> Result<Slot, Full> {
        self.take_as(None)
    }

    fn take_as(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Slot, Full> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_address) = &mut *open;
        if *total >= self.total_max {
            return Err(Full::Total);
        }
        if let Some(address) = address {
            let from_address = per_address.entry(address).or_default();
            if *from_address >= self.per_address_max {
                if *from_address == 0 {
                    per_address.remove(&address);
                }
                return Err(Full::PerAddress);
            }
            *from_address += 1;
        }
        *total += 1;
        Ok(Slot { slots: self.clone(), address })
    }
}

/// A place taken, held until dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_address) = &mut *open;
        *total -= 1;
        if let Some(address) = self.address
            && let Some(count) = per_address.get_mut(&address)
        {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&address);
            }
        }
    }
}

/// The key a client address is limited under: IPv4 as it is, IPv6 by its /64 (what one
/// subscriber is usually given), an IPv4 address mapped into IPv6 as that IPv4 address.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse_count_per_unit_or_off() {
        assert_eq!("off".parse::<RateLimit>(), Ok(RateLimit::Off));
        assert_eq!(
            "10/s".parse::<RateLimit>(),
            Ok(RateLimit::Every { count: NonZeroU32::new(10).unwrap(), period: Duration::from_secs(1) })
        );
        assert_eq!(
            "600/m".parse::<RateLimit>(),
            Ok(RateLimit::Every { count: NonZeroU32::new(600).unwrap(), period: Duration::from_secs(60) })
        );
        for bad in ["", "10", "0/s", "-1/s", "10/d", "ten/s", "10/", "4000000000/s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_costly_request_takes_as_many_tokens_at_most_a_burst() {
        let limiter = Limiter::new("10/m".parse().unwrap());
        assert!(limiter.check_n(&1, 4).is_ok());
        assert!(limiter.check_n(&1, 4).is_ok());
        assert!(limiter.check_n(&1, 4).is_err(), "2 tokens left");
        assert!(limiter.check(&1).is_ok());
        assert!(limiter.check_n(&2, 50).is_ok(), "more than a burst costs the whole burst");
        assert!(limiter.check(&2).is_err());
        assert!(Limiter::new(RateLimit::Off).check_n(&1, 1000).is_ok());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let key = |text: &str| client_key(text.parse().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
    }
}
