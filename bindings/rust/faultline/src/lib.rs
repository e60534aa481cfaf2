//! faultline for Rust: take charge of your own memory faults and traps.
//!
//! A binding of faultline's C interface (`faultline/faultline.h`, through `faultline-sys`): one
//! dispatcher per process for SIGSEGV, SIGBUS and the other traps ([`trap`]), the faulting thread's state
//! ([`Context`]), regions of memory with a policy — guard, zero-fill, provider, pager, barrier, write
//! tracking — over two backends ([`region`]), stop-the-world with root scanning, preemption and call
//! injection ([`thread`], [`world`], [`preempt`]), and a crash report that still ends in the original
//! signal ([`report`]). Nothing is implemented twice: every call goes to the C library.
//!
//! ```
//! use faultline::region::{Policy, Region, RegionOptions};
//! faultline::trap::install(faultline::trap::Signals::MEMORY).unwrap();
//! // A zero-fill region: pages appear, zeroed, on their first touch.
//! let heap = Region::reserve(16 * 4096, &RegionOptions::new(Policy::ZeroFill).name("heap")).unwrap();
//! let bytes = unsafe { std::slice::from_raw_parts_mut(heap.as_ptr(), heap.len()) };
//! bytes[5 * 4096] = 7;
//! assert_eq!(bytes[5 * 4096 + 1], 0);
//! assert!(heap.stats().faults >= 1);
//! ```
//!
//! # Signal context
//! Some callbacks run inside a signal handler, in the faulting thread: fault handlers
//! ([`trap::add_handler`]), barrier functions and provider fills on the signal backend
//! ([`region::RegionOptions::barrier`], [`region::RegionOptions::provider`]), preemption handlers
//! ([`preempt::enable`]) and forwarding functions ([`Context::heal`]). They are plain `fn` items with a
//! data pointer, and registering them is `unsafe`: the function must not allocate, lock a mutex the
//! interrupted code may hold, print, or panic (a panic there aborts the process), and it may only call
//! what is marked async-signal-safe here (the [`Context`] methods, atomics, `libc` calls that POSIX lists
//! as async-signal-safe). Nothing faultline's wrappers do on those paths allocates. Pager fills
//! ([`region::RegionOptions::pager`]) and remote pager fills run on ordinary threads and are closures.
//!
//! # Errors
//! Calls that can fail return [`Result`], whose [`Error`] carries the library's code and message ("region
//! 'heap': the size is zero"). No call panics on a library error.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod context;
mod error;
pub mod pager;
pub mod preempt;
pub mod region;
pub mod remote_pager;
pub mod report;
pub mod thread;
pub mod trap;
pub mod world;

pub use context::{reg_count, reg_name, Access, Context, EmulateStatus, ForwardFn};
pub use error::{Errc, Error, Result};

/// The C library's version ("0.1.0").
///
/// ```
/// assert!(faultline::version().starts_with("0."));
/// ```
pub fn version() -> &'static str {
    unsafe { std::ffi::CStr::from_ptr(faultline_sys::fl_version()) }.to_str().unwrap_or("")
}

/// Aborts the process if dropped while a panic unwinds: what keeps a panic from crossing a C frame on
/// the signal path (unwinding out of a callback the C library called is undefined behaviour).
pub(crate) struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            unsafe { libc::abort() };
        }
    }
}
