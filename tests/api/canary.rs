//! A module's canary rehearsed as plain processes, as the split overlay
//! runs it in a cluster: laptops at the last release (stable) and at this
//! version (canary) behind nginx's weighted upstream, ports beside them, on
//! PostgreSQL, under load. A real Prometheus scrapes them through the
//! cluster's scrape configuration (`deploy/observability/prometheus-k8s.yml`,
//! its pod discovery replaced by a file that gives each process the
//! labels Kubernetes gives its pod, so the shipped relabeling makes
//! `component` and `track`) and records the verdicts of `canary.rules.yml`.
//! The analysis is `canary.yaml`'s AnalysisTemplate, run as Argo Rollouts
//! runs it.
//!
//! Time is shortened six-fold so that each rehearsal ends in about a
//! minute: scrapes every second, the rules' 2-minute windows 20 s, and a
//! measurement every 10 s where the template says 1 minute.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize as _;
use serde_json::json;
use serde_yaml_ng::Value;

use crate::gateway::{Nginx, deploy_dir};
use crate::process::{Process, free_port};
use crate::prometheus::Prometheus;
use crate::split::{create_laptop, create_port, laptop_requests};

/// The template's minute, in the rehearsal.
const MINUTE: Duration = Duration::from_secs(10);
/// The rules' window, `[2m]`, in the rehearsal.
const WINDOW: &str = "[20s]";
/// Of every four requests to laptops, the canary's share: one.
const STABLE_WEIGHT: u32 = 3;

/// What one measurement of a metric concluded, by its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measured {
    Successful,
    Failed,
    Inconclusive,
}

/// A metric of the AnalysisTemplate, its module filled in.
#[derive(Debug)]
struct Metric {
    name: String,
    query: String,
    failure_limit: usize,
    inconclusive_limit: usize,
}

impl Metric {
    /// The template's `successCondition` and `failureCondition`, as Argo
    /// Rollouts evaluates them on the query's `result`, one value per
    /// series: an empty result meets neither.
    fn judge(result: &[f64]) -> Measured {
        match result {
            [value] if *value == 1.0 => Measured::Successful,
            [value] if *value == 0.0 => Measured::Failed,
            _ => Measured::Inconclusive,
        }
    }
}

/// The AnalysisTemplate `name` of `canary.yaml`, for `module`.
fn analysis(name: &str, module: &str) -> Vec<Metric> {
    let path = deploy_dir().join("k8s/overlays/split/canary.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let template = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .find(|object| object["kind"] == "AnalysisTemplate" && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{} has AnalysisTemplate {name}", path.display()));
    let metrics = template["spec"]["metrics"].as_sequence().unwrap();
    metrics
        .iter()
        .map(|metric| {
            // What Metric::judge does: if the template says otherwise, change both.
            assert_eq!(
                metric["successCondition"],
                "len(result) == 1 && result[0] == 1"
            );
            assert_eq!(
                metric["failureCondition"],
                "len(result) == 1 && result[0] == 0"
            );
            assert_eq!(metric["interval"], "1m");
            assert_eq!(metric["initialDelay"], "1m");
            Metric {
                name: metric["name"].as_str().unwrap().to_owned(),
                query: metric["provider"]["prometheus"]["query"]
                    .as_str()
                    .unwrap()
                    .replace("{{args.module}}", module),
                failure_limit: metric["failureLimit"].as_u64().unwrap() as usize,
                inconclusive_limit: metric["inconclusiveLimit"].as_u64().unwrap() as usize,
            }
        })
        .collect()
}

/// The outcome of an analysis: the first metric to fail or turn
/// inconclusive, when, and every measurement taken.
#[derive(Debug)]
struct Run {
    failed: Option<(String, usize)>,
    inconclusive: Option<(String, usize)>,
    measured: Vec<Vec<(String, Measured)>>,
}

/// Runs `metrics` as a background analysis: after the initial delay, a
/// measurement of each every interval, `count` times, stopping early once
/// a metric fails (over its failure limit: the Rollout rolls back) or is
/// inconclusive (over its limit: the Rollout pauses).
async fn run(prometheus: &Prometheus, metrics: &[Metric], count: usize) -> Run {
    let mut run = Run {
        failed: None,
        inconclusive: None,
        measured: Vec::new(),
    };
    tokio::time::sleep(MINUTE).await;
    for n in 1..=count {
        let started = Instant::now();
        let mut now = Vec::new();
        for metric in metrics {
            let result = prometheus
                .values(&metric.query)
                .await
                .expect("Prometheus answers");
            now.push((metric.name.clone(), Metric::judge(&result)));
        }
        run.measured.push(now);
        for metric in metrics {
            let seen = |what| {
                run.measured
                    .iter()
                    .flatten()
                    .filter(|(name, measured)| *name == metric.name && *measured == what)
                    .count()
            };
            if run.failed.is_none() && seen(Measured::Failed) > metric.failure_limit {
                run.failed = Some((metric.name.clone(), n));
            }
            if run.inconclusive.is_none()
                && seen(Measured::Inconclusive) > metric.inconclusive_limit
            {
                run.inconclusive = Some((metric.name.clone(), n));
            }
        }
        if run.failed.is_some() || run.inconclusive.is_some() || n == count {
            break;
        }
        tokio::time::sleep(MINUTE.saturating_sub(started.elapsed())).await;
    }
    run
}

/// Stable and canary laptops with ports, nginx and Prometheus.
struct Rehearsal {
    nginx: Nginx,
    /// The stable's own address.
    stable: String,
    prometheus: Prometheus,
    _processes: Vec<Process>,
}

impl Rehearsal {
    /// Laptops at the last release beside laptops at this version, the
    /// canary, calling ports at `canary_peer` if given.
    async fn start(canary_peer: Option<&str>) -> Rehearsal {
        let url = crate::postgres::shared().fresh_database().await;
        let this = Path::new(env!("CARGO_BIN_EXE_app"));
        let previous = crate::skew::previous();
        let [ports_port, stable_port, canary_port] = [free_port(), free_port(), free_port()];
        let ports = Process::spawn_binary(
            this,
            ports_port,
            &["--module", "ports", "--database-url", &url],
            "warn",
            Stdio::inherit(),
            &[],
        );
        ports.ready().await;
        let peer = format!("ports={}", ports.address);
        let laptops = |binary: &Path, port: u16, peer: &str| {
            let args = [
                "--module",
                "laptops",
                "--database-url",
                &url,
                "--peer",
                peer,
            ];
            Process::spawn_binary(binary, port, &args, "error", Stdio::inherit(), &[])
        };
        let stable = laptops(&previous, stable_port, &peer);
        stable.ready().await;
        let canary = laptops(this, canary_port, canary_peer.unwrap_or(&peer));
        canary.ready().await;
        let nginx = Nginx::start_weighted(&[
            ("laptops", &[(stable_port, STABLE_WEIGHT), (canary_port, 1)]),
            ("ports", &[(ports_port, 1)]),
        ])
        .await;

        // Each process labelled as Kubernetes labels its pod.
        let pod = |port: u16, component: &str, track: &str| {
            json!({
                "targets": [format!("127.0.0.1:{port}")],
                "labels": {
                    "__meta_kubernetes_pod_label_app_kubernetes_io_name": "app",
                    "__meta_kubernetes_pod_label_app_kubernetes_io_component": component,
                    "__meta_kubernetes_pod_label_track": track,
                    "__meta_kubernetes_pod_container_port_name": "metrics",
                    "__meta_kubernetes_namespace": "rehearsal",
                    "__meta_kubernetes_pod_name": format!("{component}-{track}"),
                }
            })
        };
        let pods = json!([
            pod(ports_port, "ports", "stable"),
            pod(stable_port, "laptops", "stable"),
            pod(canary_port, "laptops", "canary"),
        ]);
        let observability = deploy_dir().join("observability");
        let shipped = std::fs::read_to_string(observability.join("prometheus-k8s.yml")).unwrap();
        let mut config: Value = serde_yaml_ng::from_str(&shipped).unwrap();
        config["global"]["scrape_interval"] = "1s".into();
        config["global"]["evaluation_interval"] = "1s".into();
        config["rule_files"] = serde_yaml_ng::from_str("[canary.rules.yml]").unwrap();
        let job = config["scrape_configs"][0].as_mapping_mut().unwrap();
        assert_eq!(
            job.remove("kubernetes_sd_configs"),
            Some(serde_yaml_ng::from_str("[{role: pod}]").unwrap()),
            "prometheus-k8s.yml discovers pods"
        );
        job.insert(
            "file_sd_configs".into(),
            serde_yaml_ng::from_str("[{files: [pods.json]}]").unwrap(),
        );
        let rules = std::fs::read_to_string(observability.join("canary.rules.yml")).unwrap();
        assert!(rules.matches("[2m]").count() >= 3, "the rules' windows");
        let prometheus = Prometheus::start_with_config(
            &serde_yaml_ng::to_string(&config).unwrap(),
            &[
                ("canary.rules.yml", rules.replace("[2m]", WINDOW)),
                ("pods.json", pods.to_string()),
            ],
        )
        .await;
        Rehearsal {
            nginx,
            stable: stable.address.clone(),
            prometheus,
            _processes: vec![ports, stable, canary],
        }
    }

    /// The analysis of `metrics` as Argo runs it from the canary's first
    /// step, four measurements at most, under load from its start; the
    /// load stops after.
    async fn analyse(&self, what: &str, metrics: &[Metric]) -> Run {
        self.scraped().await;
        let started = Instant::now();
        let stop = self.load().await;
        let run = run(&self.prometheus, metrics, 4).await;
        stop.store(true, Ordering::Relaxed);
        eprintln!(
            "{what}: after {:?}, failed {:?}, measured {:?}",
            started.elapsed(),
            run.failed,
            run.measured
        );
        run
    }

    /// Waits until Prometheus has scraped every target of both tracks.
    async fn scraped(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let query = r#"component_track:scrape_complete{component="laptops"} == 1"#;
        while self.prometheus.values(query).await.map(|v| v.len()) != Some(2) {
            assert!(Instant::now() < deadline, "Prometheus scrapes both tracks");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Reads and writes of laptops through nginx, about 100 a second,
    /// until the returned flag is set.
    async fn load(&self) -> Arc<AtomicBool> {
        let base = self.nginx.address.clone();
        let client = crate::auth::client();
        let port_id = create_port(&client, &base, "USB-C").await;
        // Through the stable: the canary may be the broken one.
        let path = create_laptop(&client, &self.stable, "XPS", port_id).await;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(50));
            let mut n = 0;
            while !stopped.load(Ordering::Relaxed) {
                every.tick().await;
                n += 1;
                for (_, request) in laptop_requests(&client, &base, &path, port_id, n) {
                    let _ = request.timeout(Duration::from_secs(5)).send().await;
                }
            }
        });
        stop
    }
}

/// Under load, a canary of this version beside the last release passes
/// every check of four measurements, and the Rollout would promote it.
/// Once the traffic stops, the comparison is inconclusive: the rates are
/// 0 and their ratios NaN, which must not read as a failure.
#[tokio::test]
async fn a_healthy_canary_passes_its_analysis() {
    let rehearsal = Rehearsal::start(None).await;
    let metrics = analysis("app-canary", "laptops");
    let run = rehearsal.analyse("healthy canary", &metrics).await;
    assert_eq!(run.failed, None, "{run:#?}");
    assert_eq!(run.inconclusive, None, "{run:#?}");
    assert_eq!(run.measured.len(), 4, "{run:#?}");
    for metric in &metrics {
        let successes = run
            .measured
            .iter()
            .flatten()
            .filter(|(name, measured)| *name == metric.name && *measured == Measured::Successful)
            .count();
        assert!(successes >= 3, "{}: {run:#?}", metric.name);
    }

    // The window's requests age out: 0 requests, 0/0 errors.
    tokio::time::sleep(2 * MINUTE + Duration::from_secs(3)).await;
    for metric in &metrics {
        let result = rehearsal.prometheus.values(&metric.query).await.unwrap();
        let expected = match metric.name.as_str() {
            "error-ratio" | "p99" => Measured::Inconclusive,
            _ => Measured::Successful,
        };
        assert_eq!(
            Metric::judge(&result),
            expected,
            "{} once the traffic stopped: {result:?}",
            metric.name
        );
    }
}

/// A canary told a wrong address for ports (its `--peer`): it still
/// starts and reports ready, but its writes fail with 503 and its circuit
/// to ports opens. The analysis fails it within two measurements, and the
/// Rollout would roll it back.
#[tokio::test]
async fn a_canary_with_a_wrong_peer_address_fails_within_two_intervals() {
    let nowhere = format!("ports=http://127.0.0.1:{}", free_port());
    let rehearsal = Rehearsal::start(Some(&nowhere)).await;
    let metrics = analysis("app-canary", "laptops");
    let run = rehearsal
        .analyse("canary with a wrong peer", &metrics)
        .await;
    let (_, at) = run.failed.as_ref().expect("the analysis fails");
    // A failure limit of 1: failed at the second measurement, so the first
    // failed too.
    assert_eq!(*at, 2, "failed at measurement {at}: {run:#?}");
    let failing: Vec<&str> = run.measured[*at - 1]
        .iter()
        .filter(|(_, measured)| *measured == Measured::Failed)
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        failing.contains(&"error-ratio") && failing.contains(&"peer-circuits"),
        "{run:#?}"
    );
}
