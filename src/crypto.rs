//! Sealing secrets at rest (provider tokens, PKCE verifiers): ChaCha20-Poly1305 with a 256-bit
//! key from configuration. A sealed value is `v1.` + base64url(nonce ‖ ciphertext ‖ tag), so a
//! future key or algorithm can be told apart by its prefix.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "v1.";

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

    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .expect("sealing cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(CryptoError::Open)?;
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_hides_the_plaintext() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal("access-token-123");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("access-token-123"));
        // Fresh nonce each time: equal inputs do not give equal ciphertexts.
        assert_ne!(sealed, s.seal("access-token-123"));
        assert_eq!(s.open(&sealed).unwrap(), "access-token-123");
    }

    #[test]
    fn another_key_or_a_tampered_value_does_not_open() {
        let sealed = Sealer::new(&[7; 32]).seal("secret");
        assert!(Sealer::new(&[8; 32]).open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(Sealer::new(&[7; 32]).open(&tampered).is_err());
        assert!(Sealer::new(&[7; 32]).open("plain").is_err());
    }

    #[test]
    fn key_is_generated_once_and_reused() {
        let home = std::env::temp_dir().join(format!("wh-key-{}", uuid::Uuid::new_v4()));
        let a = Sealer::load(None, &home).unwrap();
        let b = Sealer::load(None, &home).unwrap();
        assert_eq!(b.open(&a.seal("x")).unwrap(), "x");
        assert!(Sealer::load(Some("short"), &home).is_err());
        std::fs::remove_dir_all(home).unwrap();
    }
}
