//! The documents in `openapi/` are what the code generates.
//! Regenerate them with `UPDATE_OPENAPI=1 cargo test openapi`.

use app::http::docs::openapi;

#[test]
fn checked_in_openapi_documents_match_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi");
    let mut documents = vec![("all".to_owned(), app::modules::ALL.to_vec())];
    documents.extend(
        app::modules::ALL
            .iter()
            .map(|&m| (m.name.to_owned(), vec![m])),
    );
    for (name, modules) in documents {
        let path = root.join(format!("{name}.json"));
        let generated = openapi(&modules).to_pretty_json().unwrap() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} differs from the code: run UPDATE_OPENAPI=1 cargo test openapi",
            path.display()
        );
    }
}

#[test]
fn every_operation_has_a_unique_id_and_documents_its_problems() {
    let doc = serde_json::to_value(openapi(app::modules::ALL)).unwrap();
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            ids.push(operation["operationId"].as_str().unwrap().to_owned());
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("503"),
                "{method} {path} documents 503"
            );
            if path.contains("{id}") {
                assert!(
                    responses.contains_key("400") && responses.contains_key("404"),
                    "{method} {path}"
                );
            }
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    let under = |prefix: &str| {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, item)| item.as_object().unwrap().len())
            .sum::<usize>()
    };
    assert_eq!(under("/api/v1/ports"), 7);
    assert_eq!(under("/api/v1/laptops"), 7);
    // Every module lists, creates, reads, replaces, patches and deletes,
    // and has its feed of events.
    for module in app::modules::ALL {
        let list = module.path();
        let one = format!("{list}/{{id}}");
        for (path, method) in [
            (&list, "get"),
            (&list, "post"),
            (&one, "get"),
            (&one, "put"),
            (&one, "patch"),
            (&one, "delete"),
            (&format!("{list}/events"), "get"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
    }
}

#[test]
fn the_documented_id_list_pattern_is_the_one_the_server_parses() {
    let doc = serde_json::to_value(openapi(app::modules::ALL)).unwrap();
    let parameters = doc["paths"]["/api/v1/ports"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let id = parameters.iter().find(|p| p["name"] == "id").unwrap();
    assert_eq!(id["schema"]["pattern"], app_kernel::id::ID_LIST_PATTERN);
    let longest = vec!["999999999999999999"; 100].join(",");
    assert_eq!(
        app_kernel::id::parse_list("id", &longest, 100)
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn the_documented_cursor_pattern_is_the_one_the_server_checks() {
    let doc = serde_json::to_value(openapi(app::modules::ALL)).unwrap();
    for path in ["/api/v1/ports", "/api/v1/laptops"] {
        let parameters = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let cursor = parameters.iter().find(|p| p["name"] == "cursor").unwrap();
        assert_eq!(
            cursor["schema"]["pattern"],
            app_kernel::page::CURSOR_PATTERN,
            "{path}"
        );
    }
}
