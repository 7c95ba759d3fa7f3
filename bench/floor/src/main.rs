//! The floor of the gateway's stack: the same front (axum on hyper on tokio, one thread per
//! core the process may use, a single-threaded scheduler on one) and the same upstream client
//! (hyper-util's pooled client) as crisp-gateway, with nothing of the gateway between them —
//! no key check, no catalog, no envelope, no limits, no log line, no metrics.
//!
//! It takes the gateway's read call (`POST /api/crisp/<action>` with `{"websiteID": "…"}`)
//! and answers with Crisp's body as it came. What it costs next to nginx is what any gateway
//! built on this stack pays before doing its own work.
//!
//! Usage: `stack-floor LISTEN_ADDR UPSTREAM_ADDR`, e.g. `127.0.0.1:18404 127.0.0.1:18401`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Upstream {
    client: Client<HttpConnector, Empty<Bytes>>,
    authority: String,
}

#[derive(serde::Deserialize)]
struct Args {
    #[serde(rename = "websiteID")]
    website_id: String,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: stack-floor LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let runtime = runtime.expect("a tokio runtime");
    runtime.block_on(async move {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // As the gateway's transport: idle connections are bounded by the calls in flight,
        // not by a count that would close (and reopen) a connection per call past it.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .build(http);
        let state = Arc::new(Upstream {
            client,
            authority: upstream,
        });
        let app = Router::new()
            .route("/api/crisp/{*action}", axum::routing::post(proxy))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .expect("the listen address is free");
        axum::serve(listener, app).await.expect("serving");
    });
}

async fn proxy(State(up): State<Arc<Upstream>>, request: Request) -> Response {
    let body = match axum::body::to_bytes(request.into_body(), 1 << 20).await {
        Ok(body) => body,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let Ok(args) = serde_json::from_slice::<Args>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let uri: Uri = match format!(
        "http://{}/v1/website/{}/conversations/1",
        up.authority, args.website_id
    )
    .parse()
    {
        Ok(uri) => uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let answer = match up.client.get(uri).await {
        Ok(answer) => answer,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    match answer.into_body().collect().await {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(body.to_bytes()),
        )
            .into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
