//! The split topology: ports and two laptops replicas as separate processes
//! on one PostgreSQL database, behind real nginx running the checked-in
//! `deploy/nginx/app.conf` (only its listen port and upstream addresses
//! changed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Process, die_with_parent, free_port};

const NGINX: &[&str] = &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];

/// nginx in the foreground, as one process, with its files in a temp dir.
pub struct Nginx {
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Serves `deploy/nginx/app.conf` on a free port, with these upstreams.
    pub async fn start(laptops: &[u16], ports: &[u16]) -> Nginx {
        let binary = NGINX
            .iter()
            .find(|path| Path::new(path).exists())
            .expect("nginx not found: install Debian's nginx (see .ci/run)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let app_conf = render(laptops, ports, port);
        std::fs::write(dir.path().join("app.conf"), app_conf).unwrap();
        let root = dir.path().display();
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {root}/nginx.pid;\n\
             error_log {root}/error.log warn;\nevents {{ worker_connections 512; }}\n\
             http {{\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n\
             fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n\
             scgi_temp_path {root}/scgi;\n  include {root}/app.conf;\n}}\n"
        );
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, main).unwrap();
        let mut command = Command::new(binary);
        command
            .arg("-c")
            .arg(&config)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        die_with_parent(&mut command, libc::SIGKILL);
        let child = command.spawn().expect("nginx starts");
        let nginx = Nginx {
            address: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx listens on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// `deploy/nginx/app.conf` listening on `listen`, each upstream `server`
/// line repeated once per replica of its module.
fn render(laptops: &[u16], ports: &[u16], listen: u16) -> String {
    let conf = std::fs::read_to_string(deploy_dir().join("nginx/app.conf")).unwrap();
    let mut out = String::new();
    let (mut listens, mut servers) = (0, 0);
    for line in conf.lines() {
        let trimmed = line.trim_start();
        let replicas = if trimmed.starts_with("server laptops:8080") {
            Some((laptops, "laptops:8080"))
        } else if trimmed.starts_with("server ports:8080") {
            Some((ports, "ports:8080"))
        } else {
            None
        };
        if let Some((replicas, host)) = replicas {
            servers += 1;
            for port in replicas {
                out += &line.replace(host, &format!("127.0.0.1:{port}"));
                out.push('\n');
            }
        } else if trimmed == "listen 8080;" {
            listens += 1;
            out += &format!("    listen 127.0.0.1:{listen};\n");
        } else {
            out += line;
            out.push('\n');
        }
    }
    assert_eq!(
        (listens, servers),
        (1, 4),
        "app.conf has the expected shape"
    );
    out
}

/// Warnings, but not one per 503 while a fault test has ports down.
const QUIET_503S: &str = "warn,app_kernel::problem=error";

/// Ports and two laptops replicas on one database, behind nginx.
pub struct Split {
    pub nginx: Nginx,
    pub ports: Process,
    pub laptops: Vec<Process>,
}

impl Split {
    pub async fn start(database_url: &str) -> Split {
        Split::start_with(database_url, &[]).await
    }

    /// As [`Split::start`], with extra `serve` arguments for the laptops replicas.
    pub async fn start_with(database_url: &str, laptops_args: &[&str]) -> Split {
        let ports = Process::serve(
            free_port(),
            &["--module", "ports", "--database-url", database_url],
            "warn",
            Stdio::inherit(),
        )
        .await;
        let peer = format!("ports={}", ports.address);
        let mut args = vec![
            "--module",
            "laptops",
            "--database-url",
            database_url,
            "--peer",
            &peer,
        ];
        args.extend_from_slice(laptops_args);
        // Both replicas start at once, as they would under an orchestrator.
        let laptops: Vec<Process> = (0..2)
            .map(|_| Process::spawn(free_port(), &args, QUIET_503S, Stdio::inherit()))
            .collect();
        for replica in &laptops {
            replica.ready().await;
        }
        let laptop_ports: Vec<u16> = laptops.iter().map(|p| p.port).collect();
        let nginx = Nginx::start(&laptop_ports, &[ports.port]).await;
        Split {
            nginx,
            ports,
            laptops,
        }
    }
}
