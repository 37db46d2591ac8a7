//! In-process tests: the platform started in this process for each test (its own database,
//! a port the kernel chose) and driven over HTTP, and the library parts beneath it (event log,
//! projection runner) against the test cluster. A test that needs a process of its own (a
//! signal, an exit status, its memory, its log) starts the binary with
//! `Server::start_process` / `Server::start_logging`. See tests/README.md.

#[path = "../common/mod.rs"]
mod common;

mod apple_import;
mod archival;
mod audit;
mod auth_api;
mod cloud_env;
mod contract_api;
mod event_log;
mod events_api;
mod fitbit;
mod hostile_inputs;
mod import_limits;
mod jobs;
mod menstrual_cycles;
mod oauth_api;
mod operators;
mod outgoing_webhooks;
mod passthrough;
mod projection_runner;
mod providers_api;
mod read_contract;
mod renormalize;
mod scores_api;
mod sdk_auth;
mod sdk_sync;
mod security;
mod seed;
mod strava;
mod summaries_api;
mod team;
mod timeseries_api;
mod ultrahuman;
mod users_api;
mod webhooks_flow;
