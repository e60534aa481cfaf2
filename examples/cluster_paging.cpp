// examples/cluster_paging.cpp: a working set larger than its resident cap, paged to a Redis Cluster and
// back (disaggregated memory, as FluidMem and UMap's network store do it), on faultline's public API.
//
//   FAULTLINE_REDIS_CLUSTER=127.0.0.1:7300,127.0.0.1:7301 faultline_cluster_paging_demo [MiB] [cap MiB]
//
// A region of MiB (default 64) is served by a pager (Policy::pager: the fills run on pager threads as
// ordinary code, bounded by fill_timeout) from a RedisClusterStore, with write_back and a resident cap
// of cap MiB (default 8): faultline's evictor writes the oldest windows back (MSET, then WAIT for a
// replica) and drops them whenever more than the cap is resident. The program writes every page (a
// value derived from its index and a seed), which pushes most of them out to the cluster, then reads
// every page back in a random order and checks each byte it wrote, then rewrites a random tenth and
// checks those again after a full flush and eviction. It prints the figures: pages paged in and out,
// the store's requests, and the time per page.
//
// Without FAULTLINE_REDIS_CLUSTER it says so and exits 77 (a test skips). Exit 0 only if every byte
// read back is the one written.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "faultline/faultline.hpp"
#include "faultline/redis_store.hpp"

namespace {

constexpr std::size_t kPage = 4096;

std::uint64_t value_of(std::size_t page, std::size_t word, std::uint64_t seed) {
  std::uint64_t x = (page * 0x9E3779B97F4A7C15ull) ^ (word * 0xBF58476D1CE4E5B9ull) ^ seed;
  x ^= x >> 31;
  return x * 0x94D049BB133111EBull;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  const std::size_t cap_mib = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 8;
  if (mib == 0 || cap_mib == 0 || cap_mib >= mib) {
    std::fprintf(stderr, "usage: %s [MiB > cap] [cap MiB]\n", argv[0]);
    return 2;
  }
  auto opts = faultline::RedisClusterOptions::from_env();
  if (!opts) {
    std::printf("cluster paging: not run: %s (start one with scripts/redis-cluster.sh)\n", opts.error().message().c_str());
    return 77;
  }
  opts->key_prefix = "cluster-paging-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  opts->chunk_pages = 64;
  auto store = faultline::RedisClusterStore::connect(*opts);
  if (!store) {
    std::fprintf(stderr, "cluster paging: %s\n", store.error().message().c_str());
    return 1;
  }
  auto pager = faultline::Pager::start({.name = "cluster-pager", .threads = 2});
  if (!pager) {
    std::fprintf(stderr, "cluster paging: %s\n", pager.error().message().c_str());
    return 1;
  }
  faultline::RegionOptions o;
  o.name = "cluster-heap";
  o.policy = faultline::Policy::pager;
  o.pager = *pager;
  o.store = store->get();
  o.write_back = true;
  o.readahead_max = 64;
  o.fault_around = 64;
  o.max_resident_pages = cap_mib * 1024 * 1024 / kPage;
  o.fill_timeout = std::chrono::milliseconds(30000);
  const std::size_t pages = mib * 1024 * 1024 / kPage;
  auto heap = faultline::reserve_region(pages * kPage, o);
  if (!heap) {
    std::fprintf(stderr, "cluster paging: %s\n", heap.error().message().c_str());
    return 1;
  }
  if (heap->backend() != faultline::Backend::userfaultfd) {
    std::printf("cluster paging: not run: the resident cap needs userfaultfd (%s)\n", heap->backend_reason());
    return 77;
  }
  auto* words = static_cast<std::uint64_t*>(heap->data());
  const std::size_t per_page = kPage / sizeof(std::uint64_t);
  const std::uint64_t seed = 0x5eed;
  std::printf("cluster paging: %zu MiB through a %zu MiB cap, %s\n", mib, cap_mib, (*store)->describe().front().c_str());

  // 1. Write every page (sequential): the evictor pushes the oldest out to the cluster as we go.
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t p = 0; p < pages; ++p) {
    for (std::size_t w = 0; w < per_page; w += 8) words[p * per_page + w] = value_of(p, w, seed);
  }
  const double write_s = seconds_since(t0);

  // 2. Read every page back in a random order, checking each word written.
  std::vector<std::size_t> order(pages);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(42);
  std::shuffle(order.begin(), order.end(), rng);
  std::size_t wrong = 0;
  t0 = std::chrono::steady_clock::now();
  for (std::size_t p : order) {
    for (std::size_t w = 0; w < per_page; w += 8) wrong += words[p * per_page + w] != value_of(p, w, seed);
  }
  const double read_s = seconds_since(t0);

  // 3. Rewrite a random tenth, flush, evict everything, and check those pages again.
  const std::uint64_t seed2 = 0xfeed;
  for (std::size_t i = 0; i < pages / 10; ++i) {
    const std::size_t p = order[i];
    for (std::size_t w = 0; w < per_page; w += 8) words[p * per_page + w] = value_of(p, w, seed2);
  }
  auto flushed = heap->flush();
  auto evicted = heap->evict(0, pages);
  if (!flushed || !evicted) {
    std::fprintf(stderr, "cluster paging: %s\n", (!flushed ? flushed.error() : evicted.error()).message().c_str());
    return 1;
  }
  for (std::size_t i = 0; i < pages; ++i) {
    const std::uint64_t s = i < pages / 10 ? seed2 : seed;
    const std::size_t p = order[i];
    wrong += words[p * per_page] != value_of(p, 0, s);
  }
  const auto st = (*store)->stats();
  std::printf("cluster paging: wrote %zu pages in %.2f s (%.1f us a page), read them back at random in %.2f s "
              "(%.1f us a page)\n",
              pages, write_s, write_s * 1e6 / static_cast<double>(pages), read_s, read_s * 1e6 / static_cast<double>(pages));
  std::printf("cluster paging: %llu pages read from the cluster, %llu written, %llu requests, %llu replica reads, "
              "%llu failures; flush stored %zu pages\n",
              static_cast<unsigned long long>(st.pages_read), static_cast<unsigned long long>(st.pages_written),
              static_cast<unsigned long long>(st.requests), static_cast<unsigned long long>(st.replica_reads),
              static_cast<unsigned long long>(st.failures), *flushed);
  // The region's own counters (Region::stats()): what the faults cost.
  const faultline::RegionStats rs = heap->stats();
  std::printf("cluster paging: the region saw %llu faults and %llu fills (%llu pages, %llu of them read ahead), "
              "evicted %llu pages and wrote back %llu; a fill took %llu us or less half the time, %llu us or less "
              "99 times in 100\n",
              static_cast<unsigned long long>(rs.faults), static_cast<unsigned long long>(rs.fills),
              static_cast<unsigned long long>(rs.pages_filled), static_cast<unsigned long long>(rs.readahead_pages),
              static_cast<unsigned long long>(rs.pages_evicted), static_cast<unsigned long long>(rs.pages_written_back),
              static_cast<unsigned long long>(rs.fill_ns_quantile(0.5) / 1000),
              static_cast<unsigned long long>(rs.fill_ns_quantile(0.99) / 1000));
  (void)(*store)->erase_pages(0, pages);  // leave the cluster as we found it
  std::printf("cluster paging: %zu wrong words\n", wrong);
  return wrong == 0 ? 0 : 1;
}
