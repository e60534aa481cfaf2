// os/linux/elf_symbols.hpp: naming a code address from the ELF file that maps it (signal path).
//
// libunwind's unw_get_proc_name allocates (it caches ELF images with malloc), so the crash report
// symbolises by itself: find the mapping in /proc/self/maps, open its file with raw system calls, and
// read the program headers, the section headers and the symbol table (.symtab, else .dynsym) through
// small stack buffers with pread. No allocation, no locks; names are the raw (mangled) symbol names.
#pragma once

#include <cstddef>
#include <cstdint>

namespace faultline::os {

struct Symbol {
  char name[192];          // the symbol's name, truncated to fit; "" when not found
  std::uint64_t offset;    // ip - symbol start
  char module[256];        // the mapped file's path, "" for anonymous memory
  std::uint64_t module_offset;  // ip's offset in the file
};

// Fills `out` for `ip`. Returns true when a symbol was found (module fields are filled whenever the
// address lies in a file mapping). Async-signal-safe.
bool symbolize(std::uintptr_t ip, Symbol* out) noexcept;

}  // namespace faultline::os
