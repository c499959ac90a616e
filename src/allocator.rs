//! The process's memory allocator: the one place it is chosen, and how its free pages go back to
//! the kernel.
//!
//! isobar's work is allocation-heavy: a rebuild at 10,000 Ingresses makes and drops hundreds of
//! thousands of small strings, `Arc`s and encoded buffers. Against glibc's malloc, jemalloc took a
//! full rebuild to 0.84–0.88× the time, a one-Ingress change to 0.84–0.86×, and isobar's resident
//! memory at 10,000 Ingresses from 91 to 86 MiB (BENCHMARKS.md, "The allocator"). The isobar binary
//! and the benches that time production work name [`Global`] as their `#[global_allocator]`; the
//! library doesn't, so a bench can count allocations with an allocator of its own
//! (`benches/memory.rs`).

/// The allocator the isobar binary runs on.
pub use tikv_jemallocator::Jemalloc as Global;

/// The mallctl that purges every arena: 4096 is jemalloc's `MALLCTL_ARENAS_ALL`, the arena index
/// that names them all.
const PURGE_ALL_ARENAS: &std::ffi::CStr = c"arena.4096.purge";

/// Returns free memory to the kernel: jemalloc's dirty pages in every arena (which it would
/// otherwise give back only as later allocations let its decay run), and glibc's free chunks (what
/// C code allocates with `malloc`, and the whole process where [`Global`] isn't installed, as in
/// the test binaries). True when jemalloc took the purge.
pub fn release_free_pages() -> bool {
    // SAFETY: `arena.<i>.purge` takes and returns no value (null pointers, zero length); mallctl
    // may be called from any thread and takes jemalloc's own locks.
    let purged = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL_ARENAS.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    } == 0;
    glibc_trim();
    purged
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_trim() {
    // SAFETY: malloc_trim only walks and madvises glibc's own free lists; it takes the arena locks
    // as malloc does and may be called from any thread at any time.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jemalloc_takes_the_purge_of_every_arena() {
        // jemalloc's symbols are its own (prefixed), so it runs beside the test binary's system
        // allocator; its blocks freed between live ones leave dirty pages to purge.
        let mut live = Vec::new();
        for _ in 0..64 {
            // SAFETY: each block is freed once, by jemalloc, below or at the end of the test.
            let garbage = unsafe { tikv_jemalloc_sys::malloc(64 * 1024) };
            live.push(unsafe { tikv_jemalloc_sys::malloc(64) });
            unsafe { tikv_jemalloc_sys::free(garbage) };
        }
        assert!(release_free_pages(), "mallctl refused arena.4096.purge");
        for block in live {
            // SAFETY: allocated above by jemalloc and not freed yet.
            unsafe { tikv_jemalloc_sys::free(block) };
        }
    }
}
