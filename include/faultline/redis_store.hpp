// faultline/redis_store.hpp: a store whose pages live in a Redis Cluster (Redis 7, cluster mode): a
// region's working set may outgrow this machine's memory and survive the loss of a server.
//
//   auto opts = faultline::RedisClusterOptions::from_env().value();  // FAULTLINE_REDIS_CLUSTER, or:
//   // faultline::RedisClusterOptions opts;  opts.seeds = {"10.0.0.5:7000", "10.0.0.6:7000"};
//   auto store = faultline::RedisClusterStore::connect(opts).value();  // unique_ptr; outlives regions
//   faultline::RegionOptions o;
//   o.policy = faultline::Policy::pager;          // fills run on pager threads, bounded by fill_timeout
//   o.pager = faultline::Pager::start({.threads = 2}).value();
//   o.store = store.get();
//   o.write_back = true;                          // dirty pages go back to the cluster
//   o.max_resident_pages = 2048;                  // 8 MiB resident; the rest lives in the cluster
//   auto heap = faultline::reserve_region(1ull << 30, o).value();
//
// Keys. Page p of the data set is the key `{<key_prefix>:<p / chunk_pages>}:<p>`: the hash tag puts a
// chunk of `chunk_pages` pages in one hash slot, so a read-ahead window is one MGET (or two, when it
// straddles chunks, sent pipelined to their nodes before either answer is read) and a write-back run is one
// MSET. Set chunk_pages to the region's readahead_max. A page never stored reads as zeros (as a file's
// hole); a value of any other length than one page is an error (EIO), never a short page. Two regions
// given one store share its pages, like two mappings of one file.
//
// Routing. The store learns the slot map from `CLUSTER SLOTS` (at connect(), and again whenever a node
// fails or answers MOVED), follows MOVED and ASK redirections (up to max_redirects for one request: more is
// an error, a "MOVED storm"), and keeps one connection per node per calling thread at a time (a small
// pool per node). Reads go to the slot's master; when it does not answer they fall back to its replicas
// (READONLY), then refresh the map and retry until `retry_for` runs out. Writes go to masters only.
//
// Durability. Redis replicates asynchronously: write_back() stores a run with MSET and then `WAIT`s for
// `wait_replicas` replicas (within `wait_timeout`); fewer acknowledgements is a failed write-back, so the
// region keeps the pages resident and dirty (flush() returns the error) and drops nothing a master's death
// could lose. A read that falls back to a replica sees every page whose write-back returned only if that
// replica acknowledged it: with more replicas per master than wait_replicas, set wait_replicas to their
// number (or replica_reads = false) when that matters. The servers must run with `maxmemory-policy noeviction`: a full cluster refuses the write
// (OOM), a failed write-back, never an evicted page.
//
// Failure. Every failure is an error with the node and the cause ("redis 127.0.0.1:7001: Connection
// refused"): fill() fails (the faulting access ends in SIGBUS with that text in the report, at the latest
// after the region's fill_timeout), write_back() fails (pages stay dirty). Each system call hiredis makes
// is bounded by command_timeout, and a request by retry_for, so a store call never hangs. Fault injection
// (faultline/fault_injection.hpp) reaches the store at its interface: Op::store_get (an MGET),
// Op::store_set (an MSET) and Op::store_wait (a WAIT) fail as if the node had answered with that errno.
//
// Thread-safety: connect() and every member are thread-safe; the store serves any number of pager
// threads at once. Nothing here is async-signal-safe (async_signal_safe() is false): the store serves
// pager regions (pager threads) and provider regions on the userfaultfd backend's handler thread, never
// code in a signal handler.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "faultline/result.hpp"
#include "faultline/store.hpp"

namespace faultline {

struct RedisClusterOptions {
  // Nodes to learn the cluster from, "host:port" (IPv4 addresses or names). At least one must answer.
  std::vector<std::string> seeds;
  std::string password;                // AUTH before anything else; empty: none
  std::string key_prefix = "faultline";  // the data set's name inside the cluster (keys above)
  std::size_t chunk_pages = 64;        // pages per hash-tagged chunk, 1..4096 (match readahead_max)
  std::chrono::milliseconds connect_timeout{500};   // one TCP connection
  std::chrono::milliseconds command_timeout{1000};  // one request's answer
  std::chrono::milliseconds retry_for{5000};        // one fill or write-back, redirections and failover
  bool replica_reads = true;           // fall back to replicas when a master does not answer
  int wait_replicas = 1;               // replicas that must acknowledge a write-back (0: do not WAIT)
  std::chrono::milliseconds wait_timeout{1000};     // WAIT's timeout
  unsigned max_redirects = 16;         // MOVED/ASK answers followed for one request

  // Options from an environment variable (ignored in setuid/setgid programs, as secure_getenv does):
  // comma-separated seeds and settings, e.g.
  //   FAULTLINE_REDIS_CLUSTER="127.0.0.1:7000,127.0.0.1:7001,wait=1,timeout_ms=1000,prefix=heap"
  // Settings: password=, prefix=, chunk=, connect_ms=, timeout_ms=, retry_ms=, replica_reads=0|1,
  // wait=, wait_ms=, redirects=. Errc::not_found when the variable is unset or empty;
  // Errc::invalid_argument naming the item for anything malformed.
  static Result<RedisClusterOptions> from_env(const char* variable = "FAULTLINE_REDIS_CLUSTER");
  static Result<RedisClusterOptions> parse(const std::string& spec);
};

// Counters of a store (relaxed snapshots).
struct RedisClusterStats {
  std::uint64_t fills = 0;           // fill() calls (read-ahead windows)
  std::uint64_t requests = 0;        // MGET/MSET/DEL requests sent (one per chunk touched)
  std::uint64_t pages_read = 0, pages_written = 0;
  std::uint64_t replica_reads = 0;   // chunks read from a replica because the master did not answer
  std::uint64_t redirects = 0;       // MOVED and ASK answers followed
  std::uint64_t refreshes = 0;       // slot-map refreshes
  std::uint64_t failures = 0;        // fills and write-backs that returned an error
};

class RedisClusterStore final : public Store {
 public:
  // Checks the options, connects to the first seed that answers, authenticates, reads the slot map and
  // checks that every one of the 16384 slots is served. Errors (nothing is left open): invalid_argument
  // for bad options; system_error when no seed answers (each seed and its error named), when a seed is
  // not a cluster node (cluster support disabled), or refuses the password; unsupported when the map
  // leaves slots unserved (the first one named).
  static Result<std::unique_ptr<RedisClusterStore>> connect(const RedisClusterOptions& opts);
  ~RedisClusterStore() override;
  RedisClusterStore(const RedisClusterStore&) = delete;
  RedisClusterStore& operator=(const RedisClusterStore&) = delete;

  // Store: not async-signal-safe; thread-safe.
  FillStatus fill(const FillRequest& req) override;
  FillStatus write_back(const WriteBackRequest* runs, std::size_t n, std::size_t* stored) override;
  bool writable() const noexcept override { return true; }
  std::size_t preferred_run_pages() const noexcept override;  // chunk_pages

  // Reads `count` pages from `first_page` into `dest` (the same path as fill(), for tools and tests).
  FillStatus read_pages(std::size_t first_page, std::size_t count, std::byte* dest);
  // Stores `count` pages at `first_page` (the same path as write_back()).
  FillStatus write_pages(std::size_t first_page, std::size_t count, const std::byte* src);
  // Deletes the data set's keys for pages [first_page, first_page + count): they read as zeros again.
  FillStatus erase_pages(std::size_t first_page, std::size_t count);

  RedisClusterStats stats() const noexcept;
  // The masters and their replicas as the store last saw them, one line each:
  // "127.0.0.1:7000 slots 0-5460 replicas 127.0.0.1:7004".
  std::vector<std::string> describe() const;
  const RedisClusterOptions& options() const noexcept;

  // The cluster key slot of `key` (CRC16-CCITT/XMODEM of the hash tag, mod 16384). Thread-safe.
  static unsigned key_slot(const std::string& key) noexcept;
  // The key of `page` under these options.
  static std::string page_key(const RedisClusterOptions& opts, std::size_t page);

  struct Impl;

 private:
  explicit RedisClusterStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline
