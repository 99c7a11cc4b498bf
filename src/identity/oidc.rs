//! Single sign-on with an OpenID Connect provider: discovery from the issuer's
//! `/.well-known/openid-configuration`, the authorization-code flow with PKCE (S256), `state`
//! and `nonce`, the code exchanged at the token endpoint, and the ID token checked with
//! jsonwebtoken: its signature against the provider's JWKS (RSA, RSA-PSS, ECDSA or EdDSA;
//! never a shared secret or `none`; the keys re-read when a token names an unknown `kid`), its
//! issuer, audience (and `azp`), expiry and nonce. Claims missing from the ID token (email,
//! groups) are read from the userinfo endpoint, for the same subject only.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::outbound::{Client, Policy};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SsoError {
    /// The provider could not be reached, or answered with something unusable.
    #[error("the sign-in provider: {0}")]
    Provider(String),
    /// The ID token fails a check.
    #[error("the ID token was refused: {0}")]
    Token(String),
}

/// The provider's metadata, as discovery gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    /// The provider vouches for the email (`email_verified`, or Entra ID's `xms_edov`).
    pub email_verified: bool,
    pub groups: Vec<String>,
}

/// A sign-in sent to the provider: where to send the browser, and what to keep until it
/// comes back (the state, the nonce the ID token must carry, the PKCE verifier).
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// How long discovery is trusted before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The keys are re-read for an unknown `kid` at most this often.
const KEYS_REFRESH: Duration = Duration::from_secs(30);
/// Signature algorithms an ID token may use.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The configured provider, with what it said cached.
pub struct Provider {
    issuer: String,
    client_id: String,
    secret: String,
    scopes: Vec<String>,
    groups_claim: String,
    redirect_uri: String,
    client: Client,
    discovery: tokio::sync::Mutex<Option<(Discovery, Instant)>>,
    keys: tokio::sync::Mutex<Option<(JwkSet, Instant)>>,
}

/// A random URL-safe value of 256 bits.
fn random_value() -> String {
    let mut bytes = [0u8; 32];
    crate::ids::fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE challenge of a verifier (S256).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Provider {
    /// The provider `[oidc]` configures, if any; `redirect_uri` is built from `base_url`.
    pub fn new(config: &Config) -> Result<Option<Provider>, SsoError> {
        let oidc = &config.oidc;
        if !oidc.enabled() {
            return Ok(None);
        }
        let secret = oidc
            .secret()
            .map_err(|e| SsoError::Provider(e.to_string()))?;
        let ca = (!oidc.ca_file.is_empty()).then(|| std::path::Path::new(&oidc.ca_file));
        let client = Client::new(ca, oidc.timeout.0, Policy::AnyAddress)
            .map_err(|e| SsoError::Provider(e.to_string()))?;
        Ok(Some(Provider {
            issuer: oidc.issuer.trim_end_matches('/').to_string(),
            client_id: oidc.client_id.clone(),
            secret,
            scopes: oidc.scopes.clone(),
            groups_claim: oidc.groups_claim.clone(),
            redirect_uri: format!("{}/login/sso/callback", config.base_url()),
            client,
            discovery: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(None),
        }))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<T, SsoError> {
        let reply = self
            .client
            .get(url, headers)
            .await
            .map_err(|e| SsoError::Provider(format!("{what} at {url}: {e}")))?;
        if reply.status != 200 {
            return Err(SsoError::Provider(format!(
                "{what} at {url} answered {}",
                reply.status
            )));
        }
        serde_json::from_slice(&reply.body).map_err(|e| {
            SsoError::Provider(format!("{what} at {url} is not what it should be: {e}"))
        })
    }

    /// The provider's metadata (read once an hour); its issuer must be the configured one.
    pub async fn discovery(&self) -> Result<Discovery, SsoError> {
        let mut cached = self.discovery.lock().await;
        if let Some((d, at)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let d: Discovery = self.get_json("discovery", &url, &[]).await?;
        if d.issuer.trim_end_matches('/') != self.issuer {
            return Err(SsoError::Provider(format!(
                "discovery names the issuer {}, not the configured {}",
                d.issuer, self.issuer
            )));
        }
        *cached = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    /// The provider's signing keys; re-read when `refresh` (an unknown `kid`), at most every
    /// 30 seconds.
    async fn keys(&self, jwks_uri: &str, refresh: bool) -> Result<JwkSet, SsoError> {
        let mut cached = self.keys.lock().await;
        if let Some((keys, at)) = cached.as_ref()
            && (!refresh || at.elapsed() < KEYS_REFRESH)
        {
            return Ok(keys.clone());
        }
        let keys: JwkSet = self.get_json("the key set", jwks_uri, &[]).await?;
        *cached = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    /// A new sign-in: where to send the browser, and what to keep until it comes back.
    pub async fn authorize(&self) -> Result<Authorization, SsoError> {
        let d = self.discovery().await?;
        let (state, nonce, verifier) = (random_value(), random_value(), random_value());
        let mut scopes = vec!["openid".to_string()];
        scopes.extend(self.scopes.iter().filter(|s| *s != "openid").cloned());
        let sep = if d.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}\
             &nonce={nonce}&code_challenge={}&code_challenge_method=S256",
            d.authorization_endpoint,
            encode(&self.client_id),
            encode(&self.redirect_uri),
            encode(&scopes.join(" ")),
            challenge(&verifier),
        );
        Ok(Authorization {
            url,
            state,
            nonce,
            verifier,
        })
    }

    /// Exchanges the code the browser brought back for an ID token, checks it, and says who
    /// signed in.
    pub async fn exchange(
        &self,
        code: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<Identity, SsoError> {
        let d = self.discovery().await?;
        let mut form = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}&client_id={}",
            encode(code),
            encode(&self.redirect_uri),
            encode(verifier),
            encode(&self.client_id)
        );
        let mut headers = vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        )];
        let methods = &d.token_endpoint_auth_methods_supported;
        let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
        if basic {
            let pair = format!("{}:{}", encode(&self.client_id), encode(&self.secret));
            headers.push((
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            ));
        } else {
            form.push_str(&format!("&client_secret={}", encode(&self.secret)));
        }
        headers.push(("accept", "application/json".into()));
        let reply = self
            .client
            .post(&d.token_endpoint, &headers, form.into())
            .await
            .map_err(|e| SsoError::Provider(format!("the token endpoint: {e}")))?;
        #[derive(Deserialize)]
        struct Tokens {
            id_token: Option<String>,
            access_token: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let tokens: Tokens = serde_json::from_slice(&reply.body).map_err(|_| {
            SsoError::Provider(format!(
                "the token endpoint answered {} without JSON",
                reply.status
            ))
        })?;
        if reply.status != 200 || tokens.error.is_some() {
            return Err(SsoError::Provider(format!(
                "the token endpoint refused the code: {} {}",
                tokens.error.unwrap_or_else(|| reply.status.to_string()),
                tokens.error_description.unwrap_or_default()
            )));
        }
        let id_token = tokens
            .id_token
            .ok_or_else(|| SsoError::Provider("the token endpoint sent no ID token".into()))?;
        let now = crate::time::now() as u64;
        let mut keys = self.keys(&d.jwks_uri, false).await?;
        if !knows_key(&keys, &id_token) {
            keys = self.keys(&d.jwks_uri, true).await?;
        }
        let mut claims = verify_id_token(&id_token, &keys, &d.issuer, &self.client_id, nonce, now)?;
        let lacks = |c: &Map<String, Value>| {
            !c.contains_key("email")
                || !self.groups_claim.is_empty() && !c.contains_key(&self.groups_claim)
        };
        if lacks(&claims)
            && let (Some(endpoint), Some(access)) = (&d.userinfo_endpoint, &tokens.access_token)
        {
            let info: Map<String, Value> = self
                .get_json(
                    "userinfo",
                    endpoint,
                    &[("authorization", format!("Bearer {access}"))],
                )
                .await?;
            if info.get("sub") == claims.get("sub") {
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        Ok(identity(&claims, &d.issuer, &self.groups_claim))
    }
}

/// Whether the key set holds the key a token names (or, for a token naming none, any key).
fn knows_key(keys: &JwkSet, token: &str) -> bool {
    match jsonwebtoken::decode_header(token).map(|h| h.kid) {
        Ok(Some(kid)) => keys.find(&kid).is_some(),
        _ => !keys.keys.is_empty(),
    }
}

/// Checks an ID token: signed by one of `keys` with an asymmetric algorithm, issued by
/// `issuer` for `client_id` (and, with several audiences, authorized for it), not expired
/// (a minute of clock drift allowed), carrying `nonce`. Its claims, if all hold.
pub fn verify_id_token(
    token: &str,
    keys: &JwkSet,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: u64,
) -> Result<Map<String, Value>, SsoError> {
    let refuse = |why: String| SsoError::Token(why);
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| refuse(format!("not a signed token ({e})")))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(refuse(format!(
            "it is signed with {:?}, not a provider's key",
            header.alg
        )));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| refuse("it names a key the provider does not publish".into()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| refuse(format!("the provider's key: {e}")))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 60;
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| refuse(e.to_string()))?;
    let claims = data.claims;
    let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
    if exp + 60.0 < now as f64 {
        return Err(refuse("it has expired".into()));
    }
    if let Some(Value::Array(aud)) = claims.get("aud")
        && aud.len() > 1
        && claims.get("azp").and_then(Value::as_str) != Some(client_id)
    {
        return Err(refuse("it was issued to another client (azp)".into()));
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(refuse(
            "its nonce is not this sign-in's (a replayed token?)".into(),
        ));
    }
    Ok(claims)
}

/// The identity the (checked) claims describe.
pub fn identity(claims: &Map<String, Value>, issuer: &str, groups_claim: &str) -> Identity {
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let yes = |k: &str| match claims.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let groups = match claims.get(groups_claim) {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Identity {
        issuer: issuer.to_string(),
        subject: text("sub"),
        email: text("email").trim().to_ascii_lowercase(),
        email_verified: yes("email_verified") || yes("xms_edov"),
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const ISSUER: &str = "https://id.example.com";
    const CLIENT: &str = "picket";
    const NOW: u64 = 1_800_000_000;

    /// A P-256 signing key (PKCS#8) and its JWKS entry.
    fn key(kid: &str) -> (EncodingKey, Value) {
        let pair = rcgen::KeyPair::generate().unwrap();
        let public = pair.public_key_raw();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
        });
        (EncodingKey::from_ec_der(&pair.serialize_der()), jwk)
    }

    fn sign(key: &EncodingKey, kid: &str, claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": CLIENT, "sub": "u-1", "exp": NOW + 300, "iat": NOW,
            "nonce": "n-1", "email": "Ann@Example.com", "email_verified": true,
            "groups": ["staff", "picket-admins"],
        })
    }

    fn set(jwks: &[Value]) -> JwkSet {
        serde_json::from_value(json!({ "keys": jwks })).unwrap()
    }

    fn check(token: &str, keys: &JwkSet) -> Result<Map<String, Value>, SsoError> {
        verify_id_token(token, keys, ISSUER, CLIENT, "n-1", NOW)
    }

    fn refused(result: Result<Map<String, Value>, SsoError>) -> String {
        match result {
            Err(SsoError::Token(why)) => why,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn a_good_token_names_the_person() {
        let (k, jwk) = key("k1");
        let claims = check(&sign(&k, "k1", claims()), &set(&[jwk])).unwrap();
        let who = identity(&claims, ISSUER, "groups");
        assert_eq!(who.email, "ann@example.com");
        assert!(who.email_verified);
        assert_eq!(who.subject, "u-1");
        assert_eq!(who.groups, ["staff", "picket-admins"]);
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let (k, jwk) = key("k1");
        let (other, _) = key("k1");
        let keys = set(&[jwk]);
        // Signed by another key under the same kid.
        assert!(refused(check(&sign(&other, "k1", claims()), &keys)).contains("InvalidSignature"));
        // A claim changed after signing.
        let good = sign(&k, "k1", claims());
        let parts: Vec<&str> = good.split('.').collect();
        let mut forged = claims();
        forged["email"] = json!("boss@example.com");
        let body = URL_SAFE_NO_PAD.encode(forged.to_string());
        let tampered = format!("{}.{}.{}", parts[0], body, parts[2]);
        assert!(refused(check(&tampered, &keys)).contains("InvalidSignature"));
        // For another client.
        let mut c = claims();
        c["aud"] = json!("someone-else");
        assert!(refused(check(&sign(&k, "k1", c), &keys)).contains("InvalidAudience"));
        // From another issuer.
        let mut c = claims();
        c["iss"] = json!("https://evil.example.com");
        assert!(refused(check(&sign(&k, "k1", c), &keys)).contains("InvalidIssuer"));
        // Expired.
        let mut c = claims();
        c["exp"] = json!(NOW - 120);
        assert!(refused(check(&sign(&k, "k1", c), &keys)).contains("expired"));
        // Replayed: a token from an earlier sign-in carries that sign-in's nonce.
        let mut c = claims();
        c["nonce"] = json!("n-0");
        assert!(refused(check(&sign(&k, "k1", c), &keys)).contains("nonce"));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nonce");
        assert!(refused(check(&sign(&k, "k1", c), &keys)).contains("nonce"));
        // Several audiences without picket as the authorized party.
        let mut c = claims();
        c["aud"] = json!([CLIENT, "another"]);
        c["azp"] = json!("another");
        assert!(refused(check(&sign(&k, "k1", c), &keys)).contains("azp"));
        // A key the provider does not publish.
        assert!(refused(check(&sign(&k, "k2", claims()), &keys)).contains("does not publish"));
        // A shared-secret signature (the client secret would do as a key) or none at all.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"client-secret"),
        )
        .unwrap();
        assert!(refused(check(&hs, &keys)).contains("HS256"));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert!(refused(check(&none, &keys)).contains("not a signed token"));
        assert!(refused(check("garbage", &keys)).contains("not a signed token"));
    }

    #[test]
    fn unverified_emails_and_string_flags_are_read_as_sent() {
        let c = json!({"sub": "s", "email": "a@b.c", "email_verified": "false", "groups": "ops"});
        let who = identity(c.as_object().unwrap(), ISSUER, "groups");
        assert!(!who.email_verified);
        assert_eq!(who.groups, ["ops"]);
        let entra = json!({"sub": "s", "email": "a@b.c", "xms_edov": true});
        assert!(identity(entra.as_object().unwrap(), ISSUER, "groups").email_verified);
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
