//! Shared by the integration tests: finding the model, and the contract every [`Embedder`] keeps.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use navigator_embed::{EmbedError, Embedder, default_model_dir};

/// The installed model directory, or `None` (with a printed note) when it is not installed.
/// Under `CI=true` a missing model fails the run instead of skipping it.
pub fn model_dir() -> Option<PathBuf> {
    let dir = default_model_dir();
    if let Some(dir) = &dir
        && dir.join("model.safetensors").is_file()
        && dir.join("tokenizer.json").is_file()
        && dir.join("config.json").is_file()
    {
        return Some(dir.clone());
    }
    let shown = dir.map_or_else(|| "<no home directory>".into(), |d| d.display().to_string());
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("all-MiniLM-L6-v2 is not installed at {shown}: run scripts/fetch-model.sh");
    }
    eprintln!(
        "skipping: all-MiniLM-L6-v2 is not installed at {shown} (run scripts/fetch-model.sh)"
    );
    None
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // Inputs are unit vectors, so the dot product is the cosine.
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `words` copies of "cat", which every tokenizer here counts as one token per word.
pub fn cats(words: usize) -> String {
    vec!["cat"; words].join(" ")
}

/// The [`Embedder`] contract, run against every implementation.
pub async fn check_embedder_contract(embedder: &dyn Embedder) {
    let texts: Vec<String> = [
        "The cat sits on the mat.",
        "Quarterly revenue grew by ten percent, driven by new premium policies in the northern region.",
        "",
        "A kitten is resting on a rug.",
        &"The insured shall notify the insurer of any claim within thirty days. ".repeat(10),
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let max = embedder.max_input_tokens();
    for text in &texts {
        assert!(
            embedder.count_tokens(text) <= max,
            "fixture too long for the model"
        );
    }

    // An empty batch is not an error.
    assert!(embedder.embed(&[]).await.unwrap().is_empty());

    // One unit vector of the advertised size per input.
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), texts.len());
    for vector in &vectors {
        assert_eq!(vector.len(), embedder.dimensions());
        assert!(
            (norm(vector) - 1.0).abs() < 1e-5,
            "not unit length: {}",
            norm(vector)
        );
    }

    // Input order: each text alone gives the vector found at its position (which also shows
    // batching and padding do not change a text's vector).
    for (text, in_batch) in texts.iter().zip(&vectors) {
        let alone = embedder.embed(std::slice::from_ref(text)).await.unwrap();
        let diff = max_abs_diff(&alone[0], in_batch);
        assert!(diff < 1e-4, "vector differs alone vs in batch by {diff}");
    }

    // Reversing the batch reverses the output.
    let reversed: Vec<String> = texts.iter().rev().cloned().collect();
    let reversed_vectors = embedder.embed(&reversed).await.unwrap();
    for (a, b) in vectors.iter().rev().zip(&reversed_vectors) {
        assert!(max_abs_diff(a, b) < 1e-4);
    }

    // Over-long input is refused, naming the offending index, never truncated.
    let too_long = cats(max + 10);
    let batch = vec![texts[0].clone(), too_long];
    match embedder.embed(&batch).await {
        Err(EmbedError::InputTooLong {
            index,
            tokens,
            limit,
        }) => {
            assert_eq!(index, 1);
            assert_eq!(limit, max);
            assert!(tokens > max);
        }
        other => panic!("expected InputTooLong, got {:?}", other.map(|v| v.len())),
    }

    // Exactly at the limit is accepted.
    let at_limit = cats(max - 2);
    assert_eq!(embedder.count_tokens(&at_limit), max);
    let vectors = embedder.embed(&[at_limit]).await.unwrap();
    assert!((norm(&vectors[0]) - 1.0).abs() < 1e-5);
}
