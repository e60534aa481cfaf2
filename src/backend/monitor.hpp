// backend/monitor.hpp: learning that a program unmapped a region's memory behind faultline's back, from
// the kernel's UFFD_EVENT_UNMAP, for both backends. Not signal path.
//
// Anonymous private memory carries no identity the kernel shows (anonymous VMA names need
// CONFIG_ANON_VMA_NAME, which many kernels lack), so where userfaultfd is available:
//   - a signal-backend region's anonymous memory is registered, in write-protect mode and with no page
//     ever write-protected, with a monitor userfaultfd that asks for UFFD_EVENT_UNMAP only: no fault ever
//     reaches it, but an munmap, an mmap MAP_FIXED or an mremap of the region does;
//   - the userfaultfd backend's self-service and asynchronous write-protect fds ask for UNMAP events too
//     (the handler thread's fd has them already) and the monitor thread reads them.
// An UNMAP event marks the regions it covers (RegionImpl::unmapped_seen). The kernel holds the munmap
// until its event is read; a reader keeps event_mutex() from that read until the marks are set, and
// settle() waits for it, so a program's call right after its munmap already sees the mark. faultline
// unregisters a range before it unmaps it itself. Without userfaultfd, memory_is_ours() reads
// /proc/self/maps instead (os::range_matches), which cannot tell anonymous mappings apart.
#pragma once

#include <cstdint>
#include <mutex>

namespace faultline::backend::monitor {

// Starts the monitor thread if it is not running; false when it cannot (no userfaultfd, no thread).
bool start();
// Registers [base, end) with the monitor's own fd; false when that cannot be done.
bool watch_range(std::uintptr_t base, std::uintptr_t end);
void unwatch_range(std::uintptr_t base, std::uintptr_t end) noexcept;
// The monitor thread reads the events of `fd` too (start() must have succeeded).
void watch_fd(int fd);

// Held by whoever reads UNMAP events, from the read until the marks are set.
std::mutex& event_mutex() noexcept;
// Marks every region in [start, end) as unmapped by the program.
void mark_unmapped(std::uintptr_t start, std::uintptr_t end) noexcept;
// Waits until every UNMAP event read so far has been applied.
void settle() noexcept;

}  // namespace faultline::backend::monitor
