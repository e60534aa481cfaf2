// region/remote.hpp: pager regions served by another process (region/remote.cpp). Internal.
#pragma once

#include "faultline/region.hpp"
#include "region/table.hpp"
#include "region/uffd.hpp"

namespace faultline::region::remote {

// Gives `r` a userfaultfd of its own, sends it with the region's description over `sock`, and starts
// the watchdog that poisons missing pages if the other end goes away.
Result<void> attach(detail::RegionImpl& r, int sock);
// Asks the watchdog to end (the region is being unregistered); it drops its pin on the region.
void stop(detail::RegionImpl& r) noexcept;

}  // namespace faultline::region::remote
