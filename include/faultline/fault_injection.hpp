// faultline/fault_injection.hpp: making faultline's own system calls, thread creations and
// allocations fail, or stall, on purpose; and watching them. For tests of programs built on faultline,
// and for faultline's own tests (the sweep that proves every failure path ends in an error, a signal with
// a report, or the right bytes).
//
//   using namespace faultline::fault_injection;
//   arm({{Op::uffdio_copy, /*nth=*/3, /*count=*/1, EIO}});   // the 3rd UFFDIO_COPY from now fails
//   ... run the scenario ...
//   std::printf("%llu copies\n", (unsigned long long)calls(Op::uffdio_copy));
//   disarm();
//
// Or from the environment, read when install() runs (ignored in a setuid/setgid or file-capability
// program, as glibc's secure_getenv ignores it):
//   FAULTLINE_INJECT="mmap:3:ENOMEM,uffdio_copy:1:EIO,tgkill:2:EAGAIN:stall=50ms,thread_create:1:EAGAIN"
// Each item is op:nth:errno[:count=N][:stall=Tms|Tus]; nth counts calls of that op from arming.
//
// Every system call faultline makes goes through its raw-syscall layer, which consults this facility
// with one predictable branch when it is not armed; thread creation and faultline's own allocations
// of region and pager state have points of their own. The binaries users get are the ones tested.
// Injected failures look exactly like the kernel's (-errno from the call), so faultline's handling of
// them is the real one. Stalls sleep in the calling thread (nanosleep), in signal context too.
//
// The observer sees every call of a named operation while the facility is hooked (armed, counting, or an
// observer set), after it is made: the operation, its first three arguments and the result (-errno for
// a failure, injected or not; for mmap, the address). The test sweep uses it to check that every
// munmap/mprotect/madvise faultline issues lies inside memory it mapped or adopted and still owns.
//
// Async-signal-safety: the checks run in signal context (they are async-signal-safe); arm(), disarm()
// and set_observer() are not, and must not race with faults that they change.
// Thread-safety: every call is thread-safe; counters are relaxed atomics.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "faultline/result.hpp"

namespace faultline::fault_injection {

// The operations that can be made to fail. Keep in step with op_name().
enum class Op : std::uint8_t {
  mmap, munmap, mprotect, madvise, mincore, memfd_create, ftruncate, fallocate, open, pread, pwrite, pipe, splice,
  userfaultfd,  // the system call, and /dev/userfaultfd's USERFAULTFD_IOC_NEW
  uffdio_api, uffdio_register, uffdio_unregister, uffdio_copy, uffdio_zeropage, uffdio_wake,
  uffdio_writeprotect, uffdio_continue, uffdio_poison, uffdio_move, pagemap_scan,
  tgkill, rt_tgsigqueueinfo, sigaltstack, timer_create, timer_settime, eventfd, sendmsg, recvmsg,
  thread_create,  // every thread faultline starts (handler, evictor, pager, watchdog)
  alloc,          // faultline's own allocations of region, table and pager state
  store_get,      // faultline's own stores, at the store interface (faultline/redis_store.hpp): a read
  store_set,      //   request (MGET), a write request (MSET), a replication wait (WAIT)
  store_wait,
  count
};
// "mmap", "uffdio_copy", ... ; "?" out of range. Async-signal-safe.
const char* op_name(Op op) noexcept;
// The Op named `name`; Errc::invalid_argument for an unknown name.
Result<Op> op_from_name(const std::string& name);

struct Rule {
  Op op = Op::mmap;
  std::uint64_t nth = 1;    // the nth call of `op` after arming is the first to fail (1 = the next)
  std::uint64_t count = 1;  // how many calls from there fail (0: every one from there on)
  int error = 0;            // the errno value they fail with; 0: they do not fail, only stall
  std::chrono::microseconds stall{0};  // sleep this long before the call (failed or not)
};

// Resets every counter, then arms the rules (replacing earlier ones). Errc::invalid_argument for an
// out-of-range op, nth 0, a negative errno, or a stall above 60 s.
Result<void> arm(const std::vector<Rule>& rules);
// Parses a FAULTLINE_INJECT value and arms it.
Result<void> arm_from_spec(const std::string& spec);
// Counting only: no rule, every counter reset; calls() then says how many calls a scenario makes.
void count_only() noexcept;
// Stops injecting and counting, and removes the observer.
void disarm() noexcept;
bool armed() noexcept;

// Calls of `op` since the last arm()/count_only() (counted only while armed). Async-signal-safe.
std::uint64_t calls(Op op) noexcept;
// Failures injected since the last arm(). Async-signal-safe.
std::uint64_t injected() noexcept;

// Sees every call of a named operation, after it is made, with its result. Runs in whatever context the
// call runs in, signal handlers included: it must be async-signal-safe. Null removes it.
using Observer = void (*)(Op op, std::uintptr_t a1, std::uintptr_t a2, std::uintptr_t a3, long result, void* data);
void set_observer(Observer fn, void* data) noexcept;

}  // namespace faultline::fault_injection
