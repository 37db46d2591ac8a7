//! Cryptography shared across modules: the HMAC and PKCE digests that both the provider clients
//! and the simulator compute (here, so neither imports the other for them), and sealing secrets
//! at rest (provider tokens, PKCE verifiers): ChaCha20-Poly1305 with a 256-bit
//! key from configuration. A sealed value is a version prefix + base64url(nonce ‖ ciphertext ‖
//! tag). `v2.` values are bound to where they belong (associated data such as the connection
//! and the field), so a sealed token copied onto another connection, or an access token swapped
//! for a refresh token, does not open. `v1.` values (no associated data) were written before
//! that; they still open, and are replaced by `v2.` ones when the tokens are next refreshed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// HMAC-SHA256 of `parts` concatenated, with `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The S256 challenge of any PKCE verifier (RFC 7636). The simulator checks what clients send
/// with it, so unlike `oauth2`'s constructor it accepts verifiers of any length.
pub fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

const LEGACY: &str = "v1.";
const PREFIX: &str = "v2.";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("WEARHOUSE_ENCRYPTION_KEY must be 64 hex characters (32 bytes)")]
    BadKey,
    #[error("sealed value is malformed or was sealed with another key")]
    Open,
    #[error("reading or writing the key file: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone)]
pub struct Sealer {
    key: std::sync::Arc<LessSafeKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key");
        Sealer {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
            rng: SystemRandom::new(),
        }
    }

    /// The configured key (hex), else the one kept in `home/encryption.key`, generated once.
    pub fn load(configured: Option<&str>, home: &std::path::Path) -> Result<Sealer, CryptoError> {
        let parse = |s: &str| -> Result<[u8; 32], CryptoError> {
            hex::decode(s.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or(CryptoError::BadKey)
        };
        if let Some(k) = configured {
            return Ok(Sealer::new(&parse(k)?));
        }
        let path = home.join("encryption.key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return Ok(Sealer::new(&parse(&existing)?));
        }
        std::fs::create_dir_all(home)?;
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| CryptoError::BadKey)?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?
            .write_all(hex::encode(key).as_bytes())?;
        Ok(Sealer::new(&key))
    }

    /// Seals `plain`, bound to `context` (for example the connection and the field it is
    /// stored in): opening needs the same context.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        format!("{PREFIX}{}", self.seal_raw(plain, context.as_bytes()))
    }

    fn seal_raw(&self, plain: &str, aad: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .expect("sealing cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a value sealed for `context`. Legacy `v1.` values (sealed without a context)
    /// open too; [`Opened::legacy`] tells the caller to seal it again.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Opened, CryptoError> {
        if let Some(b) = sealed.strip_prefix(PREFIX) {
            return Ok(Opened {
                plain: self.open_raw(b, context.as_bytes())?,
                legacy: false,
            });
        }
        if let Some(b) = sealed.strip_prefix(LEGACY) {
            return Ok(Opened {
                plain: self.open_raw(b, &[])?,
                legacy: true,
            });
        }
        Err(CryptoError::Open)
    }

    fn open_raw(&self, b64: &str, aad: &[u8]) -> Result<String, CryptoError> {
        let raw = URL_SAFE_NO_PAD
            .decode(b64)
            .ok()
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(CryptoError::Open)?;
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::Open)
    }

    /// Seals without a context, as values were sealed before contexts existed (tests of the
    /// migration path only).
    #[cfg(test)]
    pub fn seal_legacy(&self, plain: &str) -> String {
        format!("{LEGACY}{}", self.seal_raw(plain, &[]))
    }
}

/// An opened value.
pub struct Opened {
    pub plain: String,
    /// Sealed in the old format without a context: seal it again when convenient.
    pub legacy: bool,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opened {{ plain: [redacted], legacy: {} }}", self.legacy)
    }
}

/// The context a connection's sealed token (`field`: `access_token`, `refresh_token`,
/// `pkce_verifier`) is bound to.
pub fn connection_context(stream_id: &str, field: &str) -> String {
    format!("wearhouse/connection/{stream_id}/{field}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_hides_the_plaintext() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal("access-token-123", "c1");
        assert!(sealed.starts_with("v2."));
        assert!(!sealed.contains("access-token-123"));
        // Fresh nonce each time: equal inputs do not give equal ciphertexts.
        assert_ne!(sealed, s.seal("access-token-123", "c1"));
        let o = s.open(&sealed, "c1").unwrap();
        assert_eq!(o.plain, "access-token-123");
        assert!(!o.legacy);
        assert!(!format!("{o:?}").contains("access-token-123"));
    }

    #[test]
    fn a_value_sealed_for_one_context_does_not_open_in_another() {
        let s = Sealer::new(&[7; 32]);
        let a = connection_context("conn-a", "access_token");
        let sealed = s.seal("secret", &a);
        assert!(s
            .open(&sealed, &connection_context("conn-b", "access_token"))
            .is_err());
        assert!(s
            .open(&sealed, &connection_context("conn-a", "refresh_token"))
            .is_err());
        // Relabelled as legacy, it does not open without its context either.
        let relabelled = sealed.replacen("v2.", "v1.", 1);
        assert!(s.open(&relabelled, &a).is_err());
        assert_eq!(s.open(&sealed, &a).unwrap().plain, "secret");
    }

    #[test]
    fn legacy_values_without_a_context_still_open_and_say_so() {
        let s = Sealer::new(&[7; 32]);
        let old = s.seal_legacy("old-token");
        assert!(old.starts_with("v1."));
        let o = s
            .open(&old, &connection_context("any", "access_token"))
            .unwrap();
        assert_eq!(o.plain, "old-token");
        assert!(o.legacy);
    }

    #[test]
    fn another_key_or_a_tampered_value_does_not_open() {
        let sealed = Sealer::new(&[7; 32]).seal("secret", "c");
        assert!(Sealer::new(&[8; 32]).open(&sealed, "c").is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(Sealer::new(&[7; 32]).open(&tampered, "c").is_err());
        assert!(Sealer::new(&[7; 32]).open("plain", "c").is_err());
    }

    #[test]
    fn key_is_generated_once_and_reused() {
        let home = std::env::temp_dir().join(format!("wh-key-{}", uuid::Uuid::new_v4()));
        let a = Sealer::load(None, &home).unwrap();
        let b = Sealer::load(None, &home).unwrap();
        assert_eq!(b.open(&a.seal("x", "c"), "c").unwrap().plain, "x");
        assert!(Sealer::load(Some("short"), &home).is_err());
        std::fs::remove_dir_all(home).unwrap();
    }
}
