//! Compiled rules run against a real (in-memory) SQLite database holding a handful of known
//! users, subscriptions and events; each test states exactly which phones a rule selects.

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, params, params_from_iter};
use serde_json::{Value, json};

use crate::segment::SegmentRule;
use crate::segment::sql::{CompiledPredicate, SqlParam, Sqlite, compile, event_name_key};

/// The store's tables as far as segments read them.
pub(super) const SCHEMA: &str = "
    CREATE TABLE users (
        phone TEXT PRIMARY KEY, name TEXT, wa_id TEXT, consent_state TEXT NOT NULL,
        attributes TEXT NOT NULL, timezone TEXT, locale TEXT, last_inbound_at INTEGER,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, revision INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE subscriptions (
        phone TEXT NOT NULL, topic TEXT NOT NULL, created_at INTEGER NOT NULL,
        PRIMARY KEY (phone, topic)
    ) WITHOUT ROWID;
    CREATE INDEX subscriptions_by_topic ON subscriptions (topic, phone);
    CREATE TABLE events (
        id TEXT PRIMARY KEY, external_id TEXT UNIQUE, name TEXT NOT NULL, name_key TEXT NOT NULL,
        user_phone TEXT, segment_rule TEXT, data TEXT NOT NULL, occurred_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL
    );
    CREATE INDEX events_by_user ON events (user_phone, name_key, occurred_at);
";

/// The fixed "now" of every test.
pub(super) fn now() -> DateTime<Utc> {
    "2024-06-01T12:00:00Z".parse().unwrap()
}

/// A user of the test database: the last digit of their phone, name, consent, attributes and
/// locale.
pub(super) type TestUser = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Value,
    Option<&'static str>,
);

/// Five users (`1`..`5` below stand for `+9470000000N`).
pub(super) fn users() -> [TestUser; 5] {
    [
        (
            "1",
            Some("Ann"),
            "OPT_IN",
            json!({
                "city": "Colombo", "age": 30, "tags": ["vip", "dance"], "premium": true,
                "address": {"city": "Kandy"}, "a.b": "dotted", "q\"x": 1, "sp ace": "yes",
                "back\\slash": true, "x[0]": "bracket", "città": "unicode",
                "note": "50% off_now", "quote": "O'Brien", "nul": "a\u{0}bc",
            }),
            Some("en_US"),
        ),
        (
            "2",
            Some("Bob"),
            "OPT_OUT",
            json!({
                "city": "Kandy", "age": 17, "tags": ["news"], "premium": false, "score": 2.5,
                "a": {"b": "nested"}, "lucky": [7, true], "note": "50 percent offXnow",
            }),
            Some("fr"),
        ),
        (
            "3",
            Some("Cat"),
            "OPT_IN",
            json!({"city": "colombo", "age": "30"}),
            None,
        ),
        ("4", None, "OPT_IN", json!({}), Some("en")),
        (
            "5",
            Some("Dan"),
            "OPT_IN",
            json!({"city": null, "age": 65, "tags": "vip-list"}),
            None,
        ),
    ]
}

/// Who follows which topic.
pub(super) const TOPICS: [(&str, &str); 4] =
    [("1", "DANCE"), ("2", "DANCE"), ("2", "NEWS"), ("3", "NEWS")];

/// Each user's events: who, the event's name, how many days before [`now`].
pub(super) const EVENTS: [(&str, &str, i64); 6] = [
    ("1", "cart_abandoned", 1),
    ("1", "cart_abandoned", 2),
    ("1", "cart_abandoned", 10),
    ("2", " Cart_Abandoned ", 3),
    ("3", "purchase", 1),
    ("5", "cart_abandoned", 7),
];

/// The users, their topics and their events in an in-memory SQLite database.
pub(super) fn database() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    for (n, name, consent, attributes, locale) in users() {
        conn.execute(
            "INSERT INTO users (phone, name, wa_id, consent_state, attributes, timezone, locale,
                 created_at, updated_at, revision) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, 0, 0, 1)",
            params![
                phone(n),
                name,
                name.map(|_| format!("wa{n}")),
                consent,
                attributes.to_string(),
                locale
            ],
        )
        .unwrap();
    }
    for (n, topic) in TOPICS {
        conn.execute(
            "INSERT INTO subscriptions (phone, topic, created_at) VALUES (?1, ?2, 0)",
            params![phone(n), topic],
        )
        .unwrap();
    }
    for (i, (n, name, days_ago)) in EVENTS.into_iter().enumerate() {
        let at = (now() - TimeDelta::days(days_ago)).timestamp_millis();
        conn.execute(
            "INSERT INTO events (id, name, name_key, user_phone, data, occurred_at, received_at)
             VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?5)",
            params![i.to_string(), name, event_name_key(name), phone(n), at],
        )
        .unwrap();
    }
    conn
}

pub(super) fn phone(n: &str) -> String {
    format!("+9470000000{n}")
}

pub(super) fn run(conn: &Connection, predicate: &CompiledPredicate) -> String {
    let sql = format!(
        "SELECT u.phone FROM users u WHERE {} ORDER BY u.phone",
        predicate.sql
    );
    let mut statement = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    statement
        .query_map(params_from_iter(predicate.params.iter()), |row| {
            row.get::<_, String>(0)
        })
        .unwrap()
        .map(|p| p.unwrap().chars().last().unwrap())
        .collect()
}

/// The users a definition selects, as the concatenated last digits of their phones (`"125"`).
fn select(definition: Value) -> String {
    let rule = SegmentRule::parse(&definition).unwrap_or_else(|e| panic!("{definition}: {e}"));
    run(&database(), &compile(rule.root(), &Sqlite, now()))
}

fn check(cases: &[(Value, &str)]) {
    for (definition, expected) in cases {
        assert_eq!(select(definition.clone()), *expected, "{definition}");
    }
}

#[test]
fn equality_compares_with_the_attributes_json_type() {
    check(&cases::equality_compares_with_the_attributes_json_type());
}

#[test]
fn ordering_operators_compare_numbers_with_numbers_and_text_with_text() {
    check(&cases::ordering_operators_compare_numbers_with_numbers_and_text_with_text());
}

#[test]
fn in_matches_any_listed_value_of_the_same_type() {
    check(&cases::in_matches_any_listed_value_of_the_same_type());
}

#[test]
fn contains_finds_substrings_and_array_elements() {
    check(&cases::contains_finds_substrings_and_array_elements());
}

#[test]
fn starts_with_takes_percent_and_underscore_literally() {
    check(&cases::starts_with_takes_percent_and_underscore_literally());
}

#[test]
fn exists_ignores_missing_and_null_attributes() {
    check(&cases::exists_ignores_missing_and_null_attributes());
}

#[test]
fn keys_with_dots_quotes_and_spaces_are_matched_literally() {
    check(&cases::keys_with_dots_quotes_and_spaces_are_matched_literally());
}

#[test]
fn any_key_text_is_reachable_through_its_path() {
    let keys = [
        "\0",
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
    ];
    for key in keys {
        let conn = database();
        conn.execute(
            "UPDATE users SET attributes = ?1 WHERE phone = ?2",
            params![json!({key: "found", "other": 1}).to_string(), phone("4")],
        )
        .unwrap();
        let rule = json!({"attribute": [key], "op": "eq", "value": "found"});
        let rule = SegmentRule::parse(&rule).unwrap();
        assert_eq!(run(&conn, &rule.to_sql(&Sqlite, now())), "4", "{key:?}");
    }
}

#[test]
fn user_fields_compare_as_text_and_missing_counts_as_different() {
    check(&cases::user_fields_compare_as_text_and_missing_counts_as_different());
}

#[test]
fn topics_and_consent_select_subscribers_and_consent_states() {
    check(&cases::topics_and_consent_select_subscribers_and_consent_states());
}

#[test]
fn event_history_counts_events_by_name_within_the_window() {
    check(&cases::event_history_counts_events_by_name_within_the_window());
}

#[test]
fn groups_nest_and_negate() {
    check(&cases::groups_nest_and_negate());
}

#[test]
fn combined_rules_narrow_each_other() {
    let campaign = SegmentRule::parse(&json!({"topic": "DANCE"})).unwrap();
    let event = SegmentRule::parse(&json!({"attributes.city": "Kandy"})).unwrap();
    let predicate = campaign.and(&event).to_sql(&Sqlite, now());
    assert_eq!(run(&database(), &predicate), "2");
}

#[test]
fn no_value_or_key_reaches_the_sql_text() {
    let rule = SegmentRule::parse(&json!({"all": [
        {"attributes.secret_key": {"in": ["secret'value", 4242]}},
        {"name": {"starts_with": "Robert'); DROP TABLE users;--"}},
        {"topic": "HIDDEN"},
        {"event": "secret_event", "min_count": 97, "within_days": 93},
    ]}))
    .unwrap();
    let predicate = rule.to_sql(&Sqlite, now());
    for needle in ["secret", "4242", "DROP", "HIDDEN", "97", "93"] {
        assert!(
            !predicate.sql.contains(needle),
            "{needle} in {}",
            predicate.sql
        );
    }
    assert!(
        predicate
            .params
            .contains(&SqlParam::Text("$.\"secret_key\"".into()))
    );
    assert!(
        predicate
            .params
            .contains(&SqlParam::Text(r#"["secret'value",4242]"#.into()))
    );
    assert!(
        predicate
            .params
            .contains(&SqlParam::Text("secret_event".into()))
    );
}

#[test]
fn the_predicate_composes_with_the_callers_own_parameters() {
    let rule = SegmentRule::parse(&json!({"attributes.city": {"exists": true}})).unwrap();
    let predicate = rule.to_sql(&Sqlite, now());
    let sql = format!(
        "SELECT u.phone FROM users u WHERE {} AND u.phone > ? ORDER BY u.phone LIMIT ?",
        predicate.sql
    );
    let mut params: Vec<rusqlite::types::Value> = predicate.params.iter().map(Into::into).collect();
    params.push(phone("1").into());
    params.push(1.into());
    let conn = database();
    let found: String = conn
        .query_row(&sql, params_from_iter(params), |row| row.get(0))
        .unwrap();
    assert_eq!(found, phone("2"));
}

/// The rules each test checks with the phones they select, shared with the same checks on
/// PostgreSQL (`postgres`).
pub(super) mod cases {
    use serde_json::{Value, json};

    pub(in super::super) fn equality_compares_with_the_attributes_json_type()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"attributes.city": "Colombo"}), "1"),
            (json!({"attributes.city": {"ne": "Colombo"}}), "2345"),
            (json!({"attributes.age": 30}), "1"),
            (json!({"attributes.age": 30.0}), "1"),
            (json!({"attributes.age": "30"}), "3"),
            (json!({"attributes.premium": true}), "1"),
            (json!({"attributes.premium": false}), "2"),
            (json!({"attributes.premium": 1}), ""),
            (json!({"attributes.tags": "[\"news\"]"}), ""),
            (json!({"attributes.quote": "O'Brien"}), "1"),
        ]
    }

    pub(in super::super) fn ordering_operators_compare_numbers_with_numbers_and_text_with_text()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"attributes.age": {"gte": 18}}), "15"),
            (json!({"attributes.age": {"gt": 30}}), "5"),
            (json!({"attributes.age": {"lt": 18}}), "2"),
            (json!({"attributes.age": {"lte": 30}}), "12"),
            (json!({"attributes.age": {"gte": 18, "lt": 65}}), "1"),
            (json!({"attributes.score": {"gt": 2.4, "lt": 2.6}}), "2"),
            (json!({"attributes.age": {"gt": "2"}}), "3"),
            (json!({"attributes.city": {"lt": "D"}}), "1"),
        ]
    }

    pub(in super::super) fn in_matches_any_listed_value_of_the_same_type()
    -> Vec<(Value, &'static str)> {
        vec![
            (
                json!({"attribute": "city", "op": "in", "value": ["Kandy", "Colombo"]}),
                "12",
            ),
            (
                json!({"attribute": "age", "op": "in", "value": [30, "30"]}),
                "13",
            ),
            (
                json!({"attribute": "premium", "op": "in", "value": [false, 17]}),
                "2",
            ),
            (
                json!({"not": {"attribute": "city", "op": "in", "value": ["Kandy"]}}),
                "1345",
            ),
        ]
    }

    pub(in super::super) fn contains_finds_substrings_and_array_elements()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"attributes.tags": {"contains": "vip"}}), "15"),
            (json!({"attributes.tags": {"contains": "vi"}}), "5"),
            (json!({"attributes.lucky": {"contains": 7}}), "2"),
            (json!({"attributes.lucky": {"contains": true}}), "2"),
            (json!({"attributes.age": {"contains": 30}}), ""),
            (json!({"attributes.note": {"contains": "%"}}), "1"),
            (json!({"attributes.note": {"contains": "f_n"}}), "1"),
            (json!({"attributes.quote": {"contains": "'"}}), "1"),
        ]
    }

    pub(in super::super) fn starts_with_takes_percent_and_underscore_literally()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"attributes.note": {"starts_with": "50%"}}), "1"),
            (json!({"attributes.note": {"starts_with": "50"}}), "12"),
            (json!({"attributes.note": {"starts_with": "5_"}}), ""),
            (json!({"attributes.note": {"starts_with": "%"}}), ""),
            (json!({"attributes.city": {"starts_with": "Col"}}), "1"),
            (json!({"attributes.nul": {"starts_with": "a\u{0}b"}}), "1"),
            (json!({"attributes.nul": {"starts_with": "a\u{0}x"}}), ""),
            (json!({"attributes.nul": {"contains": "\u{0}b"}}), "1"),
            (json!({"attributes.city": {"starts_with": ""}}), "123"),
        ]
    }

    pub(in super::super) fn exists_ignores_missing_and_null_attributes()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"attributes.city": {"exists": true}}), "123"),
            (json!({"attributes.city": {"exists": false}}), "45"),
            (json!({"attribute": "address", "op": "exists"}), "1"),
        ]
    }

    pub(in super::super) fn keys_with_dots_quotes_and_spaces_are_matched_literally()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"attributes.address.city": "Kandy"}), "1"),
            (json!({"attributes.a.b": "nested"}), "2"),
            (
                json!({"attribute": ["a.b"], "op": "eq", "value": "dotted"}),
                "1",
            ),
            (json!({"attribute": ["q\"x"], "op": "eq", "value": 1}), "1"),
            (json!({"attributes.sp ace": "yes"}), "1"),
            (json!({"attributes.back\\slash": true}), "1"),
            (json!({"attributes.x[0]": "bracket"}), "1"),
            (json!({"attributes.città": "unicode"}), "1"),
        ]
    }

    pub(in super::super) fn user_fields_compare_as_text_and_missing_counts_as_different()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"name": "Ann"}), "1"),
            (json!({"name": {"ne": "Ann"}}), "2345"),
            (json!({"name": {"exists": true}}), "1235"),
            (json!({"name": {"exists": false}}), "4"),
            (json!({"name": {"in": ["Ann", "Bob"]}}), "12"),
            (json!({"name": {"contains": "a"}}), "35"),
            (json!({"name": {"gt": "B"}}), "235"),
            (
                json!({"field": "locale", "op": "starts_with", "value": "en"}),
                "14",
            ),
            (json!({"wa_id": "wa2"}), "2"),
            (json!({"phone": "+94700000003"}), "3"),
        ]
    }

    pub(in super::super) fn topics_and_consent_select_subscribers_and_consent_states()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"topic": "DANCE"}), "12"),
            (json!({"topic": "news"}), "23"),
            (json!({"topic": "NONE"}), ""),
            (json!({"consent": "OPT_OUT"}), "2"),
            (json!({"consent_state": "STARTED"}), "1345"),
            (json!({"topic": "DANCE", "consent_state": "OPT_IN"}), "1"),
        ]
    }

    pub(in super::super) fn event_history_counts_events_by_name_within_the_window()
    -> Vec<(Value, &'static str)> {
        vec![
            (json!({"event": "cart_abandoned"}), "125"),
            (json!({"event": "CART_ABANDONED"}), "125"),
            (json!({"event": "cart_abandoned", "min_count": 3}), "1"),
            (json!({"event": "cart_abandoned", "min_count": 4}), ""),
            (json!({"event": "cart_abandoned", "within_days": 7}), "125"),
            (json!({"event": "cart_abandoned", "within_days": 5}), "12"),
            (
                json!({"event": "cart_abandoned", "min_count": 2, "within_days": 7}),
                "1",
            ),
            (
                json!({"event": "cart_abandoned", "min_count": 3, "within_days": 7}),
                "",
            ),
            (json!({"event": "purchase", "within_days": 1}), "3"),
            (json!({"not": {"event": "cart_abandoned"}}), "34"),
        ]
    }

    pub(in super::super) fn groups_nest_and_negate() -> Cases {
        vec![
            (json!({}), "12345"),
            (json!({"all": []}), "12345"),
            (json!({"any": []}), ""),
            (json!({"not": {"any": []}}), "12345"),
            (json!({"not": {"topic": "DANCE"}}), "345"),
            (json!({"not": {"not": {"topic": "DANCE"}}}), "12"),
            (json!({"topic": "DANCE", "attributes.city": "Colombo"}), "1"),
            (
                json!({"any": [
                    {"topic": "NEWS"},
                    {"all": [{"attributes.city": "Colombo"}, {"attributes.age": {"gte": 18}}]},
                ]}),
                "123",
            ),
            (
                json!({"all": [
                    {"any": [{"consent": "OPT_OUT"}, {"attributes.tags": {"contains": "vip"}}]},
                    {"not": {"attribute": "age", "op": "gt", "value": 60}},
                ]}),
                "12",
            ),
        ]
    }

    /// Rules with the phones they select.
    pub(in super::super) type Cases = Vec<(Value, &'static str)>;

    /// Every table above.
    pub(in super::super) const ALL: &[fn() -> Cases] = &[
        equality_compares_with_the_attributes_json_type,
        ordering_operators_compare_numbers_with_numbers_and_text_with_text,
        in_matches_any_listed_value_of_the_same_type,
        contains_finds_substrings_and_array_elements,
        starts_with_takes_percent_and_underscore_literally,
        exists_ignores_missing_and_null_attributes,
        keys_with_dots_quotes_and_spaces_are_matched_literally,
        user_fields_compare_as_text_and_missing_counts_as_different,
        topics_and_consent_select_subscribers_and_consent_states,
        event_history_counts_events_by_name_within_the_window,
        groups_nest_and_negate,
    ];
}
