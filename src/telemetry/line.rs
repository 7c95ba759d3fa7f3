//! The plain-text log line used when standard error is not a terminal: what tracing's default
//! format prints, without colour codes and without its cost.
//!
//! At `info` every request writes one access line, so formatting it is on the hot path. The
//! default formatter quotes each string through `Debug`, wraps every field in `Option`/`Display`
//! adapters and paints styles even with colours off; on the benchmark that was about an eighth
//! of the gateway's instructions per request. This one writes
//! `2026-11-23T19:15:00.123456Z  INFO target: message key=value …` directly.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as one plain line each.
pub struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_timestamp(&mut writer)?;
        let meta = event.metadata();
        writer.write_str(match *meta.level() {
            Level::ERROR => " ERROR ",
            Level::WARN => "  WARN ",
            Level::INFO => "  INFO ",
            Level::DEBUG => " DEBUG ",
            Level::TRACE => " TRACE ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        writer.write_str(meta.target())?;
        writer.write_char(':')?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes an access line to the buffered sink, as `Line` would format the event.
pub(super) fn write_access(access: &super::Access<'_>) {
    thread_local! {
        static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
    }
    TEXT.with(|text| {
        let mut text = text.borrow_mut();
        text.clear();
        format_access(&mut text, access);
        super::sink::append(text.as_bytes());
    });
}

/// Pushes the parts of the line rather than going through `write!`, whose formatting
/// machinery cost more than the rest of the line together.
fn format_access(out: &mut String, access: &super::Access<'_>) {
    push_timestamp(out);
    out.push_str("  INFO ");
    out.push_str(super::ACCESS_TARGET);
    out.push_str(": request");
    // The request id (checked or made at the edge), the method (an HTTP token) and the
    // action (a catalog name) never need quotes.
    push_bare(out, " request_id=", access.request_id);
    push_bare(out, " method=", access.method);
    push_text(out, " path=", access.path);
    push_number(out, " status=", access.status.into());
    out.push_str(" duration_ms=");
    push_millis(out, access.duration_ms);
    if let Some(action) = access.action {
        push_bare(out, " action=", action);
    }
    for (field, value) in [
        (" key_id=", access.key_id),
        (" account_id=", access.account_id),
    ] {
        if let Some(value) = value {
            push_text(out, field, value);
        }
    }
    if let Some(status) = access.upstream_status {
        push_number(out, " upstream_status=", status.into());
    }
    if let Some(calls) = access.upstream_calls {
        push_number(out, " upstream_calls=", calls.into());
    }
    out.push('\n');
}

/// ` name=value`, `field` being ` name=`.
fn push_text(out: &mut String, field: &str, value: &str) {
    out.push_str(field);
    if is_bare(value) {
        out.push_str(value);
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// ` name=value` for a value that is bare by how it was made; checked in debug builds.
fn push_bare(out: &mut String, field: &str, value: &str) {
    debug_assert!(is_bare(value), "{value:?} needs quotes");
    out.push_str(field);
    out.push_str(value);
}

fn push_number(out: &mut String, field: &str, value: u64) {
    out.push_str(field);
    out.push_str(itoa::Buffer::new().format(value));
}

/// Writes each field as ` name=value`, the message first as ` message`.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) -> fmt::Result {
        self.writer.write_char(' ')?;
        if field.name() != "message" {
            self.writer.write_str(field.name())?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn record(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let plain = field.name() == "message" || is_bare(value);
        self.record(field, |w| {
            if plain {
                w.write_str(value)
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record(field, |w| write_millis(w, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record(field, |w| write!(w, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, |w| write!(w, "{value:?}"));
    }
}

/// Writes a float with three decimals. Durations are the only floats logged per request, and
/// `{:.3}` falls back to the slow exact (Dragon4) algorithm for most of them; rounding to an
/// integer count of thousandths first prints the same digits with integer formatting (but
/// for the last digit of values within a rounding error of a tie, e.g. 1.0005).
fn write_millis(w: &mut Writer<'_>, value: f64) -> fmt::Result {
    let mut text = String::new();
    push_millis(&mut text, value);
    w.write_str(&text)
}

fn push_millis(out: &mut String, value: f64) {
    if !value.is_finite() || value.abs() >= 1e15 {
        let _ = write!(out, "{value:.3}");
        return;
    }
    let thousandths = (value.abs() * 1000.0).round() as u64;
    if value.is_sign_negative() {
        out.push('-');
    }
    out.push_str(itoa::Buffer::new().format(thousandths / 1000));
    out.push('.');
    push_padded(out, thousandths % 1000, 3);
}

/// `value` in exactly `digits` decimal digits, zeros in front (`value` < 10^`digits`).
fn push_padded(out: &mut String, value: u64, digits: usize) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(value);
    for _ in text.len()..digits {
        out.push('0');
    }
    out.push_str(text);
}

/// Whether a string can be written without quotes and still be read back as one token:
/// printable ASCII but `"`, `=` and `\`. Every access line's values are checked, so eight
/// bytes are tested at a time.
fn is_bare(value: &str) -> bool {
    let bytes = value.as_bytes();
    let (words, rest) = bytes.as_chunks::<8>();
    // The last bytes fill a word of their own, padded with a byte that is bare.
    let mut last = [b'a'; 8];
    last[..rest.len()].copy_from_slice(rest);
    let unbare = words.iter().fold(unbare_bytes(last), |found, word| {
        found | unbare_bytes(*word)
    });
    !bytes.is_empty() && unbare == 0
}

/// The high bit of each of eight bytes that may be outside `!`..=`~` or one of `"`, `=`, `\`:
/// none set exactly when all eight are bare (the tricks of "Bit Twiddling Hacks", exact for
/// whether some byte matches, not for which).
fn unbare_bytes(word: [u8; 8]) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let word = u64::from_le_bytes(word);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    // A byte below `!` (0x21); one at or above DEL (0x7f), or any byte not ASCII.
    let below = word.wrapping_sub(ONES * 0x21) & !word;
    let above = word.wrapping_add(ONES) | word;
    (below
        | above
        | zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'=')))
        | zero(word ^ (ONES * u64::from(b'\\'))))
        & HIGHS
}

/// RFC 3339 UTC with microseconds.
fn write_timestamp(writer: &mut Writer<'_>) -> fmt::Result {
    let mut text = String::new();
    push_timestamp(&mut text);
    writer.write_str(&text)
}

/// RFC 3339 UTC with microseconds. The part up to the seconds is formatted once per second.
fn push_timestamp(out: &mut String) {
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    // The clock read as seconds and microseconds: a calendar date is worked out only when
    // the second changes.
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let now = time::OffsetDateTime::from_unix_timestamp(second)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let (date, clock) = (now.date(), now.time());
            cached.1.clear();
            let _ = write!(
                cached.1,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                date.year(),
                u8::from(date.month()),
                date.day(),
                clock.hour(),
                clock.minute(),
                clock.second()
            );
            cached.0 = second;
        }
        out.push_str(&cached.1);
    });
    out.push('.');
    push_padded(out, since_epoch.subsec_micros().into(), 6);
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `log` writes through `Line`.
    fn logged(log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .event_format(Line)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8")
    }

    #[test]
    fn lines_carry_time_level_target_message_and_fields() {
        let text = logged(|| {
            let none: Option<&str> = None;
            tracing::info!(
                request_id = %"3f1c",
                path = "/api/crisp/list/conversations",
                status = 200u16,
                duration_ms = 1.23456,
                quoted = "two words",
                absent = none,
                ok = true,
                "request"
            );
            tracing::info_span!("mcp", session = 7).in_scope(|| tracing::warn!(n = -3, "inside"));
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (stamp, rest) = lines[0].split_once(' ').expect("a timestamp");
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{stamp}"
        );
        assert_eq!(
            rest,
            " INFO crisp_gateway::telemetry::line::tests: request request_id=3f1c \
             path=/api/crisp/list/conversations status=200 duration_ms=1.235 \
             quoted=\"two words\" ok=true"
        );
        assert!(
            lines[1].ends_with(
                " WARN mcp{session=7}: crisp_gateway::telemetry::line::tests: inside n=-3"
            ),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn the_access_line_written_directly_is_the_line_of_the_event() {
        let lines = [
            crate::telemetry::Access {
                request_id: "3f1c-aa",
                method: "POST",
                path: "/api/crisp/list/conversations",
                status: 200,
                duration_ms: 12.3456,
                action: Some("list/conversations"),
                key_id: Some("AbCdEfGh12345678"),
                account_id: Some("main"),
                upstream_status: Some(200),
                upstream_calls: Some(3),
            },
            crate::telemetry::Access {
                request_id: "9e",
                method: "GET",
                path: "/odd path/\"quoted\"=",
                status: 404,
                duration_ms: 0.02,
                action: None,
                key_id: None,
                account_id: None,
                upstream_status: None,
                upstream_calls: None,
            },
        ];
        // Not initialised as plain lines here, so `access` dispatches the event.
        let text = logged(|| {
            for line in &lines {
                crate::telemetry::access(line);
            }
        });
        let from_events: Vec<&str> = text.lines().collect();
        assert_eq!(from_events.len(), 2, "{text}");
        for (line, event) in lines.iter().zip(from_events) {
            let mut direct = String::new();
            format_access(&mut direct, line);
            let (_, direct) = direct.trim_end().split_once(' ').expect("a timestamp");
            let (_, event) = event.split_once(' ').expect("a timestamp");
            assert_eq!(direct, event);
        }
    }

    #[test]
    fn millis_print_like_three_decimal_formatting() {
        for value in [
            0.0,
            0.0004,
            0.1234,
            1.23456,
            12.9999,
            999.9996,
            1234.5678,
            -3.25,
            86_400_000.125,
        ] {
            let mut ours = String::new();
            write_millis(&mut Writer::new(&mut ours), value).expect("write");
            assert_eq!(ours, format!("{value:.3}"), "{value}");
        }
    }

    #[test]
    fn values_are_bare_only_when_printable_and_free_of_quote_equals_backslash() {
        // Each byte at every place of a value longer than two words, so both the words and
        // the bytes after them are tested.
        for b in 0..=u8::MAX {
            let bare = b.is_ascii_graphic() && !matches!(b, b'"' | b'=' | b'\\');
            for at in 0..19 {
                let mut text = [b'a'; 19];
                text[at] = b;
                let value = String::from_utf8_lossy(&text);
                assert_eq!(is_bare(&value), bare, "byte {b:#04x} at {at}");
            }
        }
        assert!(is_bare("550e8400-e29b-41d4-a716-446655440000"));
        assert!(!is_bare("caf\u{e9}-au-lait"));
        assert!(!is_bare(""));
        assert!(!is_bare("two words"));
        assert!(is_bare("/api/crisp/list/conversations"));
    }
}
