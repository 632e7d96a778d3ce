//! Streaming ingestion.
/// Formats of user files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserFileFormat {
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects, or one object per line.
    Json,
}
