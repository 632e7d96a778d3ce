//! Twilio's webhooks over HTTP: signatures checked exactly as Twilio computes them (forgeries
//! answer 403 and store nothing), TwiML answers with a confirmation for commands, repeats
//! idempotent, and the seed's whole flow: an event → its campaign → the fake Twilio receives
//! the rendered text → its signed status callbacks come back → the message shows delivered.
//! With `TWILIO_POLL_SECONDS`, the same news comes without any webhook, by polling.

mod common;

use std::time::Duration;

use common::{Options, TestApp, spawn_app, spawn_app_with};
use fake_twilio::{CallbackPlan, InboundRequest};
use messaging_core::domain::{Consent, MessageStatus, PhoneNumber};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use messaging_core::provider::twilio_signature;
use messaging_core::store::{MessageQuery, PageRequest};
use reqwest::StatusCode;
use serde_json::json;

/// Posts `fields` to `path` signed as Twilio would sign them for this server.
async fn signed(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let params: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = twilio_signature(&app.auth_token, &format!("{}{path}", app.base), &params);
    let (status, text, _) = app
        .post_form(path, fields, &[("X-Twilio-Signature", &signature)])
        .await;
    (status, text)
}

fn inbound(sid: &str, from: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MessageSid", sid.to_owned()),
        (
            "AccountSid",
            "AC00000000000000000000000000000000".to_owned(),
        ),
        ("From", format!("whatsapp:{from}")),
        ("To", "whatsapp:+14155550100".to_owned()),
        ("Body", body.to_owned()),
        ("ProfileName", "Amaya".to_owned()),
        ("WaId", from.trim_start_matches('+').to_owned()),
    ]
}

fn pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_signed_start_opts_the_sender_in_and_answers_twiml() {
    let app = spawn_app().await;
    let fields = inbound("SMin0001", "+94771234567", "START");
    let (status, twiml) = signed(&app, "/twilio/inbound", &pairs(&fields)).await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    assert!(twiml.starts_with("<?xml"), "{twiml}");
    assert!(
        twiml.contains("<Message>"),
        "a command gets a confirmation: {twiml}"
    );
    let user = app
        .engine
        .get_user(&PhoneNumber::parse("+94771234567").unwrap())
        .await
        .unwrap();
    assert_eq!(user.consent_state, Consent::OptIn);
    assert_eq!(user.name.as_deref(), Some("Amaya"));

    // The same webhook again (Twilio retries): the same answer, one stored message.
    let (status, again) = signed(&app, "/twilio/inbound", &pairs(&fields)).await;
    assert_eq!((status, again), (StatusCode::OK, twiml));
    let stored = app
        .engine
        .list_inbound(None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(stored.items.len(), 1);

    // Conversation gets an empty TwiML answer.
    let chat = inbound("SMin0002", "+94771234567", "thanks!");
    let (status, twiml) = signed(&app, "/twilio/inbound", &pairs(&chat)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!twiml.contains("<Message>"), "{twiml}");
    app.stop().await;
}

#[tokio::test]
async fn forged_or_missing_signatures_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let fields = inbound("SMin0003", "+94771234567", "STOP");
    let (status, _, _) = app
        .post_form(
            "/twilio/inbound",
            &pairs(&fields),
            &[("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJl")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.post_form("/twilio/inbound", &pairs(&fields), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Signed for other parameters: a tampered body.
    let original = inbound("SMin0003", "+94771234567", "START");
    let params: Vec<(String, String)> = original
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let signature = twilio_signature(
        &app.auth_token,
        &format!("{}/twilio/inbound", app.base),
        &params,
    );
    let (status, _, _) = app
        .post_form(
            "/twilio/inbound",
            &pairs(&fields),
            &[("X-Twilio-Signature", &signature)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status_fields = [("MessageSid", "SMx"), ("MessageStatus", "delivered")];
    let (status, _, _) = app.post_form("/twilio/status", &status_fields, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let stored = app
        .engine
        .list_inbound(None, &PageRequest::first(10))
        .await
        .unwrap();
    assert!(stored.items.is_empty());
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("messaging_webhooks_total{kind=\"inbound\",status=\"403\"} 3"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_event_reaches_twilio_and_its_signed_callbacks_mark_it_delivered() {
    let app = spawn_app().await;
    app.engine
        .ingest_users(
            std::io::Cursor::new(b"phone,name\n+94771234501,Amaya\n+94771234502,Nimal\n".to_vec()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap();
    // The user wrote to us an hour ago: free text is allowed.
    let hello = inbound("SMin0100", "+94771234501", "hello");
    assert_eq!(
        signed(&app, "/twilio/inbound", &pairs(&hello)).await.0,
        StatusCode::OK
    );
    // Everything else over HTTP, as an operator would: the template, the campaign listening
    // for the event, and the event itself as a line of JSONL.
    let (status, template) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "cart", "content": "Hi {{ name }}, your {{ event.item }} is waiting." }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let (status, campaign) = app
        .post(
            "/api/v1/campaigns",
            &json!({ "name": "Cart reminder", "template_id": template["id"],
                     "trigger": { "type": "event", "event": "cart_abandoned" },
                     "status": "scheduled" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let campaign_id: messaging_core::domain::CampaignId =
        campaign["id"].as_str().unwrap().parse().unwrap();
    let line = json!({ "id": "evt-1", "name": "cart_abandoned", "user": "+94771234501",
                       "data": { "item": "red lamp" } });
    let (status, report) = app
        .post_raw(
            "/api/v1/ingestions/events",
            "application/x-ndjson",
            format!("{line}\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["report"]["inserted"], 1, "{report}");

    app.until(
        "the fake Twilio's delivery",
        Duration::from_secs(20),
        async || {
            app.twilio
                .messages()
                .iter()
                .any(|m| m.status == fake_twilio::MessageStatus::Delivered)
        },
    )
    .await;
    let sent = app.twilio.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "whatsapp:+94771234501");
    assert_eq!(
        sent[0].body.as_deref(),
        Some("Hi Amaya, your red lamp is waiting.")
    );

    app.until(
        "the delivered status",
        Duration::from_secs(20),
        async || {
            let query = MessageQuery {
                campaign_id: Some(campaign_id),
                ..MessageQuery::default()
            };
            let page = app
                .engine
                .list_messages(&query, &PageRequest::first(10))
                .await
                .unwrap();
            page.items.first().map(|m| m.status) == Some(MessageStatus::Delivered)
        },
    )
    .await;
    let callbacks = app.twilio.callbacks();
    assert!(callbacks.iter().all(|c| c.delivered), "{callbacks:?}");
    let (status, stats) = app.get("/api/v1/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["by_status"]["delivered"], 1, "{stats}");
    assert_eq!(stats["delivery_percent"], 100.0, "{stats}");
    app.stop().await;
}

#[tokio::test]
async fn a_status_for_an_unknown_sid_is_kept_and_a_malformed_one_refused() {
    let app = spawn_app().await;
    let delivered = [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("MessageStatus", "delivered"),
    ];
    // No message has this SID yet: the status is kept (parked), and the answer is 200.
    let (status, twiml) = signed(&app, "/twilio/status", &delivered).await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    let (status, _) = signed(&app, "/twilio/status", &delivered).await;
    assert_eq!(status, StatusCode::OK, "a repeat is fine");
    let (status, text) = signed(&app, "/twilio/status", &[("MessageStatus", "sent")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    // A status callback pointed at the inbound URL (as the prototype's setup suggested) is
    // taken as a status, not as a message from a user.
    let (status, twiml) = signed(&app, "/twilio/inbound", &delivered).await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    let inbound = app
        .engine
        .list_inbound(None, &PageRequest::first(10))
        .await
        .unwrap();
    assert!(inbound.items.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn with_polling_inbound_messages_and_statuses_come_without_any_webhook() {
    let app = spawn_app_with(Options {
        twilio_poll_seconds: Some(1),
        ..Options::default()
    })
    .await;
    let (_, settings) = app.get("/api/v1/settings").await;
    assert_eq!(settings["twilio_poll_seconds"], 1);
    // Twilio cannot reach this server: every status callback is lost.
    app.twilio
        .set_callback_plan(CallbackPlan {
            dropped_share: 1.0,
            ..CallbackPlan::default()
        })
        .unwrap();
    let user = "+94771234567";
    let writes = |body: &str| {
        app.twilio
            .receive_inbound(InboundRequest {
                from: format!("whatsapp:{user}"),
                to: Some(format!("whatsapp:{}", common::SENDER)),
                body: body.into(),
                ..InboundRequest::default()
            })
            .unwrap();
    };
    writes("START");
    let phone = PhoneNumber::parse(user).unwrap();
    app.until("the START polled", Duration::from_secs(15), async || {
        app.engine
            .get_user(&phone)
            .await
            .is_ok_and(|user| user.consent_state == Consent::OptIn)
    })
    .await;

    // Its window is open: a free-text reply goes, and its delivery is polled too.
    let (status, reply) = app
        .post(
            "/api/v1/messages",
            &json!({ "user": user, "body": "On its way!" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let path = format!("/api/v1/messages/{}", reply["id"].as_str().unwrap());
    app.until("the delivery polled", Duration::from_secs(15), async || {
        app.get(&path).await.1["status"] == "delivered"
    })
    .await;
    assert!(
        app.twilio.callbacks().iter().all(|c| !c.delivered),
        "no status came by webhook"
    );

    writes("STOP");
    app.until("the STOP polled", Duration::from_secs(15), async || {
        app.engine.get_user(&phone).await.unwrap().consent_state == Consent::OptOut
    })
    .await;
    let stored = app
        .engine
        .list_inbound(Some(phone.clone()), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(
        stored.items.len(),
        2,
        "each message once, however often polled"
    );
    app.stop().await;
}
