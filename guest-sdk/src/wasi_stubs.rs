//! The WASI functions the C library behind Rust's `std` imports for stdout, stderr,
//! terminals, the environment and `exit`, answered inside the plugin instead of by the
//! host ([`export_plugin!`](crate::export_plugin) expands
//! [`__wasi_in_guest!`](crate::__wasi_in_guest) into each plugin crate).
//!
//! `std` on `wasm32-wasip2` links wasi-libc, which imports 19 WASI functions whether or
//! not a plugin uses them. The gateway gives every plugin a WASI context that denies
//! everything: no environment, stdio to nowhere. Each import still had to be wired into
//! every fresh instance (about 0.14 µs apiece in wasmtime) for a plugin that never reads
//! or writes anything. Defined in the plugin, the C library's calls land on these
//! functions at link time, and they behave as the host's context does: an empty
//! environment, stdout and stderr accepted and dropped, no terminal, `exit` trapping (a
//! plugin cannot end the gateway). 14 of the 19 are answered here.
//!
//! Only functions whose resources can come from nowhere but these stubs are answered.
//! The gateway opens no files and no sockets for a plugin, so every output stream is
//! stdout or stderr, and these never fail. Pollables are another matter: the monotonic
//! clock makes real ones (`std::thread::sleep`), so `pollable.block` and its drop stay
//! with the host; so do stdin (reads see the end of the file), its stream's drop, and
//! dropping a stream error (only the host's stdin could make one). Waiting for room on
//! stdout or stderr (`subscribe`, or `poll` on their descriptors) traps: there is
//! always room, so libc never asks.
//!
//! The names are wasi-libc's import symbols for WASI 0.2 (`__wasm_import_*`); being
//! `#[no_mangle]`, they are also exported from the plugin's core module, which the
//! component does not expose. A name that stopped matching after a toolchain upgrade
//! would only leave that import to the host again; the host's
//! `first_party_plugins_answer_stdio_environment_and_exit_themselves` test notices.

/// Defines wasi-libc's WASI imports in the invoking crate (see the module docs); a
/// plugin whose probes must reach the host's WASI opts out with
/// `export_plugin!(MyPlugin, host_wasi)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __wasi_in_guest {
    () => {
        #[cfg(all(target_arch = "wasm32", target_env = "p2"))]
        #[doc(hidden)]
        #[allow(unsafe_code, missing_docs, clippy::missing_safety_doc)]
        mod __tollgate_wasi_in_guest {
            /// `result<u64, stream-error>`, `result<_, stream-error>` and `option<...>` all start
            /// with a one-byte discriminant; `ok` and `none` are 0.
            unsafe fn write_case(ret: *mut u8, case: u8) {
                // SAFETY: the caller (wasi-libc) passes a return area sized and aligned for the
                // result or option, whose first byte is the discriminant.
                unsafe { ret.write(case) }
            }

            /// `get-environment`: an empty list.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn __wasm_import_environment_get_environment(ret: *mut u32) {
                // SAFETY: the return area is a list's (pointer, length) pair of u32.
                unsafe {
                    ret.write(0);
                    ret.add(1).write(0);
                }
            }

            /// `exit`: a plugin cannot end the process; the call traps (the host's `exit`
            /// failed the call as a trap too, naming the status).
            #[unsafe(no_mangle)]
            pub extern "C" fn __wasm_import_exit_exit(_status: i32) {
                core::arch::wasm32::unreachable()
            }

            /// `get-stdout`, `get-stderr`: handles only these stubs ever see.
            #[unsafe(no_mangle)]
            pub extern "C" fn __wasm_import_stdout_get_stdout() -> i32 {
                2
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn __wasm_import_stderr_get_stderr() -> i32 {
                3
            }

            /// `get-terminal-*`: `none`, not a terminal.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn __wasm_import_terminal_stdin_get_terminal_stdin(ret: *mut u8) {
                // SAFETY: libc's return area for an `option`.
                unsafe { self::write_case(ret, 0) }
            }

            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn __wasm_import_terminal_stdout_get_terminal_stdout(
                ret: *mut u8,
            ) {
                // SAFETY: libc's return area for an `option`.
                unsafe { self::write_case(ret, 0) }
            }

            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn __wasm_import_terminal_stderr_get_terminal_stderr(
                ret: *mut u8,
            ) {
                // SAFETY: libc's return area for an `option`.
                unsafe { self::write_case(ret, 0) }
            }

            /// `output-stream.check-write`: `ok` with room for 64 KiB.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn __wasm_import_streams_method_output_stream_check_write(
                _stream: i32,
                ret: *mut u8,
            ) {
                // SAFETY: `result<u64, stream-error>`: the discriminant, then the u64 at offset 8.
                unsafe {
                    self::write_case(ret, 0);
                    ret.add(8).cast::<u64>().write(64 << 10);
                }
            }

            /// `output-stream.write`: `ok`, the bytes dropped.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn __wasm_import_streams_method_output_stream_write(
                _stream: i32,
                _ptr: *const u8,
                _len: usize,
                ret: *mut u8,
            ) {
                // SAFETY: libc's return area for a `result`.
                unsafe { self::write_case(ret, 0) }
            }

            /// `output-stream.blocking-flush`: `ok`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn __wasm_import_streams_method_output_stream_blocking_flush(
                _stream: i32,
                ret: *mut u8,
            ) {
                // SAFETY: libc's return area for a `result`.
                unsafe { self::write_case(ret, 0) }
            }

            /// `output-stream.subscribe`: never asked, as `check-write` always has room;
            /// a pollable made here could reach the host's `pollable.block`, so it traps.
            #[unsafe(no_mangle)]
            pub extern "C" fn __wasm_import_streams_method_output_stream_subscribe(
                _stream: i32,
            ) -> i32 {
                core::arch::wasm32::unreachable()
            }

            /// Resource drops: nothing to release (stdout and stderr; no terminal is ever
            /// handed out).
            #[unsafe(no_mangle)]
            pub extern "C" fn __wasm_import_streams_output_stream_drop(_handle: i32) {}

            #[unsafe(no_mangle)]
            pub extern "C" fn __wasm_import_terminal_input_terminal_input_drop(_handle: i32) {}

            #[unsafe(no_mangle)]
            pub extern "C" fn __wasm_import_terminal_output_terminal_output_drop(_handle: i32) {}
        }
    };
}
