//! The real binary as a child process: started on a free port, waited for
//! until ready, killed when dropped (and when the test binary dies).

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Process {
    pub child: Child,
    pub address: String,
    pub port: u16,
}

/// Has `command`'s process receive `signal` when the test binary dies,
/// whatever way it ends, so no server outlives a crashed test run.
pub fn die_with_parent(command: &mut Command, signal: i32) {
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            Ok(())
        });
    }
}

/// Keeps `server`, which the whole test run shares, until the test binary
/// exits, then drops it: the server stops and its temporary directory goes.
/// A static is never dropped, and a shared PostgreSQL's data (a gigabyte by
/// the end of a run) would otherwise stay in /tmp after every run.
pub fn until_exit(server: impl Send + 'static) {
    static KEPT: std::sync::Mutex<Vec<Box<dyn Send>>> = std::sync::Mutex::new(Vec::new());
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    extern "C" fn drop_kept() {
        let kept = std::mem::take(&mut *KEPT.lock().unwrap_or_else(|e| e.into_inner()));
        drop(kept);
    }
    // SAFETY: drop_kept is a plain function that lives as long as the process.
    REGISTERED.call_once(|| unsafe {
        libc::atexit(drop_kept);
    });
    KEPT.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(server));
}

/// The binary with exactly `args` and `env`, nothing inherited, as a
/// container runs it.
pub fn as_container(args: &[String], env: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_app"));
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// A port nobody listens on now, and that no other call of this test
/// binary got: the kernel may hand a port it just freed out again, and two
/// servers told the same port collide (nginx refuses a config that listens
/// twice on one).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Process {
    /// Runs `serve --all` with extra `args`, `RUST_LOG` and stderr, and waits until it is ready.
    pub async fn start_with(
        database_url: &str,
        args: &[&str],
        log: &str,
        stderr: Stdio,
    ) -> Process {
        let mut all = vec!["--all", "--database-url", database_url];
        all.extend_from_slice(args);
        Process::serve(free_port(), &all, log, stderr).await
    }

    /// [`Process::start_with`], with `env` set too.
    pub async fn start_with_env(
        database_url: &str,
        args: &[&str],
        log: &str,
        env: &[(&str, &str)],
    ) -> Process {
        let mut all = vec!["--all", "--database-url", database_url];
        all.extend_from_slice(args);
        let process = Process::spawn_with_env(free_port(), &all, log, Stdio::inherit(), env);
        process.ready().await;
        process
    }

    /// Runs `serve --bind 127.0.0.1:port args...` and waits until it is ready.
    pub async fn serve(port: u16, args: &[&str], log: &str, stderr: Stdio) -> Process {
        let process = Process::spawn(port, args, log, stderr);
        process.ready().await;
        process
    }

    /// Runs `serve --bind 127.0.0.1:port args...` without waiting; it
    /// trusts the test key, unless `args` give a `--dev-key-file`.
    pub fn spawn(port: u16, args: &[&str], log: &str, stderr: Stdio) -> Process {
        Process::spawn_with_env(port, args, log, stderr, &[])
    }

    /// [`Process::spawn`], with `env` set too.
    pub fn spawn_with_env(
        port: u16,
        args: &[&str],
        log: &str,
        stderr: Stdio,
        env: &[(&str, &str)],
    ) -> Process {
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_app"));
        Process::spawn_binary(binary, port, args, log, stderr, env)
    }

    /// [`Process::spawn_with_env`], of `binary` (another version's).
    pub fn spawn_binary(
        binary: &std::path::Path,
        port: u16,
        args: &[&str],
        log: &str,
        stderr: Stdio,
        env: &[(&str, &str)],
    ) -> Process {
        let bind = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .args(["serve", "--bind", &bind])
            .args(args)
            .env("RUST_LOG", log)
            .envs(env.iter().copied())
            .stderr(stderr);
        if !args.contains(&"--dev-key-file") {
            command.env("APP_JWT_PUBLIC_KEY", crate::auth::public_key_path());
        }
        Process::launch(command, port)
    }

    /// Runs the binary with exactly `args` and `env`, nothing inherited, as a
    /// container would; `env` must bind it to `127.0.0.1:port`. Does not wait.
    pub fn spawn_as(port: u16, args: &[String], env: &[(String, String)]) -> Process {
        let mut command = as_container(args, env);
        command.stderr(Stdio::inherit());
        Process::launch(command, port)
    }

    fn launch(mut command: Command, port: u16) -> Process {
        command.stdout(Stdio::null());
        die_with_parent(&mut command, libc::SIGKILL);
        Process {
            child: command.spawn().expect("the binary starts"),
            address: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    /// Waits until `/health/ready` answers 200.
    pub async fn ready(&self) {
        self.answers(200, "/health/ready").await;
    }

    /// Waits until `path` answers `status`.
    pub async fn answers(&self, status: u16, path: &str) {
        let url = format!("{}{path}", self.address);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = reqwest::get(&url).await
                && response.status() == status
            {
                return;
            }
            assert!(Instant::now() < deadline, "{url} answered {status}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGSTOP, and waits until the process is stopped: it then accepts
    /// connections (the kernel does) but never answers.
    pub fn hang(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        // The state is the field after the parenthesised command name.
        while !std::fs::read_to_string(&stat)
            .unwrap()
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T'))
        {
            assert!(Instant::now() < deadline, "the process stopped");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn wait(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the binary stopped after the signal"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
