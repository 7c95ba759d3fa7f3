//! `crisp-gateway serve`: bind, serve, and stop gracefully on SIGTERM/SIGINT.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::app::{App, AppState};
use crate::config::Config;

use super::CliResult;

pub async fn serve(mut config: Config, listen: Option<SocketAddr>) -> CliResult {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let store = super::open(&config).await?;
    let addr = config.listen;
    let app = App::new(config, store).map_err(|e| e.to_string())?;
    let listener = bind(addr).await?;
    tracing::info!(%addr, upstream = %app.crisp.base(), "crisp-gateway is listening");
    serve_on(app, listener).await
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr}: {e} (is another process using it? choose another with --listen or CRISP_GATEWAY_LISTEN)")
    })
}

/// Serves until a shutdown signal, then lets in-flight calls finish.
pub async fn serve_on(app: AppState, listener: TcpListener) -> CliResult {
    let follower = app.follow_changes().await;
    let router = crate::http::router(app);
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("the server failed: {e}"));
    follower.abort();
    result
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: no new connections, finishing in-flight calls");
}
