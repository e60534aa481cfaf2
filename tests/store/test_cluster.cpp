// tests/store/test_cluster.cpp: the Redis Cluster store against a real cluster (3 masters, 3 replicas on
// loopback, started once per ctest run by scripts/redis-cluster.sh as a fixture; CTest label `cluster`).
// Pages go to the cluster and come back, one request per read-ahead window; a full cluster refuses a
// write-back and the pages stay dirty; every injected GET/SET/WAIT failure ends in a defined way; and a
// master killed while threads fault and write loses no page and no byte, five rounds in a row.
//
// Set by tests/CMakeLists.txt: FAULTLINE_REDIS_CLUSTER in the environment (the seeds), and the macros
// FAULTLINE_CLUSTER_DIR (the cluster's folder) and FAULTLINE_CLUSTER_SCRIPT (scripts/redis-cluster.sh).
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "faultline/fault_injection.hpp"
#include "faultline/pager.hpp"
#include "faultline/redis_store.hpp"
#include "faultline/region.hpp"
#include "support/child.hpp"
#include "support/pages.hpp"

namespace faultline {
namespace {

using test::ChildResult;
using test::run_child;
constexpr std::size_t kPage = 4096;

// Ends a child with `code`, its output flushed first (the parent shows it).
[[noreturn]] void die(int code) {
  std::fflush(nullptr);
  _exit(code);
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// Options for a data set of this test's own (a fresh prefix: every page starts as zeros).
RedisClusterOptions cluster_options(const std::string& name, std::size_t chunk = 64) {
  auto o = RedisClusterOptions::from_env();
  if (!o.ok()) {
    std::fprintf(stderr, "FAULTLINE_REDIS_CLUSTER: %s\n", o.error().message().c_str());
    std::abort();
  }
  o->key_prefix = name + "-" + std::to_string(getpid()) + "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  o->chunk_pages = chunk;
  return std::move(o).value();
}

std::unique_ptr<RedisClusterStore> must_connect(const RedisClusterOptions& o) {
  auto s = RedisClusterStore::connect(o);
  if (!s.ok()) {
    std::fprintf(stderr, "connect: %s\n", s.error().message().c_str());
    die(80);
  }
  return std::move(s).value();
}

// One command to the node on `port` (administration: CONFIG SET, INFO, CLUSTER SLOTS).
std::string admin(int port, const std::vector<std::string>& words) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    return "!unreachable";
  }
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& w : words) {
    argv.push_back(w.c_str());
    lens.push_back(w.size());
  }
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string out = "!no answer";
  if (r != nullptr) {
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) out.assign(r->str, r->len);
    if (r->type == REDIS_REPLY_ERROR) out = "!" + std::string(r->str, r->len);
    if (r->type == REDIS_REPLY_INTEGER) out = std::to_string(r->integer);
    if (r->type == REDIS_REPLY_ARRAY) {  // CLUSTER SLOTS: "lo-hi:masterport " per range
      out.clear();
      for (std::size_t i = 0; i < r->elements; ++i) {
        const redisReply* e = r->element[i];
        out += std::to_string(e->element[0]->integer) + "-" + std::to_string(e->element[1]->integer) + ":" +
               std::to_string(e->element[2]->element[1]->integer) + " ";
      }
    }
    freeReplyObject(r);
  }
  redisFree(c);
  return out;
}

std::vector<int> ports() {
  std::vector<int> p;
  std::string s = env("FAULTLINE_REDIS_CLUSTER");
  for (std::size_t pos = 0; (pos = s.find(':', pos)) != std::string::npos; ++pos) p.push_back(std::atoi(s.c_str() + pos + 1));
  return p;
}

std::vector<int> master_ports() {
  std::vector<int> out;
  for (int p : ports()) {
    const std::string info = admin(p, {"INFO", "replication"});
    if (info.find("role:master") != std::string::npos) out.push_back(p);
  }
  return out;
}

bool cluster_cmd(const std::string& verb, const std::string& arg = "") {
  const std::string cmd = std::string(FAULTLINE_CLUSTER_SCRIPT) + " " + verb + " " + FAULTLINE_CLUSTER_DIR + " " + arg + " >&2";
  return std::system(cmd.c_str()) == 0;
}

char pattern(std::size_t page, unsigned round, std::size_t i) {
  return static_cast<char>((page * 131 + round * 7 + i) % 251 + 1);
}

// Three ranges with three different masters. (CLUSTER SLOTS leaves out a replica that has replicated
// nothing yet, so a fresh cluster may show none.)
TEST(Cluster, SeesThreeMasters) {
  auto store = must_connect(cluster_options("describe"));
  const auto lines = store->describe();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].substr(0, lines[0].find(' ')), lines[1].substr(0, lines[1].find(' ')));
  EXPECT_NE(lines[1].substr(0, lines[1].find(' ')), lines[2].substr(0, lines[2].find(' ')));
}

// Pages written in a pager region go to the cluster on flush(), and come back after evict(): each
// read-ahead window is one fill, and one MGET per chunk it touches (with chunk_pages = readahead_max, at
// most two, sent to their nodes together).
TEST(Cluster, PagesGoToTheClusterAndComeBackOneRequestPerWindow) {
  ChildResult r = run_child([] {
    auto store = must_connect(cluster_options("roundtrip", 64));
    RegionOptions o;
    o.name = "cluster";
    o.policy = Policy::pager;
    o.pager = Pager::start({.name = "cluster", .threads = 2}).value();
    o.store = store.get();
    o.write_back = true;
    o.readahead_max = 64;
    o.fault_around = 64;
    auto reg = test::must_reserve(256 * kPage, o);
    auto* p = static_cast<volatile char*>(reg.data());
    for (std::size_t pg = 0; pg < 256; ++pg) {
      if (p[pg * kPage + 9] != 0) die(1);  // never stored: zeros
      for (std::size_t i = 0; i < kPage; i += 512) p[pg * kPage + i] = pattern(pg, 0, i);
    }
    auto n = reg.flush();
    if (!n.ok() || *n != 256) {
      std::printf("flush: %s\n", n.ok() ? std::to_string(*n).c_str() : n.error().message().c_str());
      die(2);
    }
    // In the cluster, through the store's own path.
    std::vector<std::byte> buf(4 * kPage);
    if (store->read_pages(100, 4, buf.data()).error != 0) die(3);
    if (static_cast<char>(buf[2 * kPage + 512]) != pattern(102, 0, 512)) die(4);
    auto ev = reg.evict(0, 256);
    if (!ev.ok() || *ev != 0) die(5);  // all clean since the flush
    const RedisClusterStats before = store->stats();
    for (std::size_t pg = 0; pg < 256; ++pg) {
      for (std::size_t i = 0; i < kPage; i += 512) {
        if (p[pg * kPage + i] != pattern(pg, 0, i)) {
          std::printf("page %zu byte %zu wrong\n", pg, i);
          die(6);
        }
      }
    }
    const std::uint64_t fills = store->stats().fills - before.fills, requests = store->stats().requests - before.requests;
    std::printf("256 pages: %llu fills, %llu requests\n", static_cast<unsigned long long>(fills),
                static_cast<unsigned long long>(requests));
    // The window grows to 64 pages: 32 + 64 + 64 + 64 + 32 at most.
    if (fills > 6 || requests > 2 * fills) die(7);
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
}

// maxmemory-policy noeviction with no room: the write-back is refused (OOM), flush() says so, the pages
// stay dirty, and once there is room the next flush() stores every one of them.
TEST(Cluster, AFullClusterRefusesTheWriteBackAndThePagesStayDirty) {
  const std::vector<int> masters = master_ports();
  ASSERT_EQ(masters.size(), 3u);
  struct Restore {
    std::vector<int> ports;
    ~Restore() {
      for (int p : ports) admin(p, {"CONFIG", "SET", "maxmemory", "0"});
    }
  } restore{masters};
  for (int p : masters) ASSERT_EQ(admin(p, {"CONFIG", "SET", "maxmemory", "1"}), "OK");
  ChildResult r = run_child([] {
    auto store = must_connect(cluster_options("full", 8));
    RegionOptions o;
    o.name = "full";
    o.policy = Policy::pager;
    o.pager = Pager::start({}).value();
    o.store = store.get();
    o.write_back = true;
    auto reg = test::must_reserve(32 * kPage, o);
    auto* p = static_cast<volatile char*>(reg.data());
    for (std::size_t pg = 0; pg < 32; ++pg) p[pg * kPage] = pattern(pg, 1, 0);
    auto refused = reg.flush();
    if (refused.ok()) die(1);
    std::printf("refused: %s\n", refused.error().message().c_str());
    std::fflush(stdout);
    if (refused.error().message().find("OOM") == std::string::npos) die(2);
    // Room again: the same pages are still dirty and go now.
    for (int port : ports()) admin(port, {"CONFIG", "SET", "maxmemory", "0"});
    auto n = reg.flush();
    if (!n.ok() || *n != 32) die(3);
    if (!reg.evict(0, 32).ok()) die(4);
    for (std::size_t pg = 0; pg < 32; ++pg) {
      if (p[pg * kPage] != pattern(pg, 1, 0)) die(5);
    }
  });
  EXPECT_TRUE(r.exited() && r.exit_code() == 0) << r;
  EXPECT_NE(r.output.find("OOM command not allowed"), std::string::npos) << r;
}

// The fault-injection sweep at the store interface: a scenario (write 3 chunks, flush, evict, read back)
// runs once counting its GETs, SETs and WAITs, then once for each of them failing. A failed flush or
// evict must be an error with the cause, after which the pages are still dirty (a second flush stores
// them); a failed fill must end in SIGBUS naming the cause. Never wrong bytes.
void sweep_scenario(const RedisClusterOptions& opts, const std::vector<fault_injection::Rule>& rules) {
  auto store = must_connect(opts);
  RegionOptions o;
  o.name = "sweep";
  o.policy = Policy::pager;
  o.pager = Pager::start({}).value();
  o.store = store.get();
  o.write_back = true;
  o.readahead_max = 16;
  o.fault_around = 16;
  auto reg = test::must_reserve(48 * kPage, o);
  auto* p = static_cast<volatile char*>(reg.data());
  for (std::size_t pg = 0; pg < 48; ++pg) p[pg * kPage + 3] = pattern(pg, 2, 3);
  if (rules.empty()) {
    fault_injection::count_only();
  } else if (!fault_injection::arm(rules).ok()) {
    die(70);
  }
  auto n = reg.flush();
  if (!n.ok()) {
    std::printf("flush failed: %s\n", n.error().message().c_str());
    if (n.error().message().find("injected") == std::string::npos) die(71);
    n = reg.flush();  // the pages are still dirty
    if (!n.ok()) die(72);
  }
  auto ev = reg.evict(0, 48);
  if (!ev.ok()) {
    std::printf("evict failed: %s\n", ev.error().message().c_str());
    if (ev.error().message().find("injected") == std::string::npos) die(73);
    if (!reg.evict(0, 48).ok()) die(74);
  }
  for (std::size_t pg = 0; pg < 48; ++pg) {
    if (p[pg * kPage + 3] != pattern(pg, 2, 3)) die(75);  // wrong bytes: never
  }
  if (rules.empty()) {
    using fault_injection::Op;
    std::printf("calls %llu %llu %llu\n", static_cast<unsigned long long>(fault_injection::calls(Op::store_get)),
                static_cast<unsigned long long>(fault_injection::calls(Op::store_set)),
                static_cast<unsigned long long>(fault_injection::calls(Op::store_wait)));
  }
}

TEST(Cluster, EveryInjectedGetSetOrWaitFailureIsDefined) {
  const RedisClusterOptions opts = cluster_options("sweep", 16);
  ChildResult counting = run_child([&] { sweep_scenario(opts, {}); });
  ASSERT_TRUE(counting.exited() && counting.exit_code() == 0) << counting;
  unsigned long long calls[3] = {};
  ASSERT_EQ(std::sscanf(counting.output.c_str() + counting.output.find("calls "), "calls %llu %llu %llu", &calls[0],
                        &calls[1], &calls[2]),
            3)
      << counting;
  EXPECT_GE(calls[0], 3u);  // three windows read back
  EXPECT_GE(calls[1], 3u);  // three chunks written
  EXPECT_GE(calls[2], 1u);
  using fault_injection::Op;
  const Op ops[3] = {Op::store_get, Op::store_set, Op::store_wait};
  int runs = 0;
  for (int k = 0; k < 3; ++k) {
    for (unsigned long long nth = 1; nth <= calls[k]; ++nth) {
      ++runs;
      ChildResult r = run_child([&] { sweep_scenario(opts, {{ops[k], nth, 1, EIO, {}}}); }, 30);
      const bool clean = r.exited() && r.exit_code() == 0;
      const bool sigbus = r.signaled() && r.signal() == SIGBUS && r.output.find("injected") != std::string::npos;
      EXPECT_TRUE(clean || sigbus) << fault_injection::op_name(ops[k]) << " #" << nth << ": " << r;
      if (ops[k] == Op::store_get) {
        EXPECT_TRUE(sigbus) << "a failed fill must end the access: " << r;
      } else {
        EXPECT_TRUE(clean && r.output.find("failed:") != std::string::npos) << r;
      }
    }
  }
  std::printf("%d injected runs\n", runs);
}

// A master killed while two threads fault and write (with the evictor writing back and dropping pages
// all the while): reads go on from the replica and then from the promoted master; write-backs that fail
// keep their pages; once the killed node is back (as a replica), every page holds exactly what was last
// written. Five rounds in a row (five tests, in order), each killing the master of another range.
class ClusterFailover : public ::testing::TestWithParam<unsigned> {};

TEST_P(ClusterFailover, AKilledMasterLosesNoPage) {
  {
    const unsigned round = GetParam();
    std::fflush(nullptr);  // nothing buffered for the child to print twice
    const std::vector<int> masters = master_ports();
    ASSERT_EQ(masters.size(), 3u) << "round " << round;
    const int victim = masters[round % 3];
    const std::string pid = admin(victim, {"INFO", "server"});
    const std::size_t at = pid.find("process_id:");
    ASSERT_NE(at, std::string::npos);
    const pid_t victim_pid = static_cast<pid_t>(std::atol(pid.c_str() + at + 11));
    ChildResult r = run_child(
        [&] {
          RedisClusterOptions opts = cluster_options("failover", 8);
          opts.retry_for = std::chrono::milliseconds(8000);
          auto store = must_connect(opts);
          RegionOptions o;
          o.name = "failover";
          o.policy = Policy::pager;
          o.pager = Pager::start({.name = "failover", .threads = 2}).value();
          o.store = store.get();
          o.write_back = true;
          o.readahead_max = 8;
          o.fault_around = 8;
          o.max_resident_pages = 96;
          o.fill_timeout = std::chrono::milliseconds(20000);
          constexpr std::size_t kPages = 384;
          auto reg = test::must_reserve(kPages * kPage, o);
          auto* p = static_cast<volatile char*>(reg.data());
          std::vector<char> copy(kPages, 0);  // what each page's byte 100 should hold
          std::atomic<bool> stop{false};
          std::atomic<int> wrong{0};
          std::atomic<long> writes{0};
          auto writer = [&](std::size_t lo, std::size_t hi, unsigned seed) {
            std::mt19937 rng(seed);
            for (unsigned it = 1; !stop.load(); ++it) {
              const std::size_t pg = lo + rng() % (hi - lo);
              if (p[pg * kPage + 100] != copy[pg]) wrong.fetch_add(1);
              const char v = static_cast<char>(it % 250 + 1);
              p[pg * kPage + 100] = v;
              copy[pg] = v;
              writes.fetch_add(1);
            }
          };
          std::thread a(writer, 0, kPages / 2, 1 + round), b(writer, kPages / 2, kPages, 100 + round);
          while (writes.load() < 2000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
          kill(victim_pid, SIGKILL);
          const auto t_killed = std::chrono::steady_clock::now();
          std::printf("round %u: killed the master on port %d after %ld writes\n", round, victim, writes.load());
          // Until the replica is promoted (no slot range left on the victim), writers go on.
          bool promoted = false;
          for (int i = 0; i < 200 && !promoted; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            const int other = masters[(round + 1) % 3];
            const std::string slots = admin(other, {"CLUSTER", "SLOTS"});
            promoted = !slots.empty() && slots[0] != '!' && slots.find(":" + std::to_string(victim) + " ") == std::string::npos;
          }
          if (!promoted) die(10);
          const auto t_promoted = std::chrono::steady_clock::now();
          const long at_promotion = writes.load();
          while (writes.load() < at_promotion + 2000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
          stop.store(true);
          a.join();
          b.join();
          // The killed node comes back as a replica: every master has one again, so WAIT can succeed.
          const auto t_stopped = std::chrono::steady_clock::now();
          if (!cluster_cmd("restart", std::to_string(victim)) || !cluster_cmd("wait-healthy")) die(11);
          const auto t_healthy = std::chrono::steady_clock::now();
          Result<std::size_t> n = reg.flush();
          for (int i = 0; i < 20 && !n.ok(); ++i) {
            std::printf("flush: %s (retrying)\n", n.error().message().c_str());
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            n = reg.flush();
          }
          if (!n.ok()) die(12);
          if (!reg.evict(0, kPages).ok()) die(13);
          const auto ms = [](auto from, auto to) {
            return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count());
          };
          std::printf("round %u: promoted after %lld ms, writers ran %lld ms more, back and healthy in %lld ms, "
                      "flushed and evicted in %lld ms\n",
                      round, ms(t_killed, t_promoted), ms(t_promoted, t_stopped), ms(t_stopped, t_healthy),
                      ms(t_healthy, std::chrono::steady_clock::now()));
          int bad = 0;
          for (std::size_t pg = 0; pg < kPages; ++pg) bad += p[pg * kPage + 100] != copy[pg];
          const auto s = store->stats();
          std::printf("round %u: %ld writes, %d wrong reads while running, %d wrong pages at the end; %llu replica "
                      "reads, %llu refreshes, %llu failures\n",
                      round, writes.load(), wrong.load(), bad, static_cast<unsigned long long>(s.replica_reads),
                      static_cast<unsigned long long>(s.refreshes), static_cast<unsigned long long>(s.failures));
          if (wrong.load() != 0 || bad != 0) die(14);
        },
        50);
    if (admin(victim, {"PING"}) != "PONG") {  // the child ended before bringing it back
      EXPECT_TRUE(cluster_cmd("restart", std::to_string(victim)) && cluster_cmd("wait-healthy"));
    }
    ASSERT_TRUE(r.exited() && r.exit_code() == 0) << "round " << round << ": " << r;
    std::printf("%s", r.output.c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Round, ClusterFailover, ::testing::Range(0u, 5u));

}  // namespace
}  // namespace faultline
