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

// Makes `own` the calling thread's alternate signal stack (exit 90 if the kernel refuses).
void set_altstack(char* own, std::size_t size) {
  stack_t ss{};
  ss.ss_sp = own;
  ss.ss_size = size;
  if (sigaltstack(&ss, nullptr) != 0) _exit(90);
}

TEST(Threads, ThreadWithItsOwnAltstackKeepsIt) {
  ChildResult r = run_child([] {
    static char own[64 << 10];
    set_altstack(own, sizeof own);
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

// Rust's standard library gives each thread an 8 KiB alternate stack: too small for faultline's
// handler. Attaching replaces it with faultline's own; detaching puts it back.
TEST(Threads, ATooSmallAltstackIsReplacedWhileAttached) {
  ChildResult r = run_child([] {
    static char own[8 << 10];
    set_altstack(own, sizeof own);
    {
      auto a = attach_thread();
      if (!a.ok()) _exit(1);
      stack_t cur{};
      sigaltstack(nullptr, &cur);
      if (cur.ss_sp == own || (cur.ss_flags & SS_DISABLE)) _exit(2);
      if (cur.ss_size < smallest_usable_altstack()) _exit(3);
    }
    stack_t cur{};
    sigaltstack(nullptr, &cur);
    if (cur.ss_sp != own || cur.ss_size != sizeof own || (cur.ss_flags & SS_DISABLE)) _exit(4);
    AttachOptions small;
    small.altstack_size = smallest_usable_altstack() - 1;
    auto bad = attach_thread(small);
    if (bad.ok() || bad.error().code() != Errc::invalid_argument) _exit(5);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

}  // namespace
}  // namespace faultline
