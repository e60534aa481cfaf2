//! The faulting thread's state, as a fault handler sees it; emulation and healing.
use std::ffi::{c_void, CStr};

use faultline_sys as sys;

/// The kind of access that faulted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Not known (the kernel did not say and the instruction was not decoded).
    Unknown,
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Execute,
}

impl Access {
    pub(crate) fn from_raw(a: sys::fl_access) -> Access {
        match a {
            sys::FL_ACCESS_READ => Access::Read,
            sys::FL_ACCESS_WRITE => Access::Write,
            sys::FL_ACCESS_EXECUTE => Access::Execute,
            _ => Access::Unknown,
        }
    }
    pub(crate) fn to_raw(self) -> sys::fl_access {
        match self {
            Access::Unknown => sys::FL_ACCESS_UNKNOWN,
            Access::Read => sys::FL_ACCESS_READ,
            Access::Write => sys::FL_ACCESS_WRITE,
            Access::Execute => sys::FL_ACCESS_EXECUTE,
        }
    }
}

/// Why [`Context::emulate`] or [`Context::heal`] did not do what was asked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EmulateStatus {
    /// Done: the context now continues after (emulate) or re-executes (heal) the instruction.
    Ok,
    /// The instruction's bytes could not be read.
    UnreadablePc,
    /// They do not decode.
    Undecodable,
    /// The instruction does not access memory through an operand faultline can redirect.
    NoMemoryOperand,
    /// Not in the emulated set.
    Unsupported,
    /// An atomic instruction: declined rather than emulated non-atomically.
    NotAtomic,
    /// VEX/EVEX encoded (x86-64).
    Vex,
    /// An FS/GS segment override (x86-64).
    Segment,
    /// The redirected access could not be made.
    AccessFailed,
    /// heal: no register provably holds a pointer into the moved object.
    NotAPointer,
    /// heal: the forwarding function does not know the faulting address.
    NotForwarded,
    /// A status this binding does not know.
    Other(i32),
}

impl EmulateStatus {
    fn from_raw(s: sys::fl_emulate_status) -> EmulateStatus {
        match s {
            sys::FL_EMULATE_OK => EmulateStatus::Ok,
            sys::FL_EMULATE_UNREADABLE_PC => EmulateStatus::UnreadablePc,
            sys::FL_EMULATE_UNDECODABLE => EmulateStatus::Undecodable,
            sys::FL_EMULATE_NO_MEMORY_OPERAND => EmulateStatus::NoMemoryOperand,
            sys::FL_EMULATE_UNSUPPORTED => EmulateStatus::Unsupported,
            sys::FL_EMULATE_NOT_ATOMIC => EmulateStatus::NotAtomic,
            sys::FL_EMULATE_VEX => EmulateStatus::Vex,
            sys::FL_EMULATE_SEGMENT => EmulateStatus::Segment,
            sys::FL_EMULATE_ACCESS_FAILED => EmulateStatus::AccessFailed,
            sys::FL_EMULATE_NOT_A_POINTER => EmulateStatus::NotAPointer,
            sys::FL_EMULATE_NOT_FORWARDED => EmulateStatus::NotForwarded,
            other => EmulateStatus::Other(other),
        }
    }
    fn to_raw(self) -> sys::fl_emulate_status {
        match self {
            EmulateStatus::Ok => sys::FL_EMULATE_OK,
            EmulateStatus::UnreadablePc => sys::FL_EMULATE_UNREADABLE_PC,
            EmulateStatus::Undecodable => sys::FL_EMULATE_UNDECODABLE,
            EmulateStatus::NoMemoryOperand => sys::FL_EMULATE_NO_MEMORY_OPERAND,
            EmulateStatus::Unsupported => sys::FL_EMULATE_UNSUPPORTED,
            EmulateStatus::NotAtomic => sys::FL_EMULATE_NOT_ATOMIC,
            EmulateStatus::Vex => sys::FL_EMULATE_VEX,
            EmulateStatus::Segment => sys::FL_EMULATE_SEGMENT,
            EmulateStatus::AccessFailed => sys::FL_EMULATE_ACCESS_FAILED,
            EmulateStatus::NotAPointer => sys::FL_EMULATE_NOT_A_POINTER,
            EmulateStatus::NotForwarded => sys::FL_EMULATE_NOT_FORWARDED,
            EmulateStatus::Other(s) => s,
        }
    }
    /// The library's name for it ("ok", "not_forwarded", ...). Async-signal-safe.
    ///
    /// ```
    /// assert_eq!(faultline::EmulateStatus::NotForwarded.name(), "not_forwarded");
    /// ```
    pub fn name(self) -> &'static str {
        unsafe { CStr::from_ptr(sys::fl_emulate_status_name(self.to_raw())) }.to_str().unwrap_or("?")
    }
}

/// A forwarding function for [`Context::heal`]: the new address of whatever lay at `old_address`, or 0
/// when it has not moved. Runs in signal context (see the crate's "Signal context").
pub type ForwardFn = fn(old_address: usize, data: *mut c_void) -> usize;

/// The faulting thread's state during a handler call: registers, the fault's address and kind, the PC
/// to resume at. Only ever seen as `&mut Context` inside a callback faultline calls; every method is
/// async-signal-safe and allocates nothing.
#[repr(C)]
pub struct Context {
    _opaque: [u8; 0],
}

impl Context {
    /// # Safety
    /// `raw` must be the context of a handler call in progress.
    pub(crate) unsafe fn from_raw<'a>(raw: *mut sys::fl_context) -> &'a mut Context {
        &mut *(raw as *mut Context)
    }
    fn raw(&self) -> *const sys::fl_context {
        self as *const Context as *const sys::fl_context
    }
    fn raw_mut(&mut self) -> *mut sys::fl_context {
        self as *mut Context as *mut sys::fl_context
    }
    /// The signal (libc::SIGSEGV, ...).
    pub fn signal(&self) -> i32 {
        unsafe { sys::fl_context_signal(self.raw()) }
    }
    /// The signal's si_code (SEGV_ACCERR, ...).
    pub fn code(&self) -> i32 {
        unsafe { sys::fl_context_code(self.raw()) }
    }
    /// The faulting address.
    pub fn address(&self) -> usize {
        unsafe { sys::fl_context_address(self.raw()) }
    }
    /// The kind of access.
    pub fn access(&self) -> Access {
        Access::from_raw(unsafe { sys::fl_context_access(self.raw()) })
    }
    /// The faulting instruction's address.
    pub fn pc(&self) -> usize {
        unsafe { sys::fl_context_pc(self.raw()) }
    }
    /// The stack pointer.
    pub fn sp(&self) -> usize {
        unsafe { sys::fl_context_sp(self.raw()) }
    }
    /// General register `index` (see [`reg_name`]); 0 out of range.
    pub fn reg(&self, index: u32) -> u64 {
        unsafe { sys::fl_context_reg(self.raw(), index) }
    }
    /// Sets general register `index` for when the handler returns; false for a register it cannot set.
    pub fn set_reg(&mut self, index: u32, value: u64) -> bool {
        unsafe { sys::fl_context_set_reg(self.raw_mut(), index, value) == 0 }
    }
    /// Sets where the thread resumes.
    pub fn set_pc(&mut self, pc: usize) {
        unsafe { sys::fl_context_set_pc(self.raw_mut(), pc) }
    }
    /// 16-byte vector register `index` (xmm0-15, v0-31), or None.
    pub fn vector_reg(&self, index: u32) -> Option<[u8; 16]> {
        let mut v = [0u8; 16];
        (unsafe { sys::fl_context_vector_reg(self.raw(), index, v.as_mut_ptr()) } == 0).then(|| v)
    }
    /// Sets vector register `index`; false for one it cannot set.
    pub fn set_vector_reg(&mut self, index: u32, value: &[u8; 16]) -> bool {
        unsafe { sys::fl_context_set_vector_reg(self.raw_mut(), index, value.as_ptr()) == 0 }
    }
    /// The `ucontext_t*`, for what this interface does not cover.
    pub fn ucontext(&mut self) -> *mut c_void {
        unsafe { sys::fl_context_ucontext(self.raw_mut()) }
    }
    /// Emulates the faulting instruction with its memory access redirected to `target`, then advances
    /// the PC. On anything but [`EmulateStatus::Ok`] the context is unchanged.
    pub fn emulate(&mut self, target: usize) -> EmulateStatus {
        EmulateStatus::from_raw(unsafe { sys::fl_emulate(self.raw_mut(), target) })
    }
    /// Rewrites the register the faulting address was computed from by the distance `forward` moves it,
    /// so that the instruction re-executes against the moved object (a relocating collector's barrier).
    /// `forward` runs here, in signal context.
    pub fn heal(&mut self, forward: ForwardFn, data: *mut c_void) -> EmulateStatus {
        let pair: (ForwardFn, *mut c_void) = (forward, data);
        let status = unsafe {
            sys::fl_heal(self.raw_mut(), forward_trampoline, &pair as *const (ForwardFn, *mut c_void) as *mut c_void)
        };
        EmulateStatus::from_raw(status)
    }
    /// Makes the interrupted thread call `f(arg)` when the handler returns, then resume exactly where it
    /// was. Err holds the library's reason (1 no FP state, 2 no stack room, 3 on the alternate stack, 4
    /// no context).
    ///
    /// # Safety
    /// `f` runs on the interrupted thread at an arbitrary point of its code: it must be safe to run
    /// there (what it touches must not be in the middle of an update by that thread).
    pub unsafe fn inject_call(&mut self, f: unsafe extern "C" fn(*mut c_void), arg: *mut c_void) -> Result<(), i32> {
        match sys::fl_inject_call(self.raw_mut(), f, arg) {
            0 => Ok(()),
            r => Err(r),
        }
    }
}

unsafe extern "C" fn forward_trampoline(old: usize, data: *mut c_void) -> usize {
    let guard = crate::AbortOnUnwind;
    let pair = &*(data as *const (ForwardFn, *mut c_void));
    let r = (pair.0)(old, pair.1);
    std::mem::forget(guard);
    r
}

/// How many general registers [`Context::reg`] knows.
pub fn reg_count() -> u32 {
    unsafe { sys::fl_reg_count() }
}

/// The name of general register `index` ("rax", "x0", ...), or "" out of range.
///
/// ```
/// assert!(faultline::reg_count() > 16);
/// assert!(!faultline::reg_name(0).is_empty());
/// ```
pub fn reg_name(index: u32) -> &'static str {
    let p = unsafe { sys::fl_reg_name(index) };
    if p.is_null() {
        return "";
    }
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("signal", &self.signal()).field("address", &self.address()).field("pc", &self.pc()).finish()
    }
}
