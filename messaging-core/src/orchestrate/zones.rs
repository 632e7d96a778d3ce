//! A recipient's time zone when they have none on record: derived from the country calling
//! code of their number. For countries spanning several zones, the zone of the most populous
//! region is used (America/New_York for +1, Europe/Moscow for +7…); unknown codes give UTC.

use chrono_tz::Tz;

use crate::domain::{PhoneNumber, TimeZone};

/// Country calling code → IANA zone, sorted by code for binary search.
const ZONES: &[(u16, Tz)] = &[
    (1, Tz::America__New_York),
    (7, Tz::Europe__Moscow),
    (20, Tz::Africa__Cairo),
    (27, Tz::Africa__Johannesburg),
    (30, Tz::Europe__Athens),
    (31, Tz::Europe__Amsterdam),
    (32, Tz::Europe__Brussels),
    (33, Tz::Europe__Paris),
    (34, Tz::Europe__Madrid),
    (36, Tz::Europe__Budapest),
    (39, Tz::Europe__Rome),
    (40, Tz::Europe__Bucharest),
    (41, Tz::Europe__Zurich),
    (43, Tz::Europe__Vienna),
    (44, Tz::Europe__London),
    (45, Tz::Europe__Copenhagen),
    (46, Tz::Europe__Stockholm),
    (47, Tz::Europe__Oslo),
    (48, Tz::Europe__Warsaw),
    (49, Tz::Europe__Berlin),
    (51, Tz::America__Lima),
    (52, Tz::America__Mexico_City),
    (53, Tz::America__Havana),
    (54, Tz::America__Argentina__Buenos_Aires),
    (55, Tz::America__Sao_Paulo),
    (56, Tz::America__Santiago),
    (57, Tz::America__Bogota),
    (58, Tz::America__Caracas),
    (60, Tz::Asia__Kuala_Lumpur),
    (61, Tz::Australia__Sydney),
    (62, Tz::Asia__Jakarta),
    (63, Tz::Asia__Manila),
    (64, Tz::Pacific__Auckland),
    (65, Tz::Asia__Singapore),
    (66, Tz::Asia__Bangkok),
    (81, Tz::Asia__Tokyo),
    (82, Tz::Asia__Seoul),
    (84, Tz::Asia__Ho_Chi_Minh),
    (86, Tz::Asia__Shanghai),
    (90, Tz::Europe__Istanbul),
    (91, Tz::Asia__Kolkata),
    (92, Tz::Asia__Karachi),
    (93, Tz::Asia__Kabul),
    (94, Tz::Asia__Colombo),
    (95, Tz::Asia__Yangon),
    (98, Tz::Asia__Tehran),
    (212, Tz::Africa__Casablanca),
    (213, Tz::Africa__Algiers),
    (216, Tz::Africa__Tunis),
    (233, Tz::Africa__Accra),
    (234, Tz::Africa__Lagos),
    (249, Tz::Africa__Khartoum),
    (251, Tz::Africa__Addis_Ababa),
    (254, Tz::Africa__Nairobi),
    (255, Tz::Africa__Dar_es_Salaam),
    (256, Tz::Africa__Kampala),
    (260, Tz::Africa__Lusaka),
    (263, Tz::Africa__Harare),
    (351, Tz::Europe__Lisbon),
    (353, Tz::Europe__Dublin),
    (358, Tz::Europe__Helsinki),
    (380, Tz::Europe__Kyiv),
    (420, Tz::Europe__Prague),
    (852, Tz::Asia__Hong_Kong),
    (880, Tz::Asia__Dhaka),
    (886, Tz::Asia__Taipei),
    (960, Tz::Indian__Maldives),
    (961, Tz::Asia__Beirut),
    (962, Tz::Asia__Amman),
    (964, Tz::Asia__Baghdad),
    (965, Tz::Asia__Kuwait),
    (966, Tz::Asia__Riyadh),
    (971, Tz::Asia__Dubai),
    (972, Tz::Asia__Jerusalem),
    (974, Tz::Asia__Qatar),
    (977, Tz::Asia__Kathmandu),
];

/// The zone a number's country calling code suggests, if it is one this table knows.
pub fn zone_of_number(phone: &PhoneNumber) -> Option<Tz> {
    let code = phone.calling_code();
    ZONES
        .binary_search_by_key(&code, |(c, _)| *c)
        .ok()
        .map(|index| ZONES[index].1)
}

/// The zone quiet hours are counted in for a recipient: their own `timezone`, else their
/// number's country's, else UTC.
pub fn recipient_zone(timezone: Option<TimeZone>, phone: &PhoneNumber) -> Tz {
    timezone
        .map(|tz| tz.tz())
        .or_else(|| zone_of_number(phone))
        .unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_for_binary_search() {
        assert!(ZONES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn numbers_map_to_their_countrys_zone() {
        let zone = |text: &str| zone_of_number(&PhoneNumber::parse(text).unwrap());
        assert_eq!(zone("+94771234567"), Some(Tz::Asia__Colombo));
        assert_eq!(zone("+447700900123"), Some(Tz::Europe__London));
        assert_eq!(zone("+14155552671"), Some(Tz::America__New_York));
        assert_eq!(
            zone("+2302345678"),
            None,
            "Mauritius is not in the table: UTC then"
        );
    }

    #[test]
    fn the_users_own_zone_comes_first_then_the_numbers_then_utc() {
        let colombo = PhoneNumber::parse("+94771234567").unwrap();
        let mauritius = PhoneNumber::parse("+2302345678").unwrap();
        let tokyo = TimeZone::parse("Asia/Tokyo").unwrap();
        assert_eq!(recipient_zone(Some(tokyo), &colombo), Tz::Asia__Tokyo);
        assert_eq!(recipient_zone(None, &colombo), Tz::Asia__Colombo);
        assert_eq!(recipient_zone(None, &mauritius), Tz::UTC);
    }
}
