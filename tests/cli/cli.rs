//! The command line as a new user meets it: setup failures end in one sentence, logs to a
//! pipe carry no colour codes, a second `migrate` prints no Postgres NOTICE, every setting in
//! `wearhouse --help` has a description and a row in README.md, and the simulator's help
//! names what it simulates and only the options it uses.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::{bin, free_port, TestDb};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("WEARHOUSE_HOME")
        .env_remove("WEARHOUSE_PG_PORT")
        .env_remove("WEARHOUSE_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run wearhouse")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wearhouse-cli-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A failing cluster setup (initdb refuses a data directory that is not empty) ends in one
/// line saying what failed: no backtrace even with RUST_BACKTRACE set, no multi-line tool
/// output, no colour codes.
#[test]
fn setup_failure_ends_in_one_sentence() {
    let home = temp_dir("setup-failure");
    std::fs::create_dir_all(home.join("pgdata")).unwrap();
    std::fs::write(home.join("pgdata/stray-file"), "not a cluster").unwrap();
    let port = free_port().to_string();
    let out = run(
        &["migrate"],
        &[
            ("WEARHOUSE_HOME", home.to_str().unwrap()),
            ("WEARHOUSE_PG_PORT", &port),
            ("RUST_BACKTRACE", "1"),
            ("RUST_LIB_BACKTRACE", "1"),
        ],
    );
    let err = stderr(&out);
    let _ = std::fs::remove_dir_all(&home);
    assert!(!out.status.success(), "migrate succeeded: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("initdb failed") && last.contains("not empty"),
        "last line is not the one clear sentence: {err}"
    );
    // Every other line is a log line (timestamped), none is part of the error.
    for l in &lines[..lines.len() - 1] {
        assert!(
            l.starts_with(|c: char| c.is_ascii_digit()),
            "stray output line {l:?} in {err}"
        );
    }
    for bad in ["backtrace", "panicked", "Caused by", "Stack", "\x1b["] {
        assert!(!err.contains(bad), "{bad:?} in {err}");
    }
}

/// As root, PostgreSQL runs as `postgres`; a WEARHOUSE_HOME that user cannot enter (a clone in
/// a 0700 home folder) gets its cluster under /var/lib/postgresql/wearhouse, said by
/// `db status`, and initdb succeeds there.
#[test]
fn cluster_of_an_unreachable_home_lives_where_postgres_can_reach_it() {
    let private = temp_dir("private-home");
    let home = private.join("clone/.wearhouse");
    let port = free_port().to_string();
    let env = [
        ("WEARHOUSE_HOME", home.to_str().unwrap()),
        ("WEARHOUSE_PG_PORT", port.as_str()),
        ("WEARHOUSE_LOG", "info"),
    ];
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let setup = run(&["db", "setup"], &env);
    let status = String::from_utf8_lossy(&run(&["db", "status"], &env).stdout).into_owned();
    let data = status
        .lines()
        .find_map(|l| l.strip_prefix("data directory: "))
        .unwrap_or_else(|| panic!("no data directory in {status}"))
        .split(" (")
        .next()
        .unwrap()
        .to_string();
    let initialized = Path::new(&data).join("PG_VERSION").exists();
    if data.starts_with("/var/lib/postgresql/wearhouse/") {
        let _ = std::fs::remove_dir_all(Path::new(&data).parent().unwrap());
    }
    let _ = std::fs::remove_dir_all(&private);
    assert!(
        setup.status.success(),
        "db setup failed: {}",
        stderr(&setup)
    );
    assert!(initialized, "no cluster in {data}: {status}");
    if is_root {
        assert!(
            data.starts_with("/var/lib/postgresql/wearhouse/")
                && status.contains("outside home: the postgres user cannot enter it"),
            "{status}"
        );
        assert!(
            stderr(&setup).contains("cannot enter WEARHOUSE_HOME"),
            "setup does not say where the data went: {}",
            stderr(&setup)
        );
    } else {
        assert!(data.starts_with(home.to_str().unwrap()), "{status}");
    }
}

/// Logs written to a pipe carry no ANSI colour codes.
#[tokio::test]
async fn no_colour_codes_when_logging_to_a_pipe() {
    let db = TestDb::new().await;
    let out = run(
        &["migrate"],
        &[("DATABASE_URL", &db.url), ("WEARHOUSE_LOG", "info")],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("migration applied"), "no log lines: {err}");
    assert!(
        !err.contains('\x1b'),
        "colour codes in a piped log: {err:?}"
    );
}

/// Commands on an existing database print no Postgres NOTICE.
#[tokio::test]
async fn second_migrate_prints_no_notice() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str()), ("WEARHOUSE_LOG", "info")];
    let first = run(&["migrate"], &env);
    assert!(first.status.success(), "{}", stderr(&first));
    for args in [
        &["migrate"][..],
        &["projections", "status"][..],
        &["raw", "list"][..],
    ] {
        let out = run(args, &env);
        let err = stderr(&out);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("NOTICE"), "{args:?} printed a NOTICE: {err}");
    }
}

/// The `Environment` section of `wearhouse --help`: (variable, description) pairs.
fn help_settings() -> Vec<(String, String)> {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let section = help
        .split_once("Environment")
        .unwrap_or_else(|| panic!("no Environment section in --help:\n{help}"))
        .1;
    let lines: Vec<&str> = section.lines().skip(1).collect();
    let mut out = vec![];
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("  ") && !l.starts_with("    ") && l.contains("default:") {
            let name = l.split_whitespace().next().unwrap().to_string();
            let desc = lines.get(i + 1).map(|d| d.trim()).unwrap_or("").to_string();
            out.push((name, desc));
        }
    }
    assert!(out.len() > 40, "too few settings parsed: {out:?}");
    out
}

#[test]
fn every_setting_in_help_has_a_description() {
    let missing: Vec<String> = help_settings()
        .into_iter()
        .filter(|(_, d)| d.split_whitespace().count() < 3)
        .map(|(n, _)| n)
        .collect();
    assert!(
        missing.is_empty(),
        "settings without a description: {missing:?}"
    );
}

/// README.md's configuration table names every variable the binary reads, and nothing else.
#[test]
fn readme_lists_every_setting() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split_once("## Configuration")
        .unwrap()
        .1
        .split_once("\n## ")
        .unwrap()
        .0;
    let in_readme: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let names = l.split(" | ").next().unwrap().to_string();
            names
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let in_help: BTreeSet<String> = help_settings().into_iter().map(|(n, _)| n).collect();
    let missing: Vec<&String> = in_help.difference(&in_readme).collect();
    assert!(missing.is_empty(), "README's table lacks {missing:?}");
    let stale: Vec<&String> = in_readme.difference(&in_help).collect();
    assert!(
        stale.is_empty(),
        "README lists settings the binary does not read: {stale:?}"
    );
}

/// `simulate providers --help` says it simulates Garmin too and hides the database and Kafka
/// settings it does not use.
#[test]
fn simulator_help_names_garmin_and_only_its_options() {
    let out = run(&["simulate", "providers", "--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for want in [
        "Oura",
        "Whoop",
        "Garmin",
        "--port",
        "--client-secret",
        "--wearhouse-url",
    ] {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
    for unused in [
        "DATABASE_URL",
        "--database-url",
        "--pg-port",
        "--home",
        "--timescaledb",
        "--pool-size",
        "kafka",
        "KAFKA",
    ] {
        assert!(!help.contains(unused), "{unused} listed in:\n{help}");
    }
    // The hidden settings are still accepted (clap passes global flags down).
    let out = run(
        &[
            "simulate",
            "providers",
            "--port",
            "1",
            "--pool-size",
            "2",
            "--help",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A server whose address is taken says so in one line naming the address.
#[tokio::test]
async fn taken_address_is_one_clear_line() {
    let db = TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let home = temp_dir("bind");
    let out = run(
        &["serve"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("WEARHOUSE_HOME", home.to_str().unwrap()),
            ("WEARHOUSE_BIND", addr.as_str()),
            ("WEARHOUSE_LOG", "warn"),
            ("WEARHOUSE_ADMIN_EMAIL", "a@b.c"),
            ("WEARHOUSE_ADMIN_PASSWORD", "a-long-pass-phrase-1"),
            ("RUST_BACKTRACE", "1"),
        ],
    );
    let _ = std::fs::remove_dir_all(&home);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(
        err.trim_end().lines().last().unwrap(),
        format!("error: cannot serve HTTP on {addr}: Address already in use (os error 98)"),
        "{err}"
    );
    assert!(!err.contains("backtrace"), "{err}");
}
