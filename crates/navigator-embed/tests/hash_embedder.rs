//! The deterministic test embedder.

mod common;

use common::{check_embedder_contract, cosine};
use navigator_embed::{EmbedError, Embedder, HashEmbedder, TokenCounter};

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

#[tokio::test]
async fn hash_embedder_keeps_the_embedder_contract() {
    check_embedder_contract(&HashEmbedder::new()).await;
}

#[tokio::test]
async fn hash_embedder_gives_the_same_text_bit_identical_vectors_in_any_batch() {
    let embedder = HashEmbedder::new();
    let text = "Fire damage to the insured premises";
    let alone = embedder.embed(&strings(&[text])).await.unwrap();
    let batch = embedder
        .embed(&strings(&[
            "unrelated words",
            text,
            &"long text ".repeat(50),
        ]))
        .await
        .unwrap();
    assert_eq!(alone[0], batch[1]);
    assert_eq!(alone[0], embedder.embed_one(text));
}

#[tokio::test]
async fn hash_embedder_scores_texts_sharing_words_above_unrelated_texts() {
    let v = HashEmbedder::new()
        .embed(&strings(&[
            "the policy covers water damage",
            "Water damage is covered by the policy.",
            "quarterly revenue grew ten percent",
        ]))
        .await
        .unwrap();
    let shared = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(shared > 0.5, "shared-word cosine {shared}");
    assert!(shared > unrelated + 0.4, "{shared} vs {unrelated}");
}

#[test]
fn hash_embedder_ignores_case_and_punctuation() {
    let embedder = HashEmbedder::new();
    assert_eq!(
        embedder.embed_one("Water, DAMAGE!"),
        embedder.embed_one("water damage")
    );
}

#[test]
fn hash_embedder_counts_words_plus_two_special_tokens() {
    let embedder = HashEmbedder::new();
    assert_eq!(embedder.count_tokens(""), 2);
    assert_eq!(embedder.count_tokens("The cat sits on the mat."), 8);
    assert_eq!(embedder.max_input_tokens(), 256);
    assert_eq!(embedder.model_id(), "test/hash-384");
    assert_eq!(embedder.dimensions(), 384);
}

#[tokio::test]
async fn hash_embedder_refuses_texts_over_the_limit() {
    let text = vec!["word"; 255].join(" ");
    let err = HashEmbedder::new().embed(&[text]).await.unwrap_err();
    assert!(matches!(
        err,
        EmbedError::InputTooLong {
            index: 0,
            tokens: 257,
            limit: 256
        }
    ));
}
