/* sigsegv.h: GNU libsigsegv 2.14's interface, implemented by faultline.
 *
 * A drop-in replacement: the same declarations, macros and semantics as libsigsegv's own header, so a
 * program written for libsigsegv compiles unchanged against this header and links against faultline's
 * libsigsegv.so.2 (or a program already linked against libsigsegv.so.2 runs with faultline's library
 * placed first on its library path). What faultline does better, within libsigsegv's documented
 * contract:
 *   - the SIGSEGV handler that was installed before is chained to when the handler declines, instead of
 *     being ignored (libsigsegv resets to SIG_DFL and lets the process die);
 *   - the dispatcher (sigsegv_register/unregister/dispatch) is thread-safe; sigsegv_dispatch is
 *     lock-free and async-signal-safe;
 *   - stack overflow is detected on every thread attached to faultline (libsigsegv: the thread that
 *     installed the handler), each on its own alternate stack.
 * Thread-safety: every function here may be called from any thread; the handlers run in signal context.
 */
#ifndef _SIGSEGV_H
#define _SIGSEGV_H

#include <signal.h>
#include <stddef.h>
#include <ucontext.h>

/* As libsigsegv's header does on glibc: SIGSTKSZ is a constant large enough for a stack overflow
   handler's stack (glibc 2.34+ makes it sysconf(_SC_SIGSTKSZ) under _GNU_SOURCE, which cannot size an
   array at file scope). */
#if defined __GLIBC__
#undef SIGSTKSZ
#define SIGSTKSZ 65536
#endif

/* HAVE_SIGSEGV_RECOVERY: catching SIGSEGV works on this platform. */
#define HAVE_SIGSEGV_RECOVERY 1
/* HAVE_STACK_OVERFLOW_RECOVERY: catching stack overflow works on this platform. */
#define HAVE_STACK_OVERFLOW_RECOVERY 1

#ifdef __cplusplus
extern "C" {
#endif

#define LIBSIGSEGV_VERSION 0x020E /* version number: (major<<8) + minor */
extern int libsigsegv_version;    /* Likewise */

/* The fault address is precise on x86-64 Linux. */
#define SIGSEGV_FAULT_ADDRESS_ALIGNMENT 1UL

/* A global SIGSEGV handler: gets the fault address, and `serious` = 0 when the fault might also be a
   stack overflow (only when a stack overflow handler is installed), 1 when the handler should
   seriously try to fix it. Returns nonzero if it handled the fault (the instruction is restarted), 0 to
   decline. Runs in signal context: no malloc, no locks, no stdio. */
typedef int (*sigsegv_handler_t)(void* fault_address, int serious);

/* Installs the global SIGSEGV (and SIGBUS) handler. Returns 0, or -1 if faultline cannot install. */
extern int sigsegv_install_handler(sigsegv_handler_t handler);

/* Deinstalls it: faults go to whatever handles them without it (faultline chains them to the action
   installed before, by default the process dies of the signal). */
extern void sigsegv_deinstall_handler(void);

/* Prepares leaving a SIGSEGV or stack overflow handler by longjmp: control is transferred by calling
   CONTINUATION(CONT_ARG1, CONT_ARG2, CONT_ARG3), which must not return. Returns (1) only if the
   continuation does return, from a SIGSEGV handler; use it as the handler's return value. */
extern int sigsegv_leave_handler(void (*continuation)(void*, void*, void*), void* cont_arg1, void* cont_arg2,
                                 void* cont_arg3);

/* The context passed to a stack overflow handler. */
typedef ucontext_t* stackoverflow_context_t;

/* A stack overflow handler: must not return (leave with sigsegv_leave_handler and longjmp). emergency
   is 0 when the overflow hit the guard area below the stack (it can be recovered from by unwinding), 1
   when it is further away (save state and exit). Runs on an alternate signal stack, in signal
   context. */
typedef void (*stackoverflow_handler_t)(int emergency, stackoverflow_context_t scp);

/* Installs the stack overflow handler. extra_stack/extra_stack_size become the calling thread's
   alternate signal stack unless it already has one; other threads use the one faultline gives them
   when they attach. A stack the kernel accepts (sigaltstack) but smaller than this CPU's signal frame
   and faultline's handler need (getauxval(AT_MINSIGSTKSZ) + 32 KiB) is accepted too, as libsigsegv
   accepts it, and left unused: faultline gives the thread an alternate stack of its own, where the
   handler then runs. Returns 0, or -1 (a stack the kernel refuses, or faultline cannot install). */
extern int stackoverflow_install_handler(stackoverflow_handler_t handler, void* extra_stack,
                                         size_t extra_stack_size);

/* Deinstalls the stack overflow handler. */
extern void stackoverflow_deinstall_handler(void);

/* A local SIGSEGV handler for an address range. Returns nonzero if it handled the fault. */
typedef int (*sigsegv_area_handler_t)(void* fault_address, void* user_arg);

/* A table of address ranges, each with a local handler. */
typedef struct sigsegv_dispatcher {
  void* tree;
} sigsegv_dispatcher;

/* Initialises a dispatcher. */
extern void sigsegv_init(sigsegv_dispatcher* dispatcher);

/* Adds a local handler covering [address, address + len - 1]. Returns a ticket for
   sigsegv_unregister, or NULL when len is 0 or memory runs out. Ranges should not overlap. */
extern void* sigsegv_register(sigsegv_dispatcher* dispatcher, void* address, size_t len,
                              sigsegv_area_handler_t handler, void* handler_arg);

/* Removes a local handler. On return no sigsegv_dispatch is still looking at it (bounded wait). */
extern void sigsegv_unregister(sigsegv_dispatcher* dispatcher, void* ticket);

/* Calls the local handler responsible for the fault address and returns its value; 0 when there is
   none or it declined. Async-signal-safe and lock-free. */
extern int sigsegv_dispatch(sigsegv_dispatcher* dispatcher, void* fault_address);

#ifdef __cplusplus
}
#endif

#endif /* _SIGSEGV_H */
