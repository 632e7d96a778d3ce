//! `/metrics` in Prometheus' text format: messages by status and the outbox depth (read from
//! the engine at scrape time), sends by outcome and the provider's latency (a histogram, from
//! [`MeteredProvider`] around the provider), and webhooks by kind and answer.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_core::Engine;
use messaging_core::domain::MessageStatus;
use messaging_core::provider::{
    Accepted, Lookup, OutboundMessage, Provider, ProviderStatus, SendError,
};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

/// Upper bounds of the provider latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters the server keeps.
#[derive(Default)]
pub struct Metrics {
    webhooks: Mutex<BTreeMap<(&'static str, u16), u64>>,
    sends: Mutex<BTreeMap<&'static str, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    /// Counts a webhook of `kind` answered with `status`.
    pub fn webhook(&self, kind: &'static str, status: StatusCode) {
        let mut webhooks = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        *webhooks.entry((kind, status.as_u16())).or_default() += 1;
    }

    fn send(&self, outcome: &'static str, seconds: f64) {
        *self
            .sends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(outcome)
            .or_default() += 1;
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The text exposition, with the engine's message counts.
    pub async fn render(&self, engine: &Engine) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP messaging_messages Outbound messages by status.\n# TYPE messaging_messages gauge"
        );
        let mut depth = 0;
        match engine.stats(None).await {
            Ok(stats) => {
                for (status, count) in &stats.by_status {
                    let _ = writeln!(
                        out,
                        "messaging_messages{{status=\"{}\"}} {count}",
                        status.as_str()
                    );
                    if matches!(
                        status,
                        MessageStatus::Pending
                            | MessageStatus::Queued
                            | MessageStatus::Deferred
                            | MessageStatus::Sending
                    ) {
                        depth += count;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "metrics could not read message counts"),
        }
        let _ = writeln!(
            out,
            "# HELP messaging_outbox_depth Messages not yet handed to the provider or answered.\n\
             # TYPE messaging_outbox_depth gauge\nmessaging_outbox_depth {depth}"
        );
        let _ = writeln!(
            out,
            "# HELP messaging_sends_total Provider calls by outcome.\n# TYPE messaging_sends_total counter"
        );
        for (outcome, count) in self.sends.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "messaging_sends_total{{outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP messaging_provider_latency_seconds Time the provider took to answer a send.\n\
             # TYPE messaging_provider_latency_seconds histogram"
        );
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "messaging_provider_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "messaging_provider_latency_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             messaging_provider_latency_seconds_sum {sum}\n\
             messaging_provider_latency_seconds_count {count}"
        );
        let _ = writeln!(
            out,
            "# HELP messaging_webhooks_total Twilio webhooks by kind and answer.\n\
             # TYPE messaging_webhooks_total counter"
        );
        for ((kind, status), count) in self
            .webhooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "messaging_webhooks_total{{kind=\"{kind}\",status=\"{status}\"}} {count}"
            );
        }
        out
    }
}

/// `GET /metrics`.
#[handler]
pub async fn scrape(engine: Data<&Engine>, metrics: Data<&Arc<Metrics>>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render(&engine).await)
}

/// A provider that counts its sends and times them.
pub struct MeteredProvider {
    inner: Arc<dyn Provider>,
    metrics: Arc<Metrics>,
}

impl MeteredProvider {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Provider>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Provider for MeteredProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendError> {
        let started = Instant::now();
        let answer = self.inner.send(message).await;
        let outcome = match &answer {
            Ok(_) => "accepted",
            Err(SendError::Transient { .. }) => "transient",
            Err(SendError::Permanent { .. }) => "permanent",
            Err(SendError::Unknown { .. }) => "unknown",
        };
        self.metrics.send(outcome, started.elapsed().as_secs_f64());
        answer
    }

    async fn lookup(&self, message: &OutboundMessage, since: DateTime<Utc>) -> Lookup {
        self.inner.lookup(message, since).await
    }

    async fn fetch_status(&self, provider_sid: &str) -> Result<Option<ProviderStatus>, SendError> {
        self.inner.fetch_status(provider_sid).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_fetches_reach_the_wrapped_provider() {
        use messaging_core::domain::{MessageId, PhoneNumber};
        use messaging_core::provider::{SandboxConfig, SandboxProvider};

        let (statuses, _received) = tokio::sync::mpsc::channel(16);
        let config = SandboxConfig {
            step_delay: std::time::Duration::ZERO,
            ..SandboxConfig::default()
        };
        let sandbox = Arc::new(SandboxProvider::new(config, statuses));
        let metered = MeteredProvider::new(sandbox, Arc::new(Metrics::default()));
        let message = OutboundMessage {
            id: MessageId::new(),
            to: PhoneNumber::parse("+14155552671").unwrap(),
            body: Some("Hello".into()),
            content_sid: None,
            content_variables: None,
        };
        let sid = metered.send(&message).await.unwrap().provider_sid;
        let fetched = metered.fetch_status(&sid).await.unwrap();
        assert_eq!(fetched.unwrap().fields["MessageStatus"], "read");
    }

    #[test]
    fn latency_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.send("accepted", 0.02);
        metrics.send("transient", 3.0);
        let buckets: Vec<u64> = metrics
            .latency_buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(buckets, [0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2]);
        assert_eq!(metrics.latency_count.load(Ordering::Relaxed), 2);
    }
}
