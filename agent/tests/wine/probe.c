/* The probe for the Windows support app's tests: a borderless window at a known place, painted
 * one known colour, that writes every key, character and click it receives to a log file, and
 * turns a second colour after its first click (a change on screen the viewer must see).
 *
 *   probe.exe LOG X Y WIDTH HEIGHT
 *
 * Log lines: "ready", "key VK SCAN" (WM_KEYDOWN, hex), "char U+XXXX" (WM_CHAR), and
 * "click left|right|middle SCREEN_X SCREEN_Y". Built with mingw-w64 by the test. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

static FILE *log_file;
static COLORREF colour = RGB(0x22, 0xaa, 0x55);

static void note(const char *line) {
    fprintf(log_file, "%s\n", line);
    fflush(log_file);
}

static void click(HWND window, const char *button, LPARAM lparam) {
    POINT p = { (short)LOWORD(lparam), (short)HIWORD(lparam) };
    char line[96];
    ClientToScreen(window, &p);
    snprintf(line, sizeof line, "click %s %ld %ld", button, p.x, p.y);
    note(line);
    if (colour != RGB(0xee, 0x88, 0x11)) {
        colour = RGB(0xee, 0x88, 0x11);
        InvalidateRect(window, NULL, TRUE);
    }
}

static LRESULT CALLBACK procedure(HWND window, UINT message, WPARAM wparam, LPARAM lparam) {
    char line[96];
    switch (message) {
    case WM_ERASEBKGND:
        return 1;
    case WM_PAINT: {
        PAINTSTRUCT paint;
        RECT all;
        HDC dc = BeginPaint(window, &paint);
        HBRUSH brush = CreateSolidBrush(colour);
        GetClientRect(window, &all);
        FillRect(dc, &all, brush);
        DeleteObject(brush);
        EndPaint(window, &paint);
        return 0;
    }
    case WM_KEYDOWN:
    case WM_SYSKEYDOWN:
        snprintf(line, sizeof line, "key %02x %02x", (unsigned)wparam, (unsigned)((lparam >> 16) & 0x1ff));
        note(line);
        break;
    case WM_CHAR:
        snprintf(line, sizeof line, "char U+%04X", (unsigned)wparam);
        note(line);
        return 0;
    case WM_LBUTTONDOWN:
        SetForegroundWindow(window);
        SetFocus(window);
        click(window, "left", lparam);
        return 0;
    case WM_RBUTTONDOWN:
        click(window, "right", lparam);
        return 0;
    case WM_MBUTTONDOWN:
        click(window, "middle", lparam);
        return 0;
    case WM_DESTROY:
        PostQuitMessage(0);
        return 0;
    }
    return DefWindowProcW(window, message, wparam, lparam);
}

int main(int argc, char **argv) {
    WNDCLASSW class = { 0 };
    HWND window;
    MSG message;
    if (argc != 6) {
        fprintf(stderr, "usage: probe.exe LOG X Y WIDTH HEIGHT\n");
        return 2;
    }
    log_file = fopen(argv[1], "w");
    if (!log_file) {
        perror(argv[1]);
        return 1;
    }
    class.lpfnWndProc = procedure;
    class.hInstance = GetModuleHandleW(NULL);
    class.hCursor = LoadCursorW(NULL, (LPCWSTR)IDC_ARROW);
    class.lpszClassName = L"DesklineProbe";
    RegisterClassW(&class);
    window = CreateWindowExW(0, L"DesklineProbe", L"Deskline probe", WS_POPUP | WS_VISIBLE, atoi(argv[2]), atoi(argv[3]),
                             atoi(argv[4]), atoi(argv[5]), NULL, NULL, class.hInstance, NULL);
    if (!window) {
        fprintf(stderr, "CreateWindowExW failed: %lu\n", GetLastError());
        return 1;
    }
    UpdateWindow(window);
    SetForegroundWindow(window);
    SetFocus(window);
    note("ready");
    while (GetMessageW(&message, NULL, 0, 0) > 0) {
        TranslateMessage(&message);
        DispatchMessageW(&message);
    }
    return 0;
}
