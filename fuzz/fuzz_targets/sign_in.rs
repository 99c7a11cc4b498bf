//! What a sign-in reads from outside, on arbitrary bytes: an ID token (JWT) checked against
//! a provider's key set, the claims of a token that passed, and the code typed into the
//! two-factor form. Each must answer or refuse, never panic; a token is never accepted
//! without a signature from the key set.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::identity::{oidc, totp};

/// An ES256 key as a provider publishes it (its private half is not here, so nothing the
/// fuzzer writes can be signed by it).
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
"x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_str(JWKS).expect("the key set");
    let verdict = oidc::verify_id_token(&text, &keys, "https://id.example.com", "picket", "n", 0);
    assert!(verdict.is_err(), "an unsigned token was accepted: {text:?}");
    if let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice(data) {
        let _ = oidc::identity(&claims, "https://id.example.com", "groups");
    }
    let _ = totp::check("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", &text, 59, 0);
    let _ = totp::recovery_hash(&text);
});
