//! An identity provider's JSON Web Key Set, fetched at start and cached: a
//! token whose `kid` is unknown fetches the set again, at most once per
//! [`REFETCH_INTERVAL`], so a provider's key rotation is picked up and a
//! flood of made-up ids costs nothing. The set is also fetched every
//! [`REFRESH_INTERVAL`], so a key the provider withdraws stops working even
//! if no new key comes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::jose::{Key, Rejected};

/// The least time between two fetches of the set.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How often the set is fetched anyway.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Jwks {
    url: reqwest::Url,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, Key>>,
    /// How many times the set was fetched: what a token was checked with.
    generation: AtomicU64,
    /// When an unknown `kid` last fetched the set; one fetch at a time.
    refetched: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    /// Fetches the set, and refreshes it until the last handle is dropped.
    pub async fn open(url: reqwest::Url) -> anyhow::Result<Arc<Self>> {
        let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
        let jwks = Self {
            url,
            client,
            keys: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            refetched: tokio::sync::Mutex::new(None),
        };
        if let Err(error) = jwks.fetch().await {
            tracing::warn!(url = %jwks.url, %error, "cannot fetch the JWKS yet: tokens are refused until it answers");
        }
        let jwks = Arc::new(jwks);
        let weak = Arc::downgrade(&jwks);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_INTERVAL).await;
                let Some(jwks) = weak.upgrade() else {
                    return;
                };
                if let Err(error) = jwks.fetch().await {
                    tracing::warn!(url = %jwks.url, %error, "cannot refresh the JWKS: keeping the keys it gave last");
                }
            }
        });
        Ok(jwks)
    }

    /// Which fetch of the set the keys are from.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The key for `kid`; without a `kid`, the set's only key.
    pub async fn key(&self, kid: Option<&str>) -> Result<Key, Rejected> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        {
            let mut refetched = self.refetched.lock().await;
            // Another request may have fetched while this one waited.
            if let Some(key) = self.cached(kid) {
                return Ok(key);
            }
            if refetched.is_none_or(|at| at.elapsed() >= REFETCH_INTERVAL) {
                *refetched = Some(Instant::now());
                if let Err(error) = self.fetch().await {
                    tracing::warn!(url = %self.url, %error, "cannot fetch the JWKS");
                }
            }
        }
        self.cached(kid).ok_or_else(|| {
            Rejected(match kid {
                Some(_) => {
                    "the token's key id (kid) is not in the identity provider's key set".to_owned()
                }
                None => "the token names no key id (kid)".to_owned(),
            })
        })
    }

    fn cached(&self, kid: Option<&str>) -> Option<Key> {
        let keys = self.keys.read().expect("jwks lock");
        match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }

    async fn fetch(&self) -> anyhow::Result<()> {
        let set: JwkSet = self
            .client
            .get(self.url.clone())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let keys: HashMap<String, Key> = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, verifying(jwk)?)))
            .collect();
        tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
        *self.keys.write().expect("jwks lock") = keys;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

/// A signing key of the set, for the one algorithm it names or, if it
/// names none, the one its kind is for ([`Key::for_one_algorithm`], which
/// also refuses an HMAC secret: anyone who reads the set could sign with
/// it); encryption keys, unknown kinds, and algorithms a key of its kind
/// or curve cannot verify are left out.
fn verifying(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let key = Key::for_one_algorithm(DecodingKey::from_jwk(jwk).ok()?).ok()?;
    let Some(named) = jwk.common.key_algorithm else {
        return Some(key);
    };
    let named = named.to_string().parse::<Algorithm>().ok()?;
    // An RSA key may name any RSA algorithm (PS256, RS512); an EC or
    // Ed25519 key only the one of its curve.
    let fits = match key.decoding.family() {
        AlgorithmFamily::Rsa => named.family() == AlgorithmFamily::Rsa,
        _ => key.algorithms == [named],
    };
    fits.then(|| Key {
        algorithms: vec![named],
        ..key
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    use super::*;

    /// The public JWK of a new key of `kind`, as `alg` names it, and with
    /// `alg` set to `named` (or removed).
    fn jwk(kind: &'static rcgen::SignatureAlgorithm, alg: Algorithm, named: Option<&str>) -> Jwk {
        let pair = rcgen::KeyPair::generate_for(kind).unwrap();
        let pem = pair.serialize_pem();
        let encoding = match alg.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .unwrap();
        let mut value =
            serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
        match named {
            Some(named) => value["alg"] = json!(named),
            None => drop(value.as_object_mut().unwrap().remove("alg")),
        }
        serde_json::from_value(value).unwrap()
    }

    /// RFC 8725 §3.1 for keys of a set: one algorithm each, the one named
    /// if the key can verify it, else the one of its kind.
    #[test]
    fn a_key_of_the_set_verifies_one_algorithm() {
        let algorithms = |jwk: &Jwk| verifying(jwk).map(|key| key.algorithms);
        let rsa = &rcgen::PKCS_RSA_SHA256;
        let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
        assert_eq!(
            algorithms(&jwk(rsa, Algorithm::RS256, None)),
            Some(vec![Algorithm::RS256])
        );
        assert_eq!(
            algorithms(&jwk(rsa, Algorithm::RS256, Some("PS256"))),
            Some(vec![Algorithm::PS256])
        );
        assert_eq!(algorithms(&jwk(rsa, Algorithm::RS256, Some("ES256"))), None);
        assert_eq!(
            algorithms(&jwk(p256, Algorithm::ES256, None)),
            Some(vec![Algorithm::ES256])
        );
        assert_eq!(
            algorithms(&jwk(p256, Algorithm::ES256, Some("ES384"))),
            None
        );
        let secret: Jwk = serde_json::from_value(json!({"kty": "oct", "k": "c2VjcmV0"})).unwrap();
        assert_eq!(algorithms(&secret), None, "an HMAC secret in a public set");
    }
}
