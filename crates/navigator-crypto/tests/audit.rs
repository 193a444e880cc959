use navigator_crypto::audit::is_canonical;
use navigator_crypto::{
    AuditKey, AuditRow, Break, BreakKind, ChainVerifier, CryptoError, GENESIS, Summary,
    canonical_json, entry_hash, sign_anchor, verify_anchor,
};
use serde_json::json;

fn key() -> AuditKey {
    AuditKey::new((0u8..32).collect()).unwrap()
}

fn chain(key: &AuditKey, n: i64) -> Vec<AuditRow> {
    let mut rows = Vec::new();
    let mut prev = GENESIS;
    for seq in 1..=n {
        let entry = json!({
            "action": "document.read",
            "actor": format!("user-{}", seq % 7),
            "document_id": format!("doc-{seq}"),
            "detail": {"z": seq, "a": [true, null, "x"]},
        });
        let row = AuditRow::build(key, seq, prev, &entry);
        prev = row.hash;
        rows.push(row);
    }
    rows
}

fn verify(
    key: &AuditKey,
    rows: &[AuditRow],
    head: Option<(i64, [u8; 32])>,
) -> Result<Summary, Break> {
    let mut v = ChainVerifier::new(key.clone());
    for r in rows {
        v.push(r)?;
    }
    v.finish(head)
}

fn brk(seq: i64, kind: BreakKind) -> Result<Summary, Break> {
    Err(Break { seq, kind })
}

#[test]
fn genesis_is_sha256_of_label() {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"navigator-audit-genesis-v1");
    assert_eq!(d.as_ref(), &GENESIS);
}

#[test]
fn golden_entry_hash() {
    // Computed independently (Python hmac/hashlib); pins the format.
    let entry = canonical_json(&json!({
        "n": 42, "document_id": "doc-1", "actor": "alice", "action": "document.upload"
    }));
    assert_eq!(
        entry,
        br#"{"action":"document.upload","actor":"alice","document_id":"doc-1","n":42}"#
    );
    assert_eq!(
        hex::encode(entry_hash(&key(), 1, &GENESIS, &entry)),
        "7aaf0989079d7231eb4d27e1b6bbe34056d31febf7d2d35a4438e96e4e7602ed"
    );
    let h = entry_hash(&key(), 7, &[0; 32], b"{}");
    assert_eq!(
        hex::encode(h),
        "ef640b30fc510be2d0c3552f7719ad353056b7493344d63f18426c3656d488b8"
    );
    let anchor = sign_anchor(&key(), 7, &h);
    assert_eq!(
        anchor,
        format!(
            r#"{{"seq":7,"hash":"{}","mac":"7dadbe588b991c18608043bc5a52e5d66d1f6bb916402d0c66750fd925d16e60"}}"#,
            hex::encode(h)
        )
    );
}

#[test]
fn canonical_json_sorts_nested_keys() {
    let v = json!({"b": {"y": 1, "x": [ {"d": null, "c": false} ]}, "a": "é\"\n", "A": -3});
    assert_eq!(
        String::from_utf8(canonical_json(&v)).unwrap(),
        r#"{"A":-3,"a":"é\"\n","b":{"x":[{"c":false,"d":null}],"y":1}}"#
    );
    assert!(is_canonical(&canonical_json(&v)));
    assert!(!is_canonical(br#"{"b":1,"a":2}"#));
    assert!(!is_canonical(br#"{"a": 2}"#));
    assert!(!is_canonical(br#"{"a":"\u0041"}"#));
    assert!(!is_canonical(br#"{"a":1,"a":1}"#));
    assert!(!is_canonical(b"not json"));
}

#[test]
fn untampered_chain_of_1000_verifies() {
    let k = key();
    let rows = chain(&k, 1000);
    let head = (1000, rows[999].hash);
    let s = verify(&k, &rows, Some(head)).unwrap();
    assert_eq!(s.entries, 1000);
    assert_eq!(s.head, Some(head));
    // Also without an anchor, and the empty chain.
    assert!(verify(&k, &rows, None).is_ok());
    let empty = verify(&k, &[], None).unwrap();
    assert_eq!(
        empty,
        Summary {
            entries: 0,
            head: None
        }
    );
    assert!(verify(&k, &[], Some((0, GENESIS))).is_ok());
}

#[test]
fn wrong_key_fails_at_first_row() {
    let rows = chain(&key(), 5);
    assert_eq!(
        verify(&AuditKey::generate(), &rows, None),
        brk(1, BreakKind::HashMismatch)
    );
}

#[test]
fn modified_entry() {
    let k = key();
    let mut rows = chain(&k, 20);
    rows[9].entry = canonical_json(&json!({"action": "document.read", "actor": "mallory"}));
    assert_eq!(verify(&k, &rows, None), brk(10, BreakKind::HashMismatch));
}

#[test]
fn modified_entry_not_canonical() {
    let k = key();
    let mut rows = chain(&k, 20);
    let mut text = String::from_utf8(rows[4].entry.clone()).unwrap();
    text.insert(1, ' ');
    rows[4].entry = text.into_bytes();
    assert_eq!(verify(&k, &rows, None), brk(5, BreakKind::NotCanonical));
}

#[test]
fn modified_hash() {
    let k = key();
    let mut rows = chain(&k, 20);
    rows[6].hash[0] ^= 1;
    assert_eq!(verify(&k, &rows, None), brk(7, BreakKind::HashMismatch));
}

#[test]
fn deleted_middle_row() {
    let k = key();
    let mut rows = chain(&k, 20);
    rows.remove(11); // seq 12
    assert_eq!(verify(&k, &rows, None), brk(13, BreakKind::Gap));
}

#[test]
fn deleted_middle_row_renumbered() {
    // Deletion hidden by renumbering the following rows: the link breaks.
    let k = key();
    let mut rows = chain(&k, 20);
    rows.remove(11);
    for r in rows.iter_mut().skip(11) {
        r.seq -= 1;
    }
    assert_eq!(verify(&k, &rows, None), brk(12, BreakKind::PrevMismatch));
}

#[test]
fn deleted_first_row() {
    let k = key();
    let mut rows = chain(&k, 20);
    rows.remove(0);
    assert_eq!(verify(&k, &rows, None), brk(2, BreakKind::Gap));
}

#[test]
fn inserted_forged_row() {
    let k = key();
    let rows = chain(&k, 20);
    // Forged row at seq 6 with a correct-looking link and a hash under another key;
    // the following rows are renumbered to make room.
    let forged = AuditRow::build(
        &AuditKey::generate(),
        6,
        rows[4].hash,
        &json!({"action": "x"}),
    );
    let mut tampered: Vec<AuditRow> = rows[..5].to_vec();
    tampered.push(forged);
    for r in &rows[5..] {
        let mut r = r.clone();
        r.seq += 1;
        tampered.push(r);
    }
    assert_eq!(verify(&k, &tampered, None), brk(6, BreakKind::HashMismatch));

    // Appended forged row at the end.
    let mut appended = rows.clone();
    appended.push(AuditRow::build(
        &AuditKey::generate(),
        21,
        rows[19].hash,
        &json!({}),
    ));
    assert_eq!(
        verify(&k, &appended, None),
        brk(21, BreakKind::HashMismatch)
    );
}

#[test]
fn reordered_rows() {
    let k = key();
    let mut rows = chain(&k, 20);
    // Swap the contents of seq 8 and 9 (the rows are read back ordered by seq).
    let (a, b) = (rows[7].clone(), rows[8].clone());
    rows[7] = AuditRow { seq: 8, ..b };
    rows[8] = AuditRow { seq: 9, ..a };
    assert_eq!(verify(&k, &rows, None), brk(8, BreakKind::PrevMismatch));
}

#[test]
fn duplicated_row() {
    let k = key();
    let mut rows = chain(&k, 20);
    let dup = rows[3].clone();
    rows.insert(4, dup);
    assert_eq!(verify(&k, &rows, None), brk(4, BreakKind::Duplicate));
}

#[test]
fn truncated_tail_detected_with_anchor() {
    let k = key();
    let rows = chain(&k, 100);
    let anchor = sign_anchor(&k, 100, &rows[99].hash);
    let head = verify_anchor(&k, &anchor).unwrap();
    assert_eq!(head, (100, rows[99].hash));
    // Without the anchor a truncated chain looks valid...
    assert!(verify(&k, &rows[..80], None).is_ok());
    // ...with it, the first missing seq is named.
    assert_eq!(
        verify(&k, &rows[..80], Some(head)),
        brk(81, BreakKind::TailMissing)
    );
    assert_eq!(verify(&k, &[], Some(head)), brk(1, BreakKind::TailMissing));
    assert!(verify(&k, &rows, Some(head)).is_ok());
}

#[test]
fn rollback_and_reappend_detected_with_anchor() {
    let k = key();
    let rows = chain(&k, 50);
    let head = (50, rows[49].hash);
    // Truncate to 40 and re-append 10 different rows with a valid key (an insider with the key).
    let mut rewritten = rows[..40].to_vec();
    let mut prev = rows[39].hash;
    for seq in 41..=50 {
        let r = AuditRow::build(&k, seq, prev, &json!({"rewritten": seq}));
        prev = r.hash;
        rewritten.push(r);
    }
    assert_eq!(
        verify(&k, &rewritten, Some(head)),
        brk(50, BreakKind::TailMissing)
    );
}

#[test]
fn older_anchor_registered_in_advance() {
    let k = key();
    let rows = chain(&k, 60);
    let (seq, hash) = (30, rows[29].hash);

    let mut v = ChainVerifier::new(k.clone());
    v.expect_anchor(seq, hash);
    for r in &rows {
        v.push(r).unwrap();
    }
    assert_eq!(v.finish(Some((seq, hash))).unwrap().entries, 60);

    // Registered anchor beyond a truncated tail.
    let mut v = ChainVerifier::new(k.clone());
    v.expect_anchor(seq, hash);
    for r in &rows[..20] {
        v.push(r).unwrap();
    }
    assert_eq!(v.finish(None), brk(21, BreakKind::TailMissing));

    // An older anchor passed only to finish cannot be checked: reported, not accepted.
    assert_eq!(
        verify(&k, &rows, Some((seq, hash))),
        brk(30, BreakKind::TailMissing)
    );

    // A registered anchor whose row differs.
    let mut v = ChainVerifier::new(k.clone());
    v.expect_anchor(seq, [7; 32]);
    let mut res = Ok(());
    for r in &rows {
        res = res.and(v.push(r));
    }
    assert_eq!(
        res,
        Err(Break {
            seq: 30,
            kind: BreakKind::TailMissing
        })
    );
}

#[test]
fn first_break_is_sticky() {
    let k = key();
    let mut rows = chain(&k, 10);
    rows[2].hash[5] ^= 0x80;
    rows[6].entry = b"{}".to_vec();
    let mut v = ChainVerifier::new(k);
    let mut errs = Vec::new();
    for r in &rows {
        if let Err(e) = v.push(r) {
            errs.push(e);
        }
    }
    assert!(errs.iter().all(|e| *e
        == Break {
            seq: 3,
            kind: BreakKind::HashMismatch
        }));
    assert_eq!(v.finish(None), brk(3, BreakKind::HashMismatch));
}

#[test]
fn anchor_tampering_refused() {
    let k = key();
    let a = sign_anchor(&k, 12, &[3; 32]);
    assert_eq!(
        verify_anchor(&k, &format!("  {a}\n")).unwrap(),
        (12, [3; 32])
    );
    let edited = a.replace("\"seq\":12", "\"seq\":11");
    assert!(matches!(
        verify_anchor(&k, &edited),
        Err(CryptoError::Integrity)
    ));
    assert!(matches!(
        verify_anchor(&AuditKey::generate(), &a),
        Err(CryptoError::Integrity)
    ));
    for bad in ["", "{}", "not json", r#"{"seq":1,"hash":"00","mac":"00"}"#] {
        assert!(
            matches!(verify_anchor(&k, bad), Err(CryptoError::Anchor(_))),
            "{bad}"
        );
    }
    let extra = a.replace('}', ",\"x\":1}");
    assert!(matches!(
        verify_anchor(&k, &extra),
        Err(CryptoError::Anchor(_))
    ));
}

#[test]
fn audit_key_rules() {
    assert!(AuditKey::new(vec![0; 31]).is_err());
    assert!(AuditKey::new(vec![0; 64]).is_ok());
    let k = AuditKey::new(vec![0xEE; 32]).unwrap();
    assert_eq!(format!("{k:?}"), "AuditKey([redacted])");
    let msg = AuditKey::new(vec![0x41; 8]).unwrap_err().to_string();
    assert!(!msg.contains("AAAA"), "{msg}");
}
