//! API token secrets: `errand_` followed by 32 random bytes in hex. Only the SHA-256 of the whole
//! secret is stored, so a copy of the database does not let anyone in.

use rand::RngCore;
use sha2::{Digest, Sha256};

pub(crate) const PREFIX: &str = "errand_";

/// A new secret from the operating system's randomness (rand's thread RNG is a CSPRNG seeded
/// from the OS).
pub(crate) fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", hex(&bytes))
}

/// What the store keeps: the hex SHA-256 of the secret.
pub(crate) fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Hex SHA-256 of any text (environment config hashes).
pub(crate) fn content_hash(text: &str) -> String {
    hash(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
