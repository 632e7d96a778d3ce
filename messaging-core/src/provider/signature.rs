//! Twilio's request signature (`X-Twilio-Signature`), which proves a webhook came from Twilio.
//!
//! Twilio signs every webhook with HMAC-SHA1, keyed with the account's auth token, over the full
//! URL it called (scheme, host, port if any, path and query, exactly as configured) followed by
//! every POST parameter's name and value, sorted by name, with no separators; the header carries
//! the digest in base64. The server computes the same value and refuses the request (403) when
//! they differ.
//!
//! A name that occurs more than once is handled as Twilio's own helper libraries do
//! (twilio-python's and twilio-node's `RequestValidator`): its distinct values are signed in
//! sorted order, so the order in which a proxy re-encoded them does not matter.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// Computes the signature Twilio sends in `X-Twilio-Signature` for a form POST to `url` with
/// `params` (the decoded form fields, in any order).
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(signing_mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header_value` is the signature Twilio would send for this request. The comparison
/// takes the same time wherever the values differ, so the answer leaks nothing about the right
/// signature; a header that is not base64 at all is simply invalid.
pub fn is_valid_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header_value: &str,
) -> bool {
    let Ok(claimed) = BASE64.decode(header_value.trim()) else {
        return false;
    };
    signing_mac(auth_token, url, params)
        .verify_slice(&claimed)
        .is_ok()
}

/// The HMAC fed with the URL and the sorted parameters, ready to finalize or verify.
fn signing_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // Byte order, as Twilio's "Unix-style case-sensitive" sort; equal names by value, and a
    // pair repeated verbatim counts once, as in Twilio's helper libraries.
    sorted.sort_unstable();
    sorted.dedup();

    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// The worked example of Twilio's webhook-security page, fields given out of order.
    fn documented_example(caller: &str) -> Vec<(String, String)> {
        fields(&[
            ("To", "+18005551212"),
            ("Digits", "1234"),
            ("From", caller),
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
        ])
    }

    #[test]
    fn matches_twilios_documented_examples() {
        // The page has shown the same example with three caller numbers over the years; each
        // published signature is reproduced here, which pins the algorithm, not one vector.
        let cases = [
            ("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
            ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
            ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ];
        for (caller, expected) in cases {
            let params = documented_example(caller);
            assert_eq!(
                twilio_signature("12345", URL, &params),
                expected,
                "{caller}"
            );
            assert!(is_valid_twilio_signature("12345", URL, &params, expected));
        }
    }

    #[test]
    fn repeated_names_sign_their_distinct_values_in_order() {
        // twilio-python's and twilio-node's vector for a repeated parameter.
        let params = fields(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            twilio_signature("12345", URL, &params),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn no_parameters_signs_the_url_alone() {
        let signature = twilio_signature("12345", URL, &[]);
        assert!(is_valid_twilio_signature("12345", URL, &[], &signature));
        assert_ne!(
            signature,
            twilio_signature("12345", "https://mycompany.com/", &[])
        );
    }

    #[test]
    fn any_change_invalidates_the_signature() {
        let params = documented_example("+12349013030");
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        let mut tampered = params.clone();
        tampered[1].1 = "9999".into();
        let mut extra = params.clone();
        extra.push(("Body".into(), "hi".into()));

        assert!(!is_valid_twilio_signature("12345", URL, &tampered, good));
        assert!(!is_valid_twilio_signature("12345", URL, &extra, good));
        assert!(!is_valid_twilio_signature("54321", URL, &params, good));
        assert!(!is_valid_twilio_signature(
            "12345",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            good
        ));
        assert!(!is_valid_twilio_signature(
            "12345",
            URL,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ"
        ));
        assert!(!is_valid_twilio_signature("12345", URL, &params, ""));
        assert!(!is_valid_twilio_signature(
            "12345",
            URL,
            &params,
            "not base64 ✗"
        ));
    }

    #[test]
    fn surrounding_whitespace_in_the_header_is_ignored() {
        let params = documented_example("+12349013030");
        assert!(is_valid_twilio_signature(
            "12345",
            URL,
            &params,
            " 0/KCTR6DLpKmkAf8muzZqo1nDgQ=\r\n"
        ));
    }
}
