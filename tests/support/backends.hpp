// tests/support/backends.hpp: running one test on every backend: signals, userfaultfd with its handler
// thread (provider regions copied: the default for fill functions), the same with provider regions
// over the shmem cache (FillPath::shmem_cache, where the kernel has all it needs, write-back included;
// copies elsewhere), userfaultfd self-service. A suite derives from OnEveryBackend and is instantiated with
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
    {"uffd_cache", Backend::userfaultfd, UserfaultfdMode::handler_thread, FillPath::shmem_cache},
    {"uffd_self", Backend::userfaultfd, UserfaultfdMode::self_service},
};

// Whether provider regions can be had over the shmem cache here, write-back included (the kernel, as
// the kernel mask shows it). Asked once.
inline bool shmem_cache_here() {
  static const bool here = [] {
    struct NoStore final : Store {
      FillStatus fill(const FillRequest&) override { return {}; }
      bool writable() const noexcept override { return true; }
    } store;
    RegionOptions o;
    o.policy = Policy::provider;
    o.store = &store;
    o.write_back = true;
    o.backend = Backend::userfaultfd;
    o.fill_path = FillPath::shmem_cache;
    return explain_backend(o).ok();
  }();
  return here;
}

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
    if (p == Policy::provider && GetParam().fill_path == FillPath::shmem_cache && shmem_cache_here()) {
      o.fill_path = FillPath::shmem_cache;
    }
    return o;
  }
};

}  // namespace faultline::test

#define FAULTLINE_ON_EVERY_BACKEND(Suite)                                            \
  INSTANTIATE_TEST_SUITE_P(All, Suite, ::testing::ValuesIn(::faultline::test::kBackends), \
                           [](const auto& p) { return std::string(p.param.name); })
