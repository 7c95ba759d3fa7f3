//! One timer per call: a step bounded by a deadline of its own (a Crisp attempt) notes it
//! while it waits, and the request's outer deadline arms no timer of its own meanwhile when
//! the step's comes first.
//!
//! A call spends nearly all its time waiting on Crisp, inside the attempt's time limit, which
//! always ends before the request's deadline: two timers in the runtime's wheel per call,
//! registered and cleared under its lock, where one does the work. The outer guard still arms
//! its timer the moment it waits on anything not so bounded (a slow body, the database), and
//! the deadline it enforces is the same instant either way.

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Timeout, error::Elapsed};

thread_local! {
    /// The earliest deadline of a [`Within`] step left waiting during the current poll.
    static WAITING: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Whether a [`Within`] step was dropped unfinished during the current poll: what it noted
    /// no longer bounds the wait, as its timer is gone with it.
    static ABANDONED: Cell<bool> = const { Cell::new(false) };
}

/// The furthest a limit reaches, where `now + limit` would overflow (as tokio's own timeout).
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Runs `future` within `limit`, as `tokio::time::timeout` does, and notes its deadline for an
/// outer guard (see [`poll_noting`]) while it waits.
///
/// The step must be awaited by the task whose request it bounds (not polled with another
/// waker): the guard relies on the step's timer to wake that task.
pub fn within<F: Future>(limit: Duration, future: F) -> Within<F> {
    let now = Instant::now();
    let deadline = now.checked_add(limit).unwrap_or(now + FAR);
    Within {
        timeout: tokio::time::timeout_at(deadline, future),
        deadline,
        finished: false,
    }
}

pin_project_lite::pin_project! {
    /// A future bounded by its own deadline: [`within`].
    pub struct Within<F> {
        #[pin]
        timeout: Timeout<F>,
        deadline: Instant,
        finished: bool,
    }

    impl<F> PinnedDrop for Within<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped while waiting (a `select!` arm that lost): a note it left in this poll
            // must not keep the guard from arming its own timer.
            if !this.finished {
                ABANDONED.set(true);
            }
        }
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let poll = this.timeout.poll(cx);
        if poll.is_pending() {
            let deadline = *this.deadline;
            WAITING.set(Some(WAITING.get().map_or(deadline, |d| d.min(deadline))));
        } else {
            *this.finished = true;
        }
        poll
    }
}

/// Runs `poll` and returns what it returned with the earliest deadline of the [`Within`]
/// steps it left waiting, if any (none if a step was dropped unfinished meanwhile).
pub fn poll_noting<T>(poll: impl FnOnce() -> T) -> (T, Option<Instant>) {
    let (outer, outer_abandoned) = (WAITING.take(), ABANDONED.take());
    let out = poll();
    let noted = WAITING.replace(outer);
    let abandoned = ABANDONED.replace(outer_abandoned);
    (out, noted.filter(|_| !abandoned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_left_waiting_notes_its_deadline_and_a_finished_one_does_not() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let before = Instant::now();
        let mut waiting =
            std::pin::pin!(within(Duration::from_secs(5), std::future::pending::<()>()));
        let (poll, noted) = poll_noting(|| waiting.as_mut().poll(&mut cx));
        assert!(poll.is_pending());
        let noted = noted.expect("the waiting step's deadline");
        assert!(noted >= before + Duration::from_secs(5));
        assert!(noted <= Instant::now() + Duration::from_secs(5));

        let mut done = std::pin::pin!(within(Duration::from_secs(5), async { 7 }));
        let (poll, noted) = poll_noting(|| done.as_mut().poll(&mut cx));
        assert!(matches!(poll, Poll::Ready(Ok(7))));
        assert_eq!(noted, None);
        // Nothing leaks into the next poll.
        assert_eq!(poll_noting(|| ()).1, None);
    }

    #[tokio::test]
    async fn a_step_dropped_unfinished_leaves_no_deadline_behind() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let (_, noted) = poll_noting(|| {
            let mut step = Box::pin(within(Duration::from_secs(5), std::future::pending::<()>()));
            let poll = step.as_mut().poll(&mut cx);
            drop(step);
            poll
        });
        assert_eq!(noted, None);
        // A step that finished and was then dropped is no abandonment.
        let mut waiting = Box::pin(within(Duration::from_secs(5), std::future::pending::<()>()));
        let (_, noted) = poll_noting(|| {
            let mut done = Box::pin(within(Duration::from_secs(5), async {}));
            let _ = done.as_mut().poll(&mut cx);
            drop(done);
            waiting.as_mut().poll(&mut cx)
        });
        assert!(noted.is_some());
    }

    #[tokio::test]
    async fn within_ends_a_step_at_its_limit() {
        let late = within(Duration::from_millis(10), std::future::pending::<()>()).await;
        assert!(late.is_err());
    }
}
