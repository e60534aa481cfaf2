/* tests/compat/test_sigsegv.c: faultline's libsigsegv against libsigsegv 2.14's documentation.
 *
 * Written from the documented interface in sigsegv.h (not from libsigsegv's sources or tests). Each
 * case runs in a forked child; the parent checks how the child ended and, for cases that end by a
 * signal (where the child cannot report anything itself), how often each handler ran: the handlers
 * count their calls in memory shared with the parent (MAP_SHARED), so a case that dies "for the right
 * reason" is told apart from one that dies because a handler was (or was not) called. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat/sigsegv/sigsegv.h"
#include "faultline/faultline.h"

#if !HAVE_SIGSEGV_RECOVERY || !HAVE_STACK_OVERFLOW_RECOVERY
#error "both recovery macros must be 1 on x86-64 Linux"
#endif

static size_t page;
static char* volatile area;
static volatile int last_serious;
static void* volatile last_address;

/* What the handlers saw, in memory the parent reads after the child ended (reset before each case). */
struct seen {
  volatile int calls;          /* global SIGSEGV handler calls */
  volatile int overflows;      /* stack overflow handler calls */
  volatile int emergency[4];   /* the emergency argument of the first four overflow handler calls */
};
static struct seen* seen;

#define REQUIRE(cond)                                                       \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);            \
      _exit(100 + __LINE__ % 100);                                          \
    }                                                                       \
  } while (0)

static char* new_page(int prot) {
  char* p = mmap(NULL, page, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  return p;
}

/* The global handler: makes `area` accessible. */
static int unprotect_handler(void* addr, int serious) {
  seen->calls++;
  last_address = addr;
  last_serious = serious;
  if ((char*)addr < area || (char*)addr >= area + page) return 0;
  return mprotect(area, page, PROT_READ | PROT_WRITE) == 0;
}

static int declining_handler(void* addr, int serious) {
  (void)addr;
  (void)serious;
  seen->calls++;
  return 0;
}

static void case_version(void) {
  REQUIRE(LIBSIGSEGV_VERSION == 0x020E);
  REQUIRE(libsigsegv_version == LIBSIGSEGV_VERSION);
  REQUIRE(SIGSEGV_FAULT_ADDRESS_ALIGNMENT == 1UL);
}

static void case_handler_resolves(void) {
  area = new_page(PROT_NONE);
  REQUIRE(sigsegv_install_handler(unprotect_handler) == 0);
  area[123] = 5; /* the handler unprotects; the write is restarted */
  REQUIRE(area[123] == 5);
  REQUIRE(seen->calls == 1 && last_address == area + 123 && last_serious == 1);
  mprotect(area, page, PROT_READ); /* a second fault, same handler */
  area[7] = 1;
  REQUIRE(seen->calls == 2);
}

static void case_decline_dies(void) {
  area = new_page(PROT_NONE);
  REQUIRE(sigsegv_install_handler(declining_handler) == 0);
  area[0] = 1; /* declined, nothing else handles it: the process dies of SIGSEGV */
  _exit(0);
}

static void case_deinstall(void) {
  area = new_page(PROT_NONE);
  REQUIRE(sigsegv_install_handler(declining_handler) == 0);
  sigsegv_deinstall_handler();
  area[0] = 1; /* dies of SIGSEGV without calling the handler */
  _exit(0);
}

/* Improvement over libsigsegv: the SIGSEGV handler installed before is chained to, not ignored. */
static sigjmp_buf jump;
static volatile int previous_called;
static void previous_handler(int sig, siginfo_t* si, void* uc) {
  (void)uc;
  previous_called = sig == SIGSEGV && si->si_addr == area;
  fl_leave_handler();
  siglongjmp(jump, 1);
}

static void case_chains_previous(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = previous_handler;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, NULL);
  area = new_page(PROT_NONE);
  REQUIRE(sigsegv_install_handler(declining_handler) == 0);
  if (sigsetjmp(jump, 1) == 0) {
    area[0] = 1;
    _exit(1);
  }
  REQUIRE(seen->calls == 1 && previous_called == 1);
}

/* sigsegv_leave_handler: leave the handler through a continuation that longjmps. */
static void continuation(void* a, void* b, void* c) {
  REQUIRE(a == (void*)1 && b == (void*)2 && c == (void*)3);
  siglongjmp(jump, 7);
}
static int leaving_handler(void* addr, int serious) {
  (void)serious;
  seen->calls++;
  if ((char*)addr != area) return 0;
  return sigsegv_leave_handler(continuation, (void*)1, (void*)2, (void*)3);
}

static void case_leave_handler(void) {
  area = new_page(PROT_NONE);
  REQUIRE(sigsegv_install_handler(leaving_handler) == 0);
  for (int round = 0; round < 3; ++round) { /* leaving works again and again */
    int r = sigsetjmp(jump, 1);
    if (r == 0) {
      area[0] = 1;
      _exit(1);
    }
    REQUIRE(r == 7);
  }
  REQUIRE(seen->calls == 3);
}

/* Stack overflow: the handler gets emergency 0 and a context, and leaves by longjmp; twice. */
static char extra_stack[1 << 16];
static volatile int last_emergency = -1;
static volatile int scp_ok;
static void overflow_handler(int emergency, stackoverflow_context_t scp) {
  if (seen->overflows < 4) seen->emergency[seen->overflows] = emergency;
  seen->overflows++;
  last_emergency = emergency;
  scp_ok = scp != NULL;
  sigsegv_leave_handler(continuation, (void*)1, (void*)2, (void*)3);
}

static volatile int depth_sink;
static volatile int forever = 1;
static int recurse(int depth) {
  volatile char frame[1024];
  frame[0] = (char)depth;
  if (!forever) return 0;
  return recurse(depth + 1) + frame[0];
}

static void case_stack_overflow(void) {
  REQUIRE(stackoverflow_install_handler(overflow_handler, extra_stack, sizeof extra_stack) == 0);
  for (int round = 0; round < 2; ++round) {
    if (sigsetjmp(jump, 1) == 0) {
      depth_sink = recurse(0);
      _exit(1);
    }
  }
  REQUIRE(seen->overflows == 2 && last_emergency == 0 && scp_ok);
  REQUIRE(stackoverflow_install_handler(overflow_handler, extra_stack, 16) == -1); /* too small */
}

/* Stacks as programs written for libsigsegv pass them. With _GNU_SOURCE (defined above) glibc's own
   SIGSTKSZ is sysconf(_SC_SIGSTKSZ), not a constant; sigsegv.h makes it 65536, as libsigsegv's header
   does, so this declaration compiles. And a stack smaller than this CPU's signal frame needs (4 KiB, or
   8 KiB: 13 504 bytes is SIGSTKSZ with AVX-512) is accepted as libsigsegv accepts it: the overflow is
   still caught (faultline runs the handler on an alternate stack of its own). */
static char sigstksz_stack[SIGSTKSZ];
_Static_assert(SIGSTKSZ == 65536, "sigsegv.h defines SIGSTKSZ as libsigsegv's does");

static void overflow_once_on(void* stack, size_t size) {
  REQUIRE(stackoverflow_install_handler(overflow_handler, stack, size) == 0);
  if (sigsetjmp(jump, 1) == 0) {
    depth_sink = recurse(0);
    _exit(1);
  }
  REQUIRE(seen->overflows == 1 && last_emergency == 0);
}
static void case_overflow_sigstksz_stack(void) { overflow_once_on(sigstksz_stack, sizeof sigstksz_stack); }
/* The small stack sits right above an inaccessible page: a signal frame that did not fit would fault
   there (and kill the child) instead of spilling silently into whatever lies below. */
static void case_overflow_small_stack(void) {
  char* m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(m != MAP_FAILED && mprotect(m, 4096, PROT_NONE) == 0);
  overflow_once_on(m + 4096, 4096);
}

/* The serious=0 call: with a stack overflow handler, the global handler is asked first. */
static volatile int asked_not_serious;
static int curious_handler(void* addr, int serious) {
  (void)addr;
  if (serious == 0) asked_not_serious = 1;
  return 0;
}

static void case_overflow_asks_global_handler_first(void) {
  REQUIRE(sigsegv_install_handler(curious_handler) == 0);
  REQUIRE(stackoverflow_install_handler(overflow_handler, extra_stack, sizeof extra_stack) == 0);
  if (sigsetjmp(jump, 1) == 0) {
    depth_sink = recurse(0);
    _exit(1);
  }
  REQUIRE(asked_not_serious == 1 && seen->overflows == 1);
}

static void case_overflow_deinstalled_dies(void) {
  REQUIRE(stackoverflow_install_handler(overflow_handler, extra_stack, sizeof extra_stack) == 0);
  stackoverflow_deinstall_handler();
  depth_sink = recurse(0); /* dies of SIGSEGV */
  _exit(0);
}

/* Improvement: stack overflow on another (attached) thread. */
static __thread sigjmp_buf thread_jump;
static void thread_continuation(void* a, void* b, void* c) {
  (void)a;
  (void)b;
  (void)c;
  siglongjmp(thread_jump, 1);
}
static void thread_overflow_handler(int emergency, stackoverflow_context_t scp) {
  (void)scp;
  if (seen->overflows < 4) seen->emergency[seen->overflows] = emergency;
  seen->overflows++;
  sigsegv_leave_handler(thread_continuation, NULL, NULL, NULL);
}
static void* overflowing_thread(void* arg) {
  (void)arg;
  fl_error err;
  if (fl_thread_attach(0, &err) != 0) return NULL;
  if (sigsetjmp(thread_jump, 1) == 0) depth_sink = recurse(0);
  fl_thread_detach();
  return (void*)5;
}

static void case_overflow_on_other_thread(void) {
  REQUIRE(stackoverflow_install_handler(thread_overflow_handler, extra_stack, sizeof extra_stack) == 0);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 << 10);
  pthread_t t;
  void* ret = NULL;
  pthread_create(&t, &attr, overflowing_thread, (void*)5);
  pthread_join(t, &ret);
  REQUIRE(ret == (void*)5 && seen->overflows == 1);
}

/* The emergency argument ("0 when the stack could be repaired, 1 if the application should better save
   its state and exit now"): faultline passes 0 for an overflow into the guard area just below the
   stack and 1 for a fault further below it (README). A thread on a stack the program mapped itself,
   with a wide inaccessible area below it: first it recurses into the area (0), then, from near the end
   of its stack, it touches memory 128 KiB below the stack (1). */
#define EMERGENCY_STACK_SIZE (2 << 20) /* ThreadSanitizer wants about 1 MiB for itself */
#define EMERGENCY_BELOW (512 << 10)
static char* volatile emergency_stack_lo;

static int descend_then_jump_far(int depth) {
  volatile char frame[1024];
  frame[0] = (char)depth;
  if ((char*)frame > emergency_stack_lo + (16 << 10)) return descend_then_jump_far(depth + 1) + frame[0];
  emergency_stack_lo[-(128 << 10)] = 1; /* far below the stack, with the stack pointer at its end */
  return frame[0];
}

static void* emergency_thread(void* arg) {
  (void)arg;
  fl_error err;
  if (fl_thread_attach(0, &err) != 0) return NULL;
  for (volatile int round = 0; round < 2; round = round + 1) {
    if (sigsetjmp(thread_jump, 1) == 0) depth_sink = round == 0 ? recurse(0) : descend_then_jump_far(0);
  }
  fl_thread_detach();
  return (void*)7;
}

static void case_overflow_emergency(void) {
  REQUIRE(stackoverflow_install_handler(thread_overflow_handler, extra_stack, sizeof extra_stack) == 0);
  char* map = mmap(NULL, EMERGENCY_BELOW + EMERGENCY_STACK_SIZE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(map != MAP_FAILED);
  REQUIRE(mprotect(map + EMERGENCY_BELOW, EMERGENCY_STACK_SIZE, PROT_READ | PROT_WRITE) == 0);
  emergency_stack_lo = map + EMERGENCY_BELOW;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  REQUIRE(pthread_attr_setstack(&attr, map + EMERGENCY_BELOW, EMERGENCY_STACK_SIZE) == 0);
  pthread_t t;
  void* ret = NULL;
  REQUIRE(pthread_create(&t, &attr, emergency_thread, NULL) == 0);
  pthread_join(t, &ret);
  REQUIRE(ret == (void*)7 && seen->overflows == 2);
  REQUIRE(seen->emergency[0] == 0 && seen->emergency[1] == 1);
}

/* The dispatcher. */
static sigsegv_dispatcher dispatcher;
static int area_handler(void* addr, void* arg) {
  char* base = arg;
  if (mprotect(base, page, PROT_READ | PROT_WRITE) != 0) return 0;
  return (char*)addr >= base && (char*)addr < base + page;
}
static int dispatching_handler(void* addr, int serious) {
  (void)serious;
  return sigsegv_dispatch(&dispatcher, addr);
}

static void case_dispatcher(void) {
  sigsegv_init(&dispatcher);
  char* a = new_page(PROT_NONE);
  char* b = new_page(PROT_NONE);
  void* ta = sigsegv_register(&dispatcher, a, page, area_handler, a);
  void* tb = sigsegv_register(&dispatcher, b, page, area_handler, b);
  REQUIRE(ta != NULL && tb != NULL && ta != tb);
  REQUIRE(sigsegv_register(&dispatcher, a, 0, area_handler, a) == NULL);
  REQUIRE(sigsegv_install_handler(dispatching_handler) == 0);
  a[10] = 1;
  b[20] = 2;
  REQUIRE(a[10] == 1 && b[20] == 2);
  REQUIRE(sigsegv_dispatch(&dispatcher, a + page + page * 1000) == 0); /* nobody's */
  sigsegv_unregister(&dispatcher, ta);
  REQUIRE(sigsegv_dispatch(&dispatcher, a) == 0);
  REQUIRE(sigsegv_dispatch(&dispatcher, b) == 1);
  sigsegv_unregister(&dispatcher, tb);
  REQUIRE(sigsegv_dispatch(&dispatcher, b) == 0);
}

/* Improvement: the dispatcher is thread-safe: faults dispatched while other threads register and
   unregister areas. */
static atomic_int stop_churn;
static void* churn(void* arg) {
  (void)arg;
  char* p = new_page(PROT_NONE);
  while (!atomic_load(&stop_churn)) {
    void* t = sigsegv_register(&dispatcher, p, page, area_handler, p);
    sigsegv_unregister(&dispatcher, t);
  }
  return NULL;
}

static void case_dispatcher_threads(void) {
  sigsegv_init(&dispatcher);
  char* a = new_page(PROT_NONE);
  REQUIRE(sigsegv_register(&dispatcher, a, page, area_handler, a) != NULL);
  REQUIRE(sigsegv_install_handler(dispatching_handler) == 0);
  pthread_t t[2];
  for (int i = 0; i < 2; ++i) pthread_create(&t[i], NULL, churn, NULL);
  for (int i = 0; i < 2000; ++i) {
    mprotect(a, page, PROT_NONE);
    a[i % page] = (char)i;
  }
  atomic_store(&stop_churn, 1);
  for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
}

struct test_case {
  const char* name;
  void (*body)(void);
  int signal;    /* how the child must end: 0 = exit 0, else killed by that signal */
  int calls;     /* global handler calls the parent requires (-1: not checked) */
  int overflows; /* stack overflow handler calls the parent requires (-1: not checked) */
};

static const struct test_case cases[] = {
    {"version", case_version, 0, -1, -1},
    {"handler_resolves", case_handler_resolves, 0, 2, -1},
    /* Dies because the installed handler declined: with the installation gone it would die too. */
    {"decline_dies", case_decline_dies, SIGSEGV, 1, -1},
    /* Dies without calling the handler: with the deinstallation gone it would die after calling it. */
    {"deinstall", case_deinstall, SIGSEGV, 0, -1},
    {"chains_previous", case_chains_previous, 0, 1, -1},
    {"leave_handler", case_leave_handler, 0, 3, -1},
    {"stack_overflow", case_stack_overflow, 0, -1, 2},
    {"overflow_sigstksz_stack", case_overflow_sigstksz_stack, 0, -1, 1},
    {"overflow_small_stack", case_overflow_small_stack, 0, -1, 1},
    {"overflow_asks_global_handler_first", case_overflow_asks_global_handler_first, 0, -1, 1},
    /* Dies of the overflow without calling the deinstalled handler (which, called, would also die: it
       jumps through a buffer that was never set). */
    {"overflow_deinstalled_dies", case_overflow_deinstalled_dies, SIGSEGV, -1, 0},
    {"overflow_on_other_thread", case_overflow_on_other_thread, 0, -1, 1},
    {"overflow_emergency", case_overflow_emergency, 0, -1, 2},
    {"dispatcher", case_dispatcher, 0, -1, -1},
    {"dispatcher_threads", case_dispatcher_threads, 0, -1, -1},
};

int main(int argc, char** argv) {
  page = (size_t)sysconf(_SC_PAGESIZE);
  seen = mmap(NULL, sizeof *seen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (seen == MAP_FAILED) return 2;
  int failed = 0, ran = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
    ran++;
    memset((void*)seen, 0, sizeof *seen);
    pid_t pid = fork();
    if (pid == 0) {
      alarm(60);
      cases[i].body();
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int ended = cases[i].signal == 0 ? (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                                     : (WIFSIGNALED(status) && WTERMSIG(status) == cases[i].signal);
    int calls_ok = cases[i].calls < 0 || seen->calls == cases[i].calls;
    int overflows_ok = cases[i].overflows < 0 || seen->overflows == cases[i].overflows;
    int ok = ended && calls_ok && overflows_ok;
    printf("%-40s %s\n", cases[i].name, ok ? "ok" : "FAILED");
    if (!ok) {
      failed++;
      if (WIFEXITED(status)) printf("    exited %d\n", WEXITSTATUS(status));
      else if (WIFSIGNALED(status)) printf("    killed by signal %d\n", WTERMSIG(status));
      if (!calls_ok) printf("    global handler called %d times, expected %d\n", seen->calls, cases[i].calls);
      if (!overflows_ok) {
        printf("    stack overflow handler called %d times, expected %d\n", seen->overflows, cases[i].overflows);
      }
    }
  }
  if (ran == 0) {
    printf("no case named %s\n", argc > 1 ? argv[1] : "(none)");
    return 1;
  }
  return failed != 0;
}
