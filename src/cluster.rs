//! The private PostgreSQL cluster: the embedded default when DATABASE_URL is unset. It lives in
//! WEARHOUSE_HOME (own data directory, own port on 127.0.0.1, own unix socket) and loads
//! TimescaleDB when it is installed (scripts/install-deps.sh builds it).
//!
//! Authentication: TCP connections need the `postgres` password (scram-sha-256), generated once
//! and kept in WEARHOUSE_HOME/pg.password (mode 0600); only the unix socket, in a directory
//! only the cluster's owner can enter, is trusted. Clusters created with `trust` on TCP by
//! earlier versions are switched over on their next start.
//!
//! As root, PostgreSQL runs as the `postgres` user, which cannot enter a home folder of mode
//! 0700 (`/root`). When WEARHOUSE_HOME is out of its reach, the cluster's files go to
//! `/var/lib/postgresql/wearhouse/<hash of WEARHOUSE_HOME>` instead (logged at setup, shown by
//! `wearhouse db status`); generated keys stay in WEARHOUSE_HOME.

use std::path::{Path, PathBuf};
use std::process::Command;

use tracing::{info, warn};

use crate::config::DbConfig;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const DB_NAME: &str = "wearhouse";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("PostgreSQL 15 server binaries not found in {PG_BIN}: run scripts/install-deps.sh")]
    NoPostgres,
    /// `detail` is the one line of the tool's output that says what went wrong; the whole
    /// output is logged at debug level.
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError {
    let path = path.to_path_buf();
    move |source| ClusterError::Io { what, path, source }
}

/// The line of a tool's output worth showing: its first error line (initdb, pg_ctl and psql
/// print hints and progress around it), else its last line.
fn error_line(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.contains("error:") || l.starts_with("FATAL") || l.starts_with("ERROR"))
        .or(lines.last())
        .map(|l| l.to_string())
        .unwrap_or_else(|| "no output".into())
}

pub struct Cluster {
    pub data: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    /// The `postgres` role's password (hex), mode 0600.
    pub password_file: PathBuf,
    /// WEARHOUSE_HOME, absolute.
    pub home: PathBuf,
}

/// Who may connect how: the socket (its directory is private) trusts, TCP needs the password.
const PG_HBA: &str = "# wearhouse private cluster (rewritten on every start)\n\
local all all trust\n\
host all all 127.0.0.1/32 scram-sha-256\n\
host all all ::1/128 scram-sha-256\n";

/// initdb and postgres refuse to run as root, so as root they run as `postgres` via `runuser`.
/// `/proc/self` is owned by the process's effective user.
fn as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

pub fn timescaledb_installed() -> bool {
    Path::new("/usr/lib/postgresql/15/lib/timescaledb.so").exists()
}

/// Where the `postgres` user keeps clusters it could not reach in WEARHOUSE_HOME.
const FALLBACK_ROOT: &str = "/var/lib/postgresql/wearhouse";

/// Whether the `postgres` user can enter `dir` (or, when it does not exist yet, its nearest
/// existing ancestor: folders created for it get the usual 0755).
fn postgres_can_enter(dir: &Path) -> bool {
    let Some(existing) = dir.ancestors().find(|d| d.exists()) else {
        return false;
    };
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(existing)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The folder holding `pgdata` and `pgsock`: WEARHOUSE_HOME, unless PostgreSQL runs as
/// `postgres` (we are root) and that user cannot reach it, and no cluster exists there yet.
fn cluster_base(home: &Path) -> PathBuf {
    if !as_root() || home.join("pgdata/PG_VERSION").exists() || postgres_can_enter(home) {
        return home.to_path_buf();
    }
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(home.as_os_str().as_encoded_bytes()));
    Path::new(FALLBACK_ROOT).join(&hash[..16])
}

impl Cluster {
    pub fn new(cfg: &DbConfig) -> Self {
        let home = std::path::absolute(&cfg.home).unwrap_or_else(|_| cfg.home.clone());
        let base = cluster_base(&home);
        Cluster {
            data: base.join("pgdata"),
            socket: base.join("pgsock"),
            log: base.join("pgsock").join("postgres.log"),
            port: cfg.pg_port,
            password_file: home.join("pg.password"),
            home,
        }
    }

    /// True when the cluster lives outside WEARHOUSE_HOME (see the module comment).
    pub fn relocated(&self) -> bool {
        !self.data.starts_with(&self.home)
    }

    /// The URL of the `wearhouse` database, with the password once there is one.
    pub fn url(&self) -> String {
        match std::fs::read_to_string(&self.password_file) {
            Ok(pw) => format!(
                "postgres://postgres:{}@127.0.0.1:{}/{DB_NAME}",
                pw.trim(),
                self.port
            ),
            Err(_) => format!("postgres://postgres@127.0.0.1:{}/{DB_NAME}", self.port),
        }
    }

    /// The password, generated (random, 0600) the first time.
    fn password(&self) -> Result<String, ClusterError> {
        if let Ok(pw) = std::fs::read_to_string(&self.password_file) {
            if pw.trim().len() >= 32 {
                return Ok(pw.trim().to_string());
            }
        }
        let pw = crate::auth::random_hex(32);
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.password_file)
            .and_then(|mut f| f.write_all(pw.as_bytes()))
            .map_err(io("write", &self.password_file))?;
        Ok(pw)
    }

    /// Password authentication on TCP: sets the role's password over the socket, then
    /// installs `PG_HBA` and reloads. Idempotent; also upgrades `trust` clusters.
    fn secure(&self) -> Result<(), ClusterError> {
        let pw = self.password()?;
        // Through stdin, so the password is not on a command line.
        self.psql_stdin(
            "postgres",
            &format!("SET password_encryption = 'scram-sha-256';\nALTER ROLE postgres PASSWORD '{pw}';\n"),
        )?;
        let hba = self.data.join("pg_hba.conf");
        std::fs::write(&hba, PG_HBA).map_err(io("write", &hba))?;
        self.psql("postgres", "SELECT pg_reload_conf()")?;
        Ok(())
    }

    fn pg(&self, tool: &str) -> Command {
        let path = format!("{PG_BIN}/{tool}");
        if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, what: &str, mut cmd: Command) -> Result<String, ClusterError> {
        let out = cmd.output().map_err(|source| ClusterError::Spawn {
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        if !out.status.success() {
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            tracing::debug!(what, output = %all.trim(), "command failed");
            return Err(ClusterError::Command {
                what: what.into(),
                detail: error_line(&all),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    pub fn is_initialized(&self) -> bool {
        self.data.join("PG_VERSION").exists()
    }

    /// Creates the data directory when missing. Idempotent.
    pub fn setup(&self) -> Result<(), ClusterError> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            return Err(ClusterError::NoPostgres);
        }
        std::fs::create_dir_all(&self.socket).map_err(io("create", &self.socket))?;
        std::fs::create_dir_all(&self.data).map_err(io("create", &self.data))?;
        // The socket is trusted, so only the cluster's owner may reach it.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.socket, std::fs::Permissions::from_mode(0o700))
                .map_err(io("chmod", &self.socket))?;
        }
        if as_root() {
            self.run("chown", {
                let mut c = Command::new("chown");
                c.arg("postgres:postgres").arg(&self.data).arg(&self.socket);
                c
            })?;
        }
        if self.is_initialized() {
            return Ok(());
        }
        if self.relocated() {
            info!(
                data = %self.data.display(),
                home = %self.home.display(),
                "the postgres user cannot enter WEARHOUSE_HOME: the private cluster keeps its data in {} instead",
                self.data.display()
            );
        }
        info!(data = %self.data.display(), "creating the private PostgreSQL cluster");
        let mut initdb = self.pg("initdb");
        initdb.arg("-D").arg(&self.data).args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]);
        self.run("initdb", initdb)?;
        let preload = if timescaledb_installed() {
            "shared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off\n"
        } else {
            warn!("TimescaleDB is not installed: the private cluster runs without it (plain range partitioning)");
            ""
        };
        // synchronous_commit=off keeps the cluster crash-consistent (no fsync=off) while making
        // small commits cheap; a power loss can lose the last few hundred milliseconds.
        let conf = format!(
            "\n# wearhouse private cluster\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n{preload}\
             synchronous_commit = off\nmax_connections = 200\nshared_buffers = 256MB\nmax_wal_size = 2GB\n",
            self.port,
            self.socket.display()
        );
        use std::io::Write;
        let conf_path = self.data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(io("write", &conf_path))?;
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.is_initialized()
            && self
                .pg("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .arg("status")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
    }

    /// Sets up and starts the cluster unless it already runs, then makes sure the
    /// `wearhouse` database exists. Returns its URL.
    pub fn start(&self) -> Result<String, ClusterError> {
        self.setup()?;
        if !self.is_running() {
            info!(port = self.port, "starting the private PostgreSQL cluster");
            let mut ctl = self.pg("pg_ctl");
            ctl.arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(["-w", "-t", "60", "start"]);
            self.run("pg_ctl start", ctl).map_err(|e| match e {
                ClusterError::Command { what, detail } => ClusterError::Command {
                    what,
                    detail: format!("{detail} (see {})", self.log.display()),
                },
                e => e,
            })?;
        }
        self.secure()?;
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"),
        )?;
        if exists.trim() != "1" {
            self.psql("postgres", &format!("CREATE DATABASE {DB_NAME}"))?;
        }
        Ok(self.url())
    }

    pub fn stop(&self) -> Result<bool, ClusterError> {
        if !self.is_running() {
            return Ok(false);
        }
        let mut ctl = self.pg("pg_ctl");
        ctl.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]);
        self.run("pg_ctl stop", ctl)?;
        Ok(true)
    }

    fn psql(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ]);
        self.run("psql", c)
    }

    fn psql_stdin(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        use std::io::Write;
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().map_err(io("run", Path::new("psql")))?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(sql.as_bytes())
            .map_err(io("write to", Path::new("psql")))?;
        let out = child
            .wait_with_output()
            .map_err(io("run", Path::new("psql")))?;
        if !out.status.success() {
            return Err(ClusterError::Command {
                what: "psql".into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    pub fn status(&self) -> String {
        format!(
            "home: {}\ndata directory: {}{}\ninitialized: {}\nrunning: {}\nport: {} (127.0.0.1)\nsocket: {}\ntimescaledb installed: {}\nurl: {}",
            self.home.display(),
            self.data.display(),
            if self.relocated() {
                " (outside home: the postgres user cannot enter it)"
            } else {
                ""
            },
            self.is_initialized(),
            self.is_running(),
            self.port,
            self.socket.display(),
            timescaledb_installed(),
            format_args!(
                "postgres://postgres:***@127.0.0.1:{}/{DB_NAME} (password in {}; `wearhouse db url` prints it)",
                self.port,
                self.password_file.display()
            )
        )
    }
}
