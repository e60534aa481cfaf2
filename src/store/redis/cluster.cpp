// store/redis/cluster.cpp: RedisClusterStore: connections (hiredis), the slot map and its refreshes,
// MOVED/ASK redirections, replica fallback, and the store's fill and write-back as pipelined MGET/MSET
// (+ WAIT) requests, one per chunk, sent to every node before any answer is read. Not signal path: the
// store serves pager threads and the userfaultfd handler thread (faultline/redis_store.hpp).
#include <hiredis/hiredis.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/guard.hpp"
#include "core/page.hpp"
#include "faultline/redis_store.hpp"
#include "os/linux/errnames.hpp"
#include "os/linux/inject.hpp"

namespace faultline {

namespace {

constexpr unsigned kSlots = 16384;

std::int64_t now_ms() {
  struct timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

struct timeval to_timeval(std::chrono::milliseconds ms) {
  struct timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// The errno a hiredis connection error stands for.
int errno_of(const redisContext* c) {
  if (c == nullptr) return ENOMEM;
  if (c->err == REDIS_ERR_EOF) return ECONNRESET;
  if (std::strstr(c->errstr, "refused") != nullptr) return ECONNREFUSED;
  if (std::strstr(c->errstr, "temporarily unavailable") != nullptr || std::strstr(c->errstr, "timed out") != nullptr) {
    return ETIMEDOUT;
  }
  return EIO;
}

struct ReplyFree {
  void operator()(redisReply* r) const noexcept {
    if (r != nullptr) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct Conn {
  redisContext* c = nullptr;
  bool readonly = false;  // READONLY sent (replica reads)
};

}  // namespace

struct RedisClusterStore::Impl {
  struct Node {
    std::string host;
    int port = 0;
    std::string name;  // "host:port"
    std::mutex m;
    std::vector<Conn> idle;
    std::atomic<std::int64_t> down_until{0};  // after a connection failure: try others first until then
  };
  struct Route {
    int master = -1;
    std::vector<int> replicas;
  };

  RedisClusterOptions opts;
  std::size_t page = 0;

  mutable std::shared_mutex map_mutex;
  std::vector<std::unique_ptr<Node>> nodes;  // only ever grows (indices stay valid)
  std::vector<Route> routes;                 // the slot ranges' routes
  std::array<std::int32_t, kSlots> slot_route{};  // -1: unserved
  std::atomic<std::uint64_t> map_generation{0};
  std::mutex refresh_mutex;

  std::atomic<std::uint64_t> fills{0}, requests{0}, pages_read{0}, pages_written{0}, replica_reads{0}, redirects{0},
      refreshes{0}, failures{0};

  // Failure texts handed out as FillStatus::reason: they must outlive the call. A ring (the region copies
  // the text when it records the failure; flush() copies it into its error).
  std::mutex text_mutex;
  char texts[64][200] = {};
  unsigned next_text = 0;

  ~Impl() {
    for (auto& n : nodes) {
      for (Conn& c : n->idle) redisFree(c.c);
    }
  }

  const char* remember(const std::string& s) {
    std::lock_guard lock(text_mutex);
    char* t = texts[next_text++ % 64];
    std::snprintf(t, sizeof texts[0], "%s", s.c_str());
    return t;
  }

  // The node "host:port", added if new. Takes the map lock exclusively unless `locked`.
  int node_index(const std::string& host, int port, bool locked) {
    std::unique_lock<std::shared_mutex> lock(map_mutex, std::defer_lock);
    if (!locked) lock.lock();
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i]->host == host && nodes[i]->port == port) return static_cast<int>(i);
    }
    auto n = std::make_unique<Node>();
    n->host = host;
    n->port = port;
    n->name = host + ":" + std::to_string(port);
    nodes.push_back(std::move(n));
    return static_cast<int>(nodes.size() - 1);
  }

  Node& node(int i) {
    std::shared_lock lock(map_mutex);
    return *nodes[static_cast<std::size_t>(i)];
  }

  // A connection to `n` (readonly: READONLY sent), or an error text.
  Conn take(Node& n, bool readonly, std::string* err, int* errnum) {
    {
      std::lock_guard lock(n.m);
      for (std::size_t i = n.idle.size(); i-- > 0;) {
        if (n.idle[i].readonly == readonly) {
          Conn c = n.idle[i];
          n.idle.erase(n.idle.begin() + static_cast<long>(i));
          return c;
        }
      }
    }
    Conn c;
    c.c = redisConnectWithTimeout(n.host.c_str(), n.port, to_timeval(opts.connect_timeout));
    if (c.c == nullptr || c.c->err != 0) {
      *errnum = errno_of(c.c);
      *err = "redis " + n.name + ": " + (c.c != nullptr ? c.c->errstr : "cannot allocate a connection");
      if (c.c != nullptr) redisFree(c.c);
      n.down_until.store(now_ms() + 1000, std::memory_order_relaxed);
      return Conn{};
    }
    redisSetTimeout(c.c, to_timeval(opts.command_timeout));
    redisEnableKeepAlive(c.c);
    auto simple = [&](std::vector<const char*> argv) -> bool {
      Reply r(static_cast<redisReply*>(redisCommandArgv(c.c, static_cast<int>(argv.size()), argv.data(), nullptr)));
      if (!r) {
        *errnum = errno_of(c.c);
        *err = "redis " + n.name + ": " + c.c->errstr;
        return false;
      }
      if (r->type == REDIS_REPLY_ERROR) {
        *errnum = std::strncmp(r->str, "WRONGPASS", 9) == 0 || std::strstr(r->str, "AUTH") != nullptr ? EACCES : EIO;
        *err = "redis " + n.name + ": " + argv[0] + ": " + std::string(r->str, r->len);
        return false;
      }
      return true;
    };
    if (!opts.password.empty() && !simple({"AUTH", opts.password.c_str()})) {
      redisFree(c.c);
      return Conn{};
    }
    if (readonly) {
      if (!simple({"READONLY"})) {
        redisFree(c.c);
        return Conn{};
      }
      c.readonly = true;
    }
    return c;
  }

  void give(Node& n, Conn c) {
    if (c.c == nullptr) return;
    if (c.c->err != 0) {
      redisFree(c.c);
      return;
    }
    std::lock_guard lock(n.m);
    if (n.idle.size() < 64) {
      n.idle.push_back(c);
      return;
    }
    redisFree(c.c);
  }

  // Reads CLUSTER SLOTS from the first node that answers (known masters, then the seeds) and installs
  // the map. Returns "" or the error text. Asks no further node once `deadline` (now_ms()) has passed.
  std::string refresh(int* errnum, std::int64_t deadline) {
    const std::uint64_t gen = map_generation.load(std::memory_order_acquire);
    std::lock_guard one(refresh_mutex);
    if (map_generation.load(std::memory_order_acquire) != gen) return {};  // someone refreshed meanwhile
    refreshes.fetch_add(1, std::memory_order_relaxed);
    std::vector<int> candidates;
    {
      std::shared_lock lock(map_mutex);
      for (const Route& r : routes) {
        if (std::find(candidates.begin(), candidates.end(), r.master) == candidates.end()) candidates.push_back(r.master);
      }
      for (const Route& r : routes) {
        for (int x : r.replicas) {
          if (std::find(candidates.begin(), candidates.end(), x) == candidates.end()) candidates.push_back(x);
        }
      }
    }
    for (const std::string& s : opts.seeds) {
      const std::size_t colon = s.rfind(':');
      const int i = node_index(s.substr(0, colon), std::atoi(s.c_str() + colon + 1), false);
      if (std::find(candidates.begin(), candidates.end(), i) == candidates.end()) candidates.push_back(i);
    }
    std::string errors;
    const std::int64_t now = now_ms();
    // Nodes that failed lately go last.
    std::stable_partition(candidates.begin(), candidates.end(),
                          [&](int i) { return node(i).down_until.load(std::memory_order_relaxed) <= now; });
    for (int i : candidates) {
      if (!errors.empty() && now_ms() >= deadline) break;
      Node& n = node(i);
      std::string err;
      Conn c = take(n, false, &err, errnum);
      if (c.c == nullptr) {
        errors += (errors.empty() ? "" : "; ") + err;
        continue;
      }
      const char* argv[] = {"CLUSTER", "SLOTS"};
      Reply r(static_cast<redisReply*>(redisCommandArgv(c.c, 2, argv, nullptr)));
      if (!r) {
        *errnum = errno_of(c.c);
        errors += (errors.empty() ? "" : "; ") + ("redis " + n.name + ": " + c.c->errstr);
        give(n, c);
        continue;
      }
      give(n, c);
      if (r->type == REDIS_REPLY_ERROR) {
        *errnum = EPROTO;
        errors += (errors.empty() ? "" : "; ") + ("redis " + n.name + ": CLUSTER SLOTS: " + std::string(r->str, r->len));
        continue;
      }
      if (r->type != REDIS_REPLY_ARRAY) {
        *errnum = EPROTO;
        errors += (errors.empty() ? "" : "; ") + ("redis " + n.name + ": CLUSTER SLOTS: not an array");
        continue;
      }
      std::vector<Route> new_routes;
      std::array<std::int32_t, kSlots> new_slots;
      new_slots.fill(-1);
      {
        std::unique_lock lock(map_mutex);
        for (std::size_t k = 0; k < r->elements; ++k) {
          const redisReply* e = r->element[k];
          if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) continue;
          const long long lo = e->element[0]->integer, hi = e->element[1]->integer;
          if (lo < 0 || hi >= kSlots || lo > hi) continue;
          Route route;
          for (std::size_t m = 2; m < e->elements; ++m) {
            const redisReply* a = e->element[m];
            if (a->type != REDIS_REPLY_ARRAY || a->elements < 2 || a->element[0]->type != REDIS_REPLY_STRING) continue;
            std::string host(a->element[0]->str, a->element[0]->len);
            if (host.empty() || host == "?") host = n.host;  // a node that does not know its own address
            const int idx = node_index(host, static_cast<int>(a->element[1]->integer), true);
            if (m == 2) {
              route.master = idx;
            } else {
              route.replicas.push_back(idx);
            }
          }
          if (route.master < 0) continue;
          new_routes.push_back(std::move(route));
          for (long long s = lo; s <= hi; ++s) new_slots[static_cast<std::size_t>(s)] = static_cast<std::int32_t>(new_routes.size() - 1);
        }
        routes = std::move(new_routes);
        slot_route = new_slots;
        map_generation.fetch_add(1, std::memory_order_acq_rel);
      }
      return {};
    }
    if (errors.empty()) errors = "no node to ask for the slot map";
    return errors;
  }

  // One request: a command for one slot. `args` are the command's words; values may point into pages.
  struct Cmd {
    unsigned slot = 0;
    bool write = false;
    std::vector<std::string> words;           // the command and keys
    std::vector<std::pair<const std::byte*, std::size_t>> values;  // MSET: the value after each key
    Reply reply;
    int ask_node = -1;                        // ASK: the node to send it to next, with ASKING
    bool done = false;
  };

  // Sends every command (pipelined: grouped by node, all groups written before any answer is read) and
  // retries those that need it (redirections, a node down, the cluster reconfiguring) until done or
  // retry_for runs out. On success every cmd has its reply. `wait` adds a WAIT after each node's writes.
  FillStatus exec(std::vector<Cmd>& cmds, fault_injection::Op op, bool wait) {
    const std::int64_t deadline = now_ms() + opts.retry_for.count();
    std::string last_error;
    int last_errno = 0;
    unsigned redirected = 0;
    std::int64_t backoff = 5;
    std::vector<int> tried_replica(cmds.size(), 0);  // reads: replicas tried this attempt
    for (;;) {
      // Route each pending command.
      struct Group {
        int node = -1;
        bool readonly = false;
        std::vector<std::size_t> cmds;
        Conn conn;
        bool sent = false;
      };
      std::vector<Group> groups;
      bool need_refresh = false;
      auto bail = [&](int err, const std::string& text) {
        for (Group& g : groups) {  // a connection may have answers not read yet: close it
          if (g.conn.c != nullptr) redisFree(g.conn.c);
          g.conn = Conn{};
        }
        return fail(err, text);
      };
      const std::int64_t now = now_ms();
      {
        std::shared_lock lock(map_mutex);
        for (std::size_t i = 0; i < cmds.size(); ++i) {
          Cmd& c = cmds[i];
          if (c.done) continue;
          int target = c.ask_node;
          bool readonly = false;
          if (target < 0) {
            const std::int32_t ri = slot_route[c.slot];
            if (ri < 0) {
              need_refresh = true;
              last_error = "slot " + std::to_string(c.slot) + " is not served by any node";
              last_errno = EHOSTUNREACH;
              continue;
            }
            const Route& route = routes[static_cast<std::size_t>(ri)];
            target = route.master;
            const bool master_down = nodes[static_cast<std::size_t>(target)]->down_until.load(std::memory_order_relaxed) > now;
            if (!c.write && opts.replica_reads && master_down && !route.replicas.empty()) {
              target = route.replicas[static_cast<std::size_t>(tried_replica[i]) % route.replicas.size()];
              readonly = true;
              replica_reads.fetch_add(1, std::memory_order_relaxed);
            }
          }
          auto g = std::find_if(groups.begin(), groups.end(),
                                [&](const Group& x) { return x.node == target && x.readonly == readonly; });
          if (g == groups.end()) {
            groups.push_back(Group{target, readonly, {}, {}, false});
            g = groups.end() - 1;
          }
          g->cmds.push_back(i);
        }
      }
      // Send every group.
      for (Group& g : groups) {
        Node& n = node(g.node);
        std::string err;
        int errnum = 0;
        g.conn = take(n, g.readonly, &err, &errnum);
        if (g.conn.c == nullptr) {
          last_error = err;
          last_errno = errnum;
          if (errnum == EACCES) return bail(EACCES, last_error);
          continue;
        }
        for (std::size_t i : g.cmds) {
          Cmd& c = cmds[i];
          if (const long inj = os::inject::point(op); inj != 0) {
            return bail(static_cast<int>(-inj), "redis " + n.name + ": " + fault_injection::op_name(op) + " failed: " +
                                                    os::errno_name(static_cast<int>(-inj)) + " (injected)");
          }
          if (c.ask_node >= 0) {
            const char* asking = "ASKING";
            redisAppendCommandArgv(g.conn.c, 1, &asking, nullptr);
          }
          std::vector<const char*> argv;
          std::vector<std::size_t> lens;
          for (std::size_t w = 0; w < c.words.size(); ++w) {
            argv.push_back(c.words[w].data());
            lens.push_back(c.words[w].size());
            if (!c.values.empty() && w > 0) {
              argv.push_back(reinterpret_cast<const char*>(c.values[w - 1].first));
              lens.push_back(c.values[w - 1].second);
            }
          }
          redisAppendCommandArgv(g.conn.c, static_cast<int>(argv.size()), argv.data(), lens.data());
          requests.fetch_add(1, std::memory_order_relaxed);
        }
        if (wait && opts.wait_replicas > 0) {
          if (const long inj = os::inject::point(fault_injection::Op::store_wait); inj != 0) {
            return bail(static_cast<int>(-inj), "redis " + n.name + ": WAIT failed: " +
                                                    os::errno_name(static_cast<int>(-inj)) + " (injected)");
          }
          const std::string nrep = std::to_string(opts.wait_replicas), ms = std::to_string(opts.wait_timeout.count());
          const char* argv[] = {"WAIT", nrep.c_str(), ms.c_str()};
          redisAppendCommandArgv(g.conn.c, 3, argv, nullptr);
        }
        int done = 0;
        while (done == 0 && redisBufferWrite(g.conn.c, &done) == REDIS_OK) {
        }
        g.sent = g.conn.c->err == 0;
      }
      // Read the answers.
      for (Group& g : groups) {
        if (g.conn.c == nullptr) {
          mark_down(g, cmds, tried_replica);
          need_refresh = true;
          continue;
        }
        Node& n = node(g.node);
        bool broken = !g.sent;
        bool all_ok = true;
        for (std::size_t i : g.cmds) {
          Cmd& c = cmds[i];
          if (broken) break;
          if (c.ask_node >= 0) {
            void* a = nullptr;
            if (redisGetReply(g.conn.c, &a) != REDIS_OK) {
              broken = true;
              break;
            }
            freeReplyObject(a);
            c.ask_node = -1;
          }
          void* raw = nullptr;
          if (redisGetReply(g.conn.c, &raw) != REDIS_OK) {
            broken = true;
            break;
          }
          Reply r(static_cast<redisReply*>(raw));
          if (r->type != REDIS_REPLY_ERROR) {
            c.reply = std::move(r);
            c.done = true;
            continue;
          }
          all_ok = false;
          const std::string text(r->str, r->len);
          if (text.rfind("MOVED ", 0) == 0 || text.rfind("ASK ", 0) == 0) {
            redirects.fetch_add(1, std::memory_order_relaxed);
            if (++redirected > opts.max_redirects) {
              return bail(EIO, "redis " + n.name + ": more than " + std::to_string(opts.max_redirects) +
                                   " redirections for one request (last: " + text + ")");
            }
            const std::size_t sp = text.rfind(' '), colon = text.rfind(':');
            if (sp != std::string::npos && colon != std::string::npos && colon > sp) {
              const int target = node_index(text.substr(sp + 1, colon - sp - 1), std::atoi(text.c_str() + colon + 1), false);
              if (text[0] == 'A') {
                c.ask_node = target;
              } else {
                need_refresh = true;
                std::unique_lock lock(map_mutex);
                // Until the refresh: route the slot's range to the node that answered for it.
                const std::int32_t ri = slot_route[c.slot];
                if (ri >= 0) {
                  Route moved = routes[static_cast<std::size_t>(ri)];
                  moved.master = target;
                  moved.replicas.clear();
                  routes.push_back(std::move(moved));
                  slot_route[c.slot] = static_cast<std::int32_t>(routes.size() - 1);
                }
              }
            }
            last_error = "redis " + n.name + ": " + text;
            last_errno = EAGAIN;
            continue;
          }
          if (text.rfind("TRYAGAIN", 0) == 0 || text.rfind("CLUSTERDOWN", 0) == 0 || text.rfind("LOADING", 0) == 0 ||
              text.rfind("MASTERDOWN", 0) == 0) {
            need_refresh = need_refresh || text[0] == 'C';
            last_error = "redis " + n.name + ": " + text;
            last_errno = EAGAIN;
            continue;
          }
          // A definite refusal (OOM with noeviction, a wrong type, ...): no retry.
          const int e = text.rfind("OOM", 0) == 0 ? ENOSPC : text.rfind("NOAUTH", 0) == 0 ? EACCES : EIO;
          return bail(e, "redis " + n.name + ": " + text);
        }
        if (!broken && wait && opts.wait_replicas > 0) {
          void* raw = nullptr;
          if (redisGetReply(g.conn.c, &raw) != REDIS_OK) {
            broken = true;
          } else {
            Reply r(static_cast<redisReply*>(raw));
            const long long acked = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
            if (all_ok && acked < opts.wait_replicas) {
              // Stored on the master, not yet on enough replicas: write the commands again (idempotent)
              // and wait again, until retry_for runs out.
              for (std::size_t i : g.cmds) {
                cmds[i].done = false;
                cmds[i].reply.reset();
              }
              last_error = "redis " + n.name + ": WAIT: " + std::to_string(acked < 0 ? 0 : acked) + " of " +
                           std::to_string(opts.wait_replicas) + " replicas acknowledged within " +
                           std::to_string(opts.wait_timeout.count()) + " ms";
              last_errno = EAGAIN;
              need_refresh = true;
            }
          }
        }
        if (broken) {
          last_error = "redis " + n.name + ": " + g.conn.c->errstr;
          last_errno = errno_of(g.conn.c);
          for (std::size_t i : g.cmds) {
            if (!wait) continue;
            cmds[i].done = false;  // a write whose WAIT was lost is written again
            cmds[i].reply.reset();
          }
          n.down_until.store(now_ms() + 1000, std::memory_order_relaxed);
          mark_down(g, cmds, tried_replica);
          need_refresh = true;
        }
        give(n, g.conn);
        g.conn = Conn{};
      }
      if (std::all_of(cmds.begin(), cmds.end(), [](const Cmd& c) { return c.done; })) return {};
      if (now_ms() >= deadline) {
        return fail(last_errno == EAGAIN || last_errno == 0 ? ETIMEDOUT : last_errno,
                    last_error.empty() ? std::string("redis: no answer within retry_for") : last_error);
      }
      if (need_refresh) {
        int e = 0;
        if (std::string err = refresh(&e, deadline); !err.empty()) {
          last_error = err;
          last_errno = e;
        }
      }
      const std::int64_t left = deadline - now_ms();
      const std::int64_t nap = std::min<std::int64_t>(backoff, left > 0 ? left : 0);
      if (nap > 0) std::this_thread::sleep_for(std::chrono::milliseconds(nap));
      backoff = std::min<std::int64_t>(backoff * 2, 200);
    }
  }

  // A group whose node did not answer: its reads try the next replica next time.
  template <class G>
  void mark_down(G& g, std::vector<Cmd>& cmds, std::vector<int>& tried_replica) {
    node(g.node).down_until.store(now_ms() + 1000, std::memory_order_relaxed);
    for (std::size_t i : g.cmds) {
      if (g.readonly) ++tried_replica[i];
      cmds[i].ask_node = -1;
    }
  }

  FillStatus fail(int err, const std::string& text) {
    failures.fetch_add(1, std::memory_order_relaxed);
    return FillStatus{err, remember(text)};
  }

  // MGET of pages [first, first + count) into dest, one command per chunk.
  FillStatus read(std::size_t first, std::size_t count, std::byte* dest) {
    std::vector<Cmd> cmds;
    for (std::size_t p = first; p < first + count;) {
      const std::size_t chunk_end = (p / opts.chunk_pages + 1) * opts.chunk_pages;
      const std::size_t end = std::min(first + count, chunk_end);
      Cmd c;
      c.words.push_back("MGET");
      for (std::size_t q = p; q < end; ++q) c.words.push_back(page_key(opts, q));
      c.slot = key_slot(c.words[1]);
      cmds.push_back(std::move(c));
      p = end;
    }
    if (FillStatus st = exec(cmds, fault_injection::Op::store_get, false); st.error != 0) return st;
    std::size_t p = first;
    for (const Cmd& c : cmds) {
      const redisReply* r = c.reply.get();
      if (r->type != REDIS_REPLY_ARRAY || r->elements != c.words.size() - 1) {
        return fail(EPROTO, "redis: MGET answered with " + std::to_string(r->elements) + " values for " +
                                std::to_string(c.words.size() - 1) + " keys");
      }
      for (std::size_t k = 0; k < r->elements; ++k, ++p) {
        const redisReply* v = r->element[k];
        std::byte* to = dest + (p - first) * page;
        if (v->type == REDIS_REPLY_NIL) {
          std::memset(to, 0, page);
        } else if (v->type == REDIS_REPLY_STRING && v->len == page) {
          std::memcpy(to, v->str, page);
        } else {
          return fail(EIO, "redis: the value of page " + std::to_string(p) + " (" + c.words[k + 1] + ") is " +
                               std::to_string(v->type == REDIS_REPLY_STRING ? v->len : 0) + " bytes, not a page");
        }
      }
    }
    pages_read.fetch_add(count, std::memory_order_relaxed);
    return {};
  }

  // MSET (+ WAIT) of pages [first, first + count) from src, one command per chunk.
  FillStatus write(std::size_t first, std::size_t count, const std::byte* src, bool erase) {
    std::vector<Cmd> cmds;
    for (std::size_t p = first; p < first + count;) {
      const std::size_t chunk_end = (p / opts.chunk_pages + 1) * opts.chunk_pages;
      const std::size_t end = std::min(first + count, chunk_end);
      Cmd c;
      c.write = true;
      c.words.push_back(erase ? "DEL" : "MSET");
      for (std::size_t q = p; q < end; ++q) {
        c.words.push_back(page_key(opts, q));
        if (!erase) c.values.emplace_back(src + (q - first) * page, page);
      }
      c.slot = key_slot(c.words[1]);
      cmds.push_back(std::move(c));
      p = end;
    }
    if (FillStatus st = exec(cmds, fault_injection::Op::store_set, true); st.error != 0) return st;
    if (!erase) pages_written.fetch_add(count, std::memory_order_relaxed);
    return {};
  }
};

RedisClusterStore::RedisClusterStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RedisClusterStore::~RedisClusterStore() = default;

Result<std::unique_ptr<RedisClusterStore>> RedisClusterStore::connect(const RedisClusterOptions& opts) {
  return core::guarded([&]() -> Result<std::unique_ptr<RedisClusterStore>> {
    if (opts.seeds.empty()) return Error(Errc::invalid_argument, "redis cluster store: no seed nodes");
    for (const std::string& s : opts.seeds) {
      const std::size_t colon = s.rfind(':');
      const int port = colon == std::string::npos ? 0 : std::atoi(s.c_str() + colon + 1);
      if (colon == std::string::npos || colon == 0 || port <= 0 || port > 65535) {
        return Error(Errc::invalid_argument, "redis cluster store: seed '" + s + "' is not host:port");
      }
    }
    if (opts.chunk_pages < 1 || opts.chunk_pages > 4096) {
      return Error(Errc::invalid_argument, "redis cluster store: chunk_pages must be 1..4096");
    }
    if (opts.key_prefix.empty() || opts.key_prefix.find_first_of("{}") != std::string::npos) {
      return Error(Errc::invalid_argument, "redis cluster store: key_prefix must be non-empty, without braces");
    }
    if (opts.connect_timeout.count() < 1 || opts.command_timeout.count() < 1 || opts.retry_for.count() < 0 ||
        opts.wait_timeout.count() < 0) {
      return Error(Errc::invalid_argument, "redis cluster store: timeouts must be positive");
    }
    if (opts.wait_replicas < 0) return Error(Errc::invalid_argument, "redis cluster store: wait_replicas < 0");
    auto impl = std::make_unique<Impl>();
    impl->opts = opts;
    impl->page = core::page_size();
    impl->slot_route.fill(-1);
    int errnum = 0;
    // Every seed is tried at connect (each bounded by the timeouts): the error names them all.
    if (std::string err = impl->refresh(&errnum, INT64_MAX); !err.empty()) {
      return Error(Errc::system_error, "redis cluster store: cannot read the slot map: " + err);
    }
    for (unsigned s = 0; s < kSlots; ++s) {
      if (impl->slot_route[s] < 0) {
        return Error(Errc::unsupported, "redis cluster store: slot " + std::to_string(s) +
                                            " is not served by any node (the cluster is incomplete)");
      }
    }
    return std::unique_ptr<RedisClusterStore>(new RedisClusterStore(std::move(impl)));
  });
}

FillStatus RedisClusterStore::fill(const FillRequest& req) {
  impl_->fills.fetch_add(1, std::memory_order_relaxed);
  try {
    return impl_->read(req.offset / impl_->page, req.length / impl_->page, req.dest);
  } catch (...) {
    return impl_->fail(ENOMEM, "redis: out of memory");
  }
}

FillStatus RedisClusterStore::write_back(const WriteBackRequest* runs, std::size_t n, std::size_t* stored) {
  if (stored != nullptr) *stored = 0;
  for (std::size_t i = 0; i < n; ++i) {
    FillStatus st;
    try {
      st = impl_->write(runs[i].offset / impl_->page, runs[i].length / impl_->page, runs[i].src, false);
    } catch (...) {
      st = impl_->fail(ENOMEM, "redis: out of memory");
    }
    if (st.error != 0) return st;
    if (stored != nullptr) *stored = i + 1;
  }
  return {};
}

FillStatus RedisClusterStore::read_pages(std::size_t first_page, std::size_t count, std::byte* dest) {
  try {
    return impl_->read(first_page, count, dest);
  } catch (...) {
    return impl_->fail(ENOMEM, "redis: out of memory");
  }
}

FillStatus RedisClusterStore::write_pages(std::size_t first_page, std::size_t count, const std::byte* src) {
  try {
    return impl_->write(first_page, count, src, false);
  } catch (...) {
    return impl_->fail(ENOMEM, "redis: out of memory");
  }
}

FillStatus RedisClusterStore::erase_pages(std::size_t first_page, std::size_t count) {
  try {
    return impl_->write(first_page, count, nullptr, true);
  } catch (...) {
    return impl_->fail(ENOMEM, "redis: out of memory");
  }
}

RedisClusterStats RedisClusterStore::stats() const noexcept {
  RedisClusterStats s;
  s.fills = impl_->fills.load(std::memory_order_relaxed);
  s.requests = impl_->requests.load(std::memory_order_relaxed);
  s.pages_read = impl_->pages_read.load(std::memory_order_relaxed);
  s.pages_written = impl_->pages_written.load(std::memory_order_relaxed);
  s.replica_reads = impl_->replica_reads.load(std::memory_order_relaxed);
  s.redirects = impl_->redirects.load(std::memory_order_relaxed);
  s.refreshes = impl_->refreshes.load(std::memory_order_relaxed);
  s.failures = impl_->failures.load(std::memory_order_relaxed);
  return s;
}

std::vector<std::string> RedisClusterStore::describe() const {
  std::vector<std::string> out;
  std::shared_lock lock(impl_->map_mutex);
  for (unsigned s = 0; s < kSlots;) {
    const std::int32_t ri = impl_->slot_route[s];
    unsigned e = s;
    while (e + 1 < kSlots && impl_->slot_route[e + 1] == ri) ++e;
    if (ri >= 0) {
      const Impl::Route& r = impl_->routes[static_cast<std::size_t>(ri)];
      std::string line = impl_->nodes[static_cast<std::size_t>(r.master)]->name + " slots " + std::to_string(s) + "-" +
                         std::to_string(e) + " replicas";
      for (int x : r.replicas) line += " " + impl_->nodes[static_cast<std::size_t>(x)]->name;
      if (r.replicas.empty()) line += " none";
      out.push_back(std::move(line));
    }
    s = e + 1;
  }
  return out;
}

const RedisClusterOptions& RedisClusterStore::options() const noexcept { return impl_->opts; }

std::size_t RedisClusterStore::preferred_run_pages() const noexcept { return impl_->opts.chunk_pages; }

}  // namespace faultline
