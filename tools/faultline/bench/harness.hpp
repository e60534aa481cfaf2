// tools/faultline/bench/harness.hpp: the measuring harness behind `faultline bench`.
//
// Every row compares a faultline mechanism (the candidate) with the baseline a user would pick instead,
// measured in the same process in interleaved rounds: round i runs one baseline sample, then one
// candidate sample (alternating which goes first), so that drift of a noisy machine hits both. A sample
// returns nanoseconds per operation. A row's figure is the median of the per-round ratios
// candidate/baseline (paired, so robust to drift); its spread is the interquartile range of those
// ratios. Rows with a target show it beside the ratio and whether it is met.
//
// Floors: what this machine can do at best for a kind of work (make fresh pages present and touched; a
// bare userfaultfd round trip), measured as rows of the section "floor" in the same run. A row that
// names its floor (attach_floor) also shows candidate/floor, the figure that travels between hosts; a
// target the floor itself cannot meet is printed as unreachable here, never as missed.
#pragma once

#include <cstddef>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace faultline::bench {

struct Options {
  bool quick = false;          // fewer rounds and smaller samples (CI)
  unsigned rounds = 9;         // interleaved rounds per row
  std::size_t pages = 4096;    // pages per first-touch sample
  unsigned threads = 0;        // threads for the multi-threaded rows (0: per the section's default)
  std::vector<std::string> only;  // sections to run (empty: all)
  std::string emulator;        // non-empty under an emulator (KernelInfo::emulator): targets are not judged
};

// What a row must achieve. `ratio_at_most`: candidate/baseline <= value; `ns_at_most`: the candidate's
// median <= value nanoseconds per operation; `floor_ratio_at_most`: candidate/floor <= value.
struct Target {
  enum class Kind { ratio_at_most, ns_at_most, floor_ratio_at_most } kind = Kind::ratio_at_most;
  double value = 0;
  std::string text;  // "<= 1.05x", "4x faster", "<= 50 ns"
  std::string issue;  // where the target comes from ("regions")
};

struct Row {
  std::string section, name, baseline, unit = "ns/op";
  std::vector<double> base_ns, cand_ns, ratios;
  double base_median = 0, cand_median = 0, ratio = 0, ratio_q1 = 0, ratio_q3 = 0;
  std::optional<Target> target;
  bool met = false;
  bool reachable = true;    // false: even the floor (or the bound) would miss the target on this machine
  std::string floor;        // the floor this row is held to (empty: none)
  double floor_ns = 0, floor_ratio = 0;  // the floor's median; candidate median / floor_ns
  // The cheapest design of this row's kind, when that costs more than the floor (a handler thread: the
  // pages made present by another thread): a floor_ratio_at_most target is reachable only if the bound
  // itself meets it. Empty: none.
  std::string bound;
  double bound_ns = 0, bound_ratio = 0;  // the bound's median; candidate median / bound_ns
  std::string unavailable;  // non-empty: not measured, and why
  std::string note;
};

// One sample: performs some operations and returns nanoseconds per operation.
using Sampler = std::function<double()>;

class Bench {
 public:
  explicit Bench(Options o) : opts_(std::move(o)) {}
  const Options& options() const { return opts_; }

  // Measures `candidate` against `baseline` in interleaved rounds and records the row.
  Row& compare(const std::string& section, const std::string& name, const std::string& baseline_name,
               const Sampler& baseline, const Sampler& candidate, std::optional<Target> target = std::nullopt);
  // Measures a floor (`floor_sampler`, against `baseline` like any row) under `key`, for attach_floor().
  Row& measure_floor(const std::string& key, const std::string& name, const std::string& baseline_name,
                     const Sampler& baseline, const Sampler& floor_sampler);
  // Holds `row` to the floor `key` (if it was measured): its floor ratio, and whether its target is
  // reachable at all here; a floor_ratio_at_most target is judged against it. `bound_key`: the floor
  // measured for the cheapest design of the row's kind (Row::bound); its target is reachable only if
  // that bound's own ratio to the floor meets it.
  void attach_floor(Row& row, const std::string& key, const std::string& bound_key = {});
  // Records a row that cannot be measured here, with the reason.
  Row& unavailable(const std::string& section, const std::string& name, const std::string& baseline_name,
                   const std::string& reason, std::optional<Target> target = std::nullopt);

  const std::vector<Row>& rows() const { return rows_; }
  bool wants(const std::string& section) const;
  // A progress message on stderr (e.g. "unregistering 100000 regions").
  void status(const std::string& what) const;
  void clear_progress() const;

  // Output.
  void print_table(std::FILE* out) const;
  std::string json(const std::string& machine_json) const;
  std::string svg() const;

 private:
  void progress(const std::string& what, unsigned round) const;
  Options opts_;
  std::vector<Row> rows_;
  struct FloorFigure {
    std::string name;
    double ns = 0;
  };
  std::vector<std::pair<std::string, FloorFigure>> floors_;
};

// Monotonic nanoseconds.
double now_ns();
// Median and quartiles of `v` (copied).
double quantile(std::vector<double> v, double q);

}  // namespace faultline::bench
