// tests/store/test_redis_store.cpp: the Redis Cluster store without a cluster: key slots as the cluster
// specification computes them, page keys, options, and every failure a broken or hostile node can cause
// (none reachable, not a cluster, a wrong password, slots unserved, a node that never answers, a MOVED
// storm, a node that goes away), played by tests/support/fake_redis.hpp. Each failure must be an error
// naming the node, or, for a faulting access, SIGBUS with the cause; never a hang, never zeros.
#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "faultline/pager.hpp"
#include "faultline/redis_store.hpp"
#include "faultline/region.hpp"
#include "support/child.hpp"
#include "support/fake_redis.hpp"
#include "support/pages.hpp"
#include "support/signals.hpp"

namespace faultline {
namespace {

using test::ChildResult;
using test::FakeRedis;
using test::run_child;

// The specification's examples (cluster-spec, "Keys distribution model") and CRC16/XMODEM's check value.
TEST(RedisStore, KeySlotsFollowTheSpecification) {
  EXPECT_EQ(RedisClusterStore::key_slot("123456789"), 0x31C3u & 16383);
  EXPECT_EQ(RedisClusterStore::key_slot("foo"), 12182u);
  EXPECT_EQ(RedisClusterStore::key_slot("bar"), 5061u);
  EXPECT_EQ(RedisClusterStore::key_slot("{user1000}.following"), RedisClusterStore::key_slot("{user1000}.followers"));
  EXPECT_EQ(RedisClusterStore::key_slot("{user1000}.following"), RedisClusterStore::key_slot("user1000"));
  // An empty tag hashes the whole key; only the first '{' counts.
  EXPECT_EQ(RedisClusterStore::key_slot("foo{}{bar}"), RedisClusterStore::key_slot(std::string("foo{}{bar}")));
  EXPECT_NE(RedisClusterStore::key_slot("foo{}{bar}"), RedisClusterStore::key_slot("bar"));
  EXPECT_EQ(RedisClusterStore::key_slot("foo{{bar}}zap"), RedisClusterStore::key_slot("{bar"));
}

TEST(RedisStore, PagesOfOneChunkShareASlot) {
  RedisClusterOptions o;
  o.key_prefix = "heap";
  o.chunk_pages = 64;
  EXPECT_EQ(RedisClusterStore::page_key(o, 70), "{heap:1}:70");
  const unsigned slot = RedisClusterStore::key_slot(RedisClusterStore::page_key(o, 64));
  for (std::size_t p = 64; p < 128; ++p) EXPECT_EQ(RedisClusterStore::key_slot(RedisClusterStore::page_key(o, p)), slot);
  int other = 0;
  for (std::size_t c = 2; c < 10; ++c) other += RedisClusterStore::key_slot(RedisClusterStore::page_key(o, c * 64)) != slot;
  EXPECT_GT(other, 0);  // chunks spread over the slots
}

TEST(RedisStore, OptionsFromTheEnvironment) {
  auto o = RedisClusterOptions::parse("127.0.0.1:7000,10.0.0.2:7001,wait=2,timeout_ms=250,prefix=heap,replica_reads=0,chunk=32");
  ASSERT_TRUE(o.ok()) << o.error().message();
  ASSERT_EQ(o->seeds.size(), 2u);
  EXPECT_EQ(o->seeds[1], "10.0.0.2:7001");
  EXPECT_EQ(o->wait_replicas, 2);
  EXPECT_EQ(o->command_timeout.count(), 250);
  EXPECT_EQ(o->key_prefix, "heap");
  EXPECT_FALSE(o->replica_reads);
  EXPECT_EQ(o->chunk_pages, 32u);
  auto bad = RedisClusterOptions::parse("127.0.0.1:7000,wait=many");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("wait=many"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(RedisClusterOptions::parse("colour=blue").ok());
  unsetenv("FAULTLINE_TEST_REDIS_UNSET");
  auto unset = RedisClusterOptions::from_env("FAULTLINE_TEST_REDIS_UNSET");
  ASSERT_FALSE(unset.ok());
  EXPECT_EQ(unset.error().code(), Errc::not_found);
  setenv("FAULTLINE_TEST_REDIS_SET", "127.0.0.1:7000", 1);
  auto set = RedisClusterOptions::from_env("FAULTLINE_TEST_REDIS_SET");
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->seeds.at(0), "127.0.0.1:7000");
}

RedisClusterOptions quick(const std::string& seed) {
  RedisClusterOptions o;
  o.seeds = {seed};
  o.connect_timeout = std::chrono::milliseconds(200);
  o.command_timeout = std::chrono::milliseconds(150);
  o.retry_for = std::chrono::milliseconds(400);
  return o;
}

TEST(RedisStore, BadConfigurationFailsAtConnect) {
  RedisClusterOptions none;
  EXPECT_EQ(RedisClusterStore::connect(none).error().code(), Errc::invalid_argument);
  EXPECT_EQ(RedisClusterStore::connect(quick("localhost")).error().code(), Errc::invalid_argument);
  RedisClusterOptions braces = quick("127.0.0.1:1");
  braces.key_prefix = "a{b}";
  EXPECT_EQ(RedisClusterStore::connect(braces).error().code(), Errc::invalid_argument);
  // Nothing listens on port 1: the seed is named with the kernel's answer.
  auto unreachable = RedisClusterStore::connect(quick("127.0.0.1:1"));
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.error().code(), Errc::system_error);
  EXPECT_NE(unreachable.error().message().find("127.0.0.1:1: Connection refused"), std::string::npos)
      << unreachable.error().message();

  FakeRedis plain(FakeRedis::Mode::not_cluster);
  auto not_cluster = RedisClusterStore::connect(quick(plain.seed()));
  ASSERT_FALSE(not_cluster.ok());
  EXPECT_NE(not_cluster.error().message().find("cluster support disabled"), std::string::npos)
      << not_cluster.error().message();
  EXPECT_NE(not_cluster.error().message().find(plain.seed()), std::string::npos) << not_cluster.error().message();

  FakeRedis locked(FakeRedis::Mode::error);
  RedisClusterOptions pw = quick(locked.seed());
  pw.password = "not-the-password";
  auto wrong_password = RedisClusterStore::connect(pw);
  ASSERT_FALSE(wrong_password.ok());
  EXPECT_NE(wrong_password.error().message().find("AUTH: WRONGPASS"), std::string::npos)
      << wrong_password.error().message();

  FakeRedis empty(FakeRedis::Mode::no_slots);
  auto incomplete = RedisClusterStore::connect(quick(empty.seed()));
  ASSERT_FALSE(incomplete.ok());
  EXPECT_EQ(incomplete.error().code(), Errc::unsupported);
  EXPECT_NE(incomplete.error().message().find("slot 0 is not served"), std::string::npos) << incomplete.error().message();
}

// A node that accepts the request and never answers: the read fails within retry_for, naming the node.
TEST(RedisStore, ANodeThatNeverAnswersIsATimeoutNamingIt) {
  FakeRedis hung(FakeRedis::Mode::silent);
  auto store = RedisClusterStore::connect(quick(hung.seed()));
  ASSERT_TRUE(store.ok()) << store.error().message();
  std::vector<std::byte> buf(2 * 4096, std::byte{0x5a});
  const FillStatus st = (*store)->read_pages(0, 2, buf.data());
  EXPECT_EQ(st.error, ETIMEDOUT);
  ASSERT_NE(st.reason, nullptr);
  EXPECT_NE(std::string(st.reason).find(hung.seed()), std::string::npos) << st.reason;
  EXPECT_EQ((*store)->stats().failures, 1u);
}

TEST(RedisStore, AMovedStormIsAnError) {
  FakeRedis storm(FakeRedis::Mode::moved_storm);
  RedisClusterOptions o = quick(storm.seed());
  o.retry_for = std::chrono::milliseconds(10000);  // the redirection limit ends it, not the clock
  auto store = RedisClusterStore::connect(o);
  ASSERT_TRUE(store.ok()) << store.error().message();
  std::vector<std::byte> buf(4096);
  const FillStatus st = (*store)->read_pages(3, 1, buf.data());
  EXPECT_EQ(st.error, EIO);
  ASSERT_NE(st.reason, nullptr);
  EXPECT_NE(std::string(st.reason).find("more than 16 redirections"), std::string::npos) << st.reason;
  EXPECT_GE((*store)->stats().redirects, 16u);
}

TEST(RedisStore, ANodeThatAnswersWithAnErrorFailsTheWriteBack) {
  FakeRedis failing(FakeRedis::Mode::error);
  auto store = RedisClusterStore::connect(quick(failing.seed()));
  ASSERT_TRUE(store.ok()) << store.error().message();
  std::vector<std::byte> page(4096, std::byte{1});
  WriteBackRequest w{RegionInfo{}, 0, 4096, page.data()};
  std::size_t stored = 99;
  const FillStatus st = (*store)->write_back(&w, 1, &stored);
  EXPECT_EQ(st.error, EIO);
  EXPECT_EQ(stored, 0u);
  ASSERT_NE(st.reason, nullptr);
  EXPECT_NE(std::string(st.reason).find("fake failure"), std::string::npos) << st.reason;
}

// A pager region on a store whose only node goes away after connect(): the faulting access ends in
// SIGBUS, and the notice names the node and the kernel's answer. Never zeros, never a hang.
TEST(RedisStore, AFaultOnAVanishedClusterEndsInSigbusNamingTheNode) {
  FAULTLINE_SKIP_UNDER_EMULATOR(test::kQemuSigbusToSelf);
  ChildResult r = run_child([] {
    FakeRedis node(FakeRedis::Mode::error);
    auto store = RedisClusterStore::connect(quick(node.seed()));
    if (!store.ok()) _exit(90);
    node.stop();
    RegionOptions o;
    o.name = "remote";
    o.policy = Policy::pager;
    o.pager = Pager::start({}).value();
    o.store = store->get();
    o.fill_timeout = std::chrono::milliseconds(5000);
    auto reg = test::must_reserve(16 * 4096, o);
    const char c = *static_cast<volatile char*>(reg.data());
    std::printf("read %d: no signal\n", c);
    _exit(1);
  });
  EXPECT_TRUE(r.signaled() && r.signal() == SIGBUS) << r;
  EXPECT_NE(r.output.find("Connection refused"), std::string::npos) << r;
  EXPECT_NE(r.output.find("redis 127.0.0.1:"), std::string::npos) << r;
}

}  // namespace
}  // namespace faultline
