// tools/faultline/bench/sections.hpp: the sections of `faultline bench`, one function each.
#pragma once

#include "bench/harness.hpp"
#include "faultline/store.hpp"

namespace faultline::bench {

void section_trap(Bench& b);     // fault round trip: bare handler, libsigsegv, faultline with N regions
void section_floor(Bench& b);    // this machine's floors: populate+touch, bare userfaultfd round trips
void section_regions(Bench& b);  // region lookup, zero-fill fault, first touch with fault-around
void section_threads(Bench& b);  // stop-the-world against Boehm GC; preemption cost and lateness
void section_emulation(Bench& b);  // decode/emulate/heal against the plain fault round trip
void section_uffd(Bench& b);       // the userfaultfd backend: first touch, read-ahead, dirty epochs
void section_cluster(Bench& b);    // pages from a Redis Cluster (FAULTLINE_REDIS_CLUSTER), against floors

// A page-aligned anonymous mapping, unmapped at scope exit.
class Mapping {
 public:
  Mapping(std::size_t bytes, int prot);
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  char* data() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  char* p_;
  std::size_t n_;
};

// The content of the content-initialised rows (a fill function): each 8-byte word of the region a
// function of its offset. Also written by the populate+content floor.
FillStatus fill_pattern(const FillRequest& req, void* data);

// Exits with a message (the bench cannot go on without it).
[[noreturn]] void die(const std::string& what);

}  // namespace faultline::bench
