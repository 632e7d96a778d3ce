//! Typed identifiers: a template id can never be passed where a campaign id is expected.

/// Declares a UUID v7 identifier type (time-ordered, so ids sort by creation).
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A new, unique, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Identifies a [`Template`](super::Template).
    TemplateId
);
uuid_id!(
    /// Identifies a [`Segment`](super::Segment).
    SegmentId
);
uuid_id!(
    /// Identifies a [`Campaign`](super::Campaign).
    CampaignId
);
uuid_id!(
    /// Identifies one run of a campaign (a launch, or one matching event).
    RunId
);
uuid_id!(
    /// Identifies an outbound [`Message`](super::Message).
    MessageId
);
uuid_id!(
    /// Identifies a recorded [`TriggerEvent`](super::TriggerEvent).
    EventId
);
uuid_id!(
    /// Identifies a stored [`InboundMessage`](super::InboundMessage).
    InboundId
);
uuid_id!(
    /// Identifies the record of one ingestion (an import of users or events).
    IngestionId
);
