//! The sandbox adapter of the [`Provider`] port: the default when no Twilio credentials are set.
//!
//! It sends nothing. Each [`send`](Provider::send) is accepted at once with a fresh fake SID
//! (`SM` + 32 hex digits) and status `sending`; a spawned task then plays the message's
//! progress as Twilio would report it, one [`StatusFields`] per step, in the exact fields of
//! Twilio's status callback (`MessageSid`, `MessageStatus`, `ErrorCode`, `To`, `From`,
//! `AccountSid`, `ApiVersion`…), into the channel given at construction. Whoever reads that
//! channel feeds the fields to the same code as the `/twilio/status` webhook, so simulated
//! statuses take exactly the path of real ones.
//!
//! ```text
//! sending ─► sent ─► delivered ─► read             (1 − failure_share)
//!        ├─► sent ─► undelivered  (ErrorCode 30003/30008)  ┐ failure_share
//!        └─► failed               (ErrorCode 63003/30008)  ┘
//! ```
//!
//! A [`lookup`](Provider::lookup) after a lost answer is always `NotFound`: nothing real was
//! sent, so a resend is harmless. [`fetch_status`](Provider::fetch_status) answers where a
//! message's simulation has got to by now (the step its time has reached, whether or not its
//! report was read), for the last [`REMEMBERED`] messages this sandbox accepted; it knows
//! nothing of messages an earlier process accepted.
//!
//! Like Twilio's callbacks, a step may arrive before the caller has stored the SID returned by
//! `send` (always possible with a zero delay).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Accepted, Lookup, OutboundMessage, Provider, ProviderStatus, SendError, StatusFields};
use crate::domain::MessageStatus;

/// The `AccountSid` the sandbox reports: well-formed, but no real account's.
pub const SANDBOX_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

/// The sender the sandbox reports in `From`: Twilio's shared WhatsApp sandbox number.
pub const SANDBOX_FROM: &str = "whatsapp:+14155238886";

/// How the simulation behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// The pause before each simulated status (`sent`, `delivered`, `read`); zero sends them all
    /// at once.
    pub step_delay: Duration,
    /// The share of messages that fail (0.0 to 1.0; values outside are clamped, NaN is 0):
    /// half of those are `failed` at once, half `undelivered` after `sent`.
    pub failure_share: f64,
    /// Seeds the random choices, so that a test sees the same outcomes on every run; `None`
    /// draws a random seed.
    pub seed: Option<u64>,
}

impl Default for SandboxConfig {
    /// Half a second between steps, so a person watching the UI sees the statuses move; no
    /// failures; a random seed.
    fn default() -> Self {
        Self {
            step_delay: Duration::from_millis(500),
            failure_share: 0.0,
            seed: None,
        }
    }
}

/// A provider that sends nothing and reports simulated statuses (see the module docs).
#[derive(Debug)]
pub struct SandboxProvider {
    step_delay: Duration,
    failure_share: f64,
    rng: Mutex<fastrand::Rng>,
    statuses: mpsc::Sender<StatusFields>,
    simulated: Mutex<Simulated>,
}

/// How many accepted messages the sandbox remembers for
/// [`fetch_status`](Provider::fetch_status); older ones are forgotten first.
pub const REMEMBERED: usize = 100_000;

/// One accepted message's simulation: enough to tell where it is at any time.
#[derive(Debug)]
struct Simulation {
    to: String,
    accepted_at: Instant,
    fate: Fate,
}

/// The simulations of the last [`REMEMBERED`] messages, by SID.
#[derive(Debug, Default)]
struct Simulated {
    by_sid: HashMap<String, Simulation>,
    order: VecDeque<String>,
}

impl Simulated {
    fn remember(&mut self, sid: String, simulation: Simulation) {
        if self.order.len() >= REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.by_sid.remove(&oldest);
            }
        }
        self.order.push_back(sid.clone());
        self.by_sid.insert(sid, simulation);
    }
}

impl SandboxProvider {
    /// A sandbox that reports the statuses of its messages into `statuses`. Sends must happen
    /// inside a Tokio runtime, where the reports are played.
    pub fn new(config: SandboxConfig, statuses: mpsc::Sender<StatusFields>) -> Self {
        let failure_share = if config.failure_share.is_nan() {
            0.0
        } else {
            config.failure_share.clamp(0.0, 1.0)
        };
        let rng = match config.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Self {
            step_delay: config.step_delay,
            failure_share,
            rng: Mutex::new(rng),
            statuses,
            simulated: Mutex::new(Simulated::default()),
        }
    }

    /// Draws a SID and the message's fate.
    fn draw(&self) -> (String, Fate) {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The low half comes from a process-wide counter through a bijection, so no two SIDs of
        // this process are ever equal; the high half makes them look (and be) random.
        let low = spread(SID_COUNTER.fetch_add(1, Ordering::Relaxed));
        let sid = format!("SM{:016x}{low:016x}", rng.u64(..));
        let fate = if rng.f64() < self.failure_share {
            if rng.bool() {
                Fate::Failed(FAILED_CODES[rng.usize(..FAILED_CODES.len())])
            } else {
                Fate::Undelivered(UNDELIVERED_CODES[rng.usize(..UNDELIVERED_CODES.len())])
            }
        } else {
            Fate::Read
        };
        (sid, fate)
    }
}

/// Counts SIDs handed out by every sandbox of this process.
static SID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Twilio errors a WhatsApp message can fail with before it leaves Twilio: 63003 the recipient
/// is not on WhatsApp, 30008 unknown error.
const FAILED_CODES: [&str; 2] = ["63003", "30008"];
/// Twilio errors of a message that left Twilio but never arrived: 30003 unreachable handset,
/// 30008 unknown error.
const UNDELIVERED_CODES: [&str; 2] = ["30003", "30008"];

/// How a simulated message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Read,
    Failed(&'static str),
    Undelivered(&'static str),
}

impl Fate {
    /// The statuses reported after `sending`, with an error code on the failing one.
    fn steps(self) -> Vec<(MessageStatus, Option<&'static str>)> {
        use MessageStatus::*;
        match self {
            Fate::Read => vec![(Sent, None), (Delivered, None), (Read, None)],
            Fate::Failed(code) => vec![(Failed, Some(code))],
            Fate::Undelivered(code) => vec![(Sent, None), (Undelivered, Some(code))],
        }
    }
}

/// SplitMix64's finaliser: a bijection on `u64` that scatters consecutive numbers.
fn spread(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One status callback, in Twilio's field names.
fn status_fields(
    sid: &str,
    to: &str,
    status: MessageStatus,
    error_code: Option<&str>,
) -> StatusFields {
    let mut fields = StatusFields::new();
    let mut put = |name: &str, value: &str| fields.insert(name.to_string(), value.to_string());
    put("MessageSid", sid);
    put("SmsSid", sid);
    put("MessageStatus", status.as_str());
    put("SmsStatus", status.as_str());
    put("To", to);
    put("From", SANDBOX_FROM);
    put("AccountSid", SANDBOX_ACCOUNT_SID);
    put("ApiVersion", "2010-04-01");
    put("ChannelPrefix", "whatsapp");
    if let Some(code) = error_code {
        put("ErrorCode", code);
    }
    fields
}

#[async_trait]
impl Provider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendError> {
        let has_body = message.body.as_deref().is_some_and(|body| !body.is_empty());
        if !has_body && message.content_sid.is_none() {
            // What Twilio answers for the same request.
            return Err(SendError::Permanent {
                code: Some("21619".into()),
                message: "A text message body or a content SID must be specified".into(),
            });
        }
        let (sid, fate) = self.draw();
        tracing::debug!(message_id = %message.id, provider_sid = %sid, ?fate, "sandbox accepted");

        let to = message.to.whatsapp_address();
        self.simulated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remember(
                sid.clone(),
                Simulation {
                    to: to.clone(),
                    accepted_at: Instant::now(),
                    fate,
                },
            );
        let reports: Vec<StatusFields> = fate
            .steps()
            .into_iter()
            .map(|(status, code)| status_fields(&sid, &to, status, code))
            .collect();
        let (delay, statuses) = (self.step_delay, self.statuses.clone());
        tokio::spawn(async move {
            for report in reports {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if statuses.send(report).await.is_err() {
                    // Nobody listens any more (shutting down): nothing left to report to.
                    break;
                }
            }
        });

        Ok(Accepted {
            provider_sid: sid,
            status: MessageStatus::Sending,
        })
    }

    /// Always [`Lookup::NotFound`]: the sandbox keeps no record of what it accepted, and it
    /// never delivers anything, so sending the message again costs no real recipient a
    /// duplicate (at worst, simulated statuses also arrive for the SID whose answer was lost).
    async fn lookup(&self, message: &OutboundMessage, since: DateTime<Utc>) -> Lookup {
        let _ = (message, since);
        Lookup::NotFound
    }

    /// The step the message's simulation has reached by now, in a status callback's fields;
    /// `None` for a SID this sandbox does not remember.
    async fn fetch_status(&self, provider_sid: &str) -> Result<Option<ProviderStatus>, SendError> {
        let simulated = self
            .simulated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(simulation) = simulated.by_sid.get(provider_sid) else {
            return Ok(None);
        };
        let steps = simulation.fate.steps();
        let reached = if self.step_delay.is_zero() {
            steps.len()
        } else {
            let elapsed = simulation.accepted_at.elapsed().as_nanos();
            (elapsed / self.step_delay.as_nanos()).min(steps.len() as u128) as usize
        };
        let (status, code) = match reached {
            0 => (MessageStatus::Sending, None),
            n => steps[n - 1],
        };
        Ok(Some(ProviderStatus {
            fields: status_fields(provider_sid, &simulation.to, status, code),
        }))
    }
}

#[cfg(test)]
mod tests;
