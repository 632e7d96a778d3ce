//! Storage ports.
pub mod sqlite;
