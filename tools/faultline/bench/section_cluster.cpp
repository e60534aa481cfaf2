// tools/faultline/bench/section_cluster.cpp: pages from a Redis Cluster (RedisClusterStore), when
// FAULTLINE_REDIS_CLUSTER names one (scripts/redis-cluster.sh start DIR prints the seeds):
//   - remote first touch, sequential with read-ahead 64, against the same pages through the file store
//     (the local store faultline already has; target: within 2x a page);
//   - the same against a pipelined GET loop of the same pages in 64-page batches (the client's floor:
//     no faults, no copies into a region);
//   - remote first touch at random, one page per fault, against a hand-written userfaultfd pager that
//     answers each fault with one GET round trip and one UFFDIO_COPY (target: within 1.3x). FluidMem's 24.87 us per remote fault on
//     RAMCloud is the anchor the note quotes.
// The candidate regions are provider regions on the userfaultfd handler thread (the store is called
// inline there: one hop fewer than a pager). Without a cluster the rows say why they were not measured.
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "bench/sections.hpp"
#include "faultline/redis_store.hpp"
#include "faultline/region.hpp"

namespace faultline::bench {

namespace {

constexpr std::size_t kPage = 4096;

double read_all(const volatile char* p, const std::vector<std::size_t>& order) {
  std::uint64_t sum = 0;
  const double t0 = now_ns();
  for (std::size_t i : order) sum += static_cast<unsigned char>(p[i * kPage + 17]);
  const double ns = (now_ns() - t0) / static_cast<double>(order.size());
  if (sum == 1) std::fputs("", stderr);
  return ns;
}

// The floor of a remote page fault served one at a time, written by hand: a thread reads the
// userfaultfd's fault messages and answers each with one GET and one UFFDIO_COPY (which wakes the
// faulting thread). No region table, no store interface, no pool: what a user would write for one node.
class HandWrittenRemotePager {
 public:
  HandWrittenRemotePager(const std::string& host, int port, std::size_t pages, const std::vector<std::string>& keys)
      : len_(pages * kPage), keys_(keys) {
    c_ = redisConnect(host.c_str(), port);
    fd_ = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC));
    mem_ = static_cast<char*>(mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (c_ == nullptr || c_->err != 0 || fd_ < 0 || mem_ == MAP_FAILED) return;
    uffdio_api api{UFFD_API, 0, 0};
    uffdio_register reg{};
    reg.range = {reinterpret_cast<std::uint64_t>(mem_), len_};
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    ok_ = ioctl(fd_, UFFDIO_API, &api) == 0 && ioctl(fd_, UFFDIO_REGISTER, &reg) == 0;
    if (ok_) thread_ = std::thread([this] { serve(); });
  }
  ~HandWrittenRemotePager() {
    if (thread_.joinable()) {
      stop_ = true;
      (void)*static_cast<volatile char*>(mem_);  // a last fault wakes the thread, which then sees stop_
      thread_.join();
    }
    if (c_ != nullptr) redisFree(c_);
    if (mem_ != MAP_FAILED && mem_ != nullptr) munmap(mem_, len_);
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }
  // Reads the pages of `order`, each faulted in through the thread: ns per page. The pages are dropped
  // afterwards (missing again for the next sample).
  double run(const std::vector<std::size_t>& order) {
    const double ns = read_all(mem_, order);
    madvise(mem_, len_, MADV_DONTNEED);
    return ns;
  }

 private:
  void serve() {
    uffd_msg msg{};
    for (;;) {
      if (read(fd_, &msg, sizeof msg) != static_cast<ssize_t>(sizeof msg) || msg.event != UFFD_EVENT_PAGEFAULT) continue;
      const std::uintptr_t page = (msg.arg.pagefault.address - reinterpret_cast<std::uintptr_t>(mem_)) / kPage;
      static const std::string zeros(kPage, '\0');
      const char* src = zeros.data();
      redisReply* r = nullptr;
      if (!stop_) {
        r = static_cast<redisReply*>(redisCommand(c_, "GET %b", keys_[page].data(), keys_[page].size()));
        if (r == nullptr || r->type != REDIS_REPLY_STRING || r->len != kPage) die("GET of a page failed");
        src = r->str;
      }
      uffdio_copy copy{reinterpret_cast<std::uint64_t>(mem_ + page * kPage), reinterpret_cast<std::uint64_t>(src), kPage, 0, 0};
      while (ioctl(fd_, UFFDIO_COPY, &copy) != 0 && errno == EAGAIN) {
      }
      uffdio_range range{reinterpret_cast<std::uint64_t>(mem_ + page * kPage), kPage};
      ioctl(fd_, UFFDIO_WAKE, &range);  // a no-op after a copy; after EEXIST (a second message) the wake-up
      if (r != nullptr) freeReplyObject(r);
      if (stop_ && page == 0) return;  // the destructor's own fault (not a late message of a sample)
    }
  }

  redisContext* c_ = nullptr;
  int fd_ = -1;
  char* mem_ = nullptr;
  std::size_t len_;
  const std::vector<std::string>& keys_;
  std::atomic<bool> stop_{false};
  bool ok_ = false;
  std::thread thread_;
};

}  // namespace

void section_cluster(Bench& b) {
  if (!b.wants("cluster")) return;
  const std::string seq_name = "remote first touch, sequential, read-ahead 64 (Redis Cluster)";
  const std::string rnd_name = "remote first touch, random, one page per fault (Redis Cluster)";
  auto opts = RedisClusterOptions::from_env();
  if (!opts) {
    const std::string why = opts.error().message() + ": no cluster to measure (scripts/redis-cluster.sh start DIR)";
    b.unavailable("cluster", seq_name, "file store, same pages", why, Target{Target::Kind::ratio_at_most, 2.0, "<= 2x", "cluster"});
    b.unavailable("cluster", seq_name, "pipelined GET loop (the client's floor)", why);
    b.unavailable("cluster", rnd_name, "hand-written userfaultfd pager: one GET + one UFFDIO_COPY a fault", why,
                  Target{Target::Kind::ratio_at_most, 1.3, "<= 1.3x", "cluster"});
    return;
  }
  if (auto avail = userfaultfd_available(); !avail) {
    b.unavailable("cluster", seq_name, "file store, same pages", avail.error().message());
    return;
  }
  const std::size_t pages = b.options().quick ? 256 : 1024;
  opts->key_prefix = "faultline-bench-" + std::to_string(getpid());
  opts->chunk_pages = 64;
  auto store = RedisClusterStore::connect(*opts);
  if (!store) die("cluster: " + store.error().message());
  RedisClusterStore& rs = **store;

  // The data: the same pages in the cluster and in a file (page cache).
  std::vector<std::byte> data(pages * kPage);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>((i * 131) >> 7);
  if (FillStatus st = rs.write_pages(0, pages, data.data()); st.error != 0) die(std::string("cluster: ") + st.reason);
  char path[] = "/tmp/faultline-bench-cluster-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0 || write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) die("cluster: the file");
  auto file = FileStore::open(path);
  if (!file) die("cluster: " + file.error().message());

  std::vector<std::size_t> seq(pages), rnd(pages);
  std::iota(seq.begin(), seq.end(), 0);
  std::iota(rnd.begin(), rnd.end(), 0);
  std::shuffle(rnd.begin(), rnd.end(), std::mt19937_64(17));

  const auto region_sampler = [&](Store* st, std::size_t readahead, const std::vector<std::size_t>& order) -> Sampler {
    return [st, readahead, &order, pages] {
      RegionOptions o;
      o.name = "bench-cluster";
      o.policy = Policy::provider;
      o.backend = Backend::userfaultfd;
      o.store = st;
      o.readahead_max = readahead;
      o.fault_around = readahead == 1 ? 1 : 16;
      auto r = reserve_region(pages * kPage, o);
      if (!r) die("cluster: reserve_region: " + r.error().message());
      return read_all(static_cast<const volatile char*>(r->data()), order);
    };
  };

  const std::string anchor = "anchor: FluidMem on RAMCloud 24.87 us per remote fault";
  b.compare("cluster", seq_name, "file store, same pages", region_sampler(&file.value(), 64, seq),
            region_sampler(&rs, 64, seq), Target{Target::Kind::ratio_at_most, 2.0, "<= 2x", "cluster"})
      .note = std::to_string(pages) + " pages, chunks of 64 pages; " + anchor;

  // The client's floor: the same pages fetched by MGET per 64-page chunk, pipelined, no region.
  std::vector<std::byte> sink(pages * kPage);
  b.compare("cluster", seq_name, "pipelined GET loop (the client's floor)",
            [&] {
              const double t0 = now_ns();
              if (FillStatus st = rs.read_pages(0, pages, sink.data()); st.error != 0) die(std::string("cluster: ") + st.reason);
              return (now_ns() - t0) / static_cast<double>(pages);
            },
            region_sampler(&rs, 64, seq))
      .note = "the floor is the store's own MGET per chunk into a buffer";

  const std::string first_seed = opts->seeds.front();
  const std::size_t colon = first_seed.rfind(':');
  // The hand-written pager talks to one node: the random row uses the pages whose slot the seed serves.
  std::vector<std::string> keys(pages);
  std::vector<std::size_t> local;  // pages the seed node serves
  {
    redisContext* c = redisConnect(first_seed.substr(0, colon).c_str(), std::atoi(first_seed.c_str() + colon + 1));
    for (std::size_t i = 0; i < pages; ++i) {
      keys[i] = RedisClusterStore::page_key(*opts, i);
      auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", keys[i].data(), keys[i].size()));
      if (r != nullptr && r->type == REDIS_REPLY_STRING) local.push_back(i);
      if (r != nullptr) freeReplyObject(r);
    }
    if (c != nullptr) redisFree(c);
  }
  HandWrittenRemotePager floor(first_seed.substr(0, colon), std::atoi(first_seed.c_str() + colon + 1), pages, keys);
  std::vector<std::size_t> rnd_local;
  for (std::size_t i : rnd) {
    if (std::find(local.begin(), local.end(), i) != local.end()) rnd_local.push_back(i);
  }
  if (!floor.ok() || rnd_local.empty()) {
    b.unavailable("cluster", rnd_name, "hand-written userfaultfd pager: one GET + one UFFDIO_COPY a fault",
                  "the seed node serves none of the pages, or userfaultfd could not be set up",
                  Target{Target::Kind::ratio_at_most, 1.3, "<= 1.3x", "cluster"});
  } else {
    b.compare("cluster", rnd_name, "hand-written userfaultfd pager: one GET + one UFFDIO_COPY a fault", [&] { return floor.run(rnd_local); },
              region_sampler(&rs, 1, rnd_local), Target{Target::Kind::ratio_at_most, 1.3, "<= 1.3x", "cluster"})
        .note = std::to_string(rnd_local.size()) + " pages the seed node serves, in random order; " + anchor;
  }
  (void)rs.erase_pages(0, pages);
  close(fd);
  unlink(path);
}

}  // namespace faultline::bench
