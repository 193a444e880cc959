use std::collections::HashSet;

use navigator_crypto::envelope::{ALG_AES_256_GCM, HEADER_LEN, MAGIC, OVERHEAD, TAG_LEN};
use navigator_crypto::{CryptoError, DataKey, blob_aad, is_sealed, open, seal};
use proptest::prelude::*;

#[test]
fn round_trip() {
    let dek = DataKey::generate();
    let aad = blob_aad("doc-1", "original");
    for pt in [
        &b""[..],
        b"x",
        b"member id 12345, diagnosis ...",
        &[0u8; 100_000][..],
    ] {
        let sealed = seal(&dek, &aad, pt);
        assert_eq!(sealed.len(), pt.len() + OVERHEAD);
        assert!(is_sealed(&sealed));
        assert_eq!(&sealed[..4], &MAGIC);
        assert_eq!(sealed[4], ALG_AES_256_GCM);
        assert_eq!(open(&dek, &aad, &sealed).unwrap(), pt);
    }
}

#[test]
fn ciphertext_does_not_contain_plaintext() {
    let dek = DataKey::generate();
    let pt = b"SSN 123-45-6789 SSN 123-45-6789 SSN 123-45-6789";
    let sealed = seal(&dek, b"", pt);
    assert!(!sealed.windows(11).any(|w| w == b"123-45-6789"));
}

#[test]
fn every_single_bit_flip_is_refused() {
    let dek = DataKey::generate();
    let aad = blob_aad("doc-1", "text");
    let sealed = seal(&dek, &aad, b"plan: gold PPO; member: 000111222");
    // header (magic + alg), nonce, ciphertext, tag: every bit of every byte.
    for i in 0..sealed.len() {
        for bit in 0..8 {
            let mut t = sealed.clone();
            t[i] ^= 1 << bit;
            let err = open(&dek, &aad, &t).expect_err("flipped bit accepted");
            if i >= HEADER_LEN {
                assert!(matches!(err, CryptoError::Integrity), "byte {i}: {err:?}");
            } else {
                assert!(
                    matches!(err, CryptoError::Malformed(_)),
                    "byte {i}: {err:?}"
                );
            }
        }
    }
    assert!(sealed.len() > HEADER_LEN + 12 + TAG_LEN);
}

#[test]
fn wrong_key_aad_document_or_kind_refused() {
    let dek = DataKey::generate();
    let sealed = seal(&dek, &blob_aad("doc-1", "original"), b"secret");
    let other = DataKey::generate();
    assert!(matches!(
        open(&other, &blob_aad("doc-1", "original"), &sealed),
        Err(CryptoError::Integrity)
    ));
    assert!(matches!(
        open(&dek, &blob_aad("doc-2", "original"), &sealed),
        Err(CryptoError::Integrity)
    ));
    assert!(matches!(
        open(&dek, &blob_aad("doc-1", "text"), &sealed),
        Err(CryptoError::Integrity)
    ));
    assert!(matches!(
        open(&dek, b"", &sealed),
        Err(CryptoError::Integrity)
    ));
}

#[test]
fn malformed_inputs_refused() {
    let dek = DataKey::generate();
    let sealed = seal(&dek, b"a", b"hello");
    for n in 0..OVERHEAD {
        assert!(matches!(
            open(&dek, b"a", &sealed[..n]),
            Err(CryptoError::Malformed(_))
        ));
    }
    // Truncated tag / ciphertext (still >= OVERHEAD) fails authentication.
    assert!(open(&dek, b"a", &sealed[..sealed.len() - 1]).is_err());
    let mut extended = sealed.clone();
    extended.push(0);
    assert!(open(&dek, b"a", &extended).is_err());
    let mut alg = sealed.clone();
    alg[4] = 2;
    assert!(matches!(
        open(&dek, b"a", &alg),
        Err(CryptoError::Malformed(_))
    ));
    assert!(!is_sealed(b"%PDF-1.7"));
    assert!(!is_sealed(b"NAV"));
}

#[test]
fn nonces_differ_across_10000_seals() {
    let dek = DataKey::generate();
    let mut nonces = HashSet::new();
    for _ in 0..10_000 {
        let s = seal(&dek, b"", b"same plaintext");
        let nonce: [u8; 12] = s[HEADER_LEN..HEADER_LEN + 12].try_into().unwrap();
        assert!(nonces.insert(nonce), "nonce repeated");
    }
}

#[test]
fn data_key_debug_is_redacted_and_keys_are_random() {
    let k = DataKey::from_bytes([0xAB; 32]);
    assert_eq!(format!("{k:?}"), "DataKey([redacted])");
    assert!(!format!("{k:#?}").to_lowercase().contains("ab"));
    assert_ne!(
        DataKey::generate().expose_secret(),
        DataKey::generate().expose_secret()
    );
    assert!(DataKey::try_from_slice(&[0; 31]).is_err());
    assert_eq!(
        DataKey::try_from_slice(&[7; 32]).unwrap().expose_secret(),
        &[7; 32]
    );
}

#[test]
fn blob_aad_format() {
    assert_eq!(
        blob_aad("0190-abc", "text"),
        b"navigator/blob/v1\x000190-abc\x00text".to_vec()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn prop_round_trip_and_bit_flip(
        pt in proptest::collection::vec(any::<u8>(), 0..512),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        flip in any::<proptest::sample::Index>(),
        bit in 0u8..8,
    ) {
        let dek = DataKey::generate();
        let sealed = seal(&dek, &aad, &pt);
        prop_assert_eq!(open(&dek, &aad, &sealed).unwrap(), pt);
        let mut t = sealed.clone();
        let i = flip.index(t.len());
        t[i] ^= 1 << bit;
        prop_assert!(open(&dek, &aad, &t).is_err());
    }

    #[test]
    fn prop_any_aad_change_refused(
        pt in proptest::collection::vec(any::<u8>(), 0..64),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        other in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(aad != other);
        let dek = DataKey::generate();
        let sealed = seal(&dek, &aad, &pt);
        prop_assert!(matches!(open(&dek, &other, &sealed), Err(CryptoError::Integrity)));
    }
}
