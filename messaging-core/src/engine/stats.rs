//! Delivery statistics: counts per status, the delivered share, failures by error code,
//! opt-outs and inbound traffic, for one campaign or in total; and the time series of sends,
//! deliveries and failures over the last hour, day or week (the dashboard's chart).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;

use crate::domain::{CampaignId, MessageStatus};
use crate::store::SkippedBy;

use super::{Engine, EngineError};

/// Delivery statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Messages in all.
    pub messages: u64,
    /// Messages per status; every status is listed, with 0 when it has none.
    pub by_status: BTreeMap<MessageStatus, u64>,
    /// Delivered (or read) messages as a percentage of those the provider finished with
    /// (sent, delivered, read, failed, undelivered); `None` before any finished.
    pub delivery_percent: Option<f64>,
    /// Failed and undelivered messages per provider error code (`unknown` without one).
    pub failures_by_error_code: BTreeMap<String, u64>,
    /// Why messages were skipped: per policy step, how many and one reason, which says what
    /// to do (campaigns only; empty in the totals).
    pub skipped_by_step: Vec<SkippedBy>,
    /// Users who have opted out (totals only).
    pub opted_out_users: Option<u64>,
    /// Inbound messages received (totals only).
    pub inbound_messages: Option<u64>,
    /// Inbound messages that were commands (totals only).
    pub inbound_commands: Option<u64>,
}

/// The span a time series covers, and how finely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesWindow {
    /// The last hour, per minute.
    Hour,
    /// The last 24 hours, per 15 minutes.
    Day,
    /// The last 7 days, per 2 hours.
    Week,
}

impl SeriesWindow {
    /// Parses `hour`, `day` or `week`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            _ => None,
        }
    }

    /// The length of one bucket and how many buckets the window holds.
    fn buckets(self) -> (Duration, u32) {
        match self {
            Self::Hour => (Duration::minutes(1), 60),
            Self::Day => (Duration::minutes(15), 96),
            Self::Week => (Duration::hours(2), 84),
        }
    }
}

/// Messages that changed status within one bucket of time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeriesPoint {
    /// The bucket's start.
    pub start: DateTime<Utc>,
    /// Messages handed to the provider (changed to `sent`).
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages read.
    pub read: u64,
    /// Messages that failed or were undelivered.
    pub failed: u64,
}

/// Sends, deliveries, reads and failures over a window, one point per bucket, oldest first;
/// every bucket is listed, with zeros when nothing happened in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeSeries {
    /// The bucket length in seconds.
    pub bucket_seconds: i64,
    /// The points.
    pub points: Vec<SeriesPoint>,
}

impl Engine {
    /// The time series of status changes over the last `window`, ending with the bucket that
    /// holds now. Counts come from the messages' status history, so a message that was sent
    /// then delivered counts once in each series, at the time of each change.
    pub async fn time_series(&self, window: SeriesWindow) -> Result<TimeSeries, EngineError> {
        use MessageStatus::*;
        let (bucket, count) = window.buckets();
        let now = self.clock.now();
        let current = now.duration_trunc(bucket).unwrap_or(now);
        let since = current - bucket * (count as i32 - 1);
        let changes = self
            .store
            .status_changes(since, bucket, &[Sent, Delivered, Read, Failed, Undelivered])
            .await?;
        let mut points: Vec<SeriesPoint> = (0..count)
            .map(|i| SeriesPoint {
                start: since + bucket * i as i32,
                ..SeriesPoint::default()
            })
            .collect();
        for change in changes {
            let Some(point) = points.get_mut(change.bucket as usize) else {
                continue;
            };
            match change.status {
                Sent => point.sent += change.count,
                Delivered => point.delivered += change.count,
                Read => point.read += change.count,
                Failed | Undelivered => point.failed += change.count,
                _ => {}
            }
        }
        Ok(TimeSeries {
            bucket_seconds: bucket.num_seconds(),
            points,
        })
    }

    /// Statistics for one campaign, or for everything when `campaign` is `None`.
    pub async fn stats(&self, campaign: Option<CampaignId>) -> Result<Stats, EngineError> {
        if let Some(id) = campaign {
            self.get_campaign(id).await?;
        }
        let counts = self.store.message_counts(campaign).await?;
        let mut by_status: BTreeMap<MessageStatus, u64> =
            MessageStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        by_status.extend(counts.by_status);
        let (opted_out_users, inbound) = match campaign {
            Some(_) => (None, None),
            None => (
                Some(self.store.count_opted_out().await?),
                Some(self.store.count_inbound().await?),
            ),
        };
        Ok(Stats {
            messages: by_status.values().sum(),
            delivery_percent: delivery_percent(&by_status),
            by_status,
            failures_by_error_code: counts.by_error_code,
            skipped_by_step: counts.skipped_by_step,
            opted_out_users,
            inbound_messages: inbound.map(|(all, _)| all),
            inbound_commands: inbound.map(|(_, commands)| commands),
        })
    }
}

/// Delivered or read messages as a percentage (one decimal) of those the provider finished.
fn delivery_percent(by_status: &BTreeMap<MessageStatus, u64>) -> Option<f64> {
    use MessageStatus::*;
    let count = |statuses: &[MessageStatus]| -> u64 {
        statuses.iter().filter_map(|s| by_status.get(s)).sum()
    };
    let delivered = count(&[Delivered, Read]);
    let finished = count(&[Sent, Delivered, Read, Failed, Undelivered]);
    (finished > 0).then(|| (delivered as f64 * 1000.0 / finished as f64).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;

    #[test]
    fn the_delivered_share_counts_only_finished_messages() {
        let counts: BTreeMap<_, _> = [
            (Pending, 50),
            (Skipped, 10),
            (Sent, 1),
            (Delivered, 5),
            (Read, 2),
            (Failed, 1),
            (Undelivered, 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(delivery_percent(&counts), Some(70.0));
        let waiting: BTreeMap<_, _> = [(Pending, 3), (Skipped, 1)].into_iter().collect();
        assert_eq!(delivery_percent(&waiting), None);
        let third: BTreeMap<_, _> = [(Delivered, 1), (Failed, 2)].into_iter().collect();
        assert_eq!(delivery_percent(&third), Some(33.3));
    }
}
