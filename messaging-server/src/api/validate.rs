//! Request bodies checked against the OpenAPI document before their handler runs. A JSON
//! body that does not fit its operation's schema answers 422 naming every offending field
//! at once (missing, mistyped, out of range, not one of an enum's values, unknown), in the
//! shape the engine's own validation answers (`details.fields`); a body that is not JSON at
//! all answers 400 with its line and column. A body that fits is handed on unchanged, and
//! the handler parses it as before, so the document stays the one description of a body.
//!
//! Objects with `properties` and no `additionalProperties` are closed: a field they do not
//! name (a typo such as `contnet_sid`) is an error, not silently dropped. Maps (with
//! `additionalProperties`) and free-form values stay open.
//!
//! Only JSON bodies of ordinary operations are read here, and never past
//! `MAX_JSON_BODY_BYTES` (a larger one answers 413 without being read further; see also
//! [`super::limits`]). Streamed uploads (the ingestions, whose JSON body is documented as a
//! binary string) pass through unread.

use std::sync::Arc;

use chrono::DateTime;
use messaging_core::EngineError;
use messaging_core::domain::FieldError;
use poem::error::ReadBodyError;
use poem::http::{Method, header};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response};
use serde_json::{Map, Value};

use super::error::ApiError;

/// The JSON request-body schemas of the API's operations, with the components they refer to.
#[derive(Debug, Default)]
pub struct BodySchemas {
    operations: Vec<Operation>,
    components: Map<String, Value>,
}

/// One operation of the document.
#[derive(Debug)]
struct Operation {
    method: Method,
    /// The path template's segments; `None` for a parameter (`{id}`).
    path: Vec<Option<String>>,
    /// The schema of its JSON body; `None` when it takes none, or streams it.
    schema: Option<Value>,
    required: bool,
    /// Whether its body is an upload (a binary string or a multipart form).
    streamed: bool,
}

impl BodySchemas {
    /// The body schemas of `spec`, an OpenAPI 3 document whose paths are relative to where
    /// the checked endpoint is mounted.
    pub fn from_spec(spec: &Value) -> Self {
        let mut operations = Vec::new();
        let paths = spec["paths"].as_object().into_iter().flatten();
        for (path, methods) in paths {
            let Some(methods) = methods.as_object() else {
                continue;
            };
            for (method, operation) in methods {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                let body = &operation["requestBody"];
                operations.push(Operation {
                    method,
                    path: path
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                        .collect(),
                    schema: json_schema(&body["content"]).cloned(),
                    required: body["required"].as_bool().unwrap_or(false),
                    streamed: is_upload(&body["content"]),
                });
            }
        }
        Self {
            operations,
            components: spec["components"]["schemas"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The operation `method path` reaches; literal segments win over parameters
    /// (`/segments/preview` over `/segments/{id}`), as in the router.
    fn find(&self, method: &Method, path: &str) -> Option<&Operation> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        self.operations
            .iter()
            .filter(|op| op.method == *method && op.path.len() == segments.len())
            .filter(|op| {
                op.path
                    .iter()
                    .zip(&segments)
                    .all(|(template, given)| template.as_deref().is_none_or(|t| t == *given))
            })
            .max_by_key(|op| op.path.iter().filter(|s| s.is_some()).count())
    }

    /// Whether the operation `method path` reaches takes an upload (rather than a JSON body
    /// or none).
    pub fn takes_upload(&self, method: &Method, path: &str) -> bool {
        self.find(method, path).is_some_and(|op| op.streamed)
    }

    /// Every way `value` does not fit `schema`, each named by its field's path.
    pub fn problems(&self, schema: &Value, value: &Value) -> Vec<FieldError> {
        let mut problems = Vec::new();
        self.check(schema, value, "", &[], &mut problems);
        problems
    }

    /// Checks `value` at `path` against `schema`. `also_known` names fields that sibling
    /// schemas of an `allOf` define, which are not unknown here.
    fn check(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        also_known: &[String],
        problems: &mut Vec<FieldError>,
    ) {
        let schema = self.resolve(schema);
        if value.is_null() && schema["nullable"] == Value::Bool(true) {
            return;
        }
        if let Some(parts) = schema["allOf"].as_array() {
            let mut known: Vec<String> = also_known.to_vec();
            for part in parts {
                known.extend(
                    self.resolve(part)["properties"]
                        .as_object()
                        .into_iter()
                        .flat_map(|properties| properties.keys().cloned()),
                );
            }
            for part in parts {
                self.check(part, value, path, &known, problems);
            }
        }
        for choice in ["oneOf", "anyOf"] {
            if let Some(branches) = schema[choice].as_array() {
                self.check_choice(schema, branches, value, path, problems);
            }
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
            problems.push(problem(
                path,
                format!("must be one of {}, not {value}", listed.join(", ")),
            ));
            return;
        }
        let Some(kind) = schema["type"].as_str() else {
            return; // free-form
        };
        match (kind, value) {
            ("object", Value::Object(object)) => {
                self.check_object(schema, object, path, also_known, problems);
            }
            ("array", Value::Array(items)) => self.check_array(schema, items, path, problems),
            ("string", Value::String(text)) => check_string(schema, text, path, problems),
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => {
                check_integer(schema, n, path, problems);
            }
            ("number", Value::Number(n)) => check_bounds(schema, n.as_f64(), path, problems),
            ("boolean", Value::Bool(_)) => {}
            (kind, value) => problems.push(problem(
                path,
                format!("must be {}, not {}", article(kind), describe(value)),
            )),
        }
    }

    /// A `oneOf`/`anyOf`: the branch a discriminator names, or else any branch that fits;
    /// when none does, the problems of the one that came closest.
    fn check_choice(
        &self,
        schema: &Value,
        branches: &[Value],
        value: &Value,
        path: &str,
        problems: &mut Vec<FieldError>,
    ) {
        if let Some(property) = schema["discriminator"]["propertyName"].as_str() {
            let mapping = &schema["discriminator"]["mapping"];
            let tag = value.get(property).and_then(Value::as_str);
            match tag.and_then(|tag| mapping.get(tag)).and_then(Value::as_str) {
                Some(reference) => {
                    let branch = Value::Object(Map::from_iter([(
                        "$ref".to_owned(),
                        Value::String(reference.to_owned()),
                    )]));
                    self.check(&branch, value, path, &[], problems);
                }
                None => {
                    let tags: Vec<String> = mapping
                        .as_object()
                        .into_iter()
                        .flat_map(|m| m.keys().map(|k| format!("{k:?}")))
                        .collect();
                    problems.push(problem(
                        &join(path, property),
                        format!("must be one of {}", tags.join(", ")),
                    ));
                }
            }
            return;
        }
        let closest = branches
            .iter()
            .map(|branch| {
                let mut found = Vec::new();
                self.check(branch, value, path, &[], &mut found);
                found
            })
            .min_by_key(Vec::len);
        if let Some(found) = closest {
            problems.extend(found);
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        object: &Map<String, Value>,
        path: &str,
        also_known: &[String],
        problems: &mut Vec<FieldError>,
    ) {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let properties = schema["properties"].as_object();
        for (name, property) in properties.into_iter().flatten() {
            let is_required = required.contains(&name.as_str());
            match object.get(name) {
                None if is_required => problems.push(problem(&join(path, name), "is required")),
                None => {}
                // An optional field given as null is left out.
                Some(Value::Null) if !is_required => {}
                Some(value) => self.check(property, value, &join(path, name), &[], problems),
            }
        }
        let additional = &schema["additionalProperties"];
        let known = |name: &String| {
            properties.is_some_and(|p| p.contains_key(name)) || also_known.contains(name)
        };
        for (name, value) in object.iter().filter(|(name, _)| !known(name)) {
            match additional {
                Value::Object(_) => self.check(additional, value, &join(path, name), &[], problems),
                Value::Bool(true) => {}
                Value::Null if properties.is_none() => {}
                _ => problems.push(problem(&join(path, name), unknown(name, properties))),
            }
        }
        let count = object.len() as f64;
        if let Some(min) = schema["minProperties"].as_f64()
            && count < min
        {
            problems.push(problem(path, format!("must have at least {min} fields")));
        }
        if let Some(max) = schema["maxProperties"].as_f64()
            && count > max
        {
            problems.push(problem(path, format!("must have at most {max} fields")));
        }
    }

    fn check_array(
        &self,
        schema: &Value,
        items: &[Value],
        path: &str,
        problems: &mut Vec<FieldError>,
    ) {
        let count = items.len() as f64;
        if let Some(min) = schema["minItems"].as_f64()
            && count < min
        {
            problems.push(problem(path, format!("must have at least {min} items")));
        }
        if let Some(max) = schema["maxItems"].as_f64()
            && count > max
        {
            problems.push(problem(path, format!("must have at most {max} items")));
        }
        if schema["items"].is_object() {
            for (i, item) in items.iter().enumerate() {
                self.check(
                    &schema["items"],
                    item,
                    &format!("{path}[{i}]"),
                    &[],
                    problems,
                );
            }
        }
    }

    /// `schema` with its `$ref` followed (to `#/components/schemas/NAME`).
    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        // A bound guards against a reference that leads back to itself.
        for _ in 0..32 {
            let Some(reference) = schema["$ref"].as_str() else {
                return schema;
            };
            let name = reference.trim_start_matches("#/components/schemas/");
            match self.components.get(name) {
                Some(target) => schema = target,
                None => return &Value::Null,
            }
        }
        schema
    }
}

/// The schema of a JSON body in a `content` map, unless it is streamed (a binary string).
fn json_schema(content: &Value) -> Option<&Value> {
    let (_, media) = content
        .as_object()?
        .iter()
        .find(|(media_type, _)| is_json_type(media_type))?;
    let schema = &media["schema"];
    let streamed = schema["type"] == "string" && schema["format"] == "binary";
    (!streamed && schema.is_object()).then_some(schema)
}

/// Whether a `content` map takes a file: a binary string, or a multipart form.
fn is_upload(content: &Value) -> bool {
    content
        .as_object()
        .into_iter()
        .flatten()
        .any(|(media_type, media)| {
            media_type.starts_with("multipart/")
                || (media["schema"]["type"] == "string" && media["schema"]["format"] == "binary")
        })
}

/// `application/json` or `application/*+json`, with any parameters, as the handlers'
/// JSON payloads accept.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn check_string(schema: &Value, text: &str, path: &str, problems: &mut Vec<FieldError>) {
    let length = text.chars().count() as f64;
    if let Some(min) = schema["minLength"].as_f64()
        && length < min
    {
        let reason = if text.is_empty() {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters long")
        };
        problems.push(problem(path, reason));
    }
    if let Some(max) = schema["maxLength"].as_f64()
        && length > max
    {
        problems.push(problem(
            path,
            format!("must be at most {max} characters long, not {length}"),
        ));
    }
    if schema["format"] == "date-time"
        && let Err(error) = DateTime::parse_from_rfc3339(text.trim())
    {
        problems.push(problem(
            path,
            format!("{text:?} is not an RFC 3339 time with an offset ({error})"),
        ));
    }
}

fn check_integer(
    schema: &Value,
    n: &serde_json::Number,
    path: &str,
    problems: &mut Vec<FieldError>,
) {
    let range: Option<(i128, i128)> = match schema["format"].as_str() {
        Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
        Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
        Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
        Some("int64") => Some((i64::MIN.into(), i64::MAX.into())),
        Some("uint8") => Some((0, u8::MAX.into())),
        Some("uint16") => Some((0, u16::MAX.into())),
        Some("uint32") => Some((0, u32::MAX.into())),
        Some("uint64") => Some((0, u64::MAX.into())),
        _ => None,
    };
    let value = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from));
    if let (Some((min, max)), Some(value)) = (range, value)
        && !(min..=max).contains(&value)
    {
        problems.push(problem(
            path,
            format!("must be a whole number from {min} to {max}, not {value}"),
        ));
        return;
    }
    check_bounds(schema, n.as_f64(), path, problems);
}

fn check_bounds(schema: &Value, value: Option<f64>, path: &str, problems: &mut Vec<FieldError>) {
    let Some(value) = value else {
        return;
    };
    if let Some(min) = schema["minimum"].as_f64() {
        let exclusive = schema["exclusiveMinimum"] == Value::Bool(true);
        if value < min || (exclusive && value == min) {
            let relation = if exclusive { "more than" } else { "at least" };
            problems.push(problem(
                path,
                format!("must be {relation} {min}, not {value}"),
            ));
        }
    }
    if let Some(max) = schema["maximum"].as_f64() {
        let exclusive = schema["exclusiveMaximum"] == Value::Bool(true);
        if value > max || (exclusive && value == max) {
            let relation = if exclusive { "less than" } else { "at most" };
            problems.push(problem(
                path,
                format!("must be {relation} {max}, not {value}"),
            ));
        }
    }
}

fn problem(path: &str, reason: impl Into<String>) -> FieldError {
    FieldError::new(path, reason)
}

/// `parent.name`, or `name` at the top.
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

fn article(kind: &str) -> String {
    match kind {
        "integer" => "a whole number".to_owned(),
        "object" | "array" => format!("an {kind}"),
        other => format!("a {other}"),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why `name` is refused, with the known field it most likely misspells.
fn unknown(name: &str, properties: Option<&Map<String, Value>>) -> String {
    let closest = properties
        .into_iter()
        .flat_map(|p| p.keys())
        .map(|known| (edit_distance(name, known), known))
        .filter(|(distance, known)| *distance <= 2.max(known.len() / 4))
        .min();
    match closest {
        Some((_, known)) => format!("unknown field; did you mean {known:?}?"),
        None => {
            let listed: Vec<&str> = properties
                .into_iter()
                .flat_map(|p| p.keys().map(String::as_str))
                .collect();
            if listed.is_empty() {
                "unknown field".to_owned()
            } else {
                format!("unknown field; the fields are {}", listed.join(", "))
            }
        }
    }
}

/// Levenshtein distance, with a swap of two neighbours counting as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Whether `request` says its body is JSON.
fn sends_json(request: &Request) -> bool {
    request
        .header(header::CONTENT_TYPE)
        .is_some_and(is_json_type)
}

/// Checks the JSON body of every operation of `endpoint` that takes one against `schemas`
/// (reading at most `limit` bytes, `MAX_JSON_BODY_BYTES`), answering 400, 413 or 422 before
/// the handler runs when it does not fit.
pub fn check_bodies<E: Endpoint + 'static>(
    endpoint: E,
    schemas: Arc<BodySchemas>,
    limit: u64,
) -> impl Endpoint<Output = Response> {
    endpoint.around(move |next, mut request: Request| {
        let schemas = schemas.clone();
        async move {
            let operation = schemas.find(request.method(), request.uri().path());
            let schema = operation.and_then(|op| Some((op.schema.as_ref()?, op.required)));
            if let Some((schema, required)) = schema.filter(|_| sends_json(&request)) {
                let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
                let bytes = match request.take_body().into_bytes_limit(limit_bytes).await {
                    Ok(bytes) => bytes,
                    Err(ReadBodyError::PayloadTooLarge) => {
                        let answer = ApiError::too_large_for(limit, "MAX_JSON_BODY_BYTES");
                        return Ok(answer.into_response());
                    }
                    Err(error) => {
                        return Ok(ApiError::bad_request(format!(
                            "the body could not be read: {error}"
                        ))
                        .into_response());
                    }
                };
                if let Some(answer) = refusal(&schemas, schema, required, &bytes) {
                    return Ok(answer.into_response());
                }
                request.set_body(Body::from(bytes));
            }
            Ok(next.call(request).await?.into_response())
        }
    })
}

/// Why `body` cannot go on to a handler taking `schema`, if it cannot.
fn refusal(schemas: &BodySchemas, schema: &Value, required: bool, body: &[u8]) -> Option<ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) && !required {
        return None;
    }
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(error) => return Some(ApiError::not_json(&error)),
    };
    let problems = schemas.problems(schema, &value);
    (!problems.is_empty()).then(|| EngineError::Invalid(problems).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> BodySchemas {
        BodySchemas::from_spec(&json!({
            "paths": {
                "/things": { "post": { "requestBody": { "required": true, "content": {
                    "application/json; charset=utf-8": {
                        "schema": { "$ref": "#/components/schemas/Thing" } } } } } },
                "/things/{id}": { "put": { "requestBody": { "content": {
                    "application/json": { "schema": { "type": "object" } } } } } },
                "/things/upload": { "put": { "requestBody": { "content": {
                    "application/json": {
                        "schema": { "type": "string", "format": "binary" } } } } } },
            },
            "components": { "schemas": {
                "Thing": {
                    "type": "object",
                    "required": ["name", "size"],
                    "properties": {
                        "name": { "type": "string", "maxLength": 5 },
                        "size": { "type": "integer", "format": "uint32", "minimum": 1 },
                        "kind": { "type": "string", "enum": ["big", "small"] },
                        "at": { "type": "string", "format": "date-time" },
                        "labels": { "type": "object",
                                    "additionalProperties": { "type": "string" } },
                        "data": {},
                        "part": { "allOf": [{ "$ref": "#/components/schemas/Part" }],
                                  "nullable": true },
                        "parts": { "type": "array",
                                   "items": { "$ref": "#/components/schemas/Part" } },
                    },
                },
                "Part": {
                    "type": "object",
                    "required": ["start"],
                    "properties": { "start": { "type": "string" } },
                },
            } },
        }))
    }

    fn named(problems: &[FieldError]) -> Vec<&str> {
        let mut names: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        names.sort_unstable();
        names
    }

    fn check(body: Value) -> Vec<FieldError> {
        let schemas = schemas();
        let operation = schemas.find(&Method::POST, "/things").unwrap();
        schemas.problems(operation.schema.as_ref().unwrap(), &body)
    }

    #[test]
    fn a_body_that_fits_has_no_problems() {
        let body = json!({ "name": "x", "size": 3, "kind": "big", "at": "2026-01-01T00:00:00+05:30",
                           "labels": { "a": "b" }, "data": [1, { "z": null }], "part": null,
                           "parts": [{ "start": "s" }] });
        assert!(check(body).is_empty());
    }

    #[test]
    fn every_problem_is_named_by_its_path_at_once() {
        let problems = check(json!({
            "size": 0, "kind": "huge", "at": "soon", "labels": { "a": 1 },
            "part": { "stat": "x" }, "parts": [{ "start": 1 }], "nmae": "x",
        }));
        assert_eq!(
            named(&problems),
            [
                "at",
                "kind",
                "labels.a",
                "name",
                "nmae",
                "part.start",
                "part.stat",
                "parts[0].start",
                "size"
            ],
            "{problems:?}"
        );
        let typo = problems.iter().find(|p| p.field == "nmae").unwrap();
        assert!(typo.reason.contains("did you mean \"name\""), "{typo:?}");
    }

    #[test]
    fn types_ranges_and_lengths_are_checked() {
        let problems = check(json!({ "name": "toolong", "size": -1 }));
        assert_eq!(named(&problems), ["name", "size"], "{problems:?}");
        let problems = check(json!({ "name": null, "size": 1.5 }));
        assert_eq!(named(&problems), ["name", "size"], "{problems:?}");
        assert!(problems[0].reason.contains("null"), "{problems:?}");
        let problems = check(json!([1]));
        assert_eq!(named(&problems), [""], "{problems:?}");
    }

    #[test]
    fn literal_paths_win_and_streamed_bodies_are_not_checked() {
        let schemas = schemas();
        let upload = schemas.find(&Method::PUT, "/things/upload").unwrap();
        assert!(upload.path[1].is_some() && upload.schema.is_none());
        assert!(schemas.takes_upload(&Method::PUT, "/things/upload"));
        assert!(!schemas.takes_upload(&Method::PUT, "/things/42"));
        assert!(
            schemas
                .find(&Method::PUT, "/things/42")
                .unwrap()
                .schema
                .is_some()
        );
        assert!(schemas.find(&Method::GET, "/things").is_none());
        assert!(schemas.find(&Method::POST, "/things/42").is_none());
    }

    #[test]
    fn misspellings_are_recognised() {
        assert_eq!(edit_distance("contnet_sid", "content_sid"), 1);
        assert_eq!(edit_distance("name", "name"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert!(is_json_type("Application/JSON; charset=utf-8"));
        assert!(is_json_type("application/merge-patch+json"));
        assert!(!is_json_type("text/csv"));
    }
}
