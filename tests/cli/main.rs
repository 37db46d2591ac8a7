//! Tests of the `wearhouse` binary as people run it: subcommands, their output and exit codes,
//! the private cluster (`db …`), and the README's recipes end to end. See tests/README.md.

#[path = "../common/mod.rs"]
mod common;
#[path = "../kafka_support/mod.rs"]
mod kafka_support;

mod cli;
mod crash;
mod db_security;
mod recipes;
mod webhook_restart;
