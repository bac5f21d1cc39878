//! Records whether `nasm` was on PATH when this workspace was built: openh264's build uses it
//! when present and silently falls back to C (about 3x slower) when not, so the benchmark
//! reports which one it measured.

fn main() {
    let nasm = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("nasm").is_file()));
    println!("cargo:rustc-env=DESKLINE_BUILT_WITH_NASM={}", if nasm { "yes" } else { "no" });
    println!("cargo:rerun-if-env-changed=PATH");
}
