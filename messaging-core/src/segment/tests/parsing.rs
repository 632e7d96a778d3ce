//! Parsing both forms into the tree, and every way a definition is refused (with its pointer).

use serde_json::{Value, json};

use crate::domain::{Consent, Topic};
use crate::segment::parse::MAX_DEPTH;
use crate::segment::{Comparison, RuleNode, SegmentError, SegmentRule, UserField};

fn parse(definition: Value) -> RuleNode {
    SegmentRule::parse(&definition)
        .unwrap_or_else(|e| panic!("{definition} was refused: {e}"))
        .root()
        .clone()
}

fn refuse(definition: Value) -> SegmentError {
    match SegmentRule::parse(&definition) {
        Ok(rule) => panic!("{definition} was accepted as {:?}", rule.root()),
        Err(e) => e,
    }
}

fn attr(path: &[&str], op: Comparison, value: Value) -> RuleNode {
    RuleNode::Attribute {
        path: path.iter().map(|k| k.to_string()).collect(),
        op,
        value,
    }
}

fn topic(name: &str) -> RuleNode {
    RuleNode::Topic(Topic::parse(name).unwrap())
}

#[test]
fn shorthand_conditions_parse_into_the_tree() {
    assert_eq!(parse(json!({"topic": "dance"})), topic("DANCE"));
    assert_eq!(
        parse(json!({"attributes.city": "Colombo"})),
        attr(&["city"], Comparison::Eq, json!("Colombo"))
    );
    assert_eq!(
        parse(json!({"attributes.address.city": "Kandy"})),
        attr(&["address", "city"], Comparison::Eq, json!("Kandy"))
    );
    assert_eq!(
        parse(json!({"attributes.age": {"gte": 18}})),
        attr(&["age"], Comparison::Gte, json!(18))
    );
    assert_eq!(
        parse(json!({"consent_state": "STARTED"})),
        RuleNode::Consent(Consent::OptIn)
    );
    assert_eq!(
        parse(json!({"name": "Ann"})),
        RuleNode::Field {
            field: UserField::Name,
            op: Comparison::Eq,
            value: json!("Ann")
        }
    );
    assert_eq!(
        parse(json!({"wa_id": {"exists": true}})),
        RuleNode::Field {
            field: UserField::WaId,
            op: Comparison::Exists,
            value: json!(true)
        }
    );
    assert_eq!(parse(json!({})), RuleNode::All(vec![]));
}

#[test]
fn shorthand_keys_and_operators_combine_with_and() {
    let RuleNode::All(parts) = parse(json!({
        "topic": "DANCE",
        "attributes.city": "Colombo",
        "attributes.age": {"gte": 18, "lt": 65},
    })) else {
        panic!("expected all")
    };
    assert_eq!(parts.len(), 4);
    for expected in [
        topic("DANCE"),
        attr(&["city"], Comparison::Eq, json!("Colombo")),
        attr(&["age"], Comparison::Gte, json!(18)),
        attr(&["age"], Comparison::Lt, json!(65)),
    ] {
        assert!(parts.contains(&expected), "{expected:?} missing");
    }
}

#[test]
fn exists_false_means_not_exists_in_both_forms() {
    let absent = RuleNode::Not(Box::new(attr(&["city"], Comparison::Exists, json!(true))));
    assert_eq!(parse(json!({"attributes.city": {"exists": false}})), absent);
    assert_eq!(
        parse(json!({"attribute": "city", "op": "exists", "value": false})),
        absent
    );
    assert_eq!(
        parse(json!({"attribute": "city", "op": "exists"})),
        attr(&["city"], Comparison::Exists, json!(true))
    );
}

#[test]
fn full_form_parses_groups_and_every_condition() {
    let rule = parse(json!({"all": [
        {"any": [{"topic": "DANCE"}, {"consent": "OPT_OUT"}]},
        {"not": {"attribute": "address.city", "op": "in", "value": ["Kandy", 1]}},
        {"attribute": ["a.b", "c"], "op": "contains", "value": "x"},
        {"field": "locale", "op": "starts_with", "value": "en"},
        {"event": " cart_abandoned ", "min_count": 2, "within_days": 7},
        {"event": "purchase"},
        {"attributes.city": "Colombo"},
    ]}));
    assert_eq!(
        rule,
        RuleNode::All(vec![
            RuleNode::Any(vec![topic("DANCE"), RuleNode::Consent(Consent::OptOut)]),
            RuleNode::Not(Box::new(attr(
                &["address", "city"],
                Comparison::In,
                json!(["Kandy", 1])
            ))),
            attr(&["a.b", "c"], Comparison::Contains, json!("x")),
            RuleNode::Field {
                field: UserField::Locale,
                op: Comparison::StartsWith,
                value: json!("en")
            },
            RuleNode::EventHistory {
                name: "cart_abandoned".into(),
                min_count: 2,
                within_days: Some(7)
            },
            RuleNode::EventHistory {
                name: "purchase".into(),
                min_count: 1,
                within_days: None
            },
            attr(&["city"], Comparison::Eq, json!("Colombo")),
        ])
    );
}

#[test]
fn every_operator_is_accepted_with_a_fitting_operand() {
    for (op, value, expected) in [
        ("eq", json!(true), Comparison::Eq),
        ("ne", json!("x"), Comparison::Ne),
        ("gt", json!(1.5), Comparison::Gt),
        ("gte", json!("2024-01-01"), Comparison::Gte),
        ("lt", json!(-3), Comparison::Lt),
        ("lte", json!(10), Comparison::Lte),
        ("in", json!([1, "a", false]), Comparison::In),
        ("contains", json!(7), Comparison::Contains),
        ("starts_with", json!("+94"), Comparison::StartsWith),
        ("exists", json!(true), Comparison::Exists),
    ] {
        let rule = json!({"attribute": "k", "op": op, "value": value});
        assert_eq!(parse(rule), attr(&["k"], expected, value));
    }
}

/// Each refused definition with the exact pointer and (a part of) the message.
#[test]
fn refusals_point_at_the_offending_node() {
    let cases = [
        (
            json!("DANCE"),
            "/",
            "a rule must be a JSON object, found a string",
        ),
        (
            json!({"all": [{"topic": "DANCE"}, {"attribute": "city", "op": "equals", "value": "x"}]}),
            "/all/1/op",
            "unknown operator \"equals\"; expected one of eq, ne, gt, gte, lt, lte, in, contains, starts_with, exists",
        ),
        (
            json!({"all": [{"attribute": "city", "value": "x"}]}),
            "/all/0",
            "missing \"op\"",
        ),
        (
            json!({"attribute": "city", "op": 3, "value": "x"}),
            "/op",
            "\"op\" must be one of",
        ),
        (
            json!({"attribute": "city", "op": "eq"}),
            "/",
            "missing \"value\" for \"eq\"",
        ),
        (
            json!({"attribute": "city", "op": "eq", "value": "x", "extra": 1}),
            "/extra",
            "unknown key \"extra\"; an attribute condition takes only attribute, op, value",
        ),
        (
            json!({"all": {"topic": "DANCE"}}),
            "/all",
            "\"all\" must be an array of rules",
        ),
        (
            json!({"any": [], "all": []}),
            "/any",
            "unknown key \"any\"; an \"all\" rule takes only all",
        ),
        (
            json!({"not": [{"topic": "DANCE"}]}),
            "/not",
            "a rule must be a JSON object, found an array",
        ),
        (
            json!({"any": [{"not": {"cty": "x"}}]}),
            "/any/0/not/cty",
            "unknown key \"cty\"; expected all, any",
        ),
        (
            json!({"attributes": {"city": "x"}}),
            "/attributes",
            "write attribute conditions as \"attributes.<key>\"",
        ),
        (
            json!({"attribute": "a..b", "op": "exists"}),
            "/attribute",
            "attribute key \"a..b\" has an empty part",
        ),
        (
            json!({"attributes.a.": "x"}),
            "/attributes.a.",
            "has an empty part",
        ),
        (
            json!({"attribute": ["a", ""], "op": "exists"}),
            "/attribute/1",
            "non-empty string",
        ),
        (
            json!({"attribute": 5, "op": "exists"}),
            "/attribute",
            "found a number",
        ),
        (
            json!({"attributes.a/b~c": {"equals": 1}}),
            "/attributes.a~1b~0c/equals",
            "unknown operator \"equals\"",
        ),
        (
            json!({"attributes.age": {}}),
            "/attributes.age",
            "needs at least one operator",
        ),
        (
            json!({"attributes.city": null}),
            "/attributes.city",
            "use {\"exists\": false}",
        ),
        (
            json!({"attributes.city": ["a", "b"]}),
            "/attributes.city",
            "use {\"in\": [...]}",
        ),
        (
            json!({"attribute": "c", "op": "eq", "value": null}),
            "/value",
            "cannot compare with null",
        ),
        (
            json!({"attribute": "c", "op": "ne", "value": [1]}),
            "/value",
            "needs a string, number or boolean, found an array",
        ),
        (
            json!({"attribute": "c", "op": "gt", "value": true}),
            "/value",
            "\"gt\" needs a number or string, found true",
        ),
        (
            json!({"attributes.c": {"lte": {"x": 1}}}),
            "/attributes.c/lte",
            "needs a number or string",
        ),
        (
            json!({"attribute": "c", "op": "in", "value": []}),
            "/value",
            "needs a non-empty array",
        ),
        (
            json!({"attribute": "c", "op": "in", "value": "x"}),
            "/value",
            "needs a non-empty array",
        ),
        (
            json!({"attribute": "c", "op": "in", "value": [1, null]}),
            "/value/1",
            "found null",
        ),
        (
            json!({"attribute": "c", "op": "contains", "value": ["x"]}),
            "/value",
            "\"contains\" needs a string",
        ),
        (
            json!({"attribute": "c", "op": "starts_with", "value": 12}),
            "/value",
            "\"starts_with\" needs a string, found 12",
        ),
        (
            json!({"attribute": "c", "op": "exists", "value": "yes"}),
            "/value",
            "true or false",
        ),
        (
            json!({"field": "city", "op": "eq", "value": "x"}),
            "/field",
            "unknown field \"city\"; expected one of phone, name",
        ),
        (
            json!({"field": "consent_state", "op": "eq", "value": "x"}),
            "/field",
            "use {\"consent\": \"OPT_IN\"}",
        ),
        (
            json!({"field": "name", "op": "eq", "value": 3}),
            "/value",
            "user fields are text",
        ),
        (
            json!({"name": {"in": ["a", true]}}),
            "/name/in",
            "user fields are text",
        ),
        (json!({"locale": false}), "/locale", "user fields are text"),
        (json!({"topic": "a b"}), "/topic", "topic contains ' '"),
        (json!({"topic": 5}), "/topic", "a topic must be a string"),
        (
            json!({"consent_state": "maybe"}),
            "/consent_state",
            "unknown consent state",
        ),
        (
            json!({"consent": true}),
            "/consent",
            "must be \"OPT_IN\" or \"OPT_OUT\"",
        ),
        (json!({"event": "  "}), "/event", "non-empty event name"),
        (
            json!({"event": "x", "min_count": 0}),
            "/min_count",
            "positive integer, found 0",
        ),
        (
            json!({"event": "x", "within_days": "7"}),
            "/within_days",
            "positive integer, found \"7\"",
        ),
        (
            json!({"event": "x", "within_days": 1.5}),
            "/within_days",
            "positive integer",
        ),
        (
            json!({"event": "x", "min_count": 5_000_000_000u64}),
            "/min_count",
            "too large",
        ),
        (
            json!({"event": "x", "topic": "DANCE"}),
            "/topic",
            "an event condition takes only event, min_count, within_days",
        ),
    ];
    for (definition, path, message) in cases {
        let error = refuse(definition.clone());
        assert_eq!(error.path, path, "{definition}: {error}");
        assert!(
            error.message.contains(message),
            "{definition}: {:?} lacks {message:?}",
            error.message
        );
    }
}

#[test]
fn nesting_is_capped_with_an_error_rather_than_a_stack_overflow() {
    let nest = |levels: usize| {
        (0..levels).fold(json!({"topic": "DANCE"}), |inner, _| json!({"not": inner}))
    };
    assert!(SegmentRule::parse(&nest(MAX_DEPTH)).is_ok());
    let error = refuse(nest(MAX_DEPTH + 1));
    assert_eq!(error.path, format!("{}", "/not".repeat(MAX_DEPTH + 1)));
    assert!(error.message.contains("nested more than 32 levels"));
    // Far deeper than any stack frame budget would allow if the parser kept recursing.
    let error = refuse(nest(500));
    assert!(error.message.contains("nested more than"));
}

#[test]
fn deserialising_a_bad_rule_reports_the_pointer() {
    let error =
        serde_json::from_str::<SegmentRule>(r#"{"all": [{"attributes.age": {"gt": [1]}}]}"#)
            .unwrap_err();
    assert!(
        error.to_string().contains("(at /all/0/attributes.age/gt)"),
        "{error}"
    );
}

#[test]
fn a_rule_serialises_back_to_the_definition_it_was_given() {
    let definition = json!({"topic": "dance", "attributes.age": {"gte": 18}});
    let rule = SegmentRule::parse(&definition).unwrap();
    assert_eq!(serde_json::to_value(&rule).unwrap(), definition);
}

#[test]
fn an_attribute_written_as_a_field_is_refused_with_the_form_to_use() {
    let error = refuse(json!({"field": "attributes.city", "op": "eq", "value": "Colombo"}));
    assert_eq!(error.path, "/field");
    assert!(
        error.message.contains(r#"write {"attribute": "city", …}"#),
        "{error}"
    );
}
