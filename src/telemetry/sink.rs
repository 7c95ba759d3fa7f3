//! Standard error for log lines when it is a file or a pipe: lines are gathered in memory and
//! written in batches, at most `FLUSH_EVERY` after they were logged.
//!
//! At `info` every request logs one access line; writing each with its own `write(2)` was
//! about a tenth of the gateway's CPU per request on the benchmark. Warnings and errors are
//! written at once (with everything before them), a full buffer is written at once, `flush`
//! runs at exit and a panic writes the buffer before its message; an abort or a kill loses at
//! most the last `FLUSH_EVERY` of info lines.

use std::io::{self, Write};
use std::sync::LazyLock;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long an info line may wait in memory.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Written at once when this much is waiting.
const HIGH_WATER: usize = 32 * 1024;

static PENDING: LazyLock<Mutex<Vec<u8>>> = LazyLock::new(|| {
    // A plain thread, so logs are written even while no async runtime runs.
    let _ = std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(|| {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            }
        });
    Mutex::new(Vec::with_capacity(HIGH_WATER))
});

/// Writes what is waiting to standard error.
pub fn flush() {
    let mut pending = PENDING.lock();
    write_out(&mut pending);
}

/// Makes a panic write the waiting lines before its message, so the log keeps its order and
/// a panic that ends the process loses nothing. `try_lock`: a panic on a thread that holds the
/// buffer must not wait for itself.
pub fn flush_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(mut pending) = PENDING.try_lock() {
            write_out(&mut pending);
        }
        previous(info);
    }));
}

fn write_out(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        // Nothing sensible can be done if standard error is gone.
        let _ = io::stderr().lock().write_all(pending);
        pending.clear();
    }
}

/// Adds a whole info line to the buffer.
pub(super) fn append(line: &[u8]) {
    let mut pending = PENDING.lock();
    pending.extend_from_slice(line);
    if pending.len() >= HIGH_WATER {
        write_out(&mut pending);
    }
}

/// The `MakeWriter` for buffered standard error.
#[derive(Debug, Clone, Copy, Default)]
pub struct BufferedStderr;

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// One log line on its way into the buffer.
pub struct Line {
    urgent: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.urgent {
            flush();
        }
    }
}
