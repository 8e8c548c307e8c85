//! Bearer tokens: what a JWT must be to be believed, and the development key
//! that signs tokens on a laptop with no identity provider.

use std::collections::HashSet;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::jose::{self, Key, Rejected};
use super::jwks::Jwks;

/// The longest token read: anything longer is refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew forgiven on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;
/// The `kid` of tokens signed with the development key.
const DEV_KID: &str = "dev";

/// The caller a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`, when it has one.
    pub subject: Option<String>,
    pub scopes: HashSet<String>,
    /// The token's `exp`, seconds since the epoch.
    pub expires: u64,
}

impl Caller {
    pub fn may(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// What this process accepts tokens from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An identity provider's JSON Web Key Set.
    Jwks(reqwest::Url),
    /// One public key, PEM: RSA, EC (P-256, P-384) or Ed25519.
    PublicKey(PathBuf),
    /// The development key at this path, made on first start.
    Development(PathBuf),
}

/// Checks tokens: signature, algorithm, expiry, and issuer and audience
/// when configured.
///
/// A token once believed is remembered by its SHA-256 for
/// [`REMEMBERED_FOR`] (never past its `exp`), so a client sending the same
/// token again costs a hash and a lookup, not a signature check (about
/// 26 µs for EdDSA, see `bench/security`). A new JWKS forgets them all.
pub struct Verifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    /// Believed tokens, and the key set generation they were checked with.
    believed: moka::sync::Cache<[u8; 32], (u64, Caller)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// How long a believed token is remembered, at most.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(60);
/// How many believed tokens are remembered, at most.
const REMEMBERED_TOKENS: u64 = 10_000;

#[derive(Debug)]
enum Keys {
    /// One key and the algorithms of its family.
    Fixed(Key),
    Jwks(std::sync::Arc<Jwks>),
}

/// The claims this service reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    /// Required, so always there once validated; read as any JSON here so
    /// that one of the wrong type is refused by the validation that names it.
    #[serde(default)]
    exp: serde_json::Value,
    /// OAuth 2.0 (RFC 8693): space-separated.
    #[serde(default)]
    scope: Option<String>,
    /// Entra ID and Okta: `scp`, a string or a list.
    #[serde(default)]
    scp: Option<Scopes>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scopes {
    Spaced(String),
    List(Vec<String>),
}

impl Claims {
    fn into_caller(self) -> Caller {
        let mut scopes: HashSet<String> = self
            .scope
            .iter()
            .flat_map(|s| s.split_ascii_whitespace())
            .map(str::to_owned)
            .collect();
        match self.scp {
            Some(Scopes::Spaced(s)) => {
                scopes.extend(s.split_ascii_whitespace().map(str::to_owned));
            }
            Some(Scopes::List(list)) => scopes.extend(list),
            None => {}
        }
        Caller {
            subject: self.sub.filter(|s| !s.is_empty()),
            scopes,
            expires: self.exp.as_f64().map_or(0, |seconds| seconds as u64),
        }
    }
}

impl Verifier {
    /// Loads the keys of `source`: reads the public key, makes or reads the
    /// development key, or fetches the key set (a provider that is down
    /// now is asked again when the first token arrives).
    pub async fn open(
        source: &KeySource,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> anyhow::Result<Self> {
        let keys = match source {
            KeySource::PublicKey(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read --jwt-public-key {}", path.display()))?;
                Keys::Fixed(
                    Key::from_pem(&pem)
                        .with_context(|| format!("--jwt-public-key {}", path.display()))?,
                )
            }
            KeySource::Development(path) => Keys::Fixed(DevKey::open(path)?.verifying()?),
            KeySource::Jwks(url) => Keys::Jwks(Jwks::open(url.clone()).await?),
        };
        Ok(Self {
            keys,
            issuer,
            audience,
            believed: moka::sync::Cache::builder()
                .max_capacity(REMEMBERED_TOKENS)
                .time_to_live(REMEMBERED_FOR)
                .build(),
        })
    }

    /// The caller `token` names, if it is valid.
    pub async fn verify(&self, token: &str) -> Result<Caller, Rejected> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejected::new(format!(
                "the token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let digest: [u8; 32] =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
                .as_ref()
                .try_into()
                .expect("SHA-256 is 32 bytes");
        let generation = match &self.keys {
            Keys::Fixed(_) => 0,
            Keys::Jwks(jwks) => jwks.generation(),
        };
        if let Some((checked_with, caller)) = self.believed.get(&digest) {
            if checked_with == generation
                && jsonwebtoken::get_current_timestamp() <= caller.expires + LEEWAY_SECONDS
            {
                return Ok(caller);
            }
            self.believed.invalidate(&digest);
        }
        jose::check(token, self.issuer.as_deref())?;
        let header = jsonwebtoken::decode_header(token).map_err(describe)?;
        let key = match &self.keys {
            Keys::Fixed(key) => key.clone(),
            Keys::Jwks(jwks) => jwks.key(header.kid.as_deref()).await?,
        };
        // The generation the key came from: a refetch during the check
        // makes the token be checked again next time.
        let generation = match &self.keys {
            Keys::Fixed(_) => 0,
            Keys::Jwks(jwks) => jwks.generation(),
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = key.algorithms;
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        // Checked with no audience configured too: a token naming one is
        // then refused, as RFC 7519 §4.1.3 says.
        validation.validate_aud = true;
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let caller = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map(|data| data.claims.into_caller())
            .map_err(describe)?;
        self.believed.insert(digest, (generation, caller.clone()));
        Ok(caller)
    }
}

/// A client-facing reason, without echoing the token back.
fn describe(error: jsonwebtoken::errors::Error) -> Rejected {
    Rejected::new(match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "the token's issuer is not the one trusted here".to_owned(),
        ErrorKind::InvalidAudience => "the token is not meant for this service (aud)".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token names an algorithm its key is not for".to_owned()
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the token lacks a required claim ({claim})")
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("the token's {claim} is not a number of seconds (NumericDate)")
        }
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "the token is not well-formed (base64url JSON)".to_owned()
        }
        _ => "the token is not a well-formed signed JWT".to_owned(),
    })
}

/// The random key that signs development tokens: Ed25519, kept as PKCS#8
/// PEM in a file only its owner may read.
pub struct DevKey {
    pkcs8: Vec<u8>,
}

impl DevKey {
    /// Reads the key at `path`, or makes one there if there is none. Two
    /// processes starting at once end up with the same key.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(pem) => return Self::from_pem(&pem, path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a development key"))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Written whole under a temporary name, then linked into place: a
        // reader never sees half a key, and the first of two writers wins.
        let temporary = dir.join(format!(".dev-key-{}", uuid::Uuid::new_v4().simple()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| {
                let block = pem::Pem::new("PRIVATE KEY", pkcs8.as_ref());
                file.write_all(pem::encode(&block).as_bytes())?;
                file.sync_all()
            });
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => Self::from_pem(&std::fs::read(path)?, path),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::from_pem(&std::fs::read(path)?, path)
            }
            Err(error) => Err(error).with_context(|| format!("cannot write {}", path.display())),
        }
    }

    fn from_pem(text: &[u8], path: &Path) -> anyhow::Result<Self> {
        let pkcs8 = pem::parse(text)
            .ok()
            .filter(|block| block.tag() == "PRIVATE KEY")
            .map(|block| block.into_contents())
            .filter(|der| aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(der).is_ok())
            .with_context(|| {
                format!(
                    "{} is not an Ed25519 PKCS#8 key: remove it to make a new one",
                    path.display()
                )
            })?;
        Ok(Self { pkcs8 })
    }

    fn signing(&self) -> EncodingKey {
        EncodingKey::from_ed_der(&self.pkcs8)
    }

    fn verifying(&self) -> anyhow::Result<Key> {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&self.pkcs8)
            .map_err(|_| anyhow::anyhow!("the development key does not parse"))?;
        Ok(Key {
            decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()),
            algorithms: vec![Algorithm::EdDSA],
        })
    }

    /// The Ed25519 signature of `message`, for tests that write tokens by hand.
    #[cfg(test)]
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&self.pkcs8)
            .unwrap()
            .sign(message)
            .as_ref()
            .to_vec()
    }

    /// The public key, raw.
    #[cfg(test)]
    pub fn public(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&self.pkcs8)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec()
    }

    /// A token for `scopes`, valid from now for `ttl`.
    pub fn token(&self, subject: &str, scopes: &[String], ttl: Duration) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Minted<'a> {
            sub: &'a str,
            scope: String,
            iat: u64,
            nbf: u64,
            exp: u64,
        }
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Minted {
            sub: subject,
            scope: scopes.join(" "),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs().max(1),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(DEV_KID.to_owned());
        Ok(jsonwebtoken::encode(&header, &claims, &self.signing())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_development_token_is_believed_and_carries_its_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let key = DevKey::open(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let token = key
            .token("me", &["ports:write".into()], Duration::from_secs(60))
            .unwrap();
        let verifier = Verifier::open(&KeySource::Development(path.clone()), None, None)
            .await
            .unwrap();
        let caller = verifier.verify(&token).await.unwrap();
        assert_eq!(caller.subject.as_deref(), Some("me"));
        assert!(caller.may("ports:write") && !caller.may("laptops:write"));
        // The same file gives the same key.
        let again = DevKey::open(&path).unwrap();
        assert_eq!(again.pkcs8, key.pkcs8);
    }

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// RFC 8725 §3.1: each key is used with exactly one algorithm, checked
    /// when the token is: an RSA key verifies RS256 and nothing else, an
    /// EC key the algorithm of its curve.
    #[tokio::test]
    async fn a_key_verifies_one_algorithm_only() {
        let dir = tempfile::tempdir().unwrap();
        let claims = serde_json::json!({"exp": jsonwebtoken::get_current_timestamp() + 600});
        for (kind, believed, refused) in [
            (
                &rcgen::PKCS_RSA_SHA256,
                Algorithm::RS256,
                vec![Algorithm::RS384, Algorithm::RS512, Algorithm::PS256],
            ),
            (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                Algorithm::ES256,
                vec![Algorithm::ES384],
            ),
            (
                &rcgen::PKCS_ECDSA_P384_SHA384,
                Algorithm::ES384,
                vec![Algorithm::ES256],
            ),
        ] {
            let pair = rcgen::KeyPair::generate_for(kind).unwrap();
            let path = dir.path().join("public.pem");
            std::fs::write(&path, pair.public_key_pem()).unwrap();
            let verifier = Verifier::open(&KeySource::PublicKey(path), None, None)
                .await
                .unwrap();
            let private = pair.serialize_pem();
            let signing = match believed {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(private.as_bytes()),
                _ => EncodingKey::from_ec_pem(private.as_bytes()),
            }
            .unwrap();
            let token = jsonwebtoken::encode(&Header::new(believed), &claims, &signing).unwrap();
            assert!(verifier.verify(&token).await.is_ok(), "{believed:?}");
            let (_, rest) = token.split_once('.').unwrap();
            for alg in refused {
                // The signature is refused unread: the key is for `believed` only.
                let header = serde_json::to_vec(&Header::new(alg)).unwrap();
                let named = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
                let answer = verifier.verify(&named).await;
                assert_eq!(
                    answer.unwrap_err().0,
                    "the token names an algorithm its key is not for",
                    "{alg:?} with a key for {believed:?}"
                );
            }
        }
    }
}
