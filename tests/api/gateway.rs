//! The split topology: every module as processes of its own on one
//! PostgreSQL database, behind real nginx running the checked-in
//! `deploy/nginx/app.conf` (only its listen port and upstream addresses
//! changed). The modules come from the binary's list.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::modules::{self, Module};

use crate::process::{Process, die_with_parent, free_port};

const NGINX: &[&str] = &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];

/// nginx in the foreground, as one process, with its files in a temp dir.
pub struct Nginx {
    pub address: String,
    /// `https://localhost:PORT`, with the certificate `tls_cert`.
    pub tls_address: String,
    pub tls_cert: PathBuf,
    pub tls_port: u16,
    port: u16,
    child: Child,
    /// Run with a master process, which reloads its configuration.
    reloadable: bool,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Serves `deploy/nginx/app.conf` on a free port, each module's
    /// upstream at the ports of its replicas; a module not named has one
    /// replica where nothing listens.
    pub async fn start(upstreams: &[(&str, &[u16])]) -> Nginx {
        Nginx::launch(&unweighted(upstreams), false).await
    }

    /// [`Nginx::start`], each replica given its weight (port, weight): of
    /// every ten requests, a replica of weight 1 beside one of weight 9
    /// gets one, as a canary does.
    pub async fn start_weighted(upstreams: &[(&str, &[(u16, u32)])]) -> Nginx {
        let upstreams: Vec<(&str, Vec<(u16, u32)>)> = upstreams
            .iter()
            .map(|(name, replicas)| (*name, replicas.to_vec()))
            .collect();
        Nginx::launch(&upstreams, false).await
    }

    /// [`Nginx::start`], with a master process: [`Nginx::reload`] changes
    /// the upstreams as an Ingress controller does when a pod leaves or
    /// joins its Service.
    pub async fn start_reloadable(upstreams: &[(&str, &[u16])]) -> Nginx {
        Nginx::launch(&unweighted(upstreams), true).await
    }

    /// Serves these upstreams from now on: new workers take the new
    /// configuration; the old ones finish their requests, close their
    /// connections and exit, which this waits for. A replica taken out
    /// here gets no request once this returns.
    pub async fn reload(&self, upstreams: &[(&str, &[u16])]) {
        assert!(self.reloadable, "started with Nginx::start_reloadable");
        let dir = self._dir.path();
        let app_conf = render(
            &unweighted(upstreams),
            self.port,
            self.tls_port,
            &dir.join("tls"),
        );
        std::fs::write(dir.join("app.conf"), app_conf).unwrap();
        let master = self.child.id();
        let old = children(master);
        assert!(!old.is_empty(), "nginx has a worker");
        unsafe { libc::kill(master as i32, libc::SIGHUP) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = children(master);
            if !now.is_empty() && now.iter().all(|pid| !old.contains(pid)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx reloaded: workers {old:?} then {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn launch(upstreams: &[(&str, Vec<(u16, u32)>)], reloadable: bool) -> Nginx {
        let binary = NGINX
            .iter()
            .find(|path| Path::new(path).exists())
            .expect("nginx not found: install Debian's nginx (see .ci/run)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let tls_port = free_port();
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        let tls_cert = dir.path().join("tls/tls.crt");
        std::fs::write(&tls_cert, certified.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("tls/tls.key"),
            certified.signing_key.serialize_pem(),
        )
        .unwrap();
        let app_conf = render(upstreams, port, tls_port, &dir.path().join("tls"));
        std::fs::write(dir.path().join("app.conf"), app_conf).unwrap();
        let root = dir.path().display();
        let master = if reloadable { "on" } else { "off" };
        let main = format!(
            "daemon off;\nmaster_process {master};\nworker_processes 1;\npid {root}/nginx.pid;\n\
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
        // A master stops its workers on SIGTERM; killed, it would leave them.
        die_with_parent(
            &mut command,
            if reloadable {
                libc::SIGTERM
            } else {
                libc::SIGKILL
            },
        );
        let child = command.spawn().expect("nginx starts");
        let nginx = Nginx {
            address: format!("http://127.0.0.1:{port}"),
            tls_address: format!("https://localhost:{tls_port}"),
            tls_cert,
            tls_port,
            port,
            child,
            reloadable,
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
        if self.reloadable {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // The parent is the second field after the parenthesised name.
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// `deploy/nginx/app.conf` listening on `listen` and, with TLS, on
/// `tls_listen` with the certificate in `tls_dir`; each upstream `server`
/// line repeated once per replica of its module.
fn render(
    upstreams: &[(&str, Vec<(u16, u32)>)],
    listen: u16,
    tls_listen: u16,
    tls_dir: &Path,
) -> String {
    let conf = std::fs::read_to_string(deploy_dir().join("nginx/app.conf")).unwrap();
    let mut out = String::new();
    let (mut listens, mut servers) = (0, 0);
    for line in conf.lines() {
        let trimmed = line.trim_start();
        const NOWHERE: &[(u16, u32)] = &[(1, 1)];
        let replicas = modules::ALL.iter().find_map(|module| {
            let host = format!("{}:8080", module.name);
            let ports = upstreams
                .iter()
                .find(|(name, _)| *name == module.name)
                .map_or(NOWHERE, |(_, ports)| ports.as_slice());
            trimmed
                .starts_with(&format!("server {host} "))
                .then_some((ports, host))
        });
        if let Some((replicas, host)) = replicas {
            servers += 1;
            for (port, weight) in replicas {
                let weight = match weight {
                    1 => String::new(),
                    n => format!(" weight={n}"),
                };
                out += &line.replace(&host, &format!("127.0.0.1:{port}{weight}"));
                out.push('\n');
            }
        } else if trimmed == "listen 8080;" {
            listens += 1;
            out += &format!("    listen 127.0.0.1:{listen};\n");
        } else if trimmed == "listen 8443 ssl;" {
            listens += 1;
            out += &format!("    listen 127.0.0.1:{tls_listen} ssl;\n");
        } else if trimmed.starts_with("ssl_certificate") {
            out += &line.replace("/etc/nginx/tls", &tls_dir.display().to_string());
            out.push('\n');
        } else {
            out += line;
            out.push('\n');
        }
    }
    // Each module's own upstream, and the one of any module.
    assert_eq!(
        (listens, servers),
        (2, 2 * modules::ALL.len()),
        "app.conf has a plain and a TLS listen line and two server lines per module"
    );
    out
}

/// Each replica of `upstreams` with weight 1.
fn unweighted<'a>(upstreams: &[(&'a str, &[u16])]) -> Vec<(&'a str, Vec<(u16, u32)>)> {
    upstreams
        .iter()
        .map(|(name, ports)| (*name, ports.iter().map(|&port| (port, 1)).collect()))
        .collect()
}

/// Warnings, but not one per 503 while a fault test has a peer down.
const QUIET_503S: &str = "warn,app_kernel::problem=error";

/// Every module in processes of its own on one database, behind nginx: two
/// replicas of a module that calls others, one of any other.
pub struct Split {
    pub nginx: Nginx,
    /// Each module's replicas, in the list's order.
    pub modules: Vec<(&'static Module, Vec<Process>)>,
}

impl Split {
    pub async fn start(database_url: &str) -> Split {
        Split::start_with(database_url, &[]).await
    }

    /// The split with `extra` arguments for every process.
    pub async fn start_with(database_url: &str, extra: &[&str]) -> Split {
        Split::start_with_env(database_url, extra, &[]).await
    }

    /// The split with `extra` arguments and `env` for every process.
    pub async fn start_with_env(database_url: &str, extra: &[&str], env: &[(&str, &str)]) -> Split {
        Split::start_mixed(database_url, extra, env, &[]).await
    }

    /// [`Split::start_with_env`], each module named in `binaries` run by
    /// that binary (another version), the others by this one.
    pub async fn start_mixed(
        database_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        binaries: &[(&str, &Path)],
    ) -> Split {
        // A module's peers are the first replica of each module it needs.
        let ports: Vec<(&Module, Vec<u16>)> = modules::ALL
            .iter()
            .map(|&module| {
                let replicas = if module.needs.is_empty() { 1 } else { 2 };
                (module, (0..replicas).map(|_| free_port()).collect())
            })
            .collect();
        let address = |name: &str| {
            let (_, replicas) = ports.iter().find(|(m, _)| m.name == name).unwrap();
            format!("{name}=http://127.0.0.1:{}", replicas[0])
        };
        // Every process starts at once, as under an orchestrator.
        let mut modules = Vec::new();
        for (module, replicas) in &ports {
            let peers: Vec<String> = module.needs.iter().map(|c| address(c.module)).collect();
            let mut args = vec!["--module", module.name, "--database-url", database_url];
            for peer in &peers {
                args.extend(["--peer", peer]);
            }
            args.extend_from_slice(extra);
            let log = if module.needs.is_empty() {
                "warn"
            } else {
                QUIET_503S
            };
            let binary = binaries
                .iter()
                .find(|(name, _)| *name == module.name)
                .map_or(Path::new(env!("CARGO_BIN_EXE_app")), |(_, binary)| binary);
            let processes: Vec<Process> = replicas
                .iter()
                .map(|&port| Process::spawn_binary(binary, port, &args, log, Stdio::inherit(), env))
                .collect();
            modules.push((*module, processes));
        }
        for (_, processes) in &modules {
            for process in processes {
                process.ready().await;
            }
        }
        let upstreams: Vec<(&str, &[u16])> = ports
            .iter()
            .map(|(module, replicas)| (module.name, replicas.as_slice()))
            .collect();
        let nginx = Nginx::start(&upstreams).await;
        Split { nginx, modules }
    }

    /// The addresses of the replicas of module `name`.
    pub fn addresses_of(&self, name: &str) -> Vec<String> {
        self.modules
            .iter()
            .filter(|(module, _)| module.name == name)
            .flat_map(|(_, processes)| processes.iter().map(|p| p.address.clone()))
            .collect()
    }

    /// The replicas of module `name`, taken out of the split (they still
    /// stop when dropped).
    pub fn take(&mut self, name: &str) -> Vec<Process> {
        let (_, processes) = self
            .modules
            .iter_mut()
            .find(|(module, _)| module.name == name)
            .unwrap_or_else(|| panic!("no module {name} in the split"));
        std::mem::take(processes)
    }

    /// The first replica of module `name`.
    pub fn replica(&self, name: &str) -> &Process {
        &self.replicas(name)[0]
    }

    /// Every replica of module `name`.
    pub fn replicas(&self, name: &str) -> &[Process] {
        let (_, processes) = self
            .modules
            .iter()
            .find(|(module, _)| module.name == name)
            .unwrap_or_else(|| panic!("no module {name} in the split"));
        processes
    }
}
