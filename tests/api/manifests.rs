//! Reading the deployment files as their tools would: Kubernetes overlays
//! rendered by `kubectl kustomize`, the Compose file, the Dockerfile's final
//! stage, and the upstreams of the nginx config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde::Deserialize as _;
use serde_json::Value;

use crate::gateway::deploy_dir;

/// Every document of a YAML stream, merge keys (`<<`) applied.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| {
            let mut value = serde_yaml_ng::Value::deserialize(document).expect("valid YAML");
            value.apply_merge().expect("valid merge keys");
            serde_json::to_value(value).expect("YAML that JSON can hold")
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// `kubectl`, which renders Kustomize overlays: `$KUBECTL`, else the one
/// `.ci/run` installs, else the one on `PATH`.
fn kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return path.into();
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-tools/bin/kubectl");
    if installed.exists() {
        installed
    } else {
        "kubectl".into()
    }
}

/// The objects of a rendered Kustomize overlay.
pub struct Manifests(Vec<Value>);

impl Manifests {
    pub fn render(overlay: &str) -> Manifests {
        let dir = deploy_dir().join("k8s/overlays").join(overlay);
        let output = Command::new(kubectl())
            .arg("kustomize")
            .arg(&dir)
            .output()
            .expect("kubectl runs: `bash .ci/run` installs it, or set KUBECTL");
        assert!(
            output.status.success(),
            "kubectl kustomize {overlay}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Manifests(yaml_documents(&String::from_utf8(output.stdout).unwrap()))
    }

    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|o| o["kind"] == kind).collect()
    }

    pub fn named(&self, kind: &str, name: &str) -> &Value {
        self.0
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    }

    /// The one Deployment whose pods `selector` (label → value) selects.
    pub fn selected(&self, selector: &Value) -> &Value {
        let selector = selector.as_object().expect("a selector");
        let chosen: Vec<&Value> = self
            .all("Deployment")
            .into_iter()
            .filter(|d| {
                let labels = &d["spec"]["template"]["metadata"]["labels"];
                selector.iter().all(|(key, value)| labels[key] == *value)
            })
            .collect();
        assert_eq!(chosen.len(), 1, "{selector:?} selects one Deployment");
        chosen[0]
    }

    /// The Deployment behind Service `name` at `port` (a number or a name),
    /// whose container must listen there: `APP_BIND` has that port.
    pub fn behind_service(&self, name: &str, port: &Value) -> &Value {
        let service = self.named("Service", name);
        let deployment = self.selected(&service["spec"]["selector"]);
        let service_port = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == *port || p["name"] == *port)
            .unwrap_or_else(|| panic!("Service {name} has port {port}"));
        let pod = Pod::of(self, deployment);
        let lands_on = pod.port(&service_port["targetPort"]);
        let bind = pod.var("APP_BIND").expect("APP_BIND is set");
        assert_eq!(
            lands_on,
            port_of(bind),
            "{name}:{port} lands where {} listens",
            pod.name
        );
        deployment
    }

    /// Where the HTTPRoutes send `path`: the rule with the longest matching
    /// `PathPrefix` (which matches whole path elements) of any route, as
    /// Gateway API chooses, to its one backend with weight (a canary's
    /// Service waits at weight 0 between releases).
    pub fn route(&self, path: &str) -> &Value {
        let routes = self.all("HTTPRoute");
        let (prefix, rule) = routes
            .iter()
            .flat_map(|route| route["spec"]["rules"].as_array().unwrap())
            .flat_map(|rule| {
                rule["matches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |m| (m, rule))
            })
            .filter_map(|(m, rule)| {
                assert_eq!(m["path"]["type"], "PathPrefix", "{m}");
                let prefix = m["path"]["value"].as_str().unwrap().trim_end_matches('/');
                let matches = path == prefix
                    || path
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'));
                matches.then_some((prefix, rule))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .unwrap_or_else(|| panic!("the HTTPRoute routes {path}"));
        let backends: Vec<&Value> = rule["backendRefs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["weight"].as_u64() != Some(0))
            .collect();
        assert_eq!(backends.len(), 1, "{prefix}: one backend with weight");
        self.behind_service(backends[0]["name"].as_str().unwrap(), &backends[0]["port"])
    }

    /// The environment `envFrom` gives a container: ConfigMaps and Secrets.
    /// Key `key` of the rendered Secret `name`, decoded.
    fn secret(&self, name: &str, key: &str) -> String {
        let value = &self.named("Secret", name)["data"][key];
        let value = value
            .as_str()
            .unwrap_or_else(|| panic!("Secret {name} has {key}"));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .unwrap();
        String::from_utf8(decoded).unwrap()
    }

    fn env_from(&self, sources: &Value) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for source in sources.as_array().into_iter().flatten() {
            if let Some(name) = source["configMapRef"]["name"].as_str() {
                for (key, value) in self.named("ConfigMap", name)["data"].as_object().unwrap() {
                    env.push((key.clone(), value.as_str().unwrap().to_owned()));
                }
            } else if let Some(name) = source["secretRef"]["name"].as_str() {
                for (key, value) in self.named("Secret", name)["data"].as_object().unwrap() {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(value.as_str().unwrap())
                        .unwrap();
                    env.push((key.clone(), String::from_utf8(decoded).unwrap()));
                }
            } else {
                panic!("envFrom {source}");
            }
        }
        env
    }
}

/// The one container of a Deployment's or Job's pods.
pub struct Pod<'a> {
    pub name: &'a str,
    pub spec: &'a Value,
    pub container: &'a Value,
    pub args: Vec<String>,
    /// `envFrom`, then `env`: later entries win, as in Kubernetes.
    pub env: Vec<(String, String)>,
}

impl<'a> Pod<'a> {
    pub fn of(manifests: &'a Manifests, workload: &'a Value) -> Pod<'a> {
        let spec = &workload["spec"]["template"]["spec"];
        let containers = spec["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "one container");
        let container = &containers[0];
        let mut env = manifests.env_from(&container["envFrom"]);
        for var in container["env"].as_array().into_iter().flatten() {
            let value = match var["valueFrom"]["secretKeyRef"].as_object() {
                Some(reference) => manifests.secret(
                    reference["name"].as_str().unwrap(),
                    reference["key"].as_str().unwrap(),
                ),
                None => var["value"].as_str().expect("a literal value").to_owned(),
            };
            env.push((var["name"].as_str().unwrap().to_owned(), value));
        }
        Pod {
            name: workload["metadata"]["name"].as_str().unwrap(),
            spec,
            container,
            args: strings(&container["args"]),
            env,
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The container port `port` names (a number or a port's name).
    pub fn port(&self, port: &Value) -> u16 {
        let mut declared = self.container["ports"].as_array().into_iter().flatten();
        let found = declared.find(|p| p["name"] == *port || p["containerPort"] == *port);
        let found = found.unwrap_or_else(|| panic!("{} declares port {port}", self.name));
        found["containerPort"].as_u64().unwrap() as u16
    }

    /// The probe `kind` (`readinessProbe`...): its path and port.
    pub fn probe(&self, kind: &str) -> (String, u16) {
        let get = &self.container[kind]["httpGet"];
        assert!(get.is_object(), "{} has an HTTP {kind}", self.name);
        (
            get["path"].as_str().unwrap().to_owned(),
            self.port(&get["port"]),
        )
    }
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The port of a `host:port` listen address.
pub fn port_of(address: &str) -> u16 {
    address.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// The final stage of the Dockerfile, as `docker build` would see it.
pub struct Dockerfile {
    pub env: Vec<(String, String)>,
    pub expose: Vec<u16>,
    pub volumes: Vec<String>,
    pub user: String,
    pub healthcheck: Vec<String>,
    /// ENTRYPOINT then CMD: what `docker run IMAGE` runs.
    pub command: Vec<String>,
}

impl Dockerfile {
    pub fn read() -> Dockerfile {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
        let joined = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\\\n", " ");
        let last_stage = joined.rsplit_once("\nFROM ").expect("a FROM").1;
        let mut instructions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for line in last_stage.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let (instruction, rest) = line.trim().split_once(' ').unwrap();
            instructions
                .entry(instruction)
                .or_default()
                .push(rest.trim());
        }
        let one = |name: &str| -> &str {
            let found = instructions
                .get(name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert_eq!(found.len(), 1, "one {name} in the final stage");
            found[0]
        };
        let json = |text: &str| -> Vec<String> {
            strings(&serde_json::from_str(text).expect("exec form"))
        };
        let env = instructions["ENV"]
            .iter()
            .flat_map(|line| line.split_whitespace())
            .map(|pair| {
                let (key, value) = pair.split_once('=').expect("ENV KEY=VALUE");
                (key.to_owned(), value.to_owned())
            })
            .collect();
        let mut command = json(one("ENTRYPOINT"));
        command.extend(json(one("CMD")));
        Dockerfile {
            env,
            expose: one("EXPOSE")
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect(),
            volumes: json(one("VOLUME")),
            user: one("USER").to_owned(),
            healthcheck: json(one("HEALTHCHECK").split_once(" CMD ").unwrap().1),
            command,
        }
    }

    /// The user the image runs as.
    pub fn uid(&self) -> u64 {
        let uid = self.user.split(':').next().unwrap();
        uid.parse().expect("a numeric USER")
    }

    pub fn var(&self, name: &str) -> &str {
        let found = self.env.iter().find(|(key, _)| key == name);
        &found.unwrap_or_else(|| panic!("the image sets {name}")).1
    }
}

/// The `host:port` of every `server` line of each upstream of
/// `deploy/nginx/app.conf`, and the port it listens on.
pub fn nginx_upstreams() -> (BTreeMap<String, Vec<(String, u16)>>, u16) {
    let conf = std::fs::read_to_string(deploy_dir().join("nginx/app.conf")).unwrap();
    let mut upstreams: BTreeMap<String, Vec<(String, u16)>> = BTreeMap::new();
    let (mut current, mut listen) = (None, None);
    for line in conf.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("upstream ") {
            current = Some(name.trim_end_matches(" {").to_owned());
        } else if line == "}" {
            current = None;
        } else if let (Some(upstream), Some(server)) = (&current, line.strip_prefix("server ")) {
            let address = server.split_whitespace().next().unwrap();
            let (host, port) = address.split_once(':').unwrap();
            upstreams
                .entry(upstream.clone())
                .or_default()
                .push((host.to_owned(), port.parse().unwrap()));
        } else if let Some(port) = line.strip_prefix("listen ")
            && !port.contains("ssl")
        {
            listen = Some(port.trim_end_matches(';').parse().unwrap());
        }
    }
    (upstreams, listen.expect("a listen line"))
}
