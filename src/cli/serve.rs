//! `crisp-gateway serve`: bind, serve, and stop gracefully on SIGTERM/SIGINT.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::app::config::Config;
use crate::app::{App, AppState};
use crate::http::server::{self, ConnectionLimits};

use super::CliResult;

pub async fn serve(mut config: Config, listen: Option<SocketAddr>) -> CliResult {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let store = super::open(&config).await?;
    let addr = config.listen;
    let app = App::new(config, store)?;
    let listener = bind(addr).await?;
    // With port 0 the system picks the port: log the one actually bound, so it can be found.
    let addr = listener.local_addr().unwrap_or(addr);
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(%addr, upstream = %app.crisp.base(), threads, "crisp-gateway is listening");
    serve_on(app, listener).await
}

/// How many connections the kernel may hold for us before we accept them. tokio's default
/// (1024) overflows under a burst of connects, and each dropped SYN costs its client a
/// one-second retransmit; the kernel caps this at `net.core.somaxconn` anyway.
const LISTEN_BACKLOG: u32 = 4096;

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restarted gateway can listen at once.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e| {
        format!("cannot listen on {addr}: {e} (is another process using it? choose another with --listen or CRISP_GATEWAY_LISTEN)")
    })
}

/// Serves until a shutdown signal, then stops accepting, lets in-flight calls finish within
/// the grace period, gives back unspent quota, and writes the audit rows and usage still
/// buffered.
pub async fn serve_on(app: AppState, listener: TcpListener) -> CliResult {
    let upkeep = crate::telemetry::metrics::spawn_upkeep();
    let follower = app.follow_changes().await;
    let quota_returns = app.quotas.spawn_returns();
    let budgets = app.hold_budgets().await;
    let limits = ConnectionLimits::from_config(&app.config);
    tracing::info!(
        open_file_limit = server::open_file_limit(),
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        "connection limits"
    );
    let metrics = match app.config.metrics_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            let addr = listener.local_addr().unwrap_or(addr);
            let router = crate::http::metrics_router().with_state(app.clone());
            tracing::info!(%addr, "metrics listening");
            Some(tokio::spawn(server::serve(
                listener,
                router,
                limits,
                "metrics",
                std::future::pending(),
            )))
        }
        None => None,
    };
    let admin = match app.config.admin_listen {
        Some(addr) => {
            let listener = bind(addr).await.map_err(|e| {
                format!("{e}; the admin listener's address is CRISP_GATEWAY_ADMIN_LISTEN (empty turns it off)")
            })?;
            let addr = listener.local_addr().unwrap_or(addr);
            crate::console::warn_if_exposed(&addr);
            let router = crate::console::router(app.clone())?;
            tracing::info!(%addr, "admin API and console listening");
            Some(tokio::spawn(server::serve(
                listener,
                router,
                limits,
                "admin",
                std::future::pending(),
            )))
        }
        None => None,
    };
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let summaries = crate::telemetry::gate::spawn_summaries();
    let server = server::serve(
        listener,
        crate::http::service(app.clone()),
        limits,
        "main",
        async {
            shutdown_signal().await;
            let _ = stopping.send(());
        },
    );
    let grace = app.config.shutdown_grace;
    tokio::select! {
        () = server => {}
        () = async {
            let _ = stopped.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_s = grace.as_secs(), "calls still running after the grace period were cut off");
        }
    }
    follower.abort();
    quota_returns.abort();
    app.release_budgets(budgets).await;
    summaries.abort();
    crate::telemetry::gate::summarize();
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    for listener in [metrics, admin].into_iter().flatten() {
        listener.abort();
    }
    // In-flight calls are done: give back the quota this process holds for the other
    // replicas, and write the audit rows and usage counts left in the buffer.
    app.quotas.give_back(std::time::Duration::ZERO).await;
    app.auditor.flush(std::time::Duration::from_secs(10)).await;
    Ok(())
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
