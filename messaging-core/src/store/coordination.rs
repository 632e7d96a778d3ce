//! What processes sharing one database need to know of each other: who is alive (each
//! dispatcher's heartbeat), and how many sends the shared rate ceilings allow (permits taken
//! from buckets kept in the database, so that `SEND_RATE_PER_SECOND` and a campaign's own
//! rate hold for all processes together, not for each one).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// A dispatcher that said it is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveProcess {
    /// Its id (unique to one dispatcher of one process).
    pub id: String,
    /// Who it is, in words (program, process id, host).
    pub label: String,
    /// Until when it is taken to be alive unless it beats again.
    pub until: DateTime<Utc>,
}

/// Heartbeats and shared rate buckets.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait CoordinationStore: Send + Sync {
    /// Whether several processes may claim and send from this database at the same time
    /// (PostgreSQL), rather than one at a time under the sending lease (SQLite, whose single
    /// writer would gain nothing from more senders).
    fn concurrent_senders(&self) -> bool;

    /// Records that dispatcher `id` (`label` says who it is) is alive until `until`.
    async fn heartbeat(
        &self,
        id: &str,
        label: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Removes the heartbeat of a dispatcher that stopped cleanly.
    async fn end_heartbeat(&self, id: &str) -> Result<(), StoreError>;

    /// The dispatchers alive at `now`, the longest-living first.
    async fn live_processes(&self, now: DateTime<Utc>) -> Result<Vec<LiveProcess>, StoreError>;

    /// Takes up to `want` permits from the bucket `key` (created full), which refills at
    /// `per_second` permits a second and holds at most `burst`; answers how many were taken
    /// (none when it is empty). Every process taking from one key shares its rate.
    async fn take_permits(
        &self,
        key: &str,
        per_second: f64,
        burst: f64,
        want: u32,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError>;
}
