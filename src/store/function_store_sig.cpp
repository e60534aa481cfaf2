// store/function_store_sig.cpp: FunctionStore's fill (signal path: a provider's fill function runs in
// the faulting thread's handler on the signal backend).
#include "store/function_store.hpp"

namespace faultline::store {

FillStatus FunctionStore::fill(const FillRequest& req) { return fn_(req, data_); }

}  // namespace faultline::store
