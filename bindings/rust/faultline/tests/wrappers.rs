//! Each wrapper, used as a program would. What can kill the process runs in a forked child whose end
//! (exit status or signal) and standard error are checked. Run with --test-threads=1 (bindings/rust/test.sh
//! does): faultline's dispatcher is process-wide, and a child forked while other test threads run could
//! inherit a lock they hold.
use std::ffi::c_void;
use std::io::Read;
use std::os::unix::io::FromRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use faultline::pager::Pager;
use faultline::region::{
    self, Backend, FileStore, FillError, FillPath, FillRequest, Policy, ProtectBatch, Region, RegionOptions, UserfaultfdMode, PERM_NONE,
    PERM_READ,
    PERM_WRITE,
};
use faultline::trap::{self, Disposition, Signals};
use faultline::{Access, Context, EmulateStatus, Errc};

fn page() -> usize {
    region::page_size()
}

/// How a child ended, and what it wrote on standard error.
struct Child {
    status: libc::c_int,
    stderr: String,
}

impl Child {
    fn exited(&self, code: i32) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == code
    }
    fn killed_by(&self, sig: i32) -> bool {
        libc::WIFSIGNALED(self.status) && libc::WTERMSIG(self.status) == sig
    }
}

/// Runs `body` in a forked child (standard error to a pipe, 30 s at most); the child exits 0 if `body`
/// returns.
fn in_child(body: impl FnOnce()) -> Child {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        unsafe {
            libc::close(fds[0]);
            libc::dup2(fds[1], 2);
            libc::alarm(30); // a child that hangs ends by SIGALRM: the test fails, it does not hang
        }
        // The test harness captures what a panic prints inside the process: write it to standard
        // error (the pipe) instead, so that the parent's message says why the child failed.
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
            let text = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let text = format!("child panicked: {}\n", text);
            unsafe { libc::write(2, text.as_ptr() as *const c_void, text.len()) };
            unsafe { libc::_exit(101) };
        }
        unsafe { libc::_exit(0) };
    }
    unsafe { libc::close(fds[1]) };
    let mut stderr = String::new();
    let _ = unsafe { std::fs::File::from_raw_fd(fds[0]) }.read_to_string(&mut stderr);
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    Child { status, stderr }
}

/// First in every test: the faults faultline's handlers decline go to faultline's report and the
/// default action, not to the standard library's overflow handler (see trap::take_over_from_std, which
/// must run before faultline installs: the tests run one at a time, in one process).
fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| trap::take_over_from_std().unwrap());
}

fn fail(code: i32) -> ! {
    unsafe { libc::_exit(code) }
}

fn mmap(len: usize, prot: i32) -> *mut u8 {
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    assert_ne!(p, libc::MAP_FAILED);
    p as *mut u8
}

// ---- the dispatcher, the context, emulation ------------------------------------------------------

static SEEN_SIGNAL: AtomicU64 = AtomicU64::new(0);
static SEEN_ACCESS: AtomicU64 = AtomicU64::new(0);
static SEEN_ADDRESS: AtomicU64 = AtomicU64::new(0);
static SEEN_PC_SP: AtomicU64 = AtomicU64::new(0);

/// Opens the page at `data` (read-write) when the fault is in it.
fn open_page(ctx: &mut Context, data: *mut c_void) -> Disposition {
    let page_at = data as usize;
    if ctx.address() < page_at || ctx.address() >= page_at + page() {
        return Disposition::Declined;
    }
    SEEN_SIGNAL.store(ctx.signal() as u64, Ordering::Relaxed);
    SEEN_ACCESS.store(if ctx.access() == Access::Write { 2 } else { 1 }, Ordering::Relaxed);
    SEEN_ADDRESS.store(ctx.address() as u64, Ordering::Relaxed);
    SEEN_PC_SP.store((ctx.pc() != 0 && ctx.sp() != 0 && ctx.reg(0) == ctx.reg(0)) as u64, Ordering::Relaxed);
    unsafe { libc::mprotect(data, page(), libc::PROT_READ | libc::PROT_WRITE) };
    Disposition::Resolved
}

#[test]
fn a_handler_resolves_a_fault_and_sees_its_context() {
    setup();
    trap::install(Signals::MEMORY).unwrap();
    assert!(trap::installed());
    trap::reassert().unwrap();
    let p = mmap(page(), libc::PROT_NONE);
    let before = trap::counters(libc::SIGSEGV);
    let h = unsafe { trap::add_handler(open_page, p as *mut c_void, Signals::SEGV) }.unwrap();
    unsafe { std::ptr::write_volatile(p.add(100), 5) };
    assert_eq!(unsafe { std::ptr::read_volatile(p.add(100)) }, 5);
    assert_eq!(SEEN_SIGNAL.load(Ordering::Relaxed), libc::SIGSEGV as u64);
    assert_eq!(SEEN_ACCESS.load(Ordering::Relaxed), 2);
    assert_eq!(SEEN_ADDRESS.load(Ordering::Relaxed), p as u64 + 100);
    assert_eq!(SEEN_PC_SP.load(Ordering::Relaxed), 1);
    assert_eq!(trap::counters(libc::SIGSEGV).resolved, before.resolved + 1);
    assert!(!trap::in_handler());
    h.remove().unwrap();
    unsafe { libc::munmap(p as *mut c_void, page()) };
}

#[test]
fn a_dropped_handler_no_longer_resolves() {
    setup();
    let c = in_child(|| {
        trap::install(Signals::MEMORY).unwrap();
        let p = mmap(page(), libc::PROT_NONE);
        let h = unsafe { trap::add_handler(open_page, p as *mut c_void, Signals::SEGV) }.unwrap();
        drop(h);
        unsafe { std::ptr::write_volatile(p, 1) }; // nobody resolves it now
        fail(3);
    });
    assert!(c.killed_by(libc::SIGSEGV), "status {:#x}: {}", c.status, c.stderr);
}

static SHADOW: AtomicU64 = AtomicU64::new(0x5151_5151_5151_5151);
static HEAL_STATUS: AtomicU64 = AtomicU64::new(u64::MAX);

fn nothing_moved(_: usize, _: *mut c_void) -> usize {
    0
}

fn emulate_into_shadow(ctx: &mut Context, data: *mut c_void) -> Disposition {
    let at = data as usize;
    if ctx.address() < at || ctx.address() >= at + page() {
        return Disposition::Declined;
    }
    let healed = ctx.heal(nothing_moved, std::ptr::null_mut());
    HEAL_STATUS.store(if healed == EmulateStatus::Ok { 0 } else { 1 }, Ordering::Relaxed);
    if ctx.emulate(&SHADOW as *const AtomicU64 as usize) == EmulateStatus::Ok {
        Disposition::Resolved
    } else {
        Disposition::Declined
    }
}

#[test]
fn a_load_is_emulated_against_another_address() {
    setup();
    trap::install(Signals::MEMORY).unwrap();
    let p = mmap(page(), libc::PROT_NONE);
    let _h = unsafe { trap::add_handler(emulate_into_shadow, p as *mut c_void, Signals::SEGV) }.unwrap();
    let v = unsafe { std::ptr::read_volatile(p.add(64) as *const u64) };
    assert_eq!(v, 0x5151_5151_5151_5151);
    assert_eq!(HEAL_STATUS.load(Ordering::Relaxed), 1, "heal declines what nothing forwards");
    assert_eq!(EmulateStatus::NotForwarded.name(), "not_forwarded");
    assert!(faultline::reg_count() > 16 && !faultline::reg_name(0).is_empty());
}

fn exit_7() -> ! {
    unsafe { libc::_exit(7) }
}

fn exit_8() -> ! {
    unsafe { libc::_exit(8) }
}

/// Checks the context's setters on the fault in the page at `data`, then resumes in exit_7 (exit_8 if
/// a setter misbehaved).
fn resume_elsewhere(ctx: &mut Context, data: *mut c_void) -> Disposition {
    let at = data as usize;
    if ctx.address() < at || ctx.address() >= at + page() {
        return Disposition::Declined;
    }
    let v = [7u8; 16];
    let vector = ctx.vector_reg(0).is_some() && ctx.set_vector_reg(0, &v) && ctx.vector_reg(0) == Some(v);
    let general = ctx.set_reg(1, 0x1234) && ctx.reg(1) == 0x1234 && !ctx.set_reg(10_000, 0);
    let ok = vector && general && !ctx.ucontext().is_null();
    ctx.set_pc(if ok { exit_7 as usize } else { exit_8 as usize });
    Disposition::Resolved
}

#[test]
fn a_handler_changes_registers_and_resumes_elsewhere() {
    setup();
    let c = in_child(|| {
        trap::install(Signals::MEMORY).unwrap();
        let p = mmap(page(), libc::PROT_NONE);
        let _h = unsafe { trap::add_handler(resume_elsewhere, p as *mut c_void, Signals::SEGV) }.unwrap();
        unsafe { std::ptr::write_volatile(p, 1) };
        fail(3);
    });
    assert!(c.exited(7), "status {:#x}: {}", c.status, c.stderr);
}

// ---- regions -------------------------------------------------------------------------------------

fn fill_with_index(req: &mut FillRequest, data: *mut c_void) -> Result<(), FillError> {
    let tag = data as usize as u8;
    let at = req.offset();
    for (i, b) in req.dest().iter_mut().enumerate() {
        *b = ((at + i) / 4096) as u8 ^ tag;
    }
    Ok(())
}

fn fill_fails(_: &mut FillRequest, _: *mut c_void) -> Result<(), FillError> {
    Err(FillError { errno: libc::EIO, reason: b"the snapshot is unreadable\0" })
}

#[test]
fn zero_fill_provider_and_pager_regions() {
    setup();
    let before = region::region_count();
    let z = Region::reserve(8 * page(), &RegionOptions::new(Policy::ZeroFill).name("rs-zero").fault_around(2)).unwrap();
    assert_eq!(region::region_count(), before + 1);
    let b = unsafe { std::slice::from_raw_parts_mut(z.as_ptr(), z.len()) };
    b[3 * page()] = 9;
    assert_eq!(b[3 * page() + 1], 0);
    // On userfaultfd the handler thread counts a fill after it has woken the faulting thread.
    assert!(wait_for(|| z.stats().faults >= 1 && z.stats().pages_filled >= 1), "{:?}", z.stats());
    assert!(!z.backend_reason().is_empty());
    z.discard(3, 1).unwrap();
    assert_eq!(b[3 * page()], 0);
    z.destroy().unwrap();
    assert_eq!(region::region_count(), before);

    let o = unsafe { RegionOptions::new(Policy::Provider).name("rs-provider").provider(fill_with_index, 7 as *mut c_void) };
    let p = Region::reserve(4 * page(), &o).unwrap();
    let b = unsafe { std::slice::from_raw_parts(p.as_ptr(), p.len()) };
    assert_eq!(b[2 * page() + 5], 2 ^ 7);

    let pager = Pager::start("rs-pager", 2).unwrap();
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let o = RegionOptions::new(Policy::Pager).name("rs-paged").pager(&pager, move |req| {
        seen.fetch_add(1, Ordering::Relaxed);
        let at = req.offset();
        let v: Vec<u8> = (0..req.len()).map(|i| ((at + i) / 4096) as u8 + 1).collect(); // it may allocate
        req.dest().copy_from_slice(&v);
        Ok(())
    });
    let r = Region::reserve(4 * page(), &o).unwrap();
    let b = unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) };
    assert_eq!(b[3 * page()], 4);
    assert!(calls.load(Ordering::Relaxed) >= 1);
}

#[test]
fn a_failed_fill_ends_in_sigbus_with_the_reason() {
    setup();
    let c = in_child(|| {
        faultline::report::enable(&faultline::report::Options::default()).unwrap();
        let o = unsafe { RegionOptions::new(Policy::Provider).name("rs-broken").provider(fill_fails, std::ptr::null_mut()) };
        let r = Region::reserve(page(), &o).unwrap_or_else(|_| fail(90));
        let _ = unsafe { std::ptr::read_volatile(r.as_ptr()) };
        fail(3);
    });
    assert!(c.killed_by(libc::SIGBUS), "status {:#x}: {}", c.status, c.stderr);
    assert!(c.stderr.contains("the snapshot is unreadable"), "{}", c.stderr);
}

#[test]
fn a_guard_page_kills_with_a_report_naming_the_region() {
    setup();
    let c = in_child(|| {
        faultline::report::enable(&faultline::report::Options {
            color: faultline::report::Color::Never,
            ..Default::default()
        })
        .unwrap();
        assert!(faultline::report::enabled());
        let o = RegionOptions::new(Policy::Guard).name("rs-guard").perms(PERM_NONE);
        let r = Region::reserve(page(), &o).unwrap_or_else(|_| fail(90));
        unsafe { std::ptr::write_volatile(r.as_ptr(), 1) };
        fail(3);
    });
    assert!(c.killed_by(libc::SIGSEGV), "status {:#x}: {}", c.status, c.stderr);
    assert!(c.stderr.contains("'rs-guard'"), "{}", c.stderr);
    faultline::report::disable();
    assert!(!faultline::report::enabled());
}

#[test]
fn written_pages_are_tracked_and_protection_batched() {
    setup();
    let o = RegionOptions::new(Policy::TrackDirty).name("rs-dirty").backend(Backend::Signals);
    let r = Region::reserve(8 * page(), &o).unwrap();
    assert_eq!(r.backend(), Backend::Signals);
    let b = unsafe { std::slice::from_raw_parts_mut(r.as_ptr(), r.len()) };
    b[page()] = 1;
    b[6 * page()] = 1;
    assert_eq!(r.collect_dirty().unwrap(), vec![1, 6]);
    assert_eq!(r.collect_dirty().unwrap(), Vec::<usize>::new());

    let zo = RegionOptions::new(Policy::ZeroFill).name("rs-batched").backend(Backend::Signals);
    let (a, c) = (Region::reserve(2 * page(), &zo).unwrap(), Region::reserve(2 * page(), &zo).unwrap());
    unsafe {
        *a.as_ptr() = 7;
        *c.as_ptr() = 8;
    }
    let mut batch = ProtectBatch::new().unwrap();
    batch.add(&a, 0, 1, PERM_NONE).unwrap();
    batch.add(&c, 0, 1, PERM_NONE).unwrap();
    assert!(batch.commit().unwrap() >= 1);
    let faults = a.stats().faults;
    assert_eq!(unsafe { std::ptr::read_volatile(a.as_ptr()) }, 7); // re-armed: a fault, contents kept
    assert_eq!(a.stats().faults, faults + 1);
    a.protect(0, 1, PERM_READ).unwrap();
    assert_eq!(a.protect(0, 9, PERM_READ).unwrap_err().code(), Errc::InvalidArgument);
    unsafe { region::prefault(c.as_ptr(), page(), Access::Read) }.unwrap();
    let _ = PERM_WRITE;
}

/// True (and says so) when this kernel or sandbox offers no userfaultfd: the test then skips.
fn without_userfaultfd() -> bool {
    match Region::reserve(page(), &RegionOptions::new(Policy::ZeroFill).backend(Backend::Userfaultfd)) {
        Ok(_) => false,
        Err(e) => {
            eprintln!("skipped without userfaultfd: {}", e);
            true
        }
    }
}

/// A writable file store over a new temporary file holding `contents` (remove the path when done).
fn file_store(name: &str, contents: &[u8]) -> (std::path::PathBuf, FileStore) {
    let path = std::env::temp_dir().join(format!("faultline-rs-{}-{}", name, std::process::id()));
    std::fs::write(&path, contents).unwrap();
    let store = FileStore::open(path.to_str().unwrap(), 0, true).unwrap();
    (path, store)
}

/// A provider region on userfaultfd over `store`, its written pages going back to it.
fn written_back(name: &str, store: &FileStore) -> RegionOptions {
    RegionOptions::new(Policy::Provider).name(name).backend(Backend::Userfaultfd).store(store).write_back(true)
}

#[test]
fn a_file_store_with_write_back() {
    setup();
    if without_userfaultfd() {
        return;
    }
    // Both fill paths: the shmem cache where the kernel has it (the reason says which), and copies.
    for path_kind in [FillPath::Automatic, FillPath::Copy] {
        let (path, store) = file_store("store", &vec![b'a'; 4 * page()]);
        let o = written_back("rs-file", &store).readahead_max(2).fill_path(path_kind);
        let r = Region::reserve(4 * page(), &o).unwrap();
        let reason = r.backend_reason().to_string();
        assert_eq!(path_kind == FillPath::Copy, !reason.contains("shmem cache"), "{}", reason);
        let b = unsafe { std::slice::from_raw_parts_mut(r.as_ptr(), r.len()) };
        assert_eq!(b[0], b'a');
        b[page()] = b'b';
        assert_eq!(r.flush().unwrap(), 1);
        assert_eq!(std::fs::read(&path).unwrap()[page()], b'b');
        b[2 * page()] = b'c';
        assert_eq!(r.evict(0, 4).unwrap(), 1);
        assert_eq!(b[2 * page()], b'c');
        assert!(r.stats().pages_evicted >= 1);
        drop(r);
        std::fs::remove_file(&path).unwrap();
    }
    // The shmem cache is for provider regions only.
    let zero = RegionOptions::new(Policy::ZeroFill).fill_path(FillPath::ShmemCache);
    assert_eq!(Region::reserve(page(), &zero).unwrap_err().code(), Errc::InvalidArgument);
}

static SELF_SERVED: AtomicUsize = AtomicUsize::new(0);

/// A provider fill that checks what the request says about itself (self-service: the faulting thread).
fn fill_checking_the_request(req: &mut FillRequest, data: *mut c_void) -> Result<(), FillError> {
    if req.region().size != data as usize || req.tid() != unsafe { libc::gettid() } as i64 {
        return Err(FillError { errno: libc::EINVAL, reason: b"a request that does not describe itself\0" });
    }
    SELF_SERVED.fetch_add(1, Ordering::Relaxed);
    fill_with_index(req, std::ptr::null_mut())
}

#[test]
fn the_remaining_options_and_thread_limits() {
    setup();
    let min = faultline::thread::smallest_usable_altstack();
    assert!(min > 32 * 1024);
    assert_eq!(faultline::thread::attach(Some(min - 1)).unwrap_err().code(), Errc::InvalidArgument);
    if without_userfaultfd() {
        return;
    }
    // Self-service: the faulting thread fills its own page (on its alternate stack: attached, it has
    // faultline's); the request names the region and the thread.
    let _attached = faultline::thread::attach(None).unwrap();
    let size = 16 * page();
    let o = unsafe {
        RegionOptions::new(Policy::Provider)
            .name("rs-self")
            .backend(Backend::Userfaultfd)
            .userfaultfd_mode(UserfaultfdMode::SelfService)
            .async_readahead(false)
            .huge_pages(false)
            .fill_timeout(Duration::from_secs(5))
            .provider(fill_checking_the_request, size as *mut c_void)
    };
    let r = Region::reserve(size, &o).unwrap();
    let b = unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) };
    assert_eq!(b[5 * page()], 5);
    assert!(SELF_SERVED.load(Ordering::Relaxed) >= 1);
    // A resident-page watermark: 32 pages through a cap of 8, every byte right, some evicted.
    let content: Vec<u8> = (0..32 * page()).map(|i| (i / page()) as u8).collect();
    let (path, store) = file_store("cap", &content);
    let o = written_back("rs-capped", &store).max_resident_pages(8);
    let r = Region::reserve(32 * page(), &o).unwrap();
    let b = unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) };
    for round in 0..2 {
        for p in 0..32 {
            assert_eq!(unsafe { std::ptr::read_volatile(&b[p * page()]) }, p as u8, "round {} page {}", round, p);
        }
    }
    assert!(wait_for(|| r.stats().pages_evicted >= 1), "{:?}", r.stats());
    drop(r);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_pager_in_another_process() {
    setup();
    if without_userfaultfd() {
        return;
    }
    let mut sv = [0; 2];
    assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) }, 0);
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe { libc::close(sv[0]) };
        let mut rr = faultline::remote_pager::receive(sv[1]).unwrap_or_else(|_| fail(2));
        if rr.name() != "rs-remote" || rr.size() != 4 * page() as u64 || rr.base() == 0 {
            fail(3);
        }
        let served = rr.serve(
            |req| {
                let at = req.offset();
                for (i, b) in req.dest().iter_mut().enumerate() {
                    *b = b'A' + ((at + i) / 4096) as u8;
                }
                Ok(())
            },
            || false,
        );
        fail(if served.is_ok() { 0 } else { 4 });
    }
    unsafe { libc::close(sv[1]) };
    let o = RegionOptions::new(Policy::Pager).name("rs-remote").remote_pager_socket(sv[0]);
    let r = Region::reserve(4 * page(), &o).unwrap();
    let b = unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) };
    assert_eq!((b[0], b[2 * page() + 5], b[3 * page()]), (b'A', b'C', b'D'));
    drop(r);
    unsafe { libc::close(sv[0]) };
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "pager status {:#x}", status);
}

#[test]
fn counters_per_thread_and_handler_threads() {
    setup();
    let before = region::this_thread_stats();
    let o = RegionOptions::new(Policy::ZeroFill).name("rs-counted").backend(Backend::Signals);
    let r = Region::reserve(4 * page(), &o).unwrap();
    unsafe { *r.as_ptr() = 1 };
    let after = region::this_thread_stats();
    assert!(after.tid > 0 && after.faults == before.faults + 1 && after.fills == before.fills + 1);
    assert!(r.stats().fill_ns_quantile(1.0) > 0);
    assert_eq!(region::set_userfaultfd_handler_threads(0).unwrap_err().code(), Errc::InvalidArgument);
    assert_eq!(region::userfaultfd_handler_thread_stats().len(), region::userfaultfd_handler_threads() as usize);
}

// ---- threads: attach, stop the world, preemption, call injection ----------------------------------

#[test]
fn the_world_stops_and_its_roots_are_scanned() {
    setup();
    let _me = faultline::thread::attach(None).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ready = std::sync::Arc::new(AtomicUsize::new(0));
    let (s, r) = (stop.clone(), ready.clone());
    let t = std::thread::spawn(move || {
        let _a = faultline::thread::attach(None).unwrap();
        let marker: usize = 0x5eed_f00d;
        r.store(1, Ordering::SeqCst);
        while !s.load(Ordering::Relaxed) {
            unsafe { std::ptr::read_volatile(&marker) };
        }
        faultline::thread::blocking(|| ());
    });
    while ready.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let stopped = faultline::world::stop(Duration::from_secs(5)).unwrap();
    assert!(faultline::world::stopped());
    let mut found = false;
    let mut kinds = 0;
    stopped
        .scan_roots(|words, kind, tid| {
            assert!(tid > 0);
            kinds |= 1 << (kind as u32);
            found |= words.contains(&0x5eed_f00d);
        })
        .unwrap();
    stopped.resume().unwrap();
    assert!(!faultline::world::stopped());
    assert!(found, "the other thread's stack holds the marker");
    assert!(kinds & (1 << (faultline::world::RootKind::Stack as u32)) != 0);
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    assert!(faultline::thread::attached());
}

static TICKS: AtomicUsize = AtomicUsize::new(0);
static INJECTED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn injected(_: *mut c_void) {
    INJECTED.fetch_add(1, Ordering::Relaxed);
}

fn tick(ctx: &mut Context, _: *mut c_void) {
    if TICKS.fetch_add(1, Ordering::Relaxed) == 0 {
        let _ = unsafe { ctx.inject_call(injected, std::ptr::null_mut()) };
    }
}

fn wait_for(what: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !what() && start.elapsed() < Duration::from_secs(10) {
        std::thread::yield_now();
    }
    what()
}

#[test]
fn preemption_interrupts_and_injects_a_call() {
    setup();
    let _me = faultline::thread::attach(None).unwrap();
    let p = unsafe {
        faultline::preempt::enable(Duration::from_micros(500), faultline::preempt::Clock::Wall, tick, std::ptr::null_mut())
    }
    .unwrap();
    assert!(wait_for(|| INJECTED.load(Ordering::Relaxed) == 1), "the first tick injected a call, which ran here");
    assert_eq!(TICKS.load(Ordering::Relaxed), 1, "one-shot");
    p.rearm(Duration::from_micros(500)).unwrap();
    assert!(wait_for(|| TICKS.load(Ordering::Relaxed) == 2), "re-armed: a second tick");
    drop(p);
    assert_eq!(INJECTED.load(Ordering::Relaxed), 1);
}

#[test]
fn uninstall_gives_the_signals_back() {
    setup();
    let c = in_child(|| {
        trap::install(Signals::MEMORY | Signals::ILL).unwrap();
        trap::leave_handler(); // outside a handler: nothing to forget
        trap::uninstall(true).unwrap();
        if trap::installed() {
            fail(2);
        }
    });
    assert!(c.exited(0), "status {:#x}: {}", c.status, c.stderr);
}

#[test]
fn errors_carry_the_librarys_message() {
    setup();
    let e = Region::reserve(0, &RegionOptions::new(Policy::ZeroFill).name("rs-empty")).unwrap_err();
    assert_eq!(e.code(), Errc::InvalidArgument);
    assert!(e.message().contains("rs-empty"), "{}", e);
    assert!(e.to_string().starts_with("InvalidArgument: "));
    assert!(faultline::version().starts_with("0."));
}
