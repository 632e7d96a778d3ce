//! Fault injection over real HTTP: latency, 429 and 5xx shares, scripted faults and dropped
//! connections; injected failures never record the message as accepted.

mod support;

use std::time::{Duration, Instant};

use fake_twilio::{Behaviour, Faults, ScriptedFault};
use support::{FROM, Http, TO, start_fake};

fn with_faults(faults: Faults) -> Behaviour {
    Behaviour {
        faults,
        ..Behaviour::default()
    }
}

/// Bounds that a binomial count falls outside of about once in 100,000 runs (4.5 sd).
fn plausible(count: usize, trials: usize, share: f64) -> bool {
    let mean = trials as f64 * share;
    let sd = (trials as f64 * share * (1.0 - share)).sqrt();
    (count as f64 - mean).abs() <= 4.5 * sd
}

#[tokio::test]
async fn shares_of_429_and_5xx_are_statistically_sane_and_never_recorded() {
    let twilio = start_fake(with_faults(Faults {
        rate_limited_share: 0.2,
        server_error_share: 0.1,
        ..Faults::default()
    }))
    .await;
    let http = Http::default();
    let (mut rate_limited, mut server_errors, mut created) = (0, 0, 0);
    for i in 0..200 {
        let body = format!("message {i}");
        let reply = http
            .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", &body)])
            .await
            .unwrap();
        match reply.status {
            429 => {
                rate_limited += 1;
                assert_eq!(reply.headers["retry-after"], "1");
                assert_eq!(reply.json()["code"], 20429);
            }
            500 | 503 => {
                server_errors += 1;
                let code = reply.json()["code"].as_u64().unwrap();
                assert!(code == 20500 || code == 20503, "code {code}");
            }
            201 => created += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        plausible(rate_limited, 200, 0.2),
        "{rate_limited} 429s of 200"
    );
    assert!(
        plausible(server_errors, 200, 0.1),
        "{server_errors} 5xx of 200"
    );
    let accepted = twilio.messages();
    assert_eq!(accepted.len(), created);
    assert!(accepted.iter().all(|m| m.times_accepted == 1));
    let counters = twilio.counters();
    assert_eq!(
        (
            counters.requests,
            counters.rate_limited,
            counters.server_errors,
            counters.accepted
        ),
        (
            200,
            rate_limited as u64,
            server_errors as u64,
            created as u64
        )
    );
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let twilio = start_fake(with_faults(Faults {
        latency_ms: 150,
        jitter_ms: 50,
        ..Faults::default()
    }))
    .await;
    let started = Instant::now();
    let reply = Http::default()
        .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "slow")])
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 201);
    assert!(
        elapsed >= Duration::from_millis(150),
        "answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn scripted_faults_apply_in_order_then_requests_pass() {
    let twilio = start_fake(with_faults(Faults {
        script: [
            ScriptedFault::RateLimited,
            ScriptedFault::Unavailable,
            ScriptedFault::ServerError,
        ]
        .into(),
        ..Faults::default()
    }))
    .await;
    let http = Http::default();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let reply = http
            .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "retry me")])
            .await
            .unwrap();
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [429, 503, 500, 201]);
    let accepted = twilio.messages();
    assert_eq!(
        accepted.len(),
        1,
        "retries after injected failures are sent once"
    );
    assert_eq!(accepted[0].times_accepted, 1);
}

#[tokio::test]
async fn a_dropped_connection_after_acceptance_loses_the_answer_but_keeps_the_message() {
    let twilio = start_fake(with_faults(Faults {
        script: [ScriptedFault::DropAfterAccept].into(),
        ..Faults::default()
    }))
    .await;
    let http = Http::default();
    let fields = [("To", TO), ("From", FROM), ("Body", "unknown outcome")];

    let error = http.send_message(&twilio, &fields).await.unwrap_err();
    assert!(error.contains("closed"), "{error}");
    let accepted = twilio.messages();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0].answer_dropped);

    // A client that retries blindly now sends the same message twice.
    let retry = http.send_message(&twilio, &fields).await.unwrap();
    assert_eq!(retry.status, 201);
    assert!(twilio.messages().iter().all(|m| m.times_accepted == 2));
    assert_eq!(twilio.counters().dropped, 1);
}

#[tokio::test]
async fn a_dropped_connection_before_acceptance_records_nothing() {
    let twilio = start_fake(with_faults(Faults {
        dropped_connection_share: 1.0,
        drop_after_accept: false,
        ..Faults::default()
    }))
    .await;
    let http = Http::default();
    for _ in 0..3 {
        let error = http
            .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "lost")])
            .await
            .unwrap_err();
        assert!(error.contains("closed"), "{error}");
    }
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.counters().dropped, 3);

    // The fake keeps serving once the faults are lifted.
    twilio.set_faults(Faults::default()).unwrap();
    let reply = http
        .send_message(&twilio, &[("To", TO), ("From", FROM), ("Body", "found")])
        .await
        .unwrap();
    assert_eq!(reply.status, 201);
}

#[tokio::test]
async fn shares_that_make_no_sense_are_refused() {
    let twilio = start_fake(Behaviour::default()).await;
    let too_much = Faults {
        rate_limited_share: 0.7,
        server_error_share: 0.7,
        ..Faults::default()
    };
    assert!(twilio.set_faults(too_much).is_err());
    assert_eq!(twilio.behaviour(), Behaviour::default());
}
