//! Behaviour of the template module as its callers see it: checking drafts at save time and
//! rendering compiled templates for recipients.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, json};

use super::context::fixtures::{object, user};
use super::*;

fn compile(content: &str) -> CompiledTemplate {
    CompiledTemplate::from_parts(content, None).expect("template compiles")
}

fn render(content: &str, ctx: &RenderContext) -> Result<String, RenderError> {
    compile(content).render_body(ctx)
}

fn variables(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn draft(content: &str) -> TemplateDraft {
    TemplateDraft {
        name: "t".into(),
        content: content.into(),
        ..TemplateDraft::default()
    }
}

fn missing(placeholders: &[&str]) -> RenderError {
    RenderError::MissingPlaceholder {
        placeholders: placeholders.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn renders_user_fields_attributes_and_event_data() {
    let ctx = RenderContext::for_user(&user(Some("Ana"), json!({"city": "Colombo"})))
        .with_event(object(json!({"discount": 20})));
    let body = render(
        "Hi {{ name }} ({{ phone }}, {{ consent_state }}, {{ timezone }}, {{ topics[0] }}): \
         {{ event.discount }}% off in {{ attributes.city }}",
        &ctx,
    );
    assert_eq!(
        body.unwrap(),
        "Hi Ana (+14155552671, OPT_IN, Asia/Colombo, DANCE): 20% off in Colombo"
    );
}

#[test]
fn default_filter_fills_in_a_missing_value() {
    let template = compile(r#"Hi {{ name | default("there") }}!"#);
    let anonymous = RenderContext::for_user(&user(None, json!({})));
    let named = RenderContext::for_user(&user(Some("Ana"), json!({})));
    assert_eq!(template.render_body(&anonymous).unwrap(), "Hi there!");
    assert_eq!(template.render_body(&named).unwrap(), "Hi Ana!");
}

#[test]
fn nested_attributes_and_numbers_render() {
    let ctx = RenderContext::from_attributes(
        None,
        object(json!({"address": {"city": "Kandy"}, "points": 1200, "ratio": 2.5, "vip": true})),
    );
    let body = render(
        "{{ attributes.address.city }} {{ attributes.points }} {{ attributes.points + 1 }} \
         {{ attributes.ratio }}",
        &ctx,
    );
    assert_eq!(body.unwrap(), "Kandy 1200 1201 2.5");
}

#[test]
fn numbers_render_as_written_at_any_depth() {
    let attributes: Map<String, serde_json::Value> = serde_json::from_str(
        r#"{"id": 1180591620717411303424, "address": {"zip": 10115, "lat": 6.9271,
            "codes": [7, 1180591620717411303424, null]}}"#,
    )
    .unwrap();
    let ctx = RenderContext::from_attributes(None, attributes);
    let body = render(
        "{{ attributes.id }} {{ attributes.address.zip + 1 }} {{ attributes.address.lat }} \
         {{ attributes.address.codes[1] }} {{ attributes.address.codes | length }}",
        &ctx,
    );
    assert_eq!(
        body.unwrap(),
        "1180591620717411303424 10116 6.9271 1180591620717411303424 3"
    );
}

#[test]
fn missing_placeholder_is_named() {
    let ctx = RenderContext::for_user(&user(Some("Ana"), json!({"tier": "gold"})));
    assert_eq!(
        render("Hi {{ name }} from {{ attributes.city }}", &ctx),
        Err(missing(&["attributes.city"]))
    );
    assert_eq!(
        render("{{ event.discount }}% off", &ctx),
        Err(missing(&["event.discount"]))
    );
    let anonymous = RenderContext::for_user(&user(None, json!({})));
    assert_eq!(
        render("Hi {{ name | upper }}", &anonymous),
        Err(missing(&["name"]))
    );
}

#[test]
fn a_condition_may_test_a_value_that_is_not_there() {
    let anonymous = RenderContext::for_user(&user(None, json!({})));
    let greeting = "{% if name %}Hi {{ name }}{% else %}Hi there{% endif %}";
    assert_eq!(render(greeting, &anonymous).unwrap(), "Hi there");
    let vip = "{% if attributes.vip %}VIP {% endif %}offer";
    assert_eq!(render(vip, &anonymous).unwrap(), "offer");
}

#[test]
fn event_fields_fall_back_to_their_default_without_an_event() {
    let no_event = RenderContext::for_user(&user(Some("Ana"), json!({})));
    let venue = r#"See you at {{ event.venue | default("our next event") }}."#;
    assert_eq!(
        render(venue, &no_event).unwrap(),
        "See you at our next event."
    );
    let with_venue = no_event
        .clone()
        .with_event(object(json!({"venue": "the Lotus Tower"})));
    assert_eq!(
        render(venue, &with_venue).unwrap(),
        "See you at the Lotus Tower."
    );
    // Without a default, a field the event does not carry is missing, event or not.
    let guarded = "{% if event is defined %}{{ event.venue }}{% endif %}";
    assert_eq!(render(guarded, &no_event), Err(missing(&["event.venue"])));
    let tested = "{% if event.venue %}at {{ event.venue }}{% endif %}";
    assert_eq!(render(tested, &no_event).unwrap(), "");
}

#[test]
fn missing_placeholder_ignores_others_that_have_a_default() {
    let ctx = RenderContext::for_user(&user(None, json!({})));
    let result = render(
        r#"Hi {{ name | default("there") }}, see you in {{ attributes.city }}"#,
        &ctx,
    );
    assert_eq!(result, Err(missing(&["attributes.city"])));
    assert_eq!(
        result.unwrap_err().to_string(),
        "missing placeholder attributes.city"
    );
}

#[test]
fn missing_value_behind_a_subscript_or_loop_variable_is_named() {
    let ctx = RenderContext::from_attributes(None, Map::new())
        .with_event(object(json!({"items": [{"title": "Shoes"}, {"price": 3}]})));
    assert_eq!(
        render(r#"{{ attributes["city"] }}"#, &ctx),
        Err(missing(&[r#"attributes["city"]"#]))
    );
    assert_eq!(
        render(
            "{% for item in event.items %}{{ item.title }} {% endfor %}",
            &ctx
        ),
        Err(missing(&["item.title"]))
    );
}

#[test]
fn json_null_attribute_is_missing_not_printed() {
    let ctx = RenderContext::from_attributes(None, object(json!({"city": null})));
    assert_eq!(
        render("{{ attributes.city }}", &ctx),
        Err(missing(&["attributes.city"]))
    );
    assert_eq!(
        render(r#"{{ attributes.city | default("your city") }}"#, &ctx).unwrap(),
        "your city"
    );
}

#[test]
fn other_render_failures_are_reported_with_their_field() {
    let ctx = RenderContext::from_attributes(None, object(json!({"city": "Colombo"})));
    let err = render("{{ attributes.city + 1 }}", &ctx).unwrap_err();
    let RenderError::Failed { message } = err else {
        panic!("expected a failure, got {err:?}");
    };
    assert!(message.contains("content"), "{message}");
}

#[test]
fn text_is_not_html_escaped_and_keeps_its_trailing_newline() {
    let ctx = RenderContext::from_attributes(Some("Tom & <Jerry>".into()), Map::new());
    assert_eq!(
        render("<b>{{ name }}</b> & co\n", &ctx).unwrap(),
        "<b>Tom & <Jerry></b> & co\n"
    );
}

#[test]
fn syntax_error_reports_field_line_and_column() {
    let err = check(&draft("Hello {{ name")).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.line, err.column),
        ("content", 1, 10)
    );
    assert!(err.message.contains("unexpected end of input"), "{err}");

    let err = check(&draft("Line one\nHéllo {{ name name }}")).unwrap_err();
    assert_eq!((err.line, err.column), (2, 15));
    assert!(
        err.to_string().starts_with("content, line 2, column 15: "),
        "{err}"
    );
}

#[test]
fn unknown_filter_test_or_function_is_refused_at_its_position() {
    let err = check(&draft(r#"Hi {{ name | defualt("there") }}"#)).unwrap_err();
    assert_eq!((err.line, err.column), (1, 14));
    assert_eq!(err.message, "unknown filter `defualt`");

    let err = check(&draft("{% if name is nothing %}x{% endif %}")).unwrap_err();
    assert_eq!(err.message, "unknown test `nothing`");

    let err = check(&draft("{{ greet(name) }}")).unwrap_err();
    assert_eq!(err.message, "unknown function `greet`");

    let known = r#"{{ name | default("x") | upper }}{% if name is defined %}{% endif %}{% for i in range(2) %}{{ i }}{% endfor %}"#;
    assert!(check(&draft(known)).is_ok());
}

#[test]
fn check_lists_sorted_unique_placeholders_of_content_and_variables() {
    let mut draft = draft(
        "{{ name }} {{ attributes.city }} {{ attributes.items() | length }} \
         {% for x in range(2) %}{{ x }}{% endfor %}{{ name }}",
    );
    draft.content_variables = Some(variables(&[
        ("1", "{{ event.discount }}"),
        ("2", "{{ name }}"),
    ]));
    assert_eq!(
        check(&draft).unwrap(),
        ["attributes", "attributes.city", "event.discount", "name"]
    );
}

#[test]
fn empty_content_needs_a_content_sid() {
    let err = check(&draft("  ")).unwrap_err();
    assert_eq!(err.field, "content");

    let mut approved = draft("");
    approved.content_sid = Some("HX0123456789abcdef0123456789abcdef".into());
    approved.content_variables = Some(variables(&[("1", "{{ name }}")]));
    assert_eq!(check(&approved).unwrap(), ["name"]);
}

#[test]
fn content_variable_errors_name_the_variable() {
    let mut draft = draft("Hi");
    draft.content_variables = Some(variables(&[("1", "{{ name }}"), ("2", "{% if %}")]));
    let err = check(&draft).unwrap_err();
    assert_eq!((err.field.as_str(), err.line), ("content_variables.2", 1));
}

#[test]
fn content_variables_render_for_each_key() {
    let vars = variables(&[
        ("1", r#"{{ name | default("friend") }}"#),
        ("2", "{{ event.code }}"),
    ]);
    let template = CompiledTemplate::from_parts("", Some(&vars)).unwrap();
    let ctx = RenderContext::for_user(&user(None, json!({})));
    assert_eq!(
        template.render_content_variables(&ctx),
        Err(missing(&["event.code"]))
    );

    let ctx = ctx.with_event(object(json!({"code": "SPRING"})));
    let rendered = template.render_content_variables(&ctx).unwrap().unwrap();
    assert_eq!(rendered, variables(&[("1", "friend"), ("2", "SPRING")]));
    assert_eq!(template.render_body(&ctx).unwrap(), "");
}

#[test]
fn template_without_variables_renders_none() {
    let ctx = RenderContext::from_attributes(None, Map::new());
    assert_eq!(compile("Hi").render_content_variables(&ctx), Ok(None));
}

#[test]
fn compiled_template_renders_many_recipients_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledTemplate>();

    let template = std::sync::Arc::new(compile("Hi {{ attributes.n }}"));
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let template = template.clone();
            std::thread::spawn(move || {
                let ctx = RenderContext::from_attributes(None, object(json!({"n": n})));
                template.render_body(&ctx).unwrap()
            })
        })
        .collect();
    let bodies: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(bodies, ["Hi 0", "Hi 1", "Hi 2", "Hi 3"]);
}

proptest! {
    #[test]
    fn check_never_panics(content in ".*", variable in ".*", sid in proptest::option::of("HX[a-f0-9]{4}")) {
        let mut draft = draft(&content);
        draft.content_sid = sid;
        draft.content_variables = Some(variables(&[("1", &variable)]));
        let _ = check(&draft);
    }

    #[test]
    fn check_never_panics_on_template_like_text(content in r"([{}%#|.()'\x22a-z \n-]|is|not|raw|endraw|é){0,40}") {
        let _ = check(&draft(&content));
    }
}

#[test]
fn a_render_that_would_never_end_stops_within_its_budget() {
    let nested =
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
    let ctx = RenderContext::from_attributes(None, Map::new());
    let started = std::time::Instant::now();
    let result = render(nested, &ctx);
    assert!(
        matches!(
            result,
            Err(RenderError::TooLong { .. } | RenderError::TooMuchWork { .. })
        ),
        "{result:?}"
    );
    assert!(result.unwrap_err().is_over_budget());
    // Long work, little output: the fuel stops it.
    let busy = "{% for i in range(100000) %}{% endfor %}done";
    assert_eq!(
        render(busy, &ctx),
        Err(RenderError::TooMuchWork {
            field: "content".into(),
            limit: RENDER_FUEL
        })
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_message_longer_than_whatsapp_allows_is_refused() {
    let ctx = RenderContext::from_attributes(None, object(json!({"bio": "y".repeat(2_000)})));
    assert_eq!(
        render("{{ attributes.bio }}", &ctx),
        Err(RenderError::TooLong {
            field: "content".into(),
            limit: MAX_RENDERED_CHARS
        })
    );
    assert_eq!(
        render("{% if true %}{{ attributes.bio }}{% endif %}", &ctx),
        Err(RenderError::TooLong {
            field: "content".into(),
            limit: MAX_RENDERED_CHARS
        })
    );
    let exactly = "é".repeat(MAX_RENDERED_CHARS);
    assert_eq!(render(&exactly, &ctx).unwrap(), exactly);
}

#[test]
fn templates_over_budget_without_any_data_are_refused_when_saved() {
    let error = check(&draft(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    ))
    .unwrap_err();
    assert_eq!(error.field, "content");
    assert!(error.message.contains("1600 characters") || error.message.contains("work"));
    let error = check(&draft(&"x".repeat(MAX_TEMPLATE_CHARS + 1))).unwrap_err();
    assert!(error.message.contains("longer than 10000"), "{error}");
    // A loop over the recipient's data cannot be judged without it: saved, bounded later.
    assert!(check(&draft("{% for i in attributes.items %}{{ i }}{% endfor %}")).is_ok());
}
