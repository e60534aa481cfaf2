// backend/uffd/evictor.cpp: the resident-page watermark (RegionOptions::max_resident_pages): a thread
// that evicts the oldest filled windows of regions over their watermark, writing dirty pages back first.
// A thread of its own because eviction drops pages with madvise, whose REMOVE event the handler thread
// must read. Not signal path.
#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "backend/uffd/uffd.hpp"
#include "core/page.hpp"
#include "os/linux/thread_start.hpp"

namespace faultline::backend::uffd {

namespace {

std::mutex g_evict_mutex;
std::condition_variable& g_evict_cv = *new std::condition_variable();
std::deque<UffdRegion*>& g_evict_queue = *new std::deque<UffdRegion*>();
bool g_evictor_started = false;

void evictor_loop() {
  pthread_setname_np(pthread_self(), "faultline-evict");
  for (;;) {
    UffdRegion* r = nullptr;
    {
      std::unique_lock lock(g_evict_mutex);
      g_evict_cv.wait(lock, [] { return !g_evict_queue.empty(); });
      r = g_evict_queue.front();
      g_evict_queue.pop_front();
    }
    EvictState& e = *r->watermark;
    for (;;) {
      std::pair<std::size_t, std::size_t> window;
      {
        std::lock_guard lock(e.mutex);
        if (e.resident <= e.max_resident || e.fifo.empty()) {
          e.queued = false;
          break;
        }
        window = e.fifo.front();
        e.fifo.pop_front();
        e.resident = e.resident > window.second ? e.resident - window.second : 0;
      }
      // A failed write-back keeps the pages dirty and resident: the window goes to the back of the line
      // and the evictor waits for the next fill before trying again (a store that is down is not
      // hammered).
      if (!r->evict(window.first, window.second)) {
        std::lock_guard lock(e.mutex);
        e.fifo.push_back(window);
        e.resident += window.second;
        e.queued = false;
        break;
      }
    }
    r->inflight.fetch_sub(1, std::memory_order_acq_rel);  // the queue's pin
  }
}

}  // namespace

void note_filled(UffdRegion& r, std::uintptr_t page_addr, std::size_t pages) {
  if (r.watermark == nullptr || pages == 0) return;
  EvictState& e = *r.watermark;
  {
    std::lock_guard lock(e.mutex);
    e.fifo.emplace_back((page_addr - r.base) / core::page_size(), pages);
    e.resident += pages;
    if (e.resident <= e.max_resident || e.queued) return;
    e.queued = true;
  }
  r.inflight.fetch_add(1, std::memory_order_acq_rel);  // keeps the region alive while queued
  std::lock_guard lock(g_evict_mutex);
  g_evict_queue.push_back(&r);
  g_evict_cv.notify_one();
}

Result<void> start_evictor() {
  std::lock_guard lock(g_evict_mutex);
  if (g_evictor_started) return {};
  auto t = os::start_thread("evictor thread", evictor_loop);
  if (!t) return t.error();
  t.value().detach();
  g_evictor_started = true;
  return {};
}

void evictor_lock_for_fork() { g_evict_mutex.lock(); }
void evictor_unlock_after_fork() { g_evict_mutex.unlock(); }
void evictor_forget_after_fork() {
  g_evictor_started = false;
  g_evict_queue.clear();
}

}  // namespace faultline::backend::uffd
