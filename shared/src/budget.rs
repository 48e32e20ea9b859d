//! `Budget`: how much of the activation's time is left for work, keeping a margin for the
//! final state commit. Handlers budget listing, firing and backoff sleeps by it.

use std::time::{Duration, SystemTime};

/// Time left before a deadline, minus a margin kept for committing state.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    deadline: Option<SystemTime>,
    margin: Duration,
}

impl Budget {
    /// A budget ending `margin` before `deadline` (`None`: unbounded, e.g. the CLI).
    pub fn new(deadline: Option<SystemTime>, margin: Duration) -> Budget {
        Budget { deadline, margin }
    }

    /// Time left for work (`None` when unbounded).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).saturating_sub(self.margin))
    }

    /// True when no time is left for more work.
    pub fn expired(&self) -> bool {
        self.remaining().is_some_and(|r| r.is_zero())
    }

    /// True when at least `d` is left.
    pub fn allows(&self, d: Duration) -> bool {
        self.remaining().is_none_or(|r| r >= d)
    }

    /// The same deadline with a smaller margin (the commit that the margin was kept for).
    pub fn with_margin(&self, margin: Duration) -> Budget {
        Budget { deadline: self.deadline, margin }
    }

    /// The same budget ending at `at` if that is earlier (work that must stop sooner than the
    /// activation, such as one trigger's listing in a scheduler tick).
    pub fn capped(&self, at: Option<SystemTime>) -> Budget {
        let deadline = match (self.deadline, at) {
            (Some(d), Some(a)) => Some(d.min(a)),
            (d, a) => d.or(a),
        };
        Budget { deadline, margin: self.margin }
    }

    /// The deadline as epoch milliseconds (for leases); `None` when unbounded.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.deadline.and_then(|d| d.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64)
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A time (epoch ms) as RFC 3339, as READ and the poll's results show it.
pub fn iso(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64).map(|t| t.to_rfc3339()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        let b = Budget::new(Some(SystemTime::now() + Duration::from_secs(10)), Duration::from_secs(4));
        let left = b.remaining().unwrap();
        assert!(left <= Duration::from_secs(6) && left > Duration::from_secs(5), "{left:?}");
        assert!(b.allows(Duration::from_secs(5)));
        assert!(!b.allows(Duration::from_secs(7)));
        assert!(!b.expired());
        let past = Budget::new(Some(SystemTime::now() - Duration::from_secs(1)), Duration::ZERO);
        assert!(past.expired());
        assert!(Budget::new(None, Duration::from_secs(1)).allows(Duration::from_secs(1000)));
        let soon = SystemTime::now() + Duration::from_secs(2);
        assert!(!b.capped(Some(soon)).allows(Duration::from_secs(3)));
        assert!(b.capped(None).allows(Duration::from_secs(5)));
        assert!(!Budget::new(None, Duration::ZERO).capped(Some(soon)).allows(Duration::from_secs(3)));
    }
}
