//! Reads one plugin configuration per line of standard input and prints `accept` or
//! `reject <error>` for each, using the filter's own parser (`Config::parse`). The Kong schema
//! test (`tests/packaging/test_kong_schema.py`) feeds it the same documents as the JSON schema in
//! `deploy/kong/mcp_trace_filter.meta.json` and checks that both agree.
//!
//! An error names the key at fault, and a key may hold any character, including line breaks:
//! the error is printed escaped (`str::escape_debug`), so every verdict stays on one line.

use mcp_trace_filter::config::Config;
use std::io::{self, BufRead, Write};

fn main() -> io::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = line?;
        match Config::parse(line.as_bytes()) {
            Ok(_) => writeln!(out, "accept")?,
            Err(e) => writeln!(out, "reject {}", e.to_string().escape_debug())?,
        }
    }
    out.flush()
}
