//! The size limits of a definition: what is refused (with the limit and the pointer), and that
//! the largest definitions still accepted compile to SQL that SQLite evaluates.

use serde_json::{Value, json};

use super::matching::{database, now, run};
use crate::segment::sql::{Sqlite, compile};
use crate::segment::{
    MAX_CONDITIONS, MAX_DEPTH, MAX_GROUP_CONDITIONS, MAX_IN_VALUES, SegmentError, SegmentRule,
};

fn refuse(definition: &Value) -> SegmentError {
    match SegmentRule::parse(definition) {
        Ok(_) => panic!("a definition over a limit was accepted"),
        Err(e) => e,
    }
}

/// `count` conditions on an attribute no user has.
pub(super) fn conditions(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({"attribute": "code", "op": "eq", "value": i}))
        .collect()
}

/// The users `definition` selects in the test database (see `matching`).
fn select(definition: &Value) -> String {
    let rule = SegmentRule::parse(definition).unwrap_or_else(|e| panic!("refused: {e}"));
    run(&database(), &compile(rule.root(), &Sqlite, now()))
}

#[test]
fn a_group_lists_at_most_its_limit_of_conditions() {
    let mut children = conditions(MAX_GROUP_CONDITIONS - 1);
    children.push(json!({"attributes.city": "Colombo"}));
    assert_eq!(select(&json!({"any": children})), "1");

    let error = refuse(&json!({"any": conditions(2_000)}));
    assert_eq!(error.path, "/any");
    assert!(
        error
            .message
            .contains("at most 500 conditions in one \"any\", found 2000"),
        "{error}"
    );
    let error = refuse(&json!({"all": [{"not": {"all": conditions(501)}}]}));
    assert_eq!(error.path, "/all/0/not/all");
}

#[test]
fn a_definition_holds_at_most_its_limit_of_conditions() {
    // Three groups of 400 comparisons: each group is fine, together they are too many.
    let definition = json!({"all": [
        {"any": conditions(400)}, {"any": conditions(400)}, {"any": conditions(400)},
    ]});
    let error = refuse(&definition);
    assert!(error.path.starts_with("/all/2/any/"), "{error}");
    assert!(
        error
            .message
            .contains(&format!("at most {MAX_CONDITIONS} conditions")),
        "{error}"
    );
    // Shorthand conditions count too.
    let wide: serde_json::Map<String, Value> = (0..MAX_CONDITIONS + 1)
        .map(|i| (format!("attributes.k{i}"), json!(i)))
        .collect();
    assert!(refuse(&Value::Object(wide)).message.contains("conditions"));
}

#[test]
fn in_lists_hold_at_most_their_limit_of_values() {
    let values: Vec<Value> = (0..=MAX_IN_VALUES).map(|i| json!(i)).collect();
    let error = refuse(&json!({"all": [{"attribute": "code", "op": "in", "value": values}]}));
    assert_eq!(error.path, "/all/0/value");
    assert!(error.message.contains("at most 100000 values"), "{error}");
    // The limit is for all the lists of a definition together.
    let half: Vec<Value> = (0..=MAX_IN_VALUES / 2).map(|i| json!(i)).collect();
    let error = refuse(&json!({"any": [
        {"attributes.code": {"in": half}}, {"attributes.other": {"in": half}},
    ]}));
    assert_eq!(error.path, "/any/1/attributes.other/in");
}

#[test]
fn an_in_list_is_one_parameter_whatever_its_length() {
    let mut cities: Vec<Value> = (0..MAX_IN_VALUES - 1)
        .map(|i| json!(format!("city {i}")))
        .collect();
    cities.push(json!("Kandy"));
    let definition = json!({"attribute": "city", "op": "in", "value": cities});
    let rule = SegmentRule::parse(&definition).unwrap();
    let predicate = compile(rule.root(), &Sqlite, now());
    // The attribute's path and the list.
    assert_eq!(predicate.params.len(), 2);
    assert_eq!(run(&database(), &predicate), "2");

    let names: Vec<Value> = (0..10_000).map(|i| json!(format!("name {i}"))).collect();
    let mut names = names;
    names.push(json!("Cat"));
    assert_eq!(
        select(&json!({"field": "name", "op": "in", "value": names})),
        "3"
    );
}

#[test]
fn the_largest_accepted_definitions_run_in_sqlite() {
    // Two groups as wide as allowed, the condition that matters first: written as chains of
    // `OR`, the groups alone would nest deeper than SQLite's 1,000 levels of expression.
    let mut inner = vec![json!({"attributes.city": "Kandy"})];
    inner.extend(conditions(MAX_GROUP_CONDITIONS - 3));
    let mut outer = vec![json!({"any": inner})];
    outer.extend(conditions(MAX_GROUP_CONDITIONS - 1));
    assert_eq!(select(&json!({"any": outer})), "2");

    // As deep as allowed, each level as wide as the condition budget lets it be.
    let width = MAX_CONDITIONS / MAX_DEPTH - 1;
    let deep = (0..MAX_DEPTH - 1).fold(json!({"attributes.city": "Kandy"}), |inner, _| {
        let mut children = vec![inner];
        children.extend(conditions(width - 1).into_iter().map(|mut c| {
            c["op"] = json!("ne");
            c
        }));
        json!({"all": children})
    });
    assert_eq!(select(&deep), "2");

    let mut wide = conditions(MAX_GROUP_CONDITIONS - 1);
    wide.push(json!({"event": "cart_abandoned", "min_count": 2, "within_days": 7}));
    let mut other = conditions(MAX_CONDITIONS - MAX_GROUP_CONDITIONS - 4);
    other.push(json!({"topic": "NEWS"}));
    let broad = json!({"any": [{"any": wide}, {"any": other}]});
    assert_eq!(select(&broad), "123");

    let nots = (0..MAX_DEPTH).fold(json!({"topic": "DANCE"}), |inner, _| json!({"not": inner}));
    assert_eq!(select(&nots), "12");
}

#[test]
fn definitions_stored_before_the_limits_can_still_be_read() {
    let mut children = conditions(MAX_GROUP_CONDITIONS + 100);
    children.push(json!({"attributes.city": "Colombo"}));
    let definition = json!({"any": children});
    refuse(&definition);
    let rule = SegmentRule::from_stored_json(&definition.to_string()).unwrap();
    assert_eq!(run(&database(), &compile(rule.root(), &Sqlite, now())), "1");
    // Nesting stays bounded: it protects the parser itself.
    let nested = (0..=MAX_DEPTH).fold(json!({}), |inner, _| json!({"not": inner}));
    assert!(SegmentRule::parse_stored(&nested).is_err());
}
