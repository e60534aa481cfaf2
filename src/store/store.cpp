// store/store.cpp: the store interface's defaults and FunctionStore's out-of-line members. Not signal
// path.
#include <cerrno>

#include "faultline/store.hpp"
#include "store/function_store.hpp"

namespace faultline {

FillStatus Store::write_back(const WriteBackRequest*, std::size_t, std::size_t* stored) {
  if (stored != nullptr) *stored = 0;
  return FillStatus{EROFS, "this store cannot store pages"};
}

namespace store {
FunctionStore::~FunctionStore() = default;
}  // namespace store

}  // namespace faultline
