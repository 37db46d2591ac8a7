//! Test harness: each test gets its own database in the test cluster (WEARHOUSE_TEST_PG) and
//! talks over HTTP to the platform, started in the test's own runtime on a port the kernel
//! chose (`Server::start`), or to the real `wearhouse serve` binary when the test needs a
//! process of its own: its exit status, a signal, its memory, or its log (`Server::start_process`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// The platform's settings for an in-process server, given as values.
pub mod settings;

pub const ADMIN_EMAIL: &str = "admin@test.local";
pub const ADMIN_PASSWORD: &str = "test-password-1";
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wearhouse")
}

/// The admin URL of the test cluster. Tests never skip: without it they fail, loudly.
pub fn admin_url() -> String {
    std::env::var("WEARHOUSE_TEST_PG").unwrap_or_else(|_| {
        panic!("WEARHOUSE_TEST_PG is not set: run the tests with scripts/test.sh, which starts the private PostgreSQL cluster")
    })
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Waits until `check` holds, polling every `every`; panics with `what` after `within`.
pub async fn wait_until<F, Fut>(within: Duration, every: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(every).await;
    }
}

/// A fresh, empty database; dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin = admin_url();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').expect("URL has a database").0;
        TestDb {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// Runs `wearhouse <args>` against this database and returns its stdout. Awaited, not
    /// blocking: an in-process server on this runtime keeps serving (and releasing its locks)
    /// while the command runs.
    pub async fn run(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new(bin())
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("WEARHOUSE_LOG", "warn")
            .output()
            .await
            .expect("run wearhouse");
        assert!(
            out.status.success(),
            "wearhouse {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = admin_url();
        let name = self.name.clone();
        // Best effort, on a thread of its own: Drop cannot be async.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = connect(&admin).await;
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a server runs.
enum Running {
    /// The platform on a runtime and thread of its own (a blocking call in a test cannot freeze
    /// it mid-transaction); `stop` ends it gracefully, `done` says when it has.
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        done: Option<tokio::sync::oneshot::Receiver<Result<(), String>>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    /// `wearhouse serve` as a child process, with the settings it was started with (a restart
    /// keeps them).
    Process {
        child: Child,
        env: Vec<(String, String)>,
    },
}

/// A running server on its own database and port.
pub struct Server {
    pub db: TestDb,
    pub url: String,
    pub home: PathBuf,
    running: Running,
    pub http: reqwest::Client,
}

/// The settings every test server has (the admin developer, a fixed JWT key, its own home).
fn base_settings(db: &TestDb, home: &std::path::Path) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", db.url.as_str()),
        ("WEARHOUSE_HOME", home.to_str().unwrap()),
        ("WEARHOUSE_SECRET_KEY", SECRET),
        ("WEARHOUSE_ADMIN_EMAIL", ADMIN_EMAIL),
        ("WEARHOUSE_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The server's WEARHOUSE_HOME: one per database, so two servers on one database share their
/// generated keys (the sealing key of provider tokens) as two processes of one installation do.
fn new_home(db: &TestDb) -> PathBuf {
    let home = std::env::temp_dir().join(format!("wearhouse-test-{}", db.name));
    std::fs::create_dir_all(&home).unwrap();
    home
}

impl Server {
    /// The platform in-process on a fresh database.
    pub async fn start() -> Server {
        Self::start_with(TestDb::new().await, &[]).await
    }

    /// The platform in-process on `db`, with settings named as their environment variables
    /// (`WEARHOUSE_CORS_ORIGINS`, ...). They are parsed like the command line parses them, but
    /// given as values: the process environment is neither read nor changed.
    pub async fn start_with(db: TestDb, env: &[(&str, &str)]) -> Server {
        settings::init_test_logging();
        let home = match env.iter().find(|(k, _)| *k == "WEARHOUSE_HOME") {
            Some((_, h)) => PathBuf::from(h),
            None => new_home(&db),
        };
        let mut pairs = base_settings(&db, &home);
        pairs.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut s = settings::parse(&pairs);
        s.serve.bind = format!("127.0.0.1:{port}");
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the server's runtime");
            rt.block_on(async move {
                let started = async {
                    let platform = wearhouse::serve::start(&s.db, s.serve, &s.kafka)
                        .await
                        .map_err(|e| format!("the platform did not start: {e:#}"))?;
                    wearhouse::serve::bootstrap_admin(&platform.state, &s.db.home)
                        .await
                        .map_err(|e| format!("the first developer was not created: {e:#}"))?;
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| format!("listener: {e}"))?;
                    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)
                        .map_err(|e| format!("acceptor: {e}"))?;
                    Ok::<_, String>((platform, acceptor))
                };
                let (platform, acceptor) = match started.await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let result = platform
                    .serve_on(acceptor, async move {
                        let _ = stopped.await;
                    })
                    .await
                    .map_err(|e| format!("the platform stopped with an error: {e:#}"));
                let _ = done_tx.send(result);
            });
        });
        match ready.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("the platform's thread ended before it started"),
        }
        Server {
            db,
            url: format!("http://127.0.0.1:{port}"),
            home,
            running: Running::InProcess {
                stop: Some(stop),
                done: Some(done),
                thread: Some(thread),
            },
            http: reqwest::Client::new(),
        }
    }

    /// The real `wearhouse serve` binary on `db`, for tests of the process itself (SIGTERM,
    /// exit status, memory); its log goes to the test's stderr.
    pub async fn start_process(db: TestDb, env: &[(&str, &str)]) -> Server {
        Self::start_logging(db, env, Stdio::inherit()).await
    }

    /// The real binary, with its log (stderr) sent to `stderr`: for tests that read the log.
    pub async fn start_logging(db: TestDb, env: &[(&str, &str)], stderr: Stdio) -> Server {
        let home = match env.iter().find(|(k, _)| *k == "WEARHOUSE_HOME") {
            Some((_, h)) => PathBuf::from(h),
            None => new_home(&db),
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, url) = Self::spawn(&db, &home, &env, stderr);
        let mut server = Server {
            db,
            url,
            home,
            running: Running::Process { child, env },
            http: reqwest::Client::new(),
        };
        server.wait_ready().await;
        server
    }

    /// Starts `wearhouse serve` on a free port; returns the process and its URL.
    fn spawn(
        db: &TestDb,
        home: &std::path::Path,
        env: &[(String, String)],
        stderr: Stdio,
    ) -> (Child, String) {
        let port = free_port();
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .env("WEARHOUSE_BIND", format!("127.0.0.1:{port}"))
            .env(
                "WEARHOUSE_LOG",
                std::env::var("WEARHOUSE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in base_settings(db, home) {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn wearhouse serve");
        (child, format!("http://127.0.0.1:{port}"))
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("{}/", self.url)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = self.child().try_wait() {
                panic!("wearhouse serve exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "wearhouse serve did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn child(&mut self) -> &mut Child {
        match &mut self.running {
            Running::Process { child, .. } => child,
            Running::InProcess { .. } => {
                panic!("an in-process server has no process: start it with Server::start_process")
            }
        }
    }

    /// Waits (up to `within`) for the server process to exit by itself and returns how it ended.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child().try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wearhouse serve still runs after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server process with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        let child = self.child();
        child.kill().expect("SIGKILL the server");
        child.wait().expect("reap the server");
    }

    /// Starts the server process again (after it exited) on the same database and home, with
    /// the settings of its first start except those named in `unset`, plus `env`.
    pub async fn restart(&mut self, unset: &[&str], add: &[(&str, &str)]) {
        if self.child().try_wait().unwrap().is_none() {
            self.kill();
        }
        let Running::Process { env, .. } = &mut self.running else {
            unreachable!("child() checked this is a process")
        };
        env.retain(|(k, _)| !unset.contains(&k.as_str()));
        env.extend(add.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env = env.clone();
        let (child, url) = Self::spawn(&self.db, &self.home, &env, Stdio::inherit());
        self.running = Running::Process { child, env };
        self.url = url;
        self.wait_ready().await;
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// Signs in as the admin developer and returns the access token.
    pub async fn login(&self) -> String {
        let r = self
            .req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login failed");
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Creates an API key through the API and returns it.
    pub async fn api_key(&self) -> String {
        let jwt = self.login().await;
        let r = self
            .req(Method::POST, "/api/v1/developer/api-keys")
            .bearer_auth(&jwt)
            .json(&serde_json::json!({"name": "tests"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The server process id (to read its memory figures from /proc); process servers only.
    pub fn pid(&self) -> u32 {
        match &self.running {
            Running::Process { child, .. } => child.id(),
            Running::InProcess { .. } => {
                panic!("an in-process server has no pid of its own: start it with Server::start_process")
            }
        }
    }

    /// Stops a process server with SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child().try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops an in-process server as SIGTERM stops the binary (requests drained, workers
    /// stopped) and waits until it has; the database stays.
    pub async fn shutdown(&mut self) {
        let Running::InProcess { stop, done, thread } = &mut self.running else {
            self.terminate();
            return;
        };
        if let Some(stop) = stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = done.take() {
            tokio::time::timeout(Duration::from_secs(20), done)
                .await
                .expect("the platform did not stop within 20 s")
                .expect("the platform's thread ended without saying how")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        if let Some(thread) = thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Process { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
            // Stopped gracefully on its own runtime; waiting here cannot freeze it.
            Running::InProcess { stop, thread, .. } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Sends a request with an API key and returns (status, JSON body).
pub async fn call(rb: RequestBuilder) -> (u16, Value) {
    let r: Response = rb.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A small deadpool pool on `url`, for code that takes deadpool clients.
pub fn pool(url: &str) -> deadpool_postgres::Pool {
    let cfg: tokio_postgres::Config = url.parse().unwrap();
    let mgr = deadpool_postgres::Manager::new(cfg, tokio_postgres::NoTls);
    deadpool_postgres::Pool::builder(mgr)
        .max_size(8)
        .build()
        .unwrap()
}

pub const KEY_HEADER: &str = "X-Open-Wearables-API-Key";

/// Creates a user through the API and returns its id.
pub async fn create_user(s: &Server, key: &str) -> String {
    let (status, user) = call(
        s.req(Method::POST, "/api/v1/users")
            .header(KEY_HEADER, key)
            .json(&serde_json::json!({"first_name": "Ada"})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().unwrap().to_string()
}

/// Uploads `bytes` as an export through `…/import/apple/xml/direct`; returns (status, body).
pub async fn upload_export(
    s: &Server,
    key: &str,
    user: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
    call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/direct"),
        )
        .header(KEY_HEADER, key)
        .multipart(reqwest::multipart::Form::new().part("file", part)),
    )
    .await
}

/// Polls an import until it completes or fails, and returns its final status document.
pub async fn wait_import(s: &Server, key: &str, user: &str, task: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = call(
            s.req(Method::GET, &format!("/api/v1/users/{user}/imports/{task}"))
                .header(KEY_HEADER, key),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if matches!(body["status"].as_str(), Some("completed" | "failed")) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "import {task} did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads an export and waits for its import to end; returns the final status document.
pub async fn import_export(s: &Server, key: &str, user: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, accepted) = upload_export(s, key, user, name, bytes).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["status"], "processing");
    wait_import(s, key, user, accepted["task_id"].as_str().unwrap()).await
}

/// Waits until no import is running and every projection has applied the whole log.
pub async fn settle(db: &TestDb) {
    let pool = pool(&db.url);
    let client = pool.get().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running: i64 = client
            .query_one(
                "SELECT count(*) FROM imports WHERE status IN ('received', 'processing')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if running == 0 && wearhouse_projections::caught_up(&client).await.unwrap() {
            return;
        }
        assert!(Instant::now() < deadline, "projections did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hand-made Apple Health exports for precise cases.
pub mod sim;

pub mod export {
    pub const WATCH: &str = "&lt;&lt;HKDevice: 0x283ca8f00&gt;, name:Apple Watch, manufacturer:Apple Inc., model:Watch, hardware:Watch6,1, software:10.3&gt;";
    pub const PHONE: &str = "&lt;&lt;HKDevice: 0x28301c0a0&gt;, name:iPhone, manufacturer:Apple Inc., model:iPhone, hardware:iPhone14,2, software:17.3.1&gt;";
    pub const WATCH_NAME: &str = "Ada’s Apple Watch";
    pub const PHONE_NAME: &str = "Ada’s iPhone";

    /// A whole export around `body` (records, workouts), with a birth date.
    pub fn doc(body: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE HealthData [\n<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>\n]>\n<HealthData locale=\"en_US\">\n <ExportDate value=\"2024-04-01 08:00:00 -0700\"/>\n <Me HKCharacteristicTypeIdentifierDateOfBirth=\"1990-01-01\" HKCharacteristicTypeIdentifierBiologicalSex=\"HKBiologicalSexFemale\"/>\n{body}\n</HealthData>\n"
        )
    }

    fn source(name: &str, device: Option<&str>) -> String {
        match device {
            Some(d) => format!(r#"sourceName="{name}" sourceVersion="10.3" device="{d}""#),
            None => format!(r#"sourceName="{name}" sourceVersion="1.0""#),
        }
    }

    /// A quantity record; dates like "2024-03-10 08:00:00 -0800".
    pub fn quantity(
        ty: &str,
        unit: &str,
        value: f64,
        start: &str,
        end: &str,
        watch: bool,
    ) -> String {
        let src = if watch {
            source(WATCH_NAME, Some(WATCH))
        } else {
            source(PHONE_NAME, Some(PHONE))
        };
        format!(
            r#" <Record type="HKQuantityTypeIdentifier{ty}" {src} unit="{unit}" creationDate="{end}" startDate="{start}" endDate="{end}" value="{value}"/>"#
        )
    }

    pub fn steps(value: f64, start: &str, end: &str, watch: bool) -> String {
        quantity("StepCount", "count", value, start, end, watch)
    }

    /// A sleep-analysis interval from the named source (`None` device: an app such as a ring's).
    pub fn sleep(value: &str, start: &str, end: &str, name: &str, device: Option<&str>) -> String {
        let src = source(name, device);
        format!(
            r#" <Record type="HKCategoryTypeIdentifierSleepAnalysis" {src} creationDate="{end}" startDate="{start}" endDate="{end}" value="HKCategoryValueSleepAnalysis{value}"/>"#
        )
    }

    pub fn workout(
        ty: &str,
        minutes: f64,
        kcal: f64,
        meters: f64,
        start: &str,
        end: &str,
    ) -> String {
        let src = source(WATCH_NAME, Some(WATCH));
        format!(
            " <Workout workoutActivityType=\"HKWorkoutActivityType{ty}\" duration=\"{minutes}\" durationUnit=\"min\" {src} creationDate=\"{end}\" startDate=\"{start}\" endDate=\"{end}\">\n  <WorkoutStatistics type=\"HKQuantityTypeIdentifierActiveEnergyBurned\" startDate=\"{start}\" endDate=\"{end}\" sum=\"{kcal}\" unit=\"kcal\"/>\n  <WorkoutStatistics type=\"HKQuantityTypeIdentifierDistanceWalkingRunning\" startDate=\"{start}\" endDate=\"{end}\" sum=\"{meters}\" unit=\"m\"/>\n </Workout>"
        )
    }
}

impl Server {
    /// A user created through the API, with an API key: (key, user id).
    pub async fn user(&self) -> (String, String) {
        let key = self.api_key().await;
        let (status, user) = call(
            self.req(Method::POST, "/api/v1/users")
                .header(KEY_HEADER, &key)
                .json(&serde_json::json!({"first_name": "Ada"})),
        )
        .await;
        assert_eq!(status, 201, "{user}");
        (key, user["id"].as_str().unwrap().to_string())
    }

    /// Uploads an export through `POST …/import/apple/xml/direct` and waits for `completed`
    /// and for every read model to catch up.
    pub async fn import(&self, key: &str, user: &str, xml: &str) {
        let part = reqwest::multipart::Part::bytes(xml.as_bytes().to_vec()).file_name("export.xml");
        let (status, body) = call(
            self.req(
                Method::POST,
                &format!("/api/v1/users/{user}/import/apple/xml/direct"),
            )
            .header(KEY_HEADER, key)
            .multipart(reqwest::multipart::Form::new().part("file", part)),
        )
        .await;
        assert!(status == 200 || status == 202, "{status} {body}");
        let task = body["task_id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, s) = call(
                self.req(Method::GET, &format!("/api/v1/users/{user}/imports/{task}"))
                    .header(KEY_HEADER, key),
            )
            .await;
            match s["status"].as_str() {
                Some("completed") => break,
                Some("failed") => panic!("import failed: {s}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "import did not complete: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.settle().await;
    }

    /// Waits until every read model has applied every entry of the log.
    pub async fn settle(&self) {
        settle(&self.db).await
    }

    /// GET with the API key: (status, body).
    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        call(self.req(Method::GET, path).header(KEY_HEADER, key)).await
    }
}
