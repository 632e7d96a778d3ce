//! The life of an accepted message after the API answered: its status moves on (`sent`,
//! `delivered`, maybe `read`, or a failure with the plan's error code, 30008 by default; no
//! further than the plan's `stop_at`), and each step is posted to its `StatusCallback` as
//! Twilio posts it: form-encoded, Twilio's field names, signed with `X-Twilio-Signature`. A
//! callback that fails is logged and tried again a few times; it never stops the fake. The
//! plan's `dropped_share` of callbacks is never posted at all, as when the receiver is down.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use poem::http::{Request, header};
use tokio::sync::watch;

use crate::config::{CallbackPlan, FailureStatus};
use crate::ledger::{AcceptedMessage, CallbackRecord, MessageStatus};
use crate::resource::API_VERSION;
use crate::signature::twilio_signature;
use crate::state::FakeState;

/// How long one callback attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// A plain-HTTP client for callbacks (the receivers of a fake live on this machine).
#[derive(Clone)]
pub(crate) struct CallbackClient {
    http: Client<HttpConnector, Full<Bytes>>,
}

impl CallbackClient {
    pub fn new() -> Self {
        Self {
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Posts one form; answers the HTTP status, or why no answer came.
    async fn post_form(
        &self,
        url: &str,
        body: String,
        signature: &str,
        idempotency_token: &str,
    ) -> Result<u16, String> {
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::USER_AGENT, "TwilioProxy/1.1")
            .header("X-Twilio-Signature", signature)
            .header("I-Twilio-Idempotency-Token", idempotency_token)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build request: {e}"))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            // Read the answer to the end so the connection can be reused.
            let _ = response.into_body().collect().await;
            Ok(status)
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")))
    }
}

/// Starts the simulated delivery of an accepted message in the background.
pub(crate) fn spawn_lifecycle(state: Arc<FakeState>, message: AcceptedMessage, generation: u64) {
    let plan = state.callback_plan();
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        for (status, error_code) in steps(&plan) {
            if !pause(Duration::from_millis(plan.delay_ms), &mut shutdown).await {
                return;
            }
            state.ledger(|l| l.set_status(generation, &message.sid, status, error_code));
            if let Some(url) = &message.status_callback {
                let record = if plan.dropped_share > 0.0 && fastrand::f64() < plan.dropped_share {
                    dropped(&message, url, status)
                } else {
                    deliver(&state, &plan, &message, url, status, error_code).await
                };
                state.ledger(|l| l.record_callback(generation, record));
            }
        }
    });
}

/// The statuses one message goes through after acceptance.
fn steps(plan: &CallbackPlan) -> Vec<(MessageStatus, Option<u32>)> {
    use MessageStatus::*;
    let code = plan.failure_error_code;
    let mut steps = if plan.failed_share > 0.0 && fastrand::f64() < plan.failed_share {
        match plan.failure_status {
            FailureStatus::Undelivered => vec![(Sent, None), (Undelivered, Some(code))],
            FailureStatus::Failed => vec![(Failed, Some(code))],
        }
    } else if plan.send_read {
        vec![(Sent, None), (Delivered, None), (Read, None)]
    } else {
        vec![(Sent, None), (Delivered, None)]
    };
    match plan.stop_at {
        Some(Queued | Accepted) => steps.clear(),
        Some(last) => {
            if let Some(at) = steps.iter().position(|(status, _)| *status == last) {
                steps.truncate(at + 1);
            }
        }
        None => {}
    }
    steps
}

/// The record of a callback fault injection dropped: never posted.
fn dropped(message: &AcceptedMessage, url: &str, status: MessageStatus) -> CallbackRecord {
    tracing::info!(sid = %message.sid, status = status.as_str(), url, "status callback dropped");
    CallbackRecord {
        message_sid: message.sid.clone(),
        status,
        url: url.to_owned(),
        attempts: 0,
        delivered: false,
        response_status: None,
        error: Some("dropped by fault injection".into()),
    }
}

/// Waits `delay` unless the fake shuts down first; answers whether to go on.
async fn pause(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    if delay.is_zero() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = shutdown.changed() => false,
    }
}

/// The fields Twilio posts to a message's `StatusCallback`.
pub(crate) fn callback_params(
    state: &FakeState,
    message: &AcceptedMessage,
    status: MessageStatus,
    error_code: Option<u32>,
) -> Vec<(String, String)> {
    let from = message.from.as_deref().unwrap_or(&state.service_sender);
    let mut params = vec![
        ("AccountSid", message.account_sid.as_str()),
        ("ApiVersion", API_VERSION),
        ("From", from),
        ("MessageSid", &message.sid),
        ("MessageStatus", status.as_str()),
        ("SmsSid", &message.sid),
        ("SmsStatus", status.as_str()),
        ("To", &message.to),
    ];
    if message.to.starts_with("whatsapp:") {
        params.push(("ChannelPrefix", "whatsapp"));
    }
    if let Some(service) = &message.messaging_service_sid {
        params.push(("MessagingServiceSid", service));
    }
    let mut params: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Some(code) = error_code {
        params.push(("ErrorCode".to_owned(), code.to_string()));
    }
    params
}

/// Posts one status, trying again after failures; answers what happened.
async fn deliver(
    state: &FakeState,
    plan: &CallbackPlan,
    message: &AcceptedMessage,
    url: &str,
    status: MessageStatus,
    error_code: Option<u32>,
) -> CallbackRecord {
    let params = callback_params(state, message, status, error_code);
    let signature = twilio_signature(&state.auth_token, url, &params);
    let body = serde_urlencoded::to_string(&params).unwrap_or_default();
    let idempotency_token = format!("{}-{}", message.sid, status.as_str());
    let mut record = CallbackRecord {
        message_sid: message.sid.clone(),
        status,
        url: url.to_owned(),
        attempts: 0,
        delivered: false,
        response_status: None,
        error: None,
    };
    loop {
        record.attempts += 1;
        let outcome = state
            .callback_client
            .post_form(url, body.clone(), &signature, &idempotency_token)
            .await;
        match outcome {
            Ok(code) if (200..300).contains(&code) => {
                record.delivered = true;
                record.response_status = Some(code);
                record.error = None;
                tracing::debug!(sid = %message.sid, status = status.as_str(), url, "status callback delivered");
                return record;
            }
            Ok(code) => {
                record.response_status = Some(code);
                record.error = Some(format!("answered {code}"));
            }
            Err(error) => {
                record.response_status = None;
                record.error = Some(error);
            }
        }
        let error = record.error.as_deref().unwrap_or_default();
        if record.attempts > plan.retries {
            tracing::warn!(sid = %message.sid, status = status.as_str(), url, attempts = record.attempts, error, "status callback given up");
            return record;
        }
        tracing::warn!(sid = %message.sid, status = status.as_str(), url, attempt = record.attempts, error, "status callback failed, will retry");
        let backoff = Duration::from_millis(plan.retry_backoff_ms * u64::from(record.attempts));
        let mut shutdown = state.shutdown.clone();
        if !pause(backoff, &mut shutdown).await {
            return record;
        }
    }
}
