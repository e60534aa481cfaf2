// core/page_sig.cpp: the cached page size (signal path: page_size() is a plain load after the first call).
#include "core/page.hpp"

#include <sys/auxv.h>

#include <atomic>

namespace faultline::core {

namespace {
// Filled on first use rather than by a static initialiser, so that code running before this library's
// initialisers (a preloaded library's constructor) sees the right value. getauxval only reads the
// auxiliary vector, so filling it is async-signal-safe.
constinit std::atomic<std::size_t> g_page_size{0};
}  // namespace

std::size_t page_size() noexcept {
  std::size_t p = g_page_size.load(std::memory_order_relaxed);
  if (p == 0) {
    p = static_cast<std::size_t>(getauxval(AT_PAGESZ));
    g_page_size.store(p, std::memory_order_relaxed);
  }
  return p;
}

}  // namespace faultline::core
