//! TLS for every Postgres connection (the pool, LISTEN connections, the Kafka worker), with
//! rustls. `DATABASE_URL`'s `sslmode` decides whether TLS is used (libpq's names: disable,
//! allow, prefer, require, verify-ca, verify-full); when TLS is used, the server's certificate
//! is always verified, against `sslrootcert` when the URL names one, else the system's trust
//! store. That is stricter than libpq's `require`, which accepts any certificate.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid DATABASE_URL: {0}")]
    Url(String),
    #[error("sslrootcert {path}: {reason}")]
    RootCert { path: String, reason: String },
}

static CONNECTOR: OnceLock<MakeRustlsConnect> = OnceLock::new();

/// The connector every connection of this process uses: the one [`configure`] built, else
/// one trusting the system's roots.
pub fn connector() -> MakeRustlsConnect {
    CONNECTOR
        .get_or_init(|| build(None).expect("system roots need no file"))
        .clone()
}

fn build(root_cert: Option<&PathBuf>) -> Result<MakeRustlsConnect, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let bad = |reason: String| TlsError::RootCert {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = pem_certs(&pem);
            if certs.is_empty() {
                return Err(bad("no PEM certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates of a PEM file.
fn pem_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// Parses a database URL (or key=value string) into a config, taking out what tokio-postgres
/// does not know (`sslrootcert`, `verify-ca`, `verify-full`, `allow`), and builds the
/// process's TLS connector. Without an explicit `sslmode`, loopback and unix-socket hosts
/// connect without TLS and others prefer it (libpq's default).
pub fn configure(url: &str) -> Result<tokio_postgres::Config, TlsError> {
    let (config, root_cert) = parse(url)?;
    let connector = build(root_cert.as_ref())?;
    // The first configuration wins: one process talks to one database.
    let _ = CONNECTOR.set(connector);
    Ok(config)
}

fn parse(url: &str) -> Result<(tokio_postgres::Config, Option<PathBuf>), TlsError> {
    let mut root_cert: Option<PathBuf> = None;
    let mut explicit = false;
    let cleaned = match split_url(url) {
        Some((base, pairs)) => {
            let mut kept = vec![];
            for (k, v) in pairs {
                match k.as_str() {
                    "sslrootcert" => root_cert = Some(PathBuf::from(v)),
                    "sslmode" => {
                        explicit = true;
                        let mode = match v.as_str() {
                            "verify-ca" | "verify-full" => "require",
                            "allow" => "prefer",
                            other => other,
                        };
                        kept.push(format!("sslmode={mode}"));
                    }
                    _ => kept.push(format!("{}={}", encode(&k), encode(&v))),
                }
            }
            if kept.is_empty() {
                base
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        None => {
            explicit = url.contains("sslmode");
            url.to_string()
        }
    };
    let mut config =
        tokio_postgres::Config::from_str(&cleaned).map_err(|e| TlsError::Url(e.to_string()))?;
    if !explicit && config.get_hosts().iter().all(is_local) {
        config.ssl_mode(SslMode::Disable);
    }
    Ok((config, root_cert))
}

fn is_local(h: &Host) -> bool {
    match h {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }
}

/// Splits a `postgres://` / `postgresql://` URL into the part before `?` and its decoded
/// query pairs; `None` for key=value strings.
fn split_url(url: &str) -> Option<(String, Vec<(String, String)>)> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return None;
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some((base.to_string(), pairs))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> SslMode {
        parse(url).unwrap().0.get_ssl_mode()
    }

    #[test]
    fn sslmode_names_of_libpq_are_understood() {
        assert_eq!(
            mode("postgres://u:p@db.example.com:5432/app?sslmode=verify-full"),
            SslMode::Require
        );
        let (c, _) =
            parse("postgres://u@db.example.com/app?sslmode=verify-ca&application_name=a%20b")
                .unwrap();
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        assert_eq!(c.get_application_name(), Some("a b"));
        assert_eq!(
            mode("postgres://u@db.example.com/app?sslmode=disable"),
            SslMode::Disable
        );
        // No sslmode: remote hosts prefer TLS, local ones do without.
        assert_eq!(mode("postgres://u@db.example.com/app"), SslMode::Prefer);
        assert_eq!(
            mode("postgres://postgres@127.0.0.1:55439/postgres"),
            SslMode::Disable
        );
        assert_eq!(
            mode("postgres://postgres@127.0.0.1:55439/postgres?sslmode=require"),
            SslMode::Require
        );
        let (_, root) =
            parse("postgres://u@h/app?sslmode=verify-full&sslrootcert=/etc/ca%20x.pem").unwrap();
        assert_eq!(root, Some(PathBuf::from("/etc/ca x.pem")));
    }

    #[test]
    fn a_missing_or_empty_root_certificate_is_an_error() {
        let err = configure("postgres://u@h/app?sslmode=verify-full&sslrootcert=/nonexistent.pem")
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent.pem"), "{err}");
        let empty = std::env::temp_dir().join(format!("empty-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&empty, "not a certificate").unwrap();
        let url = format!(
            "postgres://u@h/app?sslmode=verify-full&sslrootcert={}",
            empty.display()
        );
        assert!(configure(&url).is_err());
        std::fs::remove_file(empty).unwrap();
    }
}
