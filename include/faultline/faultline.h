/* faultline/faultline.h: the C interface to faultline.
 *
 * Everything the C++ API offers, for C11 programs: the trap dispatcher, the fault context, regions with
 * their policies, write tracking, threads (attach, stop-the-world, blocking regions, preemption, call
 * injection) and the crash report. The guarantees are the C++ ones (see the C++ headers named below):
 *
 *   - Errors. A call that can fail returns an int: 0 on success, otherwise a negative fl_errc. When the
 *     caller passes an fl_error*, it receives the code and a NUL-terminated message (truncated to fit).
 *     No C++ exception ever crosses this interface; an allocation failure is FL_ESYSTEM.
 *   - Signal context. Functions marked "async-signal-safe" may be called from fault handlers; the
 *     others may not.
 *   - Thread-safety. Every function is thread-safe unless it says otherwise.
 */
#ifndef FAULTLINE_FAULTLINE_H
#define FAULTLINE_FAULTLINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors (faultline/result.hpp) ---------------------------------------------------------- */

typedef enum fl_errc {
  FL_OK = 0,
  FL_EINVAL = -1,        /* an argument faultline rejects */
  FL_ENOTINSTALLED = -2, /* the call needs install() or an attached thread first */
  FL_EEXIST = -3,        /* overlapping registration, a signal owned by someone else */
  FL_ENOTFOUND = -4,     /* no such handler / region / thread */
  FL_ENOSPACE = -5,      /* a fixed-capacity table or a system limit is full */
  FL_EOVERRIDDEN = -6,   /* another component replaced faultline's signal handler */
  FL_EUNSUPPORTED = -7,  /* this kernel or machine cannot do it */
  FL_ESYSTEM = -8,       /* a system call failed */
  FL_EBUSY = -9,         /* not allowed from here right now (e.g. inside a fault handler) */
  FL_ETIMEDOUT = -10     /* a bounded wait ran out */
} fl_errc;

typedef struct fl_error {
  int code;             /* an fl_errc */
  char message[256];
} fl_error;

/* "invalid_argument", ... for an fl_errc. */
const char* fl_errc_name(int code);

/* ---- trap dispatcher (faultline/trap.hpp) ------------------------------------------------------ */

enum {
  FL_TRAP_SEGV = 1u << 0,
  FL_TRAP_BUS = 1u << 1,
  FL_TRAP_ILL = 1u << 2,
  FL_TRAP_FPE = 1u << 3,
  FL_TRAP_TRAP = 1u << 4,
  FL_TRAP_ABRT = 1u << 5, /* abort(), failed asserts, uncaught C++ exceptions: reported, then the previous action */
  FL_TRAP_MEMORY = FL_TRAP_SEGV | FL_TRAP_BUS
};

typedef enum fl_disposition { FL_DECLINED = 0, FL_RESOLVED = 1 } fl_disposition;

/* The fault context (faultline/context.hpp): valid only during the handler call that receives it. */
typedef struct fl_context fl_context;

typedef fl_disposition (*fl_handler)(fl_context* ctx, void* data); /* runs in signal context */

/* Takes the signals in `signals` (FL_TRAP_* bits; 0 means FL_TRAP_MEMORY) and attaches the caller. */
int fl_install(unsigned signals, fl_error* err);
/* Restores the previous actions. FL_EOVERRIDDEN if someone installed over faultline, unless force. */
int fl_uninstall(int force, fl_error* err);
/* 1 while faultline holds at least one signal. Async-signal-safe. */
int fl_installed(void);
/* Re-installs faultline over newcomers, chaining to them. */
int fl_reassert(fl_error* err);

typedef struct fl_handler_id {
  uint32_t slot, generation;
} fl_handler_id;
int fl_add_handler(fl_handler fn, void* data, unsigned signals, fl_handler_id* id_out, fl_error* err);
int fl_remove_handler(fl_handler_id id, fl_error* err);

/* Call before leaving a handler by longjmp. Async-signal-safe. */
void fl_leave_handler(void);
/* 1 inside faultline's handler on this thread. Async-signal-safe. */
int fl_in_handler(void);

typedef struct fl_counters {
  uint64_t seen, resolved, passed, stack_overflows;
} fl_counters;
/* Async-signal-safe. */
fl_counters fl_trap_counters(int sig);

/* ---- fault context (faultline/context.hpp, faultline/regs.hpp); all async-signal-safe ------------ */

typedef enum fl_access { FL_ACCESS_UNKNOWN = 0, FL_ACCESS_READ, FL_ACCESS_WRITE, FL_ACCESS_EXECUTE } fl_access;

int fl_context_signal(const fl_context* ctx);
int fl_context_code(const fl_context* ctx);
uintptr_t fl_context_address(const fl_context* ctx);
fl_access fl_context_access(const fl_context* ctx);
uintptr_t fl_context_pc(const fl_context* ctx);
uintptr_t fl_context_sp(const fl_context* ctx);
/* General registers by index (x86-64: rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rip rflags), see
   fl_reg_count/fl_reg_name. Returns 0 for an index out of range. */
unsigned fl_reg_count(void);
const char* fl_reg_name(unsigned index);
uint64_t fl_context_reg(const fl_context* ctx, unsigned index);
/* Sets a register for when the handler returns. 0, or FL_EINVAL for an index it cannot set. */
int fl_context_set_reg(fl_context* ctx, unsigned index, uint64_t value);
void fl_context_set_pc(fl_context* ctx, uintptr_t pc);
/* 16-byte vector registers (xmm0-15). 0, or FL_EINVAL. */
int fl_context_vector_reg(const fl_context* ctx, unsigned index, uint8_t out[16]);
int fl_context_set_vector_reg(fl_context* ctx, unsigned index, const uint8_t in[16]);
/* The ucontext_t*, for what this interface does not cover. */
void* fl_context_ucontext(fl_context* ctx);

/* ---- regions (faultline/region.hpp) ---------------------------------------------------------- */

typedef enum fl_policy {
  FL_POLICY_GUARD = 0,
  FL_POLICY_ZERO_FILL,
  FL_POLICY_PROVIDER,
  FL_POLICY_PAGER,
  FL_POLICY_TRACK_DIRTY,
  FL_POLICY_BARRIER
} fl_policy;

enum { FL_PERM_NONE = 0, FL_PERM_READ = 1, FL_PERM_WRITE = 2, FL_PERM_EXEC = 4 };

typedef struct fl_region_info {
  const char* name;
  uintptr_t base;
  size_t size;
  fl_policy policy;
  unsigned perms;
} fl_region_info;

typedef struct fl_fill_request {
  fl_region_info region;
  size_t offset, length; /* bytes, page-aligned */
  fl_access access;
  uintptr_t pc;
  long tid;
  void* dest;            /* write `length` bytes here */
} fl_fill_request;

/* Returns 0 when the pages are written, or an errno value; *reason may be set to a static string. */
typedef int (*fl_fill_fn)(const fl_fill_request* req, void* data, const char** reason);
typedef fl_disposition (*fl_barrier_fn)(fl_context* ctx, const fl_region_info* region, void* data);

typedef struct fl_pager fl_pager;
/* Starts `threads` (1..64) pager threads. Destroy with fl_pager_release once no region uses it. */
int fl_pager_start(const char* name, unsigned threads, fl_pager** out, fl_error* err);
void fl_pager_release(fl_pager* pager);

typedef enum fl_backend { FL_BACKEND_AUTOMATIC = 0, FL_BACKEND_SIGNALS, FL_BACKEND_USERFAULTFD } fl_backend;
typedef enum fl_uffd_mode { FL_UFFD_HANDLER_THREAD = 0, FL_UFFD_SELF_SERVICE = 1 } fl_uffd_mode;
/* FillPath (backend.hpp): where a userfaultfd provider region's filled pages live. */
typedef enum fl_fill_path {
  FL_FILL_PATH_AUTOMATIC = 0,  /* the shmem cache for a file store where the kernel has it, copies otherwise */
  FL_FILL_PATH_COPY = 1,       /* UFFDIO_COPY into private pages */
  FL_FILL_PATH_SHMEM_CACHE = 2 /* a memfd cache filled in place, mapped by minor faults (UFFDIO_CONTINUE) */
} fl_fill_path;

/* Stores (faultline/store.hpp): where provider and pager regions get their pages, and where write-back
   puts them. */
typedef struct fl_store fl_store;
/* FileStore::open: a private, lazily read view of the file at `path` from byte `offset` (page-aligned);
   `writable`: write-back writes the file. Destroy with fl_store_destroy once no region uses it. */
int fl_file_store_open(const char* path, uint64_t offset, int writable, fl_store** out, fl_error* err);
void fl_store_destroy(fl_store* store);

typedef struct fl_region_options {
  const char* name;          /* NULL: "region" */
  fl_policy policy;
  unsigned perms;            /* FL_PERM_* */
  size_t fault_around;       /* 0 is taken as 1 */
  fl_barrier_fn barrier;
  void* barrier_data;
  fl_fill_fn fill;
  void* fill_data;
  fl_pager* pager;
  unsigned fill_timeout_ms;  /* 0: 10000 */
  fl_backend backend;        /* automatic: userfaultfd where the kernel allows it (see region.hpp) */
  /* The rest as RegionOptions has them (region.hpp); 0 is the default unless said otherwise. */
  fl_store* store;               /* provider/pager: the pages come from this store (instead of `fill`) */
  size_t readahead_max;          /* userfaultfd: the read-ahead window's limit in pages; 0: 64 */
  fl_uffd_mode userfaultfd_mode; /* handler thread (default) or self-service */
  int write_back;                /* provider/pager on userfaultfd with a writable store: track written pages */
  size_t max_resident_pages;     /* a watermark for faultline's evictor; 0: none */
  int huge_pages;                /* 2 MiB pages */
  int async_readahead;           /* 1 (fl_region_options_default): asynchronous read-ahead */
  int remote_pager_socket;       /* a pager in another process (remote_pager.hpp); -1 (default): none */
  int fill_path;                 /* an fl_fill_path: provider regions on userfaultfd (handler thread) */
} fl_region_options;

/* Defaults: zero_fill, read+write, one page per fault, asynchronous read-ahead, no remote pager. */
fl_region_options fl_region_options_default(void);

typedef struct fl_region fl_region;
int fl_region_reserve(size_t size, const fl_region_options* opts, fl_region** out, fl_error* err);
int fl_region_adopt(void* addr, size_t size, const fl_region_options* opts, fl_region** out, fl_error* err);
/* Unregisters (and unmaps a reserved range). NULL is ignored. */
int fl_region_destroy(fl_region* region, fl_error* err);
void* fl_region_data(const fl_region* region);
size_t fl_region_size(const fl_region* region);
/* track_dirty: writes up to `cap` dirty page indices to `pages`, sets *count to how many were dirty
   (all of them are re-armed; if *count > cap, the rest are lost: pass cap >= the region's pages). */
int fl_region_collect_dirty(fl_region* region, size_t* pages, size_t cap, size_t* count, fl_error* err);
int fl_region_protect(fl_region* region, size_t first_page, size_t count, unsigned perms, fl_error* err);
int fl_region_discard(fl_region* region, size_t first_page, size_t count, fl_error* err);
/* The backend serving the region, and why it was chosen (a string the region owns). */
fl_backend fl_region_backend(const fl_region* region);
const char* fl_region_backend_reason(const fl_region* region);
/* write_back: stores the written pages and sets *written (may be NULL) to how many (Region::flush);
   drops pages [first, first + count) after storing the written ones, and sets *written_back (may be
   NULL) to how many it stored (Region::evict). */
int fl_region_flush(fl_region* region, size_t* written, fl_error* err);
int fl_region_evict(fl_region* region, size_t first_page, size_t count, size_t* written_back, fl_error* err);
/* Protection changes of signal-backend regions gathered and applied with as few system calls as
   possible (ProtectBatch): add, then commit (*calls, may be NULL: the mprotect calls made). Destroying
   a batch commits what is left. Not thread-safe: one thread uses a batch. */
typedef struct fl_protect_batch fl_protect_batch;
int fl_protect_batch_create(fl_protect_batch** out, fl_error* err);
int fl_protect_batch_add(fl_protect_batch* batch, const fl_region* region, size_t first_page, size_t count,
                         unsigned perms, fl_error* err);
int fl_protect_batch_commit(fl_protect_batch* batch, size_t* calls, fl_error* err);
void fl_protect_batch_destroy(fl_protect_batch* batch);
int fl_prefault(const void* addr, size_t len, fl_access access, fl_error* err);
size_t fl_region_count(void);
/* The region's counters (Region::stats() in region.hpp); all zero for NULL. */
typedef struct fl_region_stats {
  uint64_t faults, fills, pages_filled, readahead_pages, failures, pages_evicted, pages_written_back;
  uint64_t fill_ns_log2[32]; /* fills that took [2^k, 2^(k+1)) ns */
} fl_region_stats;
void fl_region_get_stats(const fl_region* region, fl_region_stats* out);
/* One thread's share of the regions' work (ThreadStats in region.hpp: counted by the thread that did
   the work; in handler-thread mode, the userfaultfd handler thread). */
typedef struct fl_thread_stats {
  long tid;
  uint64_t faults, fills, pages_filled, readahead_pages, failures, pages_evicted, pages_written_back;
  uint64_t fill_ns; /* the time its fills took, in all */
} fl_thread_stats;
/* The calling thread's counters. Async-signal-safe. */
void fl_this_thread_stats(fl_thread_stats* out);
/* Writes up to `cap` userfaultfd handler threads' counters to `out`; returns how many threads run. */
size_t fl_handler_thread_stats(fl_thread_stats* out, size_t cap);
/* set_userfaultfd_handler_threads / userfaultfd_handler_threads (backend.hpp). */
int fl_set_userfaultfd_handler_threads(unsigned n, fl_error* err);
unsigned fl_userfaultfd_handler_threads(void);

/* ---- a pager in another process (faultline/remote_pager.hpp) --------------------------------- */

/* In the pager process: receives the region the program sends over `socket` (the program reserved it
   with remote_pager_socket set to its end). Destroy with fl_remote_region_destroy. */
typedef struct fl_remote_region fl_remote_region;
int fl_remote_pager_receive(int socket, fl_remote_region** out, fl_error* err);
/* The region's name (static for the handle's life), base address and size in the program. */
const char* fl_remote_region_name(const fl_remote_region* region);
uint64_t fl_remote_region_base(const fl_remote_region* region);
uint64_t fl_remote_region_size(const fl_remote_region* region);
/* Serves the program's requests with `fill` (it writes req->dest, a buffer of this process) until the
   program closes the socket or `stop` (may be NULL; checked at least every 100 ms) returns nonzero. */
int fl_remote_region_serve(fl_remote_region* region, fl_fill_fn fill, void* data, int (*stop)(void*), void* stop_data,
                           fl_error* err);
void fl_remote_region_destroy(fl_remote_region* region);

/* ---- emulation and healing (faultline/emulate.hpp); all async-signal-safe -------------------- */

typedef enum fl_emulate_status {
  FL_EMULATE_OK = 0,
  FL_EMULATE_UNREADABLE_PC,
  FL_EMULATE_UNDECODABLE,
  FL_EMULATE_NO_MEMORY_OPERAND,
  FL_EMULATE_UNSUPPORTED,
  FL_EMULATE_NOT_ATOMIC,
  FL_EMULATE_VEX,
  FL_EMULATE_SEGMENT,
  FL_EMULATE_ACCESS_FAILED,
  FL_EMULATE_NOT_A_POINTER,
  FL_EMULATE_NOT_FORWARDED
} fl_emulate_status;
/* "ok", "unsupported", ... */
const char* fl_emulate_status_name(fl_emulate_status status);
/* Emulates the faulting instruction with its memory access redirected to `target`, then advances the
   PC; on anything but FL_EMULATE_OK the context is unchanged. */
fl_emulate_status fl_emulate(fl_context* ctx, uintptr_t target);
/* Rewrites the register the faulting address came from by the distance `forward` moves it (the new
   address of what lay at old_address, or 0), so that the instruction re-executes on the moved object. */
typedef uintptr_t (*fl_forward_fn)(uintptr_t old_address, void* data);
fl_emulate_status fl_heal(fl_context* ctx, fl_forward_fn forward, void* data);

/* ---- threads (faultline/thread.hpp, world.hpp, preempt.hpp, inject.hpp) ---------------------- */

/* Attaches the calling thread (nests); fl_thread_detach undoes one attach. altstack_size: 0 for the
   default, else at least fl_smallest_usable_altstack(). A thread's own alternate stack smaller than
   that (Rust's standard library sets 8 KiB) is replaced while the thread is attached. */
int fl_thread_attach(size_t altstack_size, fl_error* err);
/* The smallest alternate signal stack faultline's handler runs on (AT_MINSIGSTKSZ + 32 KiB). */
size_t fl_smallest_usable_altstack(void);
void fl_thread_detach(void);
int fl_thread_attached(void);

int fl_world_stop(unsigned timeout_ms, fl_error* err); /* 0: 5000 ms */
int fl_world_resume(fl_error* err);
int fl_world_stopped(void);
typedef enum fl_root_kind { FL_ROOT_REGISTERS, FL_ROOT_SIMD, FL_ROOT_STACK, FL_ROOT_ALTSTACK } fl_root_kind;
typedef void (*fl_root_visitor)(const uintptr_t* begin, const uintptr_t* end, fl_root_kind kind, long tid,
                                void* data);
int fl_world_scan_roots(fl_root_visitor fn, void* data, fl_error* err);

/* Blocking regions: the calling thread will block in a system call; a stop does not signal it. */
void fl_blocking_enter(void);
void fl_blocking_leave(void);

typedef enum fl_clock { FL_CLOCK_CPU_TIME = 0, FL_CLOCK_WALL = 1 } fl_clock;
typedef void (*fl_preempt_handler)(fl_context* ctx, void* data); /* signal context */
int fl_preempt_enable(uint64_t budget_ns, fl_preempt_handler fn, void* data, fl_clock clock, fl_error* err);
void fl_preempt_disable(void); /* async-signal-safe */

/* From a signal handler: run fn(arg) in the interrupted thread, then resume it exactly. Returns 0, or a
   positive reason (1 no FP state, 2 no stack room, 3 on the alternate stack, 4 no context).
   Async-signal-safe. */
int fl_inject_call(fl_context* ctx, void (*fn)(void*), void* arg);

/* ---- crash report (faultline/report.hpp) ----------------------------------------------------- */

/* color: -1 automatic, 0 never, 1 always. max_frames 0: 64. */
int fl_report_enable(int fd, int color, int backtrace, unsigned max_frames, fl_error* err);
void fl_report_disable(void);
int fl_report_enabled(void);

/* The library's version, "0.1.0". */
const char* fl_version(void);

#ifdef __cplusplus
}
#endif

#endif /* FAULTLINE_FAULTLINE_H */
