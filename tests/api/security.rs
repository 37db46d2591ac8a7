//! The security review's measures, each through the real entry point (HTTP on the real binary,
//! its command line, the compose file): admin credentials, body caps, login throttling,
//! `/metrics`, logs, Garmin push authentication, SSE caps, uploads, tokens and API keys.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Peak resident memory (VmHWM) of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024
}

async fn answers(s: &Server) {
    let r = s
        .req(Method::GET, "/")
        .send()
        .await
        .expect("server answers");
    assert!(r.status().is_success());
}

fn detail(v: &Value) -> &str {
    v["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail in {v}"))
}

/// Runs `wearhouse serve` with the admin variables as given (None: unset) and returns its exit
/// status and log when it stops by itself within 60 s, or None when it keeps running.
async fn serve_exit(db: &TestDb, admin: (Option<&str>, Option<&str>)) -> Option<(bool, String)> {
    let home = std::env::temp_dir().join(format!("wearhouse-sec-{}", uuid::Uuid::new_v4()));
    let log = home.with_extension("log");
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("WEARHOUSE_HOME", &home)
        .env("WEARHOUSE_BIND", format!("127.0.0.1:{}", free_port()))
        .env("WEARHOUSE_SECRET_KEY", SECRET)
        .env("WEARHOUSE_LOG", "info")
        .env_remove("WEARHOUSE_ADMIN_EMAIL")
        .env_remove("WEARHOUSE_ADMIN_PASSWORD")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(e) = admin.0 {
        cmd.env("WEARHOUSE_ADMIN_EMAIL", e);
    }
    if let Some(p) = admin.1 {
        cmd.env("WEARHOUSE_ADMIN_PASSWORD", p);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some((status.success(), std::fs::read_to_string(&log).unwrap()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_file(&log);
    out
}

/// Item 1: empty or weak admin credentials refuse to start; compose requires them; a generated
/// password goes to a 0600 file, never to the log; an empty login gets nothing.
#[tokio::test]
async fn admin_credentials_are_required_strong_and_never_logged() {
    let compose = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/compose.yml"),
    )
    .unwrap();
    for var in ["WEARHOUSE_ADMIN_EMAIL", "WEARHOUSE_ADMIN_PASSWORD"] {
        let line = compose
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{var}:")))
            .unwrap_or_else(|| panic!("{var} missing from compose.yml"));
        assert!(
            line.contains(&format!("${{{var}:?")),
            "compose.yml must require {var}: {line}"
        );
    }

    let db = TestDb::new().await;
    for (email, password, complaint) in [
        ("", "", "WEARHOUSE_ADMIN_EMAIL"),
        ("admin@x.io", "", "WEARHOUSE_ADMIN_PASSWORD"),
        ("admin@x.io", "password", "WEARHOUSE_ADMIN_PASSWORD"),
        (
            "admin@x.io",
            "aaaaaaaaaaaaaaaaaa",
            "WEARHOUSE_ADMIN_PASSWORD",
        ),
        (
            "not-an-address",
            "Long-enough-pass-1",
            "WEARHOUSE_ADMIN_EMAIL",
        ),
    ] {
        let (ok, log) = serve_exit(&db, (Some(email), Some(password)))
            .await
            .unwrap_or_else(|| panic!("serve kept running with {email:?} / {password:?}"));
        assert!(!ok, "serve must fail with {email:?} / {password:?}");
        assert!(log.contains(complaint), "{log}");
    }
    let (ok, log) = serve_exit(&db, (Some("admin@x.io"), None)).await.unwrap();
    assert!(!ok && log.contains("WEARHOUSE_ADMIN_PASSWORD"), "{log}");

    // Neither set: a generated account, its password only in a 0600 file.
    let db = TestDb::new().await;
    let home2 = std::env::temp_dir().join(format!("wearhouse-test-{}", db.name));
    let log2 = std::env::temp_dir().join(format!("wearhouse-sec-{}.log", db.name));
    // Server::start sets the admin variables; unset them by running serve directly.
    let port = free_port();
    let mut child = Command::new(bin())
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("WEARHOUSE_HOME", &home2)
        .env("WEARHOUSE_BIND", format!("127.0.0.1:{port}"))
        .env("WEARHOUSE_SECRET_KEY", SECRET)
        .env("WEARHOUSE_LOG", "info")
        .env_remove("WEARHOUSE_ADMIN_EMAIL")
        .env_remove("WEARHOUSE_ADMIN_PASSWORD")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log2).unwrap())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{url}/")).send().await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = home2.join("admin-credentials");
    let text = std::fs::read_to_string(&file).expect("generated credentials file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    let (email, password) = (field("e-mail:"), field("password:"));
    assert!(password.len() >= 12);
    let logged = std::fs::read_to_string(&log2).unwrap();
    assert!(!logged.contains(&password), "password in the log");
    assert!(logged.contains("admin-credentials"), "{logged}");
    let r = http
        .post(format!("{url}/api/v1/auth/login"))
        .form(&[
            ("username", email.as_str()),
            ("password", password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (u, p) in [("", ""), (email.as_str(), "")] {
        let r = http
            .post(format!("{url}/api/v1/auth/login"))
            .form(&[("username", u), ("password", p)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&home2);
    let _ = std::fs::remove_file(&log2);
}

/// Item 3: a multi-GB octet-stream body to the webhook route is cut off at its small cap while
/// it is read; the server keeps answering with bounded memory. Other routes cap octet-stream
/// bodies too.
#[tokio::test]
async fn bodies_are_capped_while_read_whatever_their_type() {
    // The binary: the server's own peak memory is checked.
    let s = Server::start_process(TestDb::new().await, &[]).await;
    let chunk = bytes::Bytes::from(vec![b'x'; 1 << 20]);
    for path in [
        "/api/v1/providers/garmin/webhooks",
        "/api/v1/providers/whoop/webhooks",
        "/api/v1/users",
    ] {
        let c = chunk.clone();
        // 3 GiB, streamed (chunked: no Content-Length to refuse up front).
        let body =
            futures::stream::iter((0..3072).map(move |_| Ok::<_, std::io::Error>(c.clone())));
        let r = s
            .req(Method::POST, path)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .timeout(Duration::from_secs(120))
            .send()
            .await;
        // The server answers 413 and drops the rest; the client may see the closed socket.
        if let Ok(r) = r {
            assert_eq!(r.status(), 413, "{path}");
            let v: Value = r.json().await.unwrap();
            assert!(detail(&v).contains("larger than"));
        }
        answers(&s).await;
    }
    let peak = peak_rss_mib(s.pid());
    assert!(peak < 300, "server peak RSS {peak} MiB");
    // Declared too large: refused before a byte of the body is read. Only the headers are sent
    // (a client still writing a body may see the socket close under it instead of the answer).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/providers/oura/webhooks HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/zip\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("an answer without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Item 5: failed logins back off per account; 500 concurrent bad logins are throttled and
/// bounded (Argon2 hashes at most a few at a time) and leave the server answering with bounded
/// memory.
#[tokio::test]
async fn logins_are_throttled_and_hashes_bounded() {
    // The binary: the server's own peak memory is checked.
    let s = Server::start_process(TestDb::new().await, &[]).await;
    for _ in 0..5 {
        let r = s
            .req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", ADMIN_EMAIL), ("password", "wrong-password-1")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // Even the right password waits now.
    let (st, v) = call(
        s.req(Method::POST, "/api/v1/auth/login")
            .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)]),
    )
    .await;
    assert_eq!(st, 429, "{v}");
    assert!(detail(&v).contains("Too many"));

    let mut tasks = Vec::new();
    for i in 0..500 {
        let rb = s
            .req(Method::POST, "/api/v1/auth/login")
            .form(&[
                ("username", format!("nobody{i}@x.io")),
                ("password", "not-the-password-1".to_string()),
            ])
            .timeout(Duration::from_secs(120));
        tasks.push(tokio::spawn(async move { call(rb).await }));
    }
    let mut throttled = 0;
    for t in tasks {
        let (st, v) = t.await.unwrap();
        assert!(st == 401 || st == 429, "{st} {v}");
        assert!(v["detail"].is_string());
        throttled += usize::from(st == 429);
    }
    assert!(throttled > 0, "no login was throttled");
    answers(&s).await;
    let peak = peak_rss_mib(s.pid());
    assert!(peak < 300, "server peak RSS {peak} MiB");
}

/// Item 6: `/metrics` needs its token on the API address, or is served on its own address;
/// method labels come from a fixed set.
#[tokio::test]
async fn metrics_are_behind_a_token_or_their_own_address() {
    let s = Server::start().await;
    let r = s.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(r.status(), 404, "no token, no separate bind: not served");
    drop(s);

    let mport = free_port();
    let bind = format!("127.0.0.1:{mport}");
    let s = Server::start_with(
        TestDb::new().await,
        &[
            ("WEARHOUSE_METRICS_TOKEN", "scrape-token-1"),
            ("WEARHOUSE_METRICS_BIND", &bind),
        ],
    )
    .await;
    let r = s.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .req(Method::GET, "/metrics")
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for m in ["FOO", "BREW", "XYZZY"] {
        s.req(Method::from_bytes(m.as_bytes()).unwrap(), "/api/v1/users")
            .send()
            .await
            .unwrap();
    }
    let text = s
        .req(Method::GET, "/metrics")
        .bearer_auth("scrape-token-1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("wearhouse_projection_lag_entries"), "{text}");
    assert!(text.contains("method=\"OTHER\""), "{text}");
    for m in ["FOO", "BREW", "XYZZY"] {
        assert!(!text.contains(m));
    }
    // The separate address also wants the token when one is set.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{bind}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("http://{bind}/metrics"))
        .bearer_auth("scrape-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Only /metrics there.
    let r = http
        .get(format!("http://{bind}/api/v1/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Item 7: the request log has paths without query strings and without upload tokens or API
/// keys; `{key_id}` no longer takes the key itself.
#[tokio::test]
async fn logs_carry_no_secrets() {
    let db = TestDb::new().await;
    let log = std::env::temp_dir().join(format!("wearhouse-sec-{}.log", db.name));
    let mut s = Server::start_logging(
        db,
        &[("WEARHOUSE_LOG", "info")],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    )
    .await;
    let key = s.api_key().await;
    let jwt = s.login().await;
    s.req(
        Method::GET,
        "/api/v1/oauth/garmin/callback?code=SECRETCODE123&state=SECRETSTATE456",
    )
    .send()
    .await
    .unwrap();
    s.req(Method::POST, "/api/v1/uploads/SECRETUPLOADTOKEN789.abc")
        .send()
        .await
        .unwrap();
    let (st, v) = call(
        s.req(Method::PATCH, &format!("/api/v1/developer/api-keys/{key}"))
            .bearer_auth(&jwt)
            .json(&json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(st, 404, "the raw key is not a key id: {v}");
    s.req(Method::GET, &format!("/api/v1/users?api_key={key}"))
        .header(KEY_HEADER, &key)
        .send()
        .await
        .unwrap();
    // Stopped (SIGTERM, waited for): every request it answered is in its log.
    s.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        text.contains("/api/v1/users"),
        "requests are logged: {text}"
    );
    for secret in [
        "SECRETCODE123",
        "SECRETSTATE456",
        "SECRETUPLOADTOKEN789",
        key.as_str(),
        &key[3..],
        jwt.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
}

/// Item 2: a Garmin push needs the installation's token from the push URL; pushes with absurd
/// times are refused before anything is stored.
#[tokio::test]
async fn garmin_pushes_need_the_push_token_and_sane_times() {
    let s = Server::start_with(
        TestDb::new().await,
        &[
            ("WEARHOUSE_GARMIN_CLIENT_ID", "garmin-client"),
            (
                "WEARHOUSE_GARMIN_PUSH_TOKEN",
                "push-token-0123456789abcdef-xyz",
            ),
        ],
    )
    .await;
    let push = |query: &str, body: Value| {
        s.req(
            Method::POST,
            &format!("/api/v1/providers/garmin/webhooks{query}"),
        )
        .header("garmin-client-id", "garmin-client")
        .json(&body)
    };
    let dereg = json!({"deregistrations": [{"userId": "garmin-user-1"}]});
    for q in [
        "",
        "?token=",
        "?token=push-token-0123456789abcdef-xy",
        "?tok=push-token-0123456789abcdef-xyz",
    ] {
        let (st, v) = call(push(q, dereg.clone())).await;
        assert_eq!(st, 401, "{q}: {v}");
        assert!(v["detail"].is_string());
    }
    let (st, v) = call(push("?token=push-token-0123456789abcdef-xyz", dereg)).await;
    assert_eq!(st, 200, "{v}");
    for t in [-1i64, 0, 99_999_999_999_999, 4_102_444_800] {
        let body = json!({"dailies": [{"userId": "garmin-user-1", "summaryId": "d1",
            "calendarDate": "2026-03-01", "startTimeInSeconds": t, "durationInSeconds": 86400,
            "steps": 10}]});
        let (st, v) = call(push("?token=push-token-0123456789abcdef-xyz", body)).await;
        assert_eq!(st, 400, "{t}: {v}");
    }
    let client = s.db.client().await;
    let raw: i64 = client
        .query_one(
            "SELECT count(*) FROM raw_payloads WHERE kind = 'webhook' AND provider = 'garmin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw, 1, "only the authenticated, sane push is stored");

    // Without a configured token, one is generated into WEARHOUSE_HOME (0600).
    drop(client);
    let s2 = Server::start().await;
    let path = s2.home.join("garmin-push.token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Item 10: open sync-status streams are capped per credential, and a stream ends when its
/// credential is revoked.
#[tokio::test]
async fn sse_streams_are_capped_and_end_on_revocation() {
    let s = Server::start_with(
        TestDb::new().await,
        &[
            ("WEARHOUSE_MAX_STREAMS_PER_CREDENTIAL", "2"),
            ("WEARHOUSE_SSE_HEARTBEAT_SECS", "1"),
        ],
    )
    .await;
    let jwt = s.login().await;
    let (st, created) = call(
        s.req(Method::POST, "/api/v1/developer/api-keys")
            .bearer_auth(&jwt)
            .json(&json!({"name": "streams"})),
    )
    .await;
    assert_eq!(st, 201);
    let key = created["key"].as_str().unwrap().to_string();
    let key_id = created["id"].as_str().unwrap().to_string();
    let user = create_user(&s, &key).await;
    let path = format!("/api/v1/users/{user}/sync/stream");
    let open = |k: &str| s.req(Method::GET, &path).header(KEY_HEADER, k).send();
    let mut first = open(&key).await.unwrap();
    assert_eq!(first.status(), 200);
    let second = open(&key).await.unwrap();
    assert_eq!(second.status(), 200);
    let third = open(&key).await.unwrap();
    assert_eq!(third.status(), 429);
    let v: Value = third.json().await.unwrap();
    assert!(detail(&v).contains("streams"));
    let other = s.api_key().await;
    assert_eq!(open(&other).await.unwrap().status(), 200);
    drop(second);
    // The server notices the closed connection at its next heartbeat (every second here):
    // until then a third stream is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let r = open(&key).await.unwrap();
        if r.status() != 429 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.status(), 200, "a closed stream frees its slot");

    let r = s
        .req(
            Method::DELETE,
            &format!("/api/v1/developer/api-keys/{key_id}"),
        )
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match first.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its revoked key");
}

/// Item 11: upload files are 0600, left-overs are swept at start, a presigned URL uploads once
/// even under concurrent use.
#[tokio::test]
async fn uploads_are_private_swept_and_single_use() {
    let db = TestDb::new().await;
    let home = std::env::temp_dir().join(format!("wearhouse-test-{}", db.name));
    std::fs::create_dir_all(home.join("uploads")).unwrap();
    let leftover = home.join("uploads").join("left-over.upload");
    std::fs::write(&leftover, b"health data").unwrap();
    let s = Server::start_with(db, &[]).await;
    assert!(!leftover.exists(), "left-over upload not swept at start");
    let key = s.api_key().await;
    let user = create_user(&s, &key).await;

    // A slow upload: its file exists while the body arrives.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let boundary = "XBOUNDARYX";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"export.xml\"\r\nContent-Type: application/xml\r\n\r\n<HealthData>"
    );
    tx.send(Ok(bytes::Bytes::from(head))).await.unwrap();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let req = s
        .req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/direct"),
        )
        .header(KEY_HEADER, &key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let pending = tokio::spawn(req);
    let deadline = Instant::now() + Duration::from_secs(20);
    let file = loop {
        let found = std::fs::read_dir(home.join("uploads")).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "upload"))
        });
        if let Some(f) = found {
            break f;
        }
        assert!(Instant::now() < deadline, "upload file never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(tx);
    let _ = pending.await;

    // One presigned URL, two concurrent uploads: exactly one is accepted.
    let (st, url) = call(
        s.req(
            Method::POST,
            &format!("/api/v1/users/{user}/import/apple/xml/s3"),
        )
        .header(KEY_HEADER, &key)
        .json(&json!({"filename": "export.xml"})),
    )
    .await;
    assert_eq!(st, 200, "{url}");
    let upload_url = url["upload_url"].as_str().unwrap().to_string();
    let xml = b"<?xml version=\"1.0\"?><HealthData locale=\"en_US\"></HealthData>".to_vec();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let part = reqwest::multipart::Part::bytes(xml.clone()).file_name("export.xml");
        let rb = s
            .http
            .post(&upload_url)
            .multipart(reqwest::multipart::Form::new().part("file", part));
        tasks.push(tokio::spawn(async move { call(rb).await }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let (st, v) = t.await.unwrap();
        if st != 200 {
            assert_eq!(st, 409, "{v}");
            assert!(v["detail"].is_string());
        }
        statuses.push(st);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
}

/// Item 12: a reused refresh token revokes the chain; logout revokes the access token; an empty
/// webhook secret refuses deliveries; an unreadable timestamp header is refused.
#[tokio::test]
async fn tokens_and_webhook_signatures() {
    use base64::Engine;
    let s = Server::start_with(
        TestDb::new().await,
        &[("WEARHOUSE_OURA_CLIENT_SECRET", "oura-secret")],
    )
    .await;
    let login = || async {
        let (st, v) = call(
            s.req(Method::POST, "/api/v1/auth/login")
                .form(&[("username", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)]),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        v
    };
    let t1 = login().await;
    let r1 = t1["refresh_token"].as_str().unwrap().to_string();
    let refresh = |t: String| {
        call(
            s.req(Method::POST, "/api/v1/token/refresh")
                .json(&json!({ "refresh_token": t })),
        )
    };
    let (st, t2) = refresh(r1.clone()).await;
    assert_eq!(st, 200);
    let r2 = t2["refresh_token"].as_str().unwrap().to_string();
    let (st, _) = refresh(r1).await;
    assert_eq!(st, 401, "a rotated token is refused");
    let (st, v) = refresh(r2).await;
    assert_eq!(st, 401, "its reuse revoked the rest of the chain: {v}");

    let access = login().await["access_token"].as_str().unwrap().to_string();
    let me = || {
        s.req(Method::GET, "/api/v1/auth/me")
            .bearer_auth(&access)
            .send()
    };
    assert_eq!(me().await.unwrap().status(), 200);
    let r = s
        .req(Method::POST, "/api/v1/auth/logout")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        me().await.unwrap().status(),
        401,
        "logout revokes the token"
    );

    // Whoop has no secret configured here: even a "signature" with the empty key is refused.
    let body = br#"{"user_id":10129,"id":"s-1","type":"sleep.updated","trace_id":"t"}"#;
    let ts = (chrono::Utc::now().timestamp_millis()).to_string();
    let sign = |key: &[u8], ts: &str| {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(ts.as_bytes());
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    };
    let (st, v) = call(
        s.req(Method::POST, "/api/v1/providers/whoop/webhooks")
            .header("content-type", "application/json")
            .header("x-whoop-signature-timestamp", &ts)
            .header(
                "x-whoop-signature",
                base64::engine::general_purpose::STANDARD.encode(sign(b"", &ts)),
            )
            .body(body.to_vec()),
    )
    .await;
    assert_eq!(st, 401, "{v}");

    // Oura, with a secret: a validly signed delivery whose timestamp does not parse.
    let body = br#"{"event_type":"create","data_type":"sleep","object_id":"s1","user_id":"u-9"}"#;
    for ts in ["yesterday", "", "1e10", "2026-13-45T99:00:00Z"] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"oura-secret").unwrap();
        mac.update(ts.as_bytes());
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        let (st, v) = call(
            s.req(Method::POST, "/api/v1/providers/oura/webhooks")
                .header("content-type", "application/json")
                .header("x-oura-timestamp", ts)
                .header("x-oura-signature", sig)
                .body(body.to_vec()),
        )
        .await;
        assert_eq!(st, 401, "{ts:?}: {v}");
    }
}

/// Item 13: a developer manages the API keys it created only; deleting a user's provider data
/// takes a developer JWT, like deleting the user.
#[tokio::test]
async fn api_keys_belong_to_their_creator_and_data_deletion_needs_a_jwt() {
    let mut a = Server::start().await;
    let jwt_a = a.login().await;
    let (st, created) = call(
        a.req(Method::POST, "/api/v1/developer/api-keys")
            .bearer_auth(&jwt_a)
            .json(&json!({"name": "a's key"})),
    )
    .await;
    assert_eq!(st, 201);
    let key = created["key"].as_str().unwrap().to_string();
    let key_id = created["id"].as_str().unwrap().to_string();
    let user = create_user(&a, &key).await;
    a.shutdown().await;
    // The same database, a second developer.
    let b = Server::start_with(
        TestDb {
            name: a.db.name.clone(),
            url: a.db.url.clone(),
        },
        &[
            ("WEARHOUSE_ADMIN_EMAIL", "second@test.local"),
            ("WEARHOUSE_ADMIN_PASSWORD", "second-password-2"),
        ],
    )
    .await;
    let jwt_b = {
        let (st, v) = call(b.req(Method::POST, "/api/v1/auth/login").form(&[
            ("username", "second@test.local"),
            ("password", "second-password-2"),
        ]))
        .await;
        assert_eq!(st, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    };
    for (m, path) in [
        (
            Method::PATCH,
            format!("/api/v1/developer/api-keys/{key_id}"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/developer/api-keys/{key_id}"),
        ),
        (
            Method::POST,
            format!("/api/v1/developer/api-keys/{key_id}/rotate"),
        ),
    ] {
        let (st, v) = call(
            b.req(m.clone(), &path)
                .bearer_auth(&jwt_b)
                .json(&json!({"name": "stolen"})),
        )
        .await;
        assert_eq!(st, 403, "{m} {path}: {v}");
    }
    // The key still works.
    let (st, _) = call(b.req(Method::GET, "/api/v1/users").header(KEY_HEADER, &key)).await;
    assert_eq!(st, 200);
    // An API key cannot delete a user's provider data; a developer JWT gets past auth.
    let path = format!("/api/v1/users/{user}/connections/garmin/data");
    let (st, v) = call(b.req(Method::DELETE, &path).header(KEY_HEADER, &key)).await;
    assert_eq!(st, 401, "{v}");
    let (st, v) = call(b.req(Method::DELETE, &path).bearer_auth(&jwt_b)).await;
    assert_eq!(st, 404, "no connection, but authorized: {v}");
    drop(b);
}
