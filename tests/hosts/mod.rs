//! Native test hosts: each proxy's recorded semantics (DESIGN.md, "Host facts"), so the request
//! state machine is driven through whole callback sequences as that proxy would drive it,
//! without the proxy installed. Each behaviour below names the fact it encodes.
#![allow(dead_code)]

use mcp_trace_filter::config::Config;
use mcp_trace_filter::filter::{self, RequestFilter};
use mcp_trace_filter::host::{abi, Action, Counter, Host, HostError, HostKind};
use mcp_trace_filter::operation_metrics::{OperationAttributes, Side};
use mcp_trace_filter::request_headers::RequestHeaders;
use mcp_trace_filter::span::FinishedSpan;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Statuses the hosts answer with (proxy-wasm `WasmResult`).
const NOT_FOUND: u32 = 1;
const BAD_ARGUMENT: u32 = 2;

/// What one request did to the host, shared between the host handle and the test.
#[derive(Debug, Default)]
pub struct Record {
    /// Request headers in order, as the upstream would receive them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub response_headers: Vec<(String, String)>,
    /// What the client received of the response body.
    pub response_body: Vec<u8>,
    /// The chunk the response-body callback is looking at.
    pub response_chunk: Vec<u8>,
    pub properties: BTreeMap<String, String>,
    pub counters: BTreeMap<&'static str, u64>,
    pub logs: Vec<(log::Level, String)>,
    pub local_response: Option<(u32, Vec<u8>)>,
    /// Spans handed to the worker's exporter (own-span mode).
    pub spans: Vec<FinishedSpan>,
    /// Server OTLP bodies queued for forwarding (SEP-2448).
    pub forwarded: Vec<Vec<u8>>,
    /// Operation durations recorded.
    pub operations: Vec<Operation>,
    /// The host clock; every reading advances it by a millisecond.
    pub clock_unix_nanos: u64,
    /// Random bytes handed out so far (the source is a counter, so ids are predictable).
    pub random_drawn: u64,
    /// Stream properties the host answers (`source.address`, ...), keyed by dotted path.
    pub stream_properties: BTreeMap<String, String>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters.get(counter.name()).copied().unwrap_or(0)
    }
}

/// One recorded operation duration.
#[derive(Debug, Clone)]
pub struct Operation {
    pub side: Side,
    pub method: String,
    pub target: Option<String>,
    pub error_type: Option<String>,
    pub seconds: f64,
}

/// A host of one kind, over a shared [`Record`].
pub struct TestHost {
    pub kind: HostKind,
    pub record: Rc<RefCell<Record>>,
    /// ngx_wasm_module: bodies larger than `client_body_buffer_size` are spilled to a file.
    pub body_buffer_size: usize,
}

impl TestHost {
    /// An ngx_wasm_module host whose `client_body_buffer_size` is `size`.
    pub fn with_body_buffer(size: usize) -> TestHost {
        TestHost {
            kind: HostKind::NgxWasm,
            record: Rc::new(RefCell::new(Record::default())),
            body_buffer_size: size,
        }
    }

    fn read_headers(&self) -> Option<RequestHeaders> {
        let record = self.record.borrow();
        let pairs: Vec<(&str, &str)> = record
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // Through the ABI encoding, as the raw host does.
        let bytes = abi::serialize_header_pairs(&pairs);
        abi::parse_header_pairs(&bytes).map(RequestHeaders::from_pairs)
    }
}

impl Host for TestHost {
    fn request_headers(&mut self) -> Option<RequestHeaders> {
        self.read_headers()
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        let mut record = self.record.borrow_mut();
        let headers = &mut record.headers;
        match self.kind {
            // ngx_wasm_module: `replace_header_map_value` rewrites only the first copy in
            // place; an empty value is a remove, which does nothing there.
            HostKind::NgxWasm if value.is_empty() => {}
            HostKind::NgxWasm => match headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some(slot) => slot.1 = value.to_owned(),
                None => headers.push((name.to_owned(), value.to_owned())),
            },
            // Envoy replaces every value with one.
            HostKind::Envoy | HostKind::Higress => {
                let at = headers
                    .iter()
                    .position(|(n, _)| n.eq_ignore_ascii_case(name));
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                let at = at.unwrap_or(headers.len()).min(headers.len());
                headers.insert(at, (name.to_owned(), value.to_owned()));
            }
        }
        Ok(())
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        // ngx_wasm_module: `proxy_remove_header_map_value` returns Ok and has no effect (nginx's
        // proxy module still forwards the header).
        if self.kind != HostKind::NgxWasm {
            self.record
                .borrow_mut()
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        Ok(())
    }

    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        let record = self.record.borrow();
        // ngx_wasm_module: a body over `client_body_buffer_size` sits in a temp file and
        // `proxy_get_buffer_bytes` fails with status 1.
        if self.kind == HostKind::NgxWasm && record.body.len() > self.body_buffer_size {
            return Err(HostError(NOT_FOUND));
        }
        Ok(record.body.iter().take(size).copied().collect())
    }

    fn replace_request_body(&mut self, current_size: usize, body: &[u8]) -> Result<(), HostError> {
        let mut record = self.record.borrow_mut();
        // Envoy: a request-body write is prepend, append or replace-all; anything else fails.
        if current_size < record.body.len() {
            return Err(HostError(BAD_ARGUMENT));
        }
        record.body = body.to_vec();
        Ok(())
    }

    fn response_header(&mut self, name: &str) -> Option<String> {
        self.record
            .borrow()
            .response_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn response_body(&mut self, size: usize) -> Option<Vec<u8>> {
        Some(
            self.record
                .borrow()
                .response_chunk
                .iter()
                .take(size)
                .copied()
                .collect(),
        )
    }

    fn set_property(&mut self, key: &str, value: &str) -> Result<(), HostError> {
        // ngx_wasm_module: `set_property` on arbitrary keys is NotFound; keys under `wasmx.`
        // work. Envoy and Higress accept any key (Higress turns `trace_span_tag.*` into tags).
        if self.kind == HostKind::NgxWasm && !key.starts_with("wasmx.") {
            return Err(HostError(NOT_FOUND));
        }
        self.record
            .borrow_mut()
            .properties
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    fn send_local_response(
        &mut self,
        status: u32,
        _details: &str,
        _headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError> {
        self.record.borrow_mut().local_response = Some((status, body.to_vec()));
        Ok(())
    }

    fn count(&mut self, counter: Counter, by: u64) {
        *self
            .record
            .borrow_mut()
            .counters
            .entry(counter.name())
            .or_default() += by;
    }

    fn log(&mut self, level: log::Level, message: &str) {
        self.record
            .borrow_mut()
            .logs
            .push((level, message.to_owned()));
    }

    fn now_unix_nanos(&mut self) -> u64 {
        let mut record = self.record.borrow_mut();
        record.clock_unix_nanos += 1_000_000;
        record.clock_unix_nanos
    }

    fn fill_random(&mut self, bytes: &mut [u8]) {
        let mut record = self.record.borrow_mut();
        for byte in bytes {
            record.random_drawn += 1;
            *byte = record.random_drawn as u8;
        }
    }

    fn property(&mut self, path: &[&str]) -> Option<String> {
        self.record
            .borrow()
            .stream_properties
            .get(&path.join("."))
            .cloned()
    }

    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError> {
        self.record
            .borrow_mut()
            .response_headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        Ok(())
    }

    fn replace_response_body(&mut self, current_size: usize, body: &[u8]) -> Result<(), HostError> {
        let mut record = self.record.borrow_mut();
        if current_size < record.response_chunk.len() {
            return Err(HostError(BAD_ARGUMENT));
        }
        record.response_chunk = body.to_vec();
        Ok(())
    }

    fn export_spans(&mut self, spans: Vec<FinishedSpan>) {
        self.record.borrow_mut().spans.extend(spans);
    }

    fn forward_server_spans(&mut self, body: Vec<u8>) {
        self.record.borrow_mut().forwarded.push(body);
    }

    fn record_operation(&mut self, side: Side, attributes: &OperationAttributes<'_>, seconds: f64) {
        self.record.borrow_mut().operations.push(Operation {
            side,
            method: attributes.method.to_owned(),
            target: attributes.target.map(str::to_owned),
            error_type: attributes.error_type.map(str::to_owned),
            seconds,
        });
    }
}

/// How a request went through a host.
#[derive(Debug)]
pub struct Exchange {
    pub record: Rc<RefCell<Record>>,
    /// The host never got past a pause: the request would hang until a timeout.
    pub hung: bool,
    /// Reached the upstream (not answered locally, not hung).
    pub forwarded: bool,
}

/// A response the upstream sends back: its headers and body chunks.
pub type Response<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a [u8]>);

/// A request to drive through a host.
pub struct Request<'a> {
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
    /// Body chunk sizes as the host delivers them (Envoy); ngx_wasm_module delivers one.
    pub chunks: Vec<usize>,
    /// A response to feed back, if the request is forwarded: (headers, body chunks).
    pub response: Option<Response<'a>>,
}

impl<'a> Request<'a> {
    pub fn post(body: &'a [u8]) -> Request<'a> {
        Request {
            headers: vec![
                (":method", "POST"),
                (":path", "/mcp"),
                ("content-type", "application/json"),
            ],
            body,
            chunks: vec![body.len()],
            response: None,
        }
    }

    pub fn header(mut self, name: &'a str, value: &'a str) -> Request<'a> {
        self.headers.push((name, value));
        self
    }

    pub fn chunked(mut self, chunks: Vec<usize>) -> Request<'a> {
        self.chunks = chunks;
        self
    }

    pub fn respond(
        mut self,
        headers: Vec<(&'a str, &'a str)>,
        chunks: Vec<&'a [u8]>,
    ) -> Request<'a> {
        self.response = Some((headers, chunks));
        self
    }
}

/// Drives `request` through a filter for `config` as a host of `kind` would.
pub fn run(kind: HostKind, config: Config, request: Request<'_>) -> Exchange {
    run_on(host(kind), config, request)
}

/// A host of `kind` answering that host's stream properties.
pub fn host(kind: HostKind) -> TestHost {
    let host = TestHost {
        kind,
        record: Rc::new(RefCell::new(Record::default())),
        body_buffer_size: 16 * 1024,
    };
    host.record.borrow_mut().stream_properties = stream_properties(kind);
    host
}

/// The stream properties each host answers. Envoy: the downstream peer, the protocol and,
/// once connected, the upstream host. ngx_wasm_module is not modelled as answering them (not
/// observed), nor is Higress, so the spans there go without `client.*` / `server.port`.
/// Higress answers the route and the upstream cluster its plugin SDKs match `_rules_` on; the
/// names and the `outbound|port||host` form are from Higress's source
/// (`plugins/wasm-rust/src/rule_matcher.rs`), not observed.
fn stream_properties(kind: HostKind) -> BTreeMap<String, String> {
    let answered: &[(&str, &str)] = match kind {
        HostKind::Envoy => &[
            ("source.address", "127.0.0.1:50123"),
            ("request.protocol", "HTTP/1.1"),
            ("upstream.address", "127.0.0.1:8000"),
        ],
        HostKind::Higress => &[
            ("route_name", "default/mcp-server"),
            (
                "cluster_name",
                "outbound|8080||mcp-server.default.svc.cluster.local",
            ),
        ],
        HostKind::NgxWasm => &[],
    };
    answered
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Drives `request` through a filter for `config` on `host`.
pub fn run_on(host: TestHost, config: Config, request: Request<'_>) -> Exchange {
    // As the plugin does: the configuration's `host` key overrides the recognised host.
    let filter_kind = config.host.unwrap_or(host.kind);
    run_with(host, request, |host| {
        filter::request_filter(Rc::new(config), filter_kind, host)
    })
}

/// Drives `request` through the filter `make` builds on `host`.
pub fn run_with(
    host: TestHost,
    request: Request<'_>,
    make: impl FnOnce(TestHost) -> Box<dyn RequestFilter>,
) -> Exchange {
    let kind = host.kind;
    let record = Rc::clone(&host.record);
    {
        let mut r = record.borrow_mut();
        r.headers = request
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        r.body = request.body.to_vec();
    }
    let mut filter = make(host);
    let (hung, local) = match kind {
        HostKind::Envoy | HostKind::Higress => drive_envoy(filter.as_mut(), &request),
        HostKind::NgxWasm => drive_ngx(filter.as_mut(), &request),
    };
    let local = local || record.borrow().local_response.is_some();
    let forwarded = !hung && !local;
    if forwarded {
        if let Some((headers, chunks)) = &request.response {
            respond(filter.as_mut(), &record, headers, chunks);
        }
    }
    Exchange {
        record,
        hung,
        forwarded,
    }
}

/// Envoy (with `allow_on_headers_stop_iteration`): a header pause is resumed by the body
/// callbacks, each called with everything held so far; a body pause keeps buffering.
fn drive_envoy(filter: &mut dyn RequestFilter, request: &Request<'_>) -> (bool, bool) {
    let has_body = !request.body.is_empty();
    let action = filter.on_request_headers(!has_body);
    if !has_body {
        return (action == Action::Pause, false);
    }
    let mut held = 0;
    let mut paused = action == Action::Pause;
    let chunk_count = request.chunks.len();
    for (index, size) in request.chunks.iter().enumerate() {
        held += size;
        let end = index + 1 == chunk_count;
        let step = filter.on_request_body(if paused { held } else { *size }, end);
        paused = step == Action::Pause;
        if !paused {
            // Everything held so far goes on; later chunks stream through.
            held = 0;
        }
    }
    (paused, false)
}

/// ngx_wasm_module: `on_request_headers` always gets `end_of_stream = false` and a Pause there is
/// never resumed; `on_request_body` is called once with the whole body and `end_of_stream`.
fn drive_ngx(filter: &mut dyn RequestFilter, request: &Request<'_>) -> (bool, bool) {
    if filter.on_request_headers(false) == Action::Pause {
        return (true, false);
    }
    let _ = filter.on_request_body(request.body.len(), true);
    (false, false)
}

fn respond(
    filter: &mut dyn RequestFilter,
    record: &Rc<RefCell<Record>>,
    headers: &[(&str, &str)],
    chunks: &[&[u8]],
) {
    record.borrow_mut().response_headers = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let _ = filter.on_response_headers(chunks.is_empty());
    // Envoy: a Pause from a response-body callback buffers, and the next callback sees
    // everything buffered; what goes on (possibly rewritten) reaches the client.
    let mut held = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        held.extend_from_slice(chunk);
        record.borrow_mut().response_chunk = held.clone();
        let end = index + 1 == chunks.len();
        if filter.on_response_body(held.len(), end) == Action::Continue || end {
            let mut r = record.borrow_mut();
            let passed = std::mem::take(&mut r.response_chunk);
            r.response_body.extend_from_slice(&passed);
            held.clear();
        }
    }
    filter.on_log();
}
