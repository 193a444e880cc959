use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use navigator_crypto::{
    CryptoError, DataKey, KeyProvider, LocalKeyring, WrappedKey, blob_aad, open, seal,
};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn wrap_unwrap_round_trip() {
    let ring = LocalKeyring::new(vec![("k1".into(), [1; 32])], "k1").unwrap();
    let dek = DataKey::generate();
    let w = ring.wrap(&dek).await.unwrap();
    assert_eq!(w.kek_id, "k1");
    assert_eq!(ring.active_key_id(), "k1");
    let back = ring.unwrap(&w).await.unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());
    // Encoded form round trip.
    assert_eq!(WrappedKey::decode(&w.encode()).unwrap(), w);
}

#[tokio::test]
async fn rotation_old_kek_still_opens_new_writes_use_new_id() {
    let old = LocalKeyring::new(vec![("k1".into(), [1; 32])], "k1").unwrap();
    let dek = DataKey::generate();
    let blob = seal(&dek, &blob_aad("d", "original"), b"phi");
    let w_old = old.wrap(&dek).await.unwrap();

    let rotated =
        LocalKeyring::new(vec![("k1".into(), [1; 32]), ("k2".into(), [2; 32])], "k2").unwrap();
    assert_eq!(rotated.active_key_id(), "k2");
    let back = rotated.unwrap(&w_old).await.unwrap();
    assert_eq!(
        open(&back, &blob_aad("d", "original"), &blob).unwrap(),
        b"phi"
    );
    let w_new = rotated.wrap(&dek).await.unwrap();
    assert_eq!(w_new.kek_id, "k2");
    // The old keyring does not know k2.
    match old.unwrap(&w_new).await {
        Err(CryptoError::UnknownKey(id)) => assert_eq!(id, "k2"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrapped_key_bound_to_kek_id() {
    // Same key bytes under two ids: relabelling the wrapped key must fail.
    let ring = LocalKeyring::new(vec![("a".into(), [9; 32]), ("b".into(), [9; 32])], "a").unwrap();
    let mut w = ring.wrap(&DataKey::generate()).await.unwrap();
    w.kek_id = "b".into();
    assert!(matches!(ring.unwrap(&w).await, Err(CryptoError::Integrity)));
    let mut w = ring.wrap(&DataKey::generate()).await.unwrap();
    w.bytes[20] ^= 1;
    assert!(matches!(ring.unwrap(&w).await, Err(CryptoError::Integrity)));
}

#[test]
fn constructor_validation() {
    assert!(matches!(
        LocalKeyring::new(vec![], "k1"),
        Err(CryptoError::InvalidKey(_))
    ));
    assert!(matches!(
        LocalKeyring::new(vec![("k1".into(), [0; 32])], "k2"),
        Err(CryptoError::UnknownKey(_))
    ));
    assert!(matches!(
        LocalKeyring::new(vec![("k1".into(), [0; 32]), ("k1".into(), [1; 32])], "k1"),
        Err(CryptoError::InvalidKey(_))
    ));
    for bad in ["", "a b", "k/1", "ключ", &"x".repeat(65)] {
        assert!(
            matches!(
                LocalKeyring::new(vec![(bad.to_string(), [0; 32])], bad),
                Err(CryptoError::InvalidKeyId(_))
            ),
            "{bad:?}"
        );
    }
    assert!(LocalKeyring::new(vec![("A-z_0.9".into(), [0; 32])], "A-z_0.9").is_ok());
    assert!(LocalKeyring::new(vec![("x".repeat(64), [0; 32])], &"x".repeat(64)).is_ok());
}

#[test]
fn from_config() {
    let mut keys = BTreeMap::new();
    keys.insert("k1".to_string(), STANDARD.encode([1u8; 32]));
    let ring = LocalKeyring::from_config(keys.clone(), None).unwrap();
    assert_eq!(ring.active_key_id(), "k1");
    keys.insert("k2".to_string(), STANDARD.encode([2u8; 32]));
    assert!(LocalKeyring::from_config(keys.clone(), None).is_err());
    let ring = LocalKeyring::from_config(keys.clone(), Some("k2".into())).unwrap();
    assert_eq!(ring.key_ids(), vec!["k1", "k2"]);
    keys.insert("k3".to_string(), STANDARD.encode([3u8; 31]));
    let err = LocalKeyring::from_config(keys.clone(), Some("k2".into())).unwrap_err();
    assert!(matches!(err, CryptoError::InvalidKey(_)));
    let secretish = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtbGVhaw!!".to_string();
    keys.insert("k3".to_string(), secretish.clone());
    let msg = LocalKeyring::from_config(keys, Some("k2".into()))
        .unwrap_err()
        .to_string();
    assert!(!msg.contains(&secretish[..10]), "{msg}");
}

#[test]
fn debug_is_redacted() {
    let ring = LocalKeyring::new(vec![("k1".into(), [0xCD; 32])], "k1").unwrap();
    let s = format!("{ring:?}");
    assert!(s.contains("k1"));
    assert!(
        !s.to_lowercase().contains("cd, ") && !s.contains("205"),
        "{s}"
    );
}

#[tokio::test]
async fn file_created_0600_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/keyring.json");
    let ring = LocalKeyring::load_or_create(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    let id = ring.active_key_id();
    assert!(
        id.starts_with("k-") && id.len() == "k-20250101-0123abcd".len(),
        "{id}"
    );
    assert!(ring.audit_key().is_some());

    let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["active"], id.as_str());
    assert!(json["keys"][&id].is_string());
    assert!(json["audit_key"].is_string());

    let again = LocalKeyring::load_or_create(&path).unwrap();
    assert_eq!(again.active_key_id(), id);
    assert_eq!(
        again.audit_key().unwrap().expose_secret(),
        ring.audit_key().unwrap().expose_secret()
    );
    let w = ring.wrap(&DataKey::generate()).await.unwrap();
    again.unwrap(&w).await.unwrap();
}

#[test]
fn file_refused_when_0644() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    LocalKeyring::load_or_create(&path).unwrap();
    for m in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&path, fs::Permissions::from_mode(m)).unwrap();
        let err = LocalKeyring::load_or_create(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CryptoError::Keyring { .. }), "{err:?}");
        assert!(msg.contains("chmod 600"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(LocalKeyring::rotate_file(&path).is_err());
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    LocalKeyring::load(&path).unwrap();
}

#[tokio::test]
async fn rotate_keeps_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let first = LocalKeyring::load_or_create(&path).unwrap();
    let old_id = first.active_key_id();
    let w_old = first.wrap(&DataKey::generate()).await.unwrap();

    let new_id = LocalKeyring::rotate_file(&path).unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(mode(&path), 0o600);
    let ring = LocalKeyring::load(&path).unwrap();
    assert_eq!(ring.active_key_id(), new_id);
    assert!(ring.contains(&old_id));
    ring.unwrap(&w_old).await.unwrap();
    assert_eq!(
        ring.wrap(&DataKey::generate()).await.unwrap().kek_id,
        new_id
    );
    // Audit key survives rotation.
    assert_eq!(
        ring.audit_key().unwrap().expose_secret(),
        first.audit_key().unwrap().expose_secret()
    );

    let third = LocalKeyring::rotate_file(&path).unwrap();
    let ring = LocalKeyring::load(&path).unwrap();
    assert_eq!(ring.key_ids().len(), 3);
    assert_eq!(ring.active_key_id(), third);
    // No temp files left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}

#[test]
fn malformed_file_error_does_not_echo_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let secret = STANDARD.encode([0x5a; 32]);
    fs::write(&path, format!(r#"{{"active": "k1", "keys": "{secret}"}}"#)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let msg = LocalKeyring::load(&path).unwrap_err().to_string();
    assert!(!msg.contains(&secret[..8]), "{msg}");
    assert!(msg.contains("keyring.json"), "{msg}");

    fs::write(
        &path,
        format!(r#"{{"active": "k2", "keys": {{"k1": "{secret}"}}}}"#),
    )
    .unwrap();
    let msg = LocalKeyring::load(&path).unwrap_err().to_string();
    assert!(msg.contains("k2"), "{msg}");
    assert!(!msg.contains(&secret[..8]), "{msg}");

    // A valid file without an audit key loads.
    fs::write(
        &path,
        format!(r#"{{"active": "k1", "keys": {{"k1": "{secret}"}}}}"#),
    )
    .unwrap();
    let ring = LocalKeyring::load(&path).unwrap();
    assert!(ring.audit_key().is_none());
}
