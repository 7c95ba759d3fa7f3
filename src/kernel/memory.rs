//! Gives memory back to the operating system when a burst of it has been freed.

/// Returns what the calling thread has freed to the operating system now.
///
/// For argon2, which borrows about 19 MiB for each key check: the allocator (mimalloc, the
/// binary's) keeps what a thread frees for that thread's own next allocations, and a thread of
/// tokio's blocking pool idles after the check, so without this the process kept those
/// megabytes resident from its first call on (about half its memory at rest). Under another
/// global allocator it only walks mimalloc's unused heap.
#[allow(unsafe_code)]
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers; it only walks and purges the calling thread's
    // mimalloc heap, which nothing else touches while it runs.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
