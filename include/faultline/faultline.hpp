// faultline/faultline.hpp: the whole C++ API in one include.
//
//   trap.hpp     install the dispatcher, register fault handlers, chain to previous actions
//   context.hpp  decode and change a faulting thread's context
//   region.hpp   regions of memory with a policy for their faults
//   thread.hpp   attach threads (alternate signal stacks, stack bounds)
//   report.hpp   the crash report
//   kernel.hpp   what this kernel offers (userfaultfd features, soft-dirty, ...)
#pragma once

#include "faultline/context.hpp"
#include "faultline/inject.hpp"
#include "faultline/kernel.hpp"
#include "faultline/preempt.hpp"
#include "faultline/region.hpp"
#include "faultline/regs.hpp"
#include "faultline/report.hpp"
#include "faultline/result.hpp"
#include "faultline/thread.hpp"
#include "faultline/trap.hpp"
#include "faultline/world.hpp"
