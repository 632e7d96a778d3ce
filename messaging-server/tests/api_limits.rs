//! Every request body is bounded while it streams: JSON bodies at `MAX_JSON_BODY_BYTES`,
//! uploads at `MAX_BODY_BYTES`, Twilio's webhooks at 64 KiB. Past its limit a body answers
//! 413 at once (before it was all sent, and before any of it when `Content-Length` says so)
//! and nothing of it is stored; a text field longer than its schema allows answers 422
//! naming it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Options, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a client that streams a request body learns.
struct Streamed {
    status: u16,
    body: Value,
    /// Body bytes the client had written when the answer came.
    sent_before_answer: u64,
}

/// How the body of a [`stream_request`] is framed.
enum Framing {
    /// `Transfer-Encoding: chunked`, ended after `total` bytes.
    Chunked,
    /// `Content-Length: N`; only `total` bytes of it are ever sent.
    Declared(u64),
}

/// Sends `method path` with `content_type`, then a body of `start` followed by `filler`
/// repeated up to `total` bytes, while waiting for the answer; the connection stays open
/// after the last byte, so an answer that waits for more never comes.
async fn stream_request(
    base: &str,
    path: &str,
    content_type: &str,
    framing: Framing,
    start: Vec<u8>,
    filler: Vec<u8>,
    total: u64,
) -> Streamed {
    let address = base.trim_start_matches("http://");
    let (mut reading, mut writing) = TcpStream::connect(address).await.unwrap().into_split();
    let length = match framing {
        Framing::Chunked => "Transfer-Encoding: chunked".to_owned(),
        Framing::Declared(length) => format!("Content-Length: {length}"),
    };
    let chunked = matches!(framing, Framing::Chunked);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n{length}\r\n\r\n"
    );
    let sent = Arc::new(AtomicU64::new(0));
    let counted = sent.clone();
    let writer = tokio::spawn(async move {
        writing.write_all(head.as_bytes()).await?;
        let mut piece = start;
        while counted.load(Ordering::SeqCst) < total {
            let room = usize::try_from(total - counted.load(Ordering::SeqCst)).unwrap();
            piece.truncate(room);
            if chunked {
                writing
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
            }
            writing.write_all(&piece).await?;
            if chunked {
                writing.write_all(b"\r\n").await?;
            }
            counted.fetch_add(piece.len() as u64, Ordering::SeqCst);
            piece = filler.clone();
        }
        if chunked {
            writing.write_all(b"0\r\n\r\n").await?;
        }
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let mut sent_before_answer = None;
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buffer = [0u8; 8192];
        loop {
            let n = reading.read(&mut buffer).await.unwrap_or(0);
            sent_before_answer.get_or_insert_with(|| sent.load(Ordering::SeqCst));
            if n == 0 || complete(&answer) {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
            if complete(&answer) {
                break;
            }
        }
    })
    .await;
    writer.abort();
    assert!(read.is_ok(), "no answer came while the body was being sent");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    Streamed {
        status,
        body: serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
        sent_before_answer: sent_before_answer.unwrap_or(0),
    }
}

/// Whether `answer` holds a whole response (its head and `Content-Length` bytes of body).
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

fn fields(error: &Value) -> Vec<String> {
    error["error"]["details"]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["field"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_user_larger_than_the_json_limit_answers_413_and_is_not_stored() {
    let app = spawn_app().await;
    let name = "x".repeat(2 * 1024 * 1024);
    let (status, body) = app
        .post(
            "/api/v1/users",
            &json!({ "phone": "+94771234567", "name": name }),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAX_JSON_BODY_BYTES"),
        "{body}"
    );
    assert_eq!(app.engine.count_users().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_name_longer_than_its_field_answers_422_naming_it() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/v1/users",
            &json!({ "phone": "+94771234567", "name": "x".repeat(201), "locale": "l".repeat(36) }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(fields(&body), ["locale", "name"], "{body}");
    assert_eq!(app.engine.count_users().await.unwrap(), 0);
    let (status, body) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "t", "content": "hi", "content_variables": { "1": "v".repeat(1001) } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(fields(&body), ["content_variables.1"], "{body}");
    let (status, body) = app
        .get(&format!("/api/v1/users?q={}", "q".repeat(201)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .get(&format!("/api/v1/templates/{}", "i".repeat(65)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn templates_and_events_larger_than_the_json_limit_answer_413() {
    let app = spawn_app().await;
    let content = "y".repeat(5 * 1024 * 1024);
    let (status, body) = app
        .post(
            "/api/v1/templates",
            &json!({ "name": "big", "content": content }),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let data = json!({ "blob": "z".repeat(2 * 1024 * 1024) });
    let (status, body) = app
        .post("/api/v1/events", &json!({ "name": "big", "data": data }))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (_, templates) = app.get("/api/v1/templates").await;
    assert_eq!(templates["items"], json!([]), "{templates}");
    let (_, events) = app.get("/api/v1/events").await;
    assert_eq!(events["items"], json!([]), "{events}");
    app.stop().await;
}

#[tokio::test]
async fn a_chunked_json_body_is_refused_as_soon_as_it_passes_the_limit() {
    let app = spawn_app_with(Options {
        max_json_body_bytes: Some(64 * 1024),
        ..Options::default()
    })
    .await;
    // A body that would never end: the answer must come from the bytes seen so far.
    let answer = stream_request(
        &app.base,
        "/api/v1/users",
        "application/json",
        Framing::Chunked,
        br#"{"phone": "+94771234567", "name": ""#.to_vec(),
        vec![b'x'; 16 * 1024],
        1024 * 1024 * 1024,
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "too_large", "{}", answer.body);
    assert!(answer.sent_before_answer < 64 * 1024 * 1024);
    assert_eq!(app.engine.count_users().await.unwrap(), 0);
    app.stop().await;
}

fn form_start(file_name: &str) -> Vec<u8> {
    format!(
        "--limit-test\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: text/csv\r\n\r\nphone,name\r\n"
    )
    .into_bytes()
}

fn csv_rows(count: u32) -> Vec<u8> {
    (0..count)
        .flat_map(|i| format!("+9477{:07},User {i}\r\n", 3_000_000 + i).into_bytes())
        .collect()
}

#[tokio::test]
async fn a_multipart_upload_stops_spooling_once_past_the_limit() {
    let app = spawn_app_with(Options {
        max_body_bytes: Some(256 * 1024),
        ..Options::default()
    })
    .await;
    let total = 64 * 1024 * 1024;
    let answer = stream_request(
        &app.base,
        "/api/v1/ingestions/users",
        "multipart/form-data; boundary=limit-test",
        Framing::Chunked,
        form_start("users.csv"),
        csv_rows(1_000),
        total,
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "too_large", "{}", answer.body);
    assert!(
        answer.sent_before_answer < total / 4,
        "the answer waited for {} of {total} bytes",
        answer.sent_before_answer
    );
    assert_eq!(app.engine.count_users().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn an_upload_declaring_a_length_over_the_limit_answers_413_before_its_body() {
    let app = spawn_app_with(Options {
        max_body_bytes: Some(256 * 1024),
        ..Options::default()
    })
    .await;
    for content_type in ["multipart/form-data; boundary=limit-test", "text/csv"] {
        let answer = stream_request(
            &app.base,
            "/api/v1/ingestions/users",
            content_type,
            Framing::Declared(300 * 1024 * 1024),
            form_start("users.csv"),
            Vec::new(),
            0,
        )
        .await;
        assert_eq!(answer.status, 413, "{content_type}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "too_large", "{}", answer.body);
    }
    let (status, body) = app
        .post_raw(
            "/api/v1/ingestions/users",
            "text/csv",
            "phone\n+94771234567\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a small upload still goes: {body}");
    app.stop().await;
}

#[tokio::test]
async fn webhooks_over_their_limit_answer_413() {
    let app = spawn_app().await;
    for path in ["/twilio/inbound", "/twilio/status"] {
        let declared = stream_request(
            &app.base,
            path,
            "application/x-www-form-urlencoded",
            Framing::Declared(10 * 1024 * 1024),
            b"Body=".to_vec(),
            Vec::new(),
            0,
        )
        .await;
        assert_eq!(declared.status, 413, "{path}: {}", declared.body);
        let streamed = stream_request(
            &app.base,
            path,
            "application/x-www-form-urlencoded",
            Framing::Chunked,
            b"Body=".to_vec(),
            vec![b'a'; 8 * 1024],
            1024 * 1024 * 1024,
        )
        .await;
        assert_eq!(streamed.status, 413, "{path}: {}", streamed.body);
    }
    let (_, inbound) = app.get("/api/v1/inbound").await;
    assert_eq!(inbound["items"], json!([]), "{inbound}");
    app.stop().await;
}

#[tokio::test]
async fn bodies_within_their_limits_still_go() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/v1/users",
            &json!({ "phone": "+94771234567", "name": "n".repeat(200),
                     "attributes": { "notes": "a".repeat(500 * 1024) } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/templates",
            // As long as a template may be; the comment keeps the message short.
            &json!({ "name": "long", "content": format!("Hi {{# {} #}}", "c".repeat(9_991)) }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.stop().await;
}
