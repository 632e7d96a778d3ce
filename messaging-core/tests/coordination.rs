//! Heartbeats and the shared rate buckets, through the store port, on the backend `TEST_STORE`
//! names: what processes sharing a database learn of each other.

mod common;

use chrono::TimeDelta;
use common::{engine, start_time};

#[tokio::test]
async fn permits_refill_at_the_rate_and_never_beyond_the_burst() {
    let t = engine().await;
    let store = &t.store;
    let now = start_time();
    assert_eq!(store.take_permits("s", 10.0, 5.0, 8, now).await.unwrap(), 5);
    assert_eq!(store.take_permits("s", 10.0, 5.0, 8, now).await.unwrap(), 0);
    let later = now + TimeDelta::milliseconds(300);
    assert_eq!(
        store.take_permits("s", 10.0, 5.0, 8, later).await.unwrap(),
        3
    );
    // A process whose clock is behind takes nothing that is not there.
    assert_eq!(store.take_permits("s", 10.0, 5.0, 8, now).await.unwrap(), 0);
    let much_later = later + TimeDelta::seconds(60);
    assert_eq!(
        store
            .take_permits("s", 10.0, 5.0, 8, much_later)
            .await
            .unwrap(),
        5
    );
    // Each key is its own bucket.
    assert_eq!(store.take_permits("t", 10.0, 5.0, 2, now).await.unwrap(), 2);
}

/// Processes taking from one bucket at once never take more than it holds together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takers_share_one_bucket() {
    let t = engine().await;
    let now = start_time();
    let takers = (0..8).map(|_| {
        let store = t.store.clone();
        tokio::spawn(async move {
            let mut taken = 0;
            for _ in 0..10 {
                taken += store
                    .take_permits("shared", 1.0, 50.0, 3, now)
                    .await
                    .unwrap();
            }
            taken
        })
    });
    let mut total = 0;
    for taker in takers {
        total += taker.await.unwrap();
    }
    assert_eq!(total, 50, "{} took {total} of a bucket of 50", t.backend);
}

#[tokio::test]
async fn heartbeats_live_until_they_run_out_or_end() {
    let t = engine().await;
    let store = &t.store;
    let now = start_time();
    store
        .heartbeat("a", "one", now + TimeDelta::seconds(15))
        .await
        .unwrap();
    store
        .heartbeat("b", "two", now + TimeDelta::seconds(5))
        .await
        .unwrap();
    let live = store.live_processes(now).await.unwrap();
    assert_eq!(
        live.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let later = store
        .live_processes(now + TimeDelta::seconds(10))
        .await
        .unwrap();
    assert_eq!(
        later.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(),
        ["one"]
    );
    // A late beat with an earlier time does not shorten a life.
    store.heartbeat("a", "one", now).await.unwrap();
    assert_eq!(
        store
            .live_processes(now + TimeDelta::seconds(10))
            .await
            .unwrap()
            .len(),
        1
    );
    store.end_heartbeat("a").await.unwrap();
    assert!(
        store
            .live_processes(now)
            .await
            .unwrap()
            .iter()
            .all(|p| p.id != "a")
    );
}
