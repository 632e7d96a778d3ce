//! What the fake is told at start, and what can change while it runs.
//!
//! [`FakeConfig`] is fixed for the life of a fake (address, credentials). Its [`Behaviour`]
//! (fault injection and status callbacks) can be replaced through the library
//! ([`crate::FakeTwilio::set_faults`]) or patched over HTTP (`POST /_fake/config` with a JSON
//! merge patch, see [`Behaviour::merge_patch`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ledger::MessageStatus;

/// Everything a fake needs to start.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Address to listen on; port 0 picks a free port (see [`crate::FakeTwilio::base_url`]).
    pub bind: SocketAddr,
    /// The only account SID the fake knows (the Basic-auth user name and the `{AccountSid}`
    /// in paths).
    pub account_sid: String,
    /// The account's auth token: the Basic-auth password and the key of `X-Twilio-Signature`.
    pub auth_token: String,
    /// The sender reported in status callbacks for messages sent with `MessagingServiceSid`
    /// and no `From` (Twilio picks a number from the service's sender pool).
    pub service_sender: String,
    /// Fault injection and status callbacks, as they are at start and after a reset.
    pub behaviour: Behaviour,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            account_sid: DEFAULT_ACCOUNT_SID.to_owned(),
            auth_token: DEFAULT_AUTH_TOKEN.to_owned(),
            service_sender: "whatsapp:+14155238886".to_owned(),
            behaviour: Behaviour::default(),
        }
    }
}

/// Account SID used when none is given.
pub const DEFAULT_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// Auth token used when none is given.
pub const DEFAULT_AUTH_TOKEN: &str = "fake-twilio-auth-token";

/// The part of the configuration that can change at run time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// How requests to the Messages API fail.
    #[serde(default)]
    pub faults: Faults,
    /// How accepted messages progress and report their statuses.
    #[serde(default)]
    pub callbacks: CallbackPlan,
}

/// Fault injection for `POST .../Messages.json` (and, with `list_server_error_share`, for the
/// list of messages).
///
/// For each authenticated send, the next entry of `script` (if any) decides its fate;
/// otherwise one random draw picks 429 with `rate_limited_share`, else 5xx with
/// `server_error_share`, else a dropped connection with `dropped_connection_share`.
/// The shares must each lie in 0..=1, and the three of sends add up to at most 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fixed delay before every Messages API request is answered.
    pub latency_ms: u64,
    /// Extra random delay, uniform in `0..=jitter_ms`, added to `latency_ms`.
    pub jitter_ms: u64,
    /// Share of requests answered `429` (Twilio code 20429, `Retry-After: 1`).
    pub rate_limited_share: f64,
    /// Share of requests answered `500` or `503` (Twilio codes 20500 / 20503), half each.
    pub server_error_share: f64,
    /// Share of requests whose connection is closed without any answer.
    pub dropped_connection_share: f64,
    /// Whether a dropped request was accepted first (the message exists, is listed and gets
    /// its callbacks, but the client never learns so) or dropped before acceptance.
    pub drop_after_accept: bool,
    /// Recipients (E.164, without `whatsapp:`) that always get a permanent error, by code.
    pub permanent_errors: BTreeMap<String, u32>,
    /// Faults for the next requests, in order, consumed before any random draw.
    pub script: VecDeque<ScriptedFault>,
    /// Share of list requests (`GET .../Messages.json`) answered `500` or `503`, half each.
    /// Drawn on its own: sends and their `script` are unaffected.
    pub list_server_error_share: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            rate_limited_share: 0.0,
            server_error_share: 0.0,
            dropped_connection_share: 0.0,
            drop_after_accept: true,
            permanent_errors: default_permanent_errors(),
            script: VecDeque::new(),
            list_server_error_share: 0.0,
        }
    }
}

/// The recipients that fail permanently unless told otherwise: an invalid number (21211),
/// a recipient who unsubscribed at the carrier (21610) and one outside the WhatsApp
/// 24-hour window (63016).
pub fn default_permanent_errors() -> BTreeMap<String, u32> {
    BTreeMap::from([
        ("+15005550001".to_owned(), 21211),
        ("+15005550002".to_owned(), 21610),
        ("+15005550003".to_owned(), 63016),
    ])
}

/// One deterministic fault for [`Faults::script`]; `"ok"` lets a request through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptedFault {
    /// Handle the request normally.
    Ok,
    /// Answer 429 with `Retry-After: 1`.
    RateLimited,
    /// Answer 500.
    ServerError,
    /// Answer 503.
    Unavailable,
    /// Accept the message, then close the connection without answering.
    DropAfterAccept,
    /// Close the connection without answering and without accepting the message.
    DropBeforeAccept,
}

/// How an accepted message moves through its statuses, and how they are reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbackPlan {
    /// Delay before each status step (`sent`, `delivered`, ...); 0 reports them at once.
    pub delay_ms: u64,
    /// Whether delivered messages are also `read`.
    pub send_read: bool,
    /// Share of messages that end in failure (`failure_error_code`) instead of `delivered`.
    pub failed_share: f64,
    /// How those messages fail.
    pub failure_status: FailureStatus,
    /// How many times a callback that could not be delivered is tried again.
    pub retries: u32,
    /// Pause before each retry, multiplied by the attempt number.
    pub retry_backoff_ms: u64,
    /// Share of status callbacks never posted, as if their receiver were down for every
    /// attempt: the message's status still moves on (a fetch shows it), and the callback is
    /// recorded as not delivered.
    pub dropped_share: f64,
    /// The last status messages reach (`sent`: the recipient's phone is off; `queued`: they
    /// never leave); `null`, the default, lets them go all the way.
    pub stop_at: Option<MessageStatus>,
    /// The error code of messages that fail after acceptance (Twilio's 30008, unknown error,
    /// unless told otherwise; 21610 for a recipient who unsubscribed at the carrier).
    pub failure_error_code: u32,
}

impl Default for CallbackPlan {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            send_read: false,
            failed_share: 0.0,
            failure_status: FailureStatus::Undelivered,
            retries: 2,
            retry_backoff_ms: 200,
            dropped_share: 0.0,
            stop_at: None,
            failure_error_code: 30008,
        }
    }
}

/// The final status of a message that fails after acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStatus {
    /// `sent`, then `undelivered` (the carrier or WhatsApp could not deliver it).
    Undelivered,
    /// `failed` straight away (it never left Twilio).
    Failed,
}

/// A configuration that does not make sense, with the field at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A share outside 0..=1.
    #[error("`{field}` must be between 0 and 1, got {value}")]
    ShareOutOfRange {
        /// Which share.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// Fault shares that add up to more than 1.
    #[error("rate_limited_share + server_error_share + dropped_connection_share is {0}, above 1")]
    SharesAboveOne(f64),
    /// A JSON patch that does not fit the configuration's shape.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Behaviour {
    /// Checks that shares are probabilities and fault shares add up to at most 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = &self.faults;
        let shares = [
            ("rate_limited_share", f.rate_limited_share),
            ("server_error_share", f.server_error_share),
            ("dropped_connection_share", f.dropped_connection_share),
            ("list_server_error_share", f.list_server_error_share),
            ("failed_share", self.callbacks.failed_share),
            ("dropped_share", self.callbacks.dropped_share),
        ];
        for (field, value) in shares {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::ShareOutOfRange { field, value });
            }
        }
        let total = f.rate_limited_share + f.server_error_share + f.dropped_connection_share;
        if total > 1.0 + 1e-9 {
            return Err(ConfigError::SharesAboveOne(total));
        }
        Ok(())
    }

    /// Applies a JSON merge patch (RFC 7386): objects merge key by key, `null` removes a key
    /// (e.g. a permanent-error recipient) or restores a field's default, anything else replaces.
    ///
    /// `{"faults": {"rate_limited_share": 0.2}}` changes that one share and keeps the rest.
    pub fn merge_patch(&self, patch: &serde_json::Value) -> Result<Behaviour, ConfigError> {
        let mut current =
            serde_json::to_value(self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        merge(&mut current, patch);
        let patched: Behaviour =
            serde_json::from_value(current).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        patched.validate()?;
        Ok(patched)
    }
}

fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_changes_only_the_named_fields() {
        let patched = Behaviour::default()
            .merge_patch(
                &json!({"faults": {"rate_limited_share": 0.25}, "callbacks": {"send_read": true}}),
            )
            .unwrap();
        assert_eq!(patched.faults.rate_limited_share, 0.25);
        assert!(patched.callbacks.send_read);
        assert_eq!(patched.faults.permanent_errors, default_permanent_errors());
    }

    #[test]
    fn merge_patch_null_removes_a_permanent_error_recipient() {
        let patched = Behaviour::default()
            .merge_patch(&json!({"faults": {"permanent_errors": {"+15005550001": null, "+15550001111": 21610}}}))
            .unwrap();
        assert!(!patched.faults.permanent_errors.contains_key("+15005550001"));
        assert_eq!(patched.faults.permanent_errors["+15550001111"], 21610);
    }

    #[test]
    fn merge_patch_rejects_unknown_fields_and_bad_shares() {
        let base = Behaviour::default();
        assert!(matches!(
            base.merge_patch(&json!({"faults": {"rate_limit_share": 0.1}})),
            Err(ConfigError::Invalid(_))
        ));
        assert_eq!(
            base.merge_patch(&json!({"faults": {"server_error_share": 1.5}})),
            Err(ConfigError::ShareOutOfRange {
                field: "server_error_share",
                value: 1.5
            })
        );
        assert!(matches!(
            base.merge_patch(
                &json!({"faults": {"rate_limited_share": 0.6, "server_error_share": 0.6}})
            ),
            Err(ConfigError::SharesAboveOne(_))
        ));
    }

    #[test]
    fn callbacks_can_be_dropped_stopped_at_a_status_and_fail_with_a_chosen_code() {
        let patched = Behaviour::default()
            .merge_patch(&json!({"callbacks": {
                "dropped_share": 1.0, "stop_at": "sent", "failure_error_code": 21610,
            }}))
            .unwrap();
        assert_eq!(patched.callbacks.dropped_share, 1.0);
        assert_eq!(patched.callbacks.stop_at, Some(MessageStatus::Sent));
        assert_eq!(patched.callbacks.failure_error_code, 21610);
        assert_eq!(
            Behaviour::default().merge_patch(&json!({"callbacks": {"dropped_share": 2.0}})),
            Err(ConfigError::ShareOutOfRange {
                field: "dropped_share",
                value: 2.0
            })
        );
    }

    #[test]
    fn scripted_faults_use_snake_case_names() {
        let patched = Behaviour::default()
            .merge_patch(
                &json!({"faults": {"script": ["rate_limited", "drop_after_accept", "ok"]}}),
            )
            .unwrap();
        assert_eq!(
            Vec::from(patched.faults.script),
            vec![
                ScriptedFault::RateLimited,
                ScriptedFault::DropAfterAccept,
                ScriptedFault::Ok
            ]
        );
    }
}
