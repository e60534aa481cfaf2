//! Regions: windows of memory with a policy (guard, zero-fill, provider, pager, write tracking, barrier),
//! served by the signal backend (mprotect and signals) or userfaultfd; stores, write-back, protection
//! batches and the counters.
//!
//! ```
//! use faultline::region::{Policy, Region, RegionOptions};
//! let o = RegionOptions::new(Policy::TrackDirty).name("tracked");
//! let r = Region::reserve(8 * 4096, &o).unwrap();
//! let bytes = unsafe { std::slice::from_raw_parts_mut(r.as_ptr(), r.len()) };
//! bytes[3 * 4096] = 1;
//! assert_eq!(r.collect_dirty().unwrap(), vec![3]);
//! ```
use std::ffi::{c_void, CStr, CString};
use std::os::raw::{c_char, c_int};
use std::os::unix::io::RawFd;
use std::sync::Arc;
use std::time::Duration;

use faultline_sys as sys;

use crate::error::{call, Error, Errc, Result};
use crate::pager::Pager;
use crate::trap::Disposition;
use crate::{Access, Context};

/// What a region's pages become when touched.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Any access the permissions forbid is a fault that goes on to the next handler (a guard page).
    Guard,
    /// Pages appear, zeroed, on their first touch.
    ZeroFill,
    /// Pages are filled on their first touch by a provider function or a store.
    Provider,
    /// Pages are filled by a [`Pager`]'s threads (or a pager in another process).
    Pager,
    /// Written pages are recorded ([`Region::collect_dirty`]).
    TrackDirty,
    /// Every access the protection forbids calls a barrier function.
    Barrier,
}

impl Policy {
    fn to_raw(self) -> sys::fl_policy {
        match self {
            Policy::Guard => sys::FL_POLICY_GUARD,
            Policy::ZeroFill => sys::FL_POLICY_ZERO_FILL,
            Policy::Provider => sys::FL_POLICY_PROVIDER,
            Policy::Pager => sys::FL_POLICY_PAGER,
            Policy::TrackDirty => sys::FL_POLICY_TRACK_DIRTY,
            Policy::Barrier => sys::FL_POLICY_BARRIER,
        }
    }
}

/// How a region's faults reach faultline.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// userfaultfd where the kernel allows it, else signals ([`Region::backend_reason`] says why).
    Automatic,
    /// mprotect and SIGSEGV: everywhere, on any memory.
    Signals,
    /// userfaultfd: no mprotect, no signal for missing pages.
    Userfaultfd,
}

impl Backend {
    fn to_raw(self) -> sys::fl_backend {
        match self {
            Backend::Automatic => sys::FL_BACKEND_AUTOMATIC,
            Backend::Signals => sys::FL_BACKEND_SIGNALS,
            Backend::Userfaultfd => sys::FL_BACKEND_USERFAULTFD,
        }
    }
    fn from_raw(b: sys::fl_backend) -> Backend {
        match b {
            sys::FL_BACKEND_SIGNALS => Backend::Signals,
            sys::FL_BACKEND_USERFAULTFD => Backend::Userfaultfd,
            _ => Backend::Automatic,
        }
    }
}

/// Who fills a userfaultfd region's missing pages.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UserfaultfdMode {
    /// faultline's handler threads read the faults and fill them.
    HandlerThread,
    /// The faulting thread fills its own fault in its SIGBUS handler, through a 16 KiB buffer on its
    /// alternate signal stack: the faulting threads must be attached ([`crate::thread::attach`]; the
    /// 8-12 KiB stack std gives a thread is too small, and such an access ends in SIGBUS saying so).
    SelfService,
}

/// Where a userfaultfd provider region's filled pages live (handler-thread mode).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FillPath {
    /// The shmem cache where the kernel has what it needs (minor faults on shmem, Linux 5.14; for
    /// write-back, write-protection of shmem, 5.19, and `UFFDIO_CONTINUE_MODE_WP`, 6.4), copies
    /// otherwise; [`Region::backend_reason`] says which, and why.
    Automatic,
    /// The store fills a buffer that `UFFDIO_COPY` copies into a private page.
    Copy,
    /// The store fills the page's home in a memfd cache in place; the region, a private mapping of it,
    /// gets the page by `UFFDIO_CONTINUE` (a minor fault). Refused where the kernel cannot.
    ShmemCache,
}

/// Page permissions, as bits: [`PERM_READ`] | [`PERM_WRITE`] | [`PERM_EXEC`], or [`PERM_NONE`].
pub type Perms = u32;
/// No access.
pub const PERM_NONE: Perms = sys::FL_PERM_NONE;
/// Reads.
pub const PERM_READ: Perms = sys::FL_PERM_READ;
/// Writes.
pub const PERM_WRITE: Perms = sys::FL_PERM_WRITE;
/// Instruction fetches.
pub const PERM_EXEC: Perms = sys::FL_PERM_EXEC;

/// What a region is, as a callback sees it.
#[derive(Copy, Clone, Debug)]
pub struct RegionInfo {
    /// Its first address.
    pub base: usize,
    /// Its size in bytes.
    pub size: usize,
    /// Its permissions.
    pub perms: Perms,
}

/// A request to fill `len()` bytes at `offset()` of a region into [`FillRequest::dest`].
pub struct FillRequest<'a> {
    raw: &'a sys::fl_fill_request,
}

pub(crate) fn fill_request_from_raw(raw: &sys::fl_fill_request) -> FillRequest<'_> {
    FillRequest { raw }
}

impl<'a> FillRequest<'a> {
    /// The offset in the region, in bytes (page-aligned).
    pub fn offset(&self) -> usize {
        self.raw.offset
    }
    /// How many bytes to fill (whole pages).
    pub fn len(&self) -> usize {
        self.raw.length
    }
    /// Whether the request is empty (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.raw.length == 0
    }
    /// The access that faulted.
    pub fn access(&self) -> Access {
        Access::from_raw(self.raw.access)
    }
    /// The faulting thread's id (0 when unknown).
    pub fn tid(&self) -> i64 {
        self.raw.tid as i64
    }
    /// The region.
    pub fn region(&self) -> RegionInfo {
        RegionInfo { base: self.raw.region.base, size: self.raw.region.size, perms: self.raw.region.perms }
    }
    /// Where the bytes go: write all of it.
    pub fn dest(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.raw.dest as *mut u8, self.raw.length) }
    }
}

/// A fill that failed: the access ends in SIGBUS, and the report names the region and `reason`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FillError {
    /// An errno value (libc::EIO, ...).
    pub errno: i32,
    /// Why, as NUL-terminated bytes (b"the snapshot is unreadable\0"); without the NUL, no reason.
    pub reason: &'static [u8],
}

impl FillError {
    fn reason_ptr(&self) -> *const c_char {
        if self.reason.last() == Some(&0) {
            self.reason.as_ptr() as *const c_char
        } else {
            std::ptr::null()
        }
    }
}

/// A provider fill: runs in signal context on the signal backend and in self-service mode (see the
/// crate's "Signal context"), on a handler thread otherwise.
pub type ProviderFn = fn(req: &mut FillRequest, data: *mut c_void) -> std::result::Result<(), FillError>;

/// A barrier function: runs in signal context on every access the region's protection forbids.
pub type BarrierFn = fn(ctx: &mut Context, region: &RegionInfo, data: *mut c_void) -> Disposition;

/// A pager fill: runs on the pager's threads (ordinary code: it may allocate, lock and do I/O).
pub type PagerFill = dyn Fn(&mut FillRequest) -> std::result::Result<(), FillError> + Send + Sync;

enum Fill {
    None,
    Provider(ProviderFn, *mut c_void),
    Pager(Pager, Arc<PagerFill>),
}

impl Clone for Fill {
    fn clone(&self) -> Fill {
        match self {
            Fill::None => Fill::None,
            Fill::Provider(f, d) => Fill::Provider(*f, *d),
            Fill::Pager(p, f) => Fill::Pager(p.clone(), f.clone()),
        }
    }
}

/// A region's options, built by chaining (defaults as the C++ `RegionOptions`).
///
/// ```
/// use faultline::region::{Backend, Policy, RegionOptions, PERM_READ};
/// let o = RegionOptions::new(Policy::ZeroFill).name("heap").perms(PERM_READ).backend(Backend::Signals);
/// # let _ = o;
/// ```
#[derive(Clone)]
pub struct RegionOptions {
    name: CString,
    policy: Policy,
    perms: Perms,
    fault_around: usize,
    fill: Fill,
    barrier: Option<(BarrierFn, *mut c_void)>,
    store: Option<FileStore>,
    fill_timeout: Duration,
    backend: Backend,
    mode: UserfaultfdMode,
    readahead_max: usize,
    write_back: bool,
    max_resident_pages: usize,
    huge_pages: bool,
    async_readahead: bool,
    remote_pager_socket: Option<RawFd>,
    fill_path: FillPath,
}

impl RegionOptions {
    /// A region of `policy`: read and write, one page per fault, the automatic backend.
    pub fn new(policy: Policy) -> RegionOptions {
        RegionOptions {
            name: CString::new("region").unwrap(),
            policy,
            perms: PERM_READ | PERM_WRITE,
            fault_around: 1,
            fill: Fill::None,
            barrier: None,
            store: None,
            fill_timeout: Duration::from_secs(10),
            backend: Backend::Automatic,
            mode: UserfaultfdMode::HandlerThread,
            readahead_max: 64,
            write_back: false,
            max_resident_pages: 0,
            huge_pages: false,
            async_readahead: true,
            remote_pager_socket: None,
            fill_path: FillPath::Automatic,
        }
    }
    /// The name reports give it (a NUL inside is cut off there).
    pub fn name(mut self, name: &str) -> Self {
        let end = name.find('\0').unwrap_or(name.len());
        self.name = CString::new(&name[..end]).unwrap();
        self
    }
    /// Its permissions.
    pub fn perms(mut self, perms: Perms) -> Self {
        self.perms = perms;
        self
    }
    /// Pages filled per fault on the signal backend (1..512).
    pub fn fault_around(mut self, pages: usize) -> Self {
        self.fault_around = pages;
        self
    }
    /// The backend.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    /// Who fills missing pages on userfaultfd.
    pub fn userfaultfd_mode(mut self, mode: UserfaultfdMode) -> Self {
        self.mode = mode;
        self
    }
    /// userfaultfd: the read-ahead window's limit in pages (1..512).
    pub fn readahead_max(mut self, pages: usize) -> Self {
        self.readahead_max = pages;
        self
    }
    /// userfaultfd provider regions, handler thread: where filled pages live ([`FillPath`]).
    pub fn fill_path(mut self, path: FillPath) -> Self {
        self.fill_path = path;
        self
    }
    /// userfaultfd, handler thread: asynchronous read-ahead of sequential streams (on by default).
    pub fn async_readahead(mut self, on: bool) -> Self {
        self.async_readahead = on;
        self
    }
    /// Track written pages so that [`Region::flush`] and [`Region::evict`] store them (userfaultfd, a
    /// writable store).
    pub fn write_back(mut self, on: bool) -> Self {
        self.write_back = on;
        self
    }
    /// A watermark: beyond it faultline's evictor drops the oldest filled windows. 0: none.
    pub fn max_resident_pages(mut self, pages: usize) -> Self {
        self.max_resident_pages = pages;
        self
    }
    /// 2 MiB pages (transparent huge pages on the signal backend, hugetlbfs on userfaultfd).
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }
    /// How long a fault waits for a fill done elsewhere before it fails (1 ms .. 1 hour).
    pub fn fill_timeout(mut self, timeout: Duration) -> Self {
        self.fill_timeout = timeout;
        self
    }
    /// Provider and pager regions: the pages come from `store` (kept alive by the region).
    pub fn store(mut self, store: &FileStore) -> Self {
        self.store = Some(store.clone());
        self
    }
    /// Provider regions: `fill(req, data)` fills each missing page.
    ///
    /// # Safety
    /// `fill` may run in signal context (see [`ProviderFn`] and the crate's "Signal context"), and
    /// `data` must stay valid while the region exists.
    pub unsafe fn provider(mut self, fill: ProviderFn, data: *mut c_void) -> Self {
        self.fill = Fill::Provider(fill, data);
        self
    }
    /// Pager regions: `pager`'s threads call `fill` for each missing page (run of pages) while the
    /// faulting thread waits.
    ///
    /// ```
    /// use faultline::pager::Pager;
    /// use faultline::region::{Policy, Region, RegionOptions};
    /// let pager = Pager::start("loader", 2).unwrap();
    /// let o = RegionOptions::new(Policy::Pager).pager(&pager, |req| {
    ///     let at = req.offset();
    ///     for (i, b) in req.dest().iter_mut().enumerate() { *b = ((at + i) / 4096) as u8; }
    ///     Ok(())
    /// });
    /// let r = Region::reserve(4 * 4096, &o).unwrap();
    /// assert_eq!(unsafe { *r.as_ptr().add(2 * 4096 + 9) }, 2);
    /// ```
    pub fn pager<F>(mut self, pager: &Pager, fill: F) -> Self
    where
        F: Fn(&mut FillRequest) -> std::result::Result<(), FillError> + Send + Sync + 'static,
    {
        self.fill = Fill::Pager(pager.clone(), Arc::new(fill));
        self
    }
    /// Barrier regions: `barrier(ctx, region, data)` runs on every access the protection forbids.
    ///
    /// # Safety
    /// `barrier` runs in signal context, and `data` must stay valid while the region exists.
    pub unsafe fn barrier(mut self, barrier: BarrierFn, data: *mut c_void) -> Self {
        self.barrier = Some((barrier, data));
        self
    }
    /// Pager regions served by another process: this process's end of a connected Unix stream socket
    /// (the pager process calls [`crate::remote_pager::receive`] on the other end).
    pub fn remote_pager_socket(mut self, socket: RawFd) -> Self {
        self.remote_pager_socket = Some(socket);
        self
    }
}

struct ProviderBox {
    f: ProviderFn,
    data: *mut c_void,
}
struct BarrierBox {
    f: BarrierFn,
    data: *mut c_void,
}

unsafe extern "C" fn provider_trampoline(
    req: *const sys::fl_fill_request,
    data: *mut c_void,
    reason: *mut *const c_char,
) -> c_int {
    let guard = crate::AbortOnUnwind;
    let b = &*(data as *const ProviderBox);
    let mut r = FillRequest { raw: &*req };
    let out = match (b.f)(&mut r, b.data) {
        Ok(()) => 0,
        Err(e) => {
            *reason = e.reason_ptr();
            e.errno
        }
    };
    std::mem::forget(guard);
    out
}

pub(crate) unsafe extern "C" fn pager_trampoline(
    req: *const sys::fl_fill_request,
    data: *mut c_void,
    reason: *mut *const c_char,
) -> c_int {
    // Pager threads: ordinary code. A panic fails the page instead of crossing the C frames.
    let f = &*(data as *const Arc<PagerFill>);
    let mut r = FillRequest { raw: &*req };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut r))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            *reason = e.reason_ptr();
            e.errno
        }
        Err(_) => {
            *reason = b"the pager's fill panicked\0".as_ptr() as *const c_char;
            libc::EIO
        }
    }
}

unsafe extern "C" fn barrier_trampoline(
    ctx: *mut sys::fl_context,
    region: *const sys::fl_region_info,
    data: *mut c_void,
) -> sys::fl_disposition {
    let guard = crate::AbortOnUnwind;
    let b = &*(data as *const BarrierBox);
    let info = RegionInfo { base: (*region).base, size: (*region).size, perms: (*region).perms };
    let d = (b.f)(Context::from_raw(ctx), &info, b.data);
    std::mem::forget(guard);
    match d {
        Disposition::Resolved => sys::FL_RESOLVED,
        Disposition::Declined => sys::FL_DECLINED,
    }
}

/// What a region keeps alive for the callbacks the C library calls with it.
#[allow(dead_code)]
enum Kept {
    Provider(Box<ProviderBox>),
    Pager(Pager, Box<Arc<PagerFill>>),
}

/// A registered region. Dropping it unregisters the region and unmaps a reserved range (after every
/// handler that may be using it has left); [`Region::destroy`] does the same and reports a failure.
pub struct Region {
    raw: *mut sys::fl_region,
    _fill: Option<Kept>,
    _barrier: Option<Box<BarrierBox>>,
    _store: Option<FileStore>,
}

// The C interface is thread-safe; the boxes are only read by callbacks.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// Maps `size` bytes (a multiple of the page size) and registers them with `opts`.
    pub fn reserve(size: usize, opts: &RegionOptions) -> Result<Region> {
        Self::make(None, size, opts)
    }
    /// Registers memory the caller mapped (`addr`, `size`: page-aligned) with `opts`; destroying the
    /// region leaves the memory mapped.
    ///
    /// # Safety
    /// The range must be mapped and stay mapped while the region exists; faultline changes its
    /// protection and contents as the policy says.
    pub unsafe fn adopt(addr: *mut u8, size: usize, opts: &RegionOptions) -> Result<Region> {
        Self::make(Some(addr), size, opts)
    }
    fn make(addr: Option<*mut u8>, size: usize, opts: &RegionOptions) -> Result<Region> {
        let mut o = unsafe { sys::fl_region_options_default() };
        o.name = opts.name.as_ptr();
        o.policy = opts.policy.to_raw();
        o.perms = opts.perms;
        o.fault_around = opts.fault_around;
        o.fill_timeout_ms = opts.fill_timeout.as_millis().clamp(1, u32::MAX as u128) as u32;
        o.backend = opts.backend.to_raw();
        o.userfaultfd_mode = match opts.mode {
            UserfaultfdMode::HandlerThread => sys::FL_UFFD_HANDLER_THREAD,
            UserfaultfdMode::SelfService => sys::FL_UFFD_SELF_SERVICE,
        };
        o.readahead_max = opts.readahead_max;
        o.write_back = opts.write_back as c_int;
        o.max_resident_pages = opts.max_resident_pages;
        o.huge_pages = opts.huge_pages as c_int;
        o.async_readahead = opts.async_readahead as c_int;
        o.remote_pager_socket = opts.remote_pager_socket.unwrap_or(-1);
        o.fill_path = match opts.fill_path {
            FillPath::Automatic => sys::FL_FILL_PATH_AUTOMATIC,
            FillPath::Copy => sys::FL_FILL_PATH_COPY,
            FillPath::ShmemCache => sys::FL_FILL_PATH_SHMEM_CACHE,
        };
        let fill = match &opts.fill {
            Fill::None => None,
            Fill::Provider(f, d) => {
                let b = Box::new(ProviderBox { f: *f, data: *d });
                o.fill = Some(provider_trampoline);
                o.fill_data = &*b as *const ProviderBox as *mut c_void;
                Some(Kept::Provider(b))
            }
            Fill::Pager(p, f) => {
                let b = Box::new(f.clone());
                o.fill = Some(pager_trampoline);
                o.fill_data = &*b as *const Arc<PagerFill> as *mut c_void;
                o.pager = p.raw();
                Some(Kept::Pager(p.clone(), b))
            }
        };
        let barrier = opts.barrier.map(|(f, data)| {
            let b = Box::new(BarrierBox { f, data });
            o.barrier = Some(barrier_trampoline);
            o.barrier_data = &*b as *const BarrierBox as *mut c_void;
            b
        });
        if let Some(s) = &opts.store {
            o.store = s.raw();
        }
        let mut raw: *mut sys::fl_region = std::ptr::null_mut();
        call(|e| unsafe {
            match addr {
                None => sys::fl_region_reserve(size, &o, &mut raw, e),
                Some(a) => sys::fl_region_adopt(a as *mut c_void, size, &o, &mut raw, e),
            }
        })?;
        Ok(Region { raw, _fill: fill, _barrier: barrier, _store: opts.store.clone() })
    }
    /// The region's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        unsafe { sys::fl_region_data(self.raw) as *mut u8 }
    }
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        unsafe { sys::fl_region_size(self.raw) }
    }
    /// Whether it is empty (never, for a registered region).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The backend serving it.
    pub fn backend(&self) -> Backend {
        Backend::from_raw(unsafe { sys::fl_region_backend(self.raw) })
    }
    /// Why that backend was chosen ("userfaultfd (handler thread)", "signals: ...").
    pub fn backend_reason(&self) -> &str {
        unsafe { CStr::from_ptr(sys::fl_region_backend_reason(self.raw)) }.to_str().unwrap_or("")
    }
    /// track_dirty: the indices of the pages written since the last call, ascending; re-arms them.
    pub fn collect_dirty(&self) -> Result<Vec<usize>> {
        let cap = self.len() / page_size();
        let mut pages = vec![0usize; cap];
        let mut count = 0usize;
        call(|e| unsafe { sys::fl_region_collect_dirty(self.raw, pages.as_mut_ptr(), cap, &mut count, e) })?;
        pages.truncate(count.min(cap));
        Ok(pages)
    }
    /// Signal backend: sets the protection of pages [first, first + count) (lowering it re-arms the
    /// policy there).
    pub fn protect(&self, first_page: usize, count: usize, perms: Perms) -> Result<()> {
        call(|e| unsafe { sys::fl_region_protect(self.raw, first_page, count, perms, e) })
    }
    /// Drops pages [first, first + count): the next access fills them again.
    pub fn discard(&self, first_page: usize, count: usize) -> Result<()> {
        call(|e| unsafe { sys::fl_region_discard(self.raw, first_page, count, e) })
    }
    /// write_back: stores the written pages; returns how many.
    pub fn flush(&self) -> Result<usize> {
        let mut n = 0usize;
        call(|e| unsafe { sys::fl_region_flush(self.raw, &mut n, e) })?;
        Ok(n)
    }
    /// Drops pages [first, first + count) after storing the written ones; returns how many it stored.
    pub fn evict(&self, first_page: usize, count: usize) -> Result<usize> {
        let mut n = 0usize;
        call(|e| unsafe { sys::fl_region_evict(self.raw, first_page, count, &mut n, e) })?;
        Ok(n)
    }
    /// Its counters.
    pub fn stats(&self) -> RegionStats {
        let mut s = std::mem::MaybeUninit::<sys::fl_region_stats>::zeroed();
        unsafe { sys::fl_region_get_stats(self.raw, s.as_mut_ptr()) };
        RegionStats::from_raw(&unsafe { s.assume_init() })
    }
    /// Unregisters the region now, reporting a failure (drop ignores it; on failure the memory is left
    /// mapped rather than freed under a thread that still uses it).
    pub fn destroy(mut self) -> Result<()> {
        let raw = std::mem::replace(&mut self.raw, std::ptr::null_mut());
        call(|e| unsafe { sys::fl_region_destroy(raw, e) })
    }
    pub(crate) fn raw(&self) -> *const sys::fl_region {
        self.raw
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            let mut err = crate::error::new_err();
            unsafe { sys::fl_region_destroy(self.raw, &mut err) };
        }
    }
}

/// The page size.
pub fn page_size() -> usize {
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Makes the pages of [addr, addr + len) present as an access of kind `access` would (so that system
/// calls meet no missing page).
///
/// # Safety
/// The range must be memory faultline serves, or ordinary mapped memory.
pub unsafe fn prefault(addr: *const u8, len: usize, access: Access) -> Result<()> {
    call(|e| sys::fl_prefault(addr as *const c_void, len, access.to_raw(), e))
}

/// How many regions are registered.
pub fn region_count() -> usize {
    unsafe { sys::fl_region_count() }
}

/// A file as a store: a private, lazily read view of it, written back explicitly. Cheap to clone (the
/// clones share it); it stays open while any region uses it.
///
/// ```
/// use faultline::region::FileStore;
/// let e = FileStore::open("/nonexistent", 0, false).unwrap_err();
/// assert!(e.message().contains("nonexistent"));
/// ```
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<StoreInner>,
}

struct StoreInner(*mut sys::fl_store);
unsafe impl Send for StoreInner {}
unsafe impl Sync for StoreInner {}
impl Drop for StoreInner {
    fn drop(&mut self) {
        unsafe { sys::fl_store_destroy(self.0) }
    }
}

impl FileStore {
    /// Opens `path` (read-only unless `writable`); the region's offset 0 is the file's `offset` (a
    /// multiple of the page size).
    pub fn open(path: &str, offset: u64, writable: bool) -> Result<FileStore> {
        let p = CString::new(path).map_err(|_| Error::new(Errc::InvalidArgument, "FileStore::open: a NUL in the path"))?;
        let mut raw: *mut sys::fl_store = std::ptr::null_mut();
        call(|e| unsafe { sys::fl_file_store_open(p.as_ptr(), offset, writable as c_int, &mut raw, e) })?;
        Ok(FileStore { inner: Arc::new(StoreInner(raw)) })
    }
    fn raw(&self) -> *mut sys::fl_store {
        self.inner.0
    }
}

/// Protection changes of signal-backend regions, gathered and applied with as few system calls as
/// possible. Dropping it commits what is left.
pub struct ProtectBatch {
    raw: *mut sys::fl_protect_batch,
}

impl ProtectBatch {
    /// An empty batch.
    pub fn new() -> Result<ProtectBatch> {
        let mut raw: *mut sys::fl_protect_batch = std::ptr::null_mut();
        call(|e| unsafe { sys::fl_protect_batch_create(&mut raw, e) })?;
        Ok(ProtectBatch { raw })
    }
    /// Queues `region.protect(first_page, count, perms)`.
    pub fn add(&mut self, region: &Region, first_page: usize, count: usize, perms: Perms) -> Result<()> {
        call(|e| unsafe { sys::fl_protect_batch_add(self.raw, region.raw(), first_page, count, perms, e) })
    }
    /// Applies what is queued; returns the mprotect calls made.
    pub fn commit(&mut self) -> Result<usize> {
        let mut n = 0usize;
        call(|e| unsafe { sys::fl_protect_batch_commit(self.raw, &mut n, e) })?;
        Ok(n)
    }
}

impl Drop for ProtectBatch {
    fn drop(&mut self) {
        unsafe { sys::fl_protect_batch_destroy(self.raw) }
    }
}

/// A region's counters ([`Region::stats`]).
#[derive(Copy, Clone, Debug, Default)]
pub struct RegionStats {
    /// Faults handed to the region.
    pub faults: u64,
    /// Runs of pages filled.
    pub fills: u64,
    /// The pages of those runs.
    pub pages_filled: u64,
    /// Of those, pages beyond the faulting one.
    pub readahead_pages: u64,
    /// Fills that failed.
    pub failures: u64,
    /// Pages evicted.
    pub pages_evicted: u64,
    /// Pages written back.
    pub pages_written_back: u64,
    /// fill_ns_log2[k]: fills that took [2^k, 2^(k+1)) ns.
    pub fill_ns_log2: [u64; 32],
}

impl RegionStats {
    fn from_raw(s: &sys::fl_region_stats) -> RegionStats {
        RegionStats {
            faults: s.faults,
            fills: s.fills,
            pages_filled: s.pages_filled,
            readahead_pages: s.readahead_pages,
            failures: s.failures,
            pages_evicted: s.pages_evicted,
            pages_written_back: s.pages_written_back,
            fill_ns_log2: s.fill_ns_log2,
        }
    }
    /// The fill latency below which fraction `q` (0..=1) of the fills fall (the upper edge of its
    /// bucket), in ns; 0 without fills.
    pub fn fill_ns_quantile(&self, q: f64) -> u64 {
        let total: u64 = self.fill_ns_log2.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (k, n) in self.fill_ns_log2.iter().enumerate() {
            seen += n;
            if seen as f64 >= want && seen > 0 {
                return 2u64 << k;
            }
        }
        2u64 << 31
    }
}

/// One thread's share of the regions' work, counted by the thread that did it.
#[derive(Copy, Clone, Debug, Default)]
pub struct ThreadStats {
    /// The thread's id.
    pub tid: i64,
    /// Faults it handled.
    pub faults: u64,
    /// Runs of pages it filled.
    pub fills: u64,
    /// Their pages.
    pub pages_filled: u64,
    /// Of those, pages beyond the faulting one.
    pub readahead_pages: u64,
    /// Fills that failed.
    pub failures: u64,
    /// Pages it evicted.
    pub pages_evicted: u64,
    /// Pages it wrote back.
    pub pages_written_back: u64,
    /// The time its fills took, in all.
    pub fill_ns: u64,
}

impl ThreadStats {
    fn from_raw(s: &sys::fl_thread_stats) -> ThreadStats {
        ThreadStats {
            tid: s.tid as i64,
            faults: s.faults,
            fills: s.fills,
            pages_filled: s.pages_filled,
            readahead_pages: s.readahead_pages,
            failures: s.failures,
            pages_evicted: s.pages_evicted,
            pages_written_back: s.pages_written_back,
            fill_ns: s.fill_ns,
        }
    }
}

/// The calling thread's counters. Async-signal-safe.
pub fn this_thread_stats() -> ThreadStats {
    let mut s = sys::fl_thread_stats::default();
    unsafe { sys::fl_this_thread_stats(&mut s) };
    ThreadStats::from_raw(&s)
}

/// Each userfaultfd handler thread's counters, in the order they started.
pub fn userfaultfd_handler_thread_stats() -> Vec<ThreadStats> {
    let mut v = vec![sys::fl_thread_stats::default(); 64];
    let n = unsafe { sys::fl_handler_thread_stats(v.as_mut_ptr(), v.len()) };
    v.truncate(n.min(64));
    v.iter().map(ThreadStats::from_raw).collect()
}

/// Sets how many userfaultfd handler threads start (1..64; before the first userfaultfd region).
pub fn set_userfaultfd_handler_threads(n: u32) -> Result<()> {
    call(|e| unsafe { sys::fl_set_userfaultfd_handler_threads(n, e) })
}

/// How many userfaultfd handler threads run.
pub fn userfaultfd_handler_threads() -> u32 {
    unsafe { sys::fl_userfaultfd_handler_threads() }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("base", &self.as_ptr()).field("len", &self.len()).field("backend", &self.backend()).finish()
    }
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ProtectBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectBatch").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for FillRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillRequest").field("offset", &self.offset()).field("len", &self.len()).finish()
    }
}

impl std::fmt::Debug for RegionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionOptions").field("name", &self.name).field("policy", &self.policy).field("backend", &self.backend).finish_non_exhaustive()
    }
}
