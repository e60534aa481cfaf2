// tools/faultline/bench/section_pending.cpp: the rows whose mechanisms faultline does not have yet. They
// are listed with the reason instead of being left out, so the table always shows the whole comparison
// the project has committed to.
#include "bench/sections.hpp"

namespace faultline::bench {

void section_pending(Bench& b) {
  struct Pending {
    const char* section;
    const char* name;
    const char* baseline;
    const char* reason;
    const char* target;
  };
  static const Pending rows[] = {
      {"file", "first read of a file-backed region, sequential", "kernel mmap of the file",
       "the built-in file store is not built yet (issue 4)", "<= 2x"},
  };
  for (const Pending& p : rows) {
    if (!b.wants(p.section)) continue;
    std::optional<Target> t;
    if (p.target != nullptr) t = Target{Target::Kind::ratio_at_most, 0, p.target, ""};
    b.unavailable(p.section, p.name, p.baseline, p.reason, t);
  }
}

}  // namespace faultline::bench
