//! [`User`], the person messages go to, and [`UserChanges`], what an import or an API call
//! wants to change about one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Consent, PhoneNumber, TimeZone, Topic};

/// Free-form user attributes (`{"city": "Colombo", "tier": "gold"}`).
pub type Attributes = Map<String, Value>;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// E.164 phone number; the user's key.
    pub phone: PhoneNumber,
    /// Display name, used as `{{name}}` in templates.
    pub name: Option<String>,
    /// WhatsApp id as Twilio reports it (`WaId`), usually the number without `+`.
    pub wa_id: Option<String>,
    /// Whether campaigns may reach the user.
    pub consent_state: Consent,
    /// Free-form attributes, available as `{{attributes.KEY}}`.
    pub attributes: Attributes,
    /// IANA time zone; quiet hours are counted in it.
    pub timezone: Option<TimeZone>,
    /// Preferred locale (`en`, `si-LK`…).
    pub locale: Option<String>,
    /// Topics the user is subscribed to (read-only here; change them through subscriptions).
    pub topics: Vec<Topic>,
    /// When the user last wrote to us: opens WhatsApp's 24-hour window.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// When the user was first stored.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

/// Changes to one user, keyed by phone. `None` means "leave as it is"; attributes are merged
/// key by key into the stored ones (later values win); topics are added as subscriptions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserChanges {
    /// New display name.
    pub name: Option<String>,
    /// New WhatsApp id.
    pub wa_id: Option<String>,
    /// New consent state (new users default to `OPT_IN`).
    pub consent_state: Option<Consent>,
    /// Attributes to merge in.
    pub attributes: Attributes,
    /// New time zone.
    pub timezone: Option<TimeZone>,
    /// New locale.
    pub locale: Option<String>,
    /// Topics to subscribe the user to.
    pub topics: Vec<Topic>,
}

/// A [`UserChanges`] whose phone is known: what the store writes.
#[derive(Debug, Clone, PartialEq)]
pub struct UserUpsert {
    /// Which user.
    pub phone: PhoneNumber,
    /// Everything else that changes.
    pub changes: UserChanges,
}

/// What writing one [`UserUpsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// The user did not exist and was created.
    Inserted,
    /// The user existed and was merged into.
    Updated,
}

/// A user's subscription to a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The subscriber.
    pub phone: PhoneNumber,
    /// The topic.
    pub topic: Topic,
    /// Since when.
    pub subscribed_at: DateTime<Utc>,
}

/// A topic with how many users follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// The topic.
    pub topic: Topic,
    /// How many users are subscribed.
    pub subscribers: u64,
}
