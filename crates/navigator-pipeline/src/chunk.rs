//! Stage 2 `chunk` (SPEC §3): a parsed document → passages bounded in the embedder's own tokens.
//!
//! Main items: [`chunk_document`], [`ChunkerConfig`], [`ChunkDraft`], and [`CHUNKER_NAME`] /
//! [`CHUNKER_VERSION`], which go into every chunk id: bump the version whenever the same input
//! would chunk differently, so stored ids never describe other text.
//!
//! Key design choice: the token bound is enforced by the real counter on each chunk's final text,
//! never by an estimate. all-MiniLM-L6-v2 silently drops every token past 256, so a chunk one
//! token over would be embedded without its end; the estimate only keeps chunking fast.
//!
//! How a document is cut:
//! 1. Each page's Markdown-flavoured text is cut into blocks: `#` heading lines and paragraphs
//!    (runs of non-blank lines; a page break also ends a paragraph).
//! 2. Paragraphs are cut into units — sentences, and every line (list items, table rows) — each
//!    counted once. A unit over the target is cut at word boundaries, and a word that alone is
//!    over it by characters, so every unit fits on its own whatever the input.
//! 3. Units are packed greedily up to `target_tokens`, estimating a chunk as the sum of its units'
//!    counts without their special tokens (exact for BERT-style tokenizers, which split on
//!    whitespace anyway).
//! 4. Each chunk is counted once for real; if the estimate was low and the chunk is over the limit,
//!    it is cut at unit boundaries until every piece fits.
//!
//! Headings: a heading line starts a new chunk and sets the heading path (deeper levels nest,
//! same or shallower levels replace), reported in [`ChunkDraft::section`]. The heading line itself
//! stays verbatim at the start of its chunk's text, so the first passage of a section describes
//! itself to the embedder and to keyword search; a heading directly followed by a deeper one
//! shares its chunk. Overlap: each chunk after the first of a section starts with the end of the
//! previous chunk — whole units while they fit in `overlap_ratio` of the target, else its last
//! words — and never carries text across a heading into a new section.

mod split;

use navigator_embed::TokenCounter;
use navigator_parse::ParsedDocument;
use serde::{Deserialize, Serialize};

use split::{Block, Sep, Splitter, Unit, UnitKind};

/// Part of every chunk id (SPEC §3).
pub const CHUNKER_NAME: &str = "navigator-markdown";
/// Part of every chunk id: bump it whenever the same input would give different chunks.
pub const CHUNKER_VERSION: &str = "1";

pub const DEFAULT_MAX_TOKENS: usize = 256;
pub const DEFAULT_TARGET_TOKENS: usize = 200;
pub const DEFAULT_OVERLAP_RATIO: f32 = 0.15;
/// More overlap than this would make chunks mostly repetition; larger ratios are clamped.
pub const MAX_OVERLAP_RATIO: f32 = 0.5;

/// How chunks are sized, in the embedder's tokens (special tokens included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkerConfig {
    /// Hard ceiling for a chunk; the embedder's own input limit applies too, whichever is lower.
    pub max_tokens: usize,
    /// Size chunks aim for, leaving room under `max_tokens` for the overlap.
    pub target_tokens: usize,
    /// Share of the target repeated from the end of the previous chunk of the same section.
    pub overlap_ratio: f32,
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            target_tokens: DEFAULT_TARGET_TOKENS,
            overlap_ratio: DEFAULT_OVERLAP_RATIO,
        }
    }
}

impl ChunkerConfig {
    /// Every problem with the values, each naming its key. [`chunk_document`] also accepts a
    /// config that fails this (it clamps), but a configuration file should be rejected.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.max_tokens < 8 {
            problems.push("max_tokens: must be at least 8".to_owned());
        }
        if self.target_tokens == 0 || self.target_tokens > self.max_tokens {
            problems.push("target_tokens: must be between 1 and max_tokens".to_owned());
        }
        if !(0.0..=MAX_OVERLAP_RATIO).contains(&self.overlap_ratio) {
            problems.push(format!(
                "overlap_ratio: must be between 0 and {MAX_OVERLAP_RATIO}"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A chunk before it is stored: its id is `ChunkId::derive(document, CHUNKER_NAME,
/// CHUNKER_VERSION, ord)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDraft {
    /// Position in the document, from 0, without gaps.
    pub ord: u32,
    pub text: String,
    /// First and last 1-based page the text comes from (a chunk may span a page break).
    pub page_start: u32,
    pub page_end: u32,
    /// Heading path, outermost first, joined with `" > "`; empty before the first heading.
    pub section: String,
    /// `counter.count_tokens(&text)`: never over the configured or the model's limit.
    pub token_count: u32,
}

/// Chunks `doc`. Deterministic: the same document, counter and config give the same chunks.
/// A document with no visible text gives none. Every chunk's `token_count` is at most
/// `min(config.max_tokens, counter.max_input_tokens())`; the only text ever dropped is a single
/// character that alone exceeds that limit, which no real tokenizer produces.
pub fn chunk_document(
    doc: &ParsedDocument,
    counter: &dyn TokenCounter,
    config: &ChunkerConfig,
) -> Vec<ChunkDraft> {
    let Some(limits) = Limits::new(counter, config) else {
        tracing::warn!(
            max_tokens = config.max_tokens,
            model_max_tokens = counter.max_input_tokens(),
            "chunk limit leaves no room for text"
        );
        return Vec::new();
    };
    let mut chunker = Chunker {
        splitter: Splitter {
            counter,
            overhead: limits.overhead,
            budget: limits.target,
            limit: limits.limit,
        },
        limits,
        path: Vec::new(),
        units: Vec::new(),
        estimate: limits.overhead,
        chunks: Vec::new(),
    };
    for page in &doc.pages {
        for block in split::blocks(&page.text) {
            match block {
                Block::Heading { level, title, line } => {
                    chunker.heading(level, title, line, page.number)
                }
                Block::Paragraph(text) => chunker.paragraph(text, page.number),
            }
        }
    }
    chunker.flush(false);
    chunker.chunks
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Hard ceiling of a chunk's real count.
    limit: usize,
    /// What packing aims for (an estimate).
    target: usize,
    /// Most tokens (without special tokens) carried over from the previous chunk.
    overlap: usize,
    /// The counter's count for empty text: special tokens in every count.
    overhead: usize,
}

impl Limits {
    fn new(counter: &dyn TokenCounter, config: &ChunkerConfig) -> Option<Self> {
        let overhead = counter.count_tokens("");
        let limit = config.max_tokens.min(counter.max_input_tokens());
        if limit <= overhead {
            return None;
        }
        let target = config.target_tokens.clamp(overhead + 1, limit);
        let ratio = if config.overlap_ratio.is_finite() {
            config.overlap_ratio.clamp(0.0, MAX_OVERLAP_RATIO)
        } else {
            0.0
        };
        let overlap = ((target - overhead) as f32 * ratio).floor() as usize;
        Some(Self {
            limit,
            target,
            overlap,
            overhead,
        })
    }
}

struct Chunker<'a> {
    splitter: Splitter<'a>,
    limits: Limits,
    /// The heading path: (level, title), outermost first.
    path: Vec<(u8, String)>,
    /// The chunk being built: overlap units first, then new ones.
    units: Vec<Unit>,
    /// Estimated count of `units` (special tokens included).
    estimate: usize,
    chunks: Vec<ChunkDraft>,
}

impl Chunker<'_> {
    fn heading(&mut self, level: u8, title: &str, line: &str, page: u32) {
        let mut units = Vec::new();
        self.splitter
            .split(line, Sep::Paragraph, page, UnitKind::Heading, &mut units);
        let tokens: usize = units.iter().map(|unit| unit.tokens).sum();
        // "# Benefits" directly followed by "## Dental": one chunk, in the deeper section.
        let nests_into_current = !self.units.is_empty()
            && self.units.iter().all(|unit| unit.kind == UnitKind::Heading)
            && self.path.last().is_some_and(|(last, _)| *last < level)
            && self.estimate + tokens <= self.limits.target;
        if !nests_into_current {
            self.flush(false);
        }
        while self.path.last().is_some_and(|(last, _)| *last >= level) {
            self.path.pop();
        }
        self.path.push((level, title.to_owned()));
        for unit in units {
            self.add(unit);
        }
    }

    fn paragraph(&mut self, text: &str, page: u32) {
        let mut units = Vec::new();
        for (sep, sentence) in split::sentences(text) {
            self.splitter
                .split(sentence, sep, page, UnitKind::Body, &mut units);
        }
        for unit in units {
            self.add(unit);
        }
    }

    fn add(&mut self, unit: Unit) {
        let has_new_text = self.units.iter().any(|u| u.kind != UnitKind::Overlap);
        if has_new_text && self.estimate + unit.tokens > self.limits.target {
            self.flush(true);
        }
        // Overlap gives way to new text: drop it from the front until the unit fits.
        while !self.units.is_empty() && self.estimate + unit.tokens > self.limits.target {
            let dropped = self.units.remove(0);
            self.estimate -= dropped.tokens;
        }
        self.estimate += unit.tokens;
        self.units.push(unit);
    }

    /// Emits the chunk being built, if it holds new text; with `carry`, starts the next one with
    /// its tail as overlap (only within a section: a heading flushes without carry).
    fn flush(&mut self, carry: bool) {
        let units = std::mem::take(&mut self.units);
        self.estimate = self.limits.overhead;
        if units.iter().all(|unit| unit.kind == UnitKind::Overlap) {
            return;
        }
        let last = self.emit(units);
        if carry {
            self.units = self.overlap_from(&last);
            self.estimate += self.units.iter().map(|unit| unit.tokens).sum::<usize>();
        }
    }

    /// Pushes `units` as one chunk, or as several if the real count is over the limit; returns
    /// the units of the last chunk pushed.
    fn emit(&mut self, mut units: Vec<Unit>) -> Vec<Unit> {
        let counter = self.splitter.counter;
        loop {
            let text = join(&units);
            let count = counter.count_tokens(&text);
            if count <= self.limits.limit {
                self.push(&units, text, count);
                return units;
            }
            // The estimate was low: keep the longest prefix that really fits.
            let mut lo = 0;
            let mut hi = units.len();
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if counter.count_tokens(&join(&units[..mid])) <= self.limits.limit {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            if lo == 0 || units[..lo].iter().all(|u| u.kind == UnitKind::Overlap) {
                // Overlap is expendable; a new unit alone always fits (it was counted alone
                // against the target), so this drops text only with a non-deterministic counter.
                let dropped = units.remove(0);
                if dropped.kind != UnitKind::Overlap {
                    tracing::warn!(page = dropped.page, "dropped a unit that no longer fits");
                }
                if units.is_empty() {
                    return units;
                }
                continue;
            }
            let rest = units.split_off(lo);
            let head_text = join(&units);
            let head_count = counter.count_tokens(&head_text);
            self.push(&units, head_text, head_count);
            units = rest;
        }
    }

    fn push(&mut self, units: &[Unit], text: String, count: usize) {
        let page_start = units.iter().map(|unit| unit.page).min().unwrap_or(1);
        let page_end = units
            .iter()
            .map(|unit| unit.page)
            .max()
            .unwrap_or(page_start);
        let section = self
            .path
            .iter()
            .map(|(_, title)| title.as_str())
            .collect::<Vec<_>>()
            .join(" > ");
        self.chunks.push(ChunkDraft {
            ord: self.chunks.len() as u32,
            text,
            page_start,
            page_end,
            section,
            token_count: count as u32,
        });
    }

    /// The tail of a chunk to repeat at the start of the next: whole units from the end while they
    /// fit the overlap budget; if not even the last one does, its last words.
    fn overlap_from(&self, units: &[Unit]) -> Vec<Unit> {
        let budget = self.limits.overlap;
        let mut taken: Vec<Unit> = Vec::new();
        let mut tokens = 0;
        for unit in units.iter().rev() {
            if tokens + unit.tokens <= budget {
                tokens += unit.tokens;
                taken.push(Unit {
                    kind: UnitKind::Overlap,
                    ..unit.clone()
                });
                continue;
            }
            if taken.is_empty()
                && let Some(words) = self.splitter.tail_words(unit, budget)
            {
                taken.push(words);
            }
            break;
        }
        taken.reverse();
        taken
    }
}

fn join(units: &[Unit]) -> String {
    let mut text = String::with_capacity(units.iter().map(|unit| unit.text.len() + 2).sum());
    for (index, unit) in units.iter().enumerate() {
        if index > 0 {
            text.push_str(unit.sep.as_str());
        }
        text.push_str(&unit.text);
    }
    text
}

#[cfg(test)]
mod tests {
    use navigator_domain::MediaType;
    use navigator_parse::ParsedPage;

    use super::*;

    /// One token per whitespace-separated word, plus [CLS] and [SEP].
    struct Words(usize);

    impl TokenCounter for Words {
        fn count_tokens(&self, text: &str) -> usize {
            2 + text.split_whitespace().count()
        }
        fn max_input_tokens(&self) -> usize {
            self.0
        }
    }

    fn doc(pages: &[&str]) -> ParsedDocument {
        ParsedDocument {
            media_type: MediaType::Markdown,
            pages: pages
                .iter()
                .enumerate()
                .map(|(i, text)| ParsedPage {
                    number: i as u32 + 1,
                    text: (*text).to_owned(),
                })
                .collect(),
        }
    }

    fn config(max: usize, target: usize, overlap: f32) -> ChunkerConfig {
        ChunkerConfig {
            max_tokens: max,
            target_tokens: target,
            overlap_ratio: overlap,
        }
    }

    #[test]
    fn empty_and_whitespace_documents_give_no_chunks() {
        let config = ChunkerConfig::default();
        assert!(chunk_document(&doc(&[]), &Words(256), &config).is_empty());
        assert!(chunk_document(&doc(&["", "  \n\n\t \r\n"]), &Words(256), &config).is_empty());
    }

    #[test]
    fn a_short_document_is_one_chunk_with_its_heading() {
        let chunks = chunk_document(
            &doc(&["# Benefits\n\nWe pay for things. Some things."]),
            &Words(256),
            &ChunkerConfig::default(),
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].text,
            "# Benefits\n\nWe pay for things. Some things."
        );
        assert_eq!(chunks[0].section, "Benefits");
        assert_eq!(chunks[0].token_count, 2 + 8);
        assert_eq!((chunks[0].page_start, chunks[0].page_end), (1, 1));
    }

    #[test]
    fn a_heading_followed_by_a_deeper_heading_shares_its_chunk() {
        let chunks = chunk_document(
            &doc(&["# Benefits\n## Dental\nCleanings twice a year.\n# Exclusions\nNone."]),
            &Words(256),
            &ChunkerConfig::default(),
        );
        let summary: Vec<(&str, &str)> = chunks
            .iter()
            .map(|c| (c.section.as_str(), c.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "Benefits > Dental",
                    "# Benefits\n\n## Dental\n\nCleanings twice a year."
                ),
                ("Exclusions", "# Exclusions\n\nNone."),
            ]
        );
    }

    #[test]
    fn sibling_headings_pop_the_path() {
        let chunks = chunk_document(
            &doc(&["# A\n## B\nb text.\n## C\nc text.\n### D\nd text.\n# E\ne text."]),
            &Words(256),
            &ChunkerConfig::default(),
        );
        let sections: Vec<&str> = chunks.iter().map(|c| c.section.as_str()).collect();
        assert_eq!(sections, ["A > B", "A > C", "A > C > D", "E"]);
    }

    #[test]
    fn overlap_repeats_whole_sentences_from_the_previous_chunk() {
        // Sentences of 4 words; target 2 + 12 words; overlap floor(12 * 0.34) = 4 words.
        let text = "s1 a b c. s2 a b c. s3 a b c. s4 a b c. s5 a b c. s6 a b c.";
        let chunks = chunk_document(&doc(&[text]), &Words(256), &config(256, 14, 0.34));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "s1 a b c. s2 a b c. s3 a b c.",
                "s3 a b c. s4 a b c. s5 a b c.",
                "s5 a b c. s6 a b c."
            ]
        );
    }

    #[test]
    fn overlap_falls_back_to_words_when_a_sentence_is_too_long() {
        let text = "one two three four five six seven eight. nine ten eleven twelve thirteen.";
        let chunks = chunk_document(&doc(&[text]), &Words(256), &config(256, 12, 0.3));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "one two three four five six seven eight.",
                "six seven eight. nine ten eleven twelve thirteen."
            ]
        );
    }

    #[test]
    fn the_model_limit_caps_the_configured_maximum() {
        let text = "word ".repeat(500);
        let chunks = chunk_document(&doc(&[&text]), &Words(40), &ChunkerConfig::default());
        assert!(chunks.iter().all(|c| c.token_count <= 40));
        assert!(chunks.len() >= 13);
    }

    #[test]
    fn a_limit_with_no_room_for_text_gives_no_chunks() {
        let chunks = chunk_document(&doc(&["text"]), &Words(2), &ChunkerConfig::default());
        assert!(chunks.is_empty());
    }

    #[test]
    fn a_chunk_spanning_a_page_break_carries_both_pages() {
        let chunks = chunk_document(
            &doc(&["Start of a thought.", "End of it."]),
            &Words(256),
            &ChunkerConfig::default(),
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "Start of a thought.\n\nEnd of it.");
        assert_eq!((chunks[0].page_start, chunks[0].page_end), (1, 2));
    }

    #[test]
    fn validate_reports_every_problem() {
        assert_eq!(ChunkerConfig::default().validate(), Ok(()));
        let problems = config(4, 10, 0.9).validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn config_deserialises_with_defaults_and_rejects_unknown_keys() {
        let config: ChunkerConfig = serde_json::from_str(r#"{"target_tokens": 150}"#).unwrap();
        assert_eq!(config.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(config.target_tokens, 150);
        assert!(serde_json::from_str::<ChunkerConfig>(r#"{"max_token": 1}"#).is_err());
    }
}
