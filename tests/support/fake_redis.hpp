// tests/support/fake_redis.hpp: a Redis-protocol server on loopback that misbehaves on purpose, for the
// cluster store's failure tests without a cluster: it claims every slot for itself in CLUSTER SLOTS, then
// answers the data commands as the test asks (silence, endless MOVED, an error), or refuses to be a
// cluster at all, or goes away. One thread; not signal path.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace faultline::test {

class FakeRedis {
 public:
  enum class Mode {
    silent,       // data commands get no answer (a hung node)
    moved_storm,  // data commands get MOVED to this same node, for ever
    error,        // data commands get "-ERR fake failure"
    not_cluster,  // CLUSTER SLOTS gets "-ERR This instance has cluster support disabled"
    no_slots,     // CLUSTER SLOTS gets an empty array (no slot served)
  };

  explicit FakeRedis(Mode mode) : mode_(mode) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 16) != 0) std::abort();
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeRedis() { stop(); }

  int port() const { return port_; }
  std::string seed() const { return "127.0.0.1:" + std::to_string(port_); }
  // Closes the listening socket and every connection: the node is gone (connections are refused).
  void stop() {
    if (!stop_.exchange(true) && thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::vector<int> conns;
    std::vector<std::string> bufs;
    while (!stop_.load()) {
      std::vector<pollfd> p{{listen_fd_, POLLIN, 0}};
      for (int c : conns) p.push_back({c, POLLIN, 0});
      if (poll(p.data(), p.size(), 20) <= 0) continue;
      if (p[0].revents & POLLIN) {
        const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          conns.push_back(c);
          bufs.emplace_back();
        }
      }
      for (std::size_t i = 1; i < p.size(); ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
        char b[65536];
        const ssize_t n = read(p[i].fd, b, sizeof b);
        if (n <= 0) continue;
        bufs[i - 1].append(b, static_cast<std::size_t>(n));
        std::vector<std::string> cmd;
        while (parse(bufs[i - 1], &cmd)) answer(p[i].fd, cmd);
      }
    }
    for (int c : conns) close(c);
    close(listen_fd_);
  }

  // One RESP array of bulk strings from the front of `buf`, consumed; false when incomplete.
  static bool parse(std::string& buf, std::vector<std::string>* out) {
    out->clear();
    if (buf.empty() || buf[0] != '*') return false;
    std::size_t pos = buf.find("\r\n");
    if (pos == std::string::npos) return false;
    const long n = std::atol(buf.c_str() + 1);
    pos += 2;
    for (long k = 0; k < n; ++k) {
      if (pos >= buf.size() || buf[pos] != '$') return false;
      const std::size_t e = buf.find("\r\n", pos);
      if (e == std::string::npos) return false;
      const std::size_t len = static_cast<std::size_t>(std::atol(buf.c_str() + pos + 1));
      if (buf.size() < e + 2 + len + 2) return false;
      out->push_back(buf.substr(e + 2, len));
      pos = e + 2 + len + 2;
    }
    buf.erase(0, pos);
    return true;
  }

  void send(int fd, const std::string& s) { (void)!write(fd, s.data(), s.size()); }

  void answer(int fd, const std::vector<std::string>& cmd) {
    if (cmd.empty()) return;
    std::string c = cmd[0];
    for (char& ch : c) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (c == "PING") return send(fd, "+PONG\r\n");
    if (c == "READONLY" || c == "ASKING") return send(fd, "+OK\r\n");
    if (c == "AUTH") return send(fd, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    if (c == "CLUSTER") {
      if (mode_ == Mode::not_cluster) return send(fd, "-ERR This instance has cluster support disabled\r\n");
      if (mode_ == Mode::no_slots) return send(fd, "*0\r\n");
      const std::string host = "127.0.0.1", port = std::to_string(port_);
      return send(fd, "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$" + std::to_string(host.size()) + "\r\n" + host + "\r\n:" + port +
                          "\r\n$4\r\nfake\r\n");
    }
    switch (mode_) {
      case Mode::silent: return;
      case Mode::moved_storm: return send(fd, "-MOVED 42 127.0.0.1:" + std::to_string(port_) + "\r\n");
      default: return send(fd, "-ERR fake failure\r\n");
    }
  }

  Mode mode_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace faultline::test
