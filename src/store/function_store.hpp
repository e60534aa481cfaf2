// store/function_store.hpp: a fill function and its data (RegionOptions::fill) seen as a Store, so that
// every backend talks to one interface. Read-only. Its fill is async-signal-safe exactly when the
// function is (provider functions must be; pager functions need not be).
#pragma once

#include "faultline/store.hpp"

namespace faultline::store {

class FunctionStore final : public Store {
 public:
  FunctionStore() = default;
  FunctionStore(FillFn fn, void* data, bool signal_safe) noexcept : fn_(fn), data_(data), signal_safe_(signal_safe) {}
  ~FunctionStore() override;
  FillStatus fill(const FillRequest& req) override;  // store/function_store_sig.cpp (signal path)
  bool async_signal_safe() const noexcept override { return signal_safe_; }

 private:
  FillFn fn_ = nullptr;
  void* data_ = nullptr;
  bool signal_safe_ = false;
};

}  // namespace faultline::store
