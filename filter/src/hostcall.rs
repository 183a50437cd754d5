//! Safe wrappers over the few proxy-wasm host calls whose SDK versions panic on an unexpected
//! status (the SDK's `get_property` even unwraps). These calls have no callbacks, so declaring
//! them here does not bypass the SDK's dispatcher; gRPC calls stay with the SDK, which owns
//! their callbacks. Every wrapper returns `None`/`false` on any non-OK status and never panics.
#![allow(
    unsafe_code,
    reason = "the proxy-wasm host ABI is extern \"C\"; confined to this module"
)]

use std::ptr::null_mut;

/// `Status::Ok` in the proxy-wasm ABI.
const OK: u32 = 0;

/// Host header maps (`MapType` in the ABI).
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum HeaderMap {
    /// Request headers (in `on_log`: the access-log view of them).
    Request = 0,
}

/// Host buffers (`BufferType` in the ABI).
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Buffer {
    /// The body of a gRPC call's answer, during `on_grpc_call_response`.
    GrpcReceive = 5,
    /// The plugin configuration, during `on_configure`.
    PluginConfiguration = 7,
}

/// Host log levels (`LogLevel` in the ABI).
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Level {
    /// Info.
    Info = 2,
    /// Warn.
    Warn = 3,
    /// Error.
    Error = 4,
}

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
}

/// Takes ownership of a buffer the host filled.
///
/// # Safety
/// `data`/`size` must come from a host call that returned OK: the host allocated `data` with
/// this module's `proxy_on_memory_allocate` (the SDK's, a boxed slice of exactly `size` bytes
/// from the global allocator), so a `Vec` of length and capacity `size` may own it.
unsafe fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if size == 0 {
        // Present but empty (e.g. an unnamed route). Nothing, or a dangling zero-size
        // allocation, to free.
        return Some(Vec::new());
    }
    if data.is_null() {
        return None;
    }
    // SAFETY: see the function's contract.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Reads a property; `path` is the segments joined with '\0' (e.g. `b"xds\0route_name"`).
/// `None` when absent or on any host error (e.g. `xds.upstream_host_metadata` for an endpoint
/// without metadata).
pub(crate) fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the path slice is valid for the call; the out-pointers point at locals.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    if status != OK {
        return None;
    }
    // SAFETY: OK status, so data/size were set by the host.
    unsafe { take(data, size) }
}

/// Reads one header (lowercase name) from a host header map.
pub(crate) fn header(map: HeaderMap, name: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the name slice is valid for the call; the out-pointers point at locals.
    let status = unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    if status != OK {
        return None;
    }
    // SAFETY: OK status, so data/size were set by the host.
    unsafe { take(data, size) }
}

/// Reads a whole header map in the ABI's serialized form (see `headers::pairs`): one host call
/// however many headers are wanted.
pub(crate) fn header_pairs(map: HeaderMap) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the out-pointers point at locals.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != OK {
        return None;
    }
    // SAFETY: OK status, so data/size were set by the host.
    unsafe { take(data, size) }
}

/// Reads up to `max_size` bytes of a host buffer.
pub(crate) fn buffer(buffer: Buffer, max_size: usize) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the out-pointers point at locals.
    let status =
        unsafe { proxy_get_buffer_bytes(buffer as u32, 0, max_size, &mut data, &mut size) };
    if status != OK {
        return None;
    }
    // SAFETY: OK status, so data/size were set by the host.
    unsafe { take(data, size) }
}

/// Logs a line through Envoy (which applies its own log level). Failures are ignored: there is
/// nowhere else to report them.
pub(crate) fn log(level: Level, message: &str) {
    // SAFETY: the message slice is valid for the call.
    let _status = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Wall-clock time in nanoseconds since the Unix epoch, from the host.
pub(crate) fn now_nanos() -> Option<u64> {
    let mut nanos: u64 = 0;
    // SAFETY: the out-pointer points at a local.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    (status == OK).then_some(nanos)
}

/// Sets the root context's tick period (also callable from an HTTP context: the host applies
/// it to that context's root).
pub(crate) fn set_tick_period_ms(period_ms: u32) -> bool {
    // SAFETY: plain value argument.
    unsafe { proxy_set_tick_period_milliseconds(period_ms) == OK }
}
