//! The trap dispatcher: one per process, for SIGSEGV, SIGBUS and the other traps, chaining faithfully to
//! the previous action.
//!
//! ```
//! use faultline::trap::{self, Signals};
//! trap::install(Signals::MEMORY).unwrap();
//! assert!(trap::installed());
//! assert!(!trap::in_handler());
//! ```
use std::ffi::c_void;
use std::ops::BitOr;

use faultline_sys as sys;

use crate::error::{call, Result};
use crate::Context;

/// A set of the signals faultline takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Signals(pub(crate) u32);

impl Signals {
    /// SIGSEGV.
    pub const SEGV: Signals = Signals(sys::FL_TRAP_SEGV);
    /// SIGBUS.
    pub const BUS: Signals = Signals(sys::FL_TRAP_BUS);
    /// SIGILL.
    pub const ILL: Signals = Signals(sys::FL_TRAP_ILL);
    /// SIGFPE.
    pub const FPE: Signals = Signals(sys::FL_TRAP_FPE);
    /// SIGTRAP.
    pub const TRAP: Signals = Signals(sys::FL_TRAP_TRAP);
    /// SIGABRT: abort(), failed asserts; reported, then the previous action.
    pub const ABRT: Signals = Signals(sys::FL_TRAP_ABRT);
    /// SIGSEGV and SIGBUS.
    pub const MEMORY: Signals = Signals(sys::FL_TRAP_MEMORY);
}

impl BitOr for Signals {
    type Output = Signals;
    fn bitor(self, o: Signals) -> Signals {
        Signals(self.0 | o.0)
    }
}

/// What a handler did with a fault.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Not this handler's: the next handler, then the previous action, gets it.
    Declined,
    /// Handled: the thread resumes with the (possibly changed) context.
    Resolved,
}

/// Takes `signals` and attaches the calling thread. Idempotent.
pub fn install(signals: Signals) -> Result<()> {
    call(|e| unsafe { sys::fl_install(signals.0, e) })
}

/// Hands faultline the faults nobody resolves, instead of Rust's standard library: std installs a
/// SIGSEGV and SIGBUS handler at startup (for its "has overflowed its stack" message), and faultline,
/// chaining faithfully, would call it for every fault its handlers decline; that handler then resets
/// the signal to its default, so the process dies without faultline's report. This resets SIGSEGV and
/// SIGBUS to their default action before faultline installs, so that faultline's own stack-overflow
/// detection and crash report ([`crate::report`]) end such faults. Call it before [`install`] (and
/// before anything that installs, like [`crate::report::enable`] or a region); [`crate::Errc::Busy`]
/// once faultline is installed. It replaces whatever handler the program has for those two signals:
/// leave it out when something else (a runtime) should see them after faultline.
///
/// ```
/// # let c = unsafe { libc::fork() };
/// # if c == 0 {
/// faultline::trap::take_over_from_std().unwrap();
/// faultline::trap::install(faultline::trap::Signals::MEMORY).unwrap();
/// # unsafe { libc::_exit(0) } }
/// # let mut st = 0; unsafe { libc::waitpid(c, &mut st, 0) }; assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0);
/// ```
pub fn take_over_from_std() -> Result<()> {
    if installed() {
        return Err(crate::Error::new(
            crate::Errc::Busy,
            "take_over_from_std: faultline is installed already; call it before install()",
        ));
    }
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    Ok(())
}

/// Restores the previous actions. [`crate::Errc::Overridden`] if someone installed over faultline,
/// unless `force`.
pub fn uninstall(force: bool) -> Result<()> {
    call(|e| unsafe { sys::fl_uninstall(force as i32, e) })
}

/// Whether faultline holds at least one signal. Async-signal-safe.
pub fn installed() -> bool {
    unsafe { sys::fl_installed() != 0 }
}

/// Re-installs faultline over newcomers, chaining to them.
pub fn reassert() -> Result<()> {
    call(|e| unsafe { sys::fl_reassert(e) })
}

/// Call before leaving a handler by longjmp-like means. Async-signal-safe.
pub fn leave_handler() {
    unsafe { sys::fl_leave_handler() }
}

/// Whether the calling thread runs inside faultline's handler. Async-signal-safe.
pub fn in_handler() -> bool {
    unsafe { sys::fl_in_handler() != 0 }
}

/// Per-signal counters (see [`counters`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Faults the dispatcher saw.
    pub seen: u64,
    /// Resolved by a handler (`seen - passed`).
    pub resolved: u64,
    /// Passed on to the previous action.
    pub passed: u64,
    /// Stack overflows recognised.
    pub stack_overflows: u64,
}

/// The dispatcher's counters for signal `sig`. Async-signal-safe.
///
/// ```
/// let c = faultline::trap::counters(libc::SIGSEGV);
/// assert_eq!(c.resolved + c.passed, c.seen);
/// ```
pub fn counters(sig: i32) -> Counters {
    let c = unsafe { sys::fl_trap_counters(sig) };
    Counters { seen: c.seen, resolved: c.resolved, passed: c.passed, stack_overflows: c.stack_overflows }
}

/// A fault handler: runs in signal context, in the faulting thread (see the crate's "Signal context").
pub type HandlerFn = fn(ctx: &mut Context, data: *mut c_void) -> Disposition;

struct HandlerBox {
    f: HandlerFn,
    data: *mut c_void,
}

/// A registered handler; dropping it removes the handler (after any call of it in progress).
pub struct Handler {
    id: sys::fl_handler_id,
    boxed: Option<Box<HandlerBox>>,
}

// The box is only read by the handler calls, which end before removal returns.
unsafe impl Send for Handler {}
unsafe impl Sync for Handler {}

impl Handler {
    /// Removes the handler now, reporting a failure (drop ignores it).
    pub fn remove(mut self) -> Result<()> {
        self.remove_now()
    }
    fn remove_now(&mut self) -> Result<()> {
        let boxed = match self.boxed.take() {
            Some(b) => b,
            None => return Ok(()),
        };
        let r = call(|e| unsafe { sys::fl_remove_handler(self.id, e) });
        if r.is_err() {
            std::mem::forget(boxed); // a call may still use it: leak it rather than free it under that call
        }
        r
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.remove_now();
    }
}

unsafe extern "C" fn handler_trampoline(ctx: *mut sys::fl_context, data: *mut c_void) -> sys::fl_disposition {
    let guard = crate::AbortOnUnwind;
    let b = &*(data as *const HandlerBox);
    let d = (b.f)(Context::from_raw(ctx), b.data);
    std::mem::forget(guard);
    match d {
        Disposition::Resolved => sys::FL_RESOLVED,
        Disposition::Declined => sys::FL_DECLINED,
    }
}

/// Registers `f` (with `data`) for the faults of `signals`; handlers run newest first, and a declined
/// fault goes on to the next one, then to the previous action.
///
/// # Safety
/// `f` runs in signal context (see the crate's "Signal context"), and `data` must stay valid while the
/// handler is registered.
///
/// ```
/// use faultline::trap::{self, Disposition, Signals};
/// use faultline::Context;
/// fn mine(ctx: &mut Context, _: *mut std::ffi::c_void) -> Disposition {
///     if ctx.address() == 0x10 { Disposition::Resolved } else { Disposition::Declined }
/// }
/// trap::install(Signals::MEMORY).unwrap();
/// let h = unsafe { trap::add_handler(mine, std::ptr::null_mut(), Signals::SEGV) }.unwrap();
/// drop(h); // removed
/// ```
pub unsafe fn add_handler(f: HandlerFn, data: *mut c_void, signals: Signals) -> Result<Handler> {
    let boxed = Box::new(HandlerBox { f, data });
    let mut id = sys::fl_handler_id::default();
    let raw = &*boxed as *const HandlerBox as *mut c_void;
    call(|e| sys::fl_add_handler(handler_trampoline, raw, signals.0, &mut id, e))?;
    Ok(Handler { id, boxed: Some(boxed) })
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").field("id", &self.id).finish()
    }
}
