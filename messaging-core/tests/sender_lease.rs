//! The database's sending lease, through the store port on a real SQLite file: one holder at
//! a time, renewed by its holder, taken over only once it ran out or was given up.

mod common;

use chrono::Duration;
use common::{backends, start_time};

#[tokio::test]
async fn one_holder_at_a_time_until_it_runs_out_or_is_given_up() {
    for test in backends().await {
        let store = &test.store;
        let now = start_time();
        let term = Duration::seconds(15);

        assert_eq!(test.engine.current_sender().await.unwrap(), None);
        let first = store
            .take_sender_lease("a", "server", now, now + term)
            .await
            .unwrap();
        assert_eq!(
            test.engine.current_sender().await.unwrap().as_deref(),
            Some("server"),
            "a front end can say who sends"
        );
        assert_eq!((first.holder.as_str(), first.taken), ("a", true));

        let refused = store
            .take_sender_lease("b", "desktop", now + Duration::seconds(5), now + term * 2)
            .await
            .unwrap();
        assert_eq!(refused.holder, "a", "a live lease stays with its holder");
        assert_eq!(
            refused.label, "server",
            "the other process learns who sends"
        );
        assert!(!refused.taken);

        let renewed = store
            .take_sender_lease(
                "a",
                "server",
                now + Duration::seconds(5),
                now + Duration::seconds(20),
            )
            .await
            .unwrap();
        assert_eq!((renewed.holder.as_str(), renewed.taken), ("a", false));
        assert_eq!(renewed.until, now + Duration::seconds(20));

        let still_refused = store
            .take_sender_lease("b", "desktop", now + Duration::seconds(19), now + term * 2)
            .await
            .unwrap();
        assert_eq!(still_refused.holder, "a", "renewing moved the end");

        let taken = store
            .take_sender_lease("b", "desktop", now + Duration::seconds(20), now + term * 2)
            .await
            .unwrap();
        assert_eq!(
            (taken.holder.as_str(), taken.taken),
            ("b", true),
            "it ran out"
        );

        store.release_sender_lease("a").await.unwrap();
        let kept = store
            .take_sender_lease("a", "server", now + Duration::seconds(21), now + term * 3)
            .await
            .unwrap();
        assert_eq!(kept.holder, "b", "only the holder can give the lease up");

        store.release_sender_lease("b").await.unwrap();
        let back = store
            .take_sender_lease("a", "server", now + Duration::seconds(21), now + term * 3)
            .await
            .unwrap();
        assert_eq!(
            (back.holder.as_str(), back.taken),
            ("a", true),
            "given up: taken at once"
        );
    }
}
