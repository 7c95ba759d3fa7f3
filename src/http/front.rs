//! The main listener's service: every request passes the edge; a call to a catalog action
//! then goes straight to its handler, and anything else through the router.
//!
//! Action calls are nearly all the traffic and all of the calls held open. Through the router
//! each would cost a route lookup, a boxed service and a boxed future per layer, and an
//! allocation per request extension, kept for as long as Crisp takes to answer. Here it costs
//! one boxed future, with the router's layers for these calls written out: the body cap, the
//! key check, the deadline, and a panic turned into a 500.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};

use super::envelope::{self, Arrival, Edge};
use super::server::Responder;
use crate::app::AppState;
use crate::auth::KeyCheck;
use crate::error::ApiError;
use crate::kernel::deadline;

/// How long past `request_timeout` a request may run before the edge answers 504 itself. A call
/// waiting on Crisp is ended first by its own deadline, with what it knows of Crisp; a body
/// still arriving, or a wait on the database, is ended here.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The main listener's service (cheap to clone: one `Arc`).
#[derive(Clone)]
pub struct Front(Arc<Parts>);

struct Parts {
    app: AppState,
    edge: Edge,
    check: Arc<KeyCheck>,
    /// Everything that is not a call to an action, with the layers it needs.
    router: Router,
}

impl Front {
    pub fn new(app: AppState, edge: Edge, router: Router) -> Self {
        let check = Arc::new(app.key_check());
        Self(Arc::new(Parts {
            app,
            edge,
            check,
            router,
        }))
    }
}

type Answering = Pin<Box<dyn Future<Output = Response> + Send>>;

impl Responder for Front {
    type Future = Answering;

    fn respond(&self, request: Request, peer: SocketAddr) -> Answering {
        let parts = &self.0;
        let arrival = Arrival::of(&request);
        match arrival.target.callable() {
            Some(action) if request.method() == Method::POST => {
                Box::pin(parts.edge.run(request, arrival, |request, arrival| {
                    let deadline = arrival.started + parts.app.config.request_timeout;
                    Guarded::new(
                        (deadline + DEADLINE_MARGIN).into(),
                        super::actions::call(
                            &parts.app,
                            &parts.check,
                            request,
                            action,
                            arrival,
                            peer,
                        ),
                    )
                }))
            }
            _ => Box::pin(parts.edge.run(request, arrival, |mut request, arrival| {
                arrival.stamp(&mut request);
                parts.router.respond(request, peer)
            })),
        }
    }
}

pin_project_lite::pin_project! {
    /// An action call within its deadline (a 504 past it), a panic in it answered as a 500:
    /// what the router's timeout and catch-panic layers do for every other request.
    ///
    /// Its timer is armed only when the call waits on something not bounded by an earlier
    /// deadline of its own (`kernel::deadline`): while it waits on Crisp, the attempt's time
    /// limit is the call's one timer.
    struct Guarded<F> {
        #[pin]
        inner: F,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        deadline: tokio::time::Instant,
    }
}

impl<F> Guarded<F> {
    #[inline(always)]
    fn new(deadline: tokio::time::Instant, inner: F) -> Self {
        Self {
            inner,
            timer: None,
            deadline,
        }
    }
}

impl<F: Future<Output = Response>> Future for Guarded<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut this = self.project();
        let inner = this.inner;
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            deadline::poll_noting(|| inner.poll(cx))
        }));
        let waiting_until = match polled {
            Ok((Poll::Ready(response), _)) => return Poll::Ready(response),
            Ok((Poll::Pending, waiting_until)) => waiting_until,
            Err(panic) => return Poll::Ready(envelope::panic_response(panic)),
        };
        let deadline = *this.deadline;
        if this.timer.is_none() {
            if waiting_until.is_some_and(|until| until <= deadline) {
                return Poll::Pending;
            }
            this.timer.set(Some(tokio::time::sleep_until(deadline)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(ApiError::Timeout.into_response()),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorSlot;

    fn guarded<F: Future<Output = Response>>(after: Duration, inner: F) -> Guarded<F> {
        Guarded::new(tokio::time::Instant::now() + after, inner)
    }

    fn reason(response: &Response) -> &str {
        response
            .extensions()
            .get::<ErrorSlot>()
            .map_or("none", |slot| slot.0.reason())
    }

    #[tokio::test]
    async fn a_panic_in_a_call_is_a_500_and_the_deadline_a_504() {
        let panicked = guarded(Duration::from_secs(5), async {
            if std::hint::black_box(true) {
                panic!("a handler bug");
            }
            ().into_response()
        })
        .await;
        assert_eq!(panicked.status(), 500);
        assert_eq!(reason(&panicked), "internal_error");

        let late = guarded(Duration::from_millis(20), std::future::pending()).await;
        assert_eq!(late.status(), 504);
        assert_eq!(reason(&late), "gateway_timeout");

        let answered = guarded(Duration::from_secs(5), async { "ok".into_response() }).await;
        assert_eq!(answered.status(), 200);
        assert_eq!(reason(&answered), "none");
    }

    #[tokio::test]
    async fn a_step_with_its_own_earlier_limit_is_bounded_by_it_and_a_later_one_is_not() {
        // The step's own limit ends it first: its answer, not the guard's 504.
        let inner = async {
            match deadline::within(Duration::from_millis(20), std::future::pending::<()>()).await {
                Ok(()) => "finished".into_response(),
                Err(_) => (axum::http::StatusCode::IM_A_TEAPOT, "own limit").into_response(),
            }
        };
        let answer = guarded(Duration::from_secs(5), inner).await;
        assert_eq!(answer.status(), axum::http::StatusCode::IM_A_TEAPOT);

        // A step whose limit is later than the request's deadline does not hold the guard off.
        let started = std::time::Instant::now();
        let inner = async {
            let _ = deadline::within(Duration::from_secs(30), std::future::pending::<()>()).await;
            "finished".into_response()
        };
        let answer = guarded(Duration::from_millis(20), inner).await;
        assert_eq!(answer.status(), 504);
        assert_eq!(reason(&answer), "gateway_timeout");
        assert!(started.elapsed() < Duration::from_secs(5));

        // A wait on something with no limit of its own arms the guard's timer.
        let answer = guarded(Duration::from_millis(20), std::future::pending()).await;
        assert_eq!(answer.status(), 504);
    }
}
