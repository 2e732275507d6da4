//! The per-worker export queue of the own-span mode: finished spans wait here until a tick sends
//! them as one OTLP request. Everything is bounded, so a collector that is down, slow or hanging
//! costs at most the queue: spans beyond it are dropped and counted, never held, and requests
//! never wait for an export.

use crate::config::Export;
use crate::span::FinishedSpan;
use std::collections::VecDeque;

/// Most export requests in flight at once; a hanging collector holds at most these (each ends
/// by the export timeout).
pub const MAX_IN_FLIGHT: usize = 4;

/// Most bytes of forwarded server-span payloads (SEP-2448) waiting at once.
pub const MAX_FORWARD_BYTES: usize = 1024 * 1024;

/// One export request the queue wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// The gateway's spans, to encode as one trace export.
    Spans(Vec<FinishedSpan>),
    /// A server's own OTLP JSON body, forwarded as it came.
    Forwarded(Vec<u8>),
}

impl Batch {
    /// How many spans the counters count for it (a forwarded body counts as one).
    pub fn span_count(&self) -> u64 {
        match self {
            Batch::Spans(spans) => spans.len() as u64,
            Batch::Forwarded(_) => 1,
        }
    }
}

/// The queue of one worker.
#[derive(Debug)]
pub struct SpanQueue {
    spans: VecDeque<FinishedSpan>,
    forwarded: VecDeque<Vec<u8>>,
    forwarded_bytes: usize,
    capacity: usize,
    batch_size: usize,
    flush_interval_nanos: u64,
    last_flush_unix_nanos: u64,
    /// Export requests sent and not yet answered: (host token, spans counted, sent at).
    in_flight: Vec<(u32, u64, u64)>,
    /// How long an answer may take before its slot is given up (the export timeout plus
    /// slack): a host that never calls back for a failed request must not stop exports.
    answer_deadline_nanos: u64,
}

impl SpanQueue {
    pub fn new(export: &Export, now_unix_nanos: u64) -> SpanQueue {
        SpanQueue {
            spans: VecDeque::new(),
            forwarded: VecDeque::new(),
            forwarded_bytes: 0,
            capacity: export.queue_size,
            batch_size: export.batch_size.max(1),
            flush_interval_nanos: u64::from(export.flush_interval_ms) * 1_000_000,
            last_flush_unix_nanos: now_unix_nanos,
            in_flight: Vec::new(),
            answer_deadline_nanos: (u64::from(export.timeout_ms) + 1_000) * 1_000_000,
        }
    }

    /// Queues `spans`; returns how many were dropped because the queue is full.
    pub fn push(&mut self, spans: Vec<FinishedSpan>) -> u64 {
        let mut dropped = 0;
        for span in spans {
            if self.spans.len() >= self.capacity {
                dropped += 1;
            } else {
                self.spans.push_back(span);
            }
        }
        dropped
    }

    /// Queues a server's OTLP body to forward; `false` (dropped) when it does not fit.
    pub fn push_forwarded(&mut self, body: Vec<u8>) -> bool {
        if self.forwarded_bytes + body.len() > MAX_FORWARD_BYTES {
            return false;
        }
        self.forwarded_bytes += body.len();
        self.forwarded.push_back(body);
        true
    }

    pub fn queued(&self) -> usize {
        self.spans.len()
    }

    /// The next export request to send at `now`, if one is due and a slot is free: a full
    /// batch at once, a partial one once the flush interval passed, forwarded bodies first come.
    pub fn next_batch(&mut self, now_unix_nanos: u64) -> Option<Batch> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        if let Some(body) = self.forwarded.pop_front() {
            self.forwarded_bytes -= body.len();
            return Some(Batch::Forwarded(body));
        }
        let interval_passed =
            now_unix_nanos.saturating_sub(self.last_flush_unix_nanos) >= self.flush_interval_nanos;
        if self.spans.is_empty() || (self.spans.len() < self.batch_size && !interval_passed) {
            return None;
        }
        self.last_flush_unix_nanos = now_unix_nanos;
        let take = self.spans.len().min(self.batch_size);
        Some(Batch::Spans(self.spans.drain(..take).collect()))
    }

    /// An export request is on its way under `token` since `now`.
    pub fn sent(&mut self, token: u32, spans: u64, now_unix_nanos: u64) {
        self.in_flight.push((token, spans, now_unix_nanos));
    }

    /// Gives up the requests whose answer is overdue; returns the spans they carried (failed).
    pub fn expire(&mut self, now_unix_nanos: u64) -> u64 {
        let deadline = self.answer_deadline_nanos;
        let mut expired = 0;
        self.in_flight.retain(|(_, spans, sent)| {
            let overdue = now_unix_nanos.saturating_sub(*sent) > deadline;
            if overdue {
                expired += spans;
            }
            !overdue
        });
        expired
    }

    /// The answer to `token` arrived (or the host gave up on it); returns the spans it carried,
    /// `None` for a token the queue did not send.
    pub fn answered(&mut self, token: u32) -> Option<u64> {
        let at = self.in_flight.iter().position(|(t, _, _)| *t == token)?;
        Some(self.in_flight.swap_remove(at).1)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// Whether an export answer means the collector took the spans: HTTP 2xx.
pub fn accepted(status: Option<&str>) -> bool {
    status
        .and_then(|s| s.parse::<u16>().ok())
        .is_some_and(|code| (200..300).contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::SpanKind;

    fn export(batch_size: usize, queue_size: usize) -> Export {
        Export {
            upstream: "otel".into(),
            authority: "otel".into(),
            path: "/v1/traces".into(),
            metrics_path: None,
            timeout_ms: 100,
            flush_interval_ms: 1_000,
            batch_size,
            queue_size,
            service_name: "gw".into(),
            resource_attributes: Vec::new(),
        }
    }

    fn span(n: u8) -> FinishedSpan {
        FinishedSpan {
            trace_id: [n; 16],
            span_id: [n; 8],
            parent_span_id: None,
            trace_state: None,
            name: "ping".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            attributes: Vec::new(),
            links: Vec::new(),
            error: None,
        }
    }

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_full_batch_goes_at_once_a_partial_one_after_the_interval() {
        let mut queue = SpanQueue::new(&export(2, 10), 0);
        queue.push(vec![span(1)]);
        assert_eq!(queue.next_batch(SECOND / 2), None);
        queue.push(vec![span(2), span(3)]);
        let Some(Batch::Spans(first)) = queue.next_batch(SECOND / 2) else {
            unreachable!("a full batch is due")
        };
        assert_eq!(first.len(), 2);
        assert_eq!(queue.next_batch(SECOND), None, "the interval restarted");
        assert_eq!(
            queue.next_batch(SECOND * 2).map(|b| b.span_count()),
            Some(1)
        );
    }

    #[test]
    fn the_queue_and_the_requests_in_flight_are_bounded() {
        let mut queue = SpanQueue::new(&export(1, 8), 0);
        assert_eq!(queue.push((0..10).map(span).collect()), 2);
        assert_eq!(queue.queued(), 8);
        for token in 0..MAX_IN_FLIGHT as u32 {
            let batch = queue.next_batch(0);
            assert!(batch.is_some());
            queue.sent(token, 1, 0);
        }
        assert_eq!(
            queue.next_batch(0),
            None,
            "no slot while the collector hangs"
        );
        assert_eq!(queue.answered(0), Some(1));
        assert_eq!(queue.answered(0), None);
        assert!(queue.next_batch(0).is_some());
    }

    #[test]
    fn a_request_the_host_never_answers_gives_its_slot_up_after_the_timeout() {
        let mut queue = SpanQueue::new(&export(1, 8), 0);
        queue.push((0..8).map(span).collect());
        for token in 0..MAX_IN_FLIGHT as u32 {
            assert!(queue.next_batch(0).is_some());
            queue.sent(token, 1, 0);
        }
        // timeout_ms 100 plus 1 s of slack.
        assert_eq!(queue.expire(1_100 * 1_000_000), 0);
        assert_eq!(queue.expire(1_101 * 1_000_000), MAX_IN_FLIGHT as u64);
        assert_eq!(queue.in_flight(), 0);
        assert!(queue.next_batch(1_101 * 1_000_000).is_some());
        assert_eq!(
            queue.answered(0),
            None,
            "a late answer counts nothing twice"
        );
    }

    #[test]
    fn forwarded_bodies_are_bounded_by_bytes() {
        let mut queue = SpanQueue::new(&export(1, 1), 0);
        assert!(queue.push_forwarded(vec![b'x'; MAX_FORWARD_BYTES]));
        assert!(!queue.push_forwarded(vec![b'y']));
        assert_eq!(
            queue.next_batch(0),
            Some(Batch::Forwarded(vec![b'x'; MAX_FORWARD_BYTES]))
        );
        assert!(queue.push_forwarded(vec![b'y']));
    }

    #[test]
    fn only_2xx_is_accepted() {
        assert!(accepted(Some("200")));
        assert!(accepted(Some("204")));
        assert!(!accepted(Some("500")));
        assert!(!accepted(Some("x")));
        assert!(!accepted(None));
    }
}
