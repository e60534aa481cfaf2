// arch/aarch64/emulate_aarch64.hpp: the decoded form of an A64 load or store for the emulator (signal
// path). See arch/aarch64/emulate_aarch64_sig.cpp for the classes decoded.
#pragma once

#include "faultline/emulate.hpp"

namespace faultline::arch::emulation {

// One decoded load or store.
struct Decoded {
  bool load = false;
  bool pair = false;
  bool simd = false;
  bool sign_extend = false;  // LDRSB/LDRSH/LDRSW/LDPSW
  bool dest64 = true;        // integer loads: the X register (else W: the upper half is zeroed)
  unsigned size = 0;         // bytes per register transferred
  unsigned rt = 0, rt2 = 0, rn = 0;
  unsigned rm = kNoReg;      // register offset
  unsigned extend = 3;       // register offset: option (2 UXTW, 3 LSL/UXTX, 6 SXTW, 7 SXTX)
  unsigned shift = 0;        // register offset: left shift of the offset register
  std::int64_t imm = 0;      // immediate offset in bytes
  bool writeback = false;    // pre- or post-index
  bool post = false;         // post-index: the access uses the unmodified base
  bool rmw = false;          // an atomic read-modify-write (it reads and writes)
  bool pc_relative = false;  // a literal load: the address is PC + imm
  // Decoded (so heal() can move its base register) but not emulated: not_atomic for exclusives,
  // acquire/release and atomic forms, unsupported for literal and SIMD structure loads; ok otherwise.
  EmulateStatus decline = EmulateStatus::ok;
  const char* mnemonic = "";
};

}  // namespace faultline::arch::emulation
