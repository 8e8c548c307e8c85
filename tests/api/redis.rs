//! A real Redis for the tests, from Debian's `redis-server`, on a free port
//! with its files in a temporary directory; persistence off. A missing
//! server is a failure, never a skip.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{die_with_parent, free_port};

const BINARIES: &[&str] = &["/usr/bin/redis-server", "/usr/local/bin/redis-server"];

pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        redis.launch().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once, as a crash or a partition would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: it keeps its connections and accepts new ones (the kernel
    /// does) but answers nothing, as a partition looks.
    pub fn hang(&self) {
        if let Some(child) = &self.child {
            unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    async fn launch(&mut self) {
        let binary = BINARIES
            .iter()
            .find(|path| Path::new(path).exists())
            .expect("redis-server not found: install Debian's redis-server (see .ci/run)");
        let mut command = Command::new(binary);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        die_with_parent(&mut command, libc::SIGKILL);
        self.child = Some(command.spawn().expect("redis-server starts"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server answers on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Redis {
    /// How many scripts the server ran: the limiter's round trips.
    pub fn scripts_run(&self) -> u64 {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(b"INFO commandstats\r\n").unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        // A bulk string: `$LEN\r\n` then the text; read until it is all here.
        while let Ok(read) = stream.read(&mut buffer) {
            answer.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n")
                && head
                    .trim_start_matches('$')
                    .parse::<usize>()
                    .is_ok_and(|len| body.len() >= len)
            {
                break;
            }
            if read == 0 {
                break;
            }
        }
        String::from_utf8_lossy(&answer)
            .lines()
            .filter(|line| {
                line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:")
            })
            .filter_map(|line| {
                line.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }
}

fn answers_ping(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
