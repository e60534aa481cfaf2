// tests/unit/env_probe.cpp: prints whether install() took faultline's environment variables
// (FAULTLINE_REPORT, FAULTLINE_INJECT) into account. Run by tests/unit/secure_env_test.sh as is and as a
// setgid program, where they must be ignored (secure_getenv: AT_SECURE).
#include <sys/auxv.h>

#include <cstdio>

#include "faultline/fault_injection.hpp"
#include "faultline/report.hpp"
#include "faultline/trap.hpp"

int main() {
  if (auto r = faultline::install(); !r) {
    std::printf("install failed: %s\n", r.error().message().c_str());
    return 1;
  }
  std::printf("secure %lu report %s injection %s\n", getauxval(AT_SECURE), faultline::report::enabled() ? "on" : "off",
              faultline::fault_injection::armed() ? "on" : "off");
  return 0;
}
