//! Claims of due messages by several dispatchers, through the store port, on the backend
//! `TEST_STORE` names: concurrent claims never take one message twice, and a dispatcher whose
//! claims were ended (it stopped beating) and taken by another changes none of them after.

mod common;

use std::collections::HashSet;

use chrono::Duration;
use common::{engine, launched, queue, start_time};
use messaging_core::domain::MessageStatus;
use messaging_core::store::ClaimRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_take_one_message_twice() {
    let t = engine().await;
    let campaign = launched(&t, 600).await;
    let now = start_time();
    let claims = (0..6).map(|i| {
        let store = t.store.clone();
        tokio::spawn(async move {
            let owner = format!("dispatcher-{i}");
            let mut ids = Vec::new();
            for _ in 0..4 {
                let request = ClaimRequest {
                    campaign_id: Some(campaign),
                    limit: 40,
                };
                let claimed = store
                    .claim_due(&[request], &owner, now, now + Duration::minutes(2))
                    .await
                    .unwrap();
                ids.extend(claimed.into_iter().map(|m| m.id));
            }
            ids
        })
    });
    let mut all = Vec::new();
    for claim in claims {
        all.extend(claim.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "{}: a message was claimed twice",
        t.backend
    );
    assert_eq!(
        all.len(),
        600,
        "{}: every message was claimed once",
        t.backend
    );
}

#[tokio::test]
async fn a_dispatcher_whose_claims_were_taken_over_changes_none_of_them() {
    let t = engine().await;
    let campaign = launched(&t, 5).await;
    let store = &t.store;
    let now = start_time();
    let request = [ClaimRequest {
        campaign_id: Some(campaign),
        limit: 10,
    }];
    let lease = Duration::minutes(2);

    let first = store
        .claim_due(&request, "a", now, now + lease)
        .await
        .unwrap();
    assert_eq!(first.len(), 5);
    // "a" stops beating (it never did here); the leader ends its claims and "b" claims them.
    store
        .heartbeat("b", "b", now + Duration::seconds(15))
        .await
        .unwrap();
    let released = store
        .release_claims("b", now, now + Duration::seconds(15))
        .await
        .unwrap();
    assert_eq!(released, 5, "{}", t.backend);
    let second = store
        .claim_due(&request, "b", now, now + lease)
        .await
        .unwrap();
    assert_eq!(
        second.len(),
        5,
        "{}: the released messages are claimable",
        t.backend
    );

    // "a" wakes up: its decisions and its marking are refused, message by message.
    let ids: Vec<_> = first.iter().map(|m| m.id).collect();
    store
        .record_decisions(ids.iter().map(|id| (*id, queue(now))).collect(), "a", now)
        .await
        .unwrap();
    let marked = store
        .mark_sending(ids.clone(), "a", now, now + lease)
        .await
        .unwrap();
    assert!(marked.is_empty(), "{}: {marked:?}", t.backend);
    for id in &ids {
        let message = t.engine.get_message(*id).await.unwrap();
        assert_eq!(message.status, MessageStatus::Pending, "{}", t.backend);
    }

    // "b", which holds them, decides and marks them.
    store
        .record_decisions(ids.iter().map(|id| (*id, queue(now))).collect(), "b", now)
        .await
        .unwrap();
    let marked = store
        .mark_sending(ids.clone(), "b", now, now + lease)
        .await
        .unwrap();
    assert_eq!(marked.len(), 5, "{}", t.backend);
}
