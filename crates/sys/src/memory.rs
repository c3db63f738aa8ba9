//! Two glibc allocator knobs and one gauge. On other C libraries they do nothing (and the
//! gauge reads 0).

/// mallopt(M_MMAP_THRESHOLD): allocations of `bytes` and more get their own mapping, given
/// back to the system when freed. Process-wide. Setting it also stops glibc from raising the
/// threshold by itself after a large buffer is freed.
pub fn set_mmap_threshold(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes allocator tuning; any value is valid for this option.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

/// malloc_trim(0): returns free heap pages to the kernel (glibc keeps memory freed in the
/// middle of its heap unless asked).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free pages back to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bytes of heap in use (mallinfo2's `uordblks`), for tests that bound memory.
pub fn heap_in_use() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters and returns them by value.
        unsafe { libc::mallinfo2() }.uordblks
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_heap_gauge_sees_many_small_allocations() {
        // Small blocks: a big one would get its own mapping, which the gauge leaves out.
        let before = super::heap_in_use();
        let blocks: Vec<Vec<u8>> = (0..4096).map(|_| vec![1u8; 4096]).collect();
        let grown = super::heap_in_use().saturating_sub(before);
        assert!(
            grown >= 16 << 20 || cfg!(not(target_env = "gnu")),
            "{grown}"
        );
        drop(blocks);
        super::release_free_memory();
    }
}
