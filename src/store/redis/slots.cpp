// store/redis/slots.cpp: the cluster store's pure parts: CRC16 key slots, page keys, and its options
// (checking them, and reading them from the environment). No I/O. Not signal path.
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/guard.hpp"
#include "core/text.hpp"
#include "faultline/redis_store.hpp"

namespace faultline {

namespace {

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the cluster specification's key hash.
unsigned crc16(const char* p, std::size_t n) noexcept {
  unsigned crc = 0;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= static_cast<unsigned>(static_cast<unsigned char>(p[i])) << 8;
    for (int b = 0; b < 8; ++b) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
    crc &= 0xffff;
  }
  return crc;
}

bool parse_number(const std::string& s, unsigned long long max, unsigned long long* out) {
  if (s.empty() || s.size() > 12) return false;
  unsigned long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

}  // namespace

unsigned RedisClusterStore::key_slot(const std::string& key) noexcept {
  // The hash tag: the bytes between the first '{' and the next '}', when that is not empty.
  const std::size_t open = key.find('{');
  if (open != std::string::npos) {
    const std::size_t close = key.find('}', open + 1);
    if (close != std::string::npos && close > open + 1) return crc16(key.data() + open + 1, close - open - 1) & 16383;
  }
  return crc16(key.data(), key.size()) & 16383;
}

std::string RedisClusterStore::page_key(const RedisClusterOptions& opts, std::size_t page) {
  const std::size_t chunk = opts.chunk_pages == 0 ? page : page / opts.chunk_pages;
  return "{" + opts.key_prefix + ":" + std::to_string(chunk) + "}:" + std::to_string(page);
}

Result<RedisClusterOptions> RedisClusterOptions::parse(const std::string& spec) {
  return core::guarded([&]() -> Result<RedisClusterOptions> {
    RedisClusterOptions o;
    for (const std::string& item : core::split_items(spec, ',')) {
      const std::size_t eq = item.find('=');
      if (eq == std::string::npos) {
        o.seeds.push_back(item);
        continue;
      }
      const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
      unsigned long long n = 0;
      auto bad = [&] { return Error(Errc::invalid_argument, "redis cluster options: bad item '" + item + "'"); };
      auto ms = [&](std::chrono::milliseconds* out) {
        if (!parse_number(value, 3'600'000, &n)) return false;
        *out = std::chrono::milliseconds(n);
        return true;
      };
      if (key == "password") {
        o.password = value;
      } else if (key == "prefix") {
        o.key_prefix = value;
      } else if (key == "chunk") {
        if (!parse_number(value, 4096, &n)) return bad();
        o.chunk_pages = n;
      } else if (key == "connect_ms") {
        if (!ms(&o.connect_timeout)) return bad();
      } else if (key == "timeout_ms") {
        if (!ms(&o.command_timeout)) return bad();
      } else if (key == "retry_ms") {
        if (!ms(&o.retry_for)) return bad();
      } else if (key == "wait_ms") {
        if (!ms(&o.wait_timeout)) return bad();
      } else if (key == "replica_reads") {
        if (value != "0" && value != "1") return bad();
        o.replica_reads = value == "1";
      } else if (key == "wait") {
        if (!parse_number(value, 16, &n)) return bad();
        o.wait_replicas = static_cast<int>(n);
      } else if (key == "redirects") {
        if (!parse_number(value, 1000, &n)) return bad();
        o.max_redirects = static_cast<unsigned>(n);
      } else {
        return Error(Errc::invalid_argument, "redis cluster options: unknown setting '" + key + "'");
      }
    }
    return o;
  });
}

Result<RedisClusterOptions> RedisClusterOptions::from_env(const char* variable) {
  const char* spec = variable == nullptr ? nullptr : secure_getenv(variable);
  if (spec == nullptr || *spec == '\0') {
    return Error(Errc::not_found, std::string(variable == nullptr ? "(null)" : variable) + " is not set");
  }
  return parse(spec);
}

}  // namespace faultline
