//! Windows builds with mingw-w64 link the C++ runtime (openh264 is C++) statically, so the
//! .exe needs only Windows' own DLLs. The cc crate would ask rustc for a dynamic `-lstdc++`,
//! which beats `-static`; `.cargo/config.toml` tells it to ask for none (`CXXSTDLIB_...`
//! empty), and this adds the static one at the end of the link line, after openh264's objects
//! that need it (as link arguments: a `rustc-link-lib` lands before them once LTO merges this
//! crate into the binary).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "windows" && target_env == "gnu" {
        // rustc links with -nodefaultlibs and lists the C runtime before these arguments, so
        // what libstdc++ needs from it (winpthread, libgcc_eh, mingwex, msvcrt) is listed again after it.
        for arg in ["-Wl,-Bstatic", "-lstdc++", "-l:libpthread.a", "-lgcc_eh", "-lmingwex", "-lmsvcrt", "-lmingw32", "-lgcc", "-lkernel32"] {
            println!("cargo:rustc-link-arg={arg}");
        }
    }
}
