/* Test harness only, never shipped: Wine 8 (Debian 12's) lacks ProcessPrng in
 * bcryptprimitives.dll, which Rust's standard library (1.78 and later) imports for random
 * numbers; every Rust .exe then fails to start (status c0000135). Windows 8 and later have it.
 * Built as bcryptprimitives.dll and put beside the .exe under test, it forwards to
 * RtlGenRandom. */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    return RtlGenRandom(data, (ULONG)length);
}
