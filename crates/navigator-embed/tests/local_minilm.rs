//! The real all-MiniLM-L6-v2 model. Skipped with a note when the model is not installed (run
//! `scripts/fetch-model.sh`); under `CI=true` a missing model fails instead.

mod common;

use std::sync::OnceLock;

use common::{cats, check_embedder_contract, cosine, max_abs_diff, model_dir, norm};
use navigator_embed::{
    BertForward, EmbedError, Embedder, LocalMiniLm, LocalOptions, MINILM_MAX_INPUT_TOKENS,
    TokenCounter, WordPieceCounter,
};

const CAT: &str = "The cat sits on the mat.";
const KITTEN: &str = "A kitten is resting on a rug.";
const REVENUE: &str = "Quarterly revenue grew by ten percent.";

/// Loaded once per test binary: loading reads 90 MB.
fn model() -> Option<&'static LocalMiniLm> {
    static MODEL: OnceLock<Option<LocalMiniLm>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            model_dir().map(|dir| LocalMiniLm::load(&dir, LocalOptions::default()).unwrap())
        })
        .as_ref()
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

#[test]
fn wordpiece_counter_counts_the_cat_sentence_as_nine_tokens_with_cls_and_sep() {
    let Some(dir) = model_dir() else { return };
    let counter = WordPieceCounter::from_model_dir(&dir).unwrap();
    assert_eq!(counter.count_tokens(CAT), 9);
    assert_eq!(
        counter.token_ids(CAT).unwrap(),
        [101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102]
    );
    assert_eq!(counter.max_input_tokens(), 256);
}

#[test]
fn wordpiece_counter_neither_pads_nor_truncates() {
    let Some(dir) = model_dir() else { return };
    let counter = WordPieceCounter::from_model_dir(&dir).unwrap();
    // The shipped tokenizer.json pads to 128 and truncates at 128; both must be off.
    assert_eq!(counter.count_tokens(""), 2);
    assert_eq!(counter.count_tokens(&cats(298)), 300);
    assert_eq!(counter.count_tokens(&cats(1000)), 1002);
}

#[test]
fn wordpiece_counter_loading_from_a_missing_directory_says_how_to_fix_it() {
    let err =
        WordPieceCounter::from_model_dir(std::path::Path::new("/nonexistent/model")).unwrap_err();
    assert!(err.to_string().contains("fetch-model.sh"), "{err}");
}

#[tokio::test]
async fn local_model_keeps_the_embedder_contract() {
    let Some(model) = model() else { return };
    check_embedder_contract(model).await;
}

#[tokio::test]
async fn local_model_on_candle_bert_model_keeps_the_embedder_contract() {
    let Some(dir) = model_dir() else { return };
    let options = LocalOptions {
        forward: BertForward::Candle,
        ..LocalOptions::default()
    };
    check_embedder_contract(&LocalMiniLm::load(&dir, options).unwrap()).await;
}

#[tokio::test]
async fn fused_forward_gives_the_same_vectors_as_candle_bert_model() {
    let Some(dir) = model_dir() else { return };
    let load = |forward| {
        LocalMiniLm::load(
            &dir,
            LocalOptions {
                forward,
                ..LocalOptions::with_batch_size(4)
            },
        )
        .unwrap()
    };
    let (fused, candle) = (load(BertForward::Fused), load(BertForward::Candle));
    let clause = "The insurer covers sudden and accidental damage to the building. ";
    let texts = strings(&[
        CAT,
        KITTEN,
        REVENUE,
        "",
        // Same length twice: a batch without padding takes the unmasked path.
        &clause.repeat(2),
        &clause.repeat(2),
        &clause.repeat(8),
        &format!("{CAT} {}", cats(MINILM_MAX_INPUT_TOKENS - 9)),
    ]);
    let a = fused.embed(&texts).await.unwrap();
    let b = candle.embed(&texts).await.unwrap();
    for (text, (a, b)) in texts.iter().zip(a.iter().zip(&b)) {
        let diff = max_abs_diff(a, b);
        assert!(diff < 1e-5, "fused and candle differ by {diff} on {text:?}");
    }
}

#[tokio::test]
async fn local_model_identifies_itself_as_minilm_with_384_dimensions() {
    let Some(model) = model() else { return };
    assert_eq!(model.model_id(), "local/all-MiniLM-L6-v2");
    assert_eq!(model.dimensions(), 384);
    assert_eq!(model.max_input_tokens(), 256);
    assert_eq!(model.count_tokens(CAT), 9);
}

#[tokio::test]
async fn cat_is_closer_to_kitten_than_to_revenue_matching_the_reference_values() {
    let Some(model) = model() else { return };
    let v = model
        .embed(&strings(&[CAT, KITTEN, REVENUE]))
        .await
        .unwrap();
    let cat_kitten = cosine(&v[0], &v[1]);
    let cat_revenue = cosine(&v[0], &v[2]);
    assert!(cat_kitten > cat_revenue);
    // Reference values from an independent numpy implementation of the model.
    assert!(
        (cat_kitten - 0.641).abs() < 0.01,
        "cos(cat, kitten) = {cat_kitten}"
    );
    assert!(
        (cat_revenue - -0.027).abs() < 0.01,
        "cos(cat, revenue) = {cat_revenue}"
    );
}

#[tokio::test]
async fn cat_sentence_vector_matches_the_numpy_reference_components() {
    let Some(model) = model() else { return };
    let v = model.embed(&strings(&[CAT])).await.unwrap();
    let reference = [0.1341771_f32, -0.032900266, -0.024803674, 0.04143902];
    let diff = max_abs_diff(&v[0][..4], &reference);
    assert!(
        diff < 1e-5,
        "first components {:?} differ by {diff}",
        &v[0][..4]
    );
}

#[tokio::test]
async fn a_text_embedded_alone_equals_itself_inside_a_batch_of_very_different_lengths() {
    let Some(model) = model() else { return };
    let alone = model.embed(&strings(&[CAT])).await.unwrap();
    let long = "The policyholder must report any loss to the insurer without delay. ".repeat(15);
    assert!(model.count_tokens(&long) > 150);
    let batch = vec![
        long.clone(),
        CAT.to_string(),
        "Claim.".to_string(),
        long[..long.len() / 2].to_string(),
    ];
    // A single batch, so the short text really is padded to the long one's length.
    let one_batch =
        LocalMiniLm::load(&model_dir().unwrap(), LocalOptions::with_batch_size(8)).unwrap();
    let in_batch = one_batch.embed(&batch).await.unwrap();
    let diff = max_abs_diff(&alone[0], &in_batch[1]);
    assert!(diff < 1e-4, "padding leaked into pooling: max diff {diff}");
}

#[tokio::test]
async fn outputs_are_unit_length_and_in_input_order_across_several_batches() {
    let Some(dir) = model_dir() else { return };
    // Batches of two force several forward passes and a reordering by length.
    let model = LocalMiniLm::load(&dir, LocalOptions::with_batch_size(2)).unwrap();
    let texts = strings(&[
        REVENUE,
        "Water damage from a burst pipe is covered under section four of the home policy.",
        CAT,
        "Deductible.",
        KITTEN,
    ]);
    let together = model.embed(&texts).await.unwrap();
    assert_eq!(together.len(), texts.len());
    for (text, vector) in texts.iter().zip(&together) {
        assert!((norm(vector) - 1.0).abs() < 1e-5);
        let alone = model.embed(std::slice::from_ref(text)).await.unwrap();
        assert!(
            max_abs_diff(&alone[0], vector) < 1e-4,
            "output out of order for {text:?}"
        );
    }
}

#[tokio::test]
async fn a_text_of_three_hundred_tokens_is_refused_not_truncated() {
    let Some(model) = model() else { return };
    let text = cats(298);
    assert_eq!(model.count_tokens(&text), 300);
    let err = model
        .embed(&[CAT.to_string(), text])
        .await
        .expect_err("a 300-token text must be refused");
    match err {
        EmbedError::InputTooLong {
            index,
            tokens,
            limit,
        } => {
            assert_eq!((index, tokens, limit), (1, 300, 256));
        }
        other => panic!("expected InputTooLong, got {other}"),
    }
}

#[tokio::test]
async fn a_text_of_exactly_the_token_limit_is_embedded() {
    let Some(model) = model() else { return };
    let text = format!("{CAT} {}", cats(MINILM_MAX_INPUT_TOKENS - 9));
    assert_eq!(model.count_tokens(&text), MINILM_MAX_INPUT_TOKENS);
    let v = model.embed(&[text]).await.unwrap();
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
}

#[test]
fn loading_from_a_missing_directory_is_a_backend_error_naming_the_fix() {
    let err = LocalMiniLm::load(
        std::path::Path::new("/nonexistent/model"),
        LocalOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, EmbedError::Backend(_)));
    assert!(err.to_string().contains("fetch-model.sh"), "{err}");
}
