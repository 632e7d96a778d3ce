//! The policy steps every outbox message passes before it is sent. Each is a pure function
//! answering [`Verdict::Pass`], [`Verdict::Skip`] or [`Verdict::Defer`] with a reason an
//! operator understands; [`decision`] turns a verdict into the audit entry stored with the
//! message.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

use crate::domain::{AuditDecision, Consent, MessageStatus, QuietHours, Schedule, SendAs, User};

/// What one policy step decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing at this step stops the message.
    Pass,
    /// The message is not sent, for this reason.
    Skip(String),
    /// The message waits until `until`, for this reason.
    Defer {
        /// When it may go.
        until: DateTime<Utc>,
        /// Why it waits.
        reason: String,
    },
}

/// WhatsApp lets a business send free text only within 24 hours of the user's last message.
pub const WHATSAPP_WINDOW: Duration = Duration::hours(24);

/// Opted-out users get nothing.
pub fn consent(user: &User) -> Verdict {
    consent_state(user.consent_state)
}

/// Opted-out users get nothing ([`consent`] for a bare consent state).
pub fn consent_state(consent: Consent) -> Verdict {
    match consent {
        Consent::OptIn => Verdict::Pass,
        Consent::OptOut => {
            Verdict::Skip("the user has opted out (they opt in again by sending START)".into())
        }
    }
}

/// Before the schedule starts a message waits; after it ends it is not sent.
pub fn schedule(schedule: &Schedule, now: DateTime<Utc>) -> Verdict {
    match (schedule.start_at, schedule.end_at) {
        (Some(start), _) if now < start => Verdict::Defer {
            until: start,
            reason: format!("the campaign starts at {}", start.to_rfc3339()),
        },
        (_, Some(end)) if now >= end => {
            Verdict::Skip(format!("the campaign ended at {}", end.to_rfc3339()))
        }
        _ => Verdict::Pass,
    }
}

/// Free text within 24 hours of the user's last message; otherwise the approved template
/// when there is one; otherwise the message cannot be sent.
pub fn whatsapp_window(
    last_inbound_at: Option<DateTime<Utc>>,
    has_approved_template: bool,
    now: DateTime<Utc>,
) -> Result<SendAs, Verdict> {
    let open = last_inbound_at.is_some_and(|at| now - at < WHATSAPP_WINDOW);
    match (open, has_approved_template) {
        (true, _) => Ok(SendAs::FreeText),
        (false, true) => Ok(SendAs::ApprovedTemplate),
        (false, false) => Err(Verdict::Skip(
            "outside WhatsApp's 24-hour window and the template has no approved content_sid: \
             WhatsApp allows free text only within 24 hours of the user's last message, so \
             wait for them to write in, or set the template's content_sid to an approved \
             WhatsApp template"
                .into(),
        )),
    }
}

/// At most `cap` messages per user per rolling 24 hours, across campaigns.
pub fn frequency_cap(sent_in_last_24_hours: u64, cap: Option<u32>) -> Verdict {
    match cap {
        Some(cap) if sent_in_last_24_hours >= u64::from(cap) => Verdict::Skip(format!(
            "frequency cap: {sent_in_last_24_hours} messages in the last 24 hours (at most {cap})"
        )),
        _ => Verdict::Pass,
    }
}

/// No message during the campaign's quiet hours in the recipient's own time zone; one that
/// falls in them waits until they end there.
pub fn quiet_hours(quiet: Option<&QuietHours>, zone: Tz, now: DateTime<Utc>) -> Verdict {
    let Some(quiet) = quiet else {
        return Verdict::Pass;
    };
    let local = now.with_timezone(&zone);
    if !quiet.contains(local.time()) {
        return Verdict::Pass;
    }
    let mut date = local.date_naive();
    if quiet.end <= local.time() {
        date = date.succ_opt().unwrap_or(date);
    }
    let until = local_instant(zone, date.and_time(quiet.end));
    Verdict::Defer {
        until,
        reason: format!(
            "quiet hours {}–{} in {}; sending at {}",
            quiet.start.format("%H:%M"),
            quiet.end.format("%H:%M"),
            zone.name(),
            until.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z")
        ),
    }
}

/// The instant a local wall-clock time denotes in `zone`: the earlier one when clocks go
/// back, and the first valid minute after it when clocks jump over it.
fn local_instant(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut candidate = local;
    for _ in 0..180 {
        if let Some(instant) = zone.from_local_datetime(&candidate).earliest() {
            return instant.with_timezone(&Utc);
        }
        candidate += Duration::minutes(1);
    }
    Utc.from_utc_datetime(&local)
}

/// The audit entry for a verdict of `step` (`None` for [`Verdict::Pass`]).
pub fn decision(step: &str, verdict: &Verdict, now: DateTime<Utc>) -> Option<AuditDecision> {
    let (outcome, reason) = match verdict {
        Verdict::Pass => return None,
        Verdict::Skip(reason) => (MessageStatus::Skipped, reason.clone()),
        Verdict::Defer { reason, .. } => (MessageStatus::Deferred, reason.clone()),
    };
    Some(AuditDecision {
        step: step.to_owned(),
        outcome,
        reason,
        at: now,
    })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;
    use crate::domain::PhoneNumber;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn quiet(start: &str, end: &str) -> QuietHours {
        let time = |t| NaiveTime::parse_from_str(t, "%H:%M").unwrap();
        QuietHours {
            start: time(start),
            end: time(end),
        }
    }

    fn user(consent: Consent) -> User {
        User {
            phone: PhoneNumber::parse("+94771234567").unwrap(),
            name: None,
            wa_id: None,
            consent_state: consent,
            attributes: Default::default(),
            timezone: None,
            locale: None,
            topics: Vec::new(),
            last_inbound_at: None,
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn opted_out_users_are_skipped() {
        assert_eq!(consent(&user(Consent::OptIn)), Verdict::Pass);
        assert!(matches!(consent(&user(Consent::OptOut)), Verdict::Skip(_)));
    }

    #[test]
    fn quiet_hours_are_counted_in_the_recipients_zone() {
        let night = quiet("22:00", "07:00");
        // 17:00 UTC is 22:30 in Colombo (UTC+5:30): quiet there, until 07:00 local = 01:30 UTC.
        let now = at("2026-03-10T17:00:00Z");
        assert_eq!(
            quiet_hours(Some(&night), Tz::Asia__Colombo, now),
            Verdict::Defer {
                until: at("2026-03-11T01:30:00Z"),
                reason:
                    "quiet hours 22:00–07:00 in Asia/Colombo; sending at 2026-03-11 07:00 +0530"
                        .into(),
            }
        );
        // The same instant is 17:00 in London: not quiet.
        assert_eq!(
            quiet_hours(Some(&night), Tz::Europe__London, now),
            Verdict::Pass
        );
        // Early morning, before the end on the same day.
        let early = at("2026-03-11T00:00:00Z"); // 05:30 in Colombo
        let Verdict::Defer { until, .. } = quiet_hours(Some(&night), Tz::Asia__Colombo, early)
        else {
            panic!("expected a deferral")
        };
        assert_eq!(until, at("2026-03-11T01:30:00Z"));
        assert_eq!(quiet_hours(None, Tz::UTC, now), Verdict::Pass);
    }

    #[test]
    fn quiet_hours_ending_in_a_clock_change_gap_end_at_the_first_valid_minute() {
        // Europe/London skips 01:00–02:00 on 2026-03-29.
        let until_half_past_one = quiet("00:00", "01:30");
        let now = at("2026-03-29T00:30:00Z"); // 00:30 local, quiet
        let Verdict::Defer { until, .. } =
            quiet_hours(Some(&until_half_past_one), Tz::Europe__London, now)
        else {
            panic!("expected a deferral")
        };
        assert_eq!(until, at("2026-03-29T01:00:00Z"), "02:00 BST");
    }

    #[test]
    fn free_text_only_inside_the_24_hour_window() {
        let now = at("2026-03-10T12:00:00Z");
        let recent = Some(at("2026-03-09T12:00:01Z"));
        let stale = Some(at("2026-03-09T12:00:00Z"));
        assert_eq!(whatsapp_window(recent, false, now), Ok(SendAs::FreeText));
        assert_eq!(
            whatsapp_window(stale, true, now),
            Ok(SendAs::ApprovedTemplate)
        );
        assert!(whatsapp_window(stale, false, now).is_err());
        assert!(whatsapp_window(None, false, now).is_err());
    }

    #[test]
    fn the_frequency_cap_is_not_off_by_one() {
        assert_eq!(frequency_cap(2, Some(3)), Verdict::Pass);
        assert!(matches!(frequency_cap(3, Some(3)), Verdict::Skip(_)));
        assert_eq!(frequency_cap(1_000, None), Verdict::Pass);
    }

    #[test]
    fn schedules_defer_before_and_skip_after() {
        let window = Schedule {
            start_at: Some(at("2026-03-10T09:00:00Z")),
            end_at: Some(at("2026-03-10T18:00:00Z")),
        };
        assert!(matches!(
            schedule(&window, at("2026-03-10T08:00:00Z")),
            Verdict::Defer { until, .. } if until == at("2026-03-10T09:00:00Z")
        ));
        assert_eq!(schedule(&window, at("2026-03-10T12:00:00Z")), Verdict::Pass);
        assert!(matches!(
            schedule(&window, at("2026-03-10T18:00:00Z")),
            Verdict::Skip(_)
        ));
    }

    #[test]
    fn verdicts_become_audit_entries() {
        let now = at("2026-03-10T12:00:00Z");
        assert_eq!(decision("consent", &Verdict::Pass, now), None);
        let skip = decision("consent", &Verdict::Skip("opted out".into()), now).unwrap();
        assert_eq!(
            (skip.outcome, skip.step.as_str()),
            (MessageStatus::Skipped, "consent")
        );
        let defer = Verdict::Defer {
            until: now,
            reason: "quiet".into(),
        };
        assert_eq!(
            decision("quiet_hours", &defer, now).unwrap().outcome,
            MessageStatus::Deferred
        );
    }
}
