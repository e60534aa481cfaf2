//! Preemption: a one-shot timer that interrupts the calling thread after a budget of CPU or wall-clock
//! time and runs a handler there (a green-thread scheduler's tick); [`Preemption::rearm`] arms it again.
//! The handler runs in signal context; to run ordinary code (a scheduler), it injects a call
//! ([`crate::Context::inject_call`]). The thread must be attached ([`crate::thread::attach`]).
use std::ffi::c_void;
use std::marker::PhantomData;
use std::time::Duration;

use faultline_sys as sys;

use crate::error::{call, Result};
use crate::Context;

/// Which clock the budget runs on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The thread's CPU time (fires on the scheduler tick).
    CpuTime,
    /// Wall-clock time.
    Wall,
}

/// A preemption handler: runs in signal context in the preempted thread (see the crate's "Signal
/// context"); `ctx` is where the thread was.
pub type PreemptFn = fn(ctx: &mut Context, data: *mut c_void);

struct PreemptBox {
    f: PreemptFn,
    data: *mut c_void,
}

unsafe extern "C" fn trampoline(ctx: *mut sys::fl_context, data: *mut c_void) {
    let guard = crate::AbortOnUnwind;
    let b = &*(data as *const PreemptBox);
    (b.f)(Context::from_raw(ctx), b.data);
    std::mem::forget(guard);
}

/// Preemption of the calling thread; dropping it disables the timer (on the same thread).
pub struct Preemption {
    boxed: Box<PreemptBox>,
    clock: sys::fl_clock,
    _not_send: PhantomData<*mut ()>,
}

impl Preemption {
    /// Arms the timer again for `budget` (the timer is one-shot: each expiry runs the handler once).
    pub fn rearm(&self, budget: Duration) -> Result<()> {
        let raw = &*self.boxed as *const PreemptBox as *mut c_void;
        let ns = budget.as_nanos().min(u64::MAX as u128) as u64;
        call(|e| unsafe { sys::fl_preempt_enable(ns, trampoline, raw, self.clock, e) })
    }
}

/// Interrupts the calling thread once `budget` of `clock` time has passed and runs `handler(ctx, data)`
/// there.
///
/// # Safety
/// `handler` runs in signal context, and `data` must stay valid while preemption is enabled.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use faultline::preempt::{self, Clock};
/// static TICKS: AtomicUsize = AtomicUsize::new(0);
/// fn tick(_: &mut faultline::Context, _: *mut std::ffi::c_void) { TICKS.fetch_add(1, Ordering::Relaxed); }
/// let _me = faultline::thread::attach(None).unwrap();
/// let p = unsafe { preempt::enable(std::time::Duration::from_micros(200), Clock::Wall, tick, std::ptr::null_mut()) }.unwrap();
/// let t = std::time::Instant::now();
/// while TICKS.load(Ordering::Relaxed) == 0 && t.elapsed().as_secs() < 5 {}
/// drop(p);
/// assert!(TICKS.load(Ordering::Relaxed) > 0);
/// ```
pub unsafe fn enable(budget: Duration, clock: Clock, handler: PreemptFn, data: *mut c_void) -> Result<Preemption> {
    let b = Box::new(PreemptBox { f: handler, data });
    let raw = &*b as *const PreemptBox as *mut c_void;
    let c = match clock {
        Clock::CpuTime => sys::FL_CLOCK_CPU_TIME,
        Clock::Wall => sys::FL_CLOCK_WALL,
    };
    let ns = budget.as_nanos().min(u64::MAX as u128) as u64;
    call(|e| sys::fl_preempt_enable(ns, trampoline, raw, c, e))?;
    Ok(Preemption { boxed: b, clock: c, _not_send: PhantomData })
}

/// Disables the calling thread's preemption (what dropping [`Preemption`] does). Async-signal-safe.
pub fn disable() {
    unsafe { sys::fl_preempt_disable() }
}

impl Drop for Preemption {
    fn drop(&mut self) {
        disable();
    }
}

impl std::fmt::Debug for Preemption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preemption").finish_non_exhaustive()
    }
}
