// faultline/faultline.hpp: the whole C++ API in one include.
//
//   trap.hpp          install the dispatcher, register fault handlers, chain to previous actions
//   context.hpp       decode and change a faulting thread's context
//   regs.hpp          the register names of this architecture
//   emulate.hpp       decode, emulate and heal the faulting instruction
//   region.hpp        regions of memory with a policy for their faults
//   policy.hpp        the policies, permissions and barrier functions
//   backend.hpp       signals or userfaultfd, and why
//   store.hpp         where filled pages come from and go back to (FileStore)
//   pager.hpp         pager threads
//   remote_pager.hpp  a pager in another process
//   thread.hpp        attach threads (alternate signal stacks, stack bounds)
//   world.hpp         stop the world, scan roots, blocking regions
//   preempt.hpp       per-thread CPU-time and wall-clock budgets
//   inject.hpp        make an interrupted thread run a call, then resume exactly
//   report.hpp        the crash report
//   kernel.hpp        what this kernel offers (userfaultfd features, soft-dirty, ...)
//   kernel_mask.hpp   behave as on an older kernel (5.15, 6.1, none): hide kernel facilities
//   fault_injection.hpp  make faultline's own system calls fail or stall, on purpose; watch them
//   result.hpp        Result<T> and Error, what every call returns
#pragma once

#include "faultline/backend.hpp"
#include "faultline/context.hpp"
#include "faultline/emulate.hpp"
#include "faultline/fault_injection.hpp"
#include "faultline/inject.hpp"
#include "faultline/kernel.hpp"
#include "faultline/kernel_mask.hpp"
#include "faultline/pager.hpp"
#include "faultline/policy.hpp"
#include "faultline/preempt.hpp"
#include "faultline/region.hpp"
#include "faultline/regs.hpp"
#include "faultline/remote_pager.hpp"
#include "faultline/report.hpp"
#include "faultline/result.hpp"
#include "faultline/store.hpp"
#include "faultline/thread.hpp"
#include "faultline/trap.hpp"
#include "faultline/world.hpp"
