//! Authentication and authorisation (SD-001): the negative JWT catalogue of
//! security-and-reliability §7.2, API keys, the route × role matrix, and owner isolation. The
//! server runs in-process with `auth.mode: jwt`, an HS256 secret and a JWKS served by an
//! in-test HTTP server on 127.0.0.1 that counts its requests; an "attacker" server that tokens
//! point at (`jku`, `x5u`) must receive none.

mod support;

use navigator_domain::OwnerId;
use navigator_server::http::auth::api_keys;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::jwt::{self as t, AUDIENCE, HS256_SECRET, ISSUER, Keys, Signer};
use support::{TestApp, spawn_app_with};

/// An HTTP server on 127.0.0.1 answering every request with `body`, counting requests.
async fn counting_server(body: Value) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        let body = body.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            axum::Json(body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

fn auth_yaml(jwks: &str) -> String {
    format!(
        "auth:\n  mode: jwt\n  jwt:\n    hs256_secret: {HS256_SECRET}\n    {jwks}\n    issuer: {ISSUER}\n    audience: {AUDIENCE}\n    leeway_secs: 30\n    max_lifetime_secs: 3600\n    jwks_cache_secs: 300\n    jwks_min_refresh_secs: 60\n    max_token_bytes: 8192\n"
    )
}

struct Env {
    app: TestApp,
    keys: Keys,
    jwks_hits: Arc<AtomicUsize>,
    attacker: String,
    attacker_hits: Arc<AtomicUsize>,
}

async fn jwt_env() -> Env {
    let keys = Keys::generate();
    let (jwks_base, jwks_hits) = counting_server(keys.jwks()).await;
    let attacker_key = json!({"keys": [t::rsa_jwk("rsa-1", &keys.other_rsa)]});
    let (attacker, attacker_hits) = counting_server(attacker_key).await;
    let yaml = auth_yaml(&format!("jwks_url: {jwks_base}/.well-known/jwks.json"));
    let app = spawn_app_with(move |base| base + &yaml).await;
    Env {
        app,
        keys,
        jwks_hits,
        attacker,
        attacker_hits,
    }
}

/// `GET path` with an optional `Authorization` value: (status, www-authenticate, body).
async fn get_with(app: &TestApp, path: &str, auth: Option<&str>) -> (u16, String, Value) {
    let mut request = app.http.get(app.url(path));
    if let Some(value) = auth {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------------
// The negative catalogue

#[tokio::test]
async fn the_negative_jwt_catalogue_is_rejected_with_a_constant_401() {
    let env = jwt_env().await;
    let k = &env.keys;
    let app = &env.app;
    let hs = Signer::Hmac256(HS256_SECRET.as_bytes());
    let hs_header = json!({"alg": "HS256", "typ": "JWT"});
    let rs_header = json!({"alg": "RS256", "kid": "rsa-1"});
    let good = || t::claims("member-a", &["member"]);
    let with = |patch: Value| {
        let mut c = good();
        for (key, value) in patch.as_object().unwrap() {
            if value.is_null() && key != "nbf" && key != "exp" && key != "roles" {
                c.as_object_mut().unwrap().remove(key);
            } else {
                c[key] = value.clone();
            }
        }
        c
    };
    let without = |key: &str| {
        let mut c = good();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let now = t::now();

    // Positive controls: every key type, and the audience as an array containing ours.
    let valid = [
        ("HS256", t::mint(&hs_header, &good(), &hs)),
        (
            "RS256",
            t::mint(&rs_header, &good(), &Signer::Rsa256(&k.rsa)),
        ),
        (
            "ES256",
            t::mint(
                &json!({"alg": "ES256", "kid": "ec-1"}),
                &good(),
                &Signer::Es256(&k.ec),
            ),
        ),
        (
            "EdDSA",
            t::mint(
                &json!({"alg": "EdDSA", "kid": "ed-1"}),
                &good(),
                &Signer::Ed(&k.ed),
            ),
        ),
        (
            "ES256 without kid (one EC key)",
            t::mint(&json!({"alg": "ES256"}), &good(), &Signer::Es256(&k.ec)),
        ),
        (
            "typ at+jwt",
            t::mint(&json!({"alg": "HS256", "typ": "at+jwt"}), &good(), &hs),
        ),
        (
            "aud array containing ours",
            t::mint(&hs_header, &with(json!({"aud": ["other", AUDIENCE]})), &hs),
        ),
    ];
    for (name, token) in &valid {
        let (status, _, body) = get_with(app, "/v1/documents", Some(&bearer(token))).await;
        assert_eq!(status, 200, "{name} must be accepted: {body}");
    }
    let valid_rs = valid[1].1.clone();
    let valid_hs = valid[0].1.clone();
    let segments: Vec<&str> = valid_rs.split('.').collect();

    let mut cases: Vec<(String, Option<String>)> = vec![
        ("01 no header".into(), None),
        ("02 Basic".into(), Some("Basic dXNlcjpwYXNz".into())),
        ("02 Token scheme".into(), Some(format!("Token {valid_hs}"))),
        ("02 bare Bearer".into(), Some("Bearer".into())),
        ("02 empty token".into(), Some("Bearer ".into())),
        ("02 whitespace token".into(), Some("Bearer     ".into())),
        ("02 token without scheme".into(), Some(valid_hs.clone())),
        (
            "03 two segments".into(),
            Some(bearer(&segments[..2].join("."))),
        ),
        (
            "03 four segments".into(),
            Some(bearer(&format!("{valid_rs}.{}", segments[2]))),
        ),
        (
            "03 five segments (JWE)".into(),
            Some(bearer(&format!("{}.AAAA.BBBB.CCCC.DDDD", segments[0]))),
        ),
        (
            "04 non-base64url character".into(),
            Some(bearer(&format!(
                "{}!.{}.{}",
                segments[0], segments[1], segments[2]
            ))),
        ),
        (
            "04 padding".into(),
            Some(bearer(&format!(
                "{}=.{}.{}",
                segments[0], segments[1], segments[2]
            ))),
        ),
        (
            "04 standard base64 alphabet".into(),
            Some(bearer(&format!(
                "{}.{}.{}",
                segments[0],
                segments[1],
                segments[2].replace('-', "+").replace('_', "/") + "+/"
            ))),
        ),
        (
            "05 header not JSON".into(),
            Some(bearer(&t::mint_raw("not json", &good().to_string(), &hs))),
        ),
        (
            "05 payload not JSON".into(),
            Some(bearer(&t::mint_raw(
                &hs_header.to_string(),
                "{\"sub\":",
                &hs,
            ))),
        ),
        (
            "05 trailing garbage after the header".into(),
            Some(bearer(&t::mint_raw(
                "{\"alg\":\"HS256\"} x",
                &good().to_string(),
                &hs,
            ))),
        ),
        (
            "05 trailing garbage after the payload".into(),
            Some(bearer(&t::mint_raw(
                &hs_header.to_string(),
                &format!("{} x", good()),
                &hs,
            ))),
        ),
        (
            "06 duplicate alg".into(),
            Some(bearer(&t::mint_raw(
                "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
                &good().to_string(),
                &hs,
            ))),
        ),
        (
            "06 duplicate sub".into(),
            Some(bearer(&t::mint_raw(
                &hs_header.to_string(),
                &good().to_string().replacen('{', "{\"sub\":\"admin\",", 1),
                &hs,
            ))),
        ),
        (
            "07 oversized".into(),
            Some(bearer(&t::mint(
                &hs_header,
                &with(json!({"pad": "x".repeat(9000)})),
                &hs,
            ))),
        ),
        (
            "08 deeply nested claim".into(),
            Some(bearer(&t::mint_raw(
                &hs_header.to_string(),
                &good().to_string().replacen(
                    '{',
                    &format!("{{\"deep\":{}{},", "[".repeat(2000), "]".repeat(2000)),
                    1,
                ),
                &hs,
            ))),
        ),
    ];
    // 09 invalid UTF-8 in the payload.
    {
        let header = t::b64(hs_header.to_string().as_bytes());
        let mut payload = good().to_string().into_bytes();
        let at = payload.iter().position(|b| *b == b'm').unwrap();
        payload[at] = 0xff;
        let input = format!("{header}.{}", t::b64(&payload));
        let sig = t::sign(&input, &hs);
        cases.push((
            "09 invalid UTF-8".into(),
            Some(bearer(&format!("{input}.{sig}"))),
        ));
    }
    for alg in ["none", "None", "NONE", "nOnE"] {
        cases.push((
            format!("10 alg {alg}"),
            Some(bearer(&t::mint(
                &json!({"alg": alg}),
                &good(),
                &Signer::Nothing,
            ))),
        ));
    }
    let none_with_sig = format!(
        "{}.{}.{}",
        t::b64(b"{\"alg\":\"none\"}"),
        segments[1],
        segments[2]
    );
    cases.push((
        "11 alg none keeping the signature".into(),
        Some(bearer(&none_with_sig)),
    ));
    let pem = k.rsa_public_pem();
    cases.push((
        "12 HS256 signed with the RSA public key PEM".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "HS256", "kid": "rsa-1"}),
            &good(),
            &Signer::Hmac256(pem.as_bytes()),
        ))),
    ));
    let jwk_json = t::rsa_jwk("rsa-1", &k.rsa).to_string();
    cases.push((
        "12 HS256 signed with the RSA public JWK".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "HS256", "kid": "rsa-1"}),
            &good(),
            &Signer::Hmac256(jwk_json.as_bytes()),
        ))),
    ));
    cases.push((
        "13 HS512".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "HS512"}),
            &good(),
            &Signer::Hmac512(HS256_SECRET.as_bytes()),
        ))),
    ));
    cases.push((
        "13 RS512".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS512", "kid": "rsa-1"}),
            &good(),
            &Signer::Rsa512(&k.rsa),
        ))),
    ));
    cases.push((
        "13 PS384".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "PS384", "kid": "rsa-1"}),
            &good(),
            &Signer::Rsa256(&k.rsa),
        ))),
    ));
    cases.push((
        "14 ES384 token for an ES256 key".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "ES384", "kid": "ec-1"}),
            &good(),
            &Signer::Es256(&k.ec),
        ))),
    ));
    cases.push((
        "14 ES256 token naming the RSA key".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "ES256", "kid": "rsa-1"}),
            &good(),
            &Signer::Es256(&k.ec),
        ))),
    ));
    cases.push((
        "14 RS256 token naming the EC key".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS256", "kid": "ec-1"}),
            &good(),
            &Signer::Rsa256(&k.rsa),
        ))),
    ));
    cases.push((
        "14 EdDSA token naming the RSA key".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "EdDSA", "kid": "rsa-1"}),
            &good(),
            &Signer::Ed(&k.ed),
        ))),
    ));
    cases.push((
        "15 ECDSA r = s = 0".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "ES256", "kid": "ec-1"}),
            &good(),
            &Signer::Raw(t::b64(&[0u8; 64])),
        ))),
    ));
    cases.push((
        "16 empty signature".into(),
        Some(bearer(&t::mint(&rs_header, &good(), &Signer::Nothing))),
    ));
    cases.push((
        "16 truncated signature".into(),
        Some(bearer(&valid_rs[..valid_rs.len() - 4])),
    ));
    cases.push((
        "16 extended signature".into(),
        Some(bearer(&format!("{valid_rs}AAAA"))),
    ));
    cases.push((
        "17 RSA key not in the JWKS".into(),
        Some(bearer(&t::mint(
            &rs_header,
            &good(),
            &Signer::Rsa256(&k.other_rsa),
        ))),
    ));
    cases.push((
        "17 EC key not in the JWKS".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "ES256", "kid": "ec-1"}),
            &good(),
            &Signer::Es256(&k.other_ec),
        ))),
    ));
    cases.push((
        "17 Ed25519 key not in the JWKS".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "EdDSA", "kid": "ed-1"}),
            &good(),
            &Signer::Ed(&k.other_ed),
        ))),
    ));
    cases.push((
        "17 HS256 with another secret".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &good(),
            &Signer::Hmac256(b"another-secret-another-secret-0123456789"),
        ))),
    ));
    cases.push((
        "19 unknown kid".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS256", "kid": "rotated-away"}),
            &good(),
            &Signer::Rsa256(&k.other_rsa),
        ))),
    ));
    for kid in [
        "../../dev/null".to_owned(),
        "x' UNION SELECT 'k'--".to_owned(),
        "k".repeat(10_000),
        "k".repeat(300),
    ] {
        cases.push((
            format!("20 injected kid ({} chars)", kid.len()),
            Some(bearer(&t::mint(
                &json!({"alg": "RS256", "kid": kid}),
                &good(),
                &Signer::Rsa256(&k.other_rsa),
            ))),
        ));
    }
    let attacker_jwks = format!("{}/jwks.json", env.attacker);
    cases.push((
        "21 jku to the attacker".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS256", "kid": "rsa-1", "jku": attacker_jwks}),
            &good(),
            &Signer::Rsa256(&k.other_rsa),
        ))),
    ));
    cases.push((
        "21 jku without kid".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS256", "jku": attacker_jwks}),
            &good(),
            &Signer::Rsa256(&k.other_rsa),
        ))),
    ));
    cases.push((
        "22 x5u to the attacker".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS256", "kid": "rsa-1", "x5u": format!("{}/cert.pem", env.attacker)}),
            &good(),
            &Signer::Rsa256(&k.other_rsa),
        ))),
    ));
    cases.push((
        "23 embedded jwk".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS256", "jwk": t::rsa_jwk("rsa-1", &k.other_rsa)}),
            &good(),
            &Signer::Rsa256(&k.other_rsa),
        ))),
    ));
    cases.push((
        "23 embedded jwk with kid".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS256", "kid": "rsa-1", "jwk": t::rsa_jwk("rsa-1", &k.other_rsa)}),
            &good(),
            &Signer::Rsa256(&k.other_rsa),
        ))),
    ));
    cases.push((
        "24 embedded x5c".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "RS256", "kid": "rsa-1", "x5c": ["MIIBszCCAVmgAwIBAgIU"]}),
            &good(),
            &Signer::Rsa256(&k.other_rsa),
        ))),
    ));
    cases.push((
        "25 crit".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "HS256", "crit": ["exp"]}),
            &good(),
            &hs,
        ))),
    ));
    cases.push((
        "26 b64 false".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "HS256", "b64": false, "crit": ["b64"]}),
            &good(),
            &hs,
        ))),
    ));
    cases.push((
        "26 b64 false without crit".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "HS256", "b64": false}),
            &good(),
            &hs,
        ))),
    ));
    cases.push((
        "27 typ not a JWT".into(),
        Some(bearer(&t::mint(
            &json!({"alg": "HS256", "typ": "JWE"}),
            &good(),
            &hs,
        ))),
    ));
    cases.push((
        "29 missing exp".into(),
        Some(bearer(&t::mint(&hs_header, &without("exp"), &hs))),
    ));
    cases.push((
        "29 missing iat".into(),
        Some(bearer(&t::mint(&hs_header, &without("iat"), &hs))),
    ));
    cases.push((
        "30 expired beyond leeway".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"iat": now - 600, "exp": now - 120})),
            &hs,
        ))),
    ));
    cases.push((
        "31 nbf beyond leeway".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"nbf": now + 120})),
            &hs,
        ))),
    ));
    cases.push((
        "32 iat in the future".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"iat": now + 120, "exp": now + 600})),
            &hs,
        ))),
    ));
    cases.push((
        "32 lifetime over the cap".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"iat": now, "exp": now + 3601})),
            &hs,
        ))),
    ));
    cases.push((
        "32 exp before iat".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"iat": now, "exp": now - 1})),
            &hs,
        ))),
    ));
    for (name, value) in [
        ("string", json!("9999999999")),
        ("float", json!(9999999999.5)),
        ("float without fraction", json!(1e10)),
        ("boolean", json!(true)),
        ("array", json!([now + 600])),
        ("null", Value::Null),
        ("negative", json!(-1)),
    ] {
        cases.push((
            format!("33/34 exp as {name}"),
            Some(bearer(&t::mint(
                &hs_header,
                &with(json!({"exp": value})),
                &hs,
            ))),
        ));
    }
    cases.push((
        "34 exp as 1e400".into(),
        Some(bearer(&t::mint_raw(
            &hs_header.to_string(),
            &good()
                .to_string()
                .replacen('{', "{\"exp\":1e400,", 1)
                .replace(&format!(",\"exp\":{}", now + 600), ""),
            &hs,
        ))),
    ));
    for (name, value) in [
        ("string", json!(now.to_string())),
        ("float", json!(now as f64 + 0.5)),
        ("boolean", json!(false)),
        ("null", Value::Null),
    ] {
        cases.push((
            format!("33/34 nbf as {name}"),
            Some(bearer(&t::mint(
                &hs_header,
                &with(json!({"nbf": value})),
                &hs,
            ))),
        ));
    }
    cases.push((
        "35 missing iss".into(),
        Some(bearer(&t::mint(&hs_header, &without("iss"), &hs))),
    ));
    cases.push((
        "35 wrong iss".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"iss": "https://evil.example"})),
            &hs,
        ))),
    ));
    cases.push((
        "35 iss with a trailing slash".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"iss": format!("{ISSUER}/")})),
            &hs,
        ))),
    ));
    cases.push((
        "35 iss in another case".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"iss": ISSUER.to_uppercase()})),
            &hs,
        ))),
    ));
    cases.push((
        "36 missing aud".into(),
        Some(bearer(&t::mint(&hs_header, &without("aud"), &hs))),
    ));
    cases.push((
        "36 wrong aud".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"aud": "someone-else"})),
            &hs,
        ))),
    ));
    cases.push((
        "36 aud array without ours".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"aud": ["a", "b"]})),
            &hs,
        ))),
    ));
    cases.push((
        "36 aud as a number".into(),
        Some(bearer(&t::mint(&hs_header, &with(json!({"aud": 42})), &hs))),
    ));
    cases.push((
        "37 missing sub".into(),
        Some(bearer(&t::mint(&hs_header, &without("sub"), &hs))),
    ));
    cases.push((
        "37 empty sub".into(),
        Some(bearer(&t::mint(&hs_header, &with(json!({"sub": ""})), &hs))),
    ));
    cases.push((
        "37 sub with whitespace".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"sub": "a b"})),
            &hs,
        ))),
    ));
    cases.push((
        "roles as a string".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"roles": "admin"})),
            &hs,
        ))),
    ));
    cases.push((
        "roles with a number".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"roles": ["member", 1]})),
            &hs,
        ))),
    ));
    cases.push((
        "roles as null".into(),
        Some(bearer(&t::mint(
            &hs_header,
            &with(json!({"roles": null})),
            &hs,
        ))),
    ));
    cases.push((
        "api-key shaped garbage".into(),
        Some(bearer("nav_0123456789abcdef_00")),
    ));

    for (name, header) in &cases {
        let (status, challenge, body) = get_with(app, "/v1/documents", header.as_deref()).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["code"], "unauthorized", "{name}");
        assert_eq!(body["detail"], "missing or invalid credentials", "{name}");
        let presented = header
            .as_deref()
            .is_some_and(|h| h.len() > 7 && h.starts_with("Bearer ") && !h[7..].trim().is_empty());
        let expected = if presented {
            "Bearer error=\"invalid_token\""
        } else {
            "Bearer"
        };
        assert_eq!(challenge, expected, "{name}");
        if let Some(h) = header
            && h.len() > 20
        {
            assert!(
                !body.to_string().contains(&h[h.len() - 20..]),
                "{name}: the token is echoed"
            );
        }
    }
    // 43: a token in the query string is ignored.
    let (status, challenge, _) =
        get_with(app, &format!("/v1/documents?access_token={valid_hs}"), None).await;
    assert_eq!((status, challenge.as_str()), (401, "Bearer"));

    // 19: a burst of unknown kids does not amplify into JWKS fetches.
    for i in 0..100 {
        let token = t::mint(
            &json!({"alg": "ES256", "kid": format!("unknown-{i}")}),
            &good(),
            &Signer::Es256(&k.other_ec),
        );
        let (status, _, _) = get_with(app, "/v1/documents", Some(&bearer(&token))).await;
        assert_eq!(status, 401);
    }
    let fetches = env.jwks_hits.load(Ordering::SeqCst);
    assert!((1..=2).contains(&fetches), "{fetches} JWKS fetches");
    assert_eq!(
        env.attacker_hits.load(Ordering::SeqCst),
        0,
        "the attacker server was contacted"
    );

    // The valid tokens still work after all that, and failures are counted by reason.
    let (status, _, _) = get_with(app, "/v1/documents", Some(&bearer(&valid_rs))).await;
    assert_eq!(status, 200);
    let admin = t::hs256("root", &["admin"]);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .header("authorization", bearer(&admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in [
        "missing",
        "scheme",
        "malformed",
        "too_large",
        "algorithm",
        "signature",
        "unknown_key",
        "claims",
        "expired",
        "issuer",
        "audience",
        "subject",
    ] {
        assert!(
            metrics.contains(&format!(
                "navigator_auth_failures_total{{reason=\"{reason}\"}}"
            )),
            "no failure counted for {reason}"
        );
    }
    assert!(
        !metrics.contains(&valid_hs[..30]),
        "tokens never reach metrics"
    );
    println!(
        "{} negative cases, {} positive controls",
        cases.len() + 1,
        valid.len()
    );
    env.app.stop().await;
}

#[tokio::test]
async fn leeway_boundaries_are_exact() {
    let env = jwt_env().await;
    let hs = Signer::Hmac256(HS256_SECRET.as_bytes());
    let header = json!({"alg": "HS256"});
    let leeway = 30;
    let cases = |now: i64| {
        let base = t::claims("member-a", &["member"]);
        let mut exp_out = base.clone();
        exp_out["iat"] = json!(now - 600);
        exp_out["exp"] = json!(now - leeway - 1);
        let mut exp_in = exp_out.clone();
        exp_in["exp"] = json!(now - leeway + 1);
        let mut nbf_out = base.clone();
        nbf_out["nbf"] = json!(now + leeway + 1);
        let mut nbf_in = base.clone();
        nbf_in["nbf"] = json!(now + leeway - 1);
        let mut iat_out = base.clone();
        iat_out["iat"] = json!(now + leeway + 1);
        let mut iat_in = base;
        iat_in["iat"] = json!(now + leeway - 1);
        [
            ("exp = now - leeway - 1", exp_out, 401),
            ("exp = now - leeway + 1", exp_in, 200),
            ("nbf = now + leeway + 1", nbf_out, 401),
            ("nbf = now + leeway - 1", nbf_in, 200),
            ("iat = now + leeway + 1", iat_out, 401),
            ("iat = now + leeway - 1", iat_in, 200),
        ]
    };
    t::start_of_second().await;
    for (name, claims, expected) in cases(t::now()) {
        let token = t::mint(&header, &claims, &hs);
        let (status, _, body) = get_with(&env.app, "/v1/documents", Some(&bearer(&token))).await;
        assert_eq!(status, expected, "{name}: {body}");
    }
    // The lifetime cap is inclusive.
    let now = t::now();
    let mut at_cap = t::claims("member-a", &["member"]);
    at_cap["exp"] = json!(now + 3600);
    at_cap["iat"] = json!(now);
    let (status, _, _) = get_with(
        &env.app,
        "/v1/documents",
        Some(&bearer(&t::mint(&header, &at_cap, &hs))),
    )
    .await;
    assert_eq!(status, 200);
    env.app.stop().await;
}

#[tokio::test]
async fn a_jwks_file_serves_keys_and_bad_role_config_refuses_to_start() {
    let keys = Keys::generate();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, keys.jwks().to_string()).unwrap();
    let yaml = auth_yaml(&format!("jwks_file: {}", path.display())).replace(
        "    hs256_secret",
        "    algorithms: [EdDSA]\n    hs256_secret",
    );
    let app = spawn_app_with(move |base| base + &yaml).await;
    let good = t::claims("member-a", &["member"]);
    let ed = t::mint(
        &json!({"alg": "EdDSA", "kid": "ed-1"}),
        &good,
        &Signer::Ed(&keys.ed),
    );
    assert_eq!(
        get_with(&app, "/v1/documents", Some(&bearer(&ed))).await.0,
        200
    );
    // Only EdDSA is allowed: the other keys and the secret are refused.
    let es = t::mint(
        &json!({"alg": "ES256", "kid": "ec-1"}),
        &good,
        &Signer::Es256(&keys.ec),
    );
    assert_eq!(
        get_with(&app, "/v1/documents", Some(&bearer(&es))).await.0,
        401
    );
    assert_eq!(
        get_with(
            &app,
            "/v1/documents",
            Some(&bearer(&t::hs256("member-a", &["member"])))
        )
        .await
        .0,
        401
    );
    app.stop().await;

    let data_dir = tempfile::tempdir().unwrap();
    let yaml = support::base_yaml(data_dir.path(), "hash")
        + &auth_yaml(&format!("jwks_file: {}", path.display()))
        + "  roles:\n    member: [documents:read, documents:frobnicate]\n";
    let config_path = data_dir.path().join("navigator.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let config = navigator_server::config::load(Some(&config_path), &support::env_for_tests())
        .expect("the YAML itself is valid");
    let error = navigator_server::app::App::build(config, support::sandbox_options())
        .await
        .err()
        .expect("an unknown permission refuses to start")
        .to_string();
    assert!(
        error.contains("auth.roles.member") && error.contains("documents:frobnicate"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// API keys

#[tokio::test]
async fn api_keys_authenticate_services_with_their_roles() {
    let env = jwt_env().await;
    let app = &env.app;
    let store = app.state.store.clone();
    let now = time::OffsetDateTime::now_utc();
    let owner = OwnerId::parse("ingest-service").unwrap();
    let (key, record) = api_keys::create_api_key(
        store.as_ref(),
        owner.clone(),
        vec!["member".into()],
        "ingest".into(),
        None,
        now,
    )
    .await
    .unwrap();
    assert!(key.starts_with("nav_") && key.contains(&record.id));
    assert_ne!(record.secret_sha256, [0u8; 32]);
    let (status, _, body) = get_with(app, "/v1/documents", Some(&bearer(&key))).await;
    assert_eq!(status, 200, "{body}");
    let upload = app
        .http
        .post(app.url("/v1/documents"))
        .header("authorization", bearer(&key))
        .header("content-type", "text/plain")
        .header("x-filename", "note.txt")
        .body("Prior authorization is required for imaging.")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 202);
    // Its roles apply: a member key cannot read metrics.
    assert_eq!(get_with(app, "/metrics", Some(&bearer(&key))).await.0, 403);
    // last_used_at was recorded.
    let stored = store.get_api_key(&record.id).await.unwrap().unwrap();
    assert!(stored.last_used_at.is_some());
    assert!(
        api_keys::list_api_keys(store.as_ref())
            .await
            .unwrap()
            .iter()
            .any(|k| k.id == record.id)
    );

    // A wrong secret, an unknown id.
    let wrong = format!("nav_{}_{}", record.id, "0".repeat(64));
    assert_eq!(
        get_with(app, "/v1/documents", Some(&bearer(&wrong)))
            .await
            .0,
        401
    );
    assert_eq!(
        get_with(
            app,
            "/v1/documents",
            Some(&bearer(&format!("nav_ffffffffffffffff_{}", "0".repeat(64))))
        )
        .await
        .0,
        401
    );

    // An operator key sees jobs but not documents; a key with no roles nothing.
    let (operator, _) = api_keys::create_api_key(
        store.as_ref(),
        owner.clone(),
        vec!["operator".into()],
        "ops".into(),
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        get_with(app, "/v1/jobs", Some(&bearer(&operator))).await.0,
        200
    );
    assert_eq!(
        get_with(app, "/v1/documents", Some(&bearer(&operator)))
            .await
            .0,
        403
    );
    let (bare, _) = api_keys::create_api_key(
        store.as_ref(),
        owner.clone(),
        vec![],
        "bare".into(),
        None,
        now,
    )
    .await
    .unwrap();
    assert_eq!(get_with(app, "/v1/jobs", Some(&bearer(&bare))).await.0, 403);

    // Revoked.
    assert!(
        api_keys::revoke_api_key(store.as_ref(), &record.id, now)
            .await
            .unwrap()
    );
    assert_eq!(
        get_with(app, "/v1/documents", Some(&bearer(&key))).await.0,
        401
    );

    // Expired: the expiry is the first instant the key no longer works.
    let (short, short_record) = api_keys::create_api_key(
        store.as_ref(),
        owner,
        vec!["member".into()],
        "short".into(),
        Some(time::OffsetDateTime::now_utc() + Duration::from_secs(2)),
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(
        get_with(app, "/v1/documents", Some(&bearer(&short)))
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        get_with(app, "/v1/documents", Some(&bearer(&short)))
            .await
            .0,
        401
    );
    assert!(short_record.expires_at.is_some());
    env.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Route × role matrix and owner isolation

async fn call(app: &TestApp, method: &str, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut request = app
        .http
        .request(method.to_uppercase().parse().unwrap(), app.url(path))
        .timeout(Duration::from_secs(20));
    if let Some(token) = auth {
        request = request.header("authorization", bearer(token));
    }
    request = match (method, path) {
        ("post", "/v1/documents") => request
            .header("content-type", "text/plain")
            .header("x-filename", "matrix.txt")
            .body(format!("Matrix upload {}", uuid::Uuid::now_v7())),
        ("post", "/v1/search") => request.json(&json!({"query": "deductible"})),
        ("put", _) => request.json(&json!({"soft_usd": 10.0})),
        ("post", _) => request.body("{}"),
        _ => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let is_json = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("json"));
    let body = if is_json {
        response.json().await.unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    (status, body)
}

async fn wait_for_job(app: &TestApp, token: &str, job_id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = call(app, "get", &format!("/v1/jobs/{job_id}"), Some(token)).await;
        assert_eq!(status, 200, "{job}");
        if matches!(
            job["status"].as_str(),
            Some("complete" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job did not finish: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn upload_as(app: &TestApp, token: &str, text: &str) -> (String, String) {
    let response = app
        .http
        .post(app.url("/v1/documents"))
        .header("authorization", bearer(token))
        .header("content-type", "text/plain")
        .header("x-filename", "policy.txt")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let job = body["job_id"].as_str().unwrap().to_owned();
    wait_for_job(app, token, &job).await;
    (body["document_id"].as_str().unwrap().to_owned(), job)
}

/// What a principal gets on a route: 401, 403, or through (anything but an auth refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Unauthorized,
    Forbidden,
    Through,
}
use Outcome::{Forbidden as F, Through as T, Unauthorized as U};

/// Principals, in the matrix's column order.
const PRINCIPALS: [&str; 6] = [
    "anonymous",
    "member",
    "operator",
    "auditor",
    "admin",
    "service",
];

/// The whole expected matrix: every route of the table, every principal.
const MATRIX: &[(&str, &str, [Outcome; 6])] = &[
    //                                       anon member operator auditor admin service
    ("post", "/v1/documents", [U, T, F, F, T, F]),
    ("get", "/v1/documents", [U, T, F, F, T, F]),
    ("get", "/v1/documents/{id}", [U, T, F, F, T, F]),
    ("delete", "/v1/documents/{id}", [U, T, F, F, T, F]),
    ("get", "/v1/jobs", [U, T, T, F, T, F]),
    ("get", "/v1/jobs/{id}", [U, T, T, F, T, F]),
    ("post", "/v1/jobs/{id}/retry", [U, T, T, F, T, F]),
    ("get", "/v1/jobs/{id}/events", [U, T, T, F, T, F]),
    ("post", "/v1/search", [U, T, F, F, T, F]),
    ("post", "/v1/webhooks/parser/{job_id}", [T, T, T, T, T, T]),
    ("get", "/v1/usage", [U, T, T, T, T, F]),
    ("get", "/v1/budgets/{owner}", [U, T, T, T, T, F]),
    ("put", "/v1/budgets/{owner}", [U, F, T, F, T, F]),
    ("get", "/v1/audit", [U, F, F, T, T, F]),
    ("get", "/healthz", [T, T, T, T, T, T]),
    ("get", "/readyz", [T, T, T, T, T, T]),
    ("get", "/metrics", [U, F, T, F, T, F]),
    ("get", "/version", [T, T, T, T, T, T]),
    ("get", "/openapi.json", [T, T, T, T, T, T]),
    ("get", "/docs", [T, T, T, T, T, T]),
];

#[tokio::test]
async fn every_route_enforces_its_permission_for_every_role() {
    let env = jwt_env().await;
    let app = &env.app;
    let member = t::hs256("member-a", &["member"]);
    let (service, _) = api_keys::create_api_key(
        app.state.store.as_ref(),
        OwnerId::parse("svc").unwrap(),
        vec!["service".into()],
        "matrix".into(),
        None,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let tokens: [Option<String>; 6] = [
        None,
        Some(member.clone()),
        Some(t::hs256("ops-1", &["operator"])),
        Some(t::hs256("audit-1", &["auditor"])),
        Some(t::hs256("root", &["admin"])),
        Some(service),
    ];
    let (document, job) = upload_as(app, &member, "Member A's plan covers physiotherapy.").await;

    // The expected matrix covers exactly the served routes.
    let routes = navigator_server::http::openapi::ROUTES;
    assert_eq!(
        routes.len(),
        MATRIX.len(),
        "a route is missing from the expected matrix"
    );
    for route in routes {
        let row = MATRIX
            .iter()
            .find(|(m, p, _)| *m == route.method && *p == route.path)
            .unwrap_or_else(|| panic!("{} {} has no row in the matrix", route.method, route.path));
        let public = row.2[0] == T;
        assert_eq!(
            route.permission.is_none(),
            public,
            "{} {}",
            route.method,
            route.path
        );
    }

    let mut checked = 0;
    for (method, template, expected) in MATRIX {
        for (column, token) in tokens.iter().enumerate() {
            // Deletes target a document that does not exist, so the walk keeps its data.
            let id = if *method == "delete" {
                uuid::Uuid::now_v7().to_string()
            } else if template.starts_with("/v1/jobs") {
                job.clone()
            } else {
                document.clone()
            };
            let path = template
                .replace("{id}", &id)
                .replace("{job_id}", &job)
                .replace("{owner}", "member-a");
            let (status, body) = call(app, method, &path, token.as_deref()).await;
            let code = body["code"].as_str().unwrap_or("");
            let outcome = match (status, code) {
                (401, "unauthorized") => U,
                (403, "forbidden") => F,
                _ => T,
            };
            assert_eq!(
                outcome, expected[column],
                "{method} {template} as {}: {status} {body}",
                PRINCIPALS[column]
            );
            if outcome == T {
                assert!(
                    status != 401 && status != 403 || *template == "/v1/webhooks/parser/{job_id}",
                    "{method} {template} as {}: {status} {body}",
                    PRINCIPALS[column]
                );
            }
            checked += 1;
        }
    }
    println!("{checked} route x principal cells checked");
    env.app.stop().await;
}

#[tokio::test]
async fn members_never_see_each_others_data_and_operators_see_no_content() {
    let env = jwt_env().await;
    let app = &env.app;
    let a = t::hs256("member-a", &["member"]);
    let b = t::hs256("member-b", &["member"]);
    let operator = t::hs256("ops-1", &["operator"]);
    let admin = t::hs256("root", &["admin"]);
    let (doc_a, job_a) = upload_as(
        app,
        &a,
        "Orthodontic braces are covered up to 1500 dollars per lifetime.",
    )
    .await;
    let (doc_b, _) = upload_as(
        app,
        &b,
        "Vision exams are covered once every twelve months.",
    )
    .await;

    for (method, path) in [
        ("get", format!("/v1/documents/{doc_a}")),
        ("get", format!("/v1/jobs/{job_a}")),
        ("get", format!("/v1/jobs/{job_a}/events")),
        ("post", format!("/v1/jobs/{job_a}/retry")),
        ("delete", format!("/v1/documents/{doc_a}")),
        ("get", "/v1/budgets/member-a".to_owned()),
    ] {
        let (status, body) = call(app, method, &path, Some(&b)).await;
        assert_eq!(status, 404, "member B {method} {path}: {body}");
    }
    let (_, list) = call(app, "get", "/v1/documents", Some(&b)).await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["document_id"].as_str().or(d["id"].as_str()))
        .collect();
    assert!(
        !ids.contains(&doc_a.as_str()) && ids.contains(&doc_b.as_str()),
        "{list}"
    );
    let (_, jobs) = call(app, "get", "/v1/jobs", Some(&b)).await;
    assert!(!jobs.to_string().contains(&job_a), "{jobs}");
    for mode in ["hybrid", "keyword", "vector"] {
        let response = app
            .http
            .post(app.url("/v1/search"))
            .header("authorization", bearer(&b))
            .json(&json!({"query": "orthodontic braces covered lifetime", "mode": mode}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let results: Value = response.json().await.unwrap();
        assert!(
            !results.to_string().contains(&doc_a),
            "mode {mode}: {results}"
        );
        // Naming A's document explicitly does not help either.
        let response = app
            .http
            .post(app.url("/v1/search"))
            .header("authorization", bearer(&b))
            .json(&json!({"query": "orthodontic braces", "mode": mode, "document_ids": [doc_a]}))
            .send()
            .await
            .unwrap();
        let results: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            !results.to_string().contains("Orthodontic"),
            "mode {mode}: {results}"
        );
    }
    // A still sees its own.
    let (status, _) = call(app, "get", &format!("/v1/documents/{doc_a}"), Some(&a)).await;
    assert_eq!(status, 200);

    // The operator sees every owner's jobs, but no document content.
    let (status, jobs) = call(app, "get", &format!("/v1/jobs/{job_a}"), Some(&operator)).await;
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(
        call(
            app,
            "get",
            &format!("/v1/documents/{doc_a}"),
            Some(&operator)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(app, "post", "/v1/search", Some(&operator)).await.0,
        403
    );
    // A member who is also an operator sees every owner's jobs, but still only its own content.
    let both = t::hs256("ops-member", &["member", "operator"]);
    let (status, _) = call(app, "get", &format!("/v1/jobs/{job_a}"), Some(&both)).await;
    assert_eq!(status, 200);
    let (status, body) = call(app, "get", &format!("/v1/documents/{doc_a}"), Some(&both)).await;
    assert_eq!(status, 404, "{body}");
    let (_, list) = call(app, "get", "/v1/documents", Some(&both)).await;
    assert!(!list.to_string().contains(&doc_a), "{list}");
    let response = app
        .http
        .post(app.url("/v1/search"))
        .header("authorization", bearer(&both))
        .json(&json!({"query": "orthodontic braces covered lifetime", "mode": "keyword"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let results: Value = response.json().await.unwrap();
    assert!(!results.to_string().contains(&doc_a), "{results}");
    // The admin sees across owners.
    assert_eq!(
        call(app, "get", &format!("/v1/documents/{doc_a}"), Some(&admin))
            .await
            .0,
        200
    );
    // B deleting A's document changed nothing.
    assert_eq!(
        call(app, "get", &format!("/v1/documents/{doc_a}"), Some(&a))
            .await
            .0,
        200
    );
    env.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Audit of refusals: where from, bounded, and rate-limited

async fn audit_rows(app: &TestApp, action: &str) -> Vec<navigator_store::AuditRecord> {
    app.state
        .store
        .audit_entries(&navigator_store::AuditFilter {
            action: Some(action.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn refusals_are_audited_with_the_peer_address_and_a_bounded_request_id() {
    let env = jwt_env().await;
    let app = &env.app;
    let huge = "r".repeat(10_000);
    let response = app
        .http
        .get(app.url("/v1/documents"))
        .header("x-request-id", &huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let member = t::hs256("member-a", &["member"]);
    let response = app
        .http
        .get(app.url("/metrics"))
        .header("authorization", bearer(&member))
        .header("x-request-id", &huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    for action in ["auth.failure", "auth.denied"] {
        let rows = audit_rows(app, action).await;
        assert_eq!(rows.len(), 1, "{action}: {rows:?}");
        let row = &rows[0];
        let id = row.request_id.as_deref().unwrap_or("");
        assert!(
            !id.is_empty() && id.len() <= 64,
            "{action}: {} chars",
            id.len()
        );
        assert_eq!(row.source_ip.as_deref(), Some("127.0.0.1"), "{action}");
        // The sealed entry says the same (what `audit verify` checks).
        let entry: Value = serde_json::from_slice(&row.entry).unwrap();
        assert_eq!(entry["source_ip"], "127.0.0.1", "{action}");
        assert!(
            entry["request_id"].as_str().unwrap().len() <= 64,
            "{action}"
        );
    }
    env.app.stop().await;
}

#[tokio::test]
async fn a_flood_of_refusals_cannot_grow_the_audit_log_without_bound() {
    let env = jwt_env().await;
    let app = &env.app;
    for i in 0..100 {
        let (status, _, _) = get_with(app, "/v1/documents", None).await;
        assert_eq!(status, 401, "request {i}");
    }
    let failures = audit_rows(app, "auth.failure").await.len();
    // 30 a minute per peer, with the bucket's burst (and at most a refill or two during the
    // loop).
    assert!((1..=32).contains(&failures), "{failures} auth.failure rows");

    // Denials: per principal.
    let member = t::hs256("member-a", &["member"]);
    for i in 0..100 {
        let (status, _, _) = get_with(app, "/metrics", Some(&bearer(&member))).await;
        assert_eq!(status, 403, "request {i}");
    }
    let denials = audit_rows(app, "auth.denied").await;
    assert!(
        (1..=32).contains(&denials.len()),
        "{} auth.denied rows",
        denials.len()
    );
    // Another principal still gets its own share.
    let other = t::hs256("member-b", &["member"]);
    assert_eq!(
        get_with(app, "/metrics", Some(&bearer(&other))).await.0,
        403
    );
    let after = audit_rows(app, "auth.denied").await;
    assert!(after.iter().any(|r| r.actor == "member-b"), "{after:?}");

    // The suppressed ones are counted.
    let admin = t::hs256("root", &["admin"]);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .header("authorization", bearer(&admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for action in ["auth.failure", "auth.denied"] {
        assert!(
            metrics.contains(&format!(
                "navigator_audit_suppressed_total{{action=\"{action}\"}}"
            )),
            "no suppressed {action} counted"
        );
    }
    env.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// owners:all

#[tokio::test]
async fn seeing_every_owner_follows_owners_all_not_role_names() {
    let keys = Keys::generate();
    let (jwks_base, _) = counting_server(keys.jwks()).await;
    let yaml = auth_yaml(&format!("jwks_url: {jwks_base}/.well-known/jwks.json"))
        + "  roles:\n    auditor: [documents:read, usage:read]\n    compliance: [audit:read, usage:read, owners:all]\n    reader: [audit:read, usage:read]\n";
    let app = spawn_app_with(move |base| base + &yaml).await;
    let member = t::hs256("member-a", &["member"]);
    let (document, _) = upload_as(&app, &member, "Member A's plan covers acupuncture.").await;
    let budget = "/v1/budgets/member-a";

    // A role named auditor, overridden with documents:read: its own documents only.
    let auditor = t::hs256("audit-1", &["auditor"]);
    let path = format!("/v1/documents/{document}");
    assert_eq!(call(&app, "get", &path, Some(&auditor)).await.0, 404);
    let (_, list) = call(&app, "get", "/v1/documents", Some(&auditor)).await;
    assert!(!list.to_string().contains(&document), "{list}");
    assert_eq!(call(&app, "get", budget, Some(&auditor)).await.0, 404);
    // A custom role with owners:all sees every owner; without it, only its own.
    let compliance = t::hs256("comp-1", &["compliance"]);
    let (status, body) = call(&app, "get", budget, Some(&compliance)).await;
    assert_eq!(status, 200, "{body}");
    let reader = t::hs256("read-1", &["reader"]);
    assert_eq!(call(&app, "get", budget, Some(&reader)).await.0, 404);
    // The built-in roles keep their reach.
    let operator = t::hs256("ops-1", &["operator"]);
    assert_eq!(call(&app, "get", budget, Some(&operator)).await.0, 200);
    let admin = t::hs256("root", &["admin"]);
    assert_eq!(call(&app, "get", &path, Some(&admin)).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn cross_owner_content_access_is_admin_only_in_config() {
    let keys = Keys::generate();
    let jwks_dir = tempfile::tempdir().unwrap();
    let jwks = jwks_dir.path().join("jwks.json");
    std::fs::write(&jwks, keys.jwks().to_string()).unwrap();
    let build = |roles: &str| {
        let data_dir = tempfile::tempdir().unwrap();
        let yaml = support::base_yaml(data_dir.path(), "hash")
            + &auth_yaml(&format!("jwks_file: {}", jwks.display()))
            + "  roles:\n"
            + roles;
        let config_path = data_dir.path().join("navigator.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let config = navigator_server::config::load(Some(&config_path), &support::env_for_tests())
            .expect("the YAML itself is valid");
        async move {
            let result =
                navigator_server::app::App::build(config, support::sandbox_options()).await;
            drop(data_dir);
            result.err().map(|e| format!("{e:#}"))
        }
    };
    for (role, content) in [
        ("auditor", "documents:read"),
        ("operator", "search"),
        ("support", "documents:delete"),
        ("service", "documents:write"),
    ] {
        let error = build(&format!("    {role}: [owners:all, {content}]\n"))
            .await
            .unwrap_or_else(|| panic!("{role} with owners:all and {content} must not start"));
        assert!(
            error.contains(&format!("auth.roles.{role}"))
                && error.contains("owners:all")
                && error.contains(content)
                && error.contains("admin"),
            "{error}"
        );
    }
    // Allowed: admin with both; another role with owners:all and no content.
    for roles in [
        "    admin: [owners:all, documents:read, search]\n",
        "    compliance: [owners:all, audit:read, usage:read]\n",
    ] {
        let error = build(roles).await;
        assert_eq!(error, None, "{roles}");
    }
}

#[tokio::test]
async fn unknown_kid_refetches_default_to_once_a_minute() {
    assert_eq!(navigator_server::config::DEFAULT_JWKS_MIN_REFRESH_SECS, 60);
    let keys = Keys::generate();
    let (jwks_base, hits) = counting_server(keys.jwks()).await;
    // jwks_min_refresh_secs left at its default.
    let yaml = auth_yaml(&format!("jwks_url: {jwks_base}/.well-known/jwks.json"))
        .replace("    jwks_min_refresh_secs: 60\n", "");
    let app = spawn_app_with(move |base| base + &yaml).await;
    for i in 0..50 {
        let token = t::mint(
            &json!({"alg": "ES256", "kid": format!("unknown-{i}")}),
            &t::claims("member-a", &["member"]),
            &Signer::Es256(&keys.other_ec),
        );
        assert_eq!(
            get_with(&app, "/v1/documents", Some(&bearer(&token)))
                .await
                .0,
            401
        );
    }
    let fetches = hits.load(Ordering::SeqCst);
    assert!((1..=2).contains(&fetches), "{fetches} JWKS fetches");
    app.stop().await;
}
