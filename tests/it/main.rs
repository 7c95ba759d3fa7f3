//! Integration tests: the real server on a real port, a real SQLite file or Postgres database,
//! and a fake Crisp over real HTTP. Each test runs on SQLite, and on Postgres too when
//! `TEST_DATABASE_URL` is set.

mod actions;
mod admin;
mod agents;
mod answer_size;
mod budgets;
mod cli;
mod connections;
mod docs;
mod file_modes;
mod helpers;
mod hostile;
mod idempotency;
mod keys;
mod layers;
mod mcp;
mod quotas;
mod reference;
mod requests;
mod resilience;
mod sandbox;
mod secrets;
mod storage;
mod tiers;
mod tls;
mod upstream;
mod websites;
