// os/linux/elf_symbols_sig.cpp: allocation-free ELF symbol lookup for the crash report (signal path).
#include "os/linux/elf_symbols.hpp"

#include <elf.h>
#include <fcntl.h>

#include "os/linux/maps.hpp"
#include "os/linux/syscall.hpp"

namespace faultline::os {

namespace {

bool read_at(int fd, void* buf, std::size_t n, std::uint64_t off) noexcept {
  auto* p = static_cast<char*>(buf);
  std::size_t done = 0;
  while (done < n) {
    long r = raw_pread(fd, p + done, n - done, static_cast<long>(off + done));
    if (r == -4) continue;  // EINTR
    if (r <= 0) return false;
    done += static_cast<std::size_t>(r);
  }
  return true;
}

// The file offset of ip -> the ELF virtual address, through the PT_LOAD segment that holds it.
bool vaddr_of(int fd, const Elf64_Ehdr& eh, std::uint64_t file_off, std::uint64_t* vaddr) noexcept {
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!read_at(fd, &ph, sizeof ph, eh.e_phoff + std::uint64_t{i} * eh.e_phentsize)) return false;
    if (ph.p_type == PT_LOAD && file_off >= ph.p_offset && file_off < ph.p_offset + ph.p_filesz) {
      *vaddr = file_off - ph.p_offset + ph.p_vaddr;
      return true;
    }
  }
  return false;
}

// Searches one symbol table section for the symbol containing vaddr.
bool search_table(int fd, const Elf64_Ehdr& eh, unsigned type, std::uint64_t vaddr, Symbol* out) noexcept {
  for (unsigned s = 0; s < eh.e_shnum; ++s) {
    Elf64_Shdr sh;
    if (!read_at(fd, &sh, sizeof sh, eh.e_shoff + std::uint64_t{s} * eh.e_shentsize)) return false;
    if (sh.sh_type != type || sh.sh_entsize != sizeof(Elf64_Sym) || sh.sh_link >= eh.e_shnum) continue;
    Elf64_Shdr strtab;
    if (!read_at(fd, &strtab, sizeof strtab, eh.e_shoff + std::uint64_t{sh.sh_link} * eh.e_shentsize)) return false;
    const std::uint64_t count = sh.sh_size / sizeof(Elf64_Sym);
    Elf64_Sym chunk[64];
    bool found = false;
    Elf64_Sym best{};
    for (std::uint64_t i = 0; i < count; i += 64) {
      std::uint64_t n = count - i < 64 ? count - i : 64;
      if (!read_at(fd, chunk, n * sizeof(Elf64_Sym), sh.sh_offset + i * sizeof(Elf64_Sym))) return false;
      for (std::uint64_t k = 0; k < n; ++k) {
        const Elf64_Sym& sym = chunk[k];
        unsigned st_type = ELF64_ST_TYPE(sym.st_info);
        if ((st_type != STT_FUNC && st_type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF) continue;
        if (vaddr < sym.st_value) continue;
        bool inside = sym.st_size != 0 ? vaddr < sym.st_value + sym.st_size : false;
        if (inside && (!found || sym.st_value >= best.st_value)) {
          best = sym;
          found = true;
        }
      }
    }
    if (!found) continue;
    std::size_t cap = sizeof out->name - 1;
    std::uint64_t avail = strtab.sh_size > best.st_name ? strtab.sh_size - best.st_name : 0;
    if (avail < cap) cap = static_cast<std::size_t>(avail);
    long r = raw_pread(fd, out->name, cap, static_cast<long>(strtab.sh_offset + best.st_name));
    if (r <= 0) return false;
    out->name[r] = '\0';  // the name ends at its own NUL, or is truncated here
    out->offset = vaddr - best.st_value;
    return true;
  }
  return false;
}

}  // namespace

bool symbolize(std::uintptr_t ip, Symbol* out) noexcept {
  out->name[0] = '\0';
  out->module[0] = '\0';
  out->offset = 0;
  out->module_offset = 0;
  MapsEntry m;
  if (!find_mapping(ip, &m) || m.path[0] != '/') return false;
  std::size_t i = 0;
  for (; m.path[i] != '\0' && i + 1 < sizeof out->module; ++i) out->module[i] = m.path[i];
  out->module[i] = '\0';
  const std::uint64_t file_off = ip - m.start + m.offset;
  out->module_offset = file_off;
  long fd = raw_open(m.path, O_RDONLY | O_CLOEXEC);
  if (is_err(fd)) return false;
  bool ok = false;
  Elf64_Ehdr eh;
  std::uint64_t vaddr = 0;
  if (read_at(static_cast<int>(fd), &eh, sizeof eh, 0) && eh.e_ident[EI_MAG0] == ELFMAG0 &&
      eh.e_ident[EI_MAG1] == ELFMAG1 && eh.e_ident[EI_MAG2] == ELFMAG2 && eh.e_ident[EI_MAG3] == ELFMAG3 &&
      eh.e_ident[EI_CLASS] == ELFCLASS64 && vaddr_of(static_cast<int>(fd), eh, file_off, &vaddr)) {
    ok = search_table(static_cast<int>(fd), eh, SHT_SYMTAB, vaddr, out) ||
         search_table(static_cast<int>(fd), eh, SHT_DYNSYM, vaddr, out);
  }
  raw_close(static_cast<int>(fd));
  return ok;
}

}  // namespace faultline::os
