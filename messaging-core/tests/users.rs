//! Creating, replacing and patching users through the engine, on a real SQLite file: a create
//! never overwrites (even when many race), a replace never opts anyone back in, and a patch
//! merges into a stored user but never creates one.

mod common;

use std::sync::Arc;

use common::backends;
use messaging_core::domain::{
    AttributePatch, Consent, PhoneNumber, UpsertOutcome, User, UserChanges,
};
use messaging_core::{Engine, EngineError};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

const AMAYA: &str = "+94771234567";

fn amaya() -> PhoneNumber {
    PhoneNumber::parse(AMAYA).unwrap()
}

/// Attributes as the engine takes them, from a JSON object.
fn attributes(value: Value) -> AttributePatch {
    let Value::Object(map) = value else {
        panic!("attributes are an object")
    };
    map.into()
}

fn named(name: &str) -> UserChanges {
    UserChanges {
        name: Some(name.to_owned()),
        ..UserChanges::default()
    }
}

#[tokio::test]
async fn creating_an_existing_phone_is_a_conflict() {
    for t in backends().await {
        let created = t.engine.create_user(amaya(), named("Amaya")).await.unwrap();
        assert_eq!(created.consent_state, Consent::OptIn, "new users opt in");

        let again = UserChanges {
            consent_state: Some(Consent::OptOut),
            attributes: attributes(json!({ "city": "Kandy" })),
            ..named("Someone else")
        };
        match t.engine.create_user(amaya(), again).await {
            Err(EngineError::Conflict(message)) => assert_eq!(
                message,
                format!("user {AMAYA} exists already; change it with PUT or PATCH /users/{AMAYA}")
            ),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            t.engine.get_user(&amaya()).await.unwrap(),
            created,
            "the stored user is untouched"
        );
    }
}

/// Races `CREATES` creates of `phone`, released together so that a check-then-write would
/// let several see the phone free; answers the name and user of each create that succeeded,
/// and how many were conflicts.
async fn race_creates(engine: &Engine, phone: &PhoneNumber) -> (Vec<(String, User)>, usize) {
    let start = Arc::new(Barrier::new(CREATES));
    let mut creates = JoinSet::new();
    for n in 0..CREATES {
        let (engine, start, phone) = (engine.clone(), Arc::clone(&start), phone.clone());
        creates.spawn(async move {
            let name = format!("Creator {n}");
            start.wait().await;
            let created = engine.create_user(phone, named(&name)).await;
            (name, created)
        });
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    while let Some(joined) = creates.join_next().await {
        match joined.unwrap() {
            (name, Ok(user)) => winners.push((name, user)),
            (_, Err(EngineError::Conflict(_))) => conflicts += 1,
            (name, Err(other)) => panic!("{name}: expected a conflict, got {other:?}"),
        }
    }
    (winners, conflicts)
}

const CREATES: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_phone_make_one_user() {
    for t in backends().await {
        // One race may happen to run its creates one after another; ten rarely all do.
        let phones: Vec<PhoneNumber> = (0..10)
            .map(|n| PhoneNumber::parse(&format!("+9477123450{n}")).unwrap())
            .collect();
        for phone in &phones {
            let (winners, conflicts) = race_creates(&t.engine, phone).await;
            assert_eq!(
                winners.len(),
                1,
                "{phone}: exactly one create wins: {winners:?}"
            );
            assert_eq!(conflicts, CREATES - 1, "{phone}");
            let (name, created) = &winners[0];
            let stored = t.engine.get_user(phone).await.unwrap();
            assert_eq!(
                stored.name.as_deref(),
                Some(name.as_str()),
                "{phone}: no loser wrote"
            );
            assert_eq!(&stored, created);
        }
        assert_eq!(t.engine.count_users().await.unwrap(), phones.len() as u64);
    }
}

#[tokio::test]
async fn replacing_without_consent_keeps_an_opt_out() {
    for t in backends().await {
        let opted_out = UserChanges {
            consent_state: Some(Consent::OptOut),
            attributes: attributes(json!({ "city": "Colombo", "tier": "gold" })),
            locale: Some("en".into()),
            ..named("Amaya")
        };
        t.engine.create_user(amaya(), opted_out).await.unwrap();

        let replacement = UserChanges {
            attributes: attributes(json!({ "city": "Kandy" })),
            ..named("Amaya Perera")
        };
        let (replaced, outcome) = t.engine.replace_user(amaya(), replacement).await.unwrap();
        assert_eq!(outcome, UpsertOutcome::Updated);
        assert_eq!(
            replaced.consent_state,
            Consent::OptOut,
            "never opted back in"
        );
        assert_eq!(replaced.name.as_deref(), Some("Amaya Perera"));
        assert_eq!(
            Value::Object(replaced.attributes.clone()),
            json!({ "city": "Kandy" })
        );
        assert_eq!(replaced.locale, None, "what is not given is cleared");
        assert_eq!(t.engine.get_user(&amaya()).await.unwrap(), replaced);

        let opt_in = UserChanges {
            consent_state: Some(Consent::OptIn),
            ..UserChanges::default()
        };
        let (replaced, _) = t.engine.replace_user(amaya(), opt_in).await.unwrap();
        assert_eq!(
            replaced.consent_state,
            Consent::OptIn,
            "a given consent is set"
        );
    }
}

#[tokio::test]
async fn replacing_an_unknown_phone_creates_it_opted_in() {
    for t in backends().await {
        let (created, outcome) = t
            .engine
            .replace_user(amaya(), named("Amaya"))
            .await
            .unwrap();
        assert_eq!(outcome, UpsertOutcome::Inserted);
        assert_eq!(created.consent_state, Consent::OptIn);
        assert_eq!(created.name.as_deref(), Some("Amaya"));
        assert_eq!(t.engine.get_user(&amaya()).await.unwrap(), created);
    }
}

#[tokio::test]
async fn patching_merges_attributes_key_by_key() {
    for t in backends().await {
        let original = UserChanges {
            consent_state: Some(Consent::OptOut),
            attributes: attributes(json!({ "city": "Colombo", "tier": "gold" })),
            locale: Some("en".into()),
            ..named("Amaya")
        };
        t.engine.create_user(amaya(), original).await.unwrap();

        let patch = UserChanges {
            attributes: attributes(json!({ "tier": "platinum", "pets": 2 })),
            ..UserChanges::default()
        };
        let patched = t.engine.update_user(amaya(), patch).await.unwrap();
        assert_eq!(
            Value::Object(patched.attributes.clone()),
            json!({ "city": "Colombo", "tier": "platinum", "pets": 2 })
        );
        assert_eq!(
            patched.name.as_deref(),
            Some("Amaya"),
            "kept when not given"
        );
        assert_eq!(patched.locale.as_deref(), Some("en"), "kept when not given");
        assert_eq!(
            patched.consent_state,
            Consent::OptOut,
            "kept when not given"
        );
        assert_eq!(t.engine.get_user(&amaya()).await.unwrap(), patched);
    }
}

#[tokio::test]
async fn patching_an_unknown_phone_is_not_found() {
    for t in backends().await {
        match t.engine.update_user(amaya(), named("Nobody")).await {
            Err(EngineError::NotFound { kind, id }) => {
                assert_eq!(kind, "user");
                assert_eq!(id, AMAYA);
            }
            other => panic!("expected not found, got {other:?}"),
        }
        assert!(
            matches!(
                t.engine.get_user(&amaya()).await,
                Err(EngineError::NotFound { .. })
            ),
            "a patch never creates"
        );
        assert_eq!(t.engine.count_users().await.unwrap(), 0);
    }
}
