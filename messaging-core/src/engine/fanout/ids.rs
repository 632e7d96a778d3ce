//! Message ids for a fan-out, made in bulk.
//!
//! They are UUID v7 like [`MessageId::new`]'s: the creation time in milliseconds, then 74
//! bits that count up from a random start within a millisecond, so ids sort in the order they
//! were made and the id index is only ever appended to. `MessageId::new` asks the operating
//! system for fresh random bits for every id; for a million recipients that was a quarter of
//! the time spent rendering, so a fan-out takes one random start per millisecond instead.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::domain::MessageId;

/// Bits after the timestamp: 12 (`rand_a`) before the variant, 62 (`rand_b`) after it.
const RAND_B_BITS: u32 = 62;

/// Hands out ids for the messages of one fan-out, in creation order.
#[derive(Debug, Default)]
pub(super) struct MessageIds {
    /// The millisecond of the last ids handed out and the counter value of the next one.
    next: Mutex<(u64, u128)>,
}

impl MessageIds {
    /// `count` new ids, each greater than every id this generator made before.
    pub(super) fn take(&self, count: usize) -> impl Iterator<Item = MessageId> + use<> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        // A clock that steps back keeps the last millisecond, so the order holds.
        if now > next.0 {
            // Below half of the 74-bit range, so counting up never wraps.
            *next = (now, fastrand::u128(..) >> (128 - 73));
        }
        let (millis, start) = *next;
        next.1 += count as u128;
        (start..start + count as u128).map(move |counter| MessageId(v7(millis, counter)))
    }
}

/// The UUID v7 of `millis` (48 bits) and `counter` (74 bits) around the version and variant.
fn v7(millis: u64, counter: u128) -> Uuid {
    let millis = u128::from(millis) & ((1 << 48) - 1);
    let rand_a = (counter >> RAND_B_BITS) & 0xfff;
    let rand_b = counter & ((1 << RAND_B_BITS) - 1);
    Uuid::from_u128(millis << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_increase_in_the_order_they_are_made() {
        let ids = MessageIds::default();
        let first: Vec<MessageId> = ids.take(1_000).collect();
        let second: Vec<MessageId> = ids.take(1_000).collect();
        let all: Vec<MessageId> = first.into_iter().chain(second).collect();
        for id in &all {
            assert_eq!(id.0.get_version_num(), 7, "{id}");
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        assert!(all.windows(2).all(|pair| pair[0] < pair[1]));
        // Their text form parses back as the same id, as the API hands it out.
        assert_eq!(all[0].to_string().parse::<MessageId>().unwrap(), all[0]);
    }

    #[test]
    fn the_timestamp_is_the_creation_time() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let id = MessageIds::default().take(1).next().unwrap();
        let (seconds, nanos) = id.0.get_timestamp().unwrap().to_unix();
        let made = seconds * 1_000 + u64::from(nanos) / 1_000_000;
        assert!(made >= before.as_millis() as u64 && made <= before.as_millis() as u64 + 1_000);
    }

    #[test]
    fn counting_carries_from_rand_b_into_rand_a() {
        let below = v7(1, (1 << RAND_B_BITS) - 1);
        let above = v7(1, 1 << RAND_B_BITS);
        assert!(below < above);
        assert_eq!(above.get_version_num(), 7);
        assert_eq!(above.get_variant(), uuid::Variant::RFC4122);
    }
}
