//! One attempt at a time at what many calls wait for (a connection to Crisp), with a failed
//! attempt's error shared among the calls that waited for it.

use std::time::Instant;

use tokio::sync::{Mutex, MutexGuard};

use super::transport::TransportError;

/// Calls that find no connection open pass one at a time; the first makes the attempt.
#[derive(Default)]
pub struct Turnstile {
    /// When and why the last attempt failed.
    failed: Mutex<Option<(Instant, TransportError)>>,
}

/// The right to make the attempt, held until it ends.
pub struct Turn<'a> {
    failed: MutexGuard<'a, Option<(Instant, TransportError)>>,
}

impl Turnstile {
    /// Waits for the attempt in progress, if any. If it failed after this call began
    /// waiting, its error is this call's too: trying again at once, each call behind the
    /// next, would keep the later ones waiting until their deadlines.
    pub async fn wait(&self) -> Result<Turn<'_>, TransportError> {
        let asked = Instant::now();
        let failed = self.failed.lock().await;
        match &*failed {
            Some((at, error)) if *at >= asked => Err(error.clone()),
            _ => Ok(Turn { failed }),
        }
    }
}

impl Turn<'_> {
    /// Notes the attempt's failure for the calls waiting behind it.
    pub fn failed(mut self, error: &TransportError) {
        *self.failed = Some((Instant::now(), error.clone()));
    }
}
