//! Property tests: the parser never panics, whatever JSON it is given, and whatever it accepts
//! compiles to SQL that SQLite runs over real rows.

use proptest::prelude::*;
use rusqlite::params_from_iter;
use serde_json::{Map, Number, Value, json};

use super::matching::{database, now};
use crate::segment::SegmentRule;
use crate::segment::sql::{Sqlite, compile};

/// Words the parser reacts to, so that generated values often get past the first check.
const VOCABULARY: &[&str] = &[
    "all",
    "any",
    "not",
    "attribute",
    "field",
    "op",
    "value",
    "topic",
    "consent",
    "consent_state",
    "event",
    "min_count",
    "within_days",
    "attributes.city",
    "attributes.a.b",
    "attributes..x",
    "attributes",
    "city",
    "DANCE",
    "OPT_IN",
    "STOPPED",
    "a/b~c",
    "",
];
const OPERATORS: &[&str] = &[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "contains",
    "starts_with",
    "exists",
];
const FIELDS: &[&str] = &["name", "phone", "wa_id", "locale", "timezone"];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select([VOCABULARY, OPERATORS, FIELDS].concat())
            .prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u64..10).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        text().prop_map(Value::String),
    ]
}

pub(super) fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(8, 96, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Definitions shaped like rules (right keys, arbitrary operands and attribute keys), so that
/// many of them are accepted and reach the compiler.
pub(super) fn rule_like() -> impl Strategy<Value = Value> {
    let operator = proptest::sample::select(OPERATORS);
    let operand = prop_oneof![
        3 => scalar(),
        1 => prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
    ];
    let key = prop_oneof!["\\PC{1,6}", any::<String>(), text()];
    let condition = prop_oneof![
        (key.clone(), operator.clone(), operand.clone())
            .prop_map(|(k, op, v)| json!({"attribute": [k], "op": op, "value": v})),
        (key.clone(), operator.clone(), operand.clone())
            .prop_map(|(k, op, v)| json!({format!("attributes.{k}"): {op: v}})),
        (proptest::sample::select(FIELDS), operator, operand)
            .prop_map(|(f, op, v)| json!({"field": f, "op": op, "value": v})),
        text().prop_map(|t| json!({"topic": t})),
        (text(), 0u64..4, 0u64..40)
            .prop_map(|(e, n, d)| json!({"event": e, "min_count": n, "within_days": d})),
    ];
    condition.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"all": v})),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"any": v})),
            inner.prop_map(|v| json!({"not": v})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn parsing_never_panics_and_errors_carry_a_pointer(definition in json()) {
        if let Err(error) = SegmentRule::parse(&definition) {
            prop_assert!(error.path.starts_with('/'), "{error:?}");
            prop_assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn accepted_rules_compile_to_sql_that_sqlite_runs(
        definition in prop_oneof![json(), rule_like()],
    ) {
        if let Ok(rule) = SegmentRule::parse(&definition) {
            let predicate = compile(rule.root(), &Sqlite, now());
            let conn = database();
            let sql = format!("SELECT COUNT(*) FROM users u WHERE {}", predicate.sql);
            let count: rusqlite::Result<i64> = conn.query_row(
                &sql,
                params_from_iter(predicate.params.iter()),
                |row| row.get(0),
            );
            prop_assert!(count.is_ok(), "{sql}: {count:?}");
        }
    }

    #[test]
    fn any_attribute_key_is_found_by_its_quoted_path(key in any::<String>(), dotted in any::<bool>()) {
        let conn = database();
        conn.execute(
            "UPDATE users SET attributes = ?1 WHERE phone = '+94700000004'",
            [json!({&key: "found"}).to_string()],
        )
        .unwrap();
        let definition = if dotted && !key.is_empty() && !key.split('.').any(str::is_empty) {
            json!({format!("attributes.{key}"): {"in": ["found"]}})
        } else {
            json!({"attribute": [&key], "op": "eq", "value": "found"})
        };
        match SegmentRule::parse(&definition) {
            Ok(rule) => {
                let predicate = compile(rule.root(), &Sqlite, now());
                let sql = format!("SELECT u.phone FROM users u WHERE {}", predicate.sql);
                let mut statement = conn.prepare(&sql).unwrap();
                let phones: Vec<String> = statement
                    .query_map(params_from_iter(predicate.params.iter()), |row| row.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                if !dotted || !key.contains('.') {
                    prop_assert_eq!(phones, vec!["+94700000004".to_owned()]);
                }
            }
            // Only an empty key is refused.
            Err(e) => prop_assert!(key.is_empty(), "{key:?}: {e}"),
        }
    }
}
