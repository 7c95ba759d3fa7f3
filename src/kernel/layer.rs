//! A tower layer that runs an async function of its own around the service inside.
//!
//! Written out rather than `axum::middleware::from_fn`, which for every request clones its
//! state and boxes a clone of the inner service into a `Next`: this clones one `Arc` and boxes
//! one future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

/// What an [`Around`] layer does with each request around the service `S` inside: anything
/// before and after running it.
///
/// It takes its own `Arc` so that the future it returns can be boxed as it is: an `async`
/// wrapper around it would keep the request and the inner service twice for as long as the
/// request runs, and a call held open holds its whole chain of futures.
pub trait Wrap<S, Request>: Send + Sync + 'static {
    type Response;

    fn wrap(
        self: Arc<Self>,
        request: Request,
        inner: S,
    ) -> impl Future<Output = Self::Response> + Send + 'static;
}

/// The layer that applies a [`Wrap`] to every request.
pub struct Around<W> {
    wrap: Arc<W>,
}

impl<W> Around<W> {
    pub fn new(wrap: W) -> Self {
        Self {
            wrap: Arc::new(wrap),
        }
    }
}

impl<W> Clone for Around<W> {
    fn clone(&self) -> Self {
        Self {
            wrap: Arc::clone(&self.wrap),
        }
    }
}

impl<W, S> Layer<S> for Around<W> {
    type Service = AroundService<W, S>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            wrap: Arc::clone(&self.wrap),
            inner,
        }
    }
}

/// An [`Around`] layer's service.
pub struct AroundService<W, S> {
    wrap: Arc<W>,
    inner: S,
}

impl<W, S: Clone> Clone for AroundService<W, S> {
    fn clone(&self) -> Self {
        Self {
            wrap: Arc::clone(&self.wrap),
            inner: self.inner.clone(),
        }
    }
}

impl<W, S, Request> Service<Request> for AroundService<W, S>
where
    W: Wrap<S, Request>,
    W::Response: 'static,
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    Request: Send + 'static,
{
    type Response = W::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<W::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service polled ready goes with this request; a fresh clone waits for the next.
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(Infallibly {
            future: W::wrap(Arc::clone(&self.wrap), request, ready),
        })
    }
}

pin_project_lite::pin_project! {
    /// A future's output as the `Ok` a tower service returns, without an `async` block (which
    /// would keep the future both as a capture and as the value it awaits).
    struct Infallibly<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Infallibly<F> {
    type Output = Result<F::Output, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().future.poll(cx).map(Ok)
    }
}
