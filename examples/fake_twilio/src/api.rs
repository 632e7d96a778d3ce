//! The part of Twilio's REST API the fake serves: create a message, list messages, fetch a
//! message.
//!
//! A create goes: latency → Basic auth → fault injection (scripted, then random) → form
//! validation → permanent errors of the recipient → acceptance (recorded, callbacks started)
//! → the 201 answer, unless the connection is to be dropped. A list goes: latency → Basic auth
//! → `list_server_error_share` → the page (see [`crate::list`]); it lists every accepted
//! message, those whose answer was dropped included, and nothing that was refused, beside the
//! messages users sent in. A fetch
//! goes: latency → Basic auth → the message as it is now (its status moved on whether or not
//! its callbacks got through; a message a user sent in as it arrived), or 404.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use poem::http::{StatusCode, header};
use poem::web::{Data, Path};
use poem::{Body, IntoResponse, Request, Response, handler};

use crate::callbacks::spawn_lifecycle;
use crate::ledger::{AcceptedMessage, MessageStatus};
use crate::list::{ListQuery, page_json};
use crate::outbound::{Content, OutboundRequest, Sender, num_segments};
use crate::resource::{inbound_json, message_json, new_message_sid, rfc2822_now};
use crate::state::{FakeState, Fate};
use crate::twilio_error::TwilioError;

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
#[handler]
pub(crate) async fn create_message(
    request: &Request,
    Path(account_sid): Path<String>,
    body: Body,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    state.ledger(|l| l.counters.requests += 1);
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !is_authorized(request, &account_sid, state) {
        state.ledger(|l| l.counters.unauthorized += 1);
        return TwilioError::unauthenticated().into_response();
    }

    let fate = state.next_fate();
    match fate {
        Fate::RateLimited => {
            state.ledger(|l| l.counters.rate_limited += 1);
            return TwilioError::rate_limited().into_response();
        }
        Fate::ServerError(status) => {
            state.ledger(|l| l.counters.server_errors += 1);
            return TwilioError::server_error(status).into_response();
        }
        Fate::Drop {
            after_accept: false,
        } => return drop_connection(request, state, None),
        Fate::Proceed | Fate::Drop { .. } => {}
    }

    let fields = match body.into_vec().await {
        Ok(bytes) => serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).ok(),
        Err(_) => None,
    };
    let Some(fields) = fields else {
        state.ledger(|l| l.counters.invalid += 1);
        return TwilioError::bad_request(20001, "Could not parse the form-encoded request body.")
            .into_response();
    };
    let outbound = match OutboundRequest::parse(&fields) {
        Ok(outbound) => outbound,
        Err(error) => {
            state.ledger(|l| l.counters.invalid += 1);
            return error.into_response();
        }
    };
    if let Some(code) = state.permanent_error(outbound.to_number()) {
        state.ledger(|l| l.counters.permanent_errors += 1);
        return TwilioError::permanent(code, &outbound.to).into_response();
    }

    let message = accepted_message(&state.account_sid, &outbound, fields);
    let generation = state.ledger(|l| l.accept(message.clone()));
    tracing::info!(sid = %message.sid, to = %message.to, "message accepted");
    spawn_lifecycle(state.clone(), message.clone(), generation);

    if matches!(fate, Fate::Drop { .. }) {
        return drop_connection(request, state, Some(&message.sid));
    }
    let mut response = poem::web::Json(message_json(&message)).into_response();
    response.set_status(StatusCode::CREATED);
    response
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages.json?To=…&From=…&PageSize=…`
#[handler]
pub(crate) async fn list_messages(
    request: &Request,
    Path(account_sid): Path<String>,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    state.ledger(|l| l.counters.lists += 1);
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !is_authorized(request, &account_sid, state) {
        return TwilioError::unauthenticated().into_response();
    }
    if let Some(status) = state.list_fault() {
        return TwilioError::server_error(status).into_response();
    }
    let query = match ListQuery::parse(request.uri().query().unwrap_or_default()) {
        Ok(query) => query,
        Err(error) => return error.into_response(),
    };
    // Filtered and paged under the ledger's lock, so a busy fake copies only what the page
    // shows.
    let page = state.ledger(|l| {
        page_json(
            &state.account_sid,
            &query,
            &l.newest_first(|m| query.keeps(m)),
        )
    });
    match page {
        Ok(page) => poem::web::Json(page).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}.json`
#[handler]
pub(crate) async fn fetch_message(
    request: &Request,
    Path((account_sid, file)): Path<(String, String)>,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    state.ledger(|l| l.counters.fetches += 1);
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !is_authorized(request, &account_sid, state) {
        return TwilioError::unauthenticated().into_response();
    }
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    let found = state.ledger(|l| {
        l.message(sid)
            .map(|message| message_json(&message))
            .or_else(|| l.find_inbound(sid).map(inbound_json))
    });
    match found {
        Some(resource) => poem::web::Json(resource).into_response(),
        None => TwilioError::not_found(request.uri().path()).into_response(),
    }
}

/// Basic auth with the configured account SID and auth token, for that account's paths.
fn is_authorized(request: &Request, account_sid: &str, state: &FakeState) -> bool {
    let Some(credentials) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok())
    else {
        return false;
    };
    let Some((user, password)) = credentials.split_once(':') else {
        return false;
    };
    user == state.account_sid && password == state.auth_token && account_sid == state.account_sid
}

/// Makes the server close this request's connection instead of answering.
fn drop_connection(request: &Request, state: &FakeState, accepted_sid: Option<&str>) -> Response {
    state.ledger(|l| {
        l.counters.dropped += 1;
        if let Some(sid) = accepted_sid {
            l.mark_answer_dropped(sid);
        }
    });
    let severed = request
        .remote_addr()
        .as_socket_addr()
        .is_some_and(|peer| state.connections.sever(*peer));
    tracing::info!(
        accepted = accepted_sid.is_some(),
        severed,
        "dropping the connection without an answer"
    );
    // Never written when the connection was severed; a plain 500 otherwise.
    TwilioError::server_error(500).into_response()
}

fn accepted_message(
    account_sid: &str,
    outbound: &OutboundRequest,
    fields: Vec<(String, String)>,
) -> AcceptedMessage {
    let (from, messaging_service_sid, status) = match &outbound.sender {
        Sender::From {
            from,
            messaging_service_sid,
        } => (
            Some(from.clone()),
            messaging_service_sid.clone(),
            MessageStatus::Queued,
        ),
        Sender::Service(sid) => (None, Some(sid.clone()), MessageStatus::Accepted),
    };
    let (body, content_sid, content_variables) = match &outbound.content {
        Content::Body(body) => (Some(body.clone()), None, None),
        Content::Template {
            content_sid,
            variables,
        } => (None, Some(content_sid.clone()), variables.clone()),
    };
    let now = rfc2822_now();
    AcceptedMessage {
        sid: new_message_sid(),
        account_sid: account_sid.to_owned(),
        to: outbound.to.clone(),
        from,
        messaging_service_sid,
        body,
        content_sid,
        content_variables,
        status_callback: outbound.status_callback.clone(),
        status,
        error_code: None,
        date_created: now.clone(),
        date_updated: now,
        date_sent: None,
        num_segments: num_segments(&outbound.to, &outbound.content),
        form: fields.into_iter().collect::<BTreeMap<_, _>>(),
        times_accepted: 1,
        answer_dropped: false,
    }
}
