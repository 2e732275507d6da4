//! Runs the vectors transcribed from the W3C Trace Context test suite (see the fixture's
//! `_source` and `_license`) against the public `trace_context` API.

use std::error::Error;

use mcp_trace_filter::trace_context::{TraceParent, TraceState};
use serde::Deserialize;

type TestResult = Result<(), Box<dyn Error>>;

#[derive(Deserialize)]
struct Fixture {
    traceparent: Vec<TraceParentVector>,
    tracestate: Vec<TraceStateVector>,
}

#[derive(Deserialize)]
struct TraceParentVector {
    name: String,
    input: String,
    valid: bool,
    w3c_valid: bool,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    http_strips_ows: bool,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    flags: Option<u8>,
}

#[derive(Deserialize)]
struct TraceStateVector {
    name: String,
    headers: Vec<String>,
    valid: bool,
    #[serde(default)]
    members: Option<Vec<(String, String)>>,
    #[serde(default)]
    len: Option<usize>,
}

fn load() -> Result<Fixture, Box<dyn Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/w3c_trace_context_vectors.json"
    );
    let text = std::fs::read_to_string(path)?;
    Ok(serde_json::from_str(&text)?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

#[test]
fn fixture_is_substantial() -> TestResult {
    let fixture = load()?;
    assert!(fixture.traceparent.len() >= 40);
    assert!(fixture.tracestate.len() >= 30);
    Ok(())
}

#[test]
fn traceparent_vectors() -> TestResult {
    let fixture = load()?;
    let mut failures = Vec::new();
    for v in &fixture.traceparent {
        // A deviation from the suite must be explained in the fixture itself.
        if v.valid != v.w3c_valid && v.note.is_none() {
            failures.push(format!("{}: deviates from W3C without a note", v.name));
        }
        let parsed = TraceParent::parse(&v.input);
        if parsed.is_some() != v.valid {
            failures.push(format!(
                "{}: {:?} parsed={} expected={}",
                v.name,
                v.input,
                parsed.is_some(),
                v.valid
            ));
        }
        if v.http_strips_ows {
            let stripped = v.input.trim_matches([' ', '\t']);
            if TraceParent::parse(stripped).is_some() != v.w3c_valid {
                failures.push(format!("{}: OWS-stripped form disagrees with W3C", v.name));
            }
        }
        if let Some(tp) = parsed {
            if let Some(expected) = &v.trace_id {
                if &hex(&tp.trace_id) != expected {
                    failures.push(format!("{}: trace_id {}", v.name, hex(&tp.trace_id)));
                }
            }
            if let Some(expected) = &v.parent_id {
                if &hex(&tp.parent_id) != expected {
                    failures.push(format!("{}: parent_id {}", v.name, hex(&tp.parent_id)));
                }
            }
            if let Some(expected) = v.flags {
                if tp.flags != expected {
                    failures.push(format!("{}: flags {}", v.name, tp.flags));
                }
            }
            // Whatever we accept must re-emit as a clean version-00 header that parses back.
            let out = tp.to_header_value();
            if out.len() != 55 || !out.starts_with("00-") || !header_safe(&out) {
                failures.push(format!("{}: bad header value {out:?}", v.name));
            }
            if TraceParent::parse(&out).map(|p| (p.trace_id, p.parent_id, p.flags))
                != Some((tp.trace_id, tp.parent_id, tp.flags))
            {
                failures.push(format!("{}: header value does not round-trip", v.name));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn tracestate_vectors() -> TestResult {
    let fixture = load()?;
    let mut failures = Vec::new();
    for v in &fixture.tracestate {
        // Repeated header fields are combined with "," before a single-value parser sees them.
        let combined = v.headers.join(",");
        let parsed = TraceState::parse(&combined);
        if parsed.is_some() != v.valid {
            failures.push(format!(
                "{}: parsed={} expected={}",
                v.name,
                parsed.is_some(),
                v.valid
            ));
        }
        let Some(state) = parsed else { continue };
        let members: Vec<(String, String)> = state
            .members()
            .map(|(k, val)| (k.to_owned(), val.to_owned()))
            .collect();
        if let Some(expected) = &v.members {
            if &members != expected {
                failures.push(format!("{}: members {members:?}", v.name));
            }
        }
        if let Some(expected) = v.len {
            if state.len() != expected {
                failures.push(format!("{}: len {}", v.name, state.len()));
            }
        }
        let out = state.to_header_value();
        if !header_safe(&out) {
            failures.push(format!("{}: unsafe header value {out:?}", v.name));
        }
        let reparsed: Option<Vec<(String, String)>> = TraceState::parse(&out).map(|s| {
            s.members()
                .map(|(k, val)| (k.to_owned(), val.to_owned()))
                .collect()
        });
        if reparsed.as_ref() != Some(&members) {
            failures.push(format!("{}: header value does not round-trip", v.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn single_header_vectors_also_parse_alone() -> TestResult {
    // Each header of a valid multi-header request must itself be valid on its own.
    let fixture = load()?;
    for v in fixture.tracestate.iter().filter(|v| v.valid) {
        for header in &v.headers {
            assert!(
                TraceState::parse(header).is_some(),
                "{}: {header:?}",
                v.name
            );
        }
    }
    Ok(())
}
