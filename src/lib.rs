//! crisp-gateway: the whole Crisp REST API v1 behind one workspace key.
//!
//! Modules by layer, top to bottom; a module imports only from its own layer or below, and
//! `tests/it/layers.rs` checks it (see `architecture.md`).

// edge: speaks HTTP, MCP or the command line, and turns answers into responses
pub mod cli; // the command line: serve, demo, sandbox, admin commands
pub mod console; // the admin listener: the admin API (api/) and the web console (web/)
pub mod http; // the accept loop, router, middleware stack, handlers
pub mod mcp; // the MCP endpoint: catalog actions as tools over streamable HTTP
pub mod sandbox; // a local stand-in for Crisp, served over HTTP

// composition root: wires everything from configuration
pub mod app; // the shared state of a running gateway, and its typed configuration

// use cases: what a caller or an operator asks for, returned as values
pub mod admin; // admin use cases shared by the CLI, demo and tests, and account checks
pub mod call; // one action call: caller's JSON → Crisp request → result envelope
pub mod docs; // OpenAPI, Postman and llms.txt, generated from the catalog

// domain: the gateway's own rules
pub mod accounts; // a workspace's Crisp accounts: decrypted, cached, picked per call
pub mod audit; // the audit trail and key last-use, written in batches
pub mod auth; // bearer keys → principals (key format, verified-key cache, scopes)
pub mod catalog; // every action, compiled from one embedded data file
pub mod forward; // the typed Crisp client and the mapping of its answers
pub mod limits; // rate limits per key, per client's failed authentications, per Crisp account

// storage and kernels: know nothing of the layers above
pub mod error; // the one API error type and its JSON envelope
pub mod kernel; // clock, text, token bucket, the request-id header
pub mod secret; // secret types and encryption at rest
pub mod store; // storage trait with SQLite and Postgres engines
pub mod telemetry; // logging and Prometheus metrics
