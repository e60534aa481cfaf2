//! Finds libfaultline: `FAULTLINE_LIB_DIR` (a CMake build's `src/` folder, where libfaultline.so is),
//! else pkg-config's `faultline` (an installed library). Links it dynamically (at run time the loader finds it through its usual path,
//! or LD_LIBRARY_PATH as bindings/rust/test.sh sets it).
use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FAULTLINE_LIB_DIR");
    if let Ok(dir) = env::var("FAULTLINE_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir);
        println!("cargo:rustc-link-lib=dylib=faultline");
        return;
    }
    let out = Command::new("pkg-config").args(["--libs", "faultline"]).output();
    match out {
        Ok(o) if o.status.success() => {
            for word in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                if let Some(dir) = word.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={}", dir);
                }
            }
            println!("cargo:rustc-link-lib=dylib=faultline");
        }
        _ => panic!(
            "libfaultline not found: set FAULTLINE_LIB_DIR to a CMake build's src/ folder, or install faultline \
             (pkg-config faultline)"
        ),
    }
}
