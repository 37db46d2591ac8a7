//! wearhouse: a self-hosted health-data platform speaking the Open Wearables API.
//!
//! The binary (`src/main.rs`) only parses the command line; everything else lives here.

pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod coverage;
pub mod crashpoint;
pub mod crypto;
pub mod db;
pub mod import_cli;
pub mod ingest;
pub mod jobs;
pub mod providers;
pub mod serve;
pub mod services;
pub mod simulator;
pub mod store;
pub mod stream;
