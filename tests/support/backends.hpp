// tests/support/backends.hpp: running one test on every backend: signals, userfaultfd with its handler
// thread (provider regions over the shmem cache where the kernel has it), the same with the copy fill
// path (FillPath::copy), userfaultfd self-service. A suite derives from OnEveryBackend and is instantiated with
// FAULTLINE_ON_EVERY_BACKEND(Suite); a case the machine cannot run skips with the reason.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "faultline/region.hpp"
#include "support/signals.hpp"

namespace faultline::test {

struct BackendCase {
  const char* name;
  Backend backend;
  UserfaultfdMode mode;
  FillPath fill_path = FillPath::automatic;
};

inline const BackendCase kBackends[] = {
    {"signals", Backend::signals, UserfaultfdMode::handler_thread},
    {"uffd_thread", Backend::userfaultfd, UserfaultfdMode::handler_thread},
    {"uffd_copy", Backend::userfaultfd, UserfaultfdMode::handler_thread, FillPath::copy},
    {"uffd_self", Backend::userfaultfd, UserfaultfdMode::self_service},
};

class OnEveryBackend : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    if (GetParam().backend == Backend::userfaultfd && !userfaultfd_available().ok()) {
      GTEST_SKIP() << "userfaultfd not available here: " << userfaultfd_available().error().message();
    }
  }
  bool self_service() const { return GetParam().mode == UserfaultfdMode::self_service && uffd(); }
  bool uffd() const { return GetParam().backend == Backend::userfaultfd; }
  // Whether this case ends an access in the SIGBUS the signal backend sends itself, which qemu-user
  // cannot deliver (skip then: see kQemuSigbusToSelf).
  bool sigbus_to_self_under_emulator() const { return GetParam().backend == Backend::signals && under_emulator(); }
  RegionOptions opts(const char* name, Policy p) const {
    RegionOptions o;
    o.name = name;
    o.policy = p;
    o.backend = GetParam().backend;
    o.userfaultfd_mode = GetParam().mode;
    o.fill_path = GetParam().fill_path;
    return o;
  }
};

}  // namespace faultline::test

#define FAULTLINE_ON_EVERY_BACKEND(Suite)                                            \
  INSTANTIATE_TEST_SUITE_P(All, Suite, ::testing::ValuesIn(::faultline::test::kBackends), \
                           [](const auto& p) { return std::string(p.param.name); })
