// os/linux/errnames.hpp: errno values by name, without strerror (which may allocate or lock for its
// locale). Signal path.
#pragma once

namespace faultline::os {

// "EIO", "ETIMEDOUT", ...; "errno" for values it does not know. Async-signal-safe.
const char* errno_name(int err) noexcept;

}  // namespace faultline::os
