//! Send rates: the sender's ceiling (`SEND_RATE_PER_SECOND`; one message per 3 s on Twilio's
//! shared sandbox number) and each campaign's own `rate_limit_per_second`, held with the
//! governor crate's GCRA. A message goes only when both its campaign's limiter and the
//! sender's allow it.
//!
//! Bursts are kept small (a twentieth of a second's worth), so the rate holds over any window
//! longer than that, not only on average.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::domain::CampaignId;

/// One rate limiter.
pub type Limiter<C = MonotonicClock> =
    RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The quota for `per_second` messages a second (fractions allowed: 1/3 is one every 3 s).
/// Rates that are not positive numbers are treated as one message a second.
pub fn quota(per_second: f64) -> Quota {
    let per_second = usable_rate(per_second);
    let period = Duration::from_secs_f64(1.0 / per_second).max(Duration::from_nanos(1));
    let burst = (per_second / 20.0).floor().clamp(1.0, f64::from(u32::MAX)) as u32;
    Quota::with_period(period)
        .expect("the period is at least a nanosecond")
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// `per_second` when it is a positive number, otherwise one message a second.
pub fn usable_rate(per_second: f64) -> f64 {
    if per_second.is_finite() && per_second > 0.0 {
        per_second
    } else {
        1.0
    }
}

/// A campaign's limiter and the rate it was made for.
type CampaignLimiter<C> = (u32, Arc<Limiter<C>>);

/// The sender's limiter and one per rate-limited campaign.
pub struct SendRates<C: Clock = MonotonicClock> {
    clock: C,
    sender: Arc<Limiter<C>>,
    campaigns: Mutex<HashMap<CampaignId, CampaignLimiter<C>>>,
}

impl SendRates {
    /// Rates for a sender allowed `sender_per_second` messages a second, on the monotonic
    /// clock.
    pub fn new(sender_per_second: f64) -> Self {
        Self::with_clock(sender_per_second, MonotonicClock)
    }
}

impl<C: Clock + Clone> SendRates<C> {
    /// Rates on a given clock (tests use governor's fake clock).
    pub fn with_clock(sender_per_second: f64, clock: C) -> Self {
        Self {
            sender: Arc::new(RateLimiter::direct_with_clock(
                quota(sender_per_second),
                clock.clone(),
            )),
            clock,
            campaigns: Mutex::new(HashMap::new()),
        }
    }

    /// The sender's limiter.
    pub fn sender(&self) -> Arc<Limiter<C>> {
        self.sender.clone()
    }

    /// The limiter of a campaign with `per_second` (none when it has no rate of its own). A
    /// changed rate gets a fresh limiter.
    pub fn campaign(&self, id: CampaignId, per_second: Option<u32>) -> Option<Arc<Limiter<C>>> {
        let per_second = per_second.filter(|rate| *rate > 0)?;
        let mut campaigns = self.campaigns.lock().unwrap_or_else(|e| e.into_inner());
        let entry = campaigns.entry(id).or_insert_with(|| {
            let limiter =
                RateLimiter::direct_with_clock(quota(f64::from(per_second)), self.clock.clone());
            (per_second, Arc::new(limiter))
        });
        if entry.0 != per_second {
            let limiter =
                RateLimiter::direct_with_clock(quota(f64::from(per_second)), self.clock.clone());
            *entry = (per_second, Arc::new(limiter));
        }
        Some(entry.1.clone())
    }

    /// Takes one permit from `limiter` now, or answers how long until one is free.
    pub fn try_take(&self, limiter: &Limiter<C>) -> Result<(), Duration> {
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    /// How many permits `limiter` grants over `seconds`, polled every millisecond.
    fn granted(
        rates: &SendRates<FakeRelativeClock>,
        clock: &FakeRelativeClock,
        limiter: &Limiter<FakeRelativeClock>,
        seconds: u64,
    ) -> u64 {
        let mut granted = 0;
        for _ in 0..seconds * 1000 {
            while rates.try_take(limiter).is_ok() {
                granted += 1;
            }
            clock.advance(Duration::from_millis(1));
        }
        granted
    }

    #[test]
    fn the_sender_rate_holds_over_a_minute() {
        let clock = FakeRelativeClock::default();
        let rates = SendRates::with_clock(80.0, clock.clone());
        let sent = granted(&rates, &clock, &rates.sender(), 60);
        // 80 a second for 60 s, plus the initial burst of 4 beyond the first.
        assert!((4800..=4803).contains(&sent), "{sent}");
    }

    #[test]
    fn twilios_sandbox_sender_gets_one_message_every_three_seconds() {
        let clock = FakeRelativeClock::default();
        let rates = SendRates::with_clock(1.0 / 3.0, clock.clone());
        let sender = rates.sender();
        assert!(rates.try_take(&sender).is_ok());
        let wait = rates.try_take(&sender).unwrap_err();
        assert_eq!(wait, Duration::from_secs(3));
        clock.advance(Duration::from_millis(2_999));
        assert!(rates.try_take(&sender).is_err());
        clock.advance(Duration::from_millis(1));
        assert!(rates.try_take(&sender).is_ok());
    }

    #[test]
    fn each_campaign_has_its_own_rate() {
        let clock = FakeRelativeClock::default();
        let rates = SendRates::with_clock(1000.0, clock.clone());
        let (a, b) = (CampaignId::new(), CampaignId::new());
        let slow = rates.campaign(a, Some(2)).unwrap();
        let fast = rates.campaign(b, Some(10)).unwrap();
        // Polled over [0 s, 10 s): the first permit at 0, then one every 0.5 s.
        assert_eq!(granted(&rates, &clock, &slow, 10), 20);
        assert_eq!(granted(&rates, &clock, &fast, 10), 100);
        assert!(rates.campaign(a, None).is_none());
        assert!(rates.campaign(a, Some(0)).is_none());
    }

    #[test]
    fn a_changed_campaign_rate_takes_effect() {
        let clock = FakeRelativeClock::default();
        let rates = SendRates::with_clock(1000.0, clock.clone());
        let id = CampaignId::new();
        let before = rates.campaign(id, Some(1)).unwrap();
        let after = rates.campaign(id, Some(100)).unwrap();
        assert!(!Arc::ptr_eq(&before, &after));
        // A burst of 5 at once, then one every 10 ms for the rest of the second.
        assert_eq!(granted(&rates, &clock, &after, 1), 5 + 99);
    }

    #[test]
    fn nonsense_rates_fall_back_to_one_a_second() {
        for rate in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            let clock = FakeRelativeClock::default();
            let rates = SendRates::with_clock(rate, clock.clone());
            assert_eq!(granted(&rates, &clock, &rates.sender(), 5), 5, "{rate}");
        }
    }
}
