//! Deterministic MCP `tools/call` bodies for the scanner benchmarks.
//!
//! A body is `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":…,"arguments":…,
//! "_meta":{…}}}` grown to a target size through its `arguments`, whose [`Shape`] decides what
//! the scanner mostly sees: a realistic mix, long escaped strings, or dense small tokens.

use std::fmt::Write as _;

use mcp_trace_filter::mcp::{scan, MetaValue};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,vendor@tenant=opaque-value";
const BAGGAGE: &str = "userId=alice,serverNode=DF%2028,isProduction=false;ttl=30";

const KIB: usize = 1024;

/// The scanner measurements, natively and inside V8: (shape, target size, size label).
pub const SCAN_CASES: [(Shape, usize, &str); 5] = [
    (Shape::Mixed, KIB, "1KiB"),
    (Shape::Mixed, 64 * KIB, "64KiB"),
    (Shape::Mixed, 1024 * KIB, "1MiB"),
    (Shape::Strings, 64 * KIB, "64KiB"),
    (Shape::Structure, 64 * KIB, "64KiB"),
];

/// What fills `params.arguments`; each shape stresses a different part of the scanner.
#[derive(Clone, Copy)]
pub enum Shape {
    /// Records like a search or database tool returns: nested objects and arrays, short and
    /// medium strings (some with escapes and non-ASCII), numbers, literals.
    Mixed,
    /// One large text argument, like a `write_file` tool's content: long string runs broken by
    /// the escapes a JSON-encoded source file has (`\n`, `\"`, `\\`, `\t`, `\u00e9`) and raw UTF-8.
    Strings,
    /// Dense small tokens: number matrices and tiny objects, almost no string bytes.
    Structure,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Mixed => "mixed",
            Shape::Strings => "string_heavy",
            Shape::Structure => "structure_heavy",
        }
    }
}

/// A small deterministic generator (xorshift64), so every run scans the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "weather", "forecast", "Zürich", "東京", "naïve", "data", "pipeline", "request", "😀",
    "latency", "gateway", "trace", "span", "context",
];

/// Appends `count` words separated by spaces, sometimes with a JSON escape between them.
fn prose(out: &mut String, rng: &mut Rng, count: usize) {
    for i in 0..count {
        if i > 0 {
            out.push_str(match rng.below(16) {
                0 => "\\n",
                1 => " \\\"quoted\\\" ",
                2 => "\\u00e9",
                _ => " ",
            });
        }
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
}

fn mixed_record(out: &mut String, rng: &mut Rng, n: usize) {
    let _ = write!(out, r#"{{"id":{n},"title":""#);
    prose(out, rng, 4);
    out.push_str(r#"","summary":""#);
    prose(out, rng, 24);
    let _ = write!(
        out,
        r#"","score":{}.{:03}e-2,"active":{},"parent":null,"tags":["{}","{}"],"geo":{{"lat":-{}.5,"lon":{}.25,"path":[[1,2],[3,[4,5]]]}}}}"#,
        rng.below(1000),
        rng.below(1000),
        rng.below(2) == 0,
        WORDS[rng.below(WORDS.len() as u64) as usize],
        WORDS[rng.below(WORDS.len() as u64) as usize],
        rng.below(90),
        rng.below(180),
    );
}

/// A line of a JSON-encoded source file, ending in the `\n` escape.
fn source_line(out: &mut String, rng: &mut Rng) {
    let indent = ["", "    ", "        ", "\\t"][rng.below(4) as usize];
    out.push_str(indent);
    match rng.below(6) {
        0 => out.push_str("let greeting = \\\"Grüße aus Zürich\\\";"),
        1 => out.push_str("// The path separator is \\\\ on Windows, café \\u00e9 → é"),
        2 => out.push_str("fn handle(request: &Request) -> Result<Response, Error> {"),
        3 => out.push('}'),
        4 => {
            out.push_str("log::info!(\\\"");
            prose(out, rng, 6);
            out.push_str("\\\");");
        }
        _ => out.push_str("for item in items.iter().filter(|i| i.enabled) { total += item.size; }"),
    }
    out.push_str("\\n");
}

fn structure_chunk(out: &mut String, rng: &mut Rng, n: usize) {
    out.push_str(r#"{"m":["#);
    for row in 0..4 {
        if row > 0 {
            out.push(',');
        }
        out.push('[');
        for col in 0..8 {
            if col > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}", rng.below(2000) as i64 - 1000);
        }
        out.push(']');
    }
    let _ = write!(
        out,
        r#"],"k":{n},"ok":true,"v":null,"f":1.5e3,"e":[],"o":{{}},"s":"x"}}"#
    );
}

/// A `tools/call` request of at least `target` bytes whose `arguments` have `shape`, with the
/// trace context in `params._meta` after the arguments (so the scanner has to get past them).
pub fn tools_call(shape: Shape, target: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let head = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"bench_tool","arguments":"#;
    let tail = format!(
        r#","_meta":{{"progressToken":"p-42","traceparent":"{TRACEPARENT}","tracestate":"{TRACESTATE}","baggage":"{BAGGAGE}"}}}}}}"#
    );
    let budget = target.saturating_sub(head.len() + tail.len());
    let mut args = String::with_capacity(target + 256);
    match shape {
        Shape::Mixed => {
            args.push_str(r#"{"query":"weather in Zürich","records":["#);
            let mut n = 0;
            while args.len() < budget {
                if n > 0 {
                    args.push(',');
                }
                mixed_record(&mut args, &mut rng, n);
                n += 1;
            }
            args.push_str("]}");
        }
        Shape::Strings => {
            args.push_str(r#"{"path":"src/handler.rs","content":""#);
            while args.len() < budget {
                source_line(&mut args, &mut rng);
            }
            args.push_str(r#"","overwrite":true}"#);
        }
        Shape::Structure => {
            args.push_str(r#"{"rows":["#);
            let mut n = 0;
            while args.len() < budget {
                if n > 0 {
                    args.push(',');
                }
                structure_chunk(&mut args, &mut rng, n);
                n += 1;
            }
            args.push_str("]}");
        }
    }
    let body = format!("{head}{args}{tail}").into_bytes();
    check(&body);
    body
}

/// Both parsers must accept the body and the scanner must find the `_meta` context, or the
/// numbers would measure an early exit.
fn check(body: &[u8]) {
    serde_json::from_slice::<serde_json::Value>(body).expect("generated body is valid JSON");
    let scanned = scan(body).expect("generated body scans");
    let meta = &scanned.messages[0].meta;
    assert_eq!(
        meta.traceparent.as_ref().and_then(MetaValue::text),
        Some(TRACEPARENT)
    );
    assert!(meta.baggage.as_ref().and_then(MetaValue::text).is_some());
}
