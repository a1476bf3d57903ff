//! The process's memory allocator: mimalloc, configured to give freed memory back at once.
//!
//! Why mimalloc rather than glibc's malloc: the request path allocates many small,
//! short-lived objects (header maps, strings, futures), where glibc's malloc and free were about
//! a tenth of fcd's CPU per warm call (profile in docs/benchmarks.md); and after large payloads
//! glibc keeps each thread's arena grown to its peak. Built with `no_thp`, so the eagerly
//! committed arena does not turn into transparent huge pages (which tripled idle RSS).
//!
//! mimalloc returns freed pages to the system after a delay (1 s), but only when the thread
//! that freed them calls into it again past that delay — an idle server's threads make no such
//! call, so what the last burst of large payloads freed would stay resident (44 MiB after the
//! payload benchmark, against 25 MiB with the delay off; 16 MiB after start). [`configure`]
//! turns the delay off; the warm path's CPU per call did not measurably change (51–56 µs
//! either way).

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (`include/mimalloc.h`); the Rust
/// bindings do not name it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets the allocator's options; call first thing in `main`.
// With `fcd-runtime::sandbox`, the only `unsafe`: foreign calls taking plain integers.
#[allow(unsafe_code)]
pub(crate) fn configure() {
    // SAFETY: `mi_version` takes nothing and returns a constant (major * 10000 + minor * 100
    // + patch).
    let version = unsafe { libmimalloc_sys::mi_version() };
    // The option's number belongs to mimalloc 3.x; another major version is left as it is.
    if version / 10_000 == 3 {
        // SAFETY: options may be set at any time from any thread; the number is checked
        // against the linked version above.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
}

#[cfg(test)]
mod tests {
    /// The linked mimalloc is the major version whose option number is used, and that number
    /// is the purge delay (its default is 1000 ms in 3.3): a bump of the bindings that moves either
    /// fails here rather than setting some other option.
    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: as in `configure`.
        let version = unsafe { libmimalloc_sys::mi_version() };
        assert_eq!(version / 10_000, 3, "mimalloc {version}");
        // SAFETY: reading an option takes a plain integer.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DELAY) };
        assert!(delay == 1000 || delay == 0, "purge delay read as {delay}");
    }
}
