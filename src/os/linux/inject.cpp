// os/linux/inject.cpp: arming fault injection (rules, counting, the observer) and parsing
// FAULTLINE_INJECT. Not signal path. See faultline/fault_injection.hpp.
#include <cerrno>
#include <cstring>
#include <string>

#include "core/text.hpp"
#include "os/linux/inject.hpp"
#include "os/linux/inject_state.hpp"

namespace faultline::os::inject {

void update_hooked() noexcept {
  const bool on = g_state.counting.load() || g_state.observer.load() != nullptr || g_mask.active.load();
  g_hooked.store(on, std::memory_order_release);
}

}  // namespace faultline::os::inject

namespace faultline::fault_injection {

namespace {

using os::inject::g_state;
using os::inject::kOps;

void reset_locked() noexcept {
  g_state.counting.store(false, std::memory_order_release);
  for (unsigned i = 0; i < kOps; ++i) {
    g_state.rules[i].nth.store(0, std::memory_order_relaxed);
    g_state.rules[i].count.store(0, std::memory_order_relaxed);
    g_state.rules[i].error.store(0, std::memory_order_relaxed);
    g_state.rules[i].stall_ns.store(0, std::memory_order_relaxed);
    g_state.calls[i].store(0, std::memory_order_relaxed);
  }
  g_state.injected.store(0, std::memory_order_relaxed);
}

int errno_from_name(const std::string& s) {
  for (int e = 1; e < 134; ++e) {
    const char* n = strerrorname_np(e);
    if (n != nullptr && s == n) return e;
  }
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  return end != s.c_str() && *end == '\0' && v > 0 && v < 4096 ? static_cast<int>(v) : -1;
}

}  // namespace

Result<Op> op_from_name(const std::string& name) {
  for (unsigned i = 0; i < kOps; ++i) {
    if (name == op_name(static_cast<Op>(i))) return static_cast<Op>(i);
  }
  return Error(Errc::invalid_argument, "fault injection: unknown operation '" + name + "'");
}

Result<void> arm(const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    if (static_cast<unsigned>(r.op) >= kOps) return Error(Errc::invalid_argument, "fault injection: operation out of range");
    if (r.nth == 0) return Error(Errc::invalid_argument, "fault injection: nth counts from 1");
    if (r.error < 0 || r.error >= 4096) return Error(Errc::invalid_argument, "fault injection: errno out of range");
    if (r.stall < std::chrono::microseconds(0) || r.stall > std::chrono::seconds(60)) {
      return Error(Errc::invalid_argument, "fault injection: a stall must be 0 .. 60 s");
    }
  }
  reset_locked();
  for (const Rule& r : rules) {
    auto& s = g_state.rules[static_cast<unsigned>(r.op)];
    s.count.store(r.count, std::memory_order_relaxed);
    s.error.store(r.error, std::memory_order_relaxed);
    s.stall_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(r.stall).count(), std::memory_order_relaxed);
    s.nth.store(r.nth, std::memory_order_relaxed);
  }
  g_state.counting.store(true, std::memory_order_release);
  os::inject::update_hooked();
  return {};
}

Result<void> arm_from_spec(const std::string& spec) {
  std::vector<Rule> rules;
  for (const std::string& item : core::split_items(spec, ',')) {
    const std::vector<std::string> f = core::split_items(item, ':');
    const std::string bad = "FAULTLINE_INJECT: '" + item + "': ";
    if (f.size() < 3) return Error(Errc::invalid_argument, bad + "expected op:nth:errno[:count=N][:stall=Tms]");
    auto op = op_from_name(f[0]);
    if (!op) return Error(Errc::invalid_argument, bad + op.error().message());
    Rule r;
    r.op = *op;
    char* end = nullptr;
    r.nth = std::strtoull(f[1].c_str(), &end, 10);
    if (end == f[1].c_str() || *end != '\0' || r.nth == 0) return Error(Errc::invalid_argument, bad + "nth must be 1 or more");
    r.error = f[2] == "0" ? 0 : errno_from_name(f[2]);
    if (r.error < 0) return Error(Errc::invalid_argument, bad + "unknown errno '" + f[2] + "'");
    for (std::size_t i = 3; i < f.size(); ++i) {
      if (f[i].rfind("count=", 0) == 0) {
        r.count = std::strtoull(f[i].c_str() + 6, nullptr, 10);
      } else if (f[i].rfind("stall=", 0) == 0) {
        const std::string v = f[i].substr(6);
        const double n = std::strtod(v.c_str(), &end);
        const std::string unit = end;
        if (unit == "ms") r.stall = std::chrono::microseconds(static_cast<long>(n * 1000));
        else if (unit == "us") r.stall = std::chrono::microseconds(static_cast<long>(n));
        else if (unit == "s") r.stall = std::chrono::microseconds(static_cast<long>(n * 1'000'000));
        else return Error(Errc::invalid_argument, bad + "a stall needs a unit (s, ms, us)");
      } else {
        return Error(Errc::invalid_argument, bad + "unknown field '" + f[i] + "'");
      }
    }
    rules.push_back(r);
  }
  return arm(rules);
}

void count_only() noexcept {
  reset_locked();
  g_state.counting.store(true, std::memory_order_release);
  os::inject::update_hooked();
}

void disarm() noexcept {
  reset_locked();
  g_state.observer.store(nullptr, std::memory_order_release);
  os::inject::update_hooked();
}

void set_observer(Observer fn, void* data) noexcept {
  g_state.observer_data.store(data, std::memory_order_relaxed);
  g_state.observer.store(fn, std::memory_order_release);
  os::inject::update_hooked();
}

}  // namespace faultline::fault_injection
