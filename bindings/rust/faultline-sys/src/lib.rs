//! Raw declarations of faultline's C interface, `faultline/faultline.h`, written by hand.
//!
//! Everything here is `unsafe` and follows the header's rules: see the header for what each call does,
//! which calls are async-signal-safe, and who owns what. The `faultline` crate wraps these in safe Rust.
//! The test `declarations` checks this file against the ABI record `abi/faultline.abi` (every function
//! declared with its parameters, every struct with its size and alignment).
#![allow(non_camel_case_types)]

use std::ffi::c_void;
use std::os::raw::{c_char, c_int, c_long, c_uint};

// ---- errors ----------------------------------------------------------------------------------------

pub const FL_OK: c_int = 0;
pub const FL_EINVAL: c_int = -1;
pub const FL_ENOTINSTALLED: c_int = -2;
pub const FL_EEXIST: c_int = -3;
pub const FL_ENOTFOUND: c_int = -4;
pub const FL_ENOSPACE: c_int = -5;
pub const FL_EOVERRIDDEN: c_int = -6;
pub const FL_EUNSUPPORTED: c_int = -7;
pub const FL_ESYSTEM: c_int = -8;
pub const FL_EBUSY: c_int = -9;
pub const FL_ETIMEDOUT: c_int = -10;

#[repr(C)]
#[derive(Copy, Clone)]
pub struct fl_error {
    pub code: c_int,
    pub message: [c_char; 256],
}

// ---- trap dispatcher -------------------------------------------------------------------------------

pub const FL_TRAP_SEGV: c_uint = 1 << 0;
pub const FL_TRAP_BUS: c_uint = 1 << 1;
pub const FL_TRAP_ILL: c_uint = 1 << 2;
pub const FL_TRAP_FPE: c_uint = 1 << 3;
pub const FL_TRAP_TRAP: c_uint = 1 << 4;
pub const FL_TRAP_ABRT: c_uint = 1 << 5;
pub const FL_TRAP_MEMORY: c_uint = FL_TRAP_SEGV | FL_TRAP_BUS;

pub type fl_disposition = c_int;
pub const FL_DECLINED: fl_disposition = 0;
pub const FL_RESOLVED: fl_disposition = 1;

/// The fault context: opaque, valid only during the handler call that receives it.
#[repr(C)]
pub struct fl_context {
    _private: [u8; 0],
}

pub type fl_handler = unsafe extern "C" fn(ctx: *mut fl_context, data: *mut c_void) -> fl_disposition;

#[repr(C)]
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct fl_handler_id {
    pub slot: u32,
    pub generation: u32,
}

#[repr(C)]
#[derive(Copy, Clone, Default, Debug)]
pub struct fl_counters {
    pub seen: u64,
    pub resolved: u64,
    pub passed: u64,
    pub stack_overflows: u64,
}

// ---- fault context ---------------------------------------------------------------------------------

pub type fl_access = c_int;
pub const FL_ACCESS_UNKNOWN: fl_access = 0;
pub const FL_ACCESS_READ: fl_access = 1;
pub const FL_ACCESS_WRITE: fl_access = 2;
pub const FL_ACCESS_EXECUTE: fl_access = 3;

// ---- regions ---------------------------------------------------------------------------------------

pub type fl_policy = c_int;
pub const FL_POLICY_GUARD: fl_policy = 0;
pub const FL_POLICY_ZERO_FILL: fl_policy = 1;
pub const FL_POLICY_PROVIDER: fl_policy = 2;
pub const FL_POLICY_PAGER: fl_policy = 3;
pub const FL_POLICY_TRACK_DIRTY: fl_policy = 4;
pub const FL_POLICY_BARRIER: fl_policy = 5;

pub const FL_PERM_NONE: c_uint = 0;
pub const FL_PERM_READ: c_uint = 1;
pub const FL_PERM_WRITE: c_uint = 2;
pub const FL_PERM_EXEC: c_uint = 4;

#[repr(C)]
#[derive(Copy, Clone)]
pub struct fl_region_info {
    pub name: *const c_char,
    pub base: usize,
    pub size: usize,
    pub policy: fl_policy,
    pub perms: c_uint,
}

#[repr(C)]
#[derive(Copy, Clone)]
pub struct fl_fill_request {
    pub region: fl_region_info,
    pub offset: usize,
    pub length: usize,
    pub access: fl_access,
    pub pc: usize,
    pub tid: c_long,
    pub dest: *mut c_void,
}

pub type fl_fill_fn =
    unsafe extern "C" fn(req: *const fl_fill_request, data: *mut c_void, reason: *mut *const c_char) -> c_int;
pub type fl_barrier_fn =
    unsafe extern "C" fn(ctx: *mut fl_context, region: *const fl_region_info, data: *mut c_void) -> fl_disposition;

#[repr(C)]
pub struct fl_pager {
    _private: [u8; 0],
}

pub type fl_backend = c_int;
pub const FL_BACKEND_AUTOMATIC: fl_backend = 0;
pub const FL_BACKEND_SIGNALS: fl_backend = 1;
pub const FL_BACKEND_USERFAULTFD: fl_backend = 2;

pub type fl_uffd_mode = c_int;
pub const FL_UFFD_HANDLER_THREAD: fl_uffd_mode = 0;
pub const FL_UFFD_SELF_SERVICE: fl_uffd_mode = 1;

pub type fl_fill_path = c_int;
pub const FL_FILL_PATH_AUTOMATIC: fl_fill_path = 0;
pub const FL_FILL_PATH_COPY: fl_fill_path = 1;
pub const FL_FILL_PATH_SHMEM_CACHE: fl_fill_path = 2;

#[repr(C)]
pub struct fl_store {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Copy, Clone)]
pub struct fl_region_options {
    pub name: *const c_char,
    pub policy: fl_policy,
    pub perms: c_uint,
    pub fault_around: usize,
    pub barrier: Option<fl_barrier_fn>,
    pub barrier_data: *mut c_void,
    pub fill: Option<fl_fill_fn>,
    pub fill_data: *mut c_void,
    pub pager: *mut fl_pager,
    pub fill_timeout_ms: c_uint,
    pub backend: fl_backend,
    pub store: *mut fl_store,
    pub readahead_max: usize,
    pub userfaultfd_mode: fl_uffd_mode,
    pub write_back: c_int,
    pub max_resident_pages: usize,
    pub huge_pages: c_int,
    pub async_readahead: c_int,
    pub remote_pager_socket: c_int,
    pub fill_path: c_int,
}

#[repr(C)]
pub struct fl_region {
    _private: [u8; 0],
}

#[repr(C)]
pub struct fl_protect_batch {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Copy, Clone)]
pub struct fl_region_stats {
    pub faults: u64,
    pub fills: u64,
    pub pages_filled: u64,
    pub readahead_pages: u64,
    pub failures: u64,
    pub pages_evicted: u64,
    pub pages_written_back: u64,
    pub fill_ns_log2: [u64; 32],
}

#[repr(C)]
#[derive(Copy, Clone, Default, Debug)]
pub struct fl_thread_stats {
    pub tid: c_long,
    pub faults: u64,
    pub fills: u64,
    pub pages_filled: u64,
    pub readahead_pages: u64,
    pub failures: u64,
    pub pages_evicted: u64,
    pub pages_written_back: u64,
    pub fill_ns: u64,
}

// ---- a pager in another process --------------------------------------------------------------------

#[repr(C)]
pub struct fl_remote_region {
    _private: [u8; 0],
}

// ---- emulation -------------------------------------------------------------------------------------

pub type fl_emulate_status = c_int;
pub const FL_EMULATE_OK: fl_emulate_status = 0;
pub const FL_EMULATE_UNREADABLE_PC: fl_emulate_status = 1;
pub const FL_EMULATE_UNDECODABLE: fl_emulate_status = 2;
pub const FL_EMULATE_NO_MEMORY_OPERAND: fl_emulate_status = 3;
pub const FL_EMULATE_UNSUPPORTED: fl_emulate_status = 4;
pub const FL_EMULATE_NOT_ATOMIC: fl_emulate_status = 5;
pub const FL_EMULATE_VEX: fl_emulate_status = 6;
pub const FL_EMULATE_SEGMENT: fl_emulate_status = 7;
pub const FL_EMULATE_ACCESS_FAILED: fl_emulate_status = 8;
pub const FL_EMULATE_NOT_A_POINTER: fl_emulate_status = 9;
pub const FL_EMULATE_NOT_FORWARDED: fl_emulate_status = 10;

pub type fl_forward_fn = unsafe extern "C" fn(old_address: usize, data: *mut c_void) -> usize;

// ---- threads ---------------------------------------------------------------------------------------

pub type fl_root_kind = c_int;
pub const FL_ROOT_REGISTERS: fl_root_kind = 0;
pub const FL_ROOT_SIMD: fl_root_kind = 1;
pub const FL_ROOT_STACK: fl_root_kind = 2;
pub const FL_ROOT_ALTSTACK: fl_root_kind = 3;
pub type fl_root_visitor =
    unsafe extern "C" fn(begin: *const usize, end: *const usize, kind: fl_root_kind, tid: c_long, data: *mut c_void);

pub type fl_clock = c_int;
pub const FL_CLOCK_CPU_TIME: fl_clock = 0;
pub const FL_CLOCK_WALL: fl_clock = 1;
pub type fl_preempt_handler = unsafe extern "C" fn(ctx: *mut fl_context, data: *mut c_void);

extern "C" {
    // errors
    pub fn fl_errc_name(code: c_int) -> *const c_char;

    // trap dispatcher
    pub fn fl_install(signals: c_uint, err: *mut fl_error) -> c_int;
    pub fn fl_uninstall(force: c_int, err: *mut fl_error) -> c_int;
    pub fn fl_installed() -> c_int;
    pub fn fl_reassert(err: *mut fl_error) -> c_int;
    pub fn fl_add_handler(
        fn_: fl_handler,
        data: *mut c_void,
        signals: c_uint,
        id_out: *mut fl_handler_id,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_remove_handler(id: fl_handler_id, err: *mut fl_error) -> c_int;
    pub fn fl_leave_handler();
    pub fn fl_in_handler() -> c_int;
    pub fn fl_trap_counters(sig: c_int) -> fl_counters;

    // fault context
    pub fn fl_context_signal(ctx: *const fl_context) -> c_int;
    pub fn fl_context_code(ctx: *const fl_context) -> c_int;
    pub fn fl_context_address(ctx: *const fl_context) -> usize;
    pub fn fl_context_access(ctx: *const fl_context) -> fl_access;
    pub fn fl_context_pc(ctx: *const fl_context) -> usize;
    pub fn fl_context_sp(ctx: *const fl_context) -> usize;
    pub fn fl_reg_count() -> c_uint;
    pub fn fl_reg_name(index: c_uint) -> *const c_char;
    pub fn fl_context_reg(ctx: *const fl_context, index: c_uint) -> u64;
    pub fn fl_context_set_reg(ctx: *mut fl_context, index: c_uint, value: u64) -> c_int;
    pub fn fl_context_set_pc(ctx: *mut fl_context, pc: usize);
    pub fn fl_context_vector_reg(ctx: *const fl_context, index: c_uint, out: *mut u8) -> c_int;
    pub fn fl_context_set_vector_reg(ctx: *mut fl_context, index: c_uint, in_: *const u8) -> c_int;
    pub fn fl_context_ucontext(ctx: *mut fl_context) -> *mut c_void;

    // regions
    pub fn fl_pager_start(name: *const c_char, threads: c_uint, out: *mut *mut fl_pager, err: *mut fl_error) -> c_int;
    pub fn fl_pager_release(pager: *mut fl_pager);
    pub fn fl_file_store_open(
        path: *const c_char,
        offset: u64,
        writable: c_int,
        out: *mut *mut fl_store,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_store_destroy(store: *mut fl_store);
    pub fn fl_region_options_default() -> fl_region_options;
    pub fn fl_region_reserve(
        size: usize,
        opts: *const fl_region_options,
        out: *mut *mut fl_region,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_region_adopt(
        addr: *mut c_void,
        size: usize,
        opts: *const fl_region_options,
        out: *mut *mut fl_region,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_region_destroy(region: *mut fl_region, err: *mut fl_error) -> c_int;
    pub fn fl_region_data(region: *const fl_region) -> *mut c_void;
    pub fn fl_region_size(region: *const fl_region) -> usize;
    pub fn fl_region_collect_dirty(
        region: *mut fl_region,
        pages: *mut usize,
        cap: usize,
        count: *mut usize,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_region_protect(
        region: *mut fl_region,
        first_page: usize,
        count: usize,
        perms: c_uint,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_region_discard(region: *mut fl_region, first_page: usize, count: usize, err: *mut fl_error) -> c_int;
    pub fn fl_region_backend(region: *const fl_region) -> fl_backend;
    pub fn fl_region_backend_reason(region: *const fl_region) -> *const c_char;
    pub fn fl_region_flush(region: *mut fl_region, written: *mut usize, err: *mut fl_error) -> c_int;
    pub fn fl_region_evict(
        region: *mut fl_region,
        first_page: usize,
        count: usize,
        written_back: *mut usize,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_protect_batch_create(out: *mut *mut fl_protect_batch, err: *mut fl_error) -> c_int;
    pub fn fl_protect_batch_add(
        batch: *mut fl_protect_batch,
        region: *const fl_region,
        first_page: usize,
        count: usize,
        perms: c_uint,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_protect_batch_commit(batch: *mut fl_protect_batch, calls: *mut usize, err: *mut fl_error) -> c_int;
    pub fn fl_protect_batch_destroy(batch: *mut fl_protect_batch);
    pub fn fl_prefault(addr: *const c_void, len: usize, access: fl_access, err: *mut fl_error) -> c_int;
    pub fn fl_region_count() -> usize;
    pub fn fl_region_get_stats(region: *const fl_region, out: *mut fl_region_stats);
    pub fn fl_this_thread_stats(out: *mut fl_thread_stats);
    pub fn fl_handler_thread_stats(out: *mut fl_thread_stats, cap: usize) -> usize;
    pub fn fl_set_userfaultfd_handler_threads(n: c_uint, err: *mut fl_error) -> c_int;
    pub fn fl_userfaultfd_handler_threads() -> c_uint;

    // a pager in another process
    pub fn fl_remote_pager_receive(socket: c_int, out: *mut *mut fl_remote_region, err: *mut fl_error) -> c_int;
    pub fn fl_remote_region_name(region: *const fl_remote_region) -> *const c_char;
    pub fn fl_remote_region_base(region: *const fl_remote_region) -> u64;
    pub fn fl_remote_region_size(region: *const fl_remote_region) -> u64;
    pub fn fl_remote_region_serve(
        region: *mut fl_remote_region,
        fill: fl_fill_fn,
        data: *mut c_void,
        stop: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
        stop_data: *mut c_void,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_remote_region_destroy(region: *mut fl_remote_region);

    // emulation
    pub fn fl_emulate_status_name(status: fl_emulate_status) -> *const c_char;
    pub fn fl_emulate(ctx: *mut fl_context, target: usize) -> fl_emulate_status;
    pub fn fl_heal(ctx: *mut fl_context, forward: fl_forward_fn, data: *mut c_void) -> fl_emulate_status;

    // threads
    pub fn fl_thread_attach(altstack_size: usize, err: *mut fl_error) -> c_int;
    pub fn fl_smallest_usable_altstack() -> usize;
    pub fn fl_thread_detach();
    pub fn fl_thread_attached() -> c_int;
    pub fn fl_world_stop(timeout_ms: c_uint, err: *mut fl_error) -> c_int;
    pub fn fl_world_resume(err: *mut fl_error) -> c_int;
    pub fn fl_world_stopped() -> c_int;
    pub fn fl_world_scan_roots(fn_: fl_root_visitor, data: *mut c_void, err: *mut fl_error) -> c_int;
    pub fn fl_blocking_enter();
    pub fn fl_blocking_leave();
    pub fn fl_preempt_enable(
        budget_ns: u64,
        fn_: fl_preempt_handler,
        data: *mut c_void,
        clock: fl_clock,
        err: *mut fl_error,
    ) -> c_int;
    pub fn fl_preempt_disable();
    pub fn fl_inject_call(ctx: *mut fl_context, fn_: unsafe extern "C" fn(*mut c_void), arg: *mut c_void) -> c_int;

    // crash report
    pub fn fl_report_enable(fd: c_int, color: c_int, backtrace: c_int, max_frames: c_uint, err: *mut fl_error)
        -> c_int;
    pub fn fl_report_disable();
    pub fn fl_report_enabled() -> c_int;

    pub fn fl_version() -> *const c_char;
}
