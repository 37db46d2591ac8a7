//! The provider simulator (what `wearhouse simulate providers` serves), run in the test's own
//! runtime on a port the kernel chose, and the settings that point a server at it.

use serde_json::{json, Value};

/// The client secret the simulator expects and signs webhooks with.
pub const SECRET: &str = "sim-secret";
/// The secret in the Garmin push URL (as registered at Garmin).
pub const GARMIN_PUSH_TOKEN: &str = "garmin-push-token-0123456789abcdef";

/// The simulator, stopped on drop.
pub struct Sim {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
    /// A client that does not follow redirects (consent pages answer with them).
    pub http: reqwest::Client,
}

impl Sim {
    /// Starts it on a free port, serving `page_size` records per page. It answers at once: the
    /// listener is bound before this returns.
    pub async fn start(page_size: usize) -> Sim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the simulator");
        let port = listener.local_addr().unwrap().port();
        // Where `simulate providers` pushes Garmin data by default (tests point it elsewhere
        // through `/_sim/config`).
        let push =
            "http://127.0.0.1:8000/api/v1/providers/garmin/webhooks?token=sim-garmin-push-token";
        let app = wearhouse::simulator::app(SECRET.into(), page_size, Some(push.into()));
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let task = tokio::spawn(async move {
            if let Err(e) = poem::Server::new_with_acceptor(acceptor).run(app).await {
                panic!("simulator stopped: {e}");
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Sim { url, task, http }
    }

    /// The settings that make a server use the simulated providers.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "WEARHOUSE_GARMIN_PUSH_TOKEN".to_string(),
            GARMIN_PUSH_TOKEN.to_string(),
        )];
        for p in ["oura", "whoop", "garmin", "strava", "ultrahuman", "fitbit"] {
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

    /// The data requests the simulator served.
    pub async fn requests(&self) -> Vec<String> {
        self.http
            .get(format!("{}/_sim/requests", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every request served, with its arrival in Unix milliseconds.
    pub async fn request_log(&self) -> Vec<(String, i64)> {
        let log: Vec<Value> = self
            .http
            .get(format!("{}/_sim/request_log", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log.iter()
            .map(|e| {
                (
                    e["request"].as_str().unwrap().to_string(),
                    e["at_ms"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}
