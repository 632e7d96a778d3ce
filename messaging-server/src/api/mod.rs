//! The JSON API under `/api/v1`, described by the OpenAPI document it is generated with
//! (`/openapi.json`, Swagger UI at `/apidocs/`). Each file holds one group of resources as a
//! poem-openapi `OpenApi` struct over the engine; handlers parse the request, call the engine
//! and shape the answer, nothing more. Errors take one shape ([`error`]); every body is
//! bounded while it streams ([`limits`]); a JSON body is checked against the document before
//! its handler runs ([`validate`]); `API_TOKEN`, when set, is required as a bearer token
//! ([`require_token`]).

mod activity;
mod campaigns;
mod catalog;
pub mod error;
mod ingest;
pub mod limits;
mod messages;
mod overview;
mod page;
pub mod timestamp;
mod users;
pub mod validate;

use messaging_core::Engine;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::{OpenApiService, Tags};
use serde_json::{Value, json};

pub use error::ApiError;

use crate::config::Config;

/// The groups of operations, as Swagger UI shows them.
#[derive(Tags)]
pub enum ApiTags {
    /// Users, their consent, attributes and topic subscriptions.
    Users,
    /// Message templates with placeholders, and their previews.
    Templates,
    /// Segments: stored audience definitions, their members and previews.
    Segments,
    /// Campaigns and their lifecycle (launch, pause, resume, cancel).
    Campaigns,
    /// Outbound messages with their status history and audit decisions; replies.
    Messages,
    /// Inbound WhatsApp messages: what users wrote to us.
    Inbound,
    /// Trigger events: recorded one at a time, they start the campaigns listening for them.
    Events,
    /// Streaming imports of users and events, answering a data-quality report.
    Ingestion,
    /// Delivery statistics and their time series.
    Stats,
    /// The server's settings (provider, sender, webhook URLs, limits), without secrets.
    Settings,
}

type Apis = (
    users::UsersApi,
    catalog::TemplatesApi,
    catalog::SegmentsApi,
    ingest::IngestApi,
    campaigns::CampaignsApi,
    messages::MessagesApi,
    activity::InboundApi,
    activity::EventsApi,
    activity::StatsApi,
    overview::OverviewApi,
);

/// The OpenAPI service of `/api/v1` over `engine`.
pub fn service(engine: &Engine, config: &Config) -> OpenApiService<Apis, ()> {
    let apis = (
        users::UsersApi::new(engine.clone()),
        catalog::TemplatesApi::new(engine.clone()),
        catalog::SegmentsApi::new(engine.clone()),
        ingest::IngestApi::new(engine.clone(), config.max_body_bytes),
        campaigns::CampaignsApi::new(engine.clone()),
        messages::MessagesApi::new(engine.clone()),
        activity::InboundApi::new(engine.clone()),
        activity::EventsApi::new(engine.clone()),
        activity::StatsApi::new(engine.clone()),
        overview::OverviewApi::new(engine.clone(), config),
    );
    OpenApiService::new(
        apis,
        "WhatsApp messaging platform",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Users, templates, segments and campaigns of event-driven WhatsApp messaging over \
             Twilio. Every list takes `limit` (1–1000) and `cursor` and answers \
             `{\"items\": [...], \"next_cursor\": ...}`; every error answers \
             `{\"error\": {\"code\", \"message\", \"details\"}}`. When the server has an \
             `API_TOKEN`, send `Authorization: Bearer <API_TOKEN>`.",
    )
    // Relative to the document, so Swagger UI calls the server it was loaded from.
    .server("/api/v1")
}

/// The OpenAPI document with the bearer scheme declared: every operation accepts
/// `Authorization: Bearer <API_TOKEN>`, required when the server has one. (The token is
/// checked by [`require_token`] around the whole API, so the operations themselves do not
/// take it as a parameter, and the document says so here.)
pub fn spec(service: &OpenApiService<Apis, ()>) -> String {
    let mut spec: Value = serde_json::from_str(&service.spec()).unwrap_or_else(|_| json!({}));
    spec["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http",
        "scheme": "bearer",
        "description": "The server's API_TOKEN; required only when the server has one.",
    });
    spec["security"] = json!([{ "bearer": [] }, {}]);
    if let Some(schemas) = spec["components"]["schemas"].as_object_mut() {
        for schema in schemas.values_mut() {
            mark_optional_nullable(schema);
        }
    }
    serde_json::to_string_pretty(&spec).unwrap_or_default()
}

/// Optional properties (Rust `Option`s, not `required`) are written as `null` when absent,
/// as the specification wants (`"next_cursor": null`); the document must say they may be.
fn mark_optional_nullable(schema: &mut Value) {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        if let Some(reference) = property.get("$ref").cloned() {
            // OpenAPI 3.0 ignores siblings of `$ref`: wrap it.
            let description = property.get("description").cloned();
            *property = json!({ "allOf": [{ "$ref": reference }], "nullable": true });
            if let Some(description) = description {
                property["description"] = description;
            }
        } else if property.is_object() {
            property["nullable"] = json!(true);
        }
    }
}

/// Swagger UI over [`spec`].
pub fn swagger_ui(service: &OpenApiService<Apis, ()>) -> String {
    service
        .swagger_ui_html()
        .replace(&service.spec(), &spec(service))
}

/// Answers 401 unless the request carries `Authorization: Bearer <token>` (when a token is
/// set; without one the API is open).
pub fn require_token<E: Endpoint + 'static>(
    endpoint: E,
    token: Option<String>,
) -> impl Endpoint<Output = Response> {
    endpoint.around(move |next, request: Request| {
        let token = token.clone();
        async move {
            if let Some(token) = &token {
                let given = request
                    .header("Authorization")
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .map(str::trim);
                if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
                {
                    return Ok(ApiError::unauthorized().into_response());
                }
            }
            Ok(next.call(request).await?.into_response())
        }
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
