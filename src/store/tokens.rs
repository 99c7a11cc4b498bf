//! API tokens: the bearer secrets of the Sentry Web API. The file keeps a hash of each secret
//! with its name, the scopes it grants, the user it acts as (none: the operator, who may do
//! everything) and the one project it is limited to, if any. The secret itself is shown once,
//! when the token is made.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::users::{new_token, token_hash};
use super::{API_TOKENS, META, StoreError, decode, encode};

/// How a secret starts: the form of Sentry's user auth tokens, which sentry-cli recognizes.
pub const SECRET_PREFIX: &str = "sntryu_";

/// META key of the last token id handed out.
const NEXT_TOKEN_ID: &str = "last_token_id";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ApiToken {
    pub id: u64,
    pub name: String,
    /// The email of the user it acts as; none when the operator made it for themselves.
    pub user: Option<String>,
    /// Sentry's scope names (`project:read`, `event:admin`, …).
    pub scopes: Vec<String>,
    /// The one project it reaches, when limited to one.
    pub project: Option<u64>,
    pub created: f64,
    /// The secret's first characters, to tell tokens apart in lists.
    pub hint: String,
}

/// Makes a token; returns it and its secret (which the file does not keep).
pub fn create(
    txn: &WriteTransaction,
    mut token: ApiToken,
) -> Result<(ApiToken, String), StoreError> {
    let mut meta = txn.open_table(META)?;
    let id = meta.get(NEXT_TOKEN_ID)?.map_or(0, |v| v.value()) + 1;
    meta.insert(NEXT_TOKEN_ID, id)?;
    // 64 hex digits (32 random bytes) after the prefix, as Sentry's own tokens.
    let secret = format!("{SECRET_PREFIX}{}", new_token().0);
    token.id = id;
    token.hint = format!("{}…", &secret[..SECRET_PREFIX.len() + 6]);
    txn.open_table(API_TOKENS)?
        .insert(token_hash(&secret).as_str(), encode(&token).as_slice())?;
    Ok((token, secret))
}

/// Every token, in id order.
pub fn list(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<ApiToken>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()? {
        out.push(decode::<ApiToken>("api_tokens", row?.1.value())?);
    }
    out.sort_by_key(|t| t.id);
    Ok(out)
}

/// The token a secret belongs to, if it exists.
pub fn by_secret(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    secret: &str,
) -> Result<Option<ApiToken>, StoreError> {
    match table.get(token_hash(secret).as_str())? {
        Some(row) => Ok(Some(decode("api_tokens", row.value())?)),
        None => Ok(None),
    }
}

/// Revokes a token by id; returns what it was.
pub fn revoke(txn: &WriteTransaction, id: u64) -> Result<ApiToken, StoreError> {
    let mut table = txn.open_table(API_TOKENS)?;
    let mut found = None;
    for row in table.iter()? {
        let (hash, value) = row?;
        let token: ApiToken = decode("api_tokens", value.value())?;
        if token.id == id {
            found = Some((hash.value().to_string(), token));
            break;
        }
    }
    let (hash, token) = found.ok_or_else(|| StoreError::NotFound(format!("no token {id}")))?;
    table.remove(hash.as_str())?;
    Ok(token)
}
