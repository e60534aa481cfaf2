#!/usr/bin/env bash
# bindings/rust/test.sh BUILD_DIR: builds and tests the Rust crates against the library of a CMake build
# (BUILD_DIR/src/libfaultline.so), offline, with Debian 12's toolchain (/usr/bin/cargo, rustc 1.63: the
# crates' rust-version) and, when another toolchain comes first on PATH, with that one too. Crates come
# only from Debian's packages (.cargo/config.toml). Tests run one at a time (--test-threads=1): the
# dispatcher is process-wide and some tests fork. What cargo builds goes to BUILD_DIR/rust (never into
# the source tree). The README's test command runs it (the test rust_crates of the plain preset).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: test.sh BUILD_DIR}" && pwd)
export FAULTLINE_LIB_DIR=$build/src
export LD_LIBRARY_PATH=$build/src${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
cd "$here"

run() {  # $1: a name for the toolchain; the rest: the environment to run cargo with
  local name=$1
  shift
  echo "== Rust crates with $name"
  rm -f "$here/Cargo.lock"  # made anew by each toolchain (a newer cargo's lock format is not an older one's)
  env "$@" CARGO_TARGET_DIR="$build/rust/$name" cargo build --offline --all-targets
  env "$@" CARGO_TARGET_DIR="$build/rust/$name" cargo test --offline -- --test-threads=1
  env "$@" CARGO_TARGET_DIR="$build/rust/$name" cargo run --offline --example relocation
  env "$@" CARGO_TARGET_DIR="$build/rust/$name" cargo run --offline --example snapshot
  env "$@" CARGO_TARGET_DIR="$build/rust/$name" cargo run --offline --example readme
}

# The README's Rust block is examples/readme.rs, word for word.
if ! diff <(sed -n '/^```rust$/,/^```$/p' "$here/../../README.md" | sed '1d;$d') "$here/faultline/examples/readme.rs"; then
  echo "test.sh: the README's Rust block differs from bindings/rust/faultline/examples/readme.rs"
  exit 1
fi

[ -x /usr/bin/cargo ] || { echo "test.sh: /usr/bin/cargo is missing (scripts/setup.sh installs cargo, rustc, librust-libc-dev)"; exit 1; }
run debian PATH=/usr/bin:/bin RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
if command -v cargo >/dev/null && [ "$(command -v cargo)" != /usr/bin/cargo ]; then
  run path PATH="$PATH"
fi
echo "Rust crates: all checks passed"
