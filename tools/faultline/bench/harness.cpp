// tools/faultline/bench/harness.cpp: interleaved rounds, statistics and the three outputs (table, JSON,
// SVG) of `faultline bench`.
#include "bench/harness.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

namespace faultline::bench {

double now_ns() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

bool Bench::wants(const std::string& section) const {
  return opts_.only.empty() || std::find(opts_.only.begin(), opts_.only.end(), section) != opts_.only.end();
}

// On a terminal, one line rewritten in place; otherwise one line per row.
void Bench::progress(const std::string& what, unsigned round) const {
  if (isatty(2)) {
    std::fprintf(stderr, "\r\033[K[%u/%u] %s", round, opts_.rounds, what.c_str());
  } else if (round == 1) {
    std::fprintf(stderr, "faultline bench: %s (%u rounds)\n", what.c_str(), opts_.rounds);
  }
  std::fflush(stderr);
}

void Bench::clear_progress() const {
  if (isatty(2)) std::fprintf(stderr, "\r\033[K");
}

void Bench::status(const std::string& what) const {
  if (isatty(2)) std::fprintf(stderr, "\r\033[K%s", what.c_str());
  else std::fprintf(stderr, "faultline bench: %s\n", what.c_str());
}

static bool met(const Row& r) {
  if (!r.target) return false;
  switch (r.target->kind) {
    case Target::Kind::ratio_at_most: return r.ratio <= r.target->value;
    case Target::Kind::ns_at_most: return r.cand_median <= r.target->value;
    case Target::Kind::floor_ratio_at_most: return !r.floor.empty() && r.floor_ratio <= r.target->value;
  }
  return false;
}

static const char* kind_name(Target::Kind k) {
  switch (k) {
    case Target::Kind::ratio_at_most: return "ratio_at_most";
    case Target::Kind::ns_at_most: return "ns_at_most";
    case Target::Kind::floor_ratio_at_most: return "floor_ratio_at_most";
  }
  return "?";
}

Row& Bench::measure_floor(const std::string& key, const std::string& name, const std::string& baseline_name,
                          const Sampler& baseline, const Sampler& floor_sampler) {
  Row& r = compare("floor", name, baseline_name, baseline, floor_sampler);
  if (r.unavailable.empty()) floors_.emplace_back(key, FloorFigure{name, r.cand_median});
  return r;
}

void Bench::attach_floor(Row& row, const std::string& key, const std::string& bound_key) {
  if (!row.unavailable.empty()) return;
  const FloorFigure* floor = nullptr;
  const FloorFigure* bound = nullptr;
  for (const auto& [k, f] : floors_) {
    if (k == key) floor = &f;
    if (!bound_key.empty() && k == bound_key) bound = &f;
  }
  if (floor == nullptr) return;
  row.floor = floor->name;
  row.floor_ns = floor->ns;
  row.floor_ratio = floor->ns > 0 ? row.cand_median / floor->ns : 0;
  if (row.target && row.target->kind == Target::Kind::ratio_at_most && row.base_median > 0) {
    row.reachable = floor->ns / row.base_median <= row.target->value;
  }
  if (bound != nullptr && bound->ns > 0) {
    row.bound = bound->name;
    row.bound_ns = bound->ns;
    row.bound_ratio = row.cand_median / bound->ns;
    if (row.target && row.target->kind == Target::Kind::floor_ratio_at_most && floor->ns > 0) {
      row.reachable = bound->ns / floor->ns <= row.target->value;
    }
  }
  row.met = met(row);
}

Row& Bench::compare(const std::string& section, const std::string& name, const std::string& baseline_name,
                    const Sampler& baseline, const Sampler& candidate, std::optional<Target> target) {
  Row r;
  r.section = section;
  r.name = name;
  r.baseline = baseline_name;
  r.target = std::move(target);
  baseline();  // warm both up (first-use costs: page tables, lazy setup)
  candidate();
  for (unsigned i = 0; i < opts_.rounds; ++i) {
    progress(section + ": " + name, i + 1);
    double b, c;
    if (i % 2 == 0) {
      b = baseline();
      c = candidate();
    } else {
      c = candidate();
      b = baseline();
    }
    r.base_ns.push_back(b);
    r.cand_ns.push_back(c);
    r.ratios.push_back(b > 0 ? c / b : 0);
  }
  clear_progress();
  r.base_median = quantile(r.base_ns, 0.5);
  r.cand_median = quantile(r.cand_ns, 0.5);
  r.ratio = quantile(r.ratios, 0.5);
  r.ratio_q1 = quantile(r.ratios, 0.25);
  r.ratio_q3 = quantile(r.ratios, 0.75);
  r.met = met(r);
  rows_.push_back(std::move(r));
  return rows_.back();
}

Row& Bench::unavailable(const std::string& section, const std::string& name, const std::string& baseline_name,
                        const std::string& reason, std::optional<Target> target) {
  Row r;
  r.section = section;
  r.name = name;
  r.baseline = baseline_name;
  r.unavailable = reason;
  r.target = std::move(target);
  rows_.push_back(std::move(r));
  return rows_.back();
}

namespace {

std::string fmt_ns(double ns) {
  char b[32];
  if (ns >= 1e6) std::snprintf(b, sizeof b, "%.2f ms", ns / 1e6);
  else if (ns >= 1e3) std::snprintf(b, sizeof b, "%.2f us", ns / 1e3);
  else std::snprintf(b, sizeof b, "%.1f ns", ns);
  return b;
}

std::string fmt_ratio(const Row& r) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3fx", r.ratio);
  std::string s = b;
  if (r.ratio > 0 && r.ratio < 1) {
    std::snprintf(b, sizeof b, " (%.1fx faster)", 1.0 / r.ratio);
    s += b;
  }
  return s;
}

std::string fmt_spread(const Row& r) {
  char b[48];
  std::snprintf(b, sizeof b, "%.3f-%.3f", r.ratio_q1, r.ratio_q3);
  return b;
}

}  // namespace

void Bench::print_table(std::FILE* out) const {
  int wn = 9, wb = 8;
  for (const Row& r : rows_) {
    wn = std::max(wn, static_cast<int>(r.name.size()));
    wb = std::max(wb, static_cast<int>(r.baseline.size()));
  }
  auto line = [&](const std::string& name, const std::string& base, const std::string& bt, const std::string& ct,
                  const std::string& ratio, const std::string& spread, const std::string& floor, const std::string& target) {
    std::fprintf(out, "%-*s  %-*s  %10s  %10s  %-22s  %-13s  %-8s  %s\n", wn, name.c_str(), wb, base.c_str(), bt.c_str(),
                 ct.c_str(), ratio.c_str(), spread.c_str(), floor.c_str(), target.c_str());
  };
  auto verdict = [&](const Row& r) -> std::string {
    if (!r.target) return "";
    if (!opts_.emulator.empty()) return r.target->text + ": not judged (emulated)";
    if (r.target->kind == Target::Kind::floor_ratio_at_most && r.floor.empty()) return r.target->text + ": no floor measured";
    if (r.met) return r.target->text + ": met";
    if (r.reachable) return r.target->text + ": NOT met";
    return r.target->text + (r.bound.empty() ? ": unreachable here (the floor misses it)"
                                             : ": unreachable here (the bound misses it)");
  };
  std::string section;
  for (const Row& r : rows_) {
    if (r.section != section) {
      section = r.section;
      std::fprintf(out, "\n== %s ==\n", section.c_str());
      line("mechanism", "baseline", "baseline", "faultline", "ratio (median)", "ratio IQR", "x floor", "target");
    }
    if (!r.unavailable.empty()) {
      line(r.name, r.baseline, "-", "-", "not measured", "-", "-", r.target ? r.target->text + ": not measured" : "");
      std::fprintf(out, "    reason: %s\n", r.unavailable.c_str());
      continue;
    }
    char fl[32] = "-";
    if (!r.floor.empty()) std::snprintf(fl, sizeof fl, "%.2fx", r.floor_ratio);
    line(r.name, r.baseline, fmt_ns(r.base_median), fmt_ns(r.cand_median), fmt_ratio(r), fmt_spread(r), fl, verdict(r));
    if (!r.note.empty()) std::fprintf(out, "    note: %s\n", r.note.c_str());
  }
  if (!opts_.emulator.empty()) {
    std::fprintf(out, "\nEmulated (%s): these figures measure the emulator, not this machine; no target is judged.\n",
                 opts_.emulator.c_str());
  }
  std::fprintf(out, "\nTimes are medians per operation over %u interleaved rounds; ratio = faultline / baseline "
                    "(median of the per-round ratios; below 1 is faster); x floor = faultline / the floor it names.\n",
               opts_.rounds);
  // What the floors say of the targets: reachable on this machine or not.
  bool any = false;
  for (const Row& r : rows_) {
    if (r.floor.empty() || !r.target || !r.unavailable.empty()) continue;
    if (!any) std::fprintf(out, "\nFloors (this machine's best, measured above) and the targets:\n");
    any = true;
    char b[96] = "";
    if (r.target->kind == Target::Kind::ratio_at_most && r.base_median > 0) {
      std::snprintf(b, sizeof b, " (the floor is %.2fx the baseline)", r.floor_ns / r.base_median);
    }
    std::fprintf(out, "  %s: %s %s against \"%s\"%s\n", r.name.c_str(), r.target->text.c_str(),
                 r.reachable ? "is reachable" : "is NOT reachable here", r.floor.c_str(), b);
    if (!r.bound.empty()) {
      std::fprintf(out, "    bound: \"%s\" costs %.2fx that floor; this row is %.2fx the bound\n", r.bound.c_str(),
                   r.floor_ns > 0 ? r.bound_ns / r.floor_ns : 0.0, r.bound_ratio);
    }
  }
}

std::string Bench::json(const std::string& machine_json) const {
  nlohmann::json j;
  j["schema"] = "faultline-bench/1";
  j["machine"] = nlohmann::json::parse(machine_json);
  j["options"] = {{"quick", opts_.quick}, {"rounds", opts_.rounds}, {"pages", opts_.pages},
                  {"threads", opts_.threads}, {"only", opts_.only}};
  nlohmann::json rows = nlohmann::json::array();
  for (const Row& r : rows_) {
    nlohmann::json o = {{"section", r.section}, {"name", r.name}, {"baseline", r.baseline}, {"unit", r.unit}};
    if (!r.unavailable.empty()) {
      o["measured"] = false;
      o["reason"] = r.unavailable;
    } else {
      o["measured"] = true;
      o["baseline_ns"] = r.base_ns;
      o["faultline_ns"] = r.cand_ns;
      o["ratios"] = r.ratios;
      o["baseline_median_ns"] = r.base_median;
      o["faultline_median_ns"] = r.cand_median;
      o["ratio"] = r.ratio;
      o["ratio_q1"] = r.ratio_q1;
      o["ratio_q3"] = r.ratio_q3;
    }
    if (!r.note.empty()) o["note"] = r.note;
    if (!r.floor.empty()) o["floor"] = {{"name", r.floor}, {"ns", r.floor_ns}, {"ratio", r.floor_ratio}};
    if (!r.bound.empty()) o["bound"] = {{"name", r.bound}, {"ns", r.bound_ns}, {"ratio", r.bound_ratio}};
    if (r.target) {
      o["target"] = {{"kind", kind_name(r.target->kind)},
                     {"value", r.target->value},
                     {"text", r.target->text},
                     {"issue", r.target->issue}};
      if (r.unavailable.empty() && opts_.emulator.empty()) {
        o["target"]["met"] = r.met;
        o["target"]["reachable"] = r.reachable;
      }
    }
    rows.push_back(std::move(o));
  }
  j["rows"] = std::move(rows);
  return j.dump(2);
}

// A horizontal bar per row: the ratio on a log scale centred on 1 (the baseline), target as a tick.
std::string Bench::svg() const {
  const int bar_h = 22, left = 430, width = 460, top = 50;
  const double lo = std::log10(0.05), hi = std::log10(20.0);
  auto x_of = [&](double ratio) {
    double v = std::log10(std::clamp(ratio, 0.05, 20.0));
    return left + static_cast<int>((v - lo) / (hi - lo) * width);
  };
  const int height = top + static_cast<int>(rows_.size()) * bar_h + 60;
  std::string s;
  char b[512];
  std::snprintf(b, sizeof b,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
                "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">faultline bench: time relative to "
                "the baseline (log scale; left of 1x is faster)</text>\n",
                left + width + 40, height);
  s += b;
  for (double tick : {0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0}) {
    std::snprintf(b, sizeof b,
                  "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\"/><text x=\"%d\" y=\"%d\" "
                  "text-anchor=\"middle\" fill=\"#555\">%gx</text>\n",
                  x_of(tick), top - 8, x_of(tick), height - 45, tick == 1.0 ? "#000" : "#ddd", x_of(tick), top - 12,
                  tick);
    s += b;
  }
  int y = top;
  for (const Row& r : rows_) {
    std::string label = r.section + ": " + r.name;
    std::string esc;
    for (char c : label) esc += c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : std::string(1, c);
    std::snprintf(b, sizeof b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 8, y + 15,
                  esc.c_str());
    s += b;
    if (!r.unavailable.empty()) {
      std::snprintf(b, sizeof b, "<text x=\"%d\" y=\"%d\" fill=\"#888\">not measured here</text>\n", left + 6,
                    y + 15);
      s += b;
    } else {
      const int x1 = x_of(1.0), x2 = x_of(r.ratio);
      const char* color = !r.target ? "#6a8caf" : r.met ? "#3a9a4a" : r.reachable ? "#c84040" : "#c8a040";
      char floor_text[48] = "";
      if (!r.floor.empty()) std::snprintf(floor_text, sizeof floor_text, " (%.2fx floor)", r.floor_ratio);
      std::snprintf(b, sizeof b,
                    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" "
                    "fill=\"#222\">%.2fx%s</text>\n",
                    std::min(x1, x2), y + 4, std::max(1, std::abs(x2 - x1)), bar_h - 8, color,
                    std::max(x1, x2) + 4, y + 15, r.ratio, floor_text);
      s += b;
      if (r.target && r.target->kind == Target::Kind::ratio_at_most) {
        const int xt = x_of(r.target->value);
        std::snprintf(b, sizeof b,
                      "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\" stroke-width=\"2\" "
                      "stroke-dasharray=\"3,2\"/>\n",
                      xt, y + 1, xt, y + bar_h - 1);
        s += b;
      }
    }
    y += bar_h;
  }
  std::snprintf(b, sizeof b,
                "<text x=\"10\" y=\"%d\" fill=\"#555\">green: target met; red: target not met; amber: target unreachable "
                "on this machine (its floor misses it); blue: no target; dashed tick: the target</text>\n</svg>\n",
                height - 20);
  s += b;
  return s;
}

}  // namespace faultline::bench
