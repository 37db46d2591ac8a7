//! The settings of an in-process server, named as the environment variables `wearhouse serve`
//! reads and parsed by the same definitions (defaults, lists, booleans), from values only:
//! tests run in parallel threads of one process, so none of them may read or set the
//! process environment for another.

use std::collections::BTreeMap;
use std::sync::Once;

use clap::{CommandFactory, FromArgMatches, Parser};
use wearhouse::config::{DbConfig, ServeConfig};
use wearhouse_kafka::KafkaConfig;

#[derive(Parser)]
#[command(name = "wearhouse-test-server")]
pub struct Settings {
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub serve: ServeConfig,
}

/// Logging settings: the log of an in-process server goes to the test's subscriber (below).
const LOGGING: &[&str] = &["WEARHOUSE_LOG", "WEARHOUSE_LOG_FORMAT"];

/// Parses `pairs` (a later pair overrides an earlier one of the same name); panics on a name
/// `serve` does not read, so a misspelt setting cannot pass unnoticed.
pub fn parse(pairs: &[(String, String)]) -> Settings {
    let command = Settings::command();
    let flags: BTreeMap<String, String> = command
        .get_arguments()
        .filter_map(|a| {
            Some((
                a.get_env()?.to_str()?.to_string(),
                a.get_long()?.to_string(),
            ))
        })
        .collect();
    // clap reads each variable when the command is built: forget what it read.
    let command = command.mut_args(|a| a.env(None::<&str>));
    let mut values = BTreeMap::new();
    for (name, value) in pairs {
        if LOGGING.contains(&name.as_str()) {
            continue;
        }
        let flag = flags
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a setting of `wearhouse serve`"));
        values.insert(flag.clone(), value.clone());
    }
    let argv = std::iter::once("wearhouse-test-server".to_string()).chain(
        values
            .iter()
            .map(|(flag, value)| format!("--{flag}={value}")),
    );
    let matches = command
        .try_get_matches_from(argv)
        .unwrap_or_else(|e| panic!("test server settings: {e}"));
    Settings::from_arg_matches(&matches).unwrap_or_else(|e| panic!("test server settings: {e}"))
}

/// With WEARHOUSE_TEST_LOG set (a filter such as `debug`), the in-process servers log to the
/// test output; otherwise they log nowhere. Once per process: the subscriber is global.
pub fn init_test_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("WEARHOUSE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}
