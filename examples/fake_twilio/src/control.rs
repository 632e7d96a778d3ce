//! The fake's own control API under `/_fake/`, for tests and people driving a demo:
//!
//! | route | what it does |
//! |---|---|
//! | `GET /_fake/messages` | `{"messages": [...]}`: every accepted message, with its form fields and `times_accepted` |
//! | `GET /_fake/callbacks` | `{"callbacks": [...]}`: every status callback posted, with attempts and outcome |
//! | `GET /_fake/stats` | counters of every outcome of the Messages API |
//! | `GET /_fake/config` | the current behaviour (`{"faults": ..., "callbacks": ...}`) |
//! | `POST /_fake/config` | a JSON merge patch of the behaviour; answers the new one, or 400 |
//! | `POST /_fake/inbound` | a message from a user to the sender (`{"from": "whatsapp:+…", "body": "STOP"}`, optionally `to`, `messaging_service_sid`, `date_sent`); answers 201 with its Message resource, or 400 |
//! | `GET /_fake/inbound` | `{"inbound": [...]}`: every message users sent in |
//! | `POST /_fake/reset` | forgets messages, callbacks and counters, restores the start behaviour |
//!
//! It needs no credentials: the fake only ever listens where its user put it.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, Response, handler};
use serde_json::{Value, json};

use crate::inbound::InboundRequest;
use crate::resource::inbound_json;
use crate::state::FakeState;

#[handler]
pub(crate) fn list_messages(Data(state): Data<&Arc<FakeState>>) -> Json<Value> {
    Json(json!({ "messages": state.ledger(|l| l.messages()) }))
}

#[handler]
pub(crate) fn list_callbacks(Data(state): Data<&Arc<FakeState>>) -> Json<Value> {
    Json(json!({ "callbacks": state.ledger(|l| l.callbacks()) }))
}

#[handler]
pub(crate) fn stats(Data(state): Data<&Arc<FakeState>>) -> Json<Value> {
    Json(json!(state.ledger(|l| l.counters.clone())))
}

#[handler]
pub(crate) fn get_config(Data(state): Data<&Arc<FakeState>>) -> Json<Value> {
    Json(json!(state.behaviour()))
}

#[handler]
pub(crate) fn patch_config(Data(state): Data<&Arc<FakeState>>, body: String) -> Response {
    let patch: Value = match serde_json::from_str(&body) {
        Ok(patch) => patch,
        Err(error) => return bad_request(format!("the body is not JSON: {error}")),
    };
    match state.patch_behaviour(&patch) {
        Ok(behaviour) => {
            tracing::info!(?behaviour, "behaviour changed");
            Json(json!(behaviour)).into_response()
        }
        Err(error) => bad_request(error.to_string()),
    }
}

#[handler]
pub(crate) fn receive_inbound(Data(state): Data<&Arc<FakeState>>, body: String) -> Response {
    let request: InboundRequest = match serde_json::from_str(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(format!("not an inbound message: {error}")),
    };
    match state.receive_inbound(request) {
        Ok(message) => (StatusCode::CREATED, Json(inbound_json(&message))).into_response(),
        Err(error) => bad_request(error.to_string()),
    }
}

#[handler]
pub(crate) fn list_inbound(Data(state): Data<&Arc<FakeState>>) -> Json<Value> {
    Json(json!({ "inbound": state.ledger(|l| l.inbound()) }))
}

#[handler]
pub(crate) fn reset(Data(state): Data<&Arc<FakeState>>) -> StatusCode {
    state.reset();
    tracing::info!("fake reset");
    StatusCode::NO_CONTENT
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}
