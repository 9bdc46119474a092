//! A `tracing_subscriber::Layer` that records into the flight recorder (feature `tracing`).
//!
//! - A span is a user task, from its creation to its close, with its parent span as parent.
//! - Each entry into a span (for an instrumented future: each poll) is a region named after the
//!   span, in that task.
//! - A span's fields, and fields recorded later, are a log of category `span` in its task.
//! - An event is a log whose category is its target and whose message is its level, message and
//!   fields, in the task of the current span.
//! - `follows_from` is a log of category `follows_from` naming the other span's task.
//!
//! Field text is bounded (512 bytes by default); cut text ends with `…[truncated]`. The layer
//! sees only what the subscriber's filters let through, and composes with other layers.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! tracing_subscriber::registry()
//!     .with(flight_recorder::tracing::FlightRecorderLayer::new())
//!     .init();
//! ```

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};

use flight_recorder_format::EventKind;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::annotate::next_user_task_id;
use crate::engine::global;
use crate::engine::STATE;
use crate::record::intern::intern_str;
use crate::record::state::State;

/// The default bound on the text of one span's or event's fields.
pub const DEFAULT_MAX_FIELDS_LEN: usize = 512;

const TRUNCATED: &str = "…[truncated]";

/// The recorder's view of a span, kept in the span's extensions.
struct SpanTask {
    id: u64,
    name: u64,
}

/// Records spans, events and their fields; see the module documentation.
#[derive(Clone, Debug)]
pub struct FlightRecorderLayer {
    max_fields_len: usize,
}

impl Default for FlightRecorderLayer {
    fn default() -> Self {
        FlightRecorderLayer::new()
    }
}

impl FlightRecorderLayer {
    /// A layer with the default field bound.
    pub fn new() -> FlightRecorderLayer {
        FlightRecorderLayer {
            max_fields_len: DEFAULT_MAX_FIELDS_LEN,
        }
    }

    /// Bounds the text of one span's or event's fields to `max` bytes.
    pub fn max_fields_len(mut self, max: usize) -> FlightRecorderLayer {
        self.max_fields_len = max;
        self
    }
}

#[inline(always)]
fn recording() -> Option<State> {
    let state = STATE.load();
    state.enabled().then_some(state)
}

/// Collects fields as `name=value` pairs into a reused buffer, up to a bound.
struct FieldText<'a> {
    text: &'a mut String,
    max: usize,
    truncated: bool,
}

impl<'a> FieldText<'a> {
    fn new(text: &'a mut String, max: usize, prefix: &str) -> FieldText<'a> {
        text.clear();
        let mut fields = FieldText {
            text,
            max,
            truncated: false,
        };
        fields.push(prefix);
        fields
    }

    fn separate(&mut self) {
        if !self.text.is_empty() {
            self.push(" ");
        }
    }

    fn push(&mut self, part: &str) {
        let _ = self.write_str(part);
    }
}

impl fmt::Write for FieldText<'_> {
    fn write_str(&mut self, part: &str) -> fmt::Result {
        if self.truncated {
            return Err(fmt::Error);
        }
        if self.text.len() + part.len() <= self.max {
            self.text.push_str(part);
            return Ok(());
        }
        let mut cut = self.max.saturating_sub(self.text.len());
        while cut > 0 && !part.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&part[..cut]);
        self.text.push_str(TRUNCATED);
        self.truncated = true;
        Err(fmt::Error)
    }
}

impl Visit for FieldText<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.separate();
        if field.name() != "message" {
            self.push(field.name());
            self.push("=");
        }
        self.push(value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.separate();
        if field.name() != "message" {
            self.push(field.name());
            self.push("=");
        }
        let _ = write!(self, "{value:?}");
    }
}

thread_local! {
    /// The text buffer of field formatting, reused so that an event allocates nothing.
    static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
    /// The spans this thread is in and its memo of span ids: a plain `const` thread-local without
    /// a destructor, so that entering a span reaches it with no initialization check.
    static SPANS: ThreadSpans = const { ThreadSpans::new() };
}

/// How many nested spans a thread keeps (deeper ones are counted, not kept: their exits, and the
/// events while there are any, look their span up in the registry).
const ENTERED_SLOTS: usize = 32;

const SPAN_MEMO_SLOTS: usize = 64;

/// A span as a thread knows it: (span id, user task, name id).
type SpanEntry = (u64, u64, u64);

/// The spans this thread is in, innermost last, so that exits and events find their span without
/// a registry lookup; and a direct-mapped memo from span id to (user task, name), filled on a
/// span's first entry on this thread (the registry's ids carry a generation, so a reused slot
/// gets a new id).
struct ThreadSpans {
    /// The entered spans, innermost last: the first `len` slots.
    entered: [Cell<SpanEntry>; ENTERED_SLOTS],
    len: Cell<usize>,
    /// Spans entered while `entered` was full (or while there were such spans) and not exited.
    unkept: Cell<usize>,
    memo: [Cell<SpanEntry>; SPAN_MEMO_SLOTS],
}

impl ThreadSpans {
    const fn new() -> ThreadSpans {
        ThreadSpans {
            entered: [const { Cell::new((0, 0, 0)) }; ENTERED_SLOTS],
            len: Cell::new(0),
            unkept: Cell::new(0),
            memo: [const { Cell::new((0, 0, 0)) }; SPAN_MEMO_SLOTS],
        }
    }

    /// The memo's (user task, name) of span `key`.
    #[inline(always)]
    fn memo(&self, key: u64) -> Option<(u64, u64)> {
        let (cached, task, name) = self.memo[memo_slot(key)].get();
        (cached == key).then_some((task, name))
    }

    #[inline(always)]
    fn push(&self, entry: SpanEntry) {
        let len = self.len.get();
        match self.entered.get(len) {
            Some(slot) if self.unkept.get() == 0 => {
                slot.set(entry);
                self.len.set(len + 1);
            }
            _ => self.unkept.set(self.unkept.get() + 1),
        }
    }

    /// Takes the innermost entry of span `key` (spans may exit out of order); `None` when it is
    /// not kept.
    #[inline(always)]
    fn pop(&self, key: u64) -> Option<SpanEntry> {
        let len = self.len.get();
        if self.unkept.get() == 0 {
            if let Some(top) = len.checked_sub(1).and_then(|i| self.entered.get(i)) {
                let entry = top.get();
                if entry.0 == key {
                    self.len.set(len - 1);
                    return Some(entry);
                }
            }
        }
        self.pop_slow(key)
    }

    /// [`ThreadSpans::pop`] of a span that is not the innermost one kept.
    #[cold]
    #[inline(never)]
    fn pop_slow(&self, key: u64) -> Option<SpanEntry> {
        let len = self.len.get();
        let Some(at) = self.entered[..len].iter().rposition(|e| e.get().0 == key) else {
            // One of the spans not kept, if there are any.
            self.unkept.set(self.unkept.get().saturating_sub(1));
            return None;
        };
        let entry = self.entered[at].get();
        for i in at..len - 1 {
            self.entered[i].set(self.entered[i + 1].get());
        }
        self.len.set(len - 1);
        Some(entry)
    }

    /// The user task of the innermost span, or 0; `None` when that span may not be kept.
    fn current_task(&self) -> Option<u64> {
        if self.unkept.get() > 0 {
            return None;
        }
        Some(
            self.len
                .get()
                .checked_sub(1)
                .map_or(0, |i| self.entered[i].get().1),
        )
    }
}

/// Formats fields with `fill` into the thread's buffer and passes the text to `record`.
fn with_text(
    max: usize,
    prefix: &str,
    fill: impl FnOnce(&mut FieldText<'_>),
    record: impl FnOnce(&str),
) {
    let mut owned = String::new();
    let _ = TEXT.try_with(|buffer| {
        // A re-entrant call (a field's Debug that logs) gets a buffer of its own.
        let mut borrowed = buffer.try_borrow_mut();
        let text = match borrowed.as_deref_mut() {
            Ok(text) => text,
            Err(_) => &mut owned,
        };
        let mut fields = FieldText::new(text, max, prefix);
        fill(&mut fields);
        record(fields.text);
    });
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S> Layer<S> for FlightRecorderLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(state) = recording() else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span
            .parent()
            .and_then(|parent| parent.extensions().get::<SpanTask>().map(|t| t.id))
            .unwrap_or(0);
        let task = next_user_task_id();
        let name = intern_str(attrs.metadata().name());
        global::record(state, EventKind::UserTaskBegin, &[task, parent, name], &[]);
        if !attrs.fields().is_empty() {
            record_fields(state, task, self.max_fields_len, |fields| {
                attrs.record(fields)
            });
        }
        span.extensions_mut().insert(SpanTask { id: task, name });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(state) = recording() else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        let Some(task) = span.extensions().get::<SpanTask>().map(|t| t.id) else {
            return;
        };
        record_fields(state, task, self.max_fields_len, |fields| {
            values.record(fields)
        });
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let Some(state) = recording() else {
            return;
        };
        let task_of = |id: &Id| {
            ctx.span(id)
                .and_then(|span| span.extensions().get::<SpanTask>().map(|t| t.id))
        };
        if let (Some(task), Some(cause)) = (task_of(id), task_of(follows)) {
            let message = format!("follows user task {cause}");
            let category = intern_str("follows_from");
            global::record(state, EventKind::Log, &[category, task], message.as_bytes());
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(state) = recording() else {
            return;
        };
        let metadata = event.metadata();
        let task = if let Some(parent) = event.parent() {
            span_info(parent, &ctx).map_or(0, |(task, _)| task)
        } else if event.is_contextual() {
            current_task(&ctx)
        } else {
            0
        };
        let category = intern_str(metadata.target());
        with_text(
            self.max_fields_len,
            level_name(metadata.level()),
            |text| event.record(text),
            |text| global::record(state, EventKind::Log, &[category, task], text.as_bytes()),
        );
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(state) = recording() else {
            return;
        };
        let key = id.into_u64();
        let _ = SPANS.try_with(|spans| {
            let info = spans.memo(key).or_else(|| span_info(id, &ctx));
            if let Some((task, name)) = info {
                global::record(state, EventKind::RegionBegin, &[name, task], &[]);
                spans.push((key, task, name));
            }
        });
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        // Taken whether recording or not, so that a span entered before a recorder stopped
        // leaves the stack.
        let entry = SPANS
            .try_with(|spans| spans.pop(id.into_u64()))
            .ok()
            .flatten();
        let Some(state) = recording() else {
            return;
        };
        let info = entry
            .map(|(_, task, name)| (task, name))
            .or_else(|| span_info(id, &ctx));
        if let Some((task, name)) = info {
            global::record(state, EventKind::RegionEnd, &[name, task], &[]);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(task) = span.extensions().get::<SpanTask>().map(|t| t.id) else {
            return;
        };
        let key = id.into_u64();
        let _ = SPANS.try_with(|spans| {
            let slot = &spans.memo[memo_slot(key)];
            if slot.get().0 == key {
                slot.set((0, 0, 0));
            }
        });
        if let Some(state) = recording() {
            global::record(state, EventKind::UserTaskEnd, &[task], &[]);
        }
    }
}

#[inline(always)]
fn memo_slot(key: u64) -> usize {
    (key ^ key >> 7) as usize % SPAN_MEMO_SLOTS
}

/// A span's (user task, name), from this thread's memo or the span's extensions (then memoized).
#[cold]
#[inline(never)]
fn span_info<S>(id: &Id, ctx: &Context<'_, S>) -> Option<(u64, u64)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let key = id.into_u64();
    if let Ok(Some(info)) = SPANS.try_with(|spans| spans.memo(key)) {
        return Some(info);
    }
    let span = ctx.span(id)?;
    let info = span
        .extensions()
        .get::<SpanTask>()
        .map(|t| (t.id, t.name))?;
    let _ = SPANS.try_with(|spans| spans.memo[memo_slot(key)].set((key, info.0, info.1)));
    Some(info)
}

/// The user task of the innermost span this thread is in, or 0.
fn current_task<S>(ctx: &Context<'_, S>) -> u64
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match SPANS.try_with(ThreadSpans::current_task) {
        Ok(Some(task)) => task,
        // Nested deeper than the thread keeps: the registry knows the current span.
        _ => ctx
            .lookup_current()
            .and_then(|span| span_info(&span.id(), ctx))
            .map_or(0, |(task, _)| task),
    }
}

/// Records fields formatted by `fill` as a `span` log of `task`.
fn record_fields(state: State, task: u64, max: usize, fill: impl FnOnce(&mut FieldText<'_>)) {
    with_text(max, "", fill, |text| {
        if !text.is_empty() {
            let category = intern_str("span");
            global::record(state, EventKind::Log, &[category, task], text.as_bytes());
        }
    });
}
