//! Bad input of every kind gets a clear 4xx, changes nothing, and the
//! process keeps serving.

use app_kernel::db::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

#[tokio::test]
async fn bad_input_is_refused_on_sqlite() {
    bad_input_gets_a_4xx_and_changes_nothing(&spawn_app(Backend::Sqlite, app::modules::ALL).await)
        .await;
}

#[tokio::test]
async fn bad_input_is_refused_on_postgres() {
    bad_input_gets_a_4xx_and_changes_nothing(
        &spawn_app(Backend::Postgres, app::modules::ALL).await,
    )
    .await;
}

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
}

fn case(
    what: &'static str,
    method: Method,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
    }
}

fn cases(port: i64) -> Vec<Case> {
    let one = format!("/api/v1/ports/{port}");
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!(
        r#"{{"name": {}"x"{}}}"#,
        r#"{"a":"#.repeat(200),
        "}".repeat(200)
    );
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(70 * 1024));
    let long = json!({"name": "é".repeat(10_000)}).to_string();
    let long_laptop = json!({"title": "t".repeat(10_000), "model": "m".repeat(10_000)}).to_string();
    let mut cases = vec![
        case(
            "malformed JSON",
            Method::POST,
            "/api/v1/ports",
            r#"{"name": "#,
            400,
        ),
        case(
            "trailing garbage",
            Method::POST,
            "/api/v1/ports",
            r#"{"name": "a"} x"#,
            400,
        ),
        case("empty body", Method::POST, "/api/v1/ports", "", 400),
        case(
            "invalid UTF-8",
            Method::POST,
            "/api/v1/ports",
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            400,
        ),
        case(
            "lone surrogate",
            Method::POST,
            "/api/v1/ports",
            r#"{"name": "\ud800"}"#,
            400,
        ),
        case(
            "deeply nested array",
            Method::POST,
            "/api/v1/ports",
            nested,
            400,
        ),
        case(
            "deeply nested object",
            Method::POST,
            "/api/v1/ports",
            deep_object,
            400,
        ),
        case(
            "number out of range",
            Method::POST,
            "/api/v1/ports",
            r#"{"name": 1e999}"#,
            400,
        ),
        case(
            "number for a string",
            Method::POST,
            "/api/v1/ports",
            r#"{"name": 18446744073709551616}"#,
            422,
        ),
        case("array body", Method::POST, "/api/v1/ports", "[]", 422),
        case("null body", Method::POST, "/api/v1/ports", "null", 422),
        case(
            "10,000 characters",
            Method::POST,
            "/api/v1/ports",
            long,
            422,
        ),
        case(
            "10,000 characters",
            Method::POST,
            "/api/v1/laptops",
            long_laptop,
            422,
        ),
        case(
            "unknown field",
            Method::POST,
            "/api/v1/ports",
            r#"{"name": "a", "id": 5}"#,
            422,
        ),
        case(
            "control character",
            Method::POST,
            "/api/v1/ports",
            r#"{"name": "a\u0000b"}"#,
            422,
        ),
        case(
            "over 64 KiB",
            Method::POST,
            "/api/v1/ports",
            huge.clone(),
            413,
        ),
        case("over 64 KiB", Method::PUT, &one, huge, 413),
        case(
            "unknown field",
            Method::PUT,
            &one,
            r#"{"name": "a", "created_at": "x"}"#,
            422,
        ),
        case(
            "merge patch to a non-object",
            Method::PATCH,
            &one,
            r#""name""#,
            422,
        ),
        case(
            "id out of range",
            Method::GET,
            "/api/v1/ports/9223372036854775808",
            "",
            400,
        ),
        case("id zero", Method::GET, "/api/v1/ports/0", "", 400),
        case("negative id", Method::DELETE, "/api/v1/ports/-1", "", 400),
        case(
            "id not an integer",
            Method::GET,
            "/api/v1/ports/1.5",
            "",
            400,
        ),
        case(
            "id not a number",
            Method::PUT,
            "/api/v1/laptops/abc",
            r#"{}"#,
            400,
        ),
        case("limit zero", Method::GET, "/api/v1/ports?limit=0", "", 400),
        case(
            "limit too large",
            Method::GET,
            "/api/v1/ports?limit=101",
            "",
            400,
        ),
        case(
            "limit not a number",
            Method::GET,
            "/api/v1/laptops?limit=ten",
            "",
            400,
        ),
        case(
            "limit out of range",
            Method::GET,
            "/api/v1/laptops?limit=99999999999999999999",
            "",
            400,
        ),
        case(
            "cursor not ours",
            Method::GET,
            "/api/v1/ports?cursor=bogus",
            "",
            400,
        ),
        case("no such route", Method::GET, "/api/v1/nothing", "", 404),
        case(
            "method not allowed",
            Method::PATCH,
            "/api/v1/ports",
            "{}",
            405,
        ),
        case(
            "method not allowed",
            Method::POST,
            "/health/live",
            "{}",
            405,
        ),
    ];
    for (method, path, content_type) in [
        (Method::PATCH, one.as_str(), "application/json-patch+json"),
        (
            Method::POST,
            "/api/v1/ports",
            "application/merge-patch+json",
        ),
        (Method::PUT, one.as_str(), "application/vnd.other+json"),
    ] {
        cases.push(Case {
            what: "a JSON media type the operation does not take",
            method,
            path: path.to_owned(),
            content_type: Some(content_type),
            body: br#"{"name": "a"}"#.to_vec(),
            status: 415,
        });
    }
    for (content_type, status) in [
        (Some("text/plain"), 415),
        (Some("application/xml"), 415),
        (None, 415),
        (Some("nonsense"), 415),
    ] {
        cases.push(Case {
            what: "wrong content type",
            method: Method::POST,
            path: "/api/v1/ports".into(),
            content_type,
            body: br#"{"name": "a"}"#.to_vec(),
            status,
        });
    }
    cases
}

async fn bad_input_gets_a_4xx_and_changes_nothing(app: &TestApp) {
    let port = app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let laptop = app
        .create("/api/v1/laptops", &json!({"title": "Dell", "model": "XPS"}))
        .await;
    let before = (
        app.list_all("/api/v1/ports").await,
        app.list_all("/api/v1/laptops").await,
    );

    for case in cases(port["id"].as_i64().unwrap()) {
        let mut request = app.request(case.method.clone(), &case.path).body(case.body);
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.what));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status, case.status,
            "{} {} {}: {body}",
            case.what, case.method, case.path
        );
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{}",
            case.what
        );
        assert_eq!(body["status"], case.status, "{}", case.what);
    }

    let path = format!("/api/v1/ports/{}", port["id"]);
    let malformed = app
        .request(Method::PUT, &path)
        .header("content-type", "application/json")
        .header("if-match", "3, garbage")
        .body(r#"{"name": "x"}"#);
    assert_problem(malformed.send().await.unwrap(), 400).await;
    // A malformed If-None-Match is refused too, not ignored, on every read
    // of one resource (with `expand` as well, which has no ETag to compare).
    let laptop = format!("/api/v1/laptops/{}", laptop["id"]);
    for (read, condition) in [
        (path.clone(), "3"),
        (path.clone(), ""),
        (laptop.clone(), "W/3"),
        (format!("{laptop}?expand=ports"), "n&"),
    ] {
        let response = app
            .request(Method::GET, &read)
            .header("if-none-match", condition)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("If-None-Match"),
            "{read} {condition}: {problem}"
        );
    }
    let allow = app
        .request(Method::DELETE, "/api/v1/laptops")
        .send()
        .await
        .unwrap();
    assert_eq!(allow.headers()["allow"], "GET, HEAD, POST");
    // Filters no stored value can equal find nothing (and PostgreSQL never sees a NUL).
    for filter in [
        "/api/v1/ports?name=a%00b",
        "/api/v1/laptops?title=%00",
        "/api/v1/ports?name=%20%20",
    ] {
        let page: Value = app.get_json(filter).await;
        assert_eq!(page, json!({"items": [], "next_cursor": null}), "{filter}");
    }

    let long_header = || {
        app.request(Method::GET, "/api/v1/ports")
            .header("x-large", "h".repeat(200 * 1024))
    };
    assert_eq!(status_of_refused(long_header).await, 431);
    let many_headers = || {
        (0..200).fold(app.request(Method::GET, "/api/v1/ports"), |request, n| {
            request.header(format!("x-header-{n}"), "a")
        })
    };
    assert_eq!(status_of_refused(many_headers).await, 431);
    // Over 16 KiB of headers in all, however they arrive: a problem.
    let large = app
        .request(Method::GET, "/api/v1/ports")
        .header("x-large", "h".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(large, 431).await;
    assert!(problem["detail"].as_str().unwrap().contains("16384"));
    let after = (
        app.list_all("/api/v1/ports").await,
        app.list_all("/api/v1/laptops").await,
    );
    assert_eq!(after, before, "bad input changed stored data");
    assert_eq!(app.get("/health/live").await.status(), 200);
}

/// The status of a request the server refuses before reading all of it.
/// actix-web then closes the connection with bytes unread and, unlike nginx,
/// does not linger to drain them, so the kernel may reset the connection
/// and the client lose the answer now and then: such a try is sent again.
async fn status_of_refused(request: impl Fn() -> reqwest::RequestBuilder) -> u16 {
    for _ in 0..4 {
        match request().send().await {
            Ok(response) => return response.status().as_u16(),
            Err(error) if error.is_request() => continue,
            Err(error) => panic!("{error}"),
        }
    }
    request().send().await.unwrap().status().as_u16()
}
