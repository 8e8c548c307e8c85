//! A real Prometheus for the tests, from Debian's `prometheus` package: a
//! temporary configuration scraping the given targets every second, its
//! storage in a temporary directory. A missing server is a failure, never a
//! skip.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{die_with_parent, free_port};

const BINARIES: &[&str] = &["/usr/bin/prometheus", "/usr/local/bin/prometheus"];

pub struct Prometheus {
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `/metrics` of each `host:port` in `targets`, every second.
    pub async fn start(targets: &[String]) -> Prometheus {
        Prometheus::start_with_rules(targets, &[]).await
    }

    /// The same, evaluating the alert rules of `rule_files` every second.
    pub async fn start_with_rules(targets: &[String], rule_files: &[&Path]) -> Prometheus {
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rules: Vec<String> = rule_files
            .iter()
            .map(|f| format!("'{}'", f.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [{}]\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
            rules.join(", "),
            targets.join(", ")
        );
        Prometheus::start_with_config(&config, &[]).await
    }

    /// Runs `config` (a prometheus.yml), with `files` (name, content)
    /// written beside it: the rule files and file SD targets it names.
    pub async fn start_with_config(config: &str, files: &[(&str, String)]) -> Prometheus {
        let binary = BINARIES
            .iter()
            .find(|path| Path::new(path).exists())
            .expect("prometheus not found: install Debian's prometheus (see .ci/run)");
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        die_with_parent(&mut command, libc::SIGKILL);
        let prometheus = Prometheus {
            address: format!("http://127.0.0.1:{port}"),
            child: command.spawn().expect("prometheus starts"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = format!("{}/-/ready", prometheus.address);
        while !reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
            assert!(Instant::now() < deadline, "prometheus gets ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        prometheus
    }

    /// The values of an instant `query`, one per series: empty when it
    /// yields nothing. `None` when Prometheus does not answer.
    pub async fn values(&self, query: &str) -> Option<Vec<f64>> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.address),
            &[("query", query)],
        )
        .ok()?;
        let answer: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        answer["data"]["result"]
            .as_array()?
            .iter()
            .map(|series| series["value"][1].as_str()?.parse().ok())
            .collect()
    }

    /// The value of an instant `query` that yields one number, if any.
    pub async fn value(&self, query: &str) -> Option<f64> {
        value_at(&self.address, query).await
    }

    /// Waits until `query` yields `expected`.
    pub async fn until(&self, query: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.value(query).await;
            if value == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query} is {expected} in Prometheus, not {value:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Prometheus {
    /// The state of alert `name`: `pending`, `firing`, or `None` when inactive.
    pub async fn alert(&self, name: &str) -> Option<String> {
        let answer: Value = reqwest::get(format!("{}/api/v1/alerts", self.address))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let alerts = answer["data"]["alerts"].as_array()?;
        let states: Vec<&str> = alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .filter_map(|a| a["state"].as_str())
            .collect();
        if states.contains(&"firing") {
            Some("firing".into())
        } else {
            states.first().map(|s| s.to_string())
        }
    }

    /// Waits until alert `name` is in `state` (`None`: inactive).
    pub async fn until_alert(&self, name: &str, state: Option<&str>, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.alert(name).await;
            if now.as_deref() == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {state:?}, not {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of an instant `query` that yields one number, if any, of the
/// Prometheus at `address`.
pub async fn value_at(address: &str, query: &str) -> Option<f64> {
    let url =
        reqwest::Url::parse_with_params(&format!("{address}/api/v1/query"), &[("query", query)])
            .ok()?;
    let answer: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}
