//! The throw-away PostgreSQL server `.ci/run` starts for the database tests: its URL, `psql`
//! against it, and stopping and starting it with `pg_ctl` as the user that owns its data.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What the tests read to find the server; `.ci/run` exports them.
pub const URL_VARIABLE: &str = "BUVAR_TEST_DATABASE_URL";
const PGDATA_VARIABLE: &str = "BUVAR_TEST_PGDATA";
const BINDIR_VARIABLE: &str = "BUVAR_TEST_PG_BINDIR";

/// The server, as `.ci/run` describes it in the environment.
#[derive(Debug, Clone)]
pub struct Postgres {
    url: String,
    pgdata: PathBuf,
    bindir: PathBuf,
}

fn variable(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run these tests with `bash .ci/run test`, which starts a \
             throw-away PostgreSQL and exports {URL_VARIABLE}, {PGDATA_VARIABLE} and \
             {BINDIR_VARIABLE}"
        )
    })
}

impl Postgres {
    /// The server `.ci/run` started.
    ///
    /// # Panics
    ///
    /// When the variables are not set, naming them and how to set them.
    pub fn from_env() -> Self {
        Self {
            url: variable(URL_VARIABLE),
            pgdata: variable(PGDATA_VARIABLE).into(),
            bindir: variable(BINDIR_VARIABLE).into(),
        }
    }

    /// The URL of `database` on this server (user and password included).
    pub fn url(&self, database: &str) -> String {
        let (server, _) = self
            .url
            .rsplit_once('/')
            .expect("a URL ending in /database");
        format!("{server}/{database}")
    }

    /// The password in the URL, for tests that check it is never shown.
    pub fn password(&self) -> String {
        let (userinfo, _) = self.url["postgres://".len()..]
            .split_once('@')
            .expect("a URL with user and password");
        userinfo.split_once(':').expect("a password").1.to_owned()
    }

    /// `host:port` of the server.
    pub fn host_port(&self) -> String {
        let (_, rest) = self.url.split_once('@').expect("a URL with a host");
        rest.split('/').next().expect("host:port").to_owned()
    }

    /// Runs `sql` in `database` with psql and returns its unaligned output.
    ///
    /// # Panics
    ///
    /// When psql fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bindir.join("psql"))
            .args(["--no-psqlrc", "--tuples-only", "--no-align", "--quiet"])
            .arg(format!("--dbname={}", self.url(database)))
            .args(["--command", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// A new, empty database named `name` (dropped first if a run before left it).
    pub fn fresh_database(&self, name: &str) -> String {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        );
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Stops the server (fast: sessions are closed, as on a database restart).
    pub fn stop(&self) {
        self.pg_ctl(&["--mode=fast", "stop"]);
    }

    /// Starts the server again and waits until it accepts connections.
    pub fn start(&self) {
        let log = self.pgdata.with_file_name("server.log");
        self.pg_ctl(&[&format!("--log={}", log.display()), "start"]);
    }

    /// `pg_ctl` as the owner of the data directory: PostgreSQL refuses to run as root.
    fn pg_ctl(&self, args: &[&str]) {
        let owner = std::fs::metadata(&self.pgdata).expect("the data directory exists");
        let mut command = Command::new(self.bindir.join("pg_ctl"));
        command
            .arg(format!("--pgdata={}", self.pgdata.display()))
            .arg("--wait")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if nix::unistd::geteuid().is_root() && owner.uid() != 0 {
            command.uid(owner.uid()).gid(owner.gid());
        }
        let status = command.status().expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl {args:?} failed with {status}");
    }
}
