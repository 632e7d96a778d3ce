//! Status callbacks through the engine: forms are read as Twilio sends them, repeats are
//! idempotent, statuses for SIDs not yet known wait, and callbacks arriving together (committed
//! in groups) each apply once, a refused one failing alone.

mod common;

use std::collections::BTreeMap;

use common::engine;
use messaging_core::EngineError;
use messaging_core::domain::{MessageId, MessageStatus};
use messaging_core::provider::Accepted;
use messaging_core::store::{ClaimRequest, ReceiptOutcome};

fn callback(sid: &str, status: &str) -> BTreeMap<String, String> {
    [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", "AC123"),
        ("To", "whatsapp:+14155552671"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test]
async fn callbacks_for_unknown_sids_are_parked_once() {
    let t = engine().await;
    let first = t
        .engine
        .receive_status(callback("SMx", "delivered"))
        .await
        .unwrap();
    assert_eq!(first.outcome, ReceiptOutcome::Parked);
    assert_eq!(first.receipt.raw["AccountSid"], "AC123");
    let again = t
        .engine
        .receive_status(callback("SMx", "delivered"))
        .await
        .unwrap();
    assert_eq!(again.outcome, ReceiptOutcome::Duplicate);
}

#[tokio::test]
async fn a_callback_without_sid_or_status_is_refused() {
    let t = engine().await;
    let mut fields = callback("SMx", "sent");
    fields.remove("MessageSid");
    fields.remove("SmsSid");
    assert!(matches!(
        t.engine.receive_status(fields).await,
        Err(EngineError::Invalid(problems)) if problems[0].field == "MessageSid"
    ));
}

/// Every message of a launched campaign to `recipients` users, each accepted by the provider
/// under the SID `SMg<index>`; answers the SIDs with their messages.
async fn accepted(t: &common::TestEngine, recipients: usize) -> Vec<(String, MessageId)> {
    let campaign = common::launched(t, recipients).await;
    // Claimed, cleared and handed to the provider, as a dispatcher does.
    let now = common::start_time();
    let until = now + chrono::Duration::minutes(2);
    let request = [ClaimRequest {
        campaign_id: Some(campaign),
        limit: recipients as u32,
    }];
    let claimed = t.store.claim_due(&request, "d", now, until).await.unwrap();
    let ids: Vec<MessageId> = claimed.iter().map(|m| m.id).collect();
    let cleared = ids.iter().map(|id| (*id, common::queue(now))).collect();
    t.store.record_decisions(cleared, "d", now).await.unwrap();
    let sending = t.store.mark_sending(ids, "d", now, until).await.unwrap();
    assert_eq!(sending.len(), recipients);
    let mut sids = Vec::new();
    for (i, id) in sending.iter().enumerate() {
        let sid = format!("SMg{i:04}");
        let accepted = Accepted {
            provider_sid: sid.clone(),
            status: MessageStatus::Sending,
        };
        t.engine.record_acceptance(*id, &accepted).await.unwrap();
        sids.push((sid, *id));
    }
    sids
}

/// Sends every callback at once, each from a task of its own (as webhooks on many
/// connections), and answers each one's result in the order given.
async fn all_at_once(
    engine: &messaging_core::Engine,
    callbacks: Vec<BTreeMap<String, String>>,
) -> Vec<Result<messaging_core::engine::StatusReceipt, EngineError>> {
    let tasks: Vec<_> = callbacks
        .into_iter()
        .map(|fields| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.receive_status(fields).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// Callbacks arriving together are committed in groups: each is still answered with what it
/// did, a repeat in the same group is a duplicate, statuses for unknown SIDs wait, and no
/// message moves backwards or logs a status twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_arriving_together_each_apply_once() {
    let t = engine().await;
    let sids = accepted(&t, 60).await;
    let mut callbacks = Vec::new();
    for (sid, _) in &sids {
        for status in ["sent", "delivered", "read", "delivered"] {
            callbacks.push(callback(sid, status));
        }
    }
    for i in 0..20 {
        callbacks.push(callback(&format!("SMunknown{i}"), "delivered"));
    }
    let results = all_at_once(&t.engine, callbacks).await;
    let outcomes: Vec<ReceiptOutcome> = results
        .into_iter()
        .map(|r| r.expect("every callback is recorded").outcome)
        .collect();
    for (n, (sid, id)) in sids.iter().enumerate() {
        let mine = &outcomes[n * 4..n * 4 + 4];
        let duplicates = mine
            .iter()
            .filter(|o| **o == ReceiptOutcome::Duplicate)
            .count();
        assert_eq!(
            duplicates, 1,
            "{sid}: one of the two `delivered` repeats: {mine:?}"
        );
        assert!(
            mine.contains(&ReceiptOutcome::Applied(MessageStatus::Read)),
            "{sid}: {mine:?}"
        );
        let message = t.engine.get_message(*id).await.unwrap();
        assert_eq!(message.status, MessageStatus::Read, "{sid}");
        let logged: Vec<MessageStatus> = message.history.iter().map(|c| c.status).collect();
        let unique: std::collections::HashSet<_> = logged.iter().collect();
        assert_eq!(
            unique.len(),
            logged.len(),
            "{sid} logged a status twice: {logged:?}"
        );
    }
    assert!(
        outcomes[sids.len() * 4..]
            .iter()
            .all(|o| *o == ReceiptOutcome::Parked),
        "{:?}",
        &outcomes[sids.len() * 4..]
    );
}

/// Makes the database refuse receipts for `sid` (as a constraint would), on either backend.
async fn refuse_receipts_for(t: &common::TestEngine, sid: &str) {
    match &t.database {
        None => {
            let conn = rusqlite::Connection::open(t.dir.path().join("test.db")).unwrap();
            conn.execute_batch(&format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON receipts WHEN NEW.message_sid = '{sid}'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
            ))
            .unwrap();
        }
        Some(database) => {
            let (client, connection) =
                tokio_postgres::connect(database.url(), tokio_postgres::NoTls)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
                     CREATE TRIGGER refuse BEFORE INSERT ON receipts FOR EACH ROW
                     WHEN (NEW.message_sid = '{sid}') EXECUTE FUNCTION refuse();"
                ))
                .await
                .unwrap();
        }
    }
}

/// A callback the database refuses fails alone: the others committed in its group are
/// answered and applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_callback_fails_alone() {
    let t = engine().await;
    let sids = accepted(&t, 30).await;
    refuse_receipts_for(&t, "SMg0007").await;
    let callbacks = sids
        .iter()
        .map(|(sid, _)| callback(sid, "delivered"))
        .collect();
    let results = all_at_once(&t.engine, callbacks).await;
    for ((sid, id), result) in sids.iter().zip(results) {
        let message = t.engine.get_message(*id).await.unwrap();
        if sid == "SMg0007" {
            let error = result.expect_err("the refused callback fails").to_string();
            assert!(error.contains("refused by the test"), "{error}");
            assert_eq!(message.status, MessageStatus::Sending, "{sid}");
        } else {
            let outcome = result.expect("the others are recorded").outcome;
            assert_eq!(
                outcome,
                ReceiptOutcome::Applied(MessageStatus::Delivered),
                "{sid}"
            );
            assert_eq!(message.status, MessageStatus::Delivered, "{sid}");
        }
    }
}
