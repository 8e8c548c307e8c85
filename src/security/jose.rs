//! The rules of RFC 7515 (JWS), RFC 7519 (JWT) and RFC 8725 (JWT best
//! practices) that a resource server must hold and jsonwebtoken leaves to
//! its caller: it parses `crit`, `enc`, `cty`, `jku`, `jwk`, `x5u` and
//! `x5c` into its header and checks none of them, and reads a header or
//! claims set as serde would, duplicate names and arrays included.
//!
//! [`check`] runs before jsonwebtoken verifies the signature, the
//! algorithm, `exp`, `nbf`, `iss` and `aud`. A header parameter this
//! server does not implement never makes a token more acceptable: the ones
//! that would change how it is verified are refused, and the rest (`kid`
//! picks a key of the set; `x5t`, `x5t#S256`, `url`, `nonce` and unknown
//! names, which RFC 7515 §4 says to ignore when not understood) select
//! nothing and supply no key.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// The `typ` values of an access token (RFC 7519 §5.1, RFC 9068 §2.1), in
/// either case and with or without `application/`: any other type is a JWT
/// of another kind (an ID token's `JWT` aside: a logout token, a DPoP
/// proof, a security event), which must not pass for an access token
/// (RFC 8725 §3.12).
const ACCESS_TOKEN_TYPES: [&str; 2] = ["jwt", "at+jwt"];

/// Header parameters that would bring a key, a URL to fetch one from, or
/// a certificate chain with the token itself (RFC 7515 §4.1.2, 4.1.3,
/// 4.1.5, 4.1.6). Keys come from this service's configuration only
/// (RFC 8725 §3.10), so a token naming one is refused, not half-believed.
const KEY_CARRIERS: [&str; 4] = ["jku", "jwk", "x5u", "x5c"];

/// Checks what jsonwebtoken does not: the token is a JWS in compact form
/// whose header and claims set are JSON objects with unique names, and
/// whose header asks for nothing this server does not do. `issuer` is the
/// `iss` trusted here, if one is configured.
pub fn check(token: &str, issuer: Option<&str>) -> Result<(), Rejected> {
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        // RFC 7519 §7.2 step 6: five parts are a JWE.
        5 => {
            return Err(rejected(
                "the token is encrypted (JWE): only signed tokens are accepted",
            ));
        }
        _ => {
            return Err(rejected(
                "the token is not a JWS in compact form (three parts)",
            ));
        }
    }
    let header = object(parts[0], "header")?;
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: extensions the recipient does not implement
        // make the token invalid; this server implements none.
        return Err(rejected(
            "the token names critical header parameters (crit), which this service does not implement",
        ));
    }
    if header.contains_key("enc") || header.contains_key("zip") {
        return Err(rejected(
            "the token is encrypted (JWE): only signed tokens are accepted",
        ));
    }
    if header.contains_key("cty") {
        // RFC 7519 §7.2 step 8 and §5.2: a content type means a nested JWT
        // or a payload that is not a claims set.
        return Err(rejected(
            "the token names a content type (cty): nested tokens are not accepted",
        ));
    }
    if let Some(name) = KEY_CARRIERS.iter().find(|name| header.contains_key(**name)) {
        return Err(rejected(format!(
            "the token carries its own key or where to find one ({name}): keys come only from this service's configuration"
        )));
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if is_access_token_type(typ) => {}
        Some(_) => {
            return Err(rejected(
                "the token's type (typ) is not that of an access token (JWT or at+jwt)",
            ));
        }
    }
    if header.get("alg").and_then(Value::as_str) == Some("none") {
        return Err(rejected("the token is not signed (alg none)"));
    }
    let claims = object(parts[1], "claims set")?;
    match (claims.get("iss"), issuer) {
        (None, _) => {}
        (Some(Value::String(_)), Some(_)) => {}
        (Some(Value::String(_)), None) => {
            // RFC 8725 §3.8: the keys must be the issuer's, and without
            // --jwt-issuer nothing says whose they are.
            return Err(rejected(
                "the token names an issuer (iss), and this service is not configured to trust one",
            ));
        }
        (Some(_), _) => return Err(rejected("the token's issuer (iss) is not a string")),
    }
    Ok(())
}

fn is_access_token_type(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    let typ = typ.strip_prefix("application/").unwrap_or(&typ);
    ACCESS_TOKEN_TYPES.contains(&typ)
}

fn rejected(why: impl Into<String>) -> Rejected {
    Rejected(why.into())
}

/// A base64url part (no padding, no whitespace: RFC 7515 §2) that holds a
/// UTF-8 JSON object whose member names are unique (RFC 7515 §4, RFC 7519
/// §4 and §7.2 steps 4 and 10, RFC 8725 §3.7).
fn object(part: &str, what: &str) -> Result<BTreeMap<String, Value>, Rejected> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        rejected(format!(
            "the token's {what} is not base64url without padding"
        ))
    })?;
    serde_json::from_slice::<Unique>(&bytes)
        .map(|unique| unique.0)
        .map_err(|_| {
            rejected(format!(
                "the token's {what} is not one JSON object in UTF-8 with unique member names"
            ))
        })
}

/// A JSON object that refuses a member name given twice, which serde_json
/// would take the last of and a struct would take or refuse by field.
struct Unique(BTreeMap<String, Value>);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Unique;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
                let mut members = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    if members.contains_key(&name) {
                        let _: IgnoredAny = map.next_value()?;
                        return Err(serde::de::Error::custom(format!("{name} is given twice")));
                    }
                    let value = map.next_value()?;
                    members.insert(name, value);
                }
                Ok(Unique(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// Why a token was not believed, as `error_description` says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

impl Rejected {
    pub(super) fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// A verification key and the only algorithms a token signed with it may name.
#[derive(Clone)]
pub struct Key {
    pub decoding: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// A key for the one algorithm its kind is for (RFC 8725 §3.1: each
    /// key is used with exactly one algorithm): RS256 for RSA, ES256 or
    /// ES384 by the curve of an EC key, EdDSA for Ed25519. An RSA key for
    /// another algorithm comes in a JWKS whose entry names it (`alg`).
    pub fn for_one_algorithm(decoding: DecodingKey) -> anyhow::Result<Self> {
        let algorithm = match decoding.family() {
            AlgorithmFamily::Rsa => Algorithm::RS256,
            AlgorithmFamily::Ec => match decoding.try_get_as_bytes().map(<[u8]>::len) {
                // An uncompressed or compressed point on P-256, or on P-384.
                Ok(65 | 33) => Algorithm::ES256,
                Ok(97 | 49) => Algorithm::ES384,
                _ => anyhow::bail!("an EC key on a curve other than P-256 or P-384"),
            },
            AlgorithmFamily::Ed => Algorithm::EdDSA,
            AlgorithmFamily::Hmac => anyhow::bail!("a shared secret, not a public key"),
        };
        Ok(Self {
            decoding,
            algorithms: vec![algorithm],
        })
    }

    /// A PEM public key, whichever kind it is.
    pub(super) fn from_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let decoding = DecodingKey::from_rsa_pem(pem)
            .or_else(|_| DecodingKey::from_ec_pem(pem))
            .or_else(|_| DecodingKey::from_ed_pem(pem))
            .map_err(|_| {
                anyhow::anyhow!("not a PEM public key (RSA, EC P-256/P-384 or Ed25519)")
            })?;
        Self::for_one_algorithm(decoding)
    }
}

#[cfg(test)]
mod tests {
    //! One test per rule. Each signs its token with a key the verifier
    //! trusts, so the rule under test is the only reason to refuse it.

    use serde_json::json;

    use super::*;
    use crate::security::token::{DevKey, KeySource, Verifier};

    const ISSUER: &str = "https://id.example.com";
    const AUDIENCE: &str = "app";

    struct Signer {
        _dir: tempfile::TempDir,
        key: DevKey,
        path: std::path::PathBuf,
    }

    impl Signer {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("key.pem");
            let key = DevKey::open(&path).unwrap();
            Self {
                _dir: dir,
                key,
                path,
            }
        }

        /// A verifier of this key's tokens, trusting `issuer` and `audience`.
        async fn verifier(&self, issuer: Option<&str>, audience: Option<&str>) -> Verifier {
            Verifier::open(
                &KeySource::Development(self.path.clone()),
                issuer.map(str::to_owned),
                audience.map(str::to_owned),
            )
            .await
            .unwrap()
        }

        /// The header and claims, written as given, signed with EdDSA.
        fn sign_raw(&self, header: &str, claims: &str) -> String {
            let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
            format!("{input}.{}", b64(&self.key.sign(input.as_bytes())))
        }

        fn sign(&self, header: Value, claims: Value) -> String {
            self.sign_raw(&header.to_string(), &claims.to_string())
        }
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn header() -> Value {
        json!({"alg": "EdDSA", "typ": "JWT", "kid": "dev"})
    }

    fn claims() -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({"sub": "me", "scope": "ports:write", "exp": now + 600, "nbf": now - 1})
    }

    fn with(mut value: Value, name: &str, member: Value) -> Value {
        value[name] = member;
        value
    }

    /// `verify`'s answer, as the 401's `error_description` would say it.
    async fn answer(verifier: &Verifier, token: &str) -> Result<(), String> {
        verifier.verify(token).await.map(|_| ()).map_err(|e| e.0)
    }

    async fn refused(verifier: &Verifier, token: &str, because: &str) {
        let answer = answer(verifier, token).await;
        assert!(
            answer.as_ref().is_err_and(|why| why.contains(because)),
            "expected a refusal naming {because:?}, got {answer:?}"
        );
    }

    #[tokio::test]
    async fn the_well_formed_token_of_these_tests_is_believed() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        assert_eq!(
            answer(&verifier, &signer.sign(header(), claims())).await,
            Ok(())
        );
        let at_jwt = with(header(), "typ", json!("application/AT+JWT"));
        assert_eq!(
            answer(&verifier, &signer.sign(at_jwt, claims())).await,
            Ok(())
        );
        // RFC 7515 §4: parameters not defined there are ignored when not understood.
        let private = with(header(), "x-trace", json!("anything"));
        assert_eq!(
            answer(&verifier, &signer.sign(private, claims())).await,
            Ok(())
        );
    }

    /// RFC 7515 §4.1.11: a `crit` naming an extension not understood makes
    /// the JWS invalid; an empty list is forbidden to producers.
    #[tokio::test]
    async fn crit_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
            let mut header = with(header(), "crit", crit);
            header["b64"] = json!(true);
            header["exp"] = json!(0);
            refused(&verifier, &signer.sign(header, claims()), "crit").await;
        }
    }

    /// RFC 7519 §7.2 step 6, RFC 8725 §3.3: a JWE (an `enc` header or five
    /// parts) is not a JWS, and this server verifies only signatures.
    #[tokio::test]
    async fn encrypted_tokens_are_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        let enc = with(header(), "enc", json!("A256GCM"));
        refused(&verifier, &signer.sign(enc, claims()), "JWE").await;
        let zip = with(header(), "zip", json!("DEF"));
        refused(&verifier, &signer.sign(zip, claims()), "JWE").await;
        let good = signer.sign(header(), claims());
        refused(&verifier, &format!("{good}.e30.e30"), "JWE").await;
    }

    /// RFC 7519 §7.2 steps 1-2, RFC 7515 §7.1: three parts, no more.
    #[tokio::test]
    async fn a_token_of_other_than_three_parts_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        let good = signer.sign(header(), claims());
        refused(&verifier, &format!("{good}.e30"), "three parts").await;
        let (two, _) = good.rsplit_once('.').unwrap();
        refused(&verifier, two, "three parts").await;
    }

    /// RFC 7519 §7.2 step 8, RFC 8725 §3.3: a nested JWT (`cty: JWT`) is
    /// not accepted, and neither is another content type.
    #[tokio::test]
    async fn a_content_type_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        for cty in ["JWT", "json"] {
            let header = with(header(), "cty", json!(cty));
            refused(&verifier, &signer.sign(header, claims()), "cty").await;
        }
    }

    /// RFC 7515 §4.1.2-4.1.6 with RFC 8725 §3.10 and RFC 7519 §7.2 step 5:
    /// a key, key URL or certificate chain in the header is never used and
    /// never accepted. The embedded key here is the signer's own, so the
    /// token would verify if the parameter were ignored.
    #[tokio::test]
    async fn a_header_that_brings_its_own_key_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&signer.key.public())});
        for (name, value) in [
            ("jwk", jwk),
            ("jku", json!("https://evil.example.com/jwks.json")),
            ("x5u", json!("https://evil.example.com/chain.pem")),
            ("x5c", json!(["MIIB"])),
        ] {
            let header = with(header(), name, value);
            refused(&verifier, &signer.sign(header, claims()), name).await;
        }
    }

    /// RFC 8725 §3.12 (with §3.11): rules for access tokens must refuse
    /// JWTs of other kinds; their `typ` tells them apart.
    #[tokio::test]
    async fn a_token_of_another_type_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        for typ in [
            json!("dpop+jwt"),
            json!("logout+jwt"),
            json!("secevent+jwt"),
            json!(1),
        ] {
            let header = with(header(), "typ", typ);
            refused(&verifier, &signer.sign(header, claims()), "typ").await;
        }
    }

    /// RFC 7515 §4.1.1, RFC 8725 §3.2: `alg` must be present, and `none`
    /// is never accepted. (jsonwebtoken refuses both too; this says why.)
    #[tokio::test]
    async fn an_unsigned_token_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        let none = b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes());
        let body = b64(claims().to_string().as_bytes());
        refused(&verifier, &format!("{none}.{body}."), "alg none").await;
        let mut no_alg = header();
        no_alg.as_object_mut().unwrap().remove("alg");
        refused(&verifier, &signer.sign(no_alg, claims()), "well-formed").await;
    }

    /// RFC 7515 §4 and RFC 7519 §4: names must be unique, and a parser
    /// must refuse duplicates or take the last; this one refuses them, in
    /// the header and in the claims set, whichever member is repeated.
    #[tokio::test]
    async fn duplicate_names_are_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        let claims = claims().to_string();
        let typ_twice = r#"{"alg":"EdDSA","typ":"JWT","typ":"JWT","kid":"dev"}"#;
        refused(&verifier, &signer.sign_raw(typ_twice, &claims), "unique").await;
        let header = header().to_string();
        let twice = claims.replacen('{', r#"{"scope":"laptops:write","#, 1);
        refused(&verifier, &signer.sign_raw(&header, &twice), "unique").await;
        let twice = claims.replacen('{', r#"{"private":1,"private":2,"#, 1);
        refused(&verifier, &signer.sign_raw(&header, &twice), "unique").await;
    }

    /// RFC 7519 §7.2 step 10: the claims set is a JSON object, not an
    /// array that serde would read field by field into a struct.
    #[tokio::test]
    async fn a_claims_set_that_is_not_an_object_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        let header = header().to_string();
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let array = format!(r#"["me",{exp},"ports:write"]"#);
        refused(&verifier, &signer.sign_raw(&header, &array), "JSON object").await;
    }

    /// RFC 7515 §2 and §5.2 step 2, RFC 7519 §7.2 step 3: base64url
    /// without padding, line breaks or other characters.
    #[tokio::test]
    async fn padded_or_broken_base64url_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        // A header of a length that needs padding, padded.
        let short = r#"{"alg":"EdDSA","kid":"dev1"}"#;
        assert_ne!(short.len() % 3, 0);
        let body = b64(claims().to_string().as_bytes());
        let padded = format!(
            "{}.{body}",
            base64::engine::general_purpose::URL_SAFE.encode(short)
        );
        let token = format!("{padded}.{}", b64(&signer.key.sign(padded.as_bytes())));
        refused(&verifier, &token, "base64url").await;
        let good = signer.sign(header(), claims());
        let broken = good.replacen('.', "\n.", 1);
        refused(&verifier, &broken, "base64url").await;
    }

    /// RFC 8725 §3.7: UTF-8 only.
    #[tokio::test]
    async fn a_claims_set_not_in_utf8_is_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        let header = header().to_string();
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let latin1 = [
            br#"{"sub":"Jos"#.as_slice(),
            &[0xe9],
            format!(r#"","scope":"ports:write","exp":{exp}}}"#).as_bytes(),
        ]
        .concat();
        let input = format!("{}.{}", b64(header.as_bytes()), b64(&latin1));
        let token = format!("{input}.{}", b64(&signer.key.sign(input.as_bytes())));
        refused(&verifier, &token, "UTF-8").await;
        let utf16: Vec<u8> = claims()
            .to_string()
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let input = format!("{}.{}", b64(header.as_bytes()), b64(&utf16));
        let token = format!("{input}.{}", b64(&signer.key.sign(input.as_bytes())));
        refused(&verifier, &token, "UTF-8").await;
    }

    /// RFC 7519 §4.1.3: a recipient that does not identify itself with a
    /// value in `aud` must refuse the token, and one with no audience
    /// configured identifies itself with none. RFC 8725 §3.9: with an
    /// audience configured, a token without `aud` is refused too.
    #[tokio::test]
    async fn an_audience_not_this_service_is_refused() {
        let signer = Signer::new();
        let open = signer.verifier(None, None).await;
        let aimed = with(claims(), "aud", json!("another-service"));
        refused(&open, &signer.sign(header(), aimed.clone()), "aud").await;
        let strict = signer.verifier(None, Some(AUDIENCE)).await;
        refused(&strict, &signer.sign(header(), aimed), "aud").await;
        refused(&strict, &signer.sign(header(), claims()), "aud").await;
        let ours = with(claims(), "aud", json!([AUDIENCE, "another-service"]));
        assert_eq!(answer(&strict, &signer.sign(header(), ours)).await, Ok(()));
    }

    /// RFC 8725 §3.8: a token naming an issuer is believed only when the
    /// keys are known to be that issuer's: `iss` must be the configured
    /// issuer, a single string, present when one is configured, and
    /// without one configured a token naming any issuer is refused.
    #[tokio::test]
    async fn an_issuer_not_trusted_here_is_refused() {
        let signer = Signer::new();
        let open = signer.verifier(None, None).await;
        let named = with(claims(), "iss", json!(ISSUER));
        refused(&open, &signer.sign(header(), named.clone()), "iss").await;
        let strict = signer.verifier(Some(ISSUER), None).await;
        assert_eq!(answer(&strict, &signer.sign(header(), named)).await, Ok(()));
        refused(&strict, &signer.sign(header(), claims()), "iss").await;
        let both = with(claims(), "iss", json!([ISSUER, "https://evil.example.com"]));
        refused(&strict, &signer.sign(header(), both), "iss").await;
        let number = with(claims(), "iss", json!(1));
        refused(&strict, &signer.sign(header(), number), "iss").await;
        let other = with(claims(), "iss", json!("https://evil.example.com"));
        refused(&strict, &signer.sign(header(), other), "iss").await;
    }

    /// RFC 7519 §4.1.4 and §4.1.5: `exp` and `nbf` are NumericDates, and
    /// the token is refused once expired or before it is valid.
    #[tokio::test]
    async fn times_that_are_not_numbers_or_not_now_are_refused() {
        let signer = Signer::new();
        let verifier = signer.verifier(None, None).await;
        let now = jsonwebtoken::get_current_timestamp();
        for (name, value, because) in [
            ("exp", json!((now + 600).to_string()), "exp"),
            ("nbf", json!("0"), "nbf"),
            ("exp", json!(now - 3600), "expired"),
            ("nbf", json!(now + 3600), "nbf"),
        ] {
            let claims = with(claims(), name, value);
            refused(&verifier, &signer.sign(header(), claims), because).await;
        }
    }
}
