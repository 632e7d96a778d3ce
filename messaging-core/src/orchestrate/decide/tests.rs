use chrono::{NaiveTime, TimeZone as _};

use super::*;
use crate::domain::{
    CampaignId, CampaignStatus, Consent, MessageId, PhoneNumber, QuietHours, Schedule, TemplateId,
    TimeZone, Trigger,
};
use crate::store::RecipientFacts;

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, hour, minute, 0).unwrap()
}

fn campaign() -> Campaign {
    Campaign {
        id: CampaignId::new(),
        name: "Launch".into(),
        topic: None,
        template_id: TemplateId::new(),
        segment_id: None,
        trigger: Trigger::Manual,
        schedule: Schedule::default(),
        rate_limit_per_second: None,
        quiet_hours: None,
        status: CampaignStatus::Running,
        problem: None,
        created_at: at(0, 0),
        updated_at: at(0, 0),
    }
}

fn facts() -> RecipientFacts {
    RecipientFacts {
        consent: Consent::OptIn,
        timezone: None,
        // Wrote an hour before noon: the window is open.
        last_inbound_at: Some(at(11, 0)),
        sent_last_24_hours: 0,
        conversation_open: false,
    }
}

fn message(phone: &str, facts: Option<RecipientFacts>) -> DueMessage {
    DueMessage {
        id: MessageId::new(),
        campaign_id: None,
        phone: PhoneNumber::parse(phone).unwrap(),
        body: "Hello".into(),
        content_sid: Some("HX0123".into()),
        content_variables: None,
        status: MessageStatus::Pending,
        attempts: 0,
        sent_as: None,
        dispatched_at: None,
        recipient: facts,
    }
}

fn step_and_status(disposition: &Disposition) -> (&str, MessageStatus) {
    match disposition {
        Disposition::Skip(d) => (d.step.as_str(), MessageStatus::Skipped),
        Disposition::Defer { decision, .. } => (decision.step.as_str(), MessageStatus::Deferred),
        Disposition::Queue { decision, .. } => (decision.step.as_str(), MessageStatus::Queued),
    }
}

fn decide_one(message: &DueMessage, campaign: Option<&Campaign>, limits: Limits) -> Disposition {
    decide(message, campaign, &limits, &mut Round::default(), at(12, 0))
}

#[test]
fn a_deleted_recipient_is_skipped() {
    let d = decide_one(
        &message("+94771234567", None),
        Some(&campaign()),
        Limits::default(),
    );
    assert_eq!(step_and_status(&d), ("recipient", MessageStatus::Skipped));
}

#[test]
fn the_schedule_defers_before_its_start_and_skips_after_its_end() {
    let mut early = campaign();
    early.schedule.start_at = Some(at(13, 0));
    let m = message("+94771234567", Some(facts()));
    match decide_one(&m, Some(&early), Limits::default()) {
        Disposition::Defer { until, decision } => {
            assert_eq!(until, at(13, 0));
            assert_eq!(decision.step, "schedule");
        }
        other => panic!("{other:?}"),
    }
    let mut ended = campaign();
    ended.schedule.end_at = Some(at(12, 0));
    let d = decide_one(&m, Some(&ended), Limits::default());
    assert_eq!(step_and_status(&d), ("schedule", MessageStatus::Skipped));
}

#[test]
fn opted_out_recipients_are_skipped_but_a_reply_within_their_conversation_goes() {
    let opted_out = RecipientFacts {
        consent: Consent::OptOut,
        ..facts()
    };
    let m = message("+94771234567", Some(opted_out.clone()));
    let d = decide_one(&m, Some(&campaign()), Limits::default());
    assert_eq!(step_and_status(&d), ("consent", MessageStatus::Skipped));
    // An operator answering a user who wrote an hour ago.
    let d = decide_one(&m, None, Limits::default());
    assert_eq!(
        step_and_status(&d),
        ("whatsapp_window", MessageStatus::Queued)
    );
    // The same user, silent for two days: no reply either.
    let silent = RecipientFacts {
        last_inbound_at: Some(at(12, 0) - Duration::days(2)),
        ..opted_out
    };
    let d = decide_one(
        &message("+94771234567", Some(silent)),
        None,
        Limits::default(),
    );
    assert_eq!(step_and_status(&d), ("consent", MessageStatus::Skipped));
}

#[test]
fn the_whatsapp_window_picks_free_text_the_approved_template_or_nothing() {
    let inside = message("+94771234567", Some(facts()));
    assert!(matches!(
        decide_one(&inside, Some(&campaign()), Limits::default()),
        Disposition::Queue {
            sent_as: SendAs::FreeText,
            ..
        }
    ));
    let mut outside = message(
        "+94771234567",
        Some(RecipientFacts {
            last_inbound_at: None,
            ..facts()
        }),
    );
    match decide_one(&outside, Some(&campaign()), Limits::default()) {
        Disposition::Queue {
            sent_as: SendAs::ApprovedTemplate,
            decision,
        } => assert!(decision.reason.contains("HX0123"), "{}", decision.reason),
        other => panic!("{other:?}"),
    }
    outside.content_sid = None;
    let d = decide_one(&outside, Some(&campaign()), Limits::default());
    assert_eq!(
        step_and_status(&d),
        ("whatsapp_window", MessageStatus::Skipped)
    );
}

#[test]
fn the_frequency_cap_counts_earlier_sends_and_this_rounds() {
    let limits = Limits {
        frequency_cap: Some(3),
        ..Limits::default()
    };
    let mut round = Round::default();
    let twice = RecipientFacts {
        sent_last_24_hours: 2,
        ..facts()
    };
    let first = message("+94771234567", Some(twice.clone()));
    let second = message("+94771234567", Some(twice));
    let d = decide(&first, Some(&campaign()), &limits, &mut round, at(12, 0));
    assert!(matches!(d, Disposition::Queue { .. }), "{d:?}");
    let d = decide(&second, Some(&campaign()), &limits, &mut round, at(12, 0));
    match d {
        Disposition::Skip(decision) => {
            assert_eq!(decision.step, "frequency_cap");
            assert!(decision.reason.contains("3 messages in the last 24 hours"));
        }
        other => panic!("{other:?}"),
    }
    // Another user is not affected, and replies are not capped.
    let other = message("+94771234568", Some(facts()));
    let d = decide(&other, Some(&campaign()), &limits, &mut round, at(12, 0));
    assert!(matches!(d, Disposition::Queue { .. }));
}

#[test]
fn quiet_hours_defer_in_the_recipients_own_zone() {
    let mut night = campaign();
    night.quiet_hours = Some(QuietHours {
        start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
        end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
    });
    // 17:00 UTC: 22:30 in Colombo (quiet), 17:00 in London (not quiet).
    let now = at(17, 0);
    let fresh = RecipientFacts {
        last_inbound_at: Some(now - Duration::hours(1)),
        ..facts()
    };
    let colombo = message("+94771234567", Some(fresh.clone()));
    match decide(
        &colombo,
        Some(&night),
        &Limits::default(),
        &mut Round::default(),
        now,
    ) {
        Disposition::Defer { until, decision } => {
            assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 25, 2, 30, 0).unwrap());
            assert_eq!(decision.step, "quiet_hours");
            assert!(
                decision.reason.contains("Asia/Colombo"),
                "{}",
                decision.reason
            );
        }
        other => panic!("{other:?}"),
    }
    let london = message("+447700900123", Some(fresh.clone()));
    let d = decide(
        &london,
        Some(&night),
        &Limits::default(),
        &mut Round::default(),
        now,
    );
    assert!(matches!(d, Disposition::Queue { .. }), "{d:?}");
    // A Colombo number whose user lives in London follows the user's own zone.
    let moved = RecipientFacts {
        timezone: Some(TimeZone::parse("Europe/London").unwrap()),
        ..fresh
    };
    let d = decide(
        &message("+94771234567", Some(moved)),
        Some(&night),
        &Limits::default(),
        &mut Round::default(),
        now,
    );
    assert!(matches!(d, Disposition::Queue { .. }), "{d:?}");
}

#[test]
fn the_conversation_limit_defers_new_business_conversations_only() {
    let limits = Limits {
        daily_conversation_limit: Some(2),
        ..Limits::default()
    };
    let earliest = at(12, 0) - Duration::hours(20);
    let mut round = Round::new(1, Some(earliest));
    let silent = RecipientFacts {
        last_inbound_at: None,
        ..facts()
    };
    let first = message("+94771234501", Some(silent.clone()));
    let d = decide(&first, Some(&campaign()), &limits, &mut round, at(12, 0));
    assert!(matches!(d, Disposition::Queue { .. }), "{d:?}");
    // The limit is reached: a second new conversation waits until the earliest ages out.
    let second = message("+94771234502", Some(silent.clone()));
    match decide(&second, Some(&campaign()), &limits, &mut round, at(12, 0)) {
        Disposition::Defer { until, decision } => {
            assert_eq!(until, earliest + Duration::hours(24));
            assert_eq!(decision.step, "conversation_limit");
        }
        other => panic!("{other:?}"),
    }
    // A user whose conversation is already open, or who wrote to us, costs nothing.
    let open = RecipientFacts {
        conversation_open: true,
        ..silent
    };
    let d = decide(
        &message("+94771234503", Some(open)),
        Some(&campaign()),
        &limits,
        &mut round,
        at(12, 0),
    );
    assert!(matches!(d, Disposition::Queue { .. }), "{d:?}");
    let d = decide(
        &message("+94771234504", Some(facts())),
        Some(&campaign()),
        &limits,
        &mut round,
        at(12, 0),
    );
    assert!(
        matches!(
            d,
            Disposition::Queue {
                sent_as: SendAs::FreeText,
                ..
            }
        ),
        "{d:?}"
    );
    // The first user again in this round: their conversation is open now.
    let again = message("+94771234501", Some(facts_without_window()));
    let d = decide(&again, Some(&campaign()), &limits, &mut round, at(12, 0));
    assert!(matches!(d, Disposition::Queue { .. }), "{d:?}");
}

fn facts_without_window() -> RecipientFacts {
    RecipientFacts {
        last_inbound_at: None,
        ..facts()
    }
}
