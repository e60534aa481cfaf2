// core/page.cpp: the cached page size (signal path: page_size() is a plain load).
#include "core/page.hpp"

#include <sys/auxv.h>

namespace faultline::core {

namespace {
// Initialised at load time, before any handler can run; getauxval only reads the auxiliary vector.
const std::size_t g_page_size = static_cast<std::size_t>(getauxval(AT_PAGESZ));
}  // namespace

std::size_t page_size() noexcept { return g_page_size; }

}  // namespace faultline::core
