//! Link flags that make the binary start and keep CUDA.
//!
//! `torch-sys` links against the LibTorch it found (here: the one inside the project's
//! Python venv, via `LIBTORCH_USE_PYTORCH=1`) but sets no run-time search path, so the
//! binary would not find `libtorch*.so` outside that venv. It also leaves `libtorch_cuda.so`
//! to the linker's `--as-needed`, which drops it because no symbol is referenced directly:
//! CUDA then silently vanishes. Both are fixed here.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" {
        return;
    }
    // Exported by torch-sys (`links = "tch"`) to crates that depend on it.
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.to_string_lossy());
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-ltorch_cpu");
    // libtorch_cuda exists only in CUDA builds of torch; link it when it is there.
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        let dir = std::path::Path::new(&lib);
        if dir.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-ltorch_cuda");
        }
    }
}
