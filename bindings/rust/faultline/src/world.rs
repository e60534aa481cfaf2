//! Stop-the-world: every other attached thread parked at a known point, its registers and stack
//! readable by the collector.
//!
//! ```
//! let _me = faultline::thread::attach(None).unwrap();
//! let stopped = faultline::world::stop(std::time::Duration::from_secs(5)).unwrap();
//! let mut words = 0;
//! stopped.scan_roots(|roots, _kind, _tid| words += roots.len()).unwrap();
//! drop(stopped); // the world resumes
//! assert!(!faultline::world::stopped());
//! ```
use std::ffi::c_void;
use std::os::raw::c_long;
use std::time::Duration;

use faultline_sys as sys;

use crate::error::{call, Result};

/// Where a run of root words comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// A stopped thread's general registers.
    Registers,
    /// Its vector registers.
    Simd,
    /// Its stack, from the stack pointer up.
    Stack,
    /// Its alternate signal stack.
    AltStack,
}

/// The world, stopped; dropping it resumes every thread ([`Stopped::resume`] reports a failure).
pub struct Stopped {
    resumed: bool,
}

/// Stops every other attached thread (waiting at most `timeout`, 0: 5 s).
pub fn stop(timeout: Duration) -> Result<Stopped> {
    let ms = timeout.as_millis().min(u32::MAX as u128) as u32;
    call(|e| unsafe { sys::fl_world_stop(ms, e) })?;
    Ok(Stopped { resumed: false })
}

/// Whether a stop is in effect.
pub fn stopped() -> bool {
    unsafe { sys::fl_world_stopped() != 0 }
}

unsafe extern "C" fn visit(begin: *const usize, end: *const usize, kind: sys::fl_root_kind, tid: c_long, data: *mut c_void) {
    let f = &mut *(data as *mut &mut dyn FnMut(&[usize], RootKind, i64));
    let roots = std::slice::from_raw_parts(begin, end.offset_from(begin).max(0) as usize);
    let k = match kind {
        sys::FL_ROOT_REGISTERS => RootKind::Registers,
        sys::FL_ROOT_SIMD => RootKind::Simd,
        sys::FL_ROOT_STACK => RootKind::Stack,
        _ => RootKind::AltStack,
    };
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(roots, k, tid as i64))).is_err() {
        libc::abort(); // a panic must not cross the C frames (the world is stopped: nothing else is safe)
    }
}

impl Stopped {
    /// Calls `f(words, kind, tid)` for each run of words that may hold pointers: each stopped thread's
    /// registers, vector registers, stack and alternate stack. `f` runs on this thread.
    pub fn scan_roots<F: FnMut(&[usize], RootKind, i64)>(&self, mut f: F) -> Result<()> {
        let mut dynf: &mut dyn FnMut(&[usize], RootKind, i64) = &mut f;
        let data = &mut dynf as *mut &mut dyn FnMut(&[usize], RootKind, i64) as *mut c_void;
        call(|e| unsafe { sys::fl_world_scan_roots(visit, data, e) })
    }
    /// Resumes the world now.
    pub fn resume(mut self) -> Result<()> {
        self.resumed = true;
        call(|e| unsafe { sys::fl_world_resume(e) })
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.resumed {
            let mut err = crate::error::new_err();
            unsafe { sys::fl_world_resume(&mut err) };
        }
    }
}

impl std::fmt::Debug for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopped").finish()
    }
}
