#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_trace_filter_fuzz::scan_body(data));
