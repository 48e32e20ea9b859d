//! SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the client side, as Kafka
//! runs it inside SaslAuthenticate: client-first, server-first, client-final, server-final.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
// ring, not the sha2/hmac crates: rustls already links ring's SHA-256/512, HMAC and PBKDF2,
// so SCRAM adds no hash code to the actions (sha2's SHA-512 alone was 23 KiB of .text).
use ring::{digest, hmac, pbkdf2};

use crate::Mechanism;

/// Most PBKDF2 iterations a broker may ask for: bounds the work a hostile broker can cause
/// (Kafka's maximum is 16384).
const MAX_ITERATIONS: u32 = 100_000;

/// One SCRAM exchange.
pub(crate) struct Client {
    mechanism: Mechanism,
    first_bare: String,
    nonce: String,
    auth_message: String,
    server_key: Vec<u8>,
}

impl Client {
    /// A new exchange for `user` with a fresh random nonce.
    pub(crate) fn new(mechanism: Mechanism, user: &str) -> Client {
        let mut raw = [0u8; 24];
        // A nonce that is not random weakens only replay protection; never fail for it.
        let _ = getrandom::fill(&mut raw);
        let nonce = STANDARD.encode(raw);
        Client::with_nonce(mechanism, user, nonce)
    }

    fn with_nonce(mechanism: Mechanism, user: &str, nonce: String) -> Client {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let first_bare = format!("n={name},r={nonce}");
        Client { mechanism, first_bare, nonce, auth_message: String::new(), server_key: Vec::new() }
    }

    /// The client-first message.
    pub(crate) fn first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// The client-final message for the server-first one.
    pub(crate) fn last(&mut self, server_first: &[u8], password: &str) -> Result<String, String> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| "the server's first message is not text".to_string())?;
        let field =
            |name: char| server_first.split(',').find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')));
        if let Some(e) = field('e') {
            return Err(format!("the server refused: {}", crate::conn::scrub(e, password)));
        }
        let nonce = field('r').ok_or("the server's first message has no nonce")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            return Err("the server's nonce does not extend ours".to_string());
        }
        let salt = STANDARD
            .decode(field('s').ok_or("the server's first message has no salt")?)
            .map_err(|_| "the server's salt is not base64".to_string())?;
        let iterations: u32 = field('i')
            .and_then(|i| i.parse().ok())
            .filter(|i| (1..=MAX_ITERATIONS).contains(i))
            .ok_or_else(|| format!("the server's iteration count is missing or above {MAX_ITERATIONS}"))?;
        let salted = self.hi(password.as_bytes(), &salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        let stored_key = self.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = self.hmac(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        self.server_key = self.hmac(&salted, b"Server Key");
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks the server-final message: the server proves it knows the password too.
    pub(crate) fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let text =
            std::str::from_utf8(server_final).map_err(|_| "the server's final message is not text".to_string())?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {e}"));
        }
        let expected = STANDARD.encode(self.hmac(&self.server_key, self.auth_message.as_bytes()));
        match text.split(',').find_map(|f| f.strip_prefix("v=")) {
            Some(v) if v == expected => Ok(()),
            _ => Err("the server's signature does not verify (not the broker the credentials are for?)".to_string()),
        }
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let algorithm = match self.mechanism {
            Mechanism::ScramSha512 => hmac::HMAC_SHA512,
            _ => hmac::HMAC_SHA256,
        };
        hmac::sign(&hmac::Key::new(algorithm, key), data).as_ref().to_vec()
    }

    fn hash(&self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self.mechanism {
            Mechanism::ScramSha512 => &digest::SHA512,
            _ => &digest::SHA256,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }

    /// PBKDF2 with this mechanism's HMAC, one block (RFC 5802 `Hi`).
    fn hi(&self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let (algorithm, len) = match self.mechanism {
            Mechanism::ScramSha512 => (pbkdf2::PBKDF2_HMAC_SHA512, 64),
            _ => (pbkdf2::PBKDF2_HMAC_SHA256, 32),
        };
        let mut out = vec![0u8; len];
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(algorithm, iterations, salt, password, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: the SCRAM-SHA-256 example exchange, byte for byte.
    #[test]
    fn rfc_7677_example() {
        let mut c = Client::with_nonce(Mechanism::ScramSha256, "user", "rOprNGfwEbeRWgbNEkqO".to_string());
        assert_eq!(c.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = c.last(server_first, "pencil").unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), Ok(()));
        assert!(c.verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err());
    }

    #[test]
    fn a_hostile_server_first_message_is_refused() {
        let mut c = Client::with_nonce(Mechanism::ScramSha512, "u,=", "abc".to_string());
        assert_eq!(c.first(), "n,,n=u=2C=3D,r=abc");
        assert!(c.last(b"r=xyz123,s=AAAA,i=4096", "pw").unwrap_err().contains("nonce"));
        assert!(c.last(b"r=abc123,s=AAAA,i=100000000", "pw").unwrap_err().contains("iteration"));
        let refused = c.last(b"e=invalid-proof pw", "pw").unwrap_err();
        assert!(!refused.contains("pw"), "{refused}");
    }
}
