//! `messaging-desktop`: the desktop front end. An eframe/egui app that embeds the engine on a
//! local SQLite file (the same file format as the server's) and sends through the sandbox or
//! Twilio, started the core's way ([`messaging_core::startup`]).
//!
//! The shape follows rerun's viewer: all state in one struct ([`app::DesktopApp`]), one file
//! per panel ([`panels`]), and work sent to the engine's Tokio runtime with its answers applied
//! each frame ([`backend`]); panels never wait for the engine.

pub mod app;
pub mod backend;
pub mod panels;
