//! Server spans returned in MCP responses (SEP-2448, "server execution telemetry", an open
//! proposal): find them, strip them, and hand them over for export.
//!
//! # The format
//!
//! SEP-2448 (modelcontextprotocol/modelcontextprotocol PR #2448) lets a server that advertises
//! the `serverExecutionTelemetry` capability answer a `tools/call` or `resources/read` request
//! that asked for it (`params._meta.otel.traces.request: true`) with its own spans at
//! `result._meta.otel.traces`, an OTLP/JSON `ExportTraceServiceRequest`
//! (`{"resourceSpans": [...]}`) that "the client can POST directly to `/v1/traces`". Its
//! reference implementation (Arcade MCP) adds `truncated` and `droppedSpanCount` next to
//! `resourceSpans`; OTLP/JSON receivers ignore unknown fields, so the object is forwarded as is.
//!
//! What this module accepts, in the `otel` member a last-wins parser reads from the
//! `_meta` object of a message's `result` object:
//!
//! - `otel` is an object whose `traces` member is an object whose `resourceSpans` member is a
//!   non-empty array: the payload is the `traces` value (the SEP's shape);
//! - otherwise, `otel` is an object whose own `resourceSpans` member is a non-empty array: the
//!   payload is the `otel` value (an `ExportTraceServiceRequest` placed directly at `otel`);
//! - anything else (`{"traces": {"request": true}}`, the request's shape; an empty
//!   `resourceSpans`; a non-object) yields no payload, but the member is still found, so it can
//!   be stripped.
//!
//! Only `result._meta.otel` of a message counts: `params._meta.otel` (requests and
//! notifications), `error`, `result.content[0]._meta.otel` and every other place are never
//! touched. A message is a JSON object at the top level or an object element of a top-level
//! array (a batch).
//!
//! # Pieces
//!
//! [`find`] validates a document and locates the members, [`strip`] removes them, [`payloads`]
//! returns the bodies to export, and [`PassbackFilter`] decides, for each response-body
//! callback, whether to wait, pass or replace the body.
//!
//! The scanner keeps its nesting on the heap (one byte per level below the few levels it
//! follows), so a document nested 100 000 deep is handled without recursion; memory is bounded
//! by a small constant times the input, and the found list is capped at [`MAX_FOUND`] entries.

use crate::mcp::json;
use std::borrow::Cow;
use std::ops::Range;

/// Most `otel` members [`find`] records in one document. Further ones are left in place (not
/// stripped, not forwarded) and [`Findings::capped`] is set. They still count for "last one
/// wins": a message whose last `otel` member went unrecorded forwards nothing.
pub const MAX_FOUND: usize = 64;

/// One `otel` member of a `result._meta` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Index of the message: 0 for a single message, the element index in a batch.
    pub message: usize,
    /// The bytes to remove with the member: the key, the value and one separating comma with
    /// the whitespace around it. Removing every `member` of a [`Findings`] leaves valid JSON.
    pub member: Range<usize>,
    /// The value's bytes.
    pub value: Range<usize>,
    /// The OTLP/JSON body to export (see the module documentation), set only on the member a
    /// last-wins parser reads: the last `otel` of the last `_meta` of the last `result` of its
    /// message.
    pub payload: Option<Range<usize>>,
}

/// What [`find`] located in one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Every `result._meta.otel` member, in document order, at most [`MAX_FOUND`].
    pub found: Vec<Found>,
    /// More members than [`MAX_FOUND`] were present; the rest are neither stripped nor
    /// forwarded.
    pub capped: bool,
}

/// Locates every `result._meta.otel` member of a JSON-RPC document (one message or a batch).
///
/// `None` when the document is not exactly one JSON value (RFC 8259: UTF-8, no byte order
/// mark, nothing but whitespace around the value). A valid document that is not a message or
/// has no such member gives empty [`Findings`].
///
/// Duplicate keys: every `otel` member of every `_meta` of every `result` is found (so all are
/// stripped), and only the one a last-wins parser (Python's and JavaScript's, which MCP peers
/// use) reads carries a payload.
pub fn find(document: &[u8]) -> Option<Findings> {
    std::str::from_utf8(document).ok()?;
    let mut scan = Scan {
        doc: document,
        roles: Vec::new(),
        plain: Vec::new(),
        findings: Findings::default(),
        message: 0,
        message_first: 0,
    };
    scan.run()?;
    Some(scan.findings)
}

/// `document` without the `member` ranges of `found` (which must be in document order, as
/// [`find`] returns them; a range that is out of bounds or overlaps an earlier one is skipped).
/// Every other byte is unchanged; when `found` came from [`find`] on this document, the result
/// is valid JSON.
pub fn strip(document: &[u8], found: &[Found]) -> Vec<u8> {
    let mut out = Vec::with_capacity(document.len());
    let mut cursor = 0;
    for range in found.iter().map(|f| &f.member) {
        if range.start < cursor {
            continue;
        }
        if let (Some(kept), Some(_)) = (
            document.get(cursor..range.start),
            document.get(range.clone()),
        ) {
            out.extend_from_slice(kept);
            cursor = range.end;
        }
    }
    out.extend_from_slice(document.get(cursor..).unwrap_or_default());
    out
}

/// The OTLP/JSON bodies to POST to `/v1/traces`: the `payload` bytes of each found member
/// that has one (at most one per message), in document order. Each is a complete JSON object.
pub fn payloads<'a>(document: &'a [u8], found: &[Found]) -> Vec<&'a [u8]> {
    found
        .iter()
        .filter_map(|f| document.get(f.payload.clone()?))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The scanner.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
}

/// What the value about to be read becomes if it is an object (or, at the top, an array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Top,
    Message(usize),
    Result,
    Meta,
    /// The value of a recorded `otel` member (index into the found list).
    Otel(usize),
    Traces,
    /// The value of a `resourceSpans` member of an `otel` or `traces` object.
    ResourceSpans,
    Plain,
}

/// A container on the path the scanner follows (`[batch] > message > result > _meta > otel >
/// traces`). Everything below the path is a plain container, kept as one byte.
#[derive(Debug)]
enum Frame {
    Batch {
        next: usize,
    },
    Message,
    Result,
    Meta {
        /// A member that stays in the document precedes the current one, so a removed member
        /// takes the comma before it; until then a removed member takes the comma after it.
        kept_before: bool,
        /// End of the previous member's value.
        previous_end: usize,
        /// A leading removed member whose range ends where the next key starts.
        pending: Option<usize>,
        /// The recorded `otel` member whose value is being read.
        current: Option<usize>,
    },
    Otel {
        found: usize,
        start: usize,
        /// The payload a valid last `traces` member gives.
        traces: Option<Range<usize>>,
        /// The last `resourceSpans` member is a non-empty array.
        spans: bool,
    },
    Traces {
        start: usize,
        spans: bool,
    },
}

struct Scan<'a> {
    doc: &'a [u8],
    roles: Vec<Frame>,
    plain: Vec<Kind>,
    findings: Findings,
    message: usize,
    /// Index of the current message's first found entry.
    message_first: usize,
}

impl Scan<'_> {
    fn run(&mut self) -> Option<()> {
        let b = self.doc;
        let mut pos = json::skip_whitespace(b, 0);
        let mut slot = Slot::Top;
        'value: loop {
            slot = self.begin_value(pos, slot);
            let mut end = match *b.get(pos)? {
                open @ (b'{' | b'[') => {
                    let kind = if open == b'{' {
                        Kind::Object
                    } else {
                        Kind::Array
                    };
                    self.open(kind, slot, pos);
                    pos = json::skip_whitespace(b, pos + 1);
                    match (kind, *b.get(pos)?) {
                        (Kind::Object, b'}') | (Kind::Array, b']') => {
                            self.close(pos + 1);
                            pos + 1
                        }
                        (Kind::Object, _) => {
                            (pos, slot) = self.member(pos)?;
                            continue 'value;
                        }
                        (Kind::Array, _) => {
                            slot = self.element();
                            continue 'value;
                        }
                    }
                }
                b'"' => string_end(b, pos)?,
                b't' => json::literal(b, pos, b"true")?,
                b'f' => json::literal(b, pos, b"false")?,
                b'n' => json::literal(b, pos, b"null")?,
                _ => json::number(b, pos)?,
            };
            // A value ended at `end`: close containers until one has more to read.
            loop {
                let Some(kind) = self.top_kind() else {
                    break 'value (json::skip_whitespace(b, end) == b.len()).then_some(());
                };
                self.value_ended(end);
                pos = json::skip_whitespace(b, end);
                match (kind, *b.get(pos)?) {
                    (Kind::Object, b',') => {
                        (pos, slot) = self.member(json::skip_whitespace(b, pos + 1))?;
                        continue 'value;
                    }
                    (Kind::Array, b',') => {
                        pos = json::skip_whitespace(b, pos + 1);
                        slot = self.element();
                        continue 'value;
                    }
                    (Kind::Object, b'}') | (Kind::Array, b']') => {
                        end = pos + 1;
                        self.close(end);
                    }
                    _ => return None,
                }
            }
        }
    }

    fn top_kind(&self) -> Option<Kind> {
        if let Some(kind) = self.plain.last() {
            return Some(*kind);
        }
        match self.roles.last()? {
            Frame::Batch { .. } => Some(Kind::Array),
            _ => Some(Kind::Object),
        }
    }

    /// Notes what the value at `pos` tells its parent before it is read.
    fn begin_value(&mut self, pos: usize, slot: Slot) -> Slot {
        if slot != Slot::ResourceSpans {
            return slot;
        }
        let non_empty_array = self.doc.get(pos) == Some(&b'[')
            && self.doc.get(json::skip_whitespace(self.doc, pos + 1)) != Some(&b']');
        if let Some(Frame::Otel { spans, .. } | Frame::Traces { spans, .. }) = self.roles.last_mut()
        {
            *spans = non_empty_array;
        }
        Slot::Plain
    }

    fn open(&mut self, kind: Kind, slot: Slot, pos: usize) {
        // Below a plain container every slot is `Plain`.
        let frame = match (kind, slot) {
            (Kind::Array, Slot::Top) => Some(Frame::Batch { next: 0 }),
            (Kind::Object, Slot::Top) => self.start_message(0),
            (Kind::Object, Slot::Message(index)) => self.start_message(index),
            (Kind::Object, Slot::Result) => Some(Frame::Result),
            (Kind::Object, Slot::Meta) => Some(Frame::Meta {
                kept_before: false,
                previous_end: pos + 1,
                pending: None,
                current: None,
            }),
            (Kind::Object, Slot::Otel(found)) => Some(Frame::Otel {
                found,
                start: pos,
                traces: None,
                spans: false,
            }),
            (Kind::Object, Slot::Traces) => Some(Frame::Traces {
                start: pos,
                spans: false,
            }),
            _ => None,
        };
        match frame {
            Some(frame) => self.roles.push(frame),
            None => self.plain.push(kind),
        }
    }

    fn start_message(&mut self, index: usize) -> Option<Frame> {
        self.message = index;
        self.message_first = self.findings.found.len();
        Some(Frame::Message)
    }

    /// A container closed; `end` is just after it.
    fn close(&mut self, end: usize) {
        if self.plain.pop().is_some() {
            return;
        }
        match self.roles.pop() {
            Some(Frame::Otel {
                found,
                start,
                traces,
                spans,
            }) => {
                let payload = traces.or_else(|| spans.then_some(start..end));
                if let Some(entry) = self.findings.found.get_mut(found) {
                    entry.payload = payload;
                }
            }
            Some(Frame::Traces { start, spans }) => {
                if let Some(Frame::Otel { traces, .. }) = self.roles.last_mut() {
                    *traces = spans.then_some(start..end);
                }
            }
            _ => {}
        }
    }

    /// A member or element value of the top container ended at `end`.
    fn value_ended(&mut self, end: usize) {
        if !self.plain.is_empty() {
            return;
        }
        if let Some(Frame::Meta {
            kept_before,
            previous_end,
            pending,
            current,
        }) = self.roles.last_mut()
        {
            *previous_end = end;
            if let Some(index) = current.take() {
                if let Some(entry) = self.findings.found.get_mut(index) {
                    entry.value.end = end;
                    entry.member.end = end;
                }
                if !*kept_before {
                    *pending = Some(index);
                }
            }
        }
    }

    /// The next array element starts; the slot it fills.
    fn element(&mut self) -> Slot {
        if !self.plain.is_empty() {
            return Slot::Plain;
        }
        match self.roles.last_mut() {
            Some(Frame::Batch { next }) => {
                let index = *next;
                *next += 1;
                Slot::Message(index)
            }
            _ => Slot::Plain,
        }
    }

    /// Reads the key at `pos` and its colon; returns where the value starts and its slot.
    fn member(&mut self, pos: usize) -> Option<(usize, Slot)> {
        let b = self.doc;
        if b.get(pos) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, pos)?;
        let after = json::skip_whitespace(b, key_end);
        if b.get(after) != Some(&b':') {
            return None;
        }
        let value = json::skip_whitespace(b, after + 1);
        if !self.plain.is_empty() {
            return Some((value, Slot::Plain));
        }
        let key = b.get(pos + 1..key_end - 1)?;
        let slot = match self.roles.last_mut() {
            Some(Frame::Message) if key_is(key, b"result") => {
                self.supersede();
                Slot::Result
            }
            Some(Frame::Result) if key_is(key, b"_meta") => {
                self.supersede();
                Slot::Meta
            }
            Some(Frame::Meta { .. }) => self.meta_member(pos, value, key_is(key, b"otel")),
            Some(Frame::Otel { traces, .. }) if key_is(key, b"traces") => {
                *traces = None;
                Slot::Traces
            }
            Some(Frame::Otel { .. } | Frame::Traces { .. }) if key_is(key, b"resourceSpans") => {
                Slot::ResourceSpans
            }
            _ => Slot::Plain,
        };
        Some((value, slot))
    }

    /// A member of a `_meta` object starts with its key at `key`; its value starts at `value`.
    fn meta_member(&mut self, key: usize, value: usize, otel: bool) -> Slot {
        if otel {
            self.supersede();
        }
        let recorded = otel && self.findings.found.len() < MAX_FOUND;
        if otel && !recorded {
            self.findings.capped = true;
        }
        let index = self.findings.found.len();
        let message = self.message;
        let Some(Frame::Meta {
            kept_before,
            previous_end,
            pending,
            current,
        }) = self.roles.last_mut()
        else {
            return Slot::Plain;
        };
        if let Some(leading) = pending.take() {
            if let Some(entry) = self.findings.found.get_mut(leading) {
                entry.member.end = key;
            }
        }
        if !recorded {
            *kept_before = true;
            return Slot::Plain;
        }
        let start = if *kept_before { *previous_end } else { key };
        *current = Some(index);
        self.findings.found.push(Found {
            message,
            member: start..value,
            value: value..value,
            payload: None,
        });
        Slot::Otel(index)
    }

    /// A later `result`, `_meta` or `otel` key hides what the current message had so far.
    fn supersede(&mut self) {
        if let Some(entries) = self.findings.found.get_mut(self.message_first..) {
            for entry in entries {
                entry.payload = None;
            }
        }
    }
}

/// Whether the raw contents of a validated JSON string (between the quotes) decode to the
/// ASCII `word`. Escapes are decoded on the fly, so `"\u006ftel"` is `otel`.
fn key_is(raw: &[u8], word: &[u8]) -> bool {
    if !raw.contains(&b'\\') {
        return raw == word;
    }
    let mut i = 0;
    let mut expected = word.iter();
    while let Some(&byte) = raw.get(i) {
        let (decoded, width) = if byte != b'\\' {
            (Some(byte), 1)
        } else {
            match raw.get(i + 1) {
                Some(b'u') => {
                    let code = raw
                        .get(i + 2..i + 6)
                        .and_then(|hex| std::str::from_utf8(hex).ok())
                        .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                    (code.filter(u8::is_ascii), 6)
                }
                Some(b'b') => (Some(0x08), 2),
                Some(b'f') => (Some(0x0c), 2),
                Some(b'n') => (Some(b'\n'), 2),
                Some(b'r') => (Some(b'\r'), 2),
                Some(b't') => (Some(b'\t'), 2),
                other => (other.copied(), 2),
            }
        };
        match (decoded, expected.next()) {
            (Some(got), Some(want)) if got == *want => {}
            _ => return false,
        }
        i += width;
    }
    expected.next().is_none()
}

/// The position after the string whose opening quote is at `pos`, by the request scanner's
/// reader (escapes and raw control characters checked; the document is known to be UTF-8).
fn string_end(bytes: &[u8], pos: usize) -> Option<usize> {
    json::string(bytes, pos).map(|token| token.end + 1)
}

// ---------------------------------------------------------------------------------------------
// The response-body decision.

/// What to do with server spans found in responses. With neither, nothing is looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassbackOptions {
    /// Hand the spans over for export ([`BodyStep::payloads`]).
    pub forward: bool,
    /// Remove `result._meta.otel` before the response reaches the client.
    pub strip: bool,
}

/// What the filter does with the buffered response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Keep buffering (answer Pause); call again with the grown buffer.
    Wait,
    /// Continue with the buffered bytes unchanged.
    Pass,
    /// Continue with these bytes instead of the buffered ones.
    Replace(Vec<u8>),
}

/// The answer to one body callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyStep {
    pub action: Action,
    /// OTLP/JSON `ExportTraceServiceRequest` bodies to POST to the collector's `/v1/traces`
    /// (empty unless `forward` is on), in stream order.
    pub payloads: Vec<Vec<u8>>,
    /// The buffer outgrew the limit: it passes unchanged and unexamined.
    pub over_limit: bool,
    /// A document (the JSON body, or an event's data) was not JSON: it passes unchanged.
    pub unreadable: bool,
    /// A document had more than [`MAX_FOUND`] `otel` members: the rest stay and are not
    /// forwarded.
    pub capped: bool,
}

impl BodyStep {
    fn new(action: Action) -> BodyStep {
        BodyStep {
            action,
            payloads: Vec::new(),
            over_limit: false,
            unreadable: false,
            capped: false,
        }
    }
}

#[derive(Debug)]
enum Mode {
    /// Nothing (more) to do: every callback passes.
    Done,
    Json,
    EventStream(EventState),
}

/// Decides, for each response-body callback, whether to buffer, pass or rewrite the body so
/// that SEP-2448 server spans are forwarded and/or stripped. Pure: it keeps no copy of the
/// body, only positions into the caller's buffer and a few flags.
///
/// # The caller's contract
///
/// - Call [`PassbackFilter::on_body`] from every response-body callback with **all the bytes
///   the host currently buffers** (with Envoy: the whole `get_http_response_body(0, size)` of
///   that callback) and its `end_of_stream`.
/// - On [`Action::Wait`], answer Pause: the host keeps buffering and the next call's bytes are
///   the same bytes plus more.
/// - On [`Action::Pass`], continue; on [`Action::Replace`], replace the whole buffered body
///   with the given bytes, then continue. Either way the host flushes what it buffered, and
///   the next call's bytes are **new bytes only**: the filter resets its positions then.
/// - Export every [`BodyStep::payloads`] entry (a POST of `application/json` to
///   `/v1/traces`); count `over_limit`, `unreadable` and `capped`.
/// - Stripping changes the body's length: when `strip` is on for a response whose length is
///   fixed (a JSON body with `Content-Length`), remove `Content-Length` when the response
///   headers pass. Keep `limit` below the host's own buffer limit (Envoy answers an oversize
///   buffered response with an error).
///
/// # Per content type
///
/// - `application/json`: waits until `end_of_stream`, then handles the body as one document.
///   A buffer over `limit` passes (flagged `over_limit`) and the rest of the body passes too.
/// - `text/event-stream`: events end at a blank line (LF, CRLF or CR line endings). When the
///   buffer ends exactly at an event boundary (or at `end_of_stream`, where a last unfinished
///   event is handled too), each event's `data:` lines, joined by `\n`, are one document. An
///   event whose document changes is written back with its other lines (`event:`, `id:`,
///   comments, ...) unchanged and in place, and the new data as one `data: ` line at the first
///   data line's place (split at `\n` if the document keeps a line break from a multi-line
///   original, so the client joins back exactly the stripped document). A buffer ending inside
///   an event waits; a buffer over `limit` passes unexamined (flagged `over_limit`), and the
///   rest of the event it ended in passes unexamined in the next call.
/// - Any other content type, or neither `forward` nor `strip`: every call passes without
///   looking at the bytes.
#[derive(Debug)]
pub struct PassbackFilter {
    options: PassbackOptions,
    limit: usize,
    mode: Mode,
}

impl PassbackFilter {
    /// A filter for a response of `content_type`, holding at most `limit` bytes.
    pub fn new(content_type: Option<&str>, options: PassbackOptions, limit: usize) -> Self {
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase());
        let mode = match media_type.as_deref() {
            _ if !options.forward && !options.strip => Mode::Done,
            Some("application/json") => Mode::Json,
            Some("text/event-stream") => Mode::EventStream(EventState::new()),
            _ => Mode::Done,
        };
        PassbackFilter {
            options,
            limit,
            mode,
        }
    }

    /// Whether any call can answer something else than [`Action::Pass`]: when `false`, the
    /// caller need not buffer or call at all.
    pub fn is_active(&self) -> bool {
        !matches!(self.mode, Mode::Done)
    }

    /// Decides what to do with `buffered`, all the bytes the host buffers now (see the
    /// contract on [`PassbackFilter`]).
    pub fn on_body(&mut self, buffered: &[u8], end_of_stream: bool) -> BodyStep {
        let options = self.options;
        let limit = self.limit;
        match &mut self.mode {
            Mode::Done => BodyStep::new(Action::Pass),
            Mode::Json if buffered.len() > limit => {
                self.mode = Mode::Done;
                BodyStep {
                    over_limit: true,
                    ..BodyStep::new(Action::Pass)
                }
            }
            Mode::Json if !end_of_stream => BodyStep::new(Action::Wait),
            Mode::Json => {
                self.mode = Mode::Done;
                let mut step = BodyStep::new(Action::Pass);
                if let Some(changed) = handle_document(buffered, options, &mut step) {
                    step.action = Action::Replace(changed);
                }
                step
            }
            Mode::EventStream(state) => {
                let step = state.on_body(buffered, end_of_stream, options, limit);
                if end_of_stream {
                    self.mode = Mode::Done;
                }
                step
            }
        }
    }
}

/// Handles one document: payloads into `step` when forwarding, flags; the stripped document
/// when stripping changed it.
fn handle_document(
    document: &[u8],
    options: PassbackOptions,
    step: &mut BodyStep,
) -> Option<Vec<u8>> {
    let Some(findings) = find(document) else {
        step.unreadable |= json::skip_whitespace(document, 0) < document.len();
        return None;
    };
    step.capped |= findings.capped;
    if options.forward {
        step.payloads.extend(
            payloads(document, &findings.found)
                .into_iter()
                .map(<[u8]>::to_vec),
        );
    }
    (options.strip && !findings.found.is_empty()).then(|| strip(document, &findings.found))
}

/// Where the event-stream line reader stands between two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lines {
    /// The next byte starts a line.
    at_line_start: bool,
    /// The last byte was a CR: a LF next belongs to it.
    after_cr: bool,
    /// No event is in progress (stream start, or just after a blank line).
    idle: bool,
}

impl Lines {
    const START: Lines = Lines {
        at_line_start: true,
        after_cr: false,
        idle: true,
    };

    /// Reads `bytes[from..]`, calling `boundary(end)` at each position where no event is in
    /// progress any more: after each blank line (and after a LF completing its CRLF).
    fn run(&mut self, bytes: &[u8], from: usize, mut boundary: impl FnMut(usize)) {
        let mut i = from;
        while let Some(&byte) = bytes.get(i) {
            i += 1;
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                if self.idle {
                    boundary(i);
                }
                continue;
            }
            match byte {
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    if self.at_line_start {
                        self.idle = true;
                        if self.after_cr && bytes.get(i) == Some(&b'\n') {
                            self.after_cr = false;
                            i += 1;
                        }
                        boundary(i);
                    }
                    self.at_line_start = true;
                }
                _ => {
                    self.at_line_start = false;
                    self.idle = false;
                }
            }
        }
    }
}

/// Event-stream positions, relative to the bytes buffered since the last flush.
#[derive(Debug)]
struct EventState {
    /// The reader's state at the start of the buffer.
    start: Lines,
    /// The reader's state after `scanned` bytes.
    lines: Lines,
    scanned: usize,
    /// End of the last complete event within the scanned bytes.
    boundary: Option<usize>,
    /// No byte has been flushed yet (a byte order mark may open the stream).
    stream_start: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl EventState {
    fn new() -> EventState {
        EventState {
            start: Lines::START,
            lines: Lines::START,
            scanned: 0,
            boundary: Some(0),
            stream_start: true,
        }
    }

    fn on_body(
        &mut self,
        buffered: &[u8],
        end_of_stream: bool,
        options: PassbackOptions,
        limit: usize,
    ) -> BodyStep {
        if buffered.len() < self.scanned {
            // Not the grown buffer the contract promises: read it again from its start.
            self.rewind();
        }
        let mut boundary = self.boundary;
        self.lines
            .run(buffered, self.scanned, |end| boundary = Some(end));
        self.boundary = boundary;
        self.scanned = buffered.len();
        if buffered.len() > limit {
            self.flushed();
            return BodyStep {
                over_limit: true,
                ..BodyStep::new(Action::Pass)
            };
        }
        if !end_of_stream && boundary != Some(buffered.len()) {
            return BodyStep::new(Action::Wait);
        }
        let step = self.handle_events(buffered, options);
        self.flushed();
        step
    }

    fn rewind(&mut self) {
        self.lines = self.start;
        self.scanned = 0;
        self.boundary = self.start.idle.then_some(0);
    }

    /// The host flushed the buffer: the next bytes are new ones.
    fn flushed(&mut self) {
        self.start = self.lines;
        self.stream_start = false;
        self.rewind();
    }

    /// Handles every event in `buffered` (which ends at an event boundary or the stream's end).
    fn handle_events(&self, buffered: &[u8], options: PassbackOptions) -> BodyStep {
        let mut step = BodyStep::new(Action::Pass);
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut event_start = 0;
        let mut continuing = !self.start.idle;
        let mut handle = |end: usize, step: &mut BodyStep| {
            let start = std::mem::replace(&mut event_start, end);
            if std::mem::take(&mut continuing) || start == end {
                return;
            }
            let Some(event) = buffered.get(start..end) else {
                return;
            };
            let bom = if self.stream_start && start == 0 && event.starts_with(BOM) {
                BOM.len()
            } else {
                0
            };
            if let Some(changed) = handle_event(event, bom, options, step) {
                let out = out.get_or_insert_with(|| Vec::with_capacity(buffered.len()));
                out.extend_from_slice(buffered.get(copied..start).unwrap_or_default());
                out.extend_from_slice(&changed);
                copied = end;
            }
        };
        let mut lines = self.start;
        lines.run(buffered, 0, |end| handle(end, &mut step));
        // At the end of the stream the last event may lack its blank line.
        handle(buffered.len(), &mut step);
        if let Some(mut out) = out {
            out.extend_from_slice(buffered.get(copied..).unwrap_or_default());
            step.action = Action::Replace(out);
        }
        step
    }
}

/// One line of an event: its contents and its terminator (empty for a last unterminated line).
struct Line<'a> {
    text: &'a [u8],
    terminator: &'a [u8],
}

fn event_lines(event: &[u8]) -> impl Iterator<Item = Line<'_>> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let at = rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .unwrap_or(rest.len());
        let width = match rest.get(at..at + 2) {
            Some(b"\r\n") => 2,
            _ if at < rest.len() => 1,
            _ => 0,
        };
        let (text, tail) = rest.split_at(at);
        let (terminator, after) = tail.split_at(width);
        rest = after;
        Some(Line { text, terminator })
    })
}

/// The value of a `data` field line (SSE: `data`, or `data:` with one optional space).
fn data_value(line: &[u8]) -> Option<&[u8]> {
    if line == b"data" {
        return Some(b"");
    }
    let value = line.strip_prefix(b"data:")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// Handles one complete event (its bytes up to and including its blank line); `skip` leading
/// bytes (a byte order mark) are kept as they are. Returns the rewritten event when stripping
/// changed its data.
fn handle_event(
    event: &[u8],
    skip: usize,
    options: PassbackOptions,
    step: &mut BodyStep,
) -> Option<Vec<u8>> {
    let body = event.get(skip..)?;
    let values = || event_lines(body).filter_map(|line| data_value(line.text));
    // The data is joined into a buffer of its exact size (no growth), or borrowed when it is
    // a single line.
    let (count, size) = values().fold((0, 0), |(count, size), value| {
        (count + 1, size + usize::from(count > 0) + value.len())
    });
    let data: Cow<'_, [u8]> = match count {
        0 => return None,
        1 => Cow::Borrowed(values().next()?),
        _ => {
            let mut joined = Vec::with_capacity(size);
            for (i, value) in values().enumerate() {
                if i > 0 {
                    joined.push(b'\n');
                }
                joined.extend_from_slice(value);
            }
            Cow::Owned(joined)
        }
    };
    let stripped = handle_document(&data, options, step)?;
    // Memory: at most two copies of the event at a time.
    drop(data);
    let mut out = Vec::with_capacity(event.len());
    out.extend_from_slice(event.get(..skip)?);
    let mut wrote_data = false;
    for line in event_lines(body) {
        if data_value(line.text).is_none() {
            out.extend_from_slice(line.text);
            out.extend_from_slice(line.terminator);
            continue;
        }
        if std::mem::replace(&mut wrote_data, true) {
            continue;
        }
        // A line break left in the document splits it over several `data:` lines, each with
        // the first data line's terminator (an unterminated line is the only data line, and
        // its document has no line break).
        for (i, piece) in stripped.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                out.extend_from_slice(line.terminator);
            }
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(piece);
        }
        out.extend_from_slice(line.terminator);
    }
    Some(out)
}

/// Whether every span of an OTLP/JSON `payload` belongs to the trace `trace_id` (32 lowercase
/// hex digits). SEP-2448 tells a receiver to check the lineage of returned spans: a server
/// must not be able to write spans of other traces into the gateway's collector.
pub fn spans_in_trace(payload: &[u8], trace_id: &str) -> bool {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    let Some(resource_spans) = document.get("resourceSpans").and_then(|v| v.as_array()) else {
        return false;
    };
    let mut spans = resource_spans
        .iter()
        .filter_map(|r| r.get("scopeSpans").and_then(|v| v.as_array()))
        .flatten()
        .filter_map(|s| s.get("spans").and_then(|v| v.as_array()))
        .flatten()
        .peekable();
    if spans.peek().is_none() {
        return false;
    }
    spans.all(|span| {
        span.get("traceId")
            .and_then(|v| v.as_str())
            .is_some_and(|id| id.eq_ignore_ascii_case(trace_id))
    })
}
