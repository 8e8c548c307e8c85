//! A real PostgreSQL server for the tests, started from the machine's
//! PostgreSQL binaries (as the `postgres` user when the tests run as root).
//! A missing server is a failure, never a skip.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
];

/// A running server; stopped (fast shutdown) when dropped.
pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    user: Option<(u32, u32)>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Initialises a new cluster in a temporary directory and starts it.
    pub fn start() -> PgServer {
        let bin = BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|dir| dir.join("initdb").exists())
            .expect("PostgreSQL server binaries not found: install postgresql-15 (see .ci/run)");
        let user = running_as_root().then(postgres_user);
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if let Some((uid, gid)) = user {
            chown(dir.path(), Some(uid), Some(gid)).unwrap();
            chown(&data, Some(uid), Some(gid)).unwrap();
        }
        let status = as_user(Command::new(bin.join("initdb")), user)
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        // The superuser the tests administer with is trusted; every other
        // role proves its password, as a module's role does in production.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let mut server = PgServer {
            port: crate::process::free_port(),
            bin,
            data,
            user,
            child: None,
            _dir: dir,
        };
        server.resume();
        server
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server (fast shutdown), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data, waiting until it answers.
    pub fn resume(&mut self) {
        let mut command = as_user(Command::new(self.bin.join("postgres")), self.user);
        command
            .arg("-D")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
            ])
            .arg(self.data.parent().unwrap())
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=500", "-c", "shared_buffers=32MB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SIGINT: PostgreSQL's fast shutdown.
        crate::process::die_with_parent(&mut command, libc::SIGINT);
        self.child = Some(command.spawn().expect("postgres starts"));
        self.wait_until_ready();
    }
}

impl PgServer {
    /// Waits until the server accepts connections, not only TCP: while it
    /// starts up it refuses them ("the database system is starting up").
    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres in {} did not start",
                self.data.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn running_as_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id runs");
        assert!(
            out.status.success(),
            "running as root needs a `postgres` user (install postgresql-15)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn as_user(mut command: Command, user: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

/// The server every test shares, started once per test run. It lives on a
/// thread of its own because the parent-death signal follows the thread
/// that started it.
pub fn shared() -> &'static SharedServer {
    static SERVER: OnceLock<SharedServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server = PgServer::start();
            tx.send(SharedServer { port: server.port }).unwrap();
            crate::process::until_exit(server);
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the shared PostgreSQL server started")
    })
}

pub struct SharedServer {
    port: u16,
}

impl SharedServer {
    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        use sqlx::Connection as _;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        // The server accepts TCP before it serves queries ("starting up"): retry a while.
        let mut attempts = 0;
        let mut conn = loop {
            match sqlx::PgConnection::connect(&admin).await {
                Ok(conn) => break conn,
                Err(_) if attempts < 100 => attempts += 1,
                Err(error) => panic!("cannot connect to the test server: {error}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}
