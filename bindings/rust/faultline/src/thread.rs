//! Threads: attaching a thread to faultline (its alternate signal stack, its place in the registry), and
//! blocking regions.
//!
//! ```
//! let a = faultline::thread::attach(None).unwrap();
//! assert!(faultline::thread::attached());
//! let n = faultline::thread::blocking(|| 40 + 2); // a stop does not wait for this thread meanwhile
//! assert_eq!(n, 42);
//! drop(a);
//! ```
use std::marker::PhantomData;

use faultline_sys as sys;

use crate::error::{call, Result};

/// The calling thread's attachment; dropping it detaches (attachments nest).
pub struct Attachment {
    _not_send: PhantomData<*mut ()>, // detach must run on the attached thread
}

/// Attaches the calling thread (an alternate signal stack of `altstack_size` bytes, or the default;
/// at least [`smallest_usable_altstack`]). The standard library gives each Rust thread an 8 KiB
/// alternate stack, too small for faultline's handler: while the thread is attached, faultline's own
/// replaces it, and it is put back at detach.
pub fn attach(altstack_size: Option<usize>) -> Result<Attachment> {
    call(|e| unsafe { sys::fl_thread_attach(altstack_size.unwrap_or(0), e) })?;
    Ok(Attachment { _not_send: PhantomData })
}

impl Drop for Attachment {
    fn drop(&mut self) {
        unsafe { sys::fl_thread_detach() }
    }
}

/// The smallest alternate signal stack faultline's handler runs on (`AT_MINSIGSTKSZ` + 32 KiB).
pub fn smallest_usable_altstack() -> usize {
    unsafe { sys::fl_smallest_usable_altstack() }
}

/// Whether the calling thread is attached.
pub fn attached() -> bool {
    unsafe { sys::fl_thread_attached() != 0 }
}

/// Runs `f` as a blocking region: the thread is about to block (a system call, a lock), so a
/// stop-the-world does not signal it; it parks itself if a stop is in progress when `f` returns.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            unsafe { sys::fl_blocking_leave() }
        }
    }
    unsafe { sys::fl_blocking_enter() };
    let _leave = Leave;
    f()
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment").finish()
    }
}
