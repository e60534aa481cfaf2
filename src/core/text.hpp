// core/text.hpp: splitting the comma-separated lists of faultline's environment variables
// (FAULTLINE_INJECT, FAULTLINE_REDIS_CLUSTER). Allocates: not signal path.
#pragma once

#include <string>
#include <vector>

namespace faultline::core {

// The non-empty items of `s` separated by `sep`, in order.
inline std::vector<std::string> split_items(const std::string& s, char sep) {
  std::vector<std::string> items;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t end = s.find(sep, pos);
    if (end == std::string::npos) end = s.size();
    if (end > pos) items.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return items;
}

}  // namespace faultline::core
