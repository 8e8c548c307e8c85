//! A real RabbitMQ for the tests, from Debian's `rabbitmq-server`, on free
//! ports with its files (and its own epmd) in a temporary directory. Tests
//! that can share one get a virtual host each of [`shared`]; those that stop
//! the broker start their own. A missing server is a failure, never a skip.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::process::{die_with_parent, free_port};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const EPMD: &[&str] = &["/usr/bin/epmd", "/usr/lib/erlang/bin/epmd"];
/// The user every test connects as, and its password.
const USER: &str = "app";
pub const PASSWORD: &str = "broker-secret";
/// `PASSWORD` salted with 01020304 and hashed with SHA-256, as RabbitMQ's
/// definitions hold it.
const PASSWORD_HASH: &str = "AQIDBO2YfCGbNtvUfo9w5MXCJPgaVYF7qWbB3+sn9xdhN74p";
/// The virtual hosts a broker starts with, one per test that shares it.
const VHOSTS: usize = 48;

pub struct RabbitMq {
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    dir: tempfile::TempDir,
    server: Option<Child>,
    epmd: Option<Child>,
}

impl RabbitMq {
    /// A broker of its own, started and ready.
    pub fn start() -> RabbitMq {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let vhosts: Vec<String> = (1..=VHOSTS).map(|n| format!("v{n}")).collect();
        let definitions = serde_json::json!({
            "users": [{"name": USER, "password_hash": PASSWORD_HASH,
                       "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
            "vhosts": vhosts.iter().map(|name| serde_json::json!({"name": name})).collect::<Vec<_>>(),
            "permissions": vhosts.iter().map(|name| serde_json::json!(
                {"user": USER, "vhost": name, "configure": ".*", "write": ".*", "read": ".*"}
            )).collect::<Vec<_>>(),
        });
        std::fs::write(root.join("definitions.json"), definitions.to_string()).unwrap();
        std::fs::write(
            root.join("rabbitmq.conf"),
            format!(
                "definitions.import_backend = local_filesystem\n\
                 definitions.local.path = {}\n\
                 disk_free_limit.absolute = 10MB\n\
                 default_vhost = v1\n",
                root.join("definitions.json").display()
            ),
        )
        .unwrap();
        std::fs::write(root.join("advanced.config"), "[].\n").unwrap();
        std::fs::write(root.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(root.join("rabbitmq-env.conf"), "").unwrap();
        let mut broker = RabbitMq {
            port: free_port(),
            dist_port: free_port(),
            epmd_port: free_port(),
            dir,
            server: None,
            epmd: None,
        };
        broker.launch();
        broker
    }

    /// `amqp://app:PASSWORD@127.0.0.1:PORT/VHOST`: secret, so given to the
    /// app through `APP_BROKER_URL`.
    pub fn url(&self, vhost: &str) -> String {
        format!("amqp://{USER}:{PASSWORD}@127.0.0.1:{}/{vhost}", self.port)
    }

    /// Kills the server at once, as a crash would; what it confirmed is
    /// on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and files: its durable queues and
    /// persistent messages are back.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn launch(&mut self) {
        assert!(
            Path::new(SERVER).exists(),
            "rabbitmq-server not found: install Debian's rabbitmq-server (see .ci/run)"
        );
        let root = self.dir.path();
        if self.epmd.is_none() {
            let epmd = EPMD
                .iter()
                .find(|path| Path::new(path).exists())
                .expect("epmd not found: install Debian's erlang (rabbitmq-server needs it)");
            let mut command = Command::new(epmd);
            command
                .args([
                    "-port",
                    &self.epmd_port.to_string(),
                    "-address",
                    "127.0.0.1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut command, libc::SIGKILL);
            self.epmd = Some(command.spawn().expect("epmd starts"));
        }
        let log = std::fs::File::create(self.log()).unwrap();
        let mut command = Command::new(SERVER);
        command
            .current_dir(root)
            .env("HOME", root)
            .env("RABBITMQ_NODENAME", format!("rmq{}@localhost", self.port))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", root.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", root.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                root.join("enabled_plugins"),
            )
            .env("RABBITMQ_CONFIG_FILE", root.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                root.join("advanced.config"),
            )
            .env("RABBITMQ_CONF_ENV_FILE", root.join("rabbitmq-env.conf"))
            .env("RABBITMQ_SERVER_START_ARGS", "-setcookie app-tests")
            // The script then execs the VM instead of waiting on it, so a
            // kill reaches the broker itself.
            .env("RUNNING_UNDER_SYSTEMD", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        die_with_parent(&mut command, libc::SIGKILL);
        self.server = Some(command.spawn().expect("rabbitmq-server starts"));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !speaks_amqp(self.port) {
            let exited = self
                .server
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            let log = || std::fs::read_to_string(self.log()).unwrap_or_default();
            assert!(exited.is_none(), "rabbitmq-server exited: {}", log());
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server answers on {}: {}",
                self.port,
                log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Whether an AMQP 0-9-1 server answers the protocol header with a frame.
fn speaks_amqp(port: u16) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut frame = [0u8; 1];
    stream.write_all(b"AMQP\x00\x00\x09\x01").is_ok()
        && stream.read_exact(&mut frame).is_ok()
        && frame[0] == 1
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut epmd) = self.epmd.take() {
            let _ = epmd.kill();
            let _ = epmd.wait();
        }
    }
}

/// The broker the tests that never stop it share, started once per test
/// run on a thread of its own (the parent-death signal follows the thread
/// that started it).
pub fn shared() -> &'static SharedBroker {
    static BROKER: OnceLock<SharedBroker> = OnceLock::new();
    BROKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let broker = RabbitMq::start();
            tx.send(SharedBroker {
                port: broker.port,
                next: AtomicUsize::new(1),
            })
            .unwrap();
            crate::process::until_exit(broker);
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the shared RabbitMQ started")
    })
}

pub struct SharedBroker {
    port: u16,
    next: AtomicUsize,
}

impl SharedBroker {
    /// The URL of a virtual host no other test uses.
    pub fn fresh_url(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        assert!(
            n <= VHOSTS,
            "more tests share the broker than it has vhosts"
        );
        format!("amqp://{USER}:{PASSWORD}@127.0.0.1:{}/v{n}", self.port)
    }
}
