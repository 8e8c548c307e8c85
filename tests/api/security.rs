//! Who may call what: bearer tokens, scopes, keys from a JWKS, the
//! development key, request limits and headers, CORS and TLS.

use std::process::{Command, Stdio};
use std::time::Duration;

use app::security::{KeySource, Security};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::{self, JwksServer, SigningKey, claims, now, test_key};
use crate::helpers::{TestApp, assert_problem, json_at, security, spawn_secured, spawn_split};
use crate::process::{Process, free_port};

const ISSUER: &str = "https://id.example.com/realms/app";
const AUDIENCE: &str = "app";

/// The test key, with an issuer and an audience to check.
fn strict() -> Security {
    Security {
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..security()
    }
}

fn good_claims(scopes: &[&str]) -> Value {
    let mut claims = claims(scopes);
    claims["iss"] = json!(ISSUER);
    claims["aud"] = json!(AUDIENCE);
    claims
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// POSTs a port with `authorization` (a whole header value), if any.
async fn create_port(app: &TestApp, authorization: Option<&str>, query: &str) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/v1/ports{query}", app.address))
        .json(&json!({"name": format!("USB-C {}", uuid::Uuid::new_v4())}));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

/// The `WWW-Authenticate` of a response.
fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_bad_token_is_a_401_and_changes_nothing() {
    let app = spawn_secured(strict(), &[]).await;
    let key = &test_key().key;
    let write = ["ports:write"];
    let signed = |change: &dyn Fn(&mut Value)| {
        let mut claims = good_claims(&write);
        change(&mut claims);
        key.sign(&claims)
    };
    let good = signed(&|_| {});
    let header = |alg: &str| {
        b64(json!({"alg": alg, "typ": "JWT", "kid": "test"})
            .to_string()
            .as_bytes())
    };
    let payload = b64(good_claims(&write).to_string().as_bytes());
    let hs256_with_public_key = {
        let secret = jsonwebtoken::EncodingKey::from_secret(key.public_pem.as_bytes());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("test".into());
        jsonwebtoken::encode(&header, &good_claims(&write), &secret).unwrap()
    };
    let other_key = SigningKey::ed25519("test").sign(&good_claims(&write));
    let padded = signed(&|claims| claims["padding"] = json!("x".repeat(9 * 1024)));
    let bearer = |token: &str| format!("Bearer {token}");
    let in_query = format!("?access_token={good}");
    let cases: Vec<(&str, Option<String>, &str, &str)> = vec![
        (
            "expired",
            Some(bearer(&signed(&|c| c["exp"] = json!(now() - 3600)))),
            "",
            "invalid_token",
        ),
        (
            "not yet valid",
            Some(bearer(&signed(&|c| c["nbf"] = json!(now() + 3600)))),
            "",
            "invalid_token",
        ),
        (
            "wrong issuer",
            Some(bearer(&signed(&|c| {
                c["iss"] = json!("https://evil.example.com")
            }))),
            "",
            "invalid_token",
        ),
        (
            "wrong audience",
            Some(bearer(&signed(&|c| c["aud"] = json!("another-service")))),
            "",
            "invalid_token",
        ),
        (
            "no audience",
            Some(bearer(&signed(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }))),
            "",
            "invalid_token",
        ),
        (
            "no expiry",
            Some(bearer(&signed(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }))),
            "",
            "invalid_token",
        ),
        (
            "wrong signature",
            Some(bearer(&other_key)),
            "",
            "invalid_token",
        ),
        (
            "alg none",
            Some(bearer(&format!("{}.{payload}.", header("none")))),
            "",
            "invalid_token",
        ),
        (
            "HS256 with the public key",
            Some(bearer(&hs256_with_public_key)),
            "",
            "invalid_token",
        ),
        (
            "malformed base64",
            Some(bearer(&format!("{}.{payload}!!.c2ln", header("EdDSA")))),
            "",
            "invalid_token",
        ),
        ("three dots", Some(bearer("a.b.c.d")), "", "invalid_token"),
        ("9 KiB", Some(bearer(&padded)), "", "invalid_token"),
        ("in the query string", None, &in_query, "invalid_request"),
        ("Bearer missing", Some(good.clone()), "", "invalid_request"),
        (
            "Bearer misspelled",
            Some(format!("Baerer {good}")),
            "",
            "invalid_request",
        ),
    ];
    for (case, authorization, query, error) in &cases {
        let response = create_port(&app, authorization.as_deref(), query).await;
        assert_eq!(response.status(), 401, "{case}");
        let challenge = challenge(&response);
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(&format!("error=\"{error}\"")),
            "{case}: {challenge}"
        );
        assert_problem(response, 401).await;
    }
    // No token at all: a challenge without an error code (RFC 6750 §3.1).
    let response = create_port(&app, None, "").await;
    assert_eq!(challenge(&response), "Bearer");
    assert_problem(response, 401).await;
    // Read without a token: the app's own client sends one without `aud`.
    let stored: Value = reqwest::get(format!("{}/api/v1/ports", app.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["items"], json!([]), "nothing was written");
    // The same claims, properly signed, are good; a lower-case scheme too.
    let response = create_port(&app, Some(&format!("bearer {good}")), "").await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_good_token_without_the_scope_is_a_403_naming_it() {
    let app = spawn_secured(security(), &[]).await;
    let response = create_port(
        &app,
        Some(&format!(
            "Bearer {}",
            auth::token(&["laptops:write", "ports:read"])
        )),
        "",
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        challenge(&response),
        "Bearer error=\"insufficient_scope\", scope=\"ports:write\""
    );
    let problem = assert_problem(response, 403).await;
    assert!(problem["detail"].as_str().unwrap().contains("ports:write"));
    assert!(app.list_all("/api/v1/ports").await.is_empty());
}

/// Every write operation of the document, with a concrete id: 401 without
/// a token, 403 with one lacking its scope, and nothing written.
async fn assert_every_write_is_guarded(app: &TestApp) {
    let doc = serde_json::to_value(app::http::docs::openapi(app::modules::ALL)).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let module = app::modules::of_path(path).expect("an API path");
        let concrete = path.replace("{id}", "1");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            if method == Method::GET {
                continue;
            }
            let scope = format!("{}:write", module.name);
            let send = |token: Option<String>| {
                let mut request = reqwest::Client::new()
                    .request(method.clone(), format!("{}{concrete}", app.address))
                    .header("content-type", "application/json")
                    .body(r#"{"name": "x", "title": "x", "model": "x"}"#);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                request.send()
            };
            let anonymous = send(None).await.unwrap();
            assert_eq!(anonymous.status(), 401, "{method} {path} without a token");
            let others: Vec<String> = auth::every_scope()
                .into_iter()
                .filter(|s| *s != scope)
                .collect();
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            let unscoped = send(Some(auth::token(&others))).await.unwrap();
            assert_eq!(unscoped.status(), 403, "{method} {path} without {scope}");
            assert!(challenge(&unscoped).contains(&format!("scope=\"{scope}\"")));
            checked += 1;
        }
    }
    assert!(
        checked >= 2 * app::modules::ALL.len(),
        "{checked} writes checked"
    );
    assert!(app.list_all("/api/v1/ports").await.is_empty());
    assert!(app.list_all("/api/v1/laptops").await.is_empty());
}

#[tokio::test]
async fn every_write_needs_its_scope_in_one_process() {
    assert_every_write_is_guarded(&spawn_secured(security(), &[]).await).await;
}

#[tokio::test]
async fn split_every_write_needs_its_scope_behind_nginx() {
    assert_every_write_is_guarded(&spawn_split().await).await;
}

#[tokio::test]
async fn reads_need_the_read_scope_with_auth_reads_and_are_open_without() {
    let open = spawn_secured(security(), &[]).await;
    let anonymous = reqwest::get(format!("{}/api/v1/laptops", open.address))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 200);
    assert!(anonymous.headers().get("www-authenticate").is_none());

    let app = spawn_secured(
        Security {
            auth_reads: true,
            ..security()
        },
        &[],
    )
    .await;
    let url = format!("{}/api/v1/laptops", app.address);
    let anonymous = reqwest::get(&url).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let client = reqwest::Client::new();
    let wrong = client
        .get(&url)
        .bearer_auth(auth::token(&["ports:read", "laptops:write"]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(challenge(&wrong).contains("scope=\"laptops:read\""));
    let right = client
        .get(&url)
        .bearer_auth(auth::token(&["laptops:read"]))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    // Health and docs never need a token.
    for path in [
        "/health/live",
        "/health/ready",
        "/api-docs/openapi.json",
        "/swagger-ui/",
    ] {
        let response = reqwest::get(format!("{}{path}", app.address))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn keys_come_from_a_jwks_and_a_rotated_key_is_fetched_once() {
    let rsa = SigningKey::rsa("rsa-1");
    let ed = SigningKey::ed25519("ed-1");
    let ec = SigningKey::es256("ec-1");
    let jwks = JwksServer::start(&[&rsa, &ed, &ec]).await;
    let app = spawn_secured(
        Security {
            keys: KeySource::Jwks(jwks.url.parse().unwrap()),
            ..security()
        },
        &[],
    )
    .await;
    assert_eq!(jwks.fetches(), 1, "fetched at start");
    let write = claims(&["ports:write"]);
    for key in [&rsa, &ed, &ec] {
        let response = create_port(&app, Some(&format!("Bearer {}", key.sign(&write))), "").await;
        assert_eq!(response.status(), 201, "{:?}", key.alg);
    }
    assert_eq!(jwks.fetches(), 1, "known keys are cached");

    // The provider rotates: a new key, the old RSA one withdrawn.
    let rotated = SigningKey::ed25519("ed-2");
    jwks.publish(&[&ed, &rotated]);
    let response = create_port(&app, Some(&format!("Bearer {}", rotated.sign(&write))), "").await;
    assert_eq!(
        response.status(),
        201,
        "the new kid is accepted after a refetch"
    );
    assert_eq!(jwks.fetches(), 2);
    // Made-up ids fetch no more within 30 s.
    for kid in ["nope-1", "nope-2", "nope-3"] {
        let stranger = SigningKey::ed25519(kid);
        let response =
            create_port(&app, Some(&format!("Bearer {}", stranger.sign(&write))), "").await;
        assert_eq!(response.status(), 401, "{kid}");
    }
    assert_eq!(jwks.fetches(), 2, "at most one refetch per 30 s");
    let response = create_port(&app, Some(&format!("Bearer {}", rsa.sign(&write))), "").await;
    assert_eq!(
        response.status(),
        401,
        "a key the provider withdrew is refused once the set is fetched again"
    );
    let anonymous = reqwest::Client::new();
    let stored = json_at(&anonymous, format!("{}/api/v1/ports", app.address)).await;
    assert_eq!(stored["items"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn development_keys_sign_app_token_and_are_refused_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("sqlite:{}", dir.path().display());
    // On an address other hosts reach, development keys need --dev-keys.
    let refused = Command::new(env!("CARGO_BIN_EXE_app"))
        .args([
            "serve",
            "--all",
            "--bind",
            "0.0.0.0:0",
            "--database-url",
            &data,
        ])
        .env_remove("APP_JWT_PUBLIC_KEY")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--dev-keys") && stderr.contains("--jwt-jwks-url"),
        "{stderr}"
    );

    let port = free_port();
    let mut server = Process::serve(
        port,
        &[
            "--all",
            "--database-url",
            &data,
            "--dev-key-file",
            &format!("{}/dev-signing-key.pem", dir.path().display()),
        ],
        "info",
        Stdio::piped(),
    )
    .await;
    let mut stderr = server.child.stderr.take().unwrap();
    let key_file = dir.path().join("dev-signing-key.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "only its owner reads the key");
    let token = crate::auth::app_token(&key_file, &["ports:write"]);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/ports", server.address))
        .bearer_auth(&token)
        .json(&json!({"name": "USB-C"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    server.terminate();
    assert!(server.wait().success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    assert!(
        log.contains("development keys are in use") && log.contains("app token"),
        "{log}"
    );
    let secret = std::fs::read_to_string(&key_file).unwrap();
    let body = secret.lines().nth(1).unwrap();
    assert!(!log.contains(body), "the key is never logged");
    assert!(!log.contains(&token), "tokens are never logged");
}

#[tokio::test]
async fn responses_say_nosniff_and_no_store_and_long_urls_get_414() {
    let app = spawn_secured(security(), &[]).await;
    let list = app.get("/api/v1/ports").await;
    assert_eq!(list.headers()["x-content-type-options"], "nosniff");
    assert_eq!(list.headers()["cache-control"], "no-store");
    let port = app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let one = app.get(&format!("/api/v1/ports/{}", port["id"])).await;
    assert!(one.headers().contains_key("etag"));
    assert!(
        one.headers().get("cache-control").is_none(),
        "an ETag lets a cache revalidate"
    );
    let docs = app.get("/api-docs/openapi.json").await;
    assert_eq!(docs.headers()["x-content-type-options"], "nosniff");
    let long = app
        .get(&format!("/api/v1/ports?cursor={}", "a".repeat(9000)))
        .await;
    assert_problem(long, 414).await;
}

#[tokio::test]
async fn cors_is_off_unless_an_origin_is_given() {
    let origin = "https://app.example.com";
    let preflight = |address: String| async move {
        reqwest::Client::new()
            .request(Method::OPTIONS, format!("{address}/api/v1/ports"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap()
    };
    let closed = spawn_secured(security(), &[]).await;
    let response = preflight(closed.address.clone()).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let open = spawn_secured(security(), &[origin]).await;
    let response = preflight(open.address.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], origin);
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    // Another origin is not let in.
    let other = reqwest::Client::new()
        .get(format!("{}/api/v1/ports", open.address))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn tls_serves_https_and_refuses_tls_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let data = format!("sqlite:{}", dir.path().display());
    let _server = Process::spawn(
        port,
        &[
            "--all",
            "--database-url",
            &data,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        "warn",
        Stdio::inherit(),
    );
    let url = format!("https://localhost:{port}/health/ready");
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sSv", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cert)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl runs (see .ci/run)")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let answered = loop {
        let output = curl(&[]);
        if output.status.success() {
            break output;
        }
        assert!(std::time::Instant::now() < deadline, "{output:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let said = |output: &std::process::Output| {
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, handshake) = said(&answered);
    assert_eq!(status, "200", "{handshake}");
    assert!(handshake.contains("using TLSv1.3"), "{handshake}");
    let (status, handshake) = said(&curl(&["--tlsv1.2", "--tls-max", "1.2"]));
    assert_eq!(status, "200", "{handshake}");
    assert!(handshake.contains("using TLSv1.2"), "{handshake}");
    // A client that offers at most TLS 1.1 gets no session.
    let old = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let said =
        String::from_utf8_lossy(&old.stdout).to_string() + &String::from_utf8_lossy(&old.stderr);
    assert!(!old.status.success(), "{said}");
    assert!(
        said.contains("alert")
            || said.contains("no protocols available")
            || said.contains("Cipher is (NONE)"),
        "{said}"
    );
    // Plain HTTP on the TLS port gets nothing it could mistake for an answer.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/health/ready")).await;
    assert!(plain.map(|r| r.status() != StatusCode::OK).unwrap_or(true));
}

#[tokio::test]
async fn the_gateway_serves_https_with_the_checked_in_tls_block() {
    // No module behind it: nginx's own 503, over TLS.
    let nginx = crate::gateway::Nginx::start(&[]).await;
    let output = Command::new("curl")
        .args(["-sSv", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&nginx.tls_cert)
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", nginx.tls_port),
        ])
        .arg(format!("{}/api/v1/ports", nginx.tls_address))
        .output()
        .expect("curl runs (see .ci/run)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "503", "{stderr}");
    assert!(stderr.contains("using TLSv1.3"), "{stderr}");
}

/// Keys of an identity provider with no issuer or audience given: start-up
/// warns of each, and a token the JOSE rules refuse (here one that names a
/// critical header parameter, RFC 7515 §4.1.11) is a 401 saying why.
#[tokio::test]
async fn start_up_warns_of_unchecked_audience_and_issuer_and_a_token_with_crit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("sqlite:{}", dir.path().display());
    let mut server = Process::serve(
        free_port(),
        &["--all", "--database-url", &data],
        "warn",
        Stdio::piped(),
    )
    .await;
    let mut stderr = server.child.stderr.take().unwrap();
    let key = &test_key().key;
    let good = key.sign(&claims(&["ports:write"]));
    let with_crit = key.sign_with(
        |header| header.crit = Some(vec!["exp".into()]),
        &claims(&["ports:write"]),
    );
    let client = reqwest::Client::new();
    let port = |token: &str| {
        client
            .post(format!("{}/api/v1/ports", server.address))
            .bearer_auth(token)
            .json(&json!({"name": "USB-C"}))
            .send()
    };
    assert_eq!(port(&good).await.unwrap().status(), 201);
    let refused = port(&with_crit).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        challenge(&refused).contains("critical header parameters (crit)"),
        "{}",
        challenge(&refused)
    );
    server.terminate();
    assert!(server.wait().success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    assert!(log.contains("no --jwt-audience"), "{log}");
    assert!(log.contains("no --jwt-issuer"), "{log}");
}
