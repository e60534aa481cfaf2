// tools/faultline/symbolize.cpp: `faultline symbolize [FILE]`, and the symbolizing `faultline catch`
// does: turns the frames of a crash report ("#3 0x... in name+0x1f (/path/libfoo.so+0x1234)", the
// module's path and the file offset of the address) into full C++ names with template arguments and
// file:line, from the module's debug information through elfutils' libdw. Runs after the crash, in
// another process: not signal path. Lines that are not frames pass through unchanged; a frame whose
// module cannot be read, or has no debug information, keeps what the in-process report wrote.
#include <cxxabi.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>

#include "commands.hpp"

namespace faultline::cli {

namespace {

const Dwfl_Callbacks kOffline = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = nullptr,
};

struct DwflDeleter {
  void operator()(Dwfl* d) const { dwfl_end(d); }
};

// One module, opened once per report.
struct Module {
  std::unique_ptr<Dwfl, DwflDeleter> dwfl;
  Dwfl_Module* mod = nullptr;
  Dwarf_Addr bias = 0;
};

std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = d != nullptr ? d : name;
  std::free(d);
  return out;
}

// The ELF virtual address of file offset `off` (the report gives file offsets), or false.
bool vaddr_of(Elf* elf, std::uint64_t off, std::uint64_t* vaddr) {
  std::size_t n = 0;
  if (elf_getphdrnum(elf, &n) != 0) return false;
  for (std::size_t i = 0; i < n; ++i) {
    GElf_Phdr ph;
    if (gelf_getphdr(elf, static_cast<int>(i), &ph) == nullptr || ph.p_type != PT_LOAD) continue;
    if (off >= ph.p_offset && off < ph.p_offset + ph.p_filesz) {
      *vaddr = ph.p_vaddr + (off - ph.p_offset);
      return true;
    }
  }
  return false;
}

// The file and line of `addr` found by walking the compilation units' address ranges: for debug
// information without .debug_aranges (clang's DWARF 5 by default), where dwfl_module_getsrc finds none.
const char* line_from_units(Dwfl_Module* mod, Dwarf_Addr addr, int* lineno) {
  Dwarf_Die* cu = nullptr;
  Dwarf_Addr cu_bias = 0;
  while ((cu = dwfl_module_nextcu(mod, cu, &cu_bias)) != nullptr) {
    Dwarf_Addr base = 0, start = 0, end = 0;
    for (ptrdiff_t off = 0; (off = dwarf_ranges(cu, off, &base, &start, &end)) > 0;) {
      if (addr - cu_bias < start || addr - cu_bias >= end) continue;
      if (Dwarf_Line* line = dwarf_getsrc_die(cu, addr - cu_bias); line != nullptr && dwarf_lineno(line, lineno) == 0) {
        return dwarf_linesrc(line, nullptr, nullptr);
      }
    }
  }
  return nullptr;
}

class Symbolizer {
 public:
  // "name at file:line" for file offset `off` of `path` (`is_return`: a return address, looked up one
  // byte back), or "".
  std::string describe(const std::string& path, std::uint64_t off, bool is_return) {
    Module* m = open(path);
    if (m == nullptr || m->mod == nullptr) return {};
    Dwarf_Addr bias = 0;
    Elf* elf = dwfl_module_getelf(m->mod, &bias);
    std::uint64_t vaddr = 0;
    if (elf == nullptr || !vaddr_of(elf, is_return ? off - 1 : off, &vaddr)) return {};
    const Dwarf_Addr addr = vaddr + bias;
    std::string out;
    if (const char* name = dwfl_module_addrname(m->mod, addr); name != nullptr) out = demangle(name);
    int lineno = 0;
    const char* file = nullptr;
    if (Dwfl_Line* line = dwfl_module_getsrc(m->mod, addr); line != nullptr) {
      file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
    } else {
      file = line_from_units(m->mod, addr, &lineno);
    }
    if (file != nullptr) out += std::string(out.empty() ? "" : " ") + "at " + file + ":" + std::to_string(lineno);
    return out;
  }

 private:
  Module* open(const std::string& path) {
    auto it = modules_.find(path);
    if (it != modules_.end()) return &it->second;
    Module& m = modules_[path];
    m.dwfl.reset(dwfl_begin(&kOffline));
    if (m.dwfl == nullptr) return nullptr;
    m.mod = dwfl_report_offline(m.dwfl.get(), path.c_str(), path.c_str(), -1);
    dwfl_report_end(m.dwfl.get(), nullptr, nullptr);
    return &m;
  }
  std::map<std::string, Module> modules_;
};

}  // namespace

std::string symbolize_report(const std::string& text) {
  // "  #3  0x0000... in name+0x1f (/path/to/module+0x1234)" or without " in name+0x..".
  static const std::regex frame(R"(^(\s*#(\d+)\s+0x[0-9a-f]+)(?: in .*\+0x[0-9a-f]+)? \((/[^()]*)\+0x([0-9a-f]+)\)$)");
  Symbolizer s;
  std::istringstream in(text);
  std::string out, line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, frame)) {
      const bool is_return = m[2].str() != "0";
      const std::string what = s.describe(m[3].str(), std::stoull(m[4].str(), nullptr, 16), is_return);
      if (!what.empty()) line = m[1].str() + " in " + what + " (" + m[3].str() + "+0x" + m[4].str() + ")";
    }
    out += line;
    out += '\n';
  }
  if (!text.empty() && text.back() != '\n' && !out.empty()) out.pop_back();
  return out;
}

int run_symbolize(const std::string& file) {
  std::stringstream buf;
  if (file.empty() || file == "-") {
    buf << std::cin.rdbuf();
  } else {
    std::ifstream f(file);
    if (!f) {
      std::fprintf(stderr, "faultline symbolize: cannot read %s: %s\n", file.c_str(), std::strerror(errno));
      return 2;
    }
    buf << f.rdbuf();
  }
  std::fputs(symbolize_report(buf.str()).c_str(), stdout);
  return 0;
}

}  // namespace faultline::cli
