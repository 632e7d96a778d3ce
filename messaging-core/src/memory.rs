//! Process-wide memory tuning for programs built on the engine.
//!
//! An import hands batches of tens of thousands of rows from the parser to the writer. With
//! glibc's default, adaptive settings, each freed multi-megabyte batch buffer raises the
//! threshold under which later buffers come from the heap, and the heap then keeps its high
//! water mark: a million-row import peaked at about 115 MB instead of 80 MB. Fixed thresholds
//! keep large buffers in their own mappings, returned to the system when freed.

/// Allocations at least this large get their own mapping.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Applies the engine's allocator settings. Call once, first thing in `main`; it changes
/// nothing on platforms other than Linux with glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts glibc's tunables; it is safe to call at any time, and is
    // called here before the program starts other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
    }
}
