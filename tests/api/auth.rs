//! Keys and tokens for the tests: the key every test app trusts, signed
//! tokens with chosen claims, and a JWKS served over HTTP that a test can
//! rotate.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use app_kernel::module::Access;

/// A key pair that signs tokens, with its public half as a JWK and a PEM.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
    pub public_pem: String,
}

impl SigningKey {
    pub fn ed25519(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let encoding = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding,
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}),
            public_pem: pair.public_key_pem(),
        }
    }

    pub fn rsa(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let encoding = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap();
        let mut jwk = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap(),
        )
        .unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding,
            jwk,
            public_pem: pair.public_key_pem(),
        }
    }

    pub fn es256(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let mut jwk = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap(),
        )
        .unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding,
            jwk,
            public_pem: pair.public_key_pem(),
        }
    }

    /// `claims`, signed, with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(|_| {}, claims)
    }

    /// `claims`, signed, with this key's `kid` and the header as `change` leaves it.
    pub fn sign_with(&self, change: impl FnOnce(&mut Header), claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        change(&mut header);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Claims valid for an hour, for `scopes`.
pub fn claims(scopes: &[&str]) -> Value {
    json!({"sub": "tester", "scope": scopes.join(" "), "iat": now(), "nbf": now(), "exp": now() + 3600})
}

/// Every scope of every module.
pub fn every_scope() -> Vec<String> {
    app::modules::ALL
        .iter()
        .flat_map(|module| [Access::Read, Access::Write].map(|access| module.scope(access)))
        .collect()
}

/// The key every test app trusts (`--jwt-public-key`), its PEM on disk.
pub struct TestKey {
    pub key: SigningKey,
    pub public_key: PathBuf,
}

pub fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = SigningKey::ed25519("test");
        let dir = tempfile::tempdir().unwrap();
        let public_key = dir.path().join("public.pem");
        std::fs::write(&public_key, &key.public_pem).unwrap();
        crate::process::until_exit(dir);
        TestKey { key, public_key }
    })
}

pub fn public_key_path() -> &'static Path {
    &test_key().public_key
}

/// A token of the test key for `scopes`.
pub fn token(scopes: &[&str]) -> String {
    test_key().key.sign(&claims(scopes))
}

/// A token of the test key with every scope.
pub fn full_token() -> String {
    let scopes = every_scope();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    token(&scopes)
}

/// A client that sends `token` with every request, following no redirect.
pub fn client_with(token: &str) -> reqwest::Client {
    builder_with(token).build().unwrap()
}

/// What [`client_with`] builds, to add to.
pub fn builder_with(token: &str) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
}

/// A client with every scope of the test key.
pub fn client() -> reqwest::Client {
    client_with(&full_token())
}

/// What `app token --scope ...` prints for the key at `key_file`.
pub fn app_token(key_file: &std::path::Path, scopes: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_app"));
    command.arg("token").arg("--dev-key-file").arg(key_file);
    for scope in scopes {
        command.args(["--scope", scope]);
    }
    let output = command.output().expect("app token runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A JWKS at `url`, whose keys a test replaces; counts its fetches.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let keys = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/.well-known/jwks.json",
            listener.local_addr().unwrap().port()
        );
        let state = (keys.clone(), fetches.clone());
        let server = HttpServer::new(move || {
            let (keys, fetches) = state.clone();
            App::new().route(
                "/.well-known/jwks.json",
                web::get().to(move || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let body = json!({"keys": *keys.lock().unwrap()});
                    async move { HttpResponse::Ok().json(body) }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        JwksServer {
            url,
            keys,
            fetches,
            handle,
        }
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
