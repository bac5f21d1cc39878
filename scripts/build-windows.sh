#!/usr/bin/env bash
# Cross-builds the Windows support app, target/x86_64-pc-windows-gnu/dist/deskline-agent.exe,
# with rustup's x86_64-pc-windows-gnu target and Debian's mingw-w64 (posix threads, which
# openh264's C++ needs; nasm assembles its fast paths). The C and C++ runtimes (libgcc,
# libstdc++, winpthread) are linked statically, so the .exe needs only Windows' own DLLs:
# checked at the end. Needs what scripts/setup.sh installs. Extra arguments go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-pc-windows-gnu
# The compilers, flags and static C++ runtime are set in .cargo/config.toml and agent/build.rs,
# so any cargo command for this target (clippy too) builds the same way.
cargo build --profile dist --locked --target "$TARGET" -p deskline-agent "$@"

TARGET_DIR="${CARGO_TARGET_DIR:-target}"

EXE="$TARGET_DIR/$TARGET/dist/deskline-agent.exe"
# Only system DLLs may remain (bcryptprimitives.dll is Windows' own since Windows 8; Rust's
# standard library needs it for random numbers).
unexpected=$(x86_64-w64-mingw32-objdump -p "$EXE" | sed -n 's/.*DLL Name: //p' | tr 'A-Z' 'a-z' \
  | grep -v -x -E 'kernel32.dll|user32.dll|gdi32.dll|advapi32.dll|shell32.dll|ole32.dll|oleaut32.dll|opengl32.dll|ntdll.dll|ws2_32.dll|combase.dll|rpcrt4.dll|bcryptprimitives.dll|bcrypt.dll|userenv.dll|imm32.dll|comctl32.dll|uxtheme.dll|dwmapi.dll|comdlg32.dll|winmm.dll|iphlpapi.dll|secur32.dll|crypt32.dll|msvcrt.dll|api-ms-win-.*|propsys.dll|shlwapi.dll|version.dll|setupapi.dll|hid.dll|cfgmgr32.dll|dxgi.dll|d3d11.dll|uiautomationcore.dll|dbghelp.dll|powrprof.dll|psapi.dll|shcore.dll' || true)
if [ -n "$unexpected" ]; then
  echo "error: $EXE needs DLLs that Windows does not have: $unexpected" >&2
  exit 1
fi
echo "built $EXE ($(du -h "$EXE" | cut -f1))"
