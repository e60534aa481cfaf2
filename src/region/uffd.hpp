// region/uffd.hpp: the userfaultfd backend's internals (region/uffd.cpp: opening, registering, the
// handler thread, dirty harvesting; region/uffd_fill.cpp: filling, shared with the self-service SIGBUS
// handler on the signal path).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "faultline/region.hpp"
#include "region/table.hpp"

namespace faultline::region::uffd {

// The fds, one per feature set (features are per fd): the handler thread's, the self-service one
// (UFFD_FEATURE_SIGBUS), and the asynchronous write-protect one (UFFD_FEATURE_WP_ASYNC).
enum class Kind { handler, sigbus, wp_async };

// Opens (once) the fd of `kind`; -1 and `why` when the kernel does not offer it.
int fd_for(Kind kind, std::string* why);

// Opens a userfaultfd with the handler features and returns it (the caller closes it), or -1 and why.
int probe(std::string* why);

// Chooses the backend for a region about to be created and says why (in `reason`).
Backend choose(const RegionOptions& o, bool adopted, std::string* reason);

// Registers a fresh mapping [base, end) of `r` with its fd; starts the handler thread if needed.
Result<void> attach(detail::RegionImpl& r);
// Unregisters (before the mapping goes away).
void detach(detail::RegionImpl& r) noexcept;

// track_writes on userfaultfd: the written pages since the last call, re-armed in the same ioctl.
Result<void> collect_written(detail::RegionImpl& r, std::vector<std::size_t>* pages);

// Fills the missing page at `page_addr` of `r` (and the read-ahead window after it) from the current
// thread: the handler thread, or the faulting thread in self-service mode (signal path). Returns 0, or
// an errno value after poisoning the page (the cause is written to r.last_failure).
int fill(detail::RegionImpl& r, std::uintptr_t page_addr, Access access, std::uintptr_t pc, long tid,
         void* bounce, std::size_t bounce_size, std::size_t* filled = nullptr) noexcept;

// After a fill by the handler or a pager thread (not signal path): counts the pages against the
// region's watermark and wakes the evictor thread when it is exceeded.
void note_filled(detail::RegionImpl& r, std::uintptr_t page_addr, std::size_t pages);

// Writes back (when the region has a writeback function) and drops pages [first, first + count).
Result<std::size_t> evict_pages(detail::RegionImpl& r, std::size_t first, std::size_t count);
Result<void> discard_pages(detail::RegionImpl& r, std::size_t first, std::size_t count);

// Poisons the missing page at `page_addr` and records why (signal path).
void poison_with(detail::RegionImpl& r, std::uintptr_t page_addr, int err, const char* reason) noexcept;

}  // namespace faultline::region::uffd
