//! # messaging-core
//!
//! The engine of the WhatsApp messaging platform. Everything a front end (the HTTP server, the
//! desktop app, your own program) needs lives here, behind one entry point: [`Engine`].
//!
//! The crate is organised as ports and adapters:
//!
//! - [`domain`]: the vocabulary (phone numbers, users, templates, campaigns, messages…). Values
//!   are parsed once at the edge and are valid everywhere after that.
//! - [`ingest`]: streaming import of users (CSV, JSON) and trigger events (JSONL) with a
//!   data-quality report.
//! - [`segment`]: the JSON rule language for audiences, parsed into an AST and compiled to
//!   parameterised SQL.
//! - [`template`]: message templates (`{{name}}`, `{{attributes.city}}`, `{{event.discount}}`).
//! - [`store`]: the storage ports ([`store::Store`] and its parts) and the SQLite adapter.
//! - [`orchestrate`]: the policy steps between the outbox and the provider.
//! - [`provider`]: the [`provider::Provider`] port with the Twilio and sandbox adapters.
//! - [`clock`]: the [`Clock`] port, so that time-based behaviour is testable.
//! - [`startup`]: how every front end starts the engine: database, provider, dispatcher.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use messaging_core::{Engine, ingest::{IngestSource, UserFileFormat}};
//! let engine = Engine::open("sqlite://messaging.db").await?;
//! let file = std::fs::File::open("samples/users.csv")?;
//! let source = IngestSource::File("users.csv".into());
//! let report = engine.ingest_users(file, UserFileFormat::Csv, source).await?.report;
//! println!("{} inserted, {} invalid", report.inserted, report.invalid);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod clock;
pub mod domain;
pub mod engine;
pub mod ingest;
pub mod memory;
pub mod orchestrate;
pub mod provider;
pub mod segment;
pub mod startup;
pub mod store;
pub mod template;

pub use clock::{Clock, SystemClock};
pub use engine::{Engine, EngineError};
