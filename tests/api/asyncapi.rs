//! The documents in `asyncapi/` are what the code generates, and valid.
//! Regenerate them with `UPDATE_ASYNCAPI=1 cargo test asyncapi`.

use std::path::{Path, PathBuf};
use std::process::Command;

use app::asyncapi::asyncapi;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("asyncapi")
}

/// `all.json` for every module, and one document per module.
fn documents() -> Vec<(PathBuf, serde_json::Value)> {
    let mut documents = vec![(root().join("all.json"), asyncapi(app::modules::ALL))];
    documents.extend(
        app::modules::ALL
            .iter()
            .map(|&m| (root().join(format!("{}.json", m.name)), asyncapi(&[m]))),
    );
    documents
}

#[test]
fn checked_in_asyncapi_documents_match_the_code() {
    for (path, document) in documents() {
        let generated = serde_json::to_string_pretty(&document).unwrap() + "\n";
        if std::env::var_os("UPDATE_ASYNCAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} differs from the code: run UPDATE_ASYNCAPI=1 cargo test asyncapi",
            path.display()
        );
    }
}

#[test]
fn the_reference_parser_finds_no_error_or_warning_in_any_document() {
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asyncapi");
    assert!(
        check.join("node_modules/@asyncapi/parser").is_dir(),
        "@asyncapi/parser is missing: run `npm ci --prefix tests/asyncapi` (see .ci/run)"
    );
    let paths: Vec<PathBuf> = documents().into_iter().map(|(path, _)| path).collect();
    let output = Command::new("node")
        .arg(check.join("validate.mjs"))
        .args(&paths)
        .output()
        .expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    let parsed: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), paths.len(), "{report}");
    let laptops = parsed
        .iter()
        .find(|p| p["path"].as_str().unwrap().ends_with("laptops.json"))
        .unwrap();
    assert_eq!(
        (&laptops["channels"], &laptops["messages"]),
        (&serde_json::json!(2), &serde_json::json!(6)),
        "laptops' own channel, and the ports channel it follows"
    );
}

#[test]
fn each_event_carries_the_schema_its_contract_declares_and_follows_name_recorded_types() {
    let doc = asyncapi(app::modules::ALL);
    let schemas = &doc["components"]["schemas"];
    let renamed = &schemas["port.renamed"]["allOf"];
    assert_eq!(renamed[0]["$ref"], "#/components/schemas/CloudEvent");
    assert_eq!(renamed[1]["properties"]["type"]["const"], "port.renamed");
    assert_eq!(
        renamed[1]["properties"]["data"]["$ref"],
        "#/components/schemas/PortData"
    );
    assert!(schemas["PortData"]["properties"]["name"].is_object());
    assert!(schemas["LaptopData"]["properties"]["port_ids"].is_object());
    assert_eq!(
        schemas["laptop.deleted"]["allOf"][1]["properties"]["data"]["$ref"],
        "#/components/schemas/Deleted"
    );
    assert_eq!(
        schemas["Deleted"]["required"],
        serde_json::json!(["id", "version"])
    );
    let follow = &doc["operations"]["laptops.follow.ports"];
    assert_eq!(follow["action"], "receive");
    assert_eq!(follow["messages"].as_array().unwrap().len(), 3);
    // What a module follows, some module records.
    for module in app::modules::ALL {
        for kind in module.follows {
            assert!(
                app::modules::ALL
                    .iter()
                    .any(|m| m.events.iter().any(|e| e.kind == *kind)),
                "{} follows {kind}, which no module records",
                module.name
            );
        }
    }
}
