//! Tests of the sandbox: the order, content and fate of the simulated statuses.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use super::*;
use crate::domain::{MessageId, PhoneNumber};

fn message(to: &str) -> OutboundMessage {
    OutboundMessage {
        id: MessageId::new(),
        to: PhoneNumber::parse(to).unwrap(),
        body: Some("Hello".into()),
        content_sid: None,
        content_variables: None,
    }
}

fn sandbox(failure_share: f64, seed: u64) -> (SandboxProvider, mpsc::Receiver<StatusFields>) {
    let (sender, receiver) = mpsc::channel(1024);
    let config = SandboxConfig {
        step_delay: Duration::ZERO,
        failure_share,
        seed: Some(seed),
    };
    (SandboxProvider::new(config, sender), receiver)
}

/// Sends `count` messages and collects every report until each message reached a terminal
/// status; returns the SIDs in send order and the reports per SID, in arrival order.
async fn run(
    provider: &SandboxProvider,
    receiver: &mut mpsc::Receiver<StatusFields>,
    count: usize,
) -> (Vec<String>, BTreeMap<String, Vec<StatusFields>>) {
    let mut sids = Vec::new();
    for index in 0..count {
        let accepted = provider
            .send(&message(&format!("+9477123{index:04}")))
            .await
            .unwrap();
        assert_eq!(accepted.status, MessageStatus::Sending);
        sids.push(accepted.provider_sid);
    }
    let mut reports: BTreeMap<String, Vec<StatusFields>> = BTreeMap::new();
    let mut finished = 0;
    while finished < count {
        let report = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .expect("the sandbox reports within the deadline")
            .expect("the channel stays open");
        let status = MessageStatus::from_twilio(&report["MessageStatus"]).unwrap();
        if status.is_terminal() {
            finished += 1;
        }
        reports
            .entry(report["MessageSid"].clone())
            .or_default()
            .push(report);
    }
    (sids, reports)
}

fn statuses(reports: &[StatusFields]) -> Vec<&str> {
    reports
        .iter()
        .map(|report| report["MessageStatus"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_failures_every_message_goes_sent_delivered_read_in_order() {
    let (provider, mut receiver) = sandbox(0.0, 1);
    let (sids, reports) = run(&provider, &mut receiver, 50).await;

    assert_eq!(reports.len(), 50);
    for sid in &sids {
        let reports = &reports[sid];
        assert_eq!(statuses(reports), ["sent", "delivered", "read"], "{sid}");
        assert!(reports.iter().all(|r| !r.contains_key("ErrorCode")));
    }
}

#[tokio::test]
async fn reports_carry_twilios_status_callback_fields() {
    let (provider, mut receiver) = sandbox(0.0, 2);
    let (sids, reports) = run(&provider, &mut receiver, 1).await;

    let first = &reports[&sids[0]][0];
    assert_eq!(first["MessageSid"], sids[0]);
    assert_eq!(first["MessageStatus"], "sent");
    assert_eq!(first["To"], "whatsapp:+94771230000");
    assert_eq!(first["From"], SANDBOX_FROM);
    assert_eq!(first["AccountSid"], SANDBOX_ACCOUNT_SID);
    assert_eq!(first["ApiVersion"], "2010-04-01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_failure_share_one_every_message_fails_with_an_error_code() {
    let (provider, mut receiver) = sandbox(1.0, 3);
    let (sids, reports) = run(&provider, &mut receiver, 40).await;

    let mut seen = HashSet::new();
    for sid in &sids {
        let reports = &reports[sid];
        let sequence = statuses(reports);
        assert!(
            sequence == ["failed"] || sequence == ["sent", "undelivered"],
            "{sid}: {sequence:?}"
        );
        let last = reports.last().unwrap();
        let code = &last["ErrorCode"];
        assert!(code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit()));
        seen.insert(sequence.last().copied().unwrap());
    }
    // Both kinds of failure occur over 40 messages.
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test]
async fn sids_are_unique_and_shaped_like_twilios() {
    let (provider, _receiver) = sandbox(0.0, 4);
    // A second sandbox with the same seed must not repeat the first one's SIDs either.
    let (twin, _twin_receiver) = sandbox(0.0, 4);
    let mut sids = HashSet::new();
    for _ in 0..500 {
        for provider in [&provider, &twin] {
            let sid = provider
                .send(&message("+14155552671"))
                .await
                .unwrap()
                .provider_sid;
            assert_eq!(sid.len(), 34, "{sid}");
            assert!(sid.starts_with("SM"));
            assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(sids.insert(sid));
        }
    }
}

#[tokio::test]
async fn the_same_seed_gives_the_same_fates() {
    async fn fates(seed: u64) -> Vec<Vec<String>> {
        let (provider, mut receiver) = sandbox(0.5, seed);
        let (sids, reports) = run(&provider, &mut receiver, 30).await;
        sids.iter()
            .map(|sid| {
                reports[sid]
                    .iter()
                    .map(|r| format!("{}/{:?}", r["MessageStatus"], r.get("ErrorCode")))
                    .collect()
            })
            .collect()
    }
    let first = fates(42).await;
    assert_eq!(first, fates(42).await);
    assert!(first.iter().any(|steps| steps.len() == 3));
    assert!(first.iter().any(|steps| steps.len() < 3));
}

#[tokio::test]
async fn each_step_waits_for_the_configured_delay() {
    let (sender, mut receiver) = mpsc::channel(16);
    let delay = Duration::from_millis(40);
    let config = SandboxConfig {
        step_delay: delay,
        failure_share: 0.0,
        seed: Some(5),
    };
    let provider = SandboxProvider::new(config, sender);

    let started = Instant::now();
    provider.send(&message("+14155552671")).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let report = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .unwrap()
            .unwrap();
        seen.push(report["MessageStatus"].clone());
    }

    assert_eq!(seen, ["sent", "delivered", "read"]);
    assert!(started.elapsed() >= delay * 3);
}

#[tokio::test]
async fn a_message_without_content_is_refused_like_twilio_does() {
    let (provider, mut receiver) = sandbox(0.0, 6);
    let empty = OutboundMessage {
        body: Some(String::new()),
        ..message("+14155552671")
    };
    let error = provider.send(&empty).await.unwrap_err();
    assert!(matches!(error, SendError::Permanent { code: Some(c), .. } if c == "21619"));
    assert!(receiver.try_recv().is_err());
}

#[tokio::test]
async fn a_closed_status_channel_does_not_break_sending() {
    let (provider, receiver) = sandbox(0.0, 7);
    drop(receiver);
    assert!(provider.send(&message("+14155552671")).await.is_ok());
}

#[test]
fn failure_share_is_clamped() {
    let (sender, _receiver) = mpsc::channel(1);
    let config = |failure_share| SandboxConfig {
        failure_share,
        ..SandboxConfig::default()
    };
    assert_eq!(
        SandboxProvider::new(config(7.0), sender.clone()).failure_share,
        1.0
    );
    assert_eq!(
        SandboxProvider::new(config(-1.0), sender.clone()).failure_share,
        0.0
    );
    assert_eq!(
        SandboxProvider::new(config(f64::NAN), sender).failure_share,
        0.0
    );
}

#[tokio::test]
async fn a_fetched_status_is_where_the_simulation_has_got_to() {
    let (provider, _receiver) = sandbox(0.0, 7);
    let accepted = provider.send(&message("+94771230001")).await.unwrap();
    let fetched = provider
        .fetch_status(&accepted.provider_sid)
        .await
        .unwrap()
        .expect("the sandbox remembers what it accepted");
    // With no delay between steps, the simulation has already reached its end.
    assert_eq!(fetched.fields["MessageStatus"], "read");
    assert_eq!(fetched.fields["MessageSid"], accepted.provider_sid);
    assert_eq!(fetched.fields["To"], "whatsapp:+94771230001");
    assert_eq!(provider.fetch_status("SMunknown").await.unwrap(), None);
}

#[tokio::test]
async fn before_its_first_step_a_message_is_still_sending() {
    let (sender, _receiver) = mpsc::channel(16);
    let config = SandboxConfig {
        step_delay: Duration::from_secs(3600),
        failure_share: 0.0,
        seed: Some(1),
    };
    let provider = SandboxProvider::new(config, sender);
    let accepted = provider.send(&message("+94771230002")).await.unwrap();
    let fetched = provider
        .fetch_status(&accepted.provider_sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.fields["MessageStatus"], "sending");
}
