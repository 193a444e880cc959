//! How many `auth.failure` and `auth.denied` events are written to the audit log: a token bucket
//! per peer address (failures: the caller is unauthenticated, so its address is all we know) and
//! per principal (denials), so that nobody can grow the append-only log without bound or keep
//! its write lock busy. Refusals beyond the bucket are still answered (401/403) and counted in
//! `navigator_auth_failures_total` / `navigator_auth_denied_total`; their audit entries are
//! counted in `navigator_audit_suppressed_total{action}` instead of being written.
//!
//! In memory, per process (like [`crate::http::rate_limit`]).

use crate::http::rate_limit::{KeyedBuckets, Take};
use std::net::IpAddr;
use std::time::Instant;

/// Audit entries per key and minute (also the burst).
pub const AUDITED_PER_MINUTE: u32 = 30;

/// A token bucket per key (see [`KeyedBuckets`]). When more keys are active than it tracks,
/// new keys are not audited: bounded memory and log growth win over auditing a flood from that
/// many sources (the metrics still count it).
pub struct AuditLimiter {
    per_minute: u32,
    buckets: KeyedBuckets<String>,
}

impl AuditLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: KeyedBuckets::new(),
        }
    }

    /// Whether one more entry for `key` may be written now (taking a token if so).
    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> bool {
        self.per_minute > 0
            && self.buckets.take(key.to_owned(), self.per_minute, now) == Take::Taken
    }
}

/// The bucket key of a peer address: the address itself for IPv4, its /64 for IPv6 (one host
/// commonly holds a whole /64, so per-address buckets would not bound it).
pub fn peer_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_key_gets_its_burst_then_one_per_refill_and_others_are_unaffected() {
        let limiter = AuditLimiter::new(30);
        let t0 = Instant::now();
        assert_eq!((0..100).filter(|_| limiter.allow_at("a", t0)).count(), 30);
        assert!(limiter.allow_at("b", t0));
        // 30 a minute: one token every 2 s.
        assert!(!limiter.allow_at("a", t0 + Duration::from_millis(1900)));
        assert!(limiter.allow_at("a", t0 + Duration::from_millis(2000)));
        assert!(!limiter.allow_at("a", t0 + Duration::from_millis(2000)));
    }

    #[test]
    fn ipv6_peers_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(peer_key(Some(a)), peer_key(Some(b)));
        assert_eq!(peer_key(Some(a)), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(peer_key(Some(mapped)), "127.0.0.1");
        assert_eq!(peer_key(None), "unknown");
    }
}
