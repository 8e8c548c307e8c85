//! The deployment files against the binary's list of modules. They stay
//! plain files a person reads and edits; this says which entry a module
//! lacks in which file, and what PostgreSQL connection budget the
//! autoscalers leave each module.

use std::fmt;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;
use serde_yaml_ng::Value;

pub const NGINX: &str = "deploy/nginx/app.conf";
pub const COMPOSE: &str = "deploy/compose/compose.yaml";
pub const PROMETHEUS: &str = "deploy/observability/prometheus.yml";
pub const SPLIT: &str = "deploy/k8s/overlays/split";
pub const MONOLITH_APP: &str = "deploy/k8s/overlays/monolith/app.yaml";
pub const BASE: &str = "deploy/k8s/base/kustomization.yaml";
pub const MIGRATE_JOB: &str = "deploy/k8s/base/migrate.yaml";

/// PostgreSQL's default `max_connections` (100), less the 3 it keeps for
/// superusers.
pub const CONNECTION_LIMIT: u64 = 97;
/// The ConfigMap entry that caps each module's pool.
pub const MAX_CONNECTIONS: &str = "APP_DATABASE_MAX_CONNECTIONS";

/// A module as `app modules --json` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModuleInfo {
    pub name: String,
    /// The modules it calls.
    #[serde(default)]
    pub needs: Vec<String>,
}

impl ModuleInfo {
    fn peer_variable(need: &str) -> String {
        format!("APP_PEER_{}", need.to_uppercase())
    }

    /// The variable of the URL the module connects with, as its own role.
    fn database_variable(&self) -> String {
        format!("APP_DATABASE_URL_{}", self.name.to_uppercase())
    }

    /// The Kubernetes Secret holding that URL, under key `url`.
    fn database_secret(&self) -> String {
        format!("app-database-{}", self.name)
    }
}

/// Whether a container's `env` sets `variable` from key `url` of `secret`.
fn from_secret(env: &Value, variable: &str, secret: &str) -> bool {
    env.as_sequence().into_iter().flatten().any(|e| {
        let reference = &e["valueFrom"]["secretKeyRef"];
        e["name"].as_str() == Some(variable)
            && reference["name"].as_str() == Some(secret)
            && reference["key"].as_str() == Some("url")
    })
}

/// The env of the first container of the workload `kind` `name` in `objects`.
fn container_env<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    named(objects, kind, name).map(|w| &w["spec"]["template"]["spec"]["containers"][0]["env"])
}

/// What a deployment file lacks for a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The file, from the workspace's root.
    pub file: String,
    pub entry: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} lacks {}", self.file, self.entry)
    }
}

/// Every entry the deployment files lack for `modules`: nginx's upstreams
/// and routes, Compose's split services, the Kubernetes split overlay's
/// objects and HTTPRoute rules.
pub fn coverage(root: &Path, modules: &[ModuleInfo]) -> anyhow::Result<Vec<Missing>> {
    let mut missing = Vec::new();
    let mut lacks = |file: &str, entry: String| {
        missing.push(Missing {
            file: file.to_owned(),
            entry,
        })
    };
    let nginx = Nginx::read(&root.join(NGINX))?;
    let mut compose = yaml(&root.join(COMPOSE))?;
    // Environments are merged from anchors, as Compose reads them.
    compose[0]
        .apply_merge()
        .with_context(|| format!("{COMPOSE}: a merge key is not a mapping"))?;
    let services = &compose[0]["services"];
    let base = yaml(&root.join(BASE))?;
    let generated: Vec<String> = base[0]["secretGenerator"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|secret| secret["name"].as_str().map(str::to_owned))
        .collect();
    let job = yaml(&root.join(MIGRATE_JOB))?;
    let monolith = yaml(&root.join(MONOLITH_APP))?;
    let kustomization = yaml(&root.join(SPLIT).join("kustomization.yaml"))?;
    let resources = strings(&kustomization[0]["resources"]);
    for module in modules {
        let name = module.name.as_str();
        let api = format!("/api/v1/{name}");

        for upstream in [name, "any_module"] {
            if !nginx.servers(upstream).contains(&format!("{name}:8080")) {
                lacks(
                    NGINX,
                    format!("`server {name}:8080` in `upstream {upstream}`"),
                );
            }
        }
        for location in [
            format!("location = {api} {{ proxy_pass http://{name}; }}"),
            format!("location {api}/ {{ proxy_pass http://{name}; }}"),
        ] {
            if !nginx.lines.contains(&location) {
                lacks(NGINX, format!("`{location}`"));
            }
        }

        let service = &services[name];
        let command = ["serve", "--module", name, "--no-migrate"];
        if strings(&service["command"]) != command {
            lacks(
                COMPOSE,
                format!("service `{name}` with command {command:?}"),
            );
        } else if strings(&service["profiles"]) != ["split"] {
            lacks(COMPOSE, format!("service `{name}` in profile `split`"));
        }
        for need in &module.needs {
            let variable = ModuleInfo::peer_variable(need);
            if service["environment"][variable.as_str()].is_null() {
                lacks(COMPOSE, format!("`{variable}` in service `{name}`"));
            }
        }
        if services["gateway"]["depends_on"][name].is_null() {
            lacks(COMPOSE, format!("`{name}` in the gateway's depends_on"));
        }
        // Its own role's URL where it serves and where the roles are made;
        // never the owner's where it serves.
        let variable = module.database_variable();
        for service in [name, "migrate"] {
            if services[service]["environment"][variable.as_str()].is_null() {
                lacks(COMPOSE, format!("`{variable}` in service `{service}`"));
            }
        }
        if !services[name]["environment"]["APP_DATABASE_URL"].is_null() {
            lacks(
                COMPOSE,
                format!(
                    "service `{name}` connecting as its own role, not the owner's `APP_DATABASE_URL`"
                ),
            );
        }
        let secret = module.database_secret();
        if !generated.contains(&secret) {
            lacks(BASE, format!("secretGenerator `{secret}`"));
        }
        let sets =
            |env: Option<&Value>| env.is_some_and(|env| from_secret(env, &variable, &secret));
        if !sets(container_env(&job, "Job", "app-migrate")) {
            lacks(
                MIGRATE_JOB,
                format!("`{variable}` from Secret `{secret}` in Job `app-migrate`"),
            );
        }
        if !sets(container_env(&monolith, "Deployment", "app")) {
            lacks(
                MONOLITH_APP,
                format!("`{variable}` from Secret `{secret}` in Deployment `app`"),
            );
        }

        let file = format!("{name}.yaml");
        if !resources.contains(&file) {
            lacks(
                &format!("{SPLIT}/kustomization.yaml"),
                format!("resource `{file}`"),
            );
        }
        let path = root.join(SPLIT).join(&file);
        let objects = if path.exists() {
            yaml(&path)?
        } else {
            Vec::new()
        };
        let shown = format!("{SPLIT}/{file}");
        for kind in [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "Rollout",
        ] {
            if named(&objects, kind, name).is_none() {
                lacks(&shown, format!("{kind} `{name}`"));
            }
        }
        let canary_service = format!("{name}-canary");
        if named(&objects, "Service", &canary_service).is_none() {
            lacks(&shown, format!("Service `{canary_service}`"));
        }
        if let Some(service) = named(&objects, "Service", name) {
            let http = service["spec"]["ports"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["name"].as_str() == Some("http") && p["targetPort"].as_str() == Some("http")
                });
            if !http {
                lacks(
                    &shown,
                    format!("port `http` of Service `{name}`, to the pods' `http`"),
                );
            }
        }
        if let Some(deployment) = named(&objects, "Deployment", name) {
            let container = &deployment["spec"]["template"]["spec"]["containers"][0];
            let args = strings(&container["args"]);
            if args != command {
                lacks(&shown, format!("container args {command:?}"));
            }
            if !from_secret(&container["env"], &variable, &secret) {
                lacks(
                    &shown,
                    format!("`{variable}` from Secret `{secret}` in Deployment `{name}`"),
                );
            }
            let env = container["env"].as_sequence().cloned().unwrap_or_default();
            for need in &module.needs {
                let variable = ModuleInfo::peer_variable(need);
                if !env.iter().any(|e| e["name"].as_str() == Some(&variable)) {
                    lacks(&shown, format!("`{variable}` in Deployment `{name}`"));
                }
            }
        }
        // Its API through a route of its own, whose weights its Rollout
        // shifts from Service `name` to `name-canary` during a release.
        let route = format!("app-{name}");
        let routed = named(&objects, "HTTPRoute", &route).is_some_and(|route| {
            route["spec"]["rules"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|rule| {
                    let matches = rule["matches"].as_sequence().into_iter().flatten();
                    let backends: Vec<&Value> = rule["backendRefs"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .collect();
                    let to = |service: &str| {
                        backends.iter().any(|b| {
                            b["name"].as_str() == Some(service) && b["port"].as_u64() == Some(8080)
                        })
                    };
                    matches
                        .into_iter()
                        .any(|m| m["path"]["value"].as_str() == Some(&api))
                        && to(name)
                        && to(&canary_service)
                })
        });
        if !routed {
            lacks(
                &shown,
                format!(
                    "HTTPRoute `{route}` with a rule for `{api}` to Services `{name}` and \
                     `{canary_service}` port 8080"
                ),
            );
        }
    }
    Ok(missing)
}

/// The PostgreSQL connections the Kubernetes overlays may open, at the
/// autoscalers' most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub modules: u64,
    /// Pods of the monolith, each serving every module.
    pub monolith_pods: u64,
    /// Pods of the split, each serving one module, with every module's
    /// release running its new pods beside the old.
    pub split_pods: u64,
    /// The most connections per module and pod that stay under the limit.
    pub per_module: u64,
    /// What the ConfigMap sets.
    pub configured: u64,
}

impl Budget {
    /// Module pools open at once at the most: the larger overlay's, and
    /// the migration Job's, which opens every module.
    pub fn pools(&self) -> u64 {
        (self.monolith_pods * self.modules).max(self.split_pods) + self.modules
    }

    /// At least one connection per module and pod, and no more than allowed.
    pub fn fits(&self) -> bool {
        (1..=self.per_module).contains(&self.configured)
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{modules} modules: at the autoscalers' most, the monolith runs {mono} pods × \
             {modules} modules and the split {split} pods (its releases doubling every module's), so with the migration Job up to \
             {pools} module pools are open; {limit} connections (PostgreSQL's default 100, \
             less 3 for superusers) allow {per} per module and pod; {BASE} sets {configured}",
            modules = self.modules,
            mono = self.monolith_pods,
            split = self.split_pods,
            pools = self.pools(),
            limit = CONNECTION_LIMIT,
            per = self.per_module,
            configured = self.configured,
        )
    }
}

/// The budget of `modules` as the overlays' autoscalers and the ConfigMap
/// stand.
pub fn budget(root: &Path, modules: &[ModuleInfo]) -> anyhow::Result<Budget> {
    let most = |file: &Path, name: &str| -> anyhow::Result<u64> {
        let objects = yaml(file)?;
        named(&objects, "HorizontalPodAutoscaler", name)
            .and_then(|scaler| scaler["spec"]["maxReplicas"].as_u64())
            .with_context(|| format!("{} has no autoscaler `{name}`", file.display()))
    };
    let monolith_pods = most(&root.join(MONOLITH_APP), "app")?;
    let mut split_pods = 0;
    for module in modules {
        let file = root.join(SPLIT).join(format!("{}.yaml", module.name));
        split_pods += most(&file, &module.name)?;
    }
    // A module's release runs its new pods beside the old: at full size in
    // blue-green, and for a while after a canary's promotion, until the old
    // scale down. One image tag releases every module at once.
    split_pods *= 2;
    let mut budget = Budget {
        modules: modules.len() as u64,
        monolith_pods,
        split_pods,
        per_module: 0,
        configured: configured_connections(root)?,
    };
    budget.per_module = CONNECTION_LIMIT / budget.pools();
    Ok(budget)
}

/// `APP_DATABASE_MAX_CONNECTIONS` in the base ConfigMap.
pub fn configured_connections(root: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(root.join(BASE))?;
    let prefix = format!("- {MAX_CONNECTIONS}=");
    text.lines()
        .find_map(|line| line.trim().strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
        .with_context(|| format!("{BASE} sets no {MAX_CONNECTIONS}"))
}

/// Sets `APP_DATABASE_MAX_CONNECTIONS` in the base ConfigMap.
pub fn set_connections(root: &Path, value: u64) -> anyhow::Result<()> {
    let path = root.join(BASE);
    let text = std::fs::read_to_string(&path)?;
    let prefix = format!("- {MAX_CONNECTIONS}=");
    let edited: Vec<String> = text
        .lines()
        .map(|line| match line.trim().strip_prefix(&prefix) {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}{prefix}{value}")
            }
            None => line.to_owned(),
        })
        .collect();
    std::fs::write(&path, edited.join("\n") + "\n")?;
    Ok(())
}

/// Coverage and budget together: `Err` lists every problem, one a line.
pub fn check(root: &Path, modules: &[ModuleInfo]) -> anyhow::Result<Budget> {
    let mut problems: Vec<String> = coverage(root, modules)?
        .iter()
        .map(ToString::to_string)
        .collect();
    let budget = budget(root, modules);
    match &budget {
        Ok(budget) if budget.per_module == 0 => problems.push(format!(
            "no connection is left per module and pod: {budget}; raise PostgreSQL's \
             max_connections (and CONNECTION_LIMIT), put a pooler (PgBouncer) in front, \
             or lower the autoscalers' maxReplicas"
        )),
        Ok(budget) if !budget.fits() => problems.push(format!(
            "{BASE} sets {MAX_CONNECTIONS}={}, over the budget: {budget}",
            budget.configured
        )),
        Ok(_) => {}
        Err(error) => problems.push(format!("{error:#}")),
    }
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    budget
}

/// The lines of nginx's configuration, trimmed, and the `server` hosts of
/// each upstream.
struct Nginx {
    lines: Vec<String>,
    upstreams: Vec<(String, Vec<String>)>,
}

impl Nginx {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let lines: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
        let mut upstreams: Vec<(String, Vec<String>)> = Vec::new();
        let mut current: Option<usize> = None;
        for line in &lines {
            if let Some(name) = line
                .strip_prefix("upstream ")
                .and_then(|rest| rest.strip_suffix(" {"))
            {
                upstreams.push((name.to_owned(), Vec::new()));
                current = Some(upstreams.len() - 1);
            } else if line == "}" {
                current = None;
            } else if let (Some(at), Some(server)) = (current, line.strip_prefix("server ")) {
                let host = server.split_whitespace().next().unwrap_or_default();
                upstreams[at].1.push(host.trim_end_matches(';').to_owned());
            }
        }
        Ok(Self { lines, upstreams })
    }

    fn servers(&self, upstream: &str) -> Vec<String> {
        self.upstreams
            .iter()
            .find(|(name, _)| name == upstream)
            .map(|(_, servers)| servers.clone())
            .unwrap_or_default()
    }
}

fn yaml(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document).with_context(|| format!("{} is not YAML", path.display()))
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
}
