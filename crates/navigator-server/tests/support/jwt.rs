//! Token minting for the auth tests, independent of the server's JWT library: keys from aws-lc-rs,
//! headers and payloads written by hand (so malformed ones are easy), signatures computed here.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA512,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://idp.test.example";
pub const AUDIENCE: &str = "navigator-api";
/// 40 bytes: above the 32-byte minimum.
pub const HS256_SECRET: &str = "test-hs256-secret-0123456789abcdefghijkl";

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sleeps until just after a second boundary, so a token minted now is checked within the same
/// second (for the leeway boundary pairs).
pub async fn start_of_second() {
    let sub = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    if sub > 300 {
        tokio::time::sleep(std::time::Duration::from_millis(u64::from(1005 - sub))).await;
    }
}

/// The issuer's keys (and an attacker's).
pub struct Keys {
    pub rsa: RsaKeyPair,
    pub ec: EcdsaKeyPair,
    pub ed: Ed25519KeyPair,
    /// Same types, not in the JWKS.
    pub other_rsa: RsaKeyPair,
    pub other_ec: EcdsaKeyPair,
    pub other_ed: Ed25519KeyPair,
}

impl Keys {
    pub fn generate() -> Keys {
        let ec = || EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Keys {
            rsa: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
            ec: ec(),
            ed: Ed25519KeyPair::generate().unwrap(),
            other_rsa: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
            other_ec: ec(),
            other_ed: Ed25519KeyPair::generate().unwrap(),
        }
    }

    /// The JWKS: `rsa-1`, `ec-1`, `ed-1`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [rsa_jwk("rsa-1", &self.rsa), ec_jwk("ec-1", &self.ec), ed_jwk("ed-1", &self.ed)]})
    }

    /// The RSA public key as PEM (SubjectPublicKeyInfo), the bytes a key-confusion attacker
    /// would use as an HMAC secret.
    pub fn rsa_public_pem(&self) -> String {
        let der = AsDer::<PublicKeyX509Der>::as_der(self.rsa.public_key()).unwrap();
        let body = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

pub fn rsa_jwk(kid: &str, key: &RsaKeyPair) -> Value {
    let public = key.public_key();
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
           "n": b64(public.modulus().big_endian_without_leading_zero()),
           "e": b64(public.exponent().big_endian_without_leading_zero())})
}

pub fn ec_jwk(kid: &str, key: &EcdsaKeyPair) -> Value {
    let point = key.public_key().as_ref();
    assert_eq!(point.len(), 65);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
           "x": b64(&point[1..33]), "y": b64(&point[33..])})
}

pub fn ed_jwk(kid: &str, key: &Ed25519KeyPair) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(key.public_key().as_ref())})
}

/// How to sign.
pub enum Signer<'a> {
    Hmac256(&'a [u8]),
    Hmac512(&'a [u8]),
    Rsa256(&'a RsaKeyPair),
    Rsa512(&'a RsaKeyPair),
    Es256(&'a EcdsaKeyPair),
    Ed(&'a Ed25519KeyPair),
    /// No signature (an empty third segment).
    Nothing,
    /// This exact signature segment.
    Raw(String),
}

pub fn sign(signing_input: &str, signer: &Signer) -> String {
    let msg = signing_input.as_bytes();
    let rng = SystemRandom::new();
    match signer {
        Signer::Hmac256(secret) => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
            b64(aws_lc_rs::hmac::sign(&key, msg).as_ref())
        }
        Signer::Hmac512(secret) => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, secret);
            b64(aws_lc_rs::hmac::sign(&key, msg).as_ref())
        }
        Signer::Rsa256(key) | Signer::Rsa512(key) => {
            let alg = if matches!(signer, Signer::Rsa256(_)) {
                &RSA_PKCS1_SHA256
            } else {
                &RSA_PKCS1_SHA512
            };
            let mut sig = vec![0u8; key.public_modulus_len()];
            key.sign(alg, &rng, msg, &mut sig).unwrap();
            b64(&sig)
        }
        Signer::Es256(key) => b64(key.sign(&rng, msg).unwrap().as_ref()),
        Signer::Ed(key) => b64(key.sign(msg).as_ref()),
        Signer::Nothing => String::new(),
        Signer::Raw(s) => s.clone(),
    }
}

/// `header.payload.signature` from raw JSON texts (so duplicate members and odd types survive).
pub fn mint_raw(header: &str, payload: &str, signer: &Signer) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = sign(&input, signer);
    format!("{input}.{sig}")
}

pub fn mint(header: &Value, claims: &Value, signer: &Signer) -> String {
    mint_raw(&header.to_string(), &claims.to_string(), signer)
}

/// Valid claims for `sub` with `roles`, issued now, for ten minutes.
pub fn claims(sub: &str, roles: &[&str]) -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600, "roles": roles})
}

/// An HS256 token for `sub` with `roles`.
pub fn hs256(sub: &str, roles: &[&str]) -> String {
    mint(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims(sub, roles),
        &Signer::Hmac256(HS256_SECRET.as_bytes()),
    )
}
