/* tests/c/test_c_api.c: every part of faultline's C interface, from a C11 program.
 *
 * Each check prints what failed and the program exits non-zero; the crash report is checked in a
 * forked child that must die by SIGSEGV with the report on its stderr. Every function declared in
 * faultline.h is called here, each in a way that checks its effect (tests/c/check_c_api_coverage.sh
 * fails when one is not called at all). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "faultline/faultline.h"

static int failures = 0;
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                          \
    }                                                                      \
  } while (0)

static size_t page;

/* ---- trap and context ---- */

static char* volatile g_page;
static volatile int g_seen_signal, g_seen_access, g_seen_code, g_seen_ucontext_pc_ok;
static volatile uintptr_t g_seen_addr, g_seen_pc;

/* Whether the fault is on g_page (the handlers decline the others). */
static int on_g_page(fl_context* ctx) {
  uintptr_t a = fl_context_address(ctx);
  return a >= (uintptr_t)g_page && a < (uintptr_t)g_page + page;
}

static fl_disposition on_fault(fl_context* ctx, void* data) {
  (void)data;
  if (!on_g_page(ctx)) return FL_DECLINED;
  uintptr_t a = fl_context_address(ctx);
  g_seen_signal = fl_context_signal(ctx);
  g_seen_code = fl_context_code(ctx);
  g_seen_access = (int)fl_context_access(ctx);
  g_seen_addr = a;
  g_seen_pc = fl_context_pc(ctx);
  const ucontext_t* uc = fl_context_ucontext(ctx);
#if defined(__x86_64__)
  g_seen_ucontext_pc_ok = uc != NULL && (uintptr_t)uc->uc_mcontext.gregs[REG_RIP] == fl_context_pc(ctx);
  const int sp_reg = 7; /* rsp */
#elif defined(__aarch64__)
  g_seen_ucontext_pc_ok = uc != NULL && (uintptr_t)uc->uc_mcontext.pc == fl_context_pc(ctx);
  const int sp_reg = 31; /* sp */
#endif
  uint8_t v[16];
  if (fl_context_vector_reg(ctx, 0, v) != 0) return FL_DECLINED;
  if (fl_context_sp(ctx) == 0 || fl_context_reg(ctx, sp_reg) != fl_context_sp(ctx)) return FL_DECLINED;
  mprotect(g_page, page, PROT_READ | PROT_WRITE);
  return FL_RESOLVED;
}

static void test_trap(void) {
  fl_error err;
  CHECK(fl_install(0, &err) == 0);
  CHECK(fl_installed() == 1);
  g_page = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  fl_handler_id id;
  CHECK(fl_add_handler(on_fault, NULL, FL_TRAP_SEGV, &id, &err) == 0);
  fl_counters before = fl_trap_counters(SIGSEGV);
  ((volatile char*)g_page)[100] = 7; /* volatile: not moved past the checks below */
  CHECK(g_seen_signal == SIGSEGV);
  CHECK(g_seen_code == SEGV_ACCERR);
  CHECK(g_seen_ucontext_pc_ok == 1);
  CHECK(g_seen_access == FL_ACCESS_WRITE);
  CHECK(g_seen_addr == (uintptr_t)g_page + 100);
  CHECK(g_seen_pc != 0);
  CHECK(fl_trap_counters(SIGSEGV).resolved == before.resolved + 1);
  CHECK(fl_remove_handler(id, &err) == 0);
  CHECK(fl_remove_handler(id, &err) == FL_ENOTFOUND && err.code == FL_ENOTFOUND && err.message[0] != '\0');
  CHECK(fl_add_handler(NULL, NULL, 0, &id, &err) == FL_EINVAL);
  CHECK(strcmp(fl_errc_name(FL_EINVAL), "invalid_argument") == 0);
#if defined(__x86_64__)
  CHECK(fl_reg_count() > 16 && strcmp(fl_reg_name(0), "rax") == 0);
#elif defined(__aarch64__)
  CHECK(fl_reg_count() > 16 && strcmp(fl_reg_name(0), "x0") == 0);
#endif
  CHECK(fl_in_handler() == 0);
  munmap(g_page, page);
}

/* ---- changing the context: registers, vector registers, the PC ---- */

/* fl_test_load(p) loads 8 bytes from p into rax and returns; fl_test_load_xmm(p) loads 16 bytes from p
   into xmm0 and returns its low 8 bytes. A handler that sets the destination register and moves the PC
   to the label after the load makes them return what it set, without touching the page. */
uint64_t fl_test_load(const void* p);
uint64_t fl_test_load_xmm(const void* p);
extern char fl_test_load_resume[], fl_test_load_xmm_resume[];
#if defined(__x86_64__)
__asm__(
    "  .text\n"
    "  .globl fl_test_load, fl_test_load_resume, fl_test_load_xmm, fl_test_load_xmm_resume\n"
    "  .type fl_test_load, @function\n"
    "fl_test_load:\n"
    "  movq (%rdi), %rax\n"
    "fl_test_load_resume:\n"
    "  ret\n"
    "  .size fl_test_load, .-fl_test_load\n"
    "  .type fl_test_load_xmm, @function\n"
    "fl_test_load_xmm:\n"
    "  movdqu (%rdi), %xmm0\n"
    "fl_test_load_xmm_resume:\n"
    "  movq %xmm0, %rax\n"
    "  ret\n"
    "  .size fl_test_load_xmm, .-fl_test_load_xmm\n");
#elif defined(__aarch64__)
/* aarch64: the result register is x0 (register 0) and the vector register v0, as on x86-64's rax/xmm0. */
__asm__(
    "  .text\n"
    "  .globl fl_test_load, fl_test_load_resume, fl_test_load_xmm, fl_test_load_xmm_resume\n"
    "  .type fl_test_load, %function\n"
    "fl_test_load:\n"
    "  ldr x0, [x0]\n"
    "fl_test_load_resume:\n"
    "  ret\n"
    "  .size fl_test_load, .-fl_test_load\n"
    "  .type fl_test_load_xmm, %function\n"
    "fl_test_load_xmm:\n"
    "  ldr q0, [x0]\n"
    "fl_test_load_xmm_resume:\n"
    "  fmov x0, d0\n"
    "  ret\n"
    "  .size fl_test_load_xmm, .-fl_test_load_xmm\n");
#endif

static volatile int g_set_failures;

static fl_disposition on_load(fl_context* ctx, void* data) {
  (void)data;
  if (!on_g_page(ctx)) return FL_DECLINED;
  uintptr_t pc = fl_context_pc(ctx);
  if (pc == (uintptr_t)&fl_test_load) {
    if (fl_context_set_reg(ctx, 0, 0x1234567890abcdefULL) != 0) g_set_failures++; /* 0 = rax / x0 */
    if (fl_context_set_reg(ctx, 1000, 1) != FL_EINVAL) g_set_failures++;
    fl_context_set_pc(ctx, (uintptr_t)fl_test_load_resume);
    return FL_RESOLVED;
  }
  if (pc == (uintptr_t)&fl_test_load_xmm) {
    uint8_t v[16];
    for (int i = 0; i < 16; ++i) v[i] = (uint8_t)(0xA0 + i);
    if (fl_context_set_vector_reg(ctx, 0, v) != 0) g_set_failures++;
    if (fl_context_set_vector_reg(ctx, 99, v) != FL_EINVAL) g_set_failures++;
    fl_context_set_pc(ctx, (uintptr_t)fl_test_load_xmm_resume);
    return FL_RESOLVED;
  }
  return FL_DECLINED;
}

static void test_context_setters(void) {
  fl_error err;
  g_page = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  fl_handler_id id;
  CHECK(fl_add_handler(on_load, NULL, FL_TRAP_SEGV, &id, &err) == 0);
  CHECK(fl_test_load(g_page + 8) == 0x1234567890abcdefULL);
  uint64_t low = 0;
  for (int i = 7; i >= 0; --i) low = (low << 8) | (uint64_t)(0xA0 + i);
  CHECK(fl_test_load_xmm(g_page + 16) == low);
  CHECK(g_set_failures == 0);
  CHECK(fl_remove_handler(id, &err) == 0);
  munmap(g_page, page);
}

/* ---- emulation and healing: the handler emulates the load with its access redirected ---- */

static volatile uint64_t g_shadow = 0x5151515151515151ULL;
static volatile int g_heal_status = -1;

static uintptr_t forward_nothing(uintptr_t old_address, void* data) {
  (void)old_address;
  (void)data;
  return 0; /* nothing has moved */
}

static fl_disposition on_emulated_load(fl_context* ctx, void* data) {
  (void)data;
  if (!on_g_page(ctx)) return FL_DECLINED;
  g_heal_status = (int)fl_heal(ctx, forward_nothing, NULL); /* declined: the context is unchanged */
  return fl_emulate(ctx, (uintptr_t)&g_shadow) == FL_EMULATE_OK ? FL_RESOLVED : FL_DECLINED;
}

static void test_emulation(void) {
  fl_error err;
  g_page = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  fl_handler_id id;
  CHECK(fl_add_handler(on_emulated_load, NULL, FL_TRAP_SEGV, &id, &err) == 0);
  CHECK(fl_test_load(g_page + 8) == 0x5151515151515151ULL);
  CHECK(g_heal_status != FL_EMULATE_OK && g_heal_status != -1);
  CHECK(strcmp(fl_emulate_status_name(FL_EMULATE_OK), "ok") == 0);
  CHECK(strcmp(fl_emulate_status_name(FL_EMULATE_NOT_FORWARDED), "not_forwarded") == 0);
  CHECK(fl_remove_handler(id, &err) == 0);
  munmap(g_page, page);
}

/* fl_leave_handler: a handler that leaves by longjmp says so first; from then on the thread is no
   longer inside faultline's handler (checked inside the handler itself, before jumping). */
static sigjmp_buf g_jump;
static volatile int g_in_before, g_in_after;

static fl_disposition leaving(fl_context* ctx, void* data) {
  (void)data;
  if (!on_g_page(ctx)) return FL_DECLINED;
  g_in_before = fl_in_handler();
  fl_leave_handler();
  g_in_after = fl_in_handler();
  siglongjmp(g_jump, 1);
}

static void test_leave_handler(void) {
  fl_error err;
  g_page = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  fl_handler_id id;
  CHECK(fl_add_handler(leaving, NULL, FL_TRAP_SEGV, &id, &err) == 0);
  if (sigsetjmp(g_jump, 1) == 0) {
    g_page[0] = 1;
    CHECK(!"the handler jumps out");
  }
  CHECK(g_in_before == 1 && g_in_after == 0);
  CHECK(fl_in_handler() == 0);
  CHECK(fl_remove_handler(id, &err) == 0);
  munmap(g_page, page);
}

/* fl_uninstall / fl_reassert, in a child: a newcomer installed over faultline makes uninstall refuse;
   reassert puts faultline back in front (chaining to the newcomer); uninstall then restores the
   newcomer, and a fault nobody resolves reaches it. */
static void newcomer(int sig) { _exit(sig == SIGSEGV ? 44 : 45); }

static void uninstall_child(void) {
  fl_error err;
  if (fl_install(0, &err) != 0) _exit(90);
  struct sigaction sa, cur;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = newcomer;
  sigaction(SIGSEGV, &sa, NULL);
  if (fl_uninstall(0, &err) != FL_EOVERRIDDEN || err.code != FL_EOVERRIDDEN) _exit(91);
  if (fl_reassert(&err) != 0) _exit(92);
  sigaction(SIGSEGV, NULL, &cur);
  if (cur.sa_handler == newcomer || !(cur.sa_flags & SA_SIGINFO)) _exit(93); /* faultline's again */
  if (fl_uninstall(0, &err) != 0 || fl_installed() != 0) _exit(94);
  sigaction(SIGSEGV, NULL, &cur);
  if (cur.sa_handler != newcomer) _exit(95); /* what was there before faultline took it back */
  if (fl_install(0, &err) != 0) _exit(96);
  sigaction(SIGSEGV, &sa, NULL); /* over faultline again: uninstall(force) restores anyway */
  if (fl_uninstall(1, &err) != 0 || fl_installed() != 0) _exit(97);
  char* p = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  p[0] = 1; /* reaches the newcomer: exit 44 */
  _exit(98);
}

static int run_child_expect_exit(void (*body)(void), int code) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(30);
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  int ok = WIFEXITED(status) && WEXITSTATUS(status) == code;
  if (!ok) fprintf(stderr, "child: status 0x%x, expected exit %d\n", status, code);
  return ok;
}

/* ---- regions ---- */

/* The default options with a name and a policy. */
static fl_region_options region_options(const char* name, fl_policy policy) {
  fl_region_options o = fl_region_options_default();
  o.name = name;
  o.policy = policy;
  return o;
}

static int fill_pattern(const fl_fill_request* req, void* data, const char** reason) {
  (void)reason;
  unsigned char* d = req->dest;
  for (size_t i = 0; i < req->length; ++i) d[i] = (unsigned char)((req->offset + i) * 7 + (uintptr_t)data);
  return 0;
}

static int fill_fails(const fl_fill_request* req, void* data, const char** reason) {
  (void)req;
  (void)data;
  *reason = "no such block";
  return EIO;
}

static fl_disposition barrier_unprotect(fl_context* ctx, const fl_region_info* r, void* data) {
  (void)ctx;
  atomic_int* hits = data;
  atomic_fetch_add(hits, 1);
  mprotect((void*)r->base, r->size, PROT_READ | PROT_WRITE);
  return FL_RESOLVED;
}

static void test_regions(void) {
  fl_error err;
  fl_region* r = NULL;
  fl_region_options o = fl_region_options_default();

  CHECK(fl_region_reserve(0, &o, &r, &err) == FL_EINVAL && strstr(err.message, "size is zero") != NULL);

  o.name = "c-zero";
  o.fault_around = 2;
  o.backend = FL_BACKEND_SIGNALS; /* protect() needs the signal backend */
  CHECK(fl_region_reserve(4 * page, &o, &r, &err) == 0);
  volatile char* z = fl_region_data(r);
  CHECK(z[0] == 0 && z[3 * page] == 0);
  z[page] = 5;
  CHECK(fl_region_discard(r, 1, 1, &err) == 0 && z[page] == 0);
  CHECK(fl_region_protect(r, 0, 1, FL_PERM_NONE, &err) == 0 && z[0] == 0);
  CHECK(fl_region_size(r) == 4 * page);
  CHECK(fl_region_count() >= 1);
  /* Four faults (pages 0, 3, then 1 after the discard, 0 after the protect), each a fill of up to
     fault_around = 2 pages: 2 + 1 (the region ends) + 2 + 2. */
  fl_region_stats st;
  fl_region_get_stats(r, &st);
  uint64_t timed = 0;
  for (int k = 0; k < 32; ++k) timed += st.fill_ns_log2[k];
  CHECK(st.faults == 4 && st.fills == 4 && st.pages_filled == 7 && st.readahead_pages == 3 && st.failures == 0);
  CHECK(timed == 4);
  /* A fault of this thread on the signal backend counts in this thread's counters. */
  fl_thread_stats before, after;
  CHECK(fl_region_protect(r, 2, 1, FL_PERM_NONE, &err) == 0);
  fl_this_thread_stats(&before);
  z[2 * page] = 1;
  fl_this_thread_stats(&after);
  CHECK(after.tid > 0 && after.faults == before.faults + 1 && after.fills == before.fills + 1);
  CHECK(after.pages_filled == before.pages_filled + 2 && after.fill_ns > before.fill_ns);
  CHECK(fl_set_userfaultfd_handler_threads(0, &err) == FL_EINVAL && strstr(err.message, "1..64") != NULL);
  CHECK(fl_handler_thread_stats(NULL, 0) == fl_userfaultfd_handler_threads());
  fl_region_get_stats(NULL, &st);
  CHECK(st.faults == 0);
  CHECK(fl_region_destroy(r, &err) == 0);

  o = region_options("c-provider", FL_POLICY_PROVIDER);
  o.fill = fill_pattern;
  o.fill_data = (void*)3;
  CHECK(fl_region_reserve(2 * page, &o, &r, &err) == 0);
  unsigned char* p = fl_region_data(r);
  CHECK(p[page + 10] == (unsigned char)((page + 10) * 7 + 3));
  CHECK(fl_region_destroy(r, &err) == 0);

  fl_pager* pager = NULL;
  CHECK(fl_pager_start("c-pager", 1, &pager, &err) == 0);
  o.name = "c-paged";
  o.policy = FL_POLICY_PAGER;
  o.fill_data = (void*)9;
  o.pager = pager;
  CHECK(fl_region_reserve(2 * page, &o, &r, &err) == 0);
  p = fl_region_data(r);
  CHECK(p[5] == (unsigned char)(5 * 7 + 9));
  CHECK(fl_region_destroy(r, &err) == 0);
  fl_pager_release(pager);

  o = region_options("c-cards", FL_POLICY_TRACK_DIRTY);
  CHECK(fl_region_reserve(8 * page, &o, &r, &err) == 0);
  volatile char* c = fl_region_data(r);
  c[2 * page] = 1;
  c[5 * page] = 1;
  size_t dirty[8], n = 0;
  CHECK(fl_region_collect_dirty(r, dirty, 8, &n, &err) == 0 && n == 2 && dirty[0] == 2 && dirty[1] == 5);
  CHECK(fl_region_destroy(r, &err) == 0);

  atomic_int hits = 0;
  o = region_options("c-barrier", FL_POLICY_BARRIER);
  o.barrier = barrier_unprotect;
  o.barrier_data = &hits;
  CHECK(fl_region_reserve(page, &o, &r, &err) == 0);
  ((volatile char*)fl_region_data(r))[1] = 1;
  CHECK(atomic_load(&hits) == 1);
  CHECK(fl_region_destroy(r, &err) == 0);

  void* mine = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  o = region_options("c-adopted", FL_POLICY_ZERO_FILL);
  CHECK(fl_region_adopt(mine, page, &o, &r, &err) == 0);
  CHECK(fl_prefault(mine, page, FL_ACCESS_WRITE, &err) == 0);
  CHECK(fl_region_destroy(r, &err) == 0);
  o.policy = FL_POLICY_PROVIDER;
  o.fill = fill_pattern;
  CHECK(fl_region_adopt(mine, page, &o, &r, &err) == FL_EUNSUPPORTED);
  munmap(mine, page);
}

/* A provider failure ends in SIGBUS with the report naming the region and the error. */
static void test_fill_failure_child(void) {
  fl_error err;
  fl_region* r = NULL;
  fl_region_options o = region_options("c-broken", FL_POLICY_PROVIDER);
  o.fill = fill_fails;
  if (fl_report_enable(2, 0, 0, 0, &err) != 0 || fl_region_reserve(page, &o, &r, &err) != 0) _exit(90);
  (void)((volatile char*)fl_region_data(r))[0];
  _exit(1);
}

/* ---- threads ---- */

static atomic_int g_quit, g_ready;

static void* spinner(void* arg) {
  (void)arg;
  fl_error err;
  if (fl_thread_attach(0, &err) != 0) return NULL;
  atomic_store(&g_ready, 1);
  while (!atomic_load(&g_quit)) {
  }
  fl_thread_detach();
  return NULL;
}

static void* blocker(void* arg) {
  int* fds = arg;
  fl_error err;
  char ch;
  if (fl_thread_attach(0, &err) != 0) return NULL;
  fl_blocking_enter();
  atomic_fetch_add(&g_ready, 1);
  ssize_t got = read(fds[0], &ch, 1);
  fl_blocking_leave();
  fl_thread_detach();
  return got == 1 ? arg : NULL;
}

static size_t g_words;
static void count_words(const uintptr_t* b, const uintptr_t* e, fl_root_kind kind, long tid, void* data) {
  (void)kind;
  (void)tid;
  (void)data;
  g_words += (size_t)(e - b);
}

static atomic_int g_preempted, g_injected_ran;
static void injected(void* arg) {
  (void)arg;
  char* buf = malloc(1000); /* ordinary code */
  snprintf(buf, 1000, "injected");
  atomic_store(&g_injected_ran, buf[0] == 'i');
  free(buf);
}
static void on_preempt(fl_context* ctx, void* data) {
  (void)data;
  atomic_fetch_add(&g_preempted, 1);
  if (fl_inject_call(ctx, injected, NULL) != 0) atomic_store(&g_injected_ran, -1);
}

static void test_threads(void) {
  fl_error err;
  CHECK(fl_thread_attach(0, &err) == 0 && fl_thread_attached() == 1);
  CHECK(fl_smallest_usable_altstack() > 32 * 1024);
  CHECK(fl_thread_attach(fl_smallest_usable_altstack() - 1, &err) != 0 && err.code == FL_EINVAL);
  pthread_t t, b;
  int fds[2];
  CHECK(pipe(fds) == 0);
  pthread_create(&t, NULL, spinner, NULL);
  while (!atomic_load(&g_ready)) {
  }
  atomic_store(&g_ready, 0);
  pthread_create(&b, NULL, blocker, fds);
  while (!atomic_load(&g_ready)) {
  }
  CHECK(fl_world_stop(0, &err) == 0 && fl_world_stopped() == 1);
  CHECK(fl_world_scan_roots(count_words, NULL, &err) == 0 && g_words > 100);
  CHECK(fl_world_resume(&err) == 0 && fl_world_stopped() == 0);
  CHECK(fl_world_resume(&err) == FL_EINVAL);
  atomic_store(&g_quit, 1);
  CHECK(write(fds[1], "x", 1) == 1);
  void* ret;
  pthread_join(t, NULL);
  pthread_join(b, &ret);
  CHECK(ret == fds);

  CHECK(fl_preempt_enable(0, on_preempt, NULL, FL_CLOCK_WALL, &err) == FL_EINVAL);
#if !defined(__SANITIZE_THREAD__) /* TSan defers asynchronous signals and drops changes to their context */
  CHECK(fl_preempt_enable(200000, on_preempt, NULL, FL_CLOCK_WALL, &err) == 0);
  for (long spin = 0; atomic_load(&g_injected_ran) == 0 && spin < 4000000000L; ++spin) {
  }
  CHECK(atomic_load(&g_preempted) == 1 && atomic_load(&g_injected_ran) == 1);
#endif
  fl_preempt_disable();
  fl_thread_detach();
}

static int run_child_expect_signal(void (*body)(void), int sig, const char* needle) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    alarm(30);
    body();
    _exit(0);
  }
  close(fds[1]);
  char buf[16384];
  size_t len = 0;
  ssize_t n;
  while ((n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
  buf[len] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  int ok = WIFSIGNALED(status) && WTERMSIG(status) == sig && strstr(buf, needle) != NULL;
  if (!ok) fprintf(stderr, "child: status %d, output:\n%s\n", status, buf);
  return ok;
}

/* ---- the backend, protection batches, a file store with write-back, a pager in another process ---- */

static int fill_remote(const fl_fill_request* req, void* data, const char** reason) {
  (void)data;
  (void)reason;
  for (size_t off = 0; off < req->length; off += page) memset((char*)req->dest + off, (int)('A' + (req->offset + off) / page), page);
  return 0;
}

static void test_backends_stores_and_batches(void) {
  fl_error err;
  fl_region_options o = fl_region_options_default();
  CHECK(o.async_readahead == 1 && o.remote_pager_socket == -1 && o.fill_path == FL_FILL_PATH_AUTOMATIC);
  /* The fill path reaches the library: an unknown one is refused, and the shmem cache is only for
     provider regions. */
  {
    fl_region_options f = fl_region_options_default();
    fl_region* none = NULL;
    f.fill_path = 7;
    CHECK(fl_region_reserve(4 * page, &f, &none, &err) == FL_EINVAL && strstr(err.message, "fill path") != NULL);
    f.fill_path = FL_FILL_PATH_SHMEM_CACHE;
    CHECK(fl_region_reserve(4 * page, &f, &none, &err) == FL_EINVAL && strstr(err.message, "shmem_cache") != NULL);
    CHECK(none == NULL);
  }

  /* The backend and its reason; a protection batch over two signal-backend regions. */
  o.name = "c-batched";
  o.backend = FL_BACKEND_SIGNALS;
  fl_region *a = NULL, *b = NULL;
  CHECK(fl_region_reserve(2 * page, &o, &a, &err) == 0 && fl_region_reserve(2 * page, &o, &b, &err) == 0);
  CHECK(fl_region_backend(a) == FL_BACKEND_SIGNALS && strstr(fl_region_backend_reason(a), "signals") != NULL);
  CHECK(fl_region_backend(NULL) == FL_BACKEND_AUTOMATIC && strcmp(fl_region_backend_reason(NULL), "") == 0);
  ((volatile char*)fl_region_data(a))[0] = 7;
  ((volatile char*)fl_region_data(b))[0] = 8;
  fl_protect_batch* batch = NULL;
  size_t calls = 0;
  CHECK(fl_protect_batch_create(&batch, &err) == 0);
  CHECK(fl_protect_batch_add(batch, a, 0, 1, FL_PERM_NONE, &err) == 0);
  CHECK(fl_protect_batch_add(batch, b, 0, 1, FL_PERM_NONE, &err) == 0);
  CHECK(fl_protect_batch_add(batch, NULL, 0, 1, FL_PERM_NONE, &err) == FL_EINVAL);
  CHECK(fl_protect_batch_commit(batch, &calls, &err) == 0 && calls >= 1);
  fl_region_stats before;
  fl_region_get_stats(a, &before);
  CHECK(((volatile char*)fl_region_data(a))[0] == 7); /* re-armed: a fault, the contents kept */
  fl_region_stats after;
  fl_region_get_stats(a, &after);
  CHECK(after.faults == before.faults + 1);
  fl_protect_batch_destroy(batch);
  CHECK(fl_region_destroy(a, &err) == 0 && fl_region_destroy(b, &err) == 0);

  /* userfaultfd from here on (qemu-user has none). */
  o = fl_region_options_default();
  o.backend = FL_BACKEND_USERFAULTFD;
  fl_region* probe = NULL;
  if (fl_region_reserve(page, &o, &probe, &err) != 0) {
    fprintf(stderr, "skipped without userfaultfd: the file store, write-back and the remote pager (%s)\n", err.message);
    return;
  }
  CHECK(fl_region_backend(probe) == FL_BACKEND_USERFAULTFD);
  CHECK(fl_region_destroy(probe, &err) == 0);

  /* A file store with write-back: flush writes the written page to the file, evict drops the pages. */
  char path[] = "/tmp/faultline-c-store-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  char* block = malloc(4 * page);
  memset(block, 'a', 4 * page);
  CHECK(write(fd, block, 4 * page) == (ssize_t)(4 * page));
  fl_store* store = NULL;
  CHECK(fl_file_store_open("/nonexistent/file", 0, 0, &store, &err) != 0 && err.message[0] != '\0');
  CHECK(fl_file_store_open(path, 0, 1, &store, &err) == 0);
  o.name = "c-file";
  o.policy = FL_POLICY_PROVIDER;
  o.store = store;
  o.write_back = 1;
  o.readahead_max = 2;
  fl_region* f = NULL;
  CHECK(fl_region_reserve(4 * page, &o, &f, &err) == 0);
  if (f != NULL) {
    volatile char* p = fl_region_data(f);
    CHECK(p[0] == 'a' && p[3 * page] == 'a');
    p[page] = 'b';
    size_t written = 0, evicted = 0;
    CHECK(fl_region_flush(f, &written, &err) == 0 && written == 1);
    CHECK(pread(fd, block, 1, (off_t)page) == 1 && block[0] == 'b');
    p[2 * page] = 'c';
    CHECK(fl_region_evict(f, 0, 4, &evicted, &err) == 0 && evicted == 1); /* page 2 written back, all dropped */
    CHECK(pread(fd, block, 1, (off_t)(2 * page)) == 1 && block[0] == 'c');
    CHECK(p[page] == 'b' && p[2 * page] == 'c');
    CHECK(fl_region_destroy(f, &err) == 0);
  }
  CHECK(fl_region_flush(NULL, NULL, &err) == FL_EINVAL);
  fl_store_destroy(store);
  free(block);
  close(fd);
  unlink(path);

  /* A pager in another process: the child receives the region and serves it. */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    fl_remote_region* rr = NULL;
    if (fl_remote_pager_receive(sv[1], &rr, &err) != 0) _exit(2);
    if (strcmp(fl_remote_region_name(rr), "c-remote") != 0 || fl_remote_region_size(rr) != 4 * page ||
        fl_remote_region_base(rr) == 0) {
      _exit(3);
    }
    const int served = fl_remote_region_serve(rr, fill_remote, NULL, NULL, NULL, &err);
    fl_remote_region_destroy(rr);
    if (served != 0) fprintf(stderr, "serve: %s\n", err.message);
    _exit(served == 0 ? 0 : 4);
  }
  close(sv[1]);
  o = fl_region_options_default();
  o.name = "c-remote";
  o.policy = FL_POLICY_PAGER;
  o.remote_pager_socket = sv[0];
  fl_region* rem = NULL;
  CHECK(fl_region_reserve(4 * page, &o, &rem, &err) == 0);
  if (rem != NULL) {
    volatile char* p = fl_region_data(rem);
    CHECK(p[0] == 'A' && p[2 * page + 5] == 'C' && p[3 * page] == 'D');
    CHECK(fl_region_destroy(rem, &err) == 0);
  }
  close(sv[0]);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fprintf(stderr, "remote pager child: status %#x\n", status);
}

static void guard_child(void) {
  fl_error err;
  fl_region* r = NULL;
  fl_region_options o = region_options("c-guard", FL_POLICY_GUARD);
  o.perms = FL_PERM_NONE;
  if (fl_report_enable(2, 0, 1, 16, &err) != 0 || !fl_report_enabled()) _exit(90);
  if (fl_region_reserve(page, &o, &r, &err) != 0) _exit(91);
  ((volatile char*)fl_region_data(r))[3] = 1;
  _exit(1);
}

int main(void) {
  page = (size_t)sysconf(_SC_PAGESIZE);
  CHECK(strcmp(fl_version(), "0.1.0") == 0);
  test_trap();
  test_context_setters();
  test_leave_handler();
  test_emulation();
  CHECK(run_child_expect_exit(uninstall_child, 44));
  test_regions();
  test_threads();
  test_backends_stores_and_batches();
  CHECK(run_child_expect_signal(guard_child, SIGSEGV, "region    'c-guard'"));
  if (getenv("FAULTLINE_EMULATOR") == NULL) {
    CHECK(run_child_expect_signal(test_fill_failure_child, SIGBUS,
                                  "failed on page 0: EIO (errno 5): no such block"));
  } else {
    /* qemu-user aborts when a program sends itself SIGBUS, which is how the signal backend ends an access
       whose fill failed: checked on real kernels only. */
    fprintf(stderr, "skipped under qemu-user: the fill failure's SIGBUS\n");
  }
  fl_report_disable();
  CHECK(fl_report_enabled() == 0);
  if (failures != 0) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  puts("c api: all checks passed");
  return 0;
}
