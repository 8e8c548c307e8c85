//! The deployment files against what the binary serves. Each Deployment and
//! the migration Job of a Kubernetes overlay, the image's own command and
//! the Compose services run as plain processes, with the arguments and the
//! environment their containers would get, on a real PostgreSQL database;
//! only the listen address, the database URL and peer hosts are made local.
//! Then the probes, Services, HTTPRoute and nginx upstreams are followed to
//! those processes.

use std::collections::BTreeMap;
use std::process::Output;

use app::modules;
use reqwest::Url;
use serde_json::{Value, json};
use xtask::deploy::{self, ModuleInfo};

use crate::auth::JwksServer;
use crate::gateway::{Nginx, deploy_dir};
use crate::helpers::{json_at, status_at};
use crate::manifests::{Dockerfile, Manifests, Pod, nginx_upstreams, port_of, strings};
use crate::otlp::{Collector, Kind};
use crate::postgres;
use crate::process::{Process, as_container, free_port};
use crate::redis::Redis;

/// Runs the binary to completion with exactly `args` and `env`.
fn run(args: &[String], env: &[(String, String)]) -> Output {
    as_container(args, env).output().expect("the binary runs")
}

/// What a test runs in place of what the deployment files name outside
/// the process: the database, Redis, RabbitMQ, the identity provider's JWKS (serving
/// the test key), and the files of the development key and the service token.
struct Local {
    database: String,
    redis: Redis,
    jwks: JwksServer,
    collector: Collector,
    /// A virtual host of the shared RabbitMQ.
    broker: String,
    files: tempfile::TempDir,
}

impl Local {
    async fn start(database: String) -> Local {
        Local {
            database,
            redis: Redis::start().await,
            jwks: JwksServer::start(&[&crate::auth::test_key().key]).await,
            collector: Collector::start().await,
            broker: crate::rabbitmq::shared().fresh_url(),
            files: tempfile::tempdir().unwrap(),
        }
    }

    fn dev_key_file(&self) -> std::path::PathBuf {
        self.files.path().join("dev-signing-key.pem")
    }

    /// A token with every scope that processes with `env` accept: signed by
    /// the identity provider's key for its issuer and audience, or by the
    /// development key.
    fn token(&self, env: &[(String, String)]) -> String {
        let var = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if var("APP_JWT_JWKS_URL").is_some() {
            let scopes = crate::auth::every_scope();
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let mut claims = crate::auth::claims(&scopes);
            claims["iss"] = json!(var("APP_JWT_ISSUER").expect("an issuer with the JWKS"));
            claims["aud"] = json!(var("APP_JWT_AUDIENCE").expect("an audience with the JWKS"));
            crate::auth::test_key().key.sign(&claims)
        } else {
            assert_eq!(
                var("APP_DEV_KEYS").as_deref(),
                Some("true"),
                "development keys on purpose"
            );
            crate::auth::app_token(&self.dev_key_file(), &[])
        }
    }
}

/// A container's environment made local: listening on `port`, on the local
/// database, Redis, JWKS and files, and each `http://host:port` peer URL
/// replaced by `peer`'s.
fn localize(
    env: &[(String, String)],
    port: u16,
    stand_ins: &Local,
    peer: impl Fn(&str, u16) -> String,
) -> Vec<(String, String)> {
    let mut local: Vec<(String, String)> = env
        .iter()
        .map(|(key, value)| {
            let value = match key.as_str() {
                "APP_BIND" => format!("127.0.0.1:{port}"),
                "APP_METRICS_BIND" => format!("127.0.0.1:{}", free_port()),
                // PostgreSQL's: the image's SQLite default is left as it is.
                "APP_DATABASE_URL" if value.starts_with("postgres") => stand_ins.database.clone(),
                // A module's own role in the stand-in database, with the
                // file's password: `app migrate --roles` makes it.
                _ if key.starts_with("APP_DATABASE_URL_") => {
                    let module = key["APP_DATABASE_URL_".len()..].to_lowercase();
                    let given = Url::parse(value).unwrap();
                    let mut local = Url::parse(&stand_ins.database).unwrap();
                    let database = local.path().trim_start_matches('/').to_owned();
                    local.set_username(&format!("{database}_{module}")).unwrap();
                    local.set_password(given.password()).unwrap();
                    local.to_string()
                }
                "APP_RATE_LIMIT_REDIS" => stand_ins.redis.url(),
                "APP_BROKER_URL" => stand_ins.broker.clone(),
                "APP_JWT_JWKS_URL" => stand_ins.jwks.url.clone(),
                "OTEL_EXPORTER_OTLP_ENDPOINT" => stand_ins.collector.endpoint.clone(),
                "APP_DEV_KEY_FILE" => stand_ins.dev_key_file().display().to_string(),
                "APP_PEER_TOKEN_FILE" => {
                    let file = stand_ins.files.path().join("peer-token");
                    std::fs::write(&file, stand_ins.token(env)).unwrap();
                    file.display().to_string()
                }
                _ if value.starts_with("http://") => {
                    let url = Url::parse(value).unwrap();
                    peer(
                        url.host_str().unwrap(),
                        url.port_or_known_default().unwrap(),
                    )
                }
                _ => value.clone(),
            };
            (key.clone(), value)
        })
        .collect();
    // Quiet: laptops warn while they wait for the migration Job.
    local.push(("RUST_LOG".into(), "error".into()));
    local
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap()
}

/// Non-root, read-only, no privilege escalation, bounded resources.
fn assert_hardened(pod: &Pod, uid: u64) {
    let name = pod.name;
    let security = &pod.spec["securityContext"];
    assert_eq!(security["runAsNonRoot"], true, "{name} runs as non-root");
    assert_eq!(
        security["runAsUser"].as_u64(),
        Some(uid),
        "{name} runs as the image's user"
    );
    assert_eq!(pod.spec["automountServiceAccountToken"], false, "{name}");
    // Service variables (APP_PORT...) would read as the binary's settings.
    assert_eq!(pod.spec["enableServiceLinks"], false, "{name}");
    let container = &pod.container["securityContext"];
    assert_eq!(container["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(container["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(container["capabilities"]["drop"], json!(["ALL"]), "{name}");
    for field in [
        "requests/cpu",
        "requests/memory",
        "limits/cpu",
        "limits/memory",
    ] {
        let found = pod.container["resources"].pointer(&format!("/{field}"));
        assert!(found.is_some(), "{name} sets resources {field}");
    }
    let image = format!("app:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(pod.container["image"], image.as_str(), "{name}");
}

/// A Kubernetes overlay run as processes: one per Deployment.
struct Cluster {
    manifests: Manifests,
    processes: BTreeMap<String, Process>,
    /// A token its pods accept.
    token: String,
    _stand_ins: Local,
}

impl Cluster {
    /// Runs the Job (each module's role, then the migrations), starts
    /// every Deployment, and waits until every one is alive and ready.
    /// Before the Job, the pods could not connect: their roles are its work.
    async fn start(overlay: &str) -> Cluster {
        let manifests = Manifests::render(overlay);
        let image = Dockerfile::read();
        let uid = image.uid();
        let stand_ins = Local::start(postgres::shared().fresh_database().await).await;
        let deployments = manifests.all("Deployment");
        let local: BTreeMap<&str, u16> =
            deployments.iter().map(|d| (name(d), free_port())).collect();
        let peer = |service: &str, port: u16| {
            let deployment = manifests.behind_service(service, &json!(port));
            format!("http://127.0.0.1:{}", local[name(deployment)])
        };
        let jobs = manifests.all("Job");
        assert_eq!(jobs.len(), 1, "one migration Job");
        let job = Pod::of(&manifests, jobs[0]);
        assert_hardened(&job, uid);
        let env = [image.env.clone(), job.env.clone()].concat();
        let migrated = run(&job.args, &localize(&env, 0, &stand_ins, peer));
        assert!(migrated.status.success(), "the Job migrates: {migrated:?}");
        let mut processes = BTreeMap::new();
        for deployment in &deployments {
            let pod = Pod::of(&manifests, deployment);
            assert_hardened(&pod, uid);
            let bind = pod.var("APP_BIND").expect("APP_BIND is set");
            let metrics = pod
                .var("APP_METRICS_BIND")
                .expect("APP_METRICS_BIND is set");
            assert_eq!(
                pod.port(&json!("metrics")),
                port_of(metrics),
                "{} names the port of /metrics",
                pod.name
            );
            let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
            assert_eq!(
                annotations["prometheus.io/port"],
                port_of(metrics).to_string(),
                "{}'s scrape annotation names the metrics port",
                pod.name
            );
            for probe in ["readinessProbe", "livenessProbe"] {
                let (_, port) = pod.probe(probe);
                assert_eq!(
                    port,
                    port_of(bind),
                    "{}'s {probe} asks the port it listens on",
                    pod.name
                );
            }
            let port = local[pod.name];
            // The image's environment first, as a container gets it.
            let env = [image.env.clone(), pod.env.clone()].concat();
            let env = localize(&env, port, &stand_ins, peer);
            processes.insert(
                pod.name.to_owned(),
                Process::spawn_as(port, &pod.args, &env),
            );
        }
        let probes = |deployment: &Value| {
            let pod = Pod::of(&manifests, deployment);
            (pod.probe("livenessProbe").0, pod.probe("readinessProbe").0)
        };
        for deployment in &deployments {
            let (live, ready) = probes(deployment);
            let process = &processes[name(deployment)];
            process.answers(200, &live).await;
            process.answers(200, &ready).await;
            let pod = Pod::of(&manifests, deployment);
            assert!(
                pod.var("APP_DATABASE_URL").is_none(),
                "{} connects as its modules' own roles, never the owner",
                pod.name
            );
        }
        let token = stand_ins.token(&Pod::of(&manifests, deployments[0]).env);
        Cluster {
            manifests,
            processes,
            token,
            _stand_ins: stand_ins,
        }
    }

    /// The origin of the process the HTTPRoute sends `path` to.
    fn via(&self, path: &str) -> String {
        let deployment = self.manifests.route(path);
        self.processes[name(deployment)].address.clone()
    }

    fn args(&self, deployment: &str) -> Vec<String> {
        Pod::of(
            &self.manifests,
            self.manifests.named("Deployment", deployment),
        )
        .args
    }

    /// Each Deployment's least replicas, from its HorizontalPodAutoscaler
    /// (the Deployment leaves `replicas` to it, so an apply never scales a
    /// busy Deployment down), and a PodDisruptionBudget that keeps one up.
    fn replicas(&self) -> BTreeMap<String, u64> {
        let deployments = self.manifests.all("Deployment");
        let mut replicas = BTreeMap::new();
        for scaler in self.manifests.all("HorizontalPodAutoscaler") {
            let spec = &scaler["spec"];
            let scaled = &spec["scaleTargetRef"];
            let scaled_name = scaled["name"].as_str().unwrap();
            // In the split, a Rollout runs each Deployment's pods (a
            // release at a time) and the autoscaler scales the Rollout.
            let target = match scaled["kind"].as_str().unwrap() {
                "Rollout" => {
                    let rollout = self.manifests.named("Rollout", scaled_name);
                    let workload = &rollout["spec"]["workloadRef"];
                    assert_eq!(workload["kind"], "Deployment", "{scaled_name}");
                    self.manifests
                        .named("Deployment", workload["name"].as_str().unwrap())
                }
                _ => self.manifests.named("Deployment", scaled_name),
            };
            assert!(
                target["spec"]["replicas"].is_null(),
                "{} leaves replicas to its autoscaler",
                name(target)
            );
            let least = spec["minReplicas"].as_u64().unwrap();
            assert!(
                spec["maxReplicas"].as_u64().unwrap() > least,
                "{}",
                name(scaler)
            );
            replicas.insert(name(target).to_owned(), least);
        }
        assert_eq!(
            replicas.len(),
            deployments.len(),
            "an autoscaler per Deployment"
        );
        let budgets = self.manifests.all("PodDisruptionBudget");
        assert_eq!(budgets.len(), deployments.len(), "a budget per Deployment");
        for budget in budgets {
            let selected = self
                .manifests
                .selected(&budget["spec"]["selector"]["matchLabels"]);
            let unavailable = budget["spec"]["maxUnavailable"].as_u64().unwrap();
            assert!(
                unavailable < replicas[name(selected)],
                "{} keeps one up",
                name(budget)
            );
        }
        replicas
    }

    /// Swagger UI behind the Gateway opens on a document of every
    /// operation, and each operation reaches a process that serves it.
    async fn assert_every_operation_routed(&self) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let get = |path: &str| {
            let request = client.get(format!("{}{path}", self.via(path)));
            async move { request.send().await.unwrap() }
        };
        assert_eq!(get("/").await.headers()["location"], "/swagger-ui/");
        let initializer = get("/swagger-ui/swagger-initializer.js")
            .await
            .text()
            .await
            .unwrap();
        let opened = initializer
            .split("\"url\": \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("Swagger UI names a document");
        let shown: Value = get(opened).await.json().await.unwrap();
        let any = self.processes.values().next().unwrap();
        let every = json_at(
            &client,
            format!("{}/api-docs/all/openapi.json", any.address),
        )
        .await;
        assert_eq!(
            shown["paths"], every["paths"],
            "Swagger UI shows every operation"
        );
        for (path, operations) in every["paths"].as_object().unwrap() {
            let concrete = path.replace("{id}", "1");
            let origin = self.via(&concrete);
            let served = json_at(&client, format!("{origin}/api-docs/openapi.json")).await;
            assert_eq!(
                served["paths"][path], *operations,
                "{path} reaches a process serving it"
            );
        }
        assert_laptops_reach_ports(&self.token, |path| self.via(path)).await;
    }
}

/// A port, a laptop listing it and the laptop with its ports embedded, each
/// request sent where `origin(path)` says.
async fn assert_laptops_reach_ports(token: &str, origin: impl Fn(&str) -> String) {
    let client = crate::auth::client_with(token);
    let post = |path: &str, body: Value| {
        let request = client.post(format!("{}{path}", origin(path))).json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201, "POST {}", response.url());
            response.json::<Value>().await.unwrap()
        }
    };
    let port = post("/api/v1/ports", json!({"name": "Thunderbolt 4"})).await;
    let laptop = post(
        "/api/v1/laptops",
        json!({"title": "Framework", "model": "13", "port_ids": [port["id"]]}),
    )
    .await;
    let path = format!("/api/v1/laptops/{}", laptop["id"]);
    let expanded = json_at(&client, format!("{}{path}?expand=ports", origin(&path))).await;
    assert_eq!(
        expanded["ports"],
        json!([{"id": port["id"], "name": "Thunderbolt 4"}])
    );
}

#[tokio::test]
async fn the_monolith_overlay_serves_every_module_from_one_deployment() {
    let cluster = Cluster::start("monolith").await;
    assert_eq!(cluster.replicas(), BTreeMap::from([("app".to_owned(), 2)]));
    assert_eq!(cluster.args("app"), ["serve", "--all", "--no-migrate"]);
    cluster.assert_every_operation_routed().await;
}

#[tokio::test]
async fn the_split_overlay_serves_each_module_from_its_own_deployment() {
    let cluster = Cluster::start("split").await;
    let replicas = cluster.replicas();
    assert_eq!(replicas["laptops"], 3);
    assert_eq!(
        replicas.len(),
        modules::ALL.len(),
        "a Deployment per module"
    );
    for module in modules::ALL {
        let args = cluster.args(module.name);
        assert_eq!(args, ["serve", "--module", module.name, "--no-migrate"]);
    }
    cluster.assert_every_operation_routed().await;
    // deploy/nginx/app.conf names these Services, so it can stand in for the Gateway.
    let (upstreams, _) = nginx_upstreams();
    for (upstream, servers) in &upstreams {
        for (host, port) in servers {
            let deployment = cluster.manifests.behind_service(host, &json!(port));
            let serves = cluster.args(name(deployment)).join(" ");
            if upstream != "any_module" {
                assert!(
                    serves.contains(&format!("--module {upstream}")),
                    "{upstream}: {serves}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_image_serves_every_module_and_its_healthcheck_tells_ready_from_down() {
    let image = Dockerfile::read();
    assert_ne!(image.uid(), 0, "the image runs as non-root");
    assert_eq!(image.expose, [port_of(image.var("APP_BIND"))]);
    assert_eq!(
        image.var("APP_DATABASE_URL"),
        format!("sqlite:{}", image.volumes[0])
    );
    assert_eq!(image.command[0], "/app");
    assert_eq!(image.healthcheck[0], "/app");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let stand_ins = Local::start(format!("sqlite:{}", data.path().display())).await;
    let env = localize(&image.env, port, &stand_ins, |_, _| unreachable!());
    let healthcheck = || run(&image.healthcheck[1..], &env);

    let down = healthcheck();
    assert_eq!(down.status.code(), Some(1), "nothing listens yet: {down:?}");
    let server = Process::spawn_as(port, &image.command[1..], &env);
    server.ready().await;
    let up = healthcheck();
    assert!(up.status.success(), "{up:?}");
    for module in modules::ALL {
        let status = status_at(format!("{}{}", server.address, module.path())).await;
        assert_eq!(status, 200, "the default command serves {module:?}");
    }
    server.terminate();
    assert!(server.wait().success());
    assert_eq!(healthcheck().status.code(), Some(1), "stopped");
}

/// What a Compose service's container sees: the image's `ENV`, then the
/// service's `environment`.
fn environment(image: &Dockerfile, service: &Value) -> Vec<(String, String)> {
    let own = service["environment"].as_object().into_iter().flatten();
    let own = own.map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()));
    image.env.iter().cloned().chain(own).collect()
}

#[tokio::test]
async fn the_compose_split_runs_its_own_commands_behind_the_nginx_config() {
    let file = deploy_dir().join("compose/compose.yaml");
    let compose =
        crate::manifests::yaml_documents(&std::fs::read_to_string(&file).unwrap()).remove(0);
    let services = &compose["services"];
    let image = Dockerfile::read();
    let served_port = image.expose[0];
    let publishes = |service: &str, port: u16| {
        let published = strings(&services[service]["ports"]);
        assert!(
            published.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{service} publishes {port}: {published:?}"
        );
    };

    // The monolith: the image's own command, on SQLite in a volume.
    assert!(services["app"]["command"].is_null());
    publishes("app", served_port);
    let volumes = strings(&services["app"]["volumes"]);
    assert!(
        volumes[0].ends_with(&format!(":{}", image.volumes[0])),
        "{volumes:?}"
    );

    // The split: migrate once, then each module, then nginx.
    let command = |service: &str| strings(&services[service]["command"]);
    let in_split = |service: &str| services[service]["profiles"] == json!(["split"]);
    let module_of = |service: &str| {
        let command = command(service);
        let at = command.iter().position(|arg| arg == "--module").unwrap();
        command[at + 1].clone()
    };
    let stand_ins = Local::start(postgres::shared().fresh_database().await).await;
    let database_url = |service: &str, variable: &str| {
        let url = services[service]["environment"][variable].as_str();
        let url = Url::parse(url.unwrap_or_else(|| panic!("{service} has {variable}"))).unwrap();
        assert!(
            in_split(url.host_str().unwrap()),
            "{service} reaches PostgreSQL by its service name"
        );
        url
    };
    assert!(in_split("migrate"));
    database_url("migrate", "APP_DATABASE_URL");
    for module in modules::ALL {
        let service = module.name;
        assert!(in_split(service), "{service}");
        let variable = app::cli::own_url_variable(module);
        let own = database_url(service, &variable);
        assert_eq!(
            own,
            database_url("migrate", &variable),
            "migrate makes {service}'s role"
        );
        assert_eq!(own.username(), format!("app_{service}"));
        assert!(
            services[service]["environment"]["APP_DATABASE_URL"].is_null(),
            "{service} connects as its own role, never the owner"
        );
    }
    let migrated = run(
        &command("migrate"),
        &localize(
            &environment(&image, &services["migrate"]),
            0,
            &stand_ins,
            |_, _| unreachable!(),
        ),
    );
    assert!(migrated.status.success(), "{migrated:?}");
    // Each module's replicas, on ports chosen first so peers can be named.
    let local: BTreeMap<&str, Vec<u16>> = modules::ALL
        .iter()
        .map(|module| {
            let replicas = services[module.name]["deploy"]["replicas"]
                .as_u64()
                .unwrap_or(1);
            (module.name, (0..replicas).map(|_| free_port()).collect())
        })
        .collect();
    let peer = |host: &str, peer_port: u16| {
        assert_eq!(
            peer_port, served_port,
            "{host} is reached on the image's port"
        );
        format!("http://127.0.0.1:{}", local[module_of(host).as_str()][0])
    };
    // Prometheus scrapes every module's replicas on their metrics port.
    let scrape = crate::manifests::yaml_documents(
        &std::fs::read_to_string(deploy_dir().join("observability/prometheus.yml")).unwrap(),
    )
    .remove(0);
    let discovery = &scrape["scrape_configs"][0]["dns_sd_configs"][0];
    let metrics_bind = environment(&image, &services["laptops"])
        .into_iter()
        .rev()
        .find(|(key, _)| key == "APP_METRICS_BIND")
        .map(|(_, value)| value)
        .expect("the split serves /metrics apart");
    assert_eq!(discovery["port"], json!(port_of(&metrics_bind)));
    for module in modules::ALL {
        assert!(
            strings(&discovery["names"])
                .iter()
                .any(|n| n == module.name),
            "Prometheus finds the replicas of {}",
            module.name
        );
    }
    // The key is made first, so every replica reads the same one.
    let token = stand_ins.token(&environment(&image, &services["ports"]));
    let mut processes = Vec::new();
    for (service, ports) in &local {
        assert_eq!(&module_of(service), service, "{service} serves its module");
        for &port in ports {
            let env = localize(
                &environment(&image, &services[*service]),
                port,
                &stand_ins,
                peer,
            );
            processes.push(Process::spawn_as(port, &command(service), &env));
        }
    }
    for process in &processes {
        process.ready().await;
    }

    let gateway = &services["gateway"];
    let mount = strings(&gateway["volumes"]).remove(0);
    let source = file
        .parent()
        .unwrap()
        .join(mount.split(':').next().unwrap());
    assert_eq!(
        source.canonicalize().unwrap(),
        deploy_dir().join("nginx/app.conf").canonicalize().unwrap()
    );
    let (upstreams, listen) = nginx_upstreams();
    publishes("gateway", listen);
    publishes("gateway", 8443);
    assert!(
        strings(&gateway["volumes"])
            .iter()
            .any(|v| v.starts_with("./tls:/etc/nginx/tls")),
        "the gateway's certificate is mounted where app.conf reads it"
    );
    for service in local.keys() {
        assert_eq!(
            gateway["depends_on"][service]["condition"],
            "service_healthy"
        );
    }
    for (upstream, servers) in &upstreams {
        for (host, port) in servers {
            assert!(
                in_split(host) && *port == served_port,
                "{upstream}: {host}:{port}"
            );
            if upstream != "any_module" {
                assert_eq!(&module_of(host), upstream);
            }
        }
    }
    let upstreams: Vec<(&str, &[u16])> = local
        .iter()
        .map(|(module, ports)| (*module, ports.as_slice()))
        .collect();
    let nginx = Nginx::start(&upstreams).await;
    assert_laptops_reach_ports(&token, |_| nginx.address.clone()).await;
    // Spans go where OTEL_EXPORTER_OTLP_ENDPOINT says: a service of the
    // split (Jaeger), a receiver here; a call from laptops to ports is one trace.
    let endpoint = environment(&image, &services["laptops"])
        .into_iter()
        .rev()
        .find(|(key, _)| key == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|(_, value)| Url::parse(&value).unwrap())
        .expect("the split exports traces");
    assert!(in_split(endpoint.host_str().unwrap()), "{endpoint}");
    stand_ins
        .collector
        .until("a trace from laptops into ports", |spans| {
            spans.iter().any(|call| {
                call.service == "app-laptops"
                    && call.kind == Kind::Client
                    && spans
                        .iter()
                        .any(|s| s.service == "app-ports" && s.parent_span_id == call.span_id)
            })
        })
        .await;
    let docs = json_at(
        &crate::auth::client(),
        format!("{}/api-docs/openapi.json", nginx.address),
    )
    .await;
    for module in modules::ALL {
        let path = module.path();
        assert!(
            docs["paths"][&path].is_object(),
            "the gateway's document has {path}"
        );
    }
}

/// The modules as the deployment checks take them: the binary's list.
fn listed() -> Vec<ModuleInfo> {
    modules::ALL
        .iter()
        .map(|module| ModuleInfo {
            name: module.name.to_owned(),
            needs: module.needs.iter().map(|c| c.module.to_owned()).collect(),
        })
        .collect()
}

#[test]
fn every_module_has_its_entries_in_the_deployment_files_within_the_connection_budget() {
    let root = deploy_dir().parent().unwrap().to_owned();

    let budget = match deploy::check(&root, &listed()) {
        Ok(budget) => budget,
        Err(problems) => panic!("{problems}"),
    };

    assert_eq!(budget.modules, modules::ALL.len() as u64);
    assert!(budget.configured * budget.pools() <= deploy::CONNECTION_LIMIT);
}

#[test]
fn a_module_a_deployment_file_lacks_is_named_with_the_file_and_the_entry() {
    let copy = tempfile::tempdir().unwrap();
    let root = copy.path();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(deploy_dir())
        .arg(root)
        .status()
        .unwrap();
    assert!(copied.success());
    let edit = |file: &str, from: &str, to: &str| {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    edit(
        deploy::NGINX,
        "    location /api/v1/ports/ { proxy_pass http://ports; }\n",
        "",
    );
    edit(
        "deploy/k8s/overlays/split/laptops.yaml",
        "name: APP_PEER_PORTS",
        "name: APP_PEER_PORTZ",
    );
    edit(
        "deploy/k8s/overlays/split/laptops.yaml",
        "value: /api/v1/laptops",
        "value: /api/v1/laptop",
    );
    edit(
        "deploy/k8s/overlays/split/ports.yaml",
        "  ports:\n    - name: http",
        "  portz:\n    - name: http",
    );
    edit(
        "deploy/k8s/base/kustomization.yaml",
        "- name: app-database-ports\n",
        "- name: app-database-portz\n",
    );
    let mut modules = listed();
    // A name no module can have, so the test holds whatever modules exist.
    modules.push(ModuleInfo {
        name: "fake_module".into(),
        needs: Vec::new(),
    });

    let missing: Vec<String> = deploy::coverage(root, &modules)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();

    let split = deploy::SPLIT;
    assert_eq!(
        missing,
        [
            format!("{split}/laptops.yaml lacks `APP_PEER_PORTS` in Deployment `laptops`"),
            format!(
                "{split}/laptops.yaml lacks HTTPRoute `app-laptops` with a rule for \
                 `/api/v1/laptops` to Services `laptops` and `laptops-canary` port 8080"
            ),
            "deploy/nginx/app.conf lacks `location /api/v1/ports/ { proxy_pass http://ports; }`"
                .to_owned(),
            "deploy/k8s/base/kustomization.yaml lacks secretGenerator `app-database-ports`"
                .to_owned(),
            format!("{split}/ports.yaml lacks port `http` of Service `ports`, to the pods' `http`"),
            "deploy/nginx/app.conf lacks `server fake_module:8080` in `upstream fake_module`".to_owned(),
            "deploy/nginx/app.conf lacks `server fake_module:8080` in `upstream any_module`"
                .to_owned(),
            "deploy/nginx/app.conf lacks `location = /api/v1/fake_module { proxy_pass http://fake_module; }`"
                .to_owned(),
            "deploy/nginx/app.conf lacks `location /api/v1/fake_module/ { proxy_pass http://fake_module; }`"
                .to_owned(),
            "deploy/compose/compose.yaml lacks service `fake_module` with command \
             [\"serve\", \"--module\", \"fake_module\", \"--no-migrate\"]"
                .to_owned(),
            "deploy/compose/compose.yaml lacks `fake_module` in the gateway's depends_on".to_owned(),
            "deploy/compose/compose.yaml lacks `APP_DATABASE_URL_FAKE_MODULE` in service `fake_module`"
                .to_owned(),
            "deploy/compose/compose.yaml lacks `APP_DATABASE_URL_FAKE_MODULE` in service `migrate`"
                .to_owned(),
            "deploy/k8s/base/kustomization.yaml lacks secretGenerator `app-database-fake_module`"
                .to_owned(),
            "deploy/k8s/base/migrate.yaml lacks `APP_DATABASE_URL_FAKE_MODULE` from Secret \
             `app-database-fake_module` in Job `app-migrate`"
                .to_owned(),
            "deploy/k8s/overlays/monolith/app.yaml lacks `APP_DATABASE_URL_FAKE_MODULE` from Secret \
             `app-database-fake_module` in Deployment `app`"
                .to_owned(),
            format!("{split}/kustomization.yaml lacks resource `fake_module.yaml`"),
            format!("{split}/fake_module.yaml lacks Deployment `fake_module`"),
            format!("{split}/fake_module.yaml lacks Service `fake_module`"),
            format!("{split}/fake_module.yaml lacks PodDisruptionBudget `fake_module`"),
            format!("{split}/fake_module.yaml lacks HorizontalPodAutoscaler `fake_module`"),
            format!("{split}/fake_module.yaml lacks Rollout `fake_module`"),
            format!("{split}/fake_module.yaml lacks Service `fake_module-canary`"),
            format!(
                "{split}/fake_module.yaml lacks HTTPRoute `app-fake_module` with a rule for \
                 `/api/v1/fake_module` to Services `fake_module` and `fake_module-canary` port 8080"
            ),
        ]
    );
    let allowed = deploy::budget(root, &listed()).unwrap().per_module;
    deploy::set_connections(root, allowed + 1).unwrap();
    let over = deploy::check(root, &listed()).unwrap_err().to_string();
    let sets = format!(
        "sets APP_DATABASE_MAX_CONNECTIONS={}, over the budget",
        allowed + 1
    );
    assert!(
        over.contains(&sets) && over.contains(&format!("allow {allowed} per module and pod")),
        "{over}"
    );
}
