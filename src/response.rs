//! Watches an MCP response for the outcome of the request (`error.type`,
//! `rpc.response.status_code`) without holding or delaying it: chunks are copied as they pass.
//!
//! `application/json` bodies are scanned once complete. `text/event-stream` bodies are split
//! into events as they stream; only the unfinished event is carried between chunks, and the
//! carry is bounded.

use crate::mcp::{scan_each, Message, RequestId};
use crate::semconv;

/// The outcome of a JSON-RPC request as seen in its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseOutcome {
    /// `error.type`: the JSON-RPC error code, or `tool_error` for `isError: true`.
    pub error_type: Option<String>,
    /// `rpc.response.status_code`: the JSON-RPC error code.
    pub status_code: Option<String>,
    /// The JSON-RPC error's `message`, for the span status description.
    pub error_message: Option<String>,
}

impl ResponseOutcome {
    fn of(message: &Message) -> ResponseOutcome {
        if let Some(error) = &message.error {
            let code = error.code.clone().unwrap_or_else(|| "_OTHER".to_owned());
            return ResponseOutcome {
                error_type: Some(code.clone()),
                status_code: Some(code),
                error_message: error.message.as_deref().map(semconv::sanitized),
            };
        }
        let tool_error = message.result.as_ref().is_some_and(|r| r.is_error);
        ResponseOutcome {
            error_type: tool_error.then(|| "tool_error".to_owned()),
            status_code: None,
            error_message: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    EventStream,
}

/// Follows one response body.
#[derive(Debug)]
pub struct ResponseWatcher {
    format: Format,
    request_id: Option<RequestId>,
    /// Most bytes held at once (the JSON body, or one event plus one line).
    limit: usize,
    /// The JSON body so far, or the `data` of the event being assembled.
    held: Vec<u8>,
    /// The event-stream line being assembled (it may span chunks).
    line: Vec<u8>,
    /// Bytes seen on the current line, stored or not (0 means a blank line).
    line_seen: usize,
    /// The previous chunk ended in CR: a LF starting the next one belongs to it.
    after_cr: bool,
    /// What is being assembled outgrew the limit: ignore it until the next boundary.
    overflowed: bool,
    done: bool,
}

impl ResponseWatcher {
    /// A watcher for a response of `content_type` to the request `request_id`, or `None` when
    /// there is nothing to watch (not JSON or an event stream, or a notification).
    pub fn new(
        content_type: Option<&str>,
        request_id: Option<RequestId>,
        limit: usize,
    ) -> Option<ResponseWatcher> {
        let media_type = content_type?.split(';').next()?.trim().to_ascii_lowercase();
        let format = match media_type.as_str() {
            "application/json" => Format::Json,
            "text/event-stream" => Format::EventStream,
            _ => return None,
        };
        request_id.as_ref()?;
        Some(ResponseWatcher {
            format,
            request_id,
            limit,
            held: Vec::new(),
            line: Vec::new(),
            line_seen: 0,
            after_cr: false,
            overflowed: false,
            done: false,
        })
    }

    /// Feeds the next chunk; returns the outcome once, as soon as it is known.
    pub fn feed(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<ResponseOutcome> {
        if self.done {
            return None;
        }
        let outcome = match self.format {
            Format::Json => self.feed_json(chunk, end_of_stream),
            Format::EventStream => self.feed_events(chunk, end_of_stream),
        };
        if outcome.is_some() || end_of_stream {
            self.done = true;
            self.held = Vec::new();
            self.line = Vec::new();
        }
        outcome
    }

    fn feed_json(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<ResponseOutcome> {
        self.hold(chunk);
        if end_of_stream && !self.overflowed {
            return self.outcome_in(&self.held);
        }
        None
    }

    fn hold(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.held.len() + bytes.len() > self.limit {
            self.overflowed = true;
            self.held = Vec::new();
        } else {
            self.held.extend_from_slice(bytes);
        }
    }

    fn feed_events(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<ResponseOutcome> {
        let mut rest = chunk;
        if std::mem::take(&mut self.after_cr) {
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        while let Some(at) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let (line, tail) = rest.split_at(at);
            self.extend_line(line);
            rest = match tail {
                [b'\r', b'\n', after @ ..] => after,
                [b'\r'] => {
                    self.after_cr = true;
                    &[]
                }
                [_, after @ ..] => after,
                [] => &[],
            };
            if let Some(outcome) = self.end_line() {
                return Some(outcome);
            }
        }
        self.extend_line(rest);
        if !end_of_stream {
            return None;
        }
        if self.line_seen > 0 {
            if let Some(outcome) = self.end_line() {
                return Some(outcome);
            }
        }
        self.end_event()
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        self.line_seen += bytes.len();
        if self.line.len() + bytes.len() > self.limit {
            self.overflowed = true;
            self.line = Vec::new();
        } else if !self.overflowed {
            self.line.extend_from_slice(bytes);
        }
    }

    /// A line is complete: a blank one ends the event, a `data:` one adds to it.
    fn end_line(&mut self) -> Option<ResponseOutcome> {
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.line_seen) == 0 {
            return self.end_event();
        }
        if let Some(data) = line.strip_prefix(b"data:") {
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if !self.held.is_empty() {
                self.hold(b"\n");
            }
            self.hold(data);
        }
        None
    }

    fn end_event(&mut self) -> Option<ResponseOutcome> {
        let event = std::mem::take(&mut self.held);
        if std::mem::take(&mut self.overflowed) || event.is_empty() {
            return None;
        }
        self.outcome_in(&event)
    }

    /// The outcome carried by `document` if it holds the response to the watched request.
    /// Messages are visited one at a time, so a huge batch costs no memory beyond one message.
    fn outcome_in(&self, document: &[u8]) -> Option<ResponseOutcome> {
        let mut outcome = None;
        scan_each(document, |message| {
            if outcome.is_none() && message.method.is_none() && message.id == self.request_id {
                outcome = Some(ResponseOutcome::of(&message));
            }
        })
        .ok()?;
        outcome
    }
}
