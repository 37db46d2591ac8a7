//! Every recipe in README.md and kafka/README.md, run as written against the real binary, the
//! test broker and the test cluster. A README code block is a recipe when the line before it
//! is `<!-- recipe: NAME -->`; the only changes made before running it are the addresses
//! (ports, broker, topic prefix) and the placeholders `sk-…` and `6f1c…`. Code blocks that are
//! not recipes say why (`<!-- setup: … -->`, `<!-- synopsis: … -->`), so a new block cannot go
//! untested by accident. Python recipes run in the environment `scripts/python-env.sh` makes
//! (pinned confluent-kafka, pyarrow, pandas); when it cannot be made the test fails.
//! Needs WEARHOUSE_TEST_PG and WEARHOUSE_TEST_KAFKA.

use crate::common;
use crate::kafka_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, create_user, free_port, import_export, Server, TestDb};
use serde_json::Value;

const SMALL: &str = include_str!("../fixtures/small_export.xml");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The recipes the tests below run; every `<!-- recipe: … -->` must be one of them.
const TESTED: &[&str] = &[
    "demo-curl",
    "simulator-start",
    "simulator-server",
    "simulator-demo",
    "replay-jsonl",
    "python-install",
    "python-samples-topic",
    "replay-arrow-files",
    "python-samples-files",
    "replay-raw-files",
];

fn readme(file: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap()
}

/// (marker line before the block, language, code) of every fenced block of `text`.
fn blocks(text: &str) -> Vec<(String, String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        if let Some(lang) = lines[i].strip_prefix("```") {
            let marker = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
                .unwrap_or_default();
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].starts_with("```"))
                .expect("unterminated code block");
            out.push((
                marker,
                lang.to_string(),
                lines[i + 1..end].join("\n") + "\n",
            ));
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

fn recipe(file: &str, name: &str) -> String {
    let marker = format!("<!-- recipe: {name} -->");
    blocks(&readme(file))
        .into_iter()
        .find(|(m, _, _)| *m == marker)
        .unwrap_or_else(|| panic!("no recipe {name} in {file}"))
        .2
}

#[test]
fn every_command_block_is_a_tested_recipe_or_says_why_not() {
    let mut names = BTreeSet::new();
    for file in ["README.md", "kafka/README.md"] {
        for (marker, lang, code) in blocks(&readme(file)) {
            if !matches!(lang.as_str(), "sh" | "bash" | "python") {
                continue;
            }
            if let Some(name) = marker
                .strip_prefix("<!-- recipe: ")
                .and_then(|m| m.strip_suffix(" -->"))
            {
                assert!(
                    TESTED.contains(&name),
                    "{file}: recipe {name} has no test in tests/recipes.rs"
                );
                assert!(names.insert(name.to_string()), "recipe {name} twice");
            } else {
                assert!(
                    marker.starts_with("<!-- setup: ") || marker.starts_with("<!-- synopsis: "),
                    "{file}: a {lang} block is neither a recipe nor says why not:\n{code}"
                );
            }
        }
    }
    let tested: BTreeSet<String> = TESTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names, tested,
        "recipes tested here but gone from the READMEs"
    );
}

/// PATH with the binary under test first, so recipes' `wearhouse` is it.
fn path_env() -> String {
    let dir = Path::new(bin()).parent().unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn shell(code: &str, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", code])
        .current_dir(dir)
        .env("PATH", path_env())
        .env("WEARHOUSE_LOG", "warn")
        .env_remove("WEARHOUSE_ADMIN_EMAIL")
        .env_remove("WEARHOUSE_ADMIN_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a recipe to its end (at most 180 s) and returns its stdout.
fn run_ok(what: &str, cmd: Command) -> String {
    let mut child = Process::spawn_captured(cmd);
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "recipe {what} still running after 180 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "recipe {what} failed ({status}):\nstdout: {out}\nstderr: {err}"
    );
    out
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wearhouse-recipe-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A recipe's shell and every process it started (a pipeline, a server), each ended by its
/// own id when dropped.
struct Process(Child);

impl Process {
    /// `stdout` piped also pipes stderr (a recipe run to its end); otherwise stderr is the
    /// test's own (a long-running process).
    fn spawn(mut cmd: Command, stdout: Stdio) -> Process {
        cmd.stderr(Stdio::inherit());
        cmd.stdout(stdout);
        Process(cmd.spawn().expect("spawn recipe"))
    }

    fn spawn_captured(mut cmd: Command) -> Process {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        Process(cmd.spawn().expect("spawn recipe"))
    }
}

/// The processes descended from `pid`, deepest last (read from /proc).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The parent pid is the second field after the parenthesised command name.
        let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
            parent_of.push((p, ppid));
        }
    }
    let mut out = vec![];
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

impl Drop for Process {
    fn drop(&mut self) {
        let mut pids = descendants(self.0.id());
        pids.push(self.0.id());
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.0.wait();
    }
}

/// The simulator demo from README.md, as a new user runs it: the simulator started as written
/// (its printed settings kept in a file), the demo server started with those settings, the
/// curl line, then a Garmin connection whose backfill must complete through the simulator's
/// pushes and deliver sleep nights.
#[tokio::test]
async fn simulator_demo_from_the_readme() {
    // A fresh folder, as a new clone: no .wearhouse yet.
    let dir = temp_dir("demo");
    let db = TestDb::new().await;
    let (web, sim) = (free_port(), free_port());
    let web_addr = format!("127.0.0.1:{web}");

    // Terminal 1: the simulator, told where this test's server listens.
    let start = recipe("README.md", "simulator-start").replace(
        "wearhouse simulate providers",
        &format!("wearhouse simulate providers --port {sim} --wearhouse-url http://{web_addr}"),
    );
    let _simulator = Process::spawn(shell(&start, &dir, &[]), Stdio::null());
    let printed = dir.join(".wearhouse/simulator.txt");
    let deadline = Instant::now() + Duration::from_secs(30);
    let banner = loop {
        let text = std::fs::read_to_string(&printed).unwrap_or_default();
        if text.contains("Control:") {
            break text;
        }
        assert!(Instant::now() < deadline, "simulator printed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let base = format!("http://127.0.0.1:{sim}");
    for p in ["oura", "whoop", "garmin"] {
        let up = p.to_uppercase();
        for line in [
            format!("export WEARHOUSE_{up}_CLIENT_ID={p}-client"),
            format!("export WEARHOUSE_{up}_CLIENT_SECRET=sim-secret"),
            format!("export WEARHOUSE_{up}_AUTHORIZE_URL={base}/{p}/oauth/authorize"),
            format!("export WEARHOUSE_{up}_TOKEN_URL={base}/{p}/oauth/token"),
            format!("export WEARHOUSE_{up}_API_URL={base}/{p}/api"),
        ] {
            assert!(
                banner.lines().any(|l| l == line),
                "{line} not printed:\n{banner}"
            );
        }
    }
    assert!(
        banner.contains(&format!(
            "Garmin pushes (backfills, activity files) go to http://{web_addr}/api/v1/providers/garmin/webhooks?token=sim-garmin-push-token"
        )),
        "{banner}"
    );
    // The server takes the same push token from the printed settings.
    assert!(
        banner
            .lines()
            .any(|l| l == "export WEARHOUSE_GARMIN_PUSH_TOKEN=sim-garmin-push-token"),
        "{banner}"
    );

    // Terminal 2: the server with those settings (`wearhouse demo` for scripts/run.sh, which
    // builds the release binary first).
    let server =
        recipe("README.md", "simulator-server").replace("scripts/run.sh", "exec wearhouse demo");
    let home = dir.join(".wearhouse");
    let mut server = Process::spawn(
        shell(
            &server,
            &dir,
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("WEARHOUSE_BIND", web_addr.as_str()),
                ("WEARHOUSE_HOME", home.to_str().unwrap()),
            ],
        ),
        Stdio::piped(),
    );
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(k) = line.trim().strip_prefix("API key:") {
                let _ = tx.send(k.trim().to_string());
            }
        }
    });
    let key = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the demo printed no API key");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The demo prints its key just before it listens, and its users reach the read model
    // within moments: wait for both.
    loop {
        let r = http
            .get(format!("http://{web_addr}/api/v1/users"))
            .header("X-Open-Wearables-API-Key", &key)
            .send()
            .await;
        let body: Value = match r {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if body["items"].as_array().map_or(0, Vec::len) == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "demo users missing: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The curl line printed by run.sh and shown in the README.
    let curl = recipe("README.md", "demo-curl")
        .replace("sk-…", &key)
        .replace("127.0.0.1:8000", &web_addr);
    let users: Value = serde_json::from_str(&run_ok("demo-curl", shell(&curl, &dir, &[]))).unwrap();
    assert_eq!(users["items"].as_array().unwrap().len(), 3, "{users}");

    // Terminal 3: connect Garmin; the backfill completes through the pushes.
    let demo = recipe("README.md", "simulator-demo")
        .replace("KEY=sk-…", &format!("KEY={key}"))
        .replace("127.0.0.1:8000", &web_addr);
    let out = run_ok("simulator-demo", shell(&demo, &dir, &[]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("/oauth/success")),
        "not connected: {out}"
    );
    let nights: i64 = lines.last().unwrap().trim().parse().unwrap();
    assert!(nights > 0, "no sleep arrived through the backfill: {out}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn python() -> String {
    let out = Command::new(Path::new(ROOT).join("scripts/python-env.sh"))
        .output()
        .expect("run scripts/python-env.sh");
    assert!(
        out.status.success(),
        "scripts/python-env.sh could not make the Python environment: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn run_python(py: &str, code: &str, dir: &Path) -> String {
    let mut cmd = Command::new(py);
    cmd.args(["-c", code]).current_dir(dir);
    run_ok("python", cmd)
}

/// The Kafka README's recipes: replay to JSON lines, Arrow files and raw files (from Postgres
/// and from the topics), the Python install line, and reading sample batches with pyarrow and
/// pandas, from the topic and from files.
#[tokio::test]
async fn kafka_readme_recipes() {
    let py = python();
    let brokers = kafka_support::test_kafka();
    let db = TestDb::new().await;
    let prefix = db.name.clone();
    let kafka_env = [
        ("WEARHOUSE_KAFKA_BROKERS", brokers.as_str()),
        ("WEARHOUSE_KAFKA_TOPIC_PREFIX", prefix.as_str()),
        ("WEARHOUSE_KAFKA_PARTITIONS", "3"),
        ("WEARHOUSE_KAFKA_FLUSH_MARKERS", "true"),
    ];
    let server = Server::start_process(db, &kafka_env).await;
    let key = server.api_key().await;
    let user = create_user(&server, &key).await;
    let done = import_export(
        &server,
        &key,
        &user,
        "export.xml",
        SMALL.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    let pool = common::pool(&server.db.url);
    let client = pool.get().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while wearhouse_kafka::relay_lag(&client).await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "relay did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batches: i64 = client
        .query_one("SELECT count(*) FROM sample_batches", &[])
        .await
        .unwrap()
        .get(0);
    assert!(batches > 0);
    let dir = temp_dir("kafka");
    let mut env: Vec<(&str, &str)> = kafka_env.to_vec();
    env.push(("DATABASE_URL", server.db.url.as_str()));

    // The install line names the versions scripts/python-env.sh installs.
    let install = recipe("kafka/README.md", "python-install");
    let script = std::fs::read_to_string(Path::new(ROOT).join("scripts/python-env.sh")).unwrap();
    let pins_line = script
        .lines()
        .find_map(|l| l.strip_prefix("PINS=("))
        .unwrap()
        .trim_end_matches(')');
    let pins: Vec<&str> = pins_line.split_whitespace().collect();
    let named: Vec<&str> = install
        .split_whitespace()
        .filter(|w| w.contains("=="))
        .collect();
    assert_eq!(
        named, pins,
        "kafka/README.md install line vs scripts/python-env.sh"
    );
    let freeze = run_ok("pip freeze", {
        let mut c = Command::new(&py);
        c.args(["-m", "pip", "freeze"]);
        c
    })
    .to_lowercase();
    for pin in &pins {
        assert!(
            freeze.lines().any(|l| l == *pin),
            "{pin} not in the venv: {freeze}"
        );
    }

    // From the topic: one line per sample batch, each with the user and its series type.
    let topic = recipe("kafka/README.md", "python-samples-topic")
        .replace("127.0.0.1:19092", &brokers)
        .replace("\"wearhouse.samples\"", &format!("\"{prefix}.samples\""));
    let out = run_python(&py, &topic, &dir);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len() as i64,
        batches,
        "one line per batch expected:\n{out}"
    );
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.len(), 3, "{l}");
        assert_eq!(f[0], user);
        assert!(f[2].parse::<u64>().unwrap() > 0, "{l}");
    }

    // From files written by replay, read with pyarrow and pandas.
    run_ok(
        "replay-arrow-files",
        shell(&recipe("kafka/README.md", "replay-arrow-files"), &dir, &env),
    );
    let out = run_python(
        &py,
        &recipe("kafka/README.md", "python-samples-files"),
        &dir,
    );
    let heads: Vec<&str> = out.lines().filter(|l| l.starts_with("batches/")).collect();
    assert_eq!(heads.len() as i64, batches, "{out}");
    assert!(
        heads.iter().any(|l| l.contains(" heart_rate bpm ")),
        "series code and unit from the schema metadata expected:\n{out}"
    );
    assert!(
        out.contains("time") && out.contains("columns]"),
        "a pandas head of each batch expected:\n{out}"
    );

    // Raw payloads, from Postgres and from the topic, named by their SHA-256.
    let raw = recipe("kafka/README.md", "replay-raw-files").replace("6f1c…", &user);
    let out = run_ok("replay-raw-files", shell(&raw, &dir, &env));
    let sums: Vec<&str> = out.lines().collect();
    assert_eq!(sums.len(), 1, "one upload, one file: {out}");
    let (hash, file) = sums[0].split_once("  ").unwrap();
    assert_eq!(file, format!("exports/{hash}"));
    assert_eq!(
        std::fs::read(dir.join(file)).unwrap(),
        SMALL.as_bytes(),
        "the original bytes"
    );

    // Replay to JSON lines, with every filter the recipe shows.
    let jsonl = recipe("kafka/README.md", "replay-jsonl").replace("6f1c…", &user);
    let out = run_ok("replay-jsonl", shell(&jsonl, &dir, &env));
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(first["position"].as_i64().is_some(), "{first}");
    assert!(dir.join("out.jsonl").exists());
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The READMEs send readers to nothing outside the repository.
#[test]
fn readmes_point_only_inside_the_repository() {
    for file in ["README.md", "kafka/README.md"] {
        let text = readme(file);
        for outside in ["../", "shared/", "feasibility.md", "DESIGN.md"] {
            assert!(!text.contains(outside), "{file} refers to {outside}");
        }
    }
}

/// kafka/README.md names the schema metadata keys the samples topic and Arrow files carry.
#[test]
fn kafka_readme_names_the_samples_metadata_keys() {
    use wearhouse_log::arrow_batch::{META_SERIES_CODE, META_SERIES_ID, META_UNIT};
    let text = readme("kafka/README.md");
    for key in [
        META_SERIES_ID,
        META_SERIES_CODE,
        META_UNIT,
        "data_source_id",
    ] {
        assert!(
            text.contains(&format!("`{key}`")),
            "kafka/README.md does not name {key}"
        );
    }
}
