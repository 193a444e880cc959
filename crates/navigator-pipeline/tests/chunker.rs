//! The chunker's contract (SPEC §3 `chunk`): bounded in the embedder's own tokens, nothing lost,
//! pages and heading paths right, deterministic. Property tests use simple counters; the
//! `real_tokenizer` tests use all-MiniLM-L6-v2's WordPiece tokenizer (`scripts/fetch-model.sh`).

use std::collections::BTreeSet;
use std::time::Instant;

use navigator_domain::{ChunkId, DocumentId, MediaType};
use navigator_embed::{TokenCounter, WordPieceCounter};
use navigator_parse::{ParsedDocument, ParsedPage};
use navigator_pipeline::chunk::{
    CHUNKER_NAME, CHUNKER_VERSION, ChunkDraft, ChunkerConfig, chunk_document,
};
use navigator_testkit::docs;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers

fn document(pages: &[String]) -> ParsedDocument {
    ParsedDocument {
        media_type: MediaType::Pdf,
        pages: pages
            .iter()
            .enumerate()
            .map(|(index, text)| ParsedPage {
                number: index as u32 + 1,
                text: text.clone(),
            })
            .collect(),
    }
}

/// 2 special tokens + 1 per whitespace-separated word.
struct WordCounter(usize);
impl TokenCounter for WordCounter {
    fn count_tokens(&self, text: &str) -> usize {
        2 + text.split_whitespace().count()
    }
    fn max_input_tokens(&self) -> usize {
        self.0
    }
}

/// 2 + every character, whitespace included: joining units costs more than their sum, so the
/// chunker's final real count has to catch the underestimate.
struct CharCounter(usize);
impl TokenCounter for CharCounter {
    fn count_tokens(&self, text: &str) -> usize {
        2 + text.chars().count()
    }
    fn max_input_tokens(&self) -> usize {
        self.0
    }
}

/// 2 + one token per 4 characters of each word, plus one per punctuation mark: WordPiece-like.
struct SubwordCounter(usize);
impl TokenCounter for SubwordCounter {
    fn count_tokens(&self, text: &str) -> usize {
        2 + text
            .split_whitespace()
            .map(|word| {
                let punctuation = word.chars().filter(|c| c.is_ascii_punctuation()).count();
                word.chars().count().div_ceil(4) + punctuation
            })
            .sum::<usize>()
    }
    fn max_input_tokens(&self) -> usize {
        self.0
    }
}

fn limit_of(counter: &dyn TokenCounter, config: &ChunkerConfig) -> usize {
    config.max_tokens.min(counter.max_input_tokens())
}

/// The structural invariants every chunking must satisfy.
fn assert_well_formed(
    doc: &ParsedDocument,
    chunks: &[ChunkDraft],
    counter: &dyn TokenCounter,
    config: &ChunkerConfig,
) {
    let limit = limit_of(counter, config);
    let first_page = doc.pages.first().map_or(1, |p| p.number);
    let last_page = doc.pages.last().map_or(1, |p| p.number);
    let mut previous_start = first_page;
    for (index, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.ord as usize, index, "ords are 0.. without gaps");
        assert!(!chunk.text.trim().is_empty(), "chunk {index} has text");
        let count = counter.count_tokens(&chunk.text);
        assert_eq!(
            chunk.token_count as usize, count,
            "chunk {index} reports its real count"
        );
        assert!(
            count <= limit,
            "chunk {index} has {count} tokens, over {limit}"
        );
        assert!(
            chunk.page_start <= chunk.page_end,
            "chunk {index} page range"
        );
        assert!(
            chunk.page_start >= previous_start,
            "chunk {index} page_start goes back"
        );
        assert!((first_page..=last_page).contains(&chunk.page_start));
        assert!((first_page..=last_page).contains(&chunk.page_end));
        previous_start = chunk.page_start;
    }
}

/// True when `pieces` laid end to end, each allowed to start by repeating the end of what came
/// before (the overlap), reproduce `input` exactly. Tracks every possible position, so repeated
/// words cannot fool it.
fn reassembles<T: PartialEq>(input: &[T], pieces: &[Vec<T>]) -> bool {
    let mut positions = BTreeSet::from([0usize]);
    for piece in pieces {
        let mut next = BTreeSet::new();
        for &pos in &positions {
            for overlap in 0..piece.len().min(pos + 1) {
                let fresh = piece.len() - overlap;
                if pos + fresh <= input.len()
                    && piece[..overlap] == input[pos - overlap..pos]
                    && piece[overlap..] == input[pos..pos + fresh]
                {
                    next.insert(pos + fresh);
                }
            }
        }
        if next.is_empty() {
            return false;
        }
        positions = next;
    }
    positions.contains(&input.len())
}

fn words_of(doc: &ParsedDocument) -> Vec<String> {
    doc.pages
        .iter()
        .flat_map(|page| page.text.split_whitespace().map(str::to_owned))
        .collect()
}

fn chunk_words(chunks: &[ChunkDraft]) -> Vec<Vec<String>> {
    chunks
        .iter()
        .map(|chunk| chunk.text.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn non_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The real tokenizer, or `None` (with a note) when the model is not installed; under `CI=true`
/// a missing model fails the test instead of skipping it.
fn real_counter() -> Option<WordPieceCounter> {
    let dir =
        navigator_embed::default_model_dir().filter(|dir| dir.join("tokenizer.json").is_file());
    match dir {
        Some(dir) => Some(WordPieceCounter::from_model_dir(&dir).expect("tokenizer loads")),
        None if std::env::var("CI").is_ok_and(|value| value == "true") => panic!(
            "all-MiniLM-L6-v2 is not installed: run scripts/fetch-model.sh (or set NAVIGATOR_MODEL_DIR)"
        ),
        None => {
            eprintln!(
                "note: skipping real-tokenizer test, model not installed (run scripts/fetch-model.sh)"
            );
            None
        }
    }
}

/// Text built to be hard on a tokenizer-bounded chunker: no punctuation, long numbers, URLs,
/// scripts without spaces, emoji, a 5 000-character word, a one-line table.
fn hostile_pages() -> Vec<String> {
    let unpunctuated = "the member may request coverage for services rendered by any provider \
        including those outside the network when no network provider is available "
        .repeat(30);
    let numbers: Vec<String> = (0..400u64)
        .map(|i| format!("{:020}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let urls: Vec<String> = (0..150)
        .map(|i| {
            format!("https://claims.example.com/api/v2/members/{i}/eob?id=A-{i:06}&lang=en-US#p{i}")
        })
        .collect();
    let cjk = "保险理赔需要在九十天内提交所有相关文件以及医疗记录".repeat(60);
    let mixed = "Prämie naïve café Ωmega 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦷🏥💊 e\u{301} العربية हिन्दी ".repeat(80);
    let table = (0..300)
        .map(|i| format!("| {i} | D{i:04} | $1{i},00 |"))
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        unpunctuated,
        numbers.join(" "),
        urls.join(" "),
        cjk,
        mixed,
        format!("{} {}", "x".repeat(5_000), "y1".repeat(2_500)),
        table,
        format!("# {}\n\nshort body", "Very long heading ".repeat(100)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Coverage and order

#[test]
fn all_text_is_covered_in_order_once_overlaps_are_removed() {
    let doc = document(&docs::insurance_policy_pages(12, 3));
    let counter = SubwordCounter(256);
    let config = ChunkerConfig::default();
    let chunks = chunk_document(&doc, &counter, &config);
    assert_well_formed(&doc, &chunks, &counter, &config);
    assert!(chunks.len() > 12);
    assert!(reassembles(&words_of(&doc), &chunk_words(&chunks)));
}

#[test]
fn without_overlap_the_chunks_are_exactly_the_input_text() {
    let doc = document(&docs::insurance_policy_pages(6, 4));
    let config = ChunkerConfig {
        overlap_ratio: 0.0,
        ..ChunkerConfig::default()
    };
    let chunks = chunk_document(&doc, &SubwordCounter(256), &config);
    let joined: Vec<String> = chunks
        .iter()
        .flat_map(|c| c.text.split_whitespace().map(str::to_owned))
        .collect();
    assert_eq!(joined, words_of(&doc));
}

#[test]
fn consecutive_chunks_of_a_section_overlap_by_about_the_configured_ratio() {
    let doc = document(&docs::insurance_policy_pages(10, 5));
    let counter = SubwordCounter(256);
    let chunks = chunk_document(&doc, &counter, &ChunkerConfig::default());
    let mut overlapping = 0;
    for pair in chunks.windows(2) {
        if pair[0].section != pair[1].section || pair[1].text.starts_with('#') {
            continue;
        }
        let first: Vec<&str> = pair[0].text.split_whitespace().collect();
        let second: Vec<&str> = pair[1].text.split_whitespace().collect();
        let shared = (1..second.len().min(first.len()))
            .rev()
            .find(|&k| first[first.len() - k..] == second[..k])
            .unwrap_or(0);
        if shared > 0 {
            overlapping += 1;
            let tokens = counter.count_tokens(&second[..shared].join(" ")) - 2;
            assert!(
                tokens <= 30,
                "overlap of {tokens} tokens exceeds 15 % of 200"
            );
        }
    }
    assert!(overlapping > 5, "overlap is applied ({overlapping} pairs)");
}

// ---------------------------------------------------------------------------------------------
// Pages

#[test]
fn page_ranges_are_monotonic_and_within_the_document() {
    let doc = document(&docs::insurance_policy_pages(25, 6));
    let counter = SubwordCounter(256);
    let config = ChunkerConfig::default();
    let chunks = chunk_document(&doc, &counter, &config);
    assert_well_formed(&doc, &chunks, &counter, &config);
    assert!(
        chunks.iter().any(|c| c.page_start < c.page_end),
        "some chunk spans a page break"
    );
    assert_eq!(chunks.last().unwrap().page_end, 25);
}

#[test]
fn each_page_marker_is_in_a_chunk_whose_page_range_includes_that_page() {
    let doc = document(&docs::insurance_policy_pages(25, 6));
    let chunks = chunk_document(&doc, &SubwordCounter(256), &ChunkerConfig::default());
    for page in 1..=25u32 {
        let marker = docs::marker_sentence(page as usize);
        let holders: Vec<&ChunkDraft> =
            chunks.iter().filter(|c| c.text.contains(&marker)).collect();
        assert!(!holders.is_empty(), "marker of page {page} is in a chunk");
        for chunk in holders {
            assert!(
                (chunk.page_start..=chunk.page_end).contains(&page),
                "chunk {} (pages {}-{}) holds the marker of page {page}",
                chunk.ord,
                chunk.page_start,
                chunk.page_end
            );
        }
    }
}

#[test]
fn page_numbers_come_from_the_parsed_pages_not_their_positions() {
    let mut doc = document(&[
        "First page text.".to_owned(),
        "Second page text.".to_owned(),
    ]);
    doc.pages[0].number = 7;
    doc.pages[1].number = 9;
    let config = ChunkerConfig {
        max_tokens: 6,
        target_tokens: 6,
        overlap_ratio: 0.0,
    };
    let chunks = chunk_document(&doc, &WordCounter(256), &config);
    let ranges: Vec<(u32, u32)> = chunks.iter().map(|c| (c.page_start, c.page_end)).collect();
    assert_eq!(ranges, [(7, 7), (9, 9)]);
}

// ---------------------------------------------------------------------------------------------
// Determinism

#[test]
fn chunk_ids_and_texts_are_stable_across_runs() {
    let doc = document(&docs::insurance_policy_pages(8, 11));
    let document_id = DocumentId::parse("01900000-0000-7000-8000-000000000001").unwrap();
    let run = || {
        chunk_document(&doc, &SubwordCounter(256), &ChunkerConfig::default())
            .into_iter()
            .map(|c| {
                (
                    ChunkId::derive(document_id, CHUNKER_NAME, CHUNKER_VERSION, c.ord),
                    c,
                )
            })
            .collect::<Vec<_>>()
    };
    let (first, second) = (run(), run());
    assert_eq!(first, second);
    let ids: BTreeSet<ChunkId> = first.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), first.len(), "ids are distinct");
}

// ---------------------------------------------------------------------------------------------
// Headings

#[test]
fn text_under_a_nested_heading_gets_the_heading_path() {
    let intro = "Intro sentence about general benefits number one. ".repeat(20);
    let dental = (0..40)
        .map(|i| format!("Dental rule {i} covers cleanings and fillings."))
        .collect::<Vec<_>>()
        .join(" ");
    let doc = document(&[format!(
        "# Benefits\n\n{intro}\n\n## Dental\n\n{dental}\n\n# Exclusions\n\nCosmetic work."
    )]);
    let counter = WordCounter(256);
    let config = ChunkerConfig {
        max_tokens: 60,
        target_tokens: 50,
        overlap_ratio: 0.2,
    };
    let chunks = chunk_document(&doc, &counter, &config);
    assert_well_formed(&doc, &chunks, &counter, &config);

    let dental_chunks: Vec<&ChunkDraft> = chunks
        .iter()
        .filter(|c| c.text.contains("Dental rule"))
        .collect();
    assert!(dental_chunks.len() >= 3);
    for chunk in &dental_chunks {
        assert_eq!(chunk.section, "Benefits > Dental");
        assert!(
            !chunk.text.contains("Intro"),
            "no overlap leaks from the previous section"
        );
    }
    assert!(
        dental_chunks[0]
            .text
            .starts_with("## Dental\n\nDental rule 0 ")
    );
    let last = chunks.last().unwrap();
    assert_eq!(last.section, "Exclusions");
    assert_eq!(last.text, "# Exclusions\n\nCosmetic work.");
    assert!(
        chunks
            .iter()
            .filter(|c| c.text.contains("Intro"))
            .all(|c| c.section == "Benefits")
    );
}

#[test]
fn overlap_continues_within_a_section() {
    let dental = (0..40)
        .map(|i| format!("Dental rule {i} covers cleanings and fillings."))
        .collect::<Vec<_>>()
        .join(" ");
    let doc = document(&[format!("## Dental\n\n{dental}")]);
    let config = ChunkerConfig {
        max_tokens: 60,
        target_tokens: 50,
        overlap_ratio: 0.2,
    };
    let chunks = chunk_document(&doc, &WordCounter(256), &config);
    for pair in chunks.windows(2) {
        let tail = pair[0].text.rsplit(". ").next().unwrap();
        assert!(
            pair[1].text.starts_with(tail),
            "{:?} then {:?}",
            pair[0].text,
            pair[1].text
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The bound, for any input

fn arbitrary_page() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-z]{1,12}",
        2 => "[A-Za-z0-9.,;:!?()'-]{1,20}",
        1 => "[a-z]{200,2000}",
        1 => "[0-9]{30,400}",
        1 => "\\PC{1,60}",
        1 => "[\u{4e00}-\u{4e80}]{50,600}",
        1 => Just("\n\n".to_owned()),
        1 => Just("\n".to_owned()),
        1 => "#{1,7} [A-Za-z ]{0,40}\n",
    ];
    prop::collection::vec(piece, 0..120).prop_map(|pieces| {
        let mut text = String::new();
        for piece in pieces {
            if !text.is_empty() && !piece.starts_with(['\n', '#']) {
                text.push(' ');
            }
            if piece.starts_with('#') && !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&piece);
        }
        text
    })
}

fn arbitrary_config() -> impl Strategy<Value = ChunkerConfig> {
    (8usize..300, 0.0f32..0.6, 0.0f64..=1.0).prop_map(|(max, ratio, target_share)| ChunkerConfig {
        max_tokens: max,
        target_tokens: ((max as f64 * target_share) as usize).max(1),
        overlap_ratio: ratio,
    })
}

fn counter_by_index(index: usize, max: usize) -> Box<dyn TokenCounter> {
    match index {
        0 => Box::new(WordCounter(max)),
        1 => Box::new(CharCounter(max)),
        _ => Box::new(SubwordCounter(max)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_chunk_fits_the_token_limit_for_any_input(
        pages in prop::collection::vec(arbitrary_page(), 0..4),
        config in arbitrary_config(),
        counter_index in 0usize..3,
        model_max in 8usize..400,
    ) {
        let doc = document(&pages);
        let counter = counter_by_index(counter_index, model_max);
        let chunks = chunk_document(&doc, counter.as_ref(), &config);
        assert_well_formed(&doc, &chunks, counter.as_ref(), &config);
        let has_text = pages.iter().any(|p| !p.trim().is_empty());
        prop_assert_eq!(chunks.is_empty(), !has_text);
    }

    #[test]
    fn without_overlap_every_character_is_kept_in_order_for_any_input(
        pages in prop::collection::vec(arbitrary_page(), 0..4),
        config in arbitrary_config(),
        counter_index in 0usize..3,
    ) {
        let config = ChunkerConfig { overlap_ratio: 0.0, ..config };
        let doc = document(&pages);
        let chunks = chunk_document(&doc, counter_by_index(counter_index, 512).as_ref(), &config);
        let expected: String = pages.iter().map(|p| non_whitespace(p)).collect();
        let actual: String = chunks.iter().map(|c| non_whitespace(&c.text)).collect();
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn with_overlap_the_word_sequence_is_reproduced_for_any_prose(
        pages in prop::collection::vec(
            prop::collection::vec(prop_oneof![
                6 => "[a-z]{1,10}",
                2 => "[a-z]{1,10}[.!?]",
                1 => Just("\n\n".to_owned()),
                1 => Just("\n## Part\n".to_owned()),
            ], 0..300).prop_map(|words| words.join(" ")),
            1..4,
        ),
        ratio in 0.0f32..0.5,
        target in 10usize..120,
    ) {
        let doc = document(&pages);
        let config = ChunkerConfig { max_tokens: 128, target_tokens: target.min(128), overlap_ratio: ratio };
        let chunks = chunk_document(&doc, &SubwordCounter(512), &config);
        prop_assert!(reassembles(&words_of(&doc), &chunk_words(&chunks)));
    }

    #[test]
    fn chunking_is_deterministic_for_any_input(
        pages in prop::collection::vec(arbitrary_page(), 0..3),
        config in arbitrary_config(),
    ) {
        let doc = document(&pages);
        let first = chunk_document(&doc, &SubwordCounter(256), &config);
        let second = chunk_document(&doc, &SubwordCounter(256), &config);
        prop_assert_eq!(first, second);
    }
}

#[test]
fn a_five_thousand_character_word_is_cut_by_characters_and_kept_whole() {
    let word = "abcdefghij".repeat(500);
    let doc = document(&[format!("Before. {word} After.")]);
    let counter = CharCounter(256);
    let config = ChunkerConfig {
        overlap_ratio: 0.0,
        ..ChunkerConfig::default()
    };
    let chunks = chunk_document(&doc, &counter, &config);
    assert_well_formed(&doc, &chunks, &counter, &config);
    assert!(chunks.len() >= 20);
    let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(non_whitespace(&joined), format!("Before.{word}After."));
    assert!(
        joined.contains(&word),
        "pieces of the word are glued back without spaces"
    );
}

// ---------------------------------------------------------------------------------------------
// The real tokenizer: nothing the model would truncate

#[test]
fn real_tokenizer_counts_long_text_without_truncating() {
    let Some(counter) = real_counter() else {
        return;
    };
    let text = "coverage ".repeat(600);
    assert_eq!(
        counter.count_tokens(&text),
        602,
        "the counter must not truncate or pad"
    );
    assert_eq!(counter.count_tokens(""), 2);
    assert_eq!(counter.max_input_tokens(), 256);
}

#[test]
fn real_tokenizer_no_chunk_of_a_realistic_policy_exceeds_256_word_pieces() {
    let Some(counter) = real_counter() else {
        return;
    };
    let doc = document(&docs::insurance_policy_pages(40, 2));
    let config = ChunkerConfig::default();
    let chunks = chunk_document(&doc, &counter, &config);
    assert_well_formed(&doc, &chunks, &counter, &config);
    assert!(chunks.iter().all(|c| c.token_count <= 256));
    assert!(reassembles(&words_of(&doc), &chunk_words(&chunks)));
    // Chunks are used well: most are close to the target, not fragments.
    let mut sizes: Vec<u32> = chunks.iter().map(|c| c.token_count).collect();
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    assert!(
        (150..=256).contains(&median),
        "median chunk has {median} tokens"
    );
}

#[test]
fn real_tokenizer_no_chunk_of_a_hostile_document_exceeds_256_word_pieces() {
    let Some(counter) = real_counter() else {
        return;
    };
    let pages = hostile_pages();
    let doc = document(&pages);
    for config in [
        ChunkerConfig::default(),
        ChunkerConfig {
            max_tokens: 512,
            target_tokens: 512,
            overlap_ratio: 0.5,
        },
        ChunkerConfig {
            max_tokens: 64,
            target_tokens: 40,
            overlap_ratio: 0.0,
        },
    ] {
        let chunks = chunk_document(&doc, &counter, &config);
        assert_well_formed(&doc, &chunks, &counter, &config);
        assert!(chunks.iter().all(|c| c.token_count <= 256));
        if config.overlap_ratio == 0.0 {
            let expected: String = pages.iter().map(|p| non_whitespace(p)).collect();
            let actual: String = chunks.iter().map(|c| non_whitespace(&c.text)).collect();
            assert!(actual == expected, "every character is kept");
        }
    }
}

#[test]
fn real_tokenizer_chunks_a_200_page_policy_quickly() {
    let Some(counter) = real_counter() else {
        return;
    };
    let doc = document(&docs::insurance_policy_pages(200, 1));
    let started = Instant::now();
    let chunks = chunk_document(&doc, &counter, &ChunkerConfig::default());
    let elapsed = started.elapsed();
    let chars: usize = doc.pages.iter().map(|p| p.text.len()).sum();
    eprintln!(
        "chunked 200 pages ({chars} chars) into {} chunks in {elapsed:?}",
        chunks.len()
    );
    assert!(chunks.iter().all(|c| c.token_count <= 256));
    if !cfg!(debug_assertions) {
        assert!(elapsed.as_secs_f64() < 1.0, "200 pages took {elapsed:?}");
    }
}
