//! The engine.
/// The engine.
pub struct Engine;
/// Engine errors.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {}
