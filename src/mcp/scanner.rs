//! One-pass validating scan of a JSON-RPC body.
//!
//! Nesting is tracked on a heap stack, never by recursion, so a body nested 100 000 deep cannot
//! overflow the wasm stack. Only objects on the path `message → params → _meta` are looked at;
//! everything else is validated and skipped.

use super::json::{self, StringToken};
use super::utf8;
use super::{
    Message, Meta, MetaLevel, MetaSite, MetaText, MetaValue, NotMcp, RequestId, ResponseError,
    ResponseResult, ScannedBody,
};

/// What an object or array is, as far as the filter cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Anything not on the `message → params → _meta` path.
    Other,
    /// The top-level array of a legacy batch.
    Batch,
    /// A JSON-RPC message object.
    Message,
    /// `message.params`.
    Params,
    /// `message.params._meta`.
    Meta,
    /// `message.error` (responses).
    Error,
    /// `message.result` (responses).
    Result,
}

/// Which recorded field (if any) the value being read belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ignored,
    JsonRpc,
    Method,
    Id,
    Params,
    Name,
    Uri,
    Meta,
    TraceParent,
    TraceState,
    Baggage,
    ProtocolVersion,
    Error,
    ErrorCode,
    ErrorMessage,
    Result,
    IsError,
    /// A value that is a JSON-RPC message when it is an object: the top-level value or an
    /// element of a batch.
    Message,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    is_object: bool,
    role: Role,
}

/// A scalar value just read, kept only as long as needed to record it.
enum Scalar {
    String(StringToken),
    Number(usize, usize),
    Null,
    True,
    Other,
}

/// Scans `body` and collects every message. Memory grows with the number of messages, so this
/// is for tests and tools; the filter visits messages with [`scan_each`] and keeps only what it
/// needs.
pub fn scan(body: &[u8]) -> Result<ScannedBody, NotMcp> {
    let mut messages = Vec::new();
    let batch = scan_each(body, |message| messages.push(message))?;
    Ok(ScannedBody { batch, messages })
}

/// Scans `body`, handing each JSON-RPC message to `visit` as soon as it is complete, in body
/// order; returns whether the body is a batch. Only one message is held at a time, so memory
/// does not grow with the number of messages. `Err` means the body is not treated as MCP and
/// must pass through untouched; messages visited before an error are to be disregarded.
pub fn scan_each(body: &[u8], visit: impl FnMut(Message)) -> Result<bool, NotMcp> {
    // JSON is UTF-8; checking the whole body first lets the string reader skip non-ASCII text.
    if !utf8::is_valid(body) {
        return Err(NotMcp::InvalidJson);
    }
    let start = json::skip_whitespace(body, 0);
    let (top_level, batch) = match body.get(start) {
        Some(b'{') => (Slot::Message, false),
        Some(b'[') => (Slot::Ignored, true),
        _ => (Slot::Ignored, false),
    };
    let is_container = matches!(body.get(start), Some(b'{' | b'['));
    let mut scanner = Scanner {
        bytes: body,
        stack: Vec::new(),
        current: None,
        visit,
    };
    let end = scanner.run(start, top_level).ok_or(NotMcp::InvalidJson)?;
    if json::skip_whitespace(body, end) != body.len() {
        return Err(NotMcp::InvalidJson);
    }
    if !is_container {
        return Err(NotMcp::NotAMessage);
    }
    Ok(batch)
}

struct Scanner<'a, F> {
    bytes: &'a [u8],
    stack: Vec<Frame>,
    /// The message being read (messages never nest: they are the top-level value or elements
    /// of the top-level batch).
    current: Option<Message>,
    visit: F,
}

impl<F: FnMut(Message)> Scanner<'_, F> {
    /// Reads one complete JSON value starting at `pos` (after whitespace); returns the position
    /// after it. `slot` says what the top-level value means.
    fn run(&mut self, mut pos: usize, mut slot: Slot) -> Option<usize> {
        loop {
            // Read a value (or open a container) at `pos`.
            pos = json::skip_whitespace(self.bytes, pos);
            let opened = match *self.bytes.get(pos)? {
                b'{' => Some(self.open(true, slot, pos + 1)),
                b'[' => Some(self.open(false, slot, pos + 1)),
                _ => None,
            };
            let mut closed_value = true;
            if let Some(role) = opened {
                pos = json::skip_whitespace(self.bytes, pos + 1);
                let is_object = self.stack.last()?.is_object;
                let closer = if is_object { b'}' } else { b']' };
                if self.bytes.get(pos) == Some(&closer) {
                    if matches!(role, Role::Message | Role::Params | Role::Meta) {
                        self.mark_empty();
                    }
                    self.close();
                    pos += 1;
                } else if is_object {
                    (pos, slot) = self.key(pos, role)?;
                    closed_value = false;
                } else {
                    slot = element_slot(role);
                    closed_value = false;
                }
            } else {
                let (end, scalar) = self.scalar(pos)?;
                // Almost every value is ignored; skip the call for those.
                if slot != Slot::Ignored {
                    self.record(slot, scalar);
                }
                pos = end;
            }
            if !closed_value {
                continue;
            }
            // After a complete value: close containers or move to the next member/element.
            loop {
                let Some(frame) = self.stack.last().copied() else {
                    return Some(pos);
                };
                pos = json::skip_whitespace(self.bytes, pos);
                let closer = if frame.is_object { b'}' } else { b']' };
                match *self.bytes.get(pos)? {
                    b',' if frame.is_object => {
                        (pos, slot) = self.key(pos + 1, frame.role)?;
                        break;
                    }
                    b',' => {
                        pos += 1;
                        slot = element_slot(frame.role);
                        break;
                    }
                    b if b == closer => {
                        self.close();
                        pos += 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// Pushes a container for a value in `slot` and returns its role; resets the fields the
    /// new container replaces (the last duplicate key wins). `inside` is the offset just after
    /// the opening bracket; a site starts as non-empty until [`Self::mark_empty`] says otherwise.
    fn open(&mut self, is_object: bool, slot: Slot, inside: usize) -> Role {
        let role = match (is_object, slot) {
            (true, Slot::Message) => {
                self.current = Some(Message {
                    meta_site: MetaSite::Object {
                        level: MetaLevel::Message,
                        at: inside,
                        empty: false,
                    },
                    ..Message::default()
                });
                Role::Message
            }
            (false, Slot::Ignored) if self.stack.is_empty() => Role::Batch,
            (true, Slot::Params) => {
                if let Some(message) = self.current.as_mut() {
                    reset_params(message);
                    message.meta_site = descend(message.meta_site, MetaLevel::Params, inside);
                }
                Role::Params
            }
            (true, Slot::Meta) => {
                if let Some(message) = self.current.as_mut() {
                    message.meta = Meta::default();
                    message.meta_site = descend(message.meta_site, MetaLevel::Meta, inside);
                }
                Role::Meta
            }
            (true, Slot::Error) => {
                self.record(slot, Scalar::Other);
                Role::Error
            }
            (true, Slot::Result) => {
                self.record(slot, Scalar::Other);
                Role::Result
            }
            _ => {
                self.record(slot, Scalar::Other);
                Role::Other
            }
        };
        self.stack.push(Frame { is_object, role });
        role
    }

    /// Called when a message, `params` or `_meta` object just opened closes right away: if it
    /// is the site (it is unless the site is unsafe), the site is empty. Only then, so the scan
    /// of members pays nothing for it.
    fn mark_empty(&mut self) {
        if let Some(Message {
            meta_site: MetaSite::Object { empty, .. },
            ..
        }) = self.current.as_mut()
        {
            *empty = true;
        }
    }

    /// Pops the innermost container; a closed message goes to the visitor.
    fn close(&mut self) {
        if let Some(Frame {
            role: Role::Message,
            ..
        }) = self.stack.pop()
        {
            if let Some(message) = self.current.take() {
                (self.visit)(message);
            }
        }
    }

    /// Reads `"key" :` at `pos` (after optional whitespace) inside an object of `role`; returns
    /// the position of the value and the slot it fills.
    fn key(&self, pos: usize, role: Role) -> Option<(usize, Slot)> {
        let pos = json::skip_whitespace(self.bytes, pos);
        if self.bytes.get(pos) != Some(&b'"') {
            return None;
        }
        let token = json::string(self.bytes, pos)?;
        let slot = if role == Role::Other {
            Slot::Ignored
        } else {
            self.slot_for_key(role, token)
        };
        let colon = json::skip_whitespace(self.bytes, token.end + 1);
        if self.bytes.get(colon) != Some(&b':') {
            return None;
        }
        Some((colon + 1, slot))
    }

    fn slot_for_key(&self, role: Role, token: StringToken) -> Slot {
        let decoded;
        let key: &[u8] = if token.escaped {
            match json::decode(self.bytes, token) {
                Some(text) => {
                    decoded = text;
                    decoded.as_bytes()
                }
                None => return Slot::Ignored,
            }
        } else {
            self.bytes.get(token.start..token.end).unwrap_or_default()
        };
        match (role, key) {
            (Role::Message, b"jsonrpc") => Slot::JsonRpc,
            (Role::Message, b"method") => Slot::Method,
            (Role::Message, b"id") => Slot::Id,
            (Role::Message, b"params") => Slot::Params,
            (Role::Message, b"error") => Slot::Error,
            (Role::Message, b"result") => Slot::Result,
            (Role::Error, b"code") => Slot::ErrorCode,
            (Role::Error, b"message") => Slot::ErrorMessage,
            (Role::Result, b"isError") => Slot::IsError,
            (Role::Params, b"name") => Slot::Name,
            (Role::Params, b"uri") => Slot::Uri,
            (Role::Params, b"_meta") => Slot::Meta,
            (Role::Meta, b"traceparent") => Slot::TraceParent,
            (Role::Meta, b"tracestate") => Slot::TraceState,
            (Role::Meta, b"baggage") => Slot::Baggage,
            (Role::Meta, b"io.modelcontextprotocol/protocolVersion") => Slot::ProtocolVersion,
            _ => Slot::Ignored,
        }
    }

    /// Reads a string, number or literal at `pos`.
    fn scalar(&self, pos: usize) -> Option<(usize, Scalar)> {
        match *self.bytes.get(pos)? {
            b'"' => {
                let token = json::string(self.bytes, pos)?;
                Some((token.end + 1, Scalar::String(token)))
            }
            b't' => Some((json::literal(self.bytes, pos, b"true")?, Scalar::True)),
            b'f' => Some((json::literal(self.bytes, pos, b"false")?, Scalar::Other)),
            b'n' => Some((json::literal(self.bytes, pos, b"null")?, Scalar::Null)),
            _ => {
                let end = json::number(self.bytes, pos)?;
                Some((end, Scalar::Number(pos, end)))
            }
        }
    }

    /// Stores a value read for `slot` in the current message. Containers arrive as
    /// `Scalar::Other`, which clears the field (a later duplicate replaces an earlier one).
    fn record(&mut self, slot: Slot, value: Scalar) {
        if matches!(slot, Slot::Ignored | Slot::Message) {
            return;
        }
        let bytes = self.bytes;
        let decode = |value: &Scalar| match value {
            Scalar::String(token) => json::decode(bytes, *token),
            _ => None,
        };
        let Some(message) = self.current.as_mut() else {
            return;
        };
        match slot {
            Slot::JsonRpc => message.jsonrpc = decode(&value),
            Slot::Method => message.method = decode(&value),
            Slot::Name => message.name = decode(&value),
            Slot::Uri => message.uri = decode(&value),
            Slot::Id => {
                message.id = match value {
                    Scalar::String(token) => json::decode(bytes, token).map(RequestId::String),
                    Scalar::Number(start, end) => {
                        ascii(bytes, start, end).map(|number| RequestId::Number(number.to_owned()))
                    }
                    Scalar::Null => Some(RequestId::Null),
                    Scalar::True | Scalar::Other => None,
                }
            }
            // Not an object (objects are handled in `open`): nowhere to insert.
            Slot::Params => {
                reset_params(message);
                message.meta_site = MetaSite::Unsafe;
            }
            Slot::Meta => {
                message.meta = Meta {
                    not_an_object: true,
                    ..Meta::default()
                };
                message.meta_site = MetaSite::Unsafe;
            }
            Slot::TraceParent => message.meta.traceparent = Some(meta_value(bytes, &value)),
            Slot::TraceState => message.meta.tracestate = Some(meta_value(bytes, &value)),
            Slot::Baggage => message.meta.baggage = Some(meta_value(bytes, &value)),
            Slot::ProtocolVersion => message.meta.protocol_version = decode(&value),
            Slot::Error => {
                message.error = Some(ResponseError::default());
            }
            Slot::ErrorCode => {
                // Any later `code` replaces an earlier one, a non-number with nothing.
                if let Some(error) = &mut message.error {
                    error.code = match value {
                        Scalar::Number(start, end) => ascii(bytes, start, end).map(str::to_owned),
                        _ => None,
                    };
                }
            }
            Slot::ErrorMessage => {
                if let Some(error) = &mut message.error {
                    error.message = decode(&value);
                }
            }
            Slot::Result => {
                message.result = Some(ResponseResult::default());
            }
            Slot::IsError => {
                if let Some(result) = &mut message.result {
                    result.is_error = matches!(value, Scalar::True);
                }
            }
            Slot::Ignored | Slot::Message => {}
        }
    }
}

/// Forgets what an earlier `params` recorded (the last duplicate wins).
fn reset_params(message: &mut Message) {
    message.name = None;
    message.uri = None;
    message.meta = Meta::default();
}

/// The site after an object opens at `level` (`Params` or `_meta`): it is the new site only if
/// the site so far is its parent, i.e. this is the first copy of its key. A second `params` or
/// `_meta` finds the site at its own level or deeper (or already unsafe) and makes it unsafe
/// for good.
fn descend(site: MetaSite, level: MetaLevel, at: usize) -> MetaSite {
    let parent = match level {
        MetaLevel::Meta => MetaLevel::Params,
        MetaLevel::Params | MetaLevel::Message => MetaLevel::Message,
    };
    match site {
        MetaSite::Object { level: current, .. } if current == parent && level != parent => {
            MetaSite::Object {
                level,
                at,
                empty: false,
            }
        }
        _ => MetaSite::Unsafe,
    }
}

/// The text of a number token (always ASCII, so the conversion cannot fail in practice).
fn ascii(bytes: &[u8], start: usize, end: usize) -> Option<&str> {
    std::str::from_utf8(bytes.get(start..end)?).ok()
}

fn meta_value(bytes: &[u8], value: &Scalar) -> MetaValue {
    let Scalar::String(token) = value else {
        return MetaValue::Unusable;
    };
    match json::decode(bytes, *token) {
        Some(decoded) => MetaValue::Text(MetaText {
            value: decoded,
            raw: token.start..token.end,
            escaped: token.escaped,
        }),
        None => MetaValue::Unusable,
    }
}

/// The slot of an array element: batch elements are messages, anything else is ignored.
fn element_slot(role: Role) -> Slot {
    if role == Role::Batch {
        Slot::Message
    } else {
        Slot::Ignored
    }
}
