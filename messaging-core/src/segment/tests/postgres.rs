//! The same rules compiled with the [`Postgres`] dialect and run against a real PostgreSQL
//! database (a scratch database on the test server) holding the users, topics and events of
//! `matching`: each rule selects exactly the users it selects in SQLite. PostgreSQL text
//! cannot hold the NUL character, so the one attribute with a NUL is left out here, and the
//! rules about it are checked on their own.

use chrono::TimeDelta;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;

use super::limits::conditions;
use super::matching::{EVENTS, TOPICS, cases, now, phone, users};
use crate::segment::sql::{CompiledPredicate, Postgres, SqlParam, compile, event_name_key};
use crate::segment::{MAX_CONDITIONS, MAX_DEPTH, MAX_GROUP_CONDITIONS, MAX_IN_VALUES, SegmentRule};
use crate::store::postgres::ScratchDatabase;

/// The store's tables as far as segments read them, as the PostgreSQL adapter lays them out.
const SCHEMA: &str = r#"
    CREATE TABLE users (
        phone text COLLATE "C" PRIMARY KEY, name text, wa_id text, consent_state text NOT NULL,
        attributes jsonb NOT NULL DEFAULT '{}', timezone text, locale text,
        last_inbound_at timestamptz, created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL, revision bigint NOT NULL DEFAULT 0
    );
    CREATE INDEX users_attributes ON users USING gin (attributes jsonb_path_ops);
    CREATE TABLE subscriptions (
        phone text COLLATE "C" NOT NULL, topic text COLLATE "C" NOT NULL,
        created_at timestamptz NOT NULL, PRIMARY KEY (phone, topic)
    );
    CREATE INDEX subscriptions_by_topic ON subscriptions (topic, phone);
    CREATE TABLE events (
        id text PRIMARY KEY, external_id text UNIQUE, name text NOT NULL,
        name_key text COLLATE "C" NOT NULL, user_phone text COLLATE "C", segment_rule jsonb,
        data jsonb NOT NULL, occurred_at timestamptz NOT NULL, received_at timestamptz NOT NULL
    );
    CREATE INDEX events_by_user ON events (user_phone, name_key, occurred_at);
"#;

/// A scratch database holding the test users, and a connection to it.
struct Database {
    client: tokio_postgres::Client,
    _database: ScratchDatabase,
}

async fn database() -> Database {
    let database = ScratchDatabase::create()
        .await
        .expect("a PostgreSQL server for the segment tests (see TEST_DATABASE_URL)");
    let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(SCHEMA).await.unwrap();
    for (n, name, consent, mut attributes, locale) in users() {
        attributes.as_object_mut().unwrap().remove("nul");
        client
            .execute(
                "INSERT INTO users (phone, name, wa_id, consent_state, attributes, locale,
                     created_at, updated_at, revision)
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, now(), now(), 1)",
                &[
                    &phone(n),
                    &name,
                    &name.map(|_| format!("wa{n}")),
                    &consent,
                    &attributes.to_string(),
                    &locale,
                ],
            )
            .await
            .unwrap();
    }
    for (n, topic) in TOPICS {
        client
            .execute(
                "INSERT INTO subscriptions (phone, topic, created_at) VALUES ($1, $2, now())",
                &[&phone(n), &topic],
            )
            .await
            .unwrap();
    }
    for (i, (n, name, days_ago)) in EVENTS.into_iter().enumerate() {
        let at = now() - TimeDelta::days(days_ago);
        client
            .execute(
                "INSERT INTO events (id, name, name_key, user_phone, data, occurred_at, received_at)
                 VALUES ($1, $2, $3, $4, '{}', $5, $5)",
                &[&i.to_string(), &name, &event_name_key(name), &phone(n), &at],
            )
            .await
            .unwrap();
    }
    Database {
        client,
        _database: database,
    }
}

fn params(predicate: &CompiledPredicate) -> Vec<&(dyn ToSql + Sync)> {
    predicate
        .params
        .iter()
        .map(|p| p as &(dyn ToSql + Sync))
        .collect()
}

/// The users a predicate selects, as the concatenated last digits of their phones (`"125"`).
async fn run(db: &Database, predicate: &CompiledPredicate) -> String {
    let sql = format!(
        "SELECT u.phone FROM users u WHERE {} ORDER BY u.phone",
        predicate.sql
    );
    db.client
        .query(&sql, &params(predicate))
        .await
        .unwrap_or_else(|e| panic!("{sql} {:?}: {e:?}", predicate.params))
        .iter()
        .map(|row| row.get::<_, String>(0).chars().last().unwrap())
        .collect()
}

async fn select(db: &Database, definition: &Value) -> String {
    let rule = SegmentRule::parse(definition).unwrap_or_else(|e| panic!("{definition}: {e}"));
    run(db, &compile(rule.root(), &Postgres, now())).await
}

/// Whether a definition mentions the NUL character (no PostgreSQL text holds one).
fn mentions_nul(definition: &Value) -> bool {
    definition.to_string().contains("\\u0000")
}

#[tokio::test]
async fn every_rule_selects_the_users_it_selects_in_sqlite() {
    let db = database().await;
    let mut checked = 0;
    for table in cases::ALL {
        for (definition, expected) in table() {
            if mentions_nul(&definition) {
                continue;
            }
            assert_eq!(select(&db, &definition).await, expected, "{definition}");
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} rules checked");
}

#[tokio::test]
async fn text_with_nul_matches_nothing_and_fails_nothing() {
    let db = database().await;
    for (definition, expected) in [
        (json!({"attributes.note": "a\u{0}b"}), ""),
        (json!({"attributes.note": {"ne": "a\u{0}b"}}), "12345"),
        (json!({"attributes.note": {"starts_with": "5\u{0}"}}), ""),
        (json!({"attributes.note": {"contains": "\u{0}"}}), ""),
        (json!({"attributes.tags": {"contains": "\u{0}"}}), ""),
        (json!({"attributes.city": {"in": ["a\u{0}", "Kandy"]}}), "2"),
        (
            json!({"attributes.city": {"in": ["\\u0000", "Colombo"]}}),
            "1",
        ),
        (json!({"attribute": ["a\u{0}"], "op": "exists"}), ""),
        (json!({"attribute": ["a\u{0}"], "op": "eq", "value": 1}), ""),
        (json!({"attribute": ["a\u{0}"], "op": "gt", "value": 1}), ""),
        (json!({"name": {"in": ["Ann\u{0}", "Bob"]}}), "2"),
        (json!({"event": "cart\u{0}"}), ""),
    ] {
        assert_eq!(select(&db, &definition).await, expected, "{definition}");
    }
}

#[tokio::test]
async fn any_key_text_is_reachable_through_its_path() {
    let db = database().await;
    let keys = [
        "\n",
        "\t",
        "\u{1}",
        "\u{7f}",
        "\"",
        "\\",
        "\\\"",
        "\\u0022",
        "$",
        ".",
        "'",
        "[0]",
        "#",
        "*",
        " ",
        "\u{2028}",
        "é\u{301}",
        "🙂",
        "{a,b}",
        "a,b",
        "{}",
        "NULL",
        "0",
        "-1",
    ];
    // Past `CHAINED_KEYS` keys, a path is one array parameter.
    let long: Vec<String> = (0..Postgres::CHAINED_KEYS)
        .map(|i| format!("l{i}"))
        .collect();
    for key in keys {
        let deep = nest(&long, json!({key: "found"}));
        db.client
            .execute(
                "UPDATE users SET attributes = $1::text::jsonb WHERE phone = $2",
                &[
                    &json!({key: "found", "other": 1, "l0": deep["l0"]}).to_string(),
                    &phone("4"),
                ],
            )
            .await
            .unwrap();
        let mut long_path = long.clone();
        long_path.push(key.to_owned());
        for op in ["eq", "starts_with"] {
            let rule = json!({"attribute": [key], "op": op, "value": "found"});
            assert_eq!(select(&db, &rule).await, "4", "{key:?} {op}");
            let nested = json!({"attribute": ["none", key], "op": op, "value": "found"});
            assert_eq!(select(&db, &nested).await, "", "{key:?} {op}");
            let rule = json!({"attribute": long_path, "op": op, "value": "found"});
            assert_eq!(select(&db, &rule).await, "4", "{key:?} {op} long");
        }
    }
}

/// `inner` under the keys of `path`, outermost first.
fn nest(path: &[String], inner: Value) -> Value {
    path.iter()
        .rev()
        .fold(inner, |inner, key| json!({ key.as_str(): inner }))
}

#[tokio::test]
async fn keys_that_look_like_indexes_name_object_members_only() {
    let db = database().await;
    let long: Vec<String> = (1..Postgres::CHAINED_KEYS)
        .map(|i| format!("l{i}"))
        .collect();
    db.client
        .execute(
            "UPDATE users SET attributes = $1::text::jsonb WHERE phone = $2",
            &[
                &json!({"list": ["x", 5], "obj": {"0": "x", "-1": 5},
                        "l0": nest(&long, json!({"list": ["x", 5], "obj": {"0": "x", "-1": 5}}))})
                .to_string(),
                &phone("4"),
            ],
        )
        .await
        .unwrap();
    let mut cases = vec![
        (
            json!({"attribute": ["list", "0"], "op": "eq", "value": "x"}),
            "",
        ),
        (
            json!({"attribute": ["list", "0"], "op": "starts_with", "value": "x"}),
            "",
        ),
        (
            json!({"attribute": ["list", "1"], "op": "gt", "value": 1}),
            "",
        ),
        (json!({"attribute": ["list", "-1"], "op": "exists"}), ""),
        (
            json!({"attribute": ["obj", "0"], "op": "eq", "value": "x"}),
            "4",
        ),
        (
            json!({"attribute": ["obj", "0"], "op": "starts_with", "value": "x"}),
            "4",
        ),
        (
            json!({"attribute": ["obj", "-1"], "op": "gte", "value": 5}),
            "4",
        ),
        (
            json!({"attribute": ["obj", "-1"], "op": "in", "value": [5]}),
            "4",
        ),
    ];
    // The same paths past `CHAINED_KEYS` keys (read with `#>`).
    let longer: Vec<(Value, &str)> = cases
        .iter()
        .map(|(definition, expected)| {
            let mut definition = definition.clone();
            let keys: Vec<Value> = std::iter::once(json!("l0"))
                .chain(long.iter().map(|k| json!(k)))
                .chain(definition["attribute"].as_array().unwrap().iter().cloned())
                .collect();
            definition["attribute"] = Value::Array(keys);
            (definition, *expected)
        })
        .collect();
    cases.extend(longer);
    for (definition, expected) in cases {
        assert_eq!(select(&db, &definition).await, expected, "{definition}");
    }
}

#[tokio::test]
async fn numbers_compare_by_value_whatever_their_size() {
    let db = database().await;
    db.client
        .execute(
            "UPDATE users SET attributes = $1::text::jsonb WHERE phone = $2",
            &[
                &json!({"big": 9_007_199_254_740_993i64, "small": 1e-7}).to_string(),
                &phone("4"),
            ],
        )
        .await
        .unwrap();
    for (definition, expected) in [
        (json!({"attributes.big": 9_007_199_254_740_993i64}), "4"),
        (json!({"attributes.big": 9_007_199_254_740_992i64}), ""),
        (
            json!({"attributes.big": {"gt": 9_007_199_254_740_992i64}}),
            "4",
        ),
        (
            json!({"attributes.big": {"in": [9_007_199_254_740_993i64]}}),
            "4",
        ),
        (json!({"attributes.small": {"lt": 1e-6, "gt": 0}}), "4"),
        (json!({"attributes.small": 1e-7}), "4"),
    ] {
        assert_eq!(select(&db, &definition).await, expected, "{definition}");
    }
}

#[tokio::test]
async fn combined_rules_narrow_each_other_and_compose_with_more_parameters() {
    let db = database().await;
    let campaign = SegmentRule::parse(&json!({"topic": "DANCE"})).unwrap();
    let event = SegmentRule::parse(&json!({"attributes.city": "Kandy"})).unwrap();
    let predicate = campaign.and(&event).to_sql(&Postgres, now());
    assert_eq!(run(&db, &predicate).await, "2");

    let rule = SegmentRule::parse(&json!({"attributes.city": {"exists": true}})).unwrap();
    let predicate = rule.to_sql(&Postgres, now());
    let n = predicate.params.len();
    let sql = format!(
        "SELECT u.phone FROM users u WHERE {} AND u.phone > ${} ORDER BY u.phone LIMIT ${}",
        predicate.sql,
        n + 1,
        n + 2
    );
    let (after, limit) = (phone("1"), 1i64);
    let mut all = params(&predicate);
    all.push(&after);
    all.push(&limit);
    let found: String = db.client.query_one(&sql, &all).await.unwrap().get(0);
    assert_eq!(found, phone("2"));
}

#[test]
fn equality_is_containment_and_no_value_or_key_reaches_the_sql_text() {
    let rule = SegmentRule::parse(&json!({"attributes.address.city": "Kandy"})).unwrap();
    let predicate = rule.to_sql(&Postgres, now());
    assert_eq!(predicate.sql, "(u.attributes @> $1::text::jsonb)");
    assert_eq!(
        predicate.params,
        [SqlParam::Text(r#"{"address":{"city":"Kandy"}}"#.into())]
    );

    let rule = SegmentRule::parse(&json!({"all": [
        {"attributes.secret_key": {"in": ["secret'value", 4242]}},
        {"name": {"starts_with": "Robert'); DROP TABLE users;--"}},
        {"topic": "HIDDEN"},
        {"event": "secret_event", "min_count": 97, "within_days": 93},
    ]}))
    .unwrap();
    let predicate = rule.to_sql(&Postgres, now());
    for needle in ["secret", "4242", "DROP", "HIDDEN", "97", "93"] {
        assert!(
            !predicate.sql.contains(needle),
            "{needle} in {}",
            predicate.sql
        );
    }
    for param in [
        "secret_key",
        r#"["secret'value",4242]"#,
        "secret_event",
        "2024-02-29T12:00:00.000Z",
    ] {
        assert!(
            predicate.params.contains(&SqlParam::Text(param.into())),
            "{param} not in {:?}",
            predicate.params
        );
    }
}

#[test]
fn keys_are_quoted_in_the_array_of_a_path() {
    let path = |keys: &[&str]| {
        Postgres::key_array(&keys.iter().map(|k| k.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(path(&["address", "city"]), r#"{"address","city"}"#);
    assert_eq!(path(&["a,b", "{c}", " d "]), r#"{"a,b","{c}"," d "}"#);
    assert_eq!(path(&["q\"x", "back\\slash"]), r#"{"q\"x","back\\slash"}"#);
}

#[tokio::test]
async fn the_largest_accepted_definitions_run_in_postgres() {
    let db = database().await;
    let mut cities: Vec<Value> = (0..MAX_IN_VALUES - 1)
        .map(|i| json!(format!("city {i}")))
        .collect();
    cities.push(json!("Kandy"));
    let rule =
        SegmentRule::parse(&json!({"attribute": "city", "op": "in", "value": cities})).unwrap();
    let predicate = compile(rule.root(), &Postgres, now());
    assert_eq!(
        predicate.params.len(),
        2,
        "the attribute's path and the list"
    );
    assert_eq!(run(&db, &predicate).await, "2");

    let mut inner = vec![json!({"attributes.city": {"starts_with": "Kan"}})];
    inner.extend(conditions(MAX_GROUP_CONDITIONS - 3));
    let mut outer = vec![json!({"any": inner})];
    outer.extend(conditions(MAX_GROUP_CONDITIONS - 1));
    assert_eq!(select(&db, &json!({"any": outer})).await, "2");

    let width = MAX_CONDITIONS / MAX_DEPTH - 1;
    let deep = (0..MAX_DEPTH - 1).fold(json!({"attributes.city": "Kandy"}), |inner, _| {
        let mut children = vec![inner];
        children.extend(conditions(width - 1).into_iter().map(|mut c| {
            c["op"] = json!("ne");
            c
        }));
        json!({"all": children})
    });
    assert_eq!(select(&db, &deep).await, "2");

    let mut wide = conditions(MAX_GROUP_CONDITIONS - 1);
    wide.push(json!({"event": "cart_abandoned", "min_count": 2, "within_days": 7}));
    let mut other = conditions(MAX_CONDITIONS - MAX_GROUP_CONDITIONS - 4);
    other.push(json!({"topic": "NEWS"}));
    let broad = json!({"any": [{"any": wide}, {"any": other}]});
    assert_eq!(select(&db, &broad).await, "123");

    let nots = (0..MAX_DEPTH).fold(json!({"topic": "DANCE"}), |inner, _| json!({"not": inner}));
    assert_eq!(select(&db, &nots).await, "12");

    // A window reaching before the year 1 holds every event.
    let forever = json!({"event": "cart_abandoned", "within_days": u32::MAX});
    assert_eq!(select(&db, &forever).await, "125");
    let long = json!({"event": "cart_abandoned", "within_days": 800_000});
    assert_eq!(select(&db, &long).await, "125");
}

/// Whatever the parser accepts compiles to SQL that PostgreSQL runs (fewer cases than the
/// SQLite property, each being a round trip to the server).
#[test]
fn accepted_rules_compile_to_sql_that_postgres_runs() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(database());
    let strategy = proptest::prop_oneof![super::properties::json(), super::properties::rule_like()];
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&strategy, |definition| {
            if let Ok(rule) = SegmentRule::parse(&definition) {
                let predicate = compile(rule.root(), &Postgres, now());
                let sql = format!("SELECT COUNT(*) FROM users u WHERE {}", predicate.sql);
                let count = runtime.block_on(db.client.query_one(&sql, &params(&predicate)));
                proptest::prop_assert!(count.is_ok(), "{sql} {:?}: {count:?}", predicate.params);
            }
            Ok(())
        })
        .unwrap();
}
