//! The versions this process meets: its own, and those of the modules that
//! call it and of the producers whose events it applies. Modules are
//! deployed one at a time, so two versions run side by side: the last
//! release and this one. A peer at any other version is skew no release
//! was tested for; `app_peer_build_info{supported="false"}` says so, and an
//! alert fires on it.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The version of every crate of the workspace, this binary's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The last release before this version, as recorded under `releases/`;
/// `None` before the first.
pub const LAST_RELEASE: Option<&str> = {
    let last = env!("APP_LAST_RELEASE");
    if last.is_empty() { None } else { Some(last) }
};

/// How long a version not heard again stays on record.
const STALE: Duration = Duration::from_secs(600);

/// At most this many (module, version, channel) kept: whatever a caller
/// claims, the metric's labels stay few.
const MAX_HEARD: usize = 32;

/// The `User-Agent` of a call `module` makes to a peer: `app-<module>/<version>`.
pub fn user_agent(module: &str) -> String {
    format!("app-{module}/{VERSION}")
}

/// The module and version a `User-Agent` of [`user_agent`]'s form names.
pub fn parse_user_agent(agent: &str) -> Option<(&str, &str)> {
    let (module, version) = agent.strip_prefix("app-")?.split_once('/')?;
    Some((module, version))
}

/// How a version was heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A call from the module, by its `User-Agent`.
    Http,
    /// An event the module produced, by its `producerversion`.
    Events,
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Events => "events",
        }
    }
}

static MODULES: OnceLock<Vec<&'static str>> = OnceLock::new();

struct Entry {
    module: &'static str,
    version: String,
    via: Via,
    at: Instant,
}

static HEARD: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Says which modules exist: a version heard from any other name is not
/// recorded. Set once, at start; until then nothing is recorded.
pub fn configure(modules: &[&'static str]) {
    let _ = MODULES.set(modules.to_vec());
}

/// Whether a peer at `version` may run beside this one: it is this
/// version, the last release, or newer than this (the newer side judges:
/// it knows its own last release).
pub fn supported(version: &str) -> bool {
    if version == VERSION || LAST_RELEASE == Some(version) {
        return true;
    }
    match (
        semver::Version::parse(version),
        semver::Version::parse(VERSION),
    ) {
        (Ok(heard), Ok(this)) => heard > this,
        _ => false,
    }
}

/// Records that `module` at `version` was heard from, just now.
pub fn heard(module: &str, version: &str, via: Via) {
    let Some(modules) = MODULES.get() else { return };
    let Some(&module) = modules.iter().find(|known| **known == module) else {
        return;
    };
    let plausible = !version.is_empty()
        && version.len() <= 64
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-".contains(&b));
    if !plausible {
        return;
    }
    let now = Instant::now();
    let mut heard = HEARD.lock().expect("versions lock");
    if let Some(entry) = heard
        .iter_mut()
        .find(|e| e.module == module && e.via == via && e.version == version)
    {
        entry.at = now;
        return;
    }
    forget_stale(&mut heard, now);
    if heard.len() >= MAX_HEARD {
        return;
    }
    gauge(module, version, via).set(1.0);
    heard.push(Entry {
        module,
        version: version.to_owned(),
        via,
        at: now,
    });
}

/// Drops what was not heard for a while, its metric set to 0.
pub fn sweep() {
    forget_stale(&mut HEARD.lock().expect("versions lock"), Instant::now());
}

fn forget_stale(heard: &mut Vec<Entry>, now: Instant) {
    heard.retain(|entry| {
        let fresh = now.duration_since(entry.at) < STALE;
        if !fresh {
            gauge(entry.module, &entry.version, entry.via).set(0.0);
        }
        fresh
    });
}

fn gauge(module: &'static str, version: &str, via: Via) -> metrics::Gauge {
    metrics::gauge!(
        "app_peer_build_info",
        "peer" => module,
        "version" => version.to_owned(),
        "via" => via.label(),
        "supported" => if supported(version) { "true" } else { "false" },
    )
}

/// A version heard recently, as `/health/ready` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Heard {
    pub module: &'static str,
    pub version: String,
    pub via: Via,
    /// This version or the last release.
    pub supported: bool,
    /// Seconds since it was last heard.
    pub seen_seconds_ago: u64,
}

/// What was heard in the last ten minutes, by module, version and channel.
pub fn heard_lately() -> Vec<Heard> {
    let now = Instant::now();
    let mut heard = HEARD.lock().expect("versions lock");
    forget_stale(&mut heard, now);
    let mut report: Vec<Heard> = heard
        .iter()
        .map(|entry| Heard {
            module: entry.module,
            version: entry.version.clone(),
            via: entry.via,
            supported: supported(&entry.version),
            seen_seconds_ago: now.duration_since(entry.at).as_secs(),
        })
        .collect();
    report.sort_by(|a, b| (a.module, &a.version).cmp(&(b.module, &b.version)));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_round_trip_and_others_are_not_ours() {
        assert_eq!(
            parse_user_agent(&user_agent("laptops")),
            Some(("laptops", VERSION))
        );
        assert_eq!(parse_user_agent("curl/8.5.0"), None);
        assert_eq!(parse_user_agent("app-ports"), None);
    }

    #[test]
    fn this_version_the_last_release_and_newer_ones_are_supported() {
        assert!(supported(VERSION));
        assert!(supported("999.0.0"), "a newer peer judges for itself");
        assert!(!supported("0.0.1-old"));
        assert!(!supported("not a version"));
        if let Some(last) = LAST_RELEASE {
            assert!(supported(last));
        }
    }
}
