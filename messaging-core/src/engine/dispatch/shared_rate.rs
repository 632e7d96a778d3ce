//! Rate ceilings shared by every process sending from one database.
//!
//! Each process paces its own sends with its local limiters ([`SendRates`]); when several
//! processes send at once (PostgreSQL), each send also takes a permit from the database's
//! bucket for the ceiling (`sender`, and `campaign:<id>` for a campaign with its own rate),
//! so that together they never go faster than the ceiling. Permits are taken a few at a time
//! (about a twentieth of a second's worth), so the database sees a few statements a second
//! per process, not one per message; a bucket holds at most that much, so the ceiling holds
//! over any window longer than a fraction of a second. Permits a process took and did not
//! use (it stopped, or its messages were skipped) are lost: the processes together may go
//! slower than the ceiling, never faster.
//!
//! The buckets refill by the wall clock, which processes on different machines are expected
//! to keep in step (NTP), as they must for schedules anyway.
//!
//! [`SendRates`]: crate::orchestrate::rate::SendRates

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;

use crate::domain::CampaignId;
use crate::engine::{Engine, EngineError};
use crate::orchestrate::rate::usable_rate;

/// The bucket of the sender's ceiling (`SEND_RATE_PER_SECOND`).
pub(super) const SENDER_BUCKET: &str = "sender";

/// The bucket of a campaign's own rate.
pub(super) fn campaign_bucket(id: CampaignId) -> String {
    format!("campaign:{id}")
}

/// Permits this process took and has not used yet, per bucket.
pub(super) struct SharedRates {
    engine: Engine,
    unused: Mutex<HashMap<String, u32>>,
}

impl SharedRates {
    pub(super) fn new(engine: Engine) -> Self {
        Self {
            engine,
            unused: Mutex::default(),
        }
    }

    /// Waits until the bucket `key`, shared at `per_second` by every process, allows one
    /// more send.
    pub(super) async fn take(&self, key: &str, per_second: f64) -> Result<(), EngineError> {
        let per_second = usable_rate(per_second);
        let batch = (per_second / 20.0).floor().clamp(1.0, 256.0);
        loop {
            if self.take_unused(key) {
                return Ok(());
            }
            let taken = self
                .engine
                .store
                .take_permits(key, per_second, batch, batch as u32, Utc::now())
                .await?;
            if taken > 0 {
                self.unused
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.to_owned(), taken - 1);
                return Ok(());
            }
            // Empty: wait about as long as the bucket takes to hold a batch again.
            tokio::time::sleep(Duration::from_secs_f64(
                (batch / per_second).clamp(0.005, 1.0),
            ))
            .await;
        }
    }

    /// Whether a permit of `key` is at hand, so [`take`](Self::take) answers without asking
    /// the database or waiting.
    pub(super) fn has_unused(&self, key: &str) -> bool {
        self.unused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .is_some_and(|left| *left > 0)
    }

    fn take_unused(&self, key: &str) -> bool {
        let mut unused = self.unused.lock().unwrap_or_else(|e| e.into_inner());
        match unused.get_mut(key) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }
}
