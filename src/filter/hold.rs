//! Holding a request body until it is complete, within bounds, under the host's rules: which
//! requests are held, how much of a body, and what each callback answers meanwhile.

use crate::config::Config;
use crate::gate;
use crate::host::{Action, Counter, Host, HostKind};
use crate::request_headers::RequestHeaders;
use std::cell::Cell;

thread_local! {
    /// Whether this VM already logged a body the host would not hand over (logged once, counted
    /// always).
    static UNREADABLE_LOGGED: Cell<bool> = const { Cell::new(false) };
}

/// Where a held body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not (or no longer) held: every callback continues at once.
    PassThrough,
    /// The body is being held until the end of the stream.
    Holding,
}

/// The body hold of one request.
#[derive(Debug)]
pub struct Hold {
    kind: HostKind,
    state: State,
    /// Most body bytes to hold (see `gate::hold_limit`).
    limit: usize,
}

/// What the body callbacks decided.
pub enum BodyStep {
    /// Answer the host with this action; the body is not complete (or no longer held).
    Answer(Action),
    /// The body is complete: this many bytes are held.
    Complete(usize),
}

impl BodyStep {
    /// The answer for the host: `process` the complete body, or the decided action.
    pub fn or_process(self, process: impl FnOnce(usize) -> Action) -> Action {
        match self {
            BodyStep::Answer(action) => action,
            BodyStep::Complete(size) => process(size),
        }
    }
}

impl Hold {
    pub fn new(kind: HostKind) -> Hold {
        Hold {
            kind,
            state: State::PassThrough,
            limit: 0,
        }
    }

    /// Decides at request headers whether to hold the body: only JSON POSTs with a body whose
    /// declared length fits. Returns the answer for the headers callback.
    pub fn start(
        &mut self,
        host: &mut impl Host,
        config: &Config,
        headers: &RequestHeaders,
        end_of_stream: bool,
    ) -> Action {
        if end_of_stream
            || !gate::is_json_post(headers.method.as_deref(), headers.content_type.as_deref())
        {
            return Action::Continue;
        }
        let content_length = headers.content_length.as_deref();
        if gate::declared_oversize(content_length, config.max_body_bytes) {
            host.count(Counter::Oversize, 1);
            return Action::Continue;
        }
        // The headroom for a body of unknown length is for Envoy's stream buffer, which a chunk
        // can overflow before the filter sees it; ngx_wasm_module hands over the whole body,
        // already read, in one callback.
        let length_known = content_length.is_some() || !self.kind.resumes_header_pause();
        self.limit = gate::hold_limit(config.max_body_bytes, length_known);
        self.state = State::Holding;
        if self.kind.resumes_header_pause() {
            Action::Pause
        } else {
            // ngx_wasm_module never resumes a header pause; it hands over the whole body in one
            // callback, and headers set there still reach the upstream.
            Action::Continue
        }
    }

    /// A body chunk arrived; `body_size` is everything held so far.
    pub fn body(
        &mut self,
        host: &mut impl Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> BodyStep {
        if self.state != State::Holding {
            return BodyStep::Answer(Action::Continue);
        }
        if body_size > self.limit {
            self.state = State::PassThrough;
            host.count(Counter::Oversize, 1);
            return BodyStep::Answer(Action::Continue);
        }
        if !end_of_stream {
            if self.kind.resumes_header_pause() {
                return BodyStep::Answer(Action::Pause);
            }
            // A host that streams the body past a continued header cannot be made to wait.
            self.state = State::PassThrough;
            return BodyStep::Answer(Action::Continue);
        }
        self.state = State::PassThrough;
        BodyStep::Complete(body_size)
    }

    /// Trailers end a held body.
    pub fn trailers(&mut self) -> BodyStep {
        if self.state != State::Holding {
            return BodyStep::Answer(Action::Continue);
        }
        self.state = State::PassThrough;
        BodyStep::Complete(self.limit)
    }
}

/// Reads the complete body; a body the host will not hand over is counted (and logged once).
pub fn read_body(host: &mut impl Host, size: usize) -> Option<Vec<u8>> {
    match host.request_body(size) {
        Ok(body) => Some(body),
        Err(error) => {
            host.count(Counter::Unreadable, 1);
            if !UNREADABLE_LOGGED.with(|logged| logged.replace(true)) {
                host.log(
                    log::Level::Warn,
                    &format!(
                        "mcp-trace-filter: the host would not hand over a request body (status {}); \
                         such bodies pass through untouched and are counted as `unreadable` \
                         (on nginx, raise client_body_buffer_size to at least max_body_bytes)",
                        error.0
                    ),
                );
            }
            None
        }
    }
}

/// Writes `body` back in place of the `held` bytes (Envoy accepts only whole-body writes);
/// when the length changed and the request declared one, `Content-Length` follows (the
/// headers are still held). Returns whether the body was written.
pub fn replace_body(host: &mut impl Host, held: usize, body: &[u8], length_declared: bool) -> bool {
    if let Err(error) = host.replace_request_body(held, body) {
        host.log(
            log::Level::Warn,
            &format!(
                "mcp-trace-filter: could not rewrite the request body: host status {}",
                error.0
            ),
        );
        return false;
    }
    host.count(Counter::BodySynced, 1);
    // Only once the new body is in: a length that no longer matches would hang the request.
    if held != body.len() && length_declared {
        let length = body.len().to_string();
        if let Err(error) = host.set_request_header("content-length", &length) {
            host.log(
                log::Level::Warn,
                &format!(
                    "mcp-trace-filter: could not set content-length: host status {}",
                    error.0
                ),
            );
        }
    }
    true
}
