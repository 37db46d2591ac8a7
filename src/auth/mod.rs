//! Credentials: developer passwords (argon2), developer and SDK JWTs (HS256), refresh tokens,
//! API keys and application secrets (random, stored only as SHA-256), invitation codes (stored
//! as an HMAC with a server key: eight characters are too few for a plain hash), and the
//! request extractors that check them.

mod extract;
pub mod streams;
pub mod throttle;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use extract::{
    credential_still_valid, sdk_credential, AccountAuth, AdminAuth, AnyCredential, AuditAuth,
    BadBearer, CredentialStore, DeveloperAuth, MaybeCredential, MaybeDeveloper, Presented,
    Principal, Role, SdkAuth, SdkCaller, SdkDenied, SDK_BEARER_SCHEME,
};

pub const API_KEY_HEADER: &str = "X-Open-Wearables-API-Key";
pub const MSG_AUTH_REQUIRED: &str = "Authentication required: provide JWT token or API key";
pub const MSG_BAD_API_KEY: &str = "Invalid or missing API key";
pub const MSG_BAD_JWT: &str = "Could not validate credentials";
pub const MSG_SDK_TOKEN: &str = "SDK tokens cannot access this endpoint";
pub const MSG_SDK_AUTH_REQUIRED: &str = "Authentication required: provide SDK token or API key";
pub const MSG_SDK_WRONG_USER: &str = "Token does not match user_id";
/// The `scope` claim of user-scoped SDK tokens.
pub const SDK_SCOPE: &str = "sdk";

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A new API key, `sk-` + 32 hex characters.
pub fn new_api_key() -> String {
    format!("sk-{}", random_hex(16))
}

/// What is kept of a key so people can tell keys apart: `sk-1a2b…`.
pub fn key_prefix(key: &str) -> String {
    format!("{}…", &key[..key.len().min(7)])
}

/// A new application id, `app_` + 32 hex characters (public: it names the application).
pub fn new_app_id() -> String {
    format!("app_{}", random_hex(16))
}

/// A new application secret, `secret_` + 64 hex characters, shown once.
pub fn new_app_secret() -> String {
    format!("secret_{}", random_hex(32))
}

/// The alphabet of invitation codes, as upstream: no 0/O or 1/I, so a code read aloud or
/// typed is not mistaken (within the contract's `[A-Z2-9]`).
pub const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const CODE_LENGTH: usize = 8;

/// A new invitation code: 8 characters from [`CODE_ALPHABET`] (40 bits).
pub fn new_invitation_code() -> String {
    let mut buf = [0u8; CODE_LENGTH];
    rand::rng().fill_bytes(&mut buf);
    // 32 symbols: the low five bits of a random byte pick one without bias.
    buf.iter()
        .map(|b| CODE_ALPHABET[(b & 31) as usize] as char)
        .collect()
}

/// HMAC-SHA256 of `value` with `key`, in hex: the stored form of an invitation code. Without
/// the key (which never enters the database) the 2^40 codes cannot be tried against a copy.
pub fn keyed_hash(key: &[u8], value: &str) -> String {
    hex::encode(crate::crypto::hmac_sha256(key, &[value.as_bytes()]))
}

/// Equality of two hashes in time independent of where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn new_refresh_token() -> String {
    format!("rt-{}", random_hex(16))
}

pub fn new_password() -> String {
    random_hex(12)
}

/// The minimum policy for a developer password: 12 to 1024 characters, at least two kinds of
/// character (lower case, upper case, digits, others), not the e-mail address.
pub fn check_password_policy(email: &str, password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < 12 {
        return Err("the password must have at least 12 characters".into());
    }
    if n > 1024 {
        return Err("the password must have at most 1024 characters".into());
    }
    let kinds = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if kinds.iter().filter(|k| **k).count() < 2 {
        return Err(
            "the password must mix at least two of: lower case, upper case, digits, symbols".into(),
        );
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err("the password must not be the e-mail address".into());
    }
    Ok(())
}

/// An e-mail address fit for a developer account: `local@domain`, no spaces, at most 254.
pub fn check_email(email: &str) -> Result<(), String> {
    let e = email.trim();
    let ok = e.len() <= 254
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{email:?} is not an e-mail address"))
    }
}

pub fn hash_password(password: &str) -> String {
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so a failed login costs the same
/// either way.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_hex(8)))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    /// The token's id, so signing out can revoke this one token before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<Uuid>,
    /// `sdk` for user-scoped SDK tokens; absent for developer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// SDK tokens: the application they were issued for (`app_…`, or `admin:<developer>` /
    /// `invite:<developer>` for tokens a developer asked for or an invitation code gave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
}

#[derive(Clone)]
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_minutes: i64,
}

impl Jwt {
    pub fn new(secret: &[u8], access_minutes: i64) -> Self {
        Jwt {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_minutes,
        }
    }

    pub fn issue(&self, developer: Uuid, now: DateTime<Utc>) -> String {
        let claims = Claims {
            sub: developer.to_string(),
            iat: now.timestamp(),
            exp: (now + Duration::minutes(self.access_minutes)).timestamp(),
            jti: Some(Uuid::new_v4()),
            scope: None,
            app_id: None,
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// An SDK access token: scope `sdk`, subject the user, accepted only by that user's SDK
    /// routes.
    pub fn issue_sdk(&self, user: Uuid, app_id: &str, now: DateTime<Utc>) -> String {
        let claims = Claims {
            sub: user.to_string(),
            iat: now.timestamp(),
            exp: (now + Duration::minutes(self.access_minutes)).timestamp(),
            jti: Some(Uuid::new_v4()),
            scope: Some(SDK_SCOPE.to_string()),
            app_id: Some(app_id.to_string()),
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn decode(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::default();
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// The JWT key: configured, or generated once and kept in `WEARHOUSE_HOME/jwt.key` (0600).
/// Shortest accepted `WEARHOUSE_SECRET_KEY`: 256 bits, the HS256 output size.
pub const MIN_SECRET_KEY_BYTES: usize = 32;

pub fn load_or_create_secret(
    configured: Option<&str>,
    home: &std::path::Path,
) -> std::io::Result<Vec<u8>> {
    if let Some(s) = configured {
        // HS256 with a short key can be brute-forced offline from any issued token.
        if s.len() < MIN_SECRET_KEY_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("WEARHOUSE_SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes"),
            ));
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = home.join("jwt.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if existing.trim().len() >= 32 {
            return Ok(existing.trim().as_bytes().to_vec());
        }
    }
    std::fs::create_dir_all(home)?;
    let secret = random_hex(32);
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?
        .write_all(secret.as_bytes())?;
    Ok(secret.into_bytes())
}

/// A random token kept in `path` (mode 0600), created on first use.
pub fn load_or_create_token(path: &std::path::Path) -> std::io::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        if existing.trim().len() >= 32 {
            return Ok(existing.trim().to_string());
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let token = random_hex(32);
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(token.as_bytes())?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_secret_key_needs_32_bytes() {
        let home = std::env::temp_dir().join(format!("wh-jwt-{}", uuid::Uuid::new_v4()));
        let err = load_or_create_secret(Some("too-short"), &home).unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        let ok = "k".repeat(32);
        assert_eq!(
            load_or_create_secret(Some(&ok), &home).unwrap(),
            ok.as_bytes()
        );
        assert!(!home.exists(), "a configured key writes no file");
    }

    #[test]
    fn api_keys_have_the_contract_shape() {
        let k = new_api_key();
        assert_eq!(k.len(), 35);
        assert!(k.starts_with("sk-") && k[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(k, new_api_key());
        assert_eq!(key_prefix(&k), format!("{}…", &k[..7]));
    }

    #[test]
    fn weak_or_empty_admin_credentials_are_refused() {
        assert!(check_password_policy("a@b.io", "").is_err());
        assert!(check_password_policy("a@b.io", "short-1").is_err());
        assert!(check_password_policy("a@b.io", "aaaaaaaaaaaaaaaa").is_err());
        assert!(check_password_policy("admin@b.io", "admin@b.io").is_err());
        assert!(check_password_policy("a@b.io", "test-password-1").is_ok());
        assert!(check_email("").is_err());
        assert!(check_email("admin").is_err());
        assert!(check_email("a b@c.io").is_err());
        assert!(check_email("admin@test.local").is_ok());
    }

    #[test]
    fn invitation_codes_and_app_credentials_have_the_contract_shape() {
        assert_eq!(CODE_ALPHABET.len(), 32);
        for _ in 0..200 {
            let c = new_invitation_code();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'9').contains(&b)),
                "{c}"
            );
        }
        let (id, secret) = (new_app_id(), new_app_secret());
        assert!(id.starts_with("app_") && id.len() == 36, "{id}");
        assert!(
            secret.starts_with("secret_") && secret.len() == 71,
            "{secret}"
        );
        assert!(same_hash("abc", "abc") && !same_hash("abc", "abd") && !same_hash("a", "ab"));
        assert_ne!(keyed_hash(b"k1", "X"), keyed_hash(b"k2", "X"));
    }

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn jwt_round_trip_and_expiry() {
        let jwt = Jwt::new(b"0123456789abcdef0123456789abcdef", 60);
        let id = Uuid::new_v4();
        let t = jwt.issue(id, Utc::now());
        assert_eq!(jwt.decode(&t).unwrap().sub, id.to_string());
        let old = jwt.issue(id, Utc::now() - Duration::minutes(61));
        assert!(jwt.decode(&old).is_none());
        let other = Jwt::new(b"another-secret-another-secret-xx", 60);
        assert!(other.decode(&t).is_none());
    }
}
