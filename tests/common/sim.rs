//! The provider simulator (`wearhouse simulate providers`) as a child process of a test, and the
//! settings that point a server at it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{bin, free_port};

/// The client secret the simulator expects and signs webhooks with.
pub const SECRET: &str = "sim-secret";
/// The secret in the Garmin push URL (as registered at Garmin).
pub const GARMIN_PUSH_TOKEN: &str = "garmin-push-token-0123456789abcdef";

/// The simulator, killed on drop.
pub struct Sim {
    pub url: String,
    child: Child,
    /// A client that does not follow redirects (consent pages answer with them).
    pub http: reqwest::Client,
}

impl Sim {
    /// Starts it on a free port, serving `page_size` records per page, and waits until it answers.
    pub async fn start(page_size: usize) -> Sim {
        let port = free_port();
        let child = Command::new(bin())
            .args(["simulate", "providers", "--port", &port.to_string()])
            .args(["--client-secret", SECRET])
            .args(["--page-size", &page_size.to_string()])
            .env("WEARHOUSE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start simulator");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http
            .get(format!("{url}/_sim/requests"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "simulator did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Sim { url, child, http }
    }

    /// The settings that make a server use the simulated Oura, Whoop and Garmin.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "WEARHOUSE_GARMIN_PUSH_TOKEN".to_string(),
            GARMIN_PUSH_TOKEN.to_string(),
        )];
        for p in ["oura", "whoop", "garmin"] {
            let (up, url) = (p.to_uppercase(), &self.url);
            env.push((format!("WEARHOUSE_{up}_CLIENT_ID"), format!("{p}-client")));
            env.push((format!("WEARHOUSE_{up}_CLIENT_SECRET"), SECRET.into()));
            env.push((
                format!("WEARHOUSE_{up}_AUTHORIZE_URL"),
                format!("{url}/{p}/oauth/authorize"),
            ));
            env.push((
                format!("WEARHOUSE_{up}_TOKEN_URL"),
                format!("{url}/{p}/oauth/token"),
            ));
            env.push((format!("WEARHOUSE_{up}_API_URL"), format!("{url}/{p}/api")));
        }
        env
    }

    /// POSTs a control request (`/_sim/faults`, `/_sim/config`, ...), which answers 204.
    pub async fn post(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
    }

    /// A webhook signed by the simulator (with a wrong secret when `wrong`, and a signed
    /// timestamp `offset_secs` away from now) and delivered to `target`: (status, body).
    pub async fn webhook_at(
        &self,
        provider: &str,
        target: &str,
        body: Value,
        wrong: bool,
        offset_secs: i64,
    ) -> (u16, String) {
        let r: Value = self
            .http
            .post(format!("{}/_sim/webhook", self.url))
            .json(
                &json!({"provider": provider, "target": target, "body": body,
                          "wrong_secret": wrong, "timestamp_offset_secs": offset_secs}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            r["status"].as_u64().unwrap() as u16,
            r["body"].as_str().unwrap_or("").to_string(),
        )
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
