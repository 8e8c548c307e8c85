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

/// A generated client types a list's items as the model a single read
/// returns, not as a look-alike of its own (`PageLaptopItemsItem`).
#[test]
fn list_items_refer_to_the_model_a_read_returns() {
    let doc = serde_json::to_value(openapi(app::modules::ALL)).unwrap();
    for module in app::modules::ALL {
        let list = module.path();
        let schema = |path: &str| {
            let reference = &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["$ref"];
            let name = reference.as_str().unwrap().rsplit('/').next().unwrap();
            doc["components"]["schemas"][name].clone()
        };
        let read = &doc["paths"][format!("{list}/{{id}}")]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        assert_eq!(
            schema(&list)["properties"]["items"]["items"],
            *read,
            "{list}"
        );
    }
}

/// `If-Match` on every write of one resource and `If-None-Match` on its
/// read, as header parameters a generated client takes as arguments.
#[test]
fn conditional_operations_declare_their_headers() {
    let doc = serde_json::to_value(openapi(app::modules::ALL)).unwrap();
    for module in app::modules::ALL {
        let one = format!("{}/{{id}}", module.path());
        for (method, header) in [
            ("get", "If-None-Match"),
            ("put", "If-Match"),
            ("patch", "If-Match"),
            ("delete", "If-Match"),
        ] {
            let parameters = doc["paths"][&one][method]["parameters"].as_array().unwrap();
            let declared = parameters
                .iter()
                .find(|p| p["name"] == header)
                .unwrap_or_else(|| panic!("{method} {one} declares {header}"));
            assert_eq!(declared["in"], "header");
            assert_eq!(declared["required"], false);
            assert_eq!(declared["schema"]["type"], "string");
            assert_eq!(
                declared["schema"]["pattern"],
                app_kernel::etag::CONDITION_PATTERN
            );
        }
    }
}

/// Each response header a client acts on is declared once, under
/// `components/headers`, and every response that sends it refers to it.
#[test]
fn response_headers_are_declared_once_and_referred_to() {
    let doc = serde_json::to_value(openapi(app::modules::ALL)).unwrap();
    let declared = doc["components"]["headers"].as_object().unwrap();
    let mut names: Vec<&str> = declared.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "ETag",
            "Location",
            "RateLimit",
            "RateLimit-Policy",
            "Retry-After",
            "WWW-Authenticate"
        ]
    );
    let mut responses = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                responses += 1;
                let headers = response["headers"].as_object().unwrap();
                for (name, header) in headers {
                    assert_eq!(
                        header["$ref"],
                        format!("#/components/headers/{name}"),
                        "{method} {path} {status} {name}"
                    );
                }
                let mut expected = vec!["RateLimit", "RateLimit-Policy"];
                expected.extend(match status.as_str() {
                    "201" => vec!["Location", "ETag"],
                    "304" => vec!["ETag"],
                    "200" if path.ends_with("{id}") => vec!["ETag"],
                    "401" | "403" => vec!["WWW-Authenticate"],
                    "429" | "503" => vec!["Retry-After"],
                    _ => vec![],
                });
                for name in expected {
                    assert!(
                        headers.contains_key(name),
                        "{method} {path} {status} declares {name}"
                    );
                }
            }
        }
    }
    assert!(responses > 100, "{responses} responses checked");
}
