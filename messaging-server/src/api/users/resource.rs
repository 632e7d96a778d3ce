//! The user, subscription and topic resources as the API shows and takes them.

use std::collections::BTreeMap;

use messaging_core::domain::{Consent, Subscription, TopicSummary, User};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};
use serde_json::{Value, json};

use crate::api::timestamp::Timestamp;

/// Whether campaigns may reach a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsentState {
    /// The user agreed (or sent START); campaigns may reach them.
    OptIn,
    /// The user declined (or sent STOP); campaigns skip them.
    OptOut,
}

impl From<Consent> for ConsentState {
    fn from(consent: Consent) -> Self {
        match consent {
            Consent::OptIn => Self::OptIn,
            Consent::OptOut => Self::OptOut,
        }
    }
}

/// A user.
#[derive(Debug, Clone, Object)]
pub struct UserBody {
    /// The user's key: the same as `phone`.
    pub id: String,
    /// The E.164 phone number, e.g. `+94771234567`.
    pub phone: String,
    /// The display name, `{{ name }}` in templates.
    pub name: Option<String>,
    /// The WhatsApp id Twilio reports (`WaId`), usually the number without `+`.
    pub wa_id: Option<String>,
    /// Whether campaigns may reach the user.
    pub consent_state: ConsentState,
    /// Free-form attributes, `{{ attributes.KEY }}` in templates.
    pub attributes: BTreeMap<String, Value>,
    /// The IANA time zone quiet hours are counted in, e.g. `Asia/Colombo`.
    pub timezone: Option<String>,
    /// The preferred locale, e.g. `si-LK`.
    pub locale: Option<String>,
    /// The topics the user is subscribed to (read-only: change them through
    /// `/users/{phone}/subscriptions`).
    pub topics: Vec<String>,
    /// When the user last wrote to us (it opens WhatsApp's 24-hour window).
    pub last_inbound_at: Option<Timestamp>,
    /// When the user was first stored.
    pub created_at: Timestamp,
    /// When the user last changed.
    pub updated_at: Timestamp,
}

impl From<User> for UserBody {
    fn from(u: User) -> Self {
        Self {
            id: u.phone.to_string(),
            phone: u.phone.to_string(),
            name: u.name,
            wa_id: u.wa_id,
            consent_state: u.consent_state.into(),
            attributes: u.attributes.into_iter().collect(),
            timezone: u.timezone.map(|tz| tz.name().to_owned()),
            locale: u.locale,
            topics: u.topics.iter().map(ToString::to_string).collect(),
            last_inbound_at: u.last_inbound_at.map(Into::into),
            created_at: u.created_at.into(),
            updated_at: u.updated_at.into(),
        }
    }
}

/// A user to create.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct UserInput {
    /// The E.164 phone number (`+` and country code; a `whatsapp:` prefix, spaces and dashes
    /// are accepted).
    #[oai(validator(max_length = 32))]
    pub phone: String,
    /// The display name.
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// The WhatsApp id.
    #[oai(validator(max_length = 32))]
    pub wa_id: Option<String>,
    /// `OPT_IN` (the default) or `OPT_OUT`.
    #[oai(validator(max_length = 16))]
    pub consent_state: Option<String>,
    /// Free-form attributes (null values are dropped).
    pub attributes: Option<BTreeMap<String, Value>>,
    /// An IANA time zone name.
    #[oai(validator(max_length = 64))]
    pub timezone: Option<String>,
    /// The preferred locale.
    #[oai(validator(max_length = 35))]
    pub locale: Option<String>,
}

impl Example for UserInput {
    fn example() -> Self {
        UserInput {
            phone: "+94771234567".into(),
            name: Some("Amaya".into()),
            wa_id: None,
            consent_state: Some("OPT_IN".into()),
            attributes: Some(example_attributes()),
            timezone: Some("Asia/Colombo".into()),
            locale: Some("si-LK".into()),
        }
    }
}

/// A user's whole new definition: fields left out are cleared, attributes are replaced.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct UserReplacement {
    /// The phone; optional, but when given it must be the one in the path.
    #[oai(validator(max_length = 32))]
    pub phone: Option<String>,
    /// The display name.
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// The WhatsApp id.
    #[oai(validator(max_length = 32))]
    pub wa_id: Option<String>,
    /// `OPT_IN` or `OPT_OUT`; when left out a stored user keeps theirs (a new one is
    /// `OPT_IN`), so a replacement never opts a user back in by omission.
    #[oai(validator(max_length = 16))]
    pub consent_state: Option<String>,
    /// All of the user's attributes (null values are dropped).
    pub attributes: Option<BTreeMap<String, Value>>,
    /// An IANA time zone name.
    #[oai(validator(max_length = 64))]
    pub timezone: Option<String>,
    /// The preferred locale.
    #[oai(validator(max_length = 35))]
    pub locale: Option<String>,
}

impl Example for UserReplacement {
    fn example() -> Self {
        UserReplacement {
            phone: None,
            name: Some("Amaya Perera".into()),
            wa_id: Some("94771234567".into()),
            consent_state: Some("OPT_IN".into()),
            attributes: Some(example_attributes()),
            timezone: Some("Asia/Colombo".into()),
            locale: Some("en".into()),
        }
    }
}

/// Changes to merge into a user: fields given replace the stored ones, attributes are merged
/// key by key; fields left out or null are kept.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct UserPatch {
    /// The phone; optional, but when given it must be the one in the path.
    #[oai(validator(max_length = 32))]
    pub phone: Option<String>,
    /// A new display name.
    #[oai(validator(max_length = 200))]
    pub name: Option<String>,
    /// A new WhatsApp id.
    #[oai(validator(max_length = 32))]
    pub wa_id: Option<String>,
    /// `OPT_IN` or `OPT_OUT`.
    #[oai(validator(max_length = 16))]
    pub consent_state: Option<String>,
    /// Attributes to set, key by key; others are kept (a null value changes nothing).
    pub attributes: Option<BTreeMap<String, Value>>,
    /// A new IANA time zone name.
    #[oai(validator(max_length = 64))]
    pub timezone: Option<String>,
    /// A new locale.
    #[oai(validator(max_length = 35))]
    pub locale: Option<String>,
}

impl Example for UserPatch {
    fn example() -> Self {
        UserPatch {
            phone: None,
            name: None,
            wa_id: None,
            consent_state: None,
            attributes: Some(BTreeMap::from([("tier".into(), json!("platinum"))])),
            timezone: None,
            locale: None,
        }
    }
}

fn example_attributes() -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("city".into(), json!("Colombo")),
        ("tier".into(), json!("gold")),
    ])
}

/// A page of users.
#[derive(Debug, Object)]
pub struct UserPage {
    /// The users, by phone.
    pub items: Vec<UserBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A user's subscription to a topic.
#[derive(Debug, Clone, Object)]
pub struct SubscriptionBody {
    /// The subscriber's phone.
    pub phone: String,
    /// The topic, upper-case.
    pub topic: String,
    /// Since when.
    pub subscribed_at: Timestamp,
}

impl From<Subscription> for SubscriptionBody {
    fn from(s: Subscription) -> Self {
        Self {
            phone: s.phone.to_string(),
            topic: s.topic.to_string(),
            subscribed_at: s.subscribed_at.into(),
        }
    }
}

/// A page of a user's subscriptions.
#[derive(Debug, Object)]
pub struct SubscriptionPage {
    /// The subscriptions, by topic.
    pub items: Vec<SubscriptionBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A topic with its subscriber count.
#[derive(Debug, Clone, Object)]
pub struct TopicBody {
    /// The topic, upper-case.
    pub topic: String,
    /// How many users are subscribed.
    pub subscribers: u64,
}

impl From<TopicSummary> for TopicBody {
    fn from(t: TopicSummary) -> Self {
        Self {
            topic: t.topic.to_string(),
            subscribers: t.subscribers,
        }
    }
}

/// A page of topics.
#[derive(Debug, Object)]
pub struct TopicPage {
    /// The topics, by name.
    pub items: Vec<TopicBody>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
