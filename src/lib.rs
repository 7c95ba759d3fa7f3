//! crisp-gateway: the whole Crisp REST API v1 behind one workspace key.

pub mod accounts; // a workspace's Crisp accounts: decrypted, cached, picked per call
pub mod admin; // admin use cases shared by the CLI, demo and tests
pub mod app; // the shared state of a running gateway
pub mod audit; // the audit trail and key last-use, written in batches
pub mod auth; // bearer keys → principals (the auth layer, key format, verified-key cache)
pub mod call; // one action call: caller's JSON → Crisp request → result envelope
pub mod catalog; // the 237 actions, compiled from one embedded data file
pub mod checks; // account checks in plain words, for `account test` and `doctor`
pub mod cli; // the command line: serve, demo, sandbox, admin commands
pub mod clock; // unix-second times and durations
pub mod config; // typed configuration: defaults → TOML file → environment
pub mod docs; // OpenAPI, Postman and llms.txt, generated from the catalog
pub mod error; // the one API error type and its JSON envelope
pub mod forward; // the typed Crisp client and the mapping of its answers
pub mod http; // router, middleware stack, handlers
pub mod limits; // rate shaping per key and per Crisp account
pub mod mcp; // the MCP endpoint: catalog actions as tools over streamable HTTP
pub mod metrics; // Prometheus metrics
pub mod sandbox; // a local stand-in for Crisp
pub mod secret; // secret types and encryption at rest
pub mod store; // storage trait with SQLite and Postgres engines
pub mod telemetry; // logging setup
pub mod text; // edit distance and "did you mean"
