//! The database connection's security: the private cluster asks for a password on TCP (scram,
//! password generated into WEARHOUSE_HOME with mode 0600, `wearhouse db url` carries it), and
//! a DATABASE_URL with `sslmode=verify-full` talks TLS and verifies the server's certificate.
//! Runs a private cluster of its own (own home, own port); needs PostgreSQL 15 installed
//! (scripts/install-deps.sh) and the openssl command.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bin, free_port};

struct Cluster {
    home: PathBuf,
    port: u16,
}

impl Cluster {
    fn wearhouse(&self, args: &[&str], database_url: Option<&str>) -> Output {
        let mut c = Command::new(bin());
        c.args(args)
            .env("WEARHOUSE_HOME", &self.home)
            .env("WEARHOUSE_PG_PORT", self.port.to_string())
            .env("WEARHOUSE_LOG", "warn")
            .env_remove("DATABASE_URL");
        if let Some(u) = database_url {
            c.env("DATABASE_URL", u);
        }
        c.output().unwrap()
    }

    /// SQL over the cluster's unix socket (trusted) as `postgres`.
    fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.home.join("pgsock"))
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.wearhouse(&["db", "stop"], None);
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// A CA and a server certificate for 127.0.0.1 it signed, installed in the cluster's data
/// directory; returns the CA's certificate.
fn install_certificate(c: &Cluster) -> PathBuf {
    let dir = c.home.join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let steps: [Vec<String>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=wearhouse-test-ca",
        ]
        .into_iter()
        .map(String::from)
        .chain(["-keyout".into(), p("ca.key"), "-out".into(), p("ca.crt")])
        .collect(),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ]
        .into_iter()
        .map(String::from)
        .chain([
            "-keyout".into(),
            p("server.key"),
            "-out".into(),
            p("server.csr"),
        ])
        .collect(),
        vec!["x509", "-req", "-days", "1", "-CAcreateserial"]
            .into_iter()
            .map(String::from)
            .chain([
                "-in".into(),
                p("server.csr"),
                "-CA".into(),
                p("ca.crt"),
                "-CAkey".into(),
                p("ca.key"),
                "-extfile".into(),
                p("ext.cnf"),
                "-out".into(),
                p("server.crt"),
            ])
            .collect(),
    ];
    for args in steps {
        let out = Command::new("openssl").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    let data = c.home.join("pgdata");
    for (from, name) in [(&crt, "server.crt"), (&key, "server.key")] {
        let to = data.join(name);
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        if as_root() {
            let s = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&to)
                .status()
                .unwrap();
            assert!(s.success());
        }
    }
    dir.join("ca.crt")
}

fn url_with(url: &str, host: &str, query: &str) -> String {
    let url = url.replace("@127.0.0.1:", &format!("@{host}:"));
    format!("{url}?{query}")
}

#[test]
fn private_cluster_needs_its_password_on_tcp_and_tls_is_verified() {
    let home = std::env::temp_dir().join(format!("wh-dbsec-{}", uuid::Uuid::new_v4()));
    let c = Cluster {
        home: home.clone(),
        port: free_port(),
    };
    let url = ok(&c.wearhouse(&["db", "start"], None));
    // The URL carries a generated password, kept 0600 in WEARHOUSE_HOME.
    let pw = std::fs::read_to_string(home.join("pg.password")).unwrap();
    assert!(pw.len() >= 32);
    assert!(url.contains(&format!("postgres:{pw}@127.0.0.1")), "{url}");
    let mode = std::fs::metadata(home.join("pg.password"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(ok(&c.wearhouse(&["db", "url"], None)), url);
    assert!(!ok(&c.wearhouse(&["db", "status"], None)).contains(&pw));
    // TCP without the password is refused; with the URL (and by default) it works.
    let no_password = url.replace(&format!(":{pw}@"), "@");
    let out = c.wearhouse(&["migrate"], Some(&no_password));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&c.wearhouse(&["migrate"], Some(&url)));
    ok(&c.wearhouse(&["migrate"], None));
    let hba = std::fs::read_to_string(home.join("pgdata/pg_hba.conf")).unwrap();
    assert!(!hba
        .lines()
        .any(|l| l.starts_with("host") && l.contains("trust")));

    // TLS: the server gets a certificate and refuses TCP without TLS.
    let crt = install_certificate(&c);
    c.psql("ALTER SYSTEM SET ssl = on");
    std::fs::write(
        home.join("pgdata/pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    c.psql("SELECT pg_reload_conf()");
    assert_eq!(c.psql("SHOW ssl"), "on");
    // Verified against the certificate named by sslrootcert: connects (over TLS, since plain
    // TCP is rejected).
    let verified = url_with(
        &url,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", crt.display()),
    );
    ok(&c.wearhouse(&["migrate"], Some(&verified)));
    // Without TLS: rejected by the server.
    let out = c.wearhouse(
        &["migrate"],
        Some(&url_with(&url, "127.0.0.1", "sslmode=disable")),
    );
    assert!(!out.status.success());
    // TLS without a trusted root: the self-signed certificate is refused by the client.
    let out = c.wearhouse(
        &["migrate"],
        Some(&url_with(&url, "127.0.0.1", "sslmode=require")),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("issuer"),
        "{err}"
    );
    // A named root file that does not exist is reported.
    let out = c.wearhouse(
        &["migrate"],
        Some(&url_with(
            &url,
            "127.0.0.1",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ca.pem"));
    assert!(Path::new(&home).exists());
}
