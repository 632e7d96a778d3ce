//! A fake of Twilio's Programmable Messaging API, for integration tests, load tests and demos.
//!
//! It serves `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` the way Twilio does
//! (Basic auth, form fields, Twilio's error codes and JSON), lists what it accepted at the
//! same path with `GET` (`To`/`From`/`DateSent` filters, pages, newest first) beside messages
//! users sent in ([`FakeTwilio::receive_inbound`]), can misbehave on purpose
//! (latency, 429s, 5xx, permanent errors for chosen recipients, connections dropped without
//! an answer), and reports each accepted message's statuses to its `StatusCallback`, signed
//! with `X-Twilio-Signature`. It shares no code with the platform it stands in for, so tests
//! check the platform against an independent implementation.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fake_twilio::StartError> {
//! use fake_twilio::{FakeConfig, FakeTwilio, Faults};
//!
//! let twilio = FakeTwilio::start(FakeConfig::default()).await?;
//! // Point the platform at it: TWILIO_API_BASE = twilio.base_url(), with
//! // twilio.account_sid() and twilio.auth_token() as credentials.
//! twilio
//!     .set_faults(Faults { rate_limited_share: 0.1, ..Faults::default() })
//!     .expect("a valid share");
//! // ... run the platform ...
//! for message in twilio.messages() {
//!     assert_eq!(message.times_accepted, 1, "{} was sent twice", message.to);
//! }
//! twilio.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Inside: `fake` owns the server and the [`FakeTwilio`] handle; `api` serves the Twilio
//! routes and `control` the `/_fake/` routes (messages, callbacks, inbound, stats, config,
//! reset); `outbound` validates a send request; `inbound` makes a message a user sent in;
//! `list` reads a list query and builds its page; `callbacks` plays each message's statuses;
//! `state` and `ledger` hold what they share. The binary (`cargo run -p fake_twilio --
//! --help`) wraps the same library.

mod api;
mod callbacks;
mod config;
mod connection;
mod control;
mod fake;
mod inbound;
mod ledger;
mod list;
mod outbound;
mod resource;
mod signature;
mod state;
mod twilio_error;

pub use config::{
    Behaviour, CallbackPlan, ConfigError, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FailureStatus,
    FakeConfig, Faults, ScriptedFault, default_permanent_errors,
};
pub use fake::{FakeTwilio, StartError};
pub use inbound::{InboundError, InboundMessage, InboundRequest};
pub use ledger::{AcceptedMessage, CallbackRecord, Counters, MessageStatus};
pub use signature::twilio_signature;
