//! Fan-out of campaign runs into the outbox, over the sample data, on the backend `TEST_STORE`
//! names; a run's fan-out is leased to one process at a time.

mod common;

use common::{TestEngine, engine, open_sample, start_time};
use messaging_core::domain::{
    Campaign, CampaignDraft, CampaignStatus, MessageStatus, TemplateDraft, TriggerEvent,
};
use messaging_core::ingest::{IngestSource, UserFileFormat};
use messaging_core::store::{MessageQuery, PageRequest, RunLease};
use serde_json::{Value, json};

async fn with_samples() -> TestEngine {
    let t = engine().await;
    for file in ["users.csv", "users.json"] {
        t.import_sample_users(file).await;
    }
    t
}

async fn campaign(t: &TestEngine, content: &str, extra: Value) -> Campaign {
    let template = t
        .engine
        .create_template(TemplateDraft {
            name: "t".into(),
            content: content.into(),
            ..TemplateDraft::default()
        })
        .await
        .unwrap();
    let mut draft = json!({"name": "c", "template_id": template.id});
    draft
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let draft: CampaignDraft = serde_json::from_value(draft).unwrap();
    t.engine.create_campaign(draft).await.unwrap()
}

async fn messages(t: &TestEngine, campaign: &Campaign) -> Vec<(String, MessageStatus, String)> {
    let query = MessageQuery {
        campaign_id: Some(campaign.id),
        ..MessageQuery::default()
    };
    let mut all: Vec<_> = t
        .engine
        .list_messages(&query, &PageRequest::first(1000))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| (m.user.to_string(), m.status, m.body))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[tokio::test]
async fn launching_writes_one_rendered_message_per_recipient() {
    let t = with_samples().await;
    let c = campaign(
        &t,
        "Hi {{ name }} ({{ attributes.plan }})",
        json!({"topic": "DANCE"}),
    )
    .await;
    let (launched, summary) = t.engine.launch_campaign(c.id).await.unwrap();
    assert_eq!(
        launched.status,
        messaging_core::domain::CampaignStatus::Running
    );
    let summary = summary.unwrap();
    assert_eq!((summary.messages, summary.added), (7, 7));

    let all = messages(&t, &c).await;
    let statuses: Vec<_> = all.iter().map(|(p, s, _)| (p.as_str(), *s)).collect();
    assert_eq!(
        statuses,
        [
            ("+447700900105", MessageStatus::Pending),
            ("+5511912345108", MessageStatus::Pending),
            ("+919876543106", MessageStatus::Pending),
            ("+94771234501", MessageStatus::Pending),
            ("+94771234503", MessageStatus::Skipped), // opted out
            ("+94771234510", MessageStatus::Pending),
            ("+94771234516", MessageStatus::Skipped), // no plan attribute
        ]
    );
    assert_eq!(all[3].2, "Hi Amaya Perera (gold)");
}

#[tokio::test]
async fn every_decision_is_recorded_with_its_reason() {
    let t = with_samples().await;
    let c = campaign(
        &t,
        "Hi {{ name }} ({{ attributes.plan }})",
        json!({"topic": "DANCE"}),
    )
    .await;
    t.engine.launch_campaign(c.id).await.unwrap();
    let query = MessageQuery {
        campaign_id: Some(c.id),
        status: Some(MessageStatus::Skipped),
        ..MessageQuery::default()
    };
    let skipped = t
        .engine
        .list_messages(&query, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(skipped.len(), 2);
    for message in skipped {
        let message = t.engine.get_message(message.id).await.unwrap();
        let history: Vec<_> = message.history.iter().map(|h| h.status).collect();
        assert_eq!(history, [MessageStatus::Pending, MessageStatus::Skipped]);
        let decision = &message.decisions[0];
        match message.user.as_str() {
            "+94771234503" => assert_eq!(
                (decision.step.as_str(), decision.reason.as_str()),
                (
                    "consent",
                    "the user has opted out (they opt in again by sending START)"
                )
            ),
            _ => {
                assert_eq!(decision.step, "template");
                assert!(
                    decision.reason.contains("attributes.plan"),
                    "{}",
                    decision.reason
                );
            }
        }
    }
}

#[tokio::test]
async fn repeating_a_fan_out_never_adds_a_second_message() {
    let t = with_samples().await;
    let c = campaign(&t, "Hi {{ name }}", json!({"topic": "MUSIC"})).await;
    let (c, first) = t.engine.launch_campaign(c.id).await.unwrap();
    // As after a crash mid-way: the same run is fanned out again.
    let again = t.engine.fan_out(&c, None).await.unwrap();
    let first = first.unwrap();
    assert_eq!(again.run.id, first.run.id);
    assert_eq!((again.messages, again.added), (first.messages, 0));
    assert_eq!(messages(&t, &c).await.len() as u64, first.messages);
}

#[tokio::test]
async fn event_runs_are_narrowed_by_the_event_and_render_its_data() {
    let t = with_samples().await;
    let c = campaign(
        &t,
        "{{ name }}: {{ event.venue }}",
        json!({"topic": "DANCE", "trigger": {"type": "event", "event": "Dance Festival"}}),
    )
    .await;
    let (armed, summary) = t.engine.launch_campaign(c.id).await.unwrap();
    assert!(
        summary.is_none(),
        "launching an event campaign sends nothing by itself"
    );
    let event = TriggerEvent::from_json(
        json!({"alert_name": "Dance Festival", "segment_rule": {"attributes.city": "Colombo"},
               "trigger_data": {"venue": "Galle Face"}}),
        common::start_time(),
    )
    .unwrap();
    let summary = t.engine.fan_out(&armed, Some(&event)).await.unwrap();
    assert_eq!(summary.messages, 3);
    let bodies: Vec<_> = messages(&t, &c).await.into_iter().map(|m| m.2).collect();
    assert_eq!(
        bodies,
        [
            "Amaya Perera: Galle Face",
            "Nimali Fernando: Galle Face",
            "Sanduni Rajapaksa: Galle Face"
        ]
    );

    // Another event is another run; the same event again is the same run.
    let second = t.engine.fan_out(&armed, Some(&event)).await.unwrap();
    assert_eq!((second.run.id, second.added), (summary.run.id, 0));
}

#[tokio::test]
async fn without_topic_or_segment_every_opted_in_user_is_a_recipient() {
    let t = with_samples().await;
    let c = campaign(&t, "Hello {{ name | default(\"there\") }}", json!({})).await;
    let (_, summary) = t.engine.launch_campaign(c.id).await.unwrap();
    assert_eq!(summary.unwrap().messages, 13);
    assert!(
        messages(&t, &c)
            .await
            .iter()
            .all(|m| m.1 == MessageStatus::Pending)
    );
}

#[tokio::test]
async fn ingested_events_trigger_the_campaigns_listening_for_them_once() {
    let t = with_samples().await;
    let c = campaign(
        &t,
        "{{ name }}: {{ event.venue }}",
        json!({"trigger": {"type": "event", "event": "dance festival"}, "status": "scheduled"}),
    )
    .await;
    t.engine
        .ingest_events(open_sample("events.jsonl"), IngestSource::Api)
        .await
        .unwrap();
    // evt-1001 (topic DANCE) ∩ every opted-in user.
    let first = messages(&t, &c).await;
    assert_eq!(first.len(), 6);
    assert!(
        first.iter().all(|m| m.2.ends_with(": Galle Face Green")),
        "{first:?}"
    );

    let again = t
        .engine
        .ingest_events(open_sample("events.jsonl"), IngestSource::Api)
        .await
        .unwrap()
        .ingestion
        .report;
    assert_eq!(again.inserted, 0);
    assert_eq!(
        messages(&t, &c).await.len(),
        6,
        "re-ingesting triggers nothing again"
    );
}

#[tokio::test]
async fn paused_campaigns_do_not_listen() {
    let t = with_samples().await;
    let c = campaign(
        &t,
        "{{ name }}",
        json!({"topic": "MUSIC", "trigger": {"type": "event", "event": "concert"}, "status": "scheduled"}),
    )
    .await;
    let event = |id: &str| {
        TriggerEvent::from_json(json!({"id": id, "name": "Concert"}), common::start_time()).unwrap()
    };
    t.engine
        .command_campaign(c.id, messaging_core::domain::CampaignCommand::Pause)
        .await
        .unwrap();
    t.engine.record_event(event("e1")).await.unwrap();
    assert!(messages(&t, &c).await.is_empty());
    t.engine
        .command_campaign(c.id, messaging_core::domain::CampaignCommand::Resume)
        .await
        .unwrap();
    t.engine.record_event(event("e2")).await.unwrap();
    // MUSIC subscribers: Amaya, Kasun, Priya, Ruwan opted in; Jack opted out (skipped).
    assert_eq!(messages(&t, &c).await.len(), 5);
}

#[tokio::test]
async fn a_fan_out_cut_short_by_a_crash_is_completed_without_duplicates() {
    use messaging_core::domain::{CampaignCommand, MessageId, PhoneNumber};
    use messaging_core::store::OutboxEntry;
    let t = with_samples().await;
    let c = campaign(&t, "Hi {{ name }}", json!({"topic": "DANCE"})).await;
    // What a crash mid-launch leaves: the launch run opened, two of its seven messages
    // written, the campaign running, the run never finished.
    let run = t
        .store
        .open_run(c.id, "launch", None, common::start_time())
        .await
        .unwrap();
    let written: Vec<OutboxEntry> = ["+94771234501", "+447700900105"]
        .iter()
        .map(|phone| OutboxEntry {
            id: MessageId::new(),
            phone: PhoneNumber::parse(phone).unwrap(),
            body: "Hi (before the crash)".into(),
            content_sid: None,
            content_variables: None,
            status: MessageStatus::Pending,
            decision: None,
        })
        .collect();
    t.store
        .enqueue(&run, written, common::start_time())
        .await
        .unwrap();
    t.engine
        .command_campaign(c.id, CampaignCommand::Launch)
        .await
        .unwrap();

    let completed = t.engine.complete_runs().await.unwrap();
    assert_eq!(completed.len(), 1);
    assert_eq!((completed[0].messages, completed[0].added), (7, 5));
    let all = messages(&t, &c).await;
    assert_eq!(all.len(), 7);
    let mut phones: Vec<_> = all.iter().map(|m| m.0.clone()).collect();
    phones.dedup();
    assert_eq!(phones.len(), 7, "one message per recipient");
    assert!(
        all.iter().any(|m| m.2 == "Hi (before the crash)"),
        "what was written stays"
    );
    assert!(t.engine.complete_runs().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_user_event_reaches_that_user_only() {
    let t = with_samples().await;
    let c = campaign(
        &t,
        "{{ name }}, your {{ event.item }} is waiting",
        json!({"trigger": {"type": "event", "event": "cart_abandoned"}, "status": "scheduled"}),
    )
    .await;
    t.engine
        .ingest_events(open_sample("events.jsonl"), IngestSource::Api)
        .await
        .unwrap();
    // Two cart_abandoned events for Amaya: two runs, one message each, to her alone.
    let all = messages(&t, &c).await;
    let recipients: Vec<_> = all.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(recipients, ["+94771234501", "+94771234501"]);
    let mut bodies: Vec<_> = all.iter().map(|m| m.2.as_str()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [
            "Amaya Perera, your dance shoes is waiting",
            "Amaya Perera, your headphones is waiting"
        ]
    );
}

#[tokio::test]
async fn a_refused_launch_leaves_no_run_behind() {
    use messaging_core::EngineError;
    use messaging_core::domain::CampaignCommand;
    let t = with_samples().await;
    let c = campaign(
        &t,
        "Hi {{ name }}",
        json!({"topic": "DANCE", "status": "scheduled"}),
    )
    .await;
    t.engine
        .command_campaign(c.id, CampaignCommand::Pause)
        .await
        .unwrap();
    assert!(matches!(
        t.engine.launch_campaign(c.id).await,
        Err(EngineError::Conflict(_))
    ));
    // Becoming event-triggered while paused, then resuming, must send nothing by itself.
    let mut edit: CampaignDraft = serde_json::from_value(json!({
        "name": "c", "template_id": c.template_id, "topic": "DANCE",
        "trigger": {"type": "event", "event": "never"}
    }))
    .unwrap();
    edit.status = None;
    t.engine.update_campaign(c.id, edit).await.unwrap();
    t.engine
        .command_campaign(c.id, CampaignCommand::Resume)
        .await
        .unwrap();
    assert!(t.engine.complete_runs().await.unwrap().is_empty());
    assert!(messages(&t, &c).await.is_empty());
}

#[tokio::test]
async fn a_scheduled_campaign_paused_and_resumed_still_sends() {
    use messaging_core::domain::CampaignCommand;
    let t = with_samples().await;
    let c = campaign(
        &t,
        "Hi {{ name }}",
        json!({"topic": "DANCE", "status": "scheduled"}),
    )
    .await;
    t.engine
        .command_campaign(c.id, CampaignCommand::Pause)
        .await
        .unwrap();
    let resumed = t
        .engine
        .command_campaign(c.id, CampaignCommand::Resume)
        .await
        .unwrap();
    assert_eq!(
        resumed.status,
        messaging_core::domain::CampaignStatus::Running
    );
    assert_eq!(messages(&t, &c).await.len(), 7);
}

#[tokio::test]
async fn what_the_campaign_preview_shows_is_what_the_launch_writes() {
    let t = with_samples().await;
    for content in [
        r#"See you at {{ event.venue | default("our next event") }}."#,
        "{% if event is defined %}{{ event.venue }}{% endif %}",
        "{% if attributes.plan %}{{ attributes.plan }}{% else %}no plan{% endif %}, {{ name }}",
    ] {
        let c = campaign(&t, content, json!({"topic": "DANCE"})).await;
        let preview = t.engine.preview_campaign(c.id, 100).await.unwrap();
        t.engine.launch_campaign(c.id).await.unwrap();
        let query = MessageQuery {
            campaign_id: Some(c.id),
            ..MessageQuery::default()
        };
        let sent = t
            .engine
            .list_messages(&query, &PageRequest::first(100))
            .await
            .unwrap()
            .items;
        assert_eq!(preview.sample.len(), sent.len(), "{content}");
        for shown in &preview.sample {
            let message = sent.iter().find(|m| m.user == shown.user).unwrap();
            let message = t.engine.get_message(message.id).await.unwrap();
            assert_eq!(
                shown.body.clone().unwrap_or_default(),
                message.body,
                "{content}: {}",
                shown.user
            );
            if message.status == MessageStatus::Skipped {
                assert_eq!(
                    shown.skip_reason.as_deref(),
                    Some(message.decisions[0].reason.as_str()),
                    "{content}"
                );
            } else {
                // Left to the dispatcher, which may yet skip it for the WhatsApp window (the
                // preview forecasts that) but not for anything the launch decided.
                let reason = shown.skip_reason.as_deref().unwrap_or("24-hour window");
                assert!(reason.contains("24-hour window"), "{content}: {reason}");
            }
        }
    }
    // The default applies at launch as in the preview, without an event.
    let c = campaign(
        &t,
        r#"See you at {{ event.venue | default("our next event") }}."#,
        json!({"topic": "DANCE"}),
    )
    .await;
    t.engine.launch_campaign(c.id).await.unwrap();
    let written = messages(&t, &c).await;
    assert!(
        written
            .iter()
            .any(|(_, status, body)| *status == MessageStatus::Pending
                && body == "See you at our next event."),
        "{written:?}"
    );
}

#[tokio::test]
async fn campaign_stats_say_why_messages_were_skipped() {
    let t = with_samples().await;
    let c = campaign(
        &t,
        "Hi {{ name }} ({{ attributes.plan }})",
        json!({"topic": "DANCE"}),
    )
    .await;
    t.engine.launch_campaign(c.id).await.unwrap();
    let stats = t.engine.stats(Some(c.id)).await.unwrap();
    let steps: Vec<(&str, u64)> = stats
        .skipped_by_step
        .iter()
        .map(|by| (by.step.as_str(), by.count))
        .collect();
    assert_eq!(steps, [("consent", 1), ("template", 1)]);
    assert!(stats.skipped_by_step[0].reason.contains("START"));
    assert!(stats.skipped_by_step[1].reason.contains("attributes.plan"));
    assert!(
        t.engine
            .stats(None)
            .await
            .unwrap()
            .skipped_by_step
            .is_empty()
    );
}

#[tokio::test]
async fn a_template_over_its_budget_pauses_its_campaign_with_the_problem_until_fixed() {
    let t = engine().await;
    let rows: Vec<String> = (0..150)
        .map(|i| format!("+9477100{i:04},User {i},OPT_IN,\"{{\"\"n\"\": 100000}}\""))
        .collect();
    let csv = format!("phone,name,consent_state,attributes\n{}\n", rows.join("\n"));
    t.engine
        .ingest_users(
            std::io::Cursor::new(csv.into_bytes()),
            UserFileFormat::Csv,
            IngestSource::Api,
        )
        .await
        .unwrap();
    // Harmless without data, so it saves; with each user's `n` it would never end.
    let hostile = "{% for i in range(attributes.n) %}{% for j in range(attributes.n) %}x\
                   {% endfor %}{% endfor %}";
    let c = campaign(&t, hostile, json!({})).await;
    let started = std::time::Instant::now();
    let error = t.engine.launch_campaign(c.id).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let message = error.to_string();
    assert!(
        message.contains("template_id") && message.contains("\"t\""),
        "{message}"
    );

    let paused = t.engine.get_campaign(c.id).await.unwrap();
    assert_eq!(
        paused.status,
        messaging_core::domain::CampaignStatus::Paused
    );
    let problem = paused.problem.clone().unwrap();
    assert!(problem.contains("could not be fanned out"), "{problem}");
    assert!(messages(&t, &c).await.is_empty());
    // Nothing is retried while it is paused.
    t.engine.complete_runs().await.unwrap();
    assert_eq!(
        t.engine.get_campaign(c.id).await.unwrap().status,
        paused.status
    );

    // Fixed and resumed: the same run goes out, and the problem is gone.
    t.engine
        .update_template(
            paused.template_id,
            TemplateDraft {
                name: "t".into(),
                content: "Hi {{ name }}".into(),
                ..TemplateDraft::default()
            },
        )
        .await
        .unwrap();
    let resumed = t
        .engine
        .command_campaign(c.id, messaging_core::domain::CampaignCommand::Resume)
        .await
        .unwrap();
    assert_eq!(
        resumed.status,
        messaging_core::domain::CampaignStatus::Running
    );
    assert_eq!(resumed.problem, None);
    assert_eq!(messages(&t, &c).await.len(), 150);
}

/// The lease of a run's fan-out, through the store port: one owner at a time, renewed by its
/// owner, taken by another once it runs out, given back only by its owner, and refused once
/// the run is finished (with its count).
#[tokio::test]
async fn one_process_at_a_time_fans_a_run_out() {
    let t = engine().await;
    let c = campaign(&t, "Hi", json!({})).await;
    let now = start_time();
    let run = t.store.open_run(c.id, "launch", None, now).await.unwrap();
    let until = now + chrono::Duration::seconds(15);
    let lease = |owner: &'static str, at: chrono::DateTime<chrono::Utc>| {
        let store = t.store.clone();
        async move {
            store
                .lease_run(run.id, owner, at, at + chrono::Duration::seconds(15))
                .await
                .unwrap()
        }
    };
    assert_eq!(lease("a", now).await, RunLease::Taken, "{}", t.backend);
    assert_eq!(lease("b", now).await, RunLease::HeldElsewhere);
    // Its owner renews it; another's release leaves it alone.
    assert_eq!(
        lease("a", now + chrono::Duration::seconds(10)).await,
        RunLease::Taken
    );
    t.store.release_run(run.id, "b").await.unwrap();
    assert_eq!(lease("b", until).await, RunLease::HeldElsewhere);
    // Once it runs out (a died), b takes it; a then finds it taken.
    let later = now + chrono::Duration::seconds(26);
    assert_eq!(lease("b", later).await, RunLease::Taken);
    assert_eq!(lease("a", later).await, RunLease::HeldElsewhere);
    // Given back by its owner, it is free at once.
    t.store.release_run(run.id, "b").await.unwrap();
    assert_eq!(lease("a", later).await, RunLease::Taken);
    t.store.finish_run(run.id).await.unwrap();
    assert_eq!(lease("b", later).await, RunLease::Finished(0));
}

/// A launch run whose fan-out another process held when it died (the campaign running, its
/// run opened, nothing written yet) is left alone while that lease lasts; once it runs out,
/// the next completion takes the run over and writes every recipient once.
#[tokio::test]
async fn a_dead_process_s_fan_out_is_taken_over_when_its_lease_runs_out() {
    let t = with_samples().await;
    let c = campaign(&t, "Hi {{ name | default('there') }}", json!({})).await;
    let now = t.engine.clock().now();
    let run = t.store.open_run(c.id, "launch", None, now).await.unwrap();
    let held = t
        .store
        .lease_run(run.id, "dead", now, now + chrono::Duration::seconds(15))
        .await
        .unwrap();
    assert_eq!(held, RunLease::Taken);
    assert!(
        t.store
            .set_campaign_status(c.id, c.status, CampaignStatus::Running, now)
            .await
            .unwrap()
    );
    assert!(t.engine.complete_runs().await.unwrap().is_empty());
    assert!(
        messages(&t, &c).await.is_empty(),
        "left to the process holding it"
    );
    t.clock.advance(chrono::Duration::seconds(16));
    let done = t.engine.complete_runs().await.unwrap();
    assert_eq!(
        done.len(),
        1,
        "{}: taken over once the lease ran out",
        t.backend
    );
    let written = messages(&t, &c).await;
    assert!(!written.is_empty());
    assert_eq!(done[0].added, written.len() as u64);
    assert!(t.store.unfinished_runs().await.unwrap().is_empty());
}

/// A launch whose run another process is fanning out waits for it rather than doing the work
/// a second time, and answers once the run is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_waits_for_the_fan_out_another_process_holds() {
    let t = with_samples().await;
    let c = campaign(&t, "Hi", json!({})).await;
    let now = t.engine.clock().now();
    let run = t.store.open_run(c.id, "launch", None, now).await.unwrap();
    let held = t
        .store
        .lease_run(run.id, "other", now, now + chrono::Duration::seconds(15))
        .await
        .unwrap();
    assert_eq!(held, RunLease::Taken);
    let launching = tokio::spawn({
        let engine = t.engine.clone();
        async move { engine.launch_campaign(c.id).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        !launching.is_finished(),
        "the launch waits while the run is held"
    );
    assert!(
        messages(&t, &c).await.is_empty(),
        "and writes nothing meanwhile"
    );
    // The other process gives the run back (it stopped); the launch goes on with it.
    t.store.release_run(run.id, "other").await.unwrap();
    let (_, summary) = tokio::time::timeout(std::time::Duration::from_secs(30), launching)
        .await
        .expect("the launch ends once the run is free")
        .unwrap()
        .unwrap();
    let summary = summary.unwrap();
    let written = messages(&t, &c).await.len() as u64;
    assert!(written > 0);
    assert_eq!((summary.messages, summary.added), (written, written));
}
