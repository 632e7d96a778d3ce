//! Paging parameters shared by every list: `limit` (1–1000, default 50), `cursor` (from the
//! previous page's `next_cursor`) or `offset`.

use messaging_core::store::PageRequest;

/// The most items one page of the API holds.
pub const MAX_LIMIT: u32 = 1_000;

/// The page a list request asks for.
pub fn request(limit: Option<u32>, cursor: Option<String>, offset: Option<u64>) -> PageRequest {
    PageRequest {
        limit: limit.unwrap_or(50).clamp(1, MAX_LIMIT),
        cursor: cursor.filter(|c| !c.is_empty()),
        offset,
    }
}
