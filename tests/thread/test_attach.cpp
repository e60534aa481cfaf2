// tests/thread/test_attach.cpp: attaching threads: nesting, the alternate stack faultline maps and
// removes, a thread's own alternate stack kept.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "faultline/thread.hpp"
#include "faultline/trap.hpp"
#include "support/child.hpp"

namespace faultline {
namespace {

using namespace test;  // tests/support/

TEST(Threads, AttachIsNestedAndDetachRestoresAltstack) {
  ChildResult r = run_child([] {
    std::thread t([] {
      stack_t before{};
      sigaltstack(nullptr, &before);
      if (!(before.ss_flags & SS_DISABLE)) _exit(1);
      {
        auto a = attach_thread();
        if (!a.ok() || !thread_attached()) _exit(2);
        stack_t during{};
        sigaltstack(nullptr, &during);
        if (during.ss_flags & SS_DISABLE) _exit(3);
        if (during.ss_size < default_altstack_size()) _exit(4);
        {
          auto b = attach_thread();
          if (!b.ok()) _exit(5);
        }
        if (!thread_attached()) _exit(6);
      }
      if (thread_attached()) _exit(7);
      stack_t after{};
      sigaltstack(nullptr, &after);
      if (!(after.ss_flags & SS_DISABLE)) _exit(8);
    });
    t.join();
    AttachOptions tiny;
    tiny.altstack_size = 16;
    auto bad = attach_thread(tiny);
    if (bad.ok() || bad.error().code() != Errc::invalid_argument) _exit(9);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

TEST(Threads, ThreadWithItsOwnAltstackKeepsIt) {
  ChildResult r = run_child([] {
    static char own[64 << 10];
    stack_t ss{};
    ss.ss_sp = own;
    ss.ss_size = sizeof own;
    sigaltstack(&ss, nullptr);
    {
      auto a = attach_thread();
      if (!a.ok()) _exit(1);
      stack_t cur{};
      sigaltstack(nullptr, &cur);
      if (cur.ss_sp != own) _exit(2);
    }
    stack_t cur{};
    sigaltstack(nullptr, &cur);
    if (cur.ss_sp != own || (cur.ss_flags & SS_DISABLE)) _exit(3);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
