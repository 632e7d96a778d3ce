//! The domain vocabulary. Every type here is valid by construction: text from outside is
//! parsed into these types once, at the edge, and trusted everywhere after.

/// Serialises a parsed text type as its text, and deserialises it through its `parse`, so a
/// bad value in JSON is refused with the type's own reason.
macro_rules! text_serde {
    ($type:ty, $as_text:ident) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.$as_text())
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use text_serde;

mod audit;
mod campaign;
mod consent;
mod event;
mod id;
mod inbound;
mod message;
mod phone;
mod receipt;
mod segment;
mod template;
mod timezone;
mod topic;
mod user;

pub use audit::AuditDecision;
pub use campaign::{
    Campaign, CampaignCommand, CampaignDraft, CampaignStatus, CampaignTransitionError, QuietHours,
    Schedule, Trigger,
};
pub use consent::{Consent, ConsentError};
pub use event::TriggerEvent;
pub(crate) use event::kind as json_kind;
pub use id::{
    CampaignId, EventId, InboundId, IngestionId, MessageId, RunId, SegmentId, TemplateId,
};
pub use inbound::{Command, InboundMessage, ParsedCommand};
pub use message::{
    IllegalTransition, MAX_BODY_CHARS, Message, MessageStatus, SendAs, StatusChange,
};
pub use phone::{PhoneError, PhoneNumber};
pub use receipt::{DeliveryReceipt, unsubscribes_recipient};
pub use segment::{Segment, SegmentDraft};
pub use template::{Channel, Template, TemplateDraft};
pub use timezone::{TimeZone, TimeZoneError};
pub use topic::{Topic, TopicError};
pub use user::{
    AttributePatch, Attributes, Subscription, TopicSummary, UpsertOutcome, User, UserChanges,
    UserUpsert, check_short_text,
};

/// A problem with one field of an input record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The field's name (`phone`, `attributes`, `segment_rule`…); empty for the whole record.
    pub field: String,
    /// What is wrong, in words a person can act on.
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}
