# crisp-gateway: a multi-stage build. The builder compiles the release binary; the runtime
# image holds only that binary, CA certificates (to reach api.crisp.chat over TLS) and curl
# (for the health check), and runs as an unprivileged user.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migrations ./migrations
COPY src ./src
RUN cargo build --release --locked && strip target/release/crisp-gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/crisp-gateway --create-home crisp-gateway
COPY --from=builder /src/target/release/crisp-gateway /usr/local/bin/crisp-gateway
USER crisp-gateway
WORKDIR /var/lib/crisp-gateway
# Listen on every interface inside the container; publish or proxy the port from outside.
ENV CRISP_GATEWAY_LISTEN=0.0.0.0:8080 \
    CRISP_GATEWAY_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["crisp-gateway"]
CMD ["serve"]
