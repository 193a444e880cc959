//! Cutting text into blocks (headings, paragraphs) and then into units that each fit the target
//! on their own, counted once with the real counter.

use navigator_embed::TokenCounter;

/// What joins a unit to the one before it when both land in the same chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sep {
    /// Nothing: the unit continues a word that had to be cut by characters.
    Glue,
    Space,
    Line,
    Paragraph,
}

impl Sep {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Sep::Glue => "",
            Sep::Space => " ",
            Sep::Line => "\n",
            Sep::Paragraph => "\n\n",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnitKind {
    Heading,
    Body,
    /// A copy of the previous chunk's tail, carried as overlap.
    Overlap,
}

/// The smallest piece the packer moves: a sentence, a line, or part of an oversized one.
#[derive(Debug, Clone)]
pub(super) struct Unit {
    pub text: String,
    pub sep: Sep,
    pub page: u32,
    /// The unit's tokens without the special tokens: what it adds to a chunk, to a good
    /// approximation (the real count of the joined text is checked before a chunk is emitted).
    pub tokens: usize,
    pub kind: UnitKind,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Block<'a> {
    Heading {
        level: u8,
        title: &'a str,
        line: &'a str,
    },
    Paragraph(&'a str),
}

/// A Markdown ATX heading (`# Title`, up to three spaces of indent, optional closing `#`s):
/// its level and title. A `#` line without a title is text.
pub(super) fn heading(line: &str) -> Option<(u8, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    let after = &rest[hashes..];
    if !(1..=6).contains(&hashes) || !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let mut title = after.trim();
    // A closing sequence is `#`s preceded by a space (or the whole title).
    let without_closing = title.trim_end_matches('#');
    if without_closing.is_empty() || without_closing.ends_with([' ', '\t']) {
        title = without_closing.trim_end();
    }
    (!title.is_empty()).then_some((hashes as u8, title))
}

/// Cuts one page into headings and paragraphs (runs of non-blank lines).
pub(super) fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut paragraph: Option<(usize, usize)> = None;
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            if let Some((from, to)) = paragraph.take() {
                out.push(Block::Paragraph(&text[from..to]));
            }
        } else if let Some((level, title)) = heading(line) {
            if let Some((from, to)) = paragraph.take() {
                out.push(Block::Paragraph(&text[from..to]));
            }
            out.push(Block::Heading {
                level,
                title,
                line: line.trim(),
            });
        } else {
            let end = start + line.len();
            paragraph = Some(paragraph.map_or((start, end), |(from, _)| (from, end)));
        }
    }
    if let Some((from, to)) = paragraph {
        out.push(Block::Paragraph(&text[from..to]));
    }
    out
}

fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？')
}

fn closes_sentence(c: char) -> bool {
    matches!(c, ')' | ']' | '"' | '\'' | '”' | '’' | '»')
}

/// Cuts a paragraph into sentences and lines: a unit ends at whitespace after `.`, `!` or `?`
/// (closing quotes and brackets allowed in between) and at every line break. Returns each unit
/// with the separator that preceded it (the first gets [`Sep::Paragraph`]).
pub(super) fn sentences(paragraph: &str) -> Vec<(Sep, &str)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut sep = Sep::Paragraph;
    let mut terminal = false;
    let mut chars = paragraph.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        if c.is_whitespace() {
            let mut newline = c == '\n';
            while let Some(&(_, next)) = chars.peek() {
                if !next.is_whitespace() {
                    break;
                }
                newline |= next == '\n';
                chars.next();
            }
            if let Some(from) = start
                && (newline || terminal)
            {
                out.push((sep, &paragraph[from..index]));
                start = None;
                sep = if newline { Sep::Line } else { Sep::Space };
            }
        } else {
            if start.is_none() {
                start = Some(index);
            }
            terminal = ends_sentence(c) || (terminal && closes_sentence(c));
        }
    }
    if let Some(from) = start {
        out.push((sep, paragraph[from..].trim_end()));
    }
    out
}

/// Byte ranges of the whitespace-separated words of `text`.
pub(super) fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (index, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(from)) => {
                spans.push((from, index));
                start = None;
            }
            (false, None) => start = Some(index),
            _ => {}
        }
    }
    if let Some(from) = start {
        spans.push((from, text.len()));
    }
    spans
}

/// Largest `j` in `lo+1..hi` with `fits(j)`, or `lo` if none is found. Binary search: exact for a
/// monotone `fits`; for a tokenizer that is only nearly monotone, still a `j` that was checked.
fn largest_fitting(mut lo: usize, mut hi: usize, mut fits: impl FnMut(usize) -> bool) -> usize {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Turns text into units whose own real count is at most `budget` tokens.
pub(super) struct Splitter<'a> {
    pub counter: &'a dyn TokenCounter,
    /// Tokens the counter reports for empty text: the special tokens every count includes.
    pub overhead: usize,
    /// What each unit should fit: the chunk target.
    pub budget: usize,
    /// What a unit must fit: the chunk limit (only a single character can need more than the
    /// budget).
    pub limit: usize,
}

impl Splitter<'_> {
    fn unit(&self, text: &str, sep: Sep, page: u32, kind: UnitKind, count: usize) -> Unit {
        Unit {
            text: text.to_owned(),
            sep,
            page,
            tokens: count.saturating_sub(self.overhead),
            kind,
        }
    }

    /// Appends `text` as one unit if it fits, else as pieces cut at word boundaries, cutting a word
    /// by characters only when it alone does not fit. Every unit's real count is ≤ the budget.
    pub fn split(&self, text: &str, sep: Sep, page: u32, kind: UnitKind, out: &mut Vec<Unit>) {
        let count = self.counter.count_tokens(text);
        if count <= self.budget {
            out.push(self.unit(text, sep, page, kind, count));
            return;
        }
        let words = word_spans(text);
        // A word costs at least one token with any real tokenizer, so a piece never holds more
        // words than the budget; the cap keeps each search short on a huge unpunctuated text.
        let max_words = self.budget.max(1);
        let mut sep = sep;
        let mut first = 0;
        while first < words.len() {
            let from = words[first].0;
            let mut counts = Vec::new();
            let end = largest_fitting(first, (first + max_words).min(words.len()) + 1, |j| {
                let count = self.counter.count_tokens(&text[from..words[j - 1].1]);
                counts.push((j, count));
                count <= self.budget
            });
            if end == first {
                let (word_start, word_end) = words[first];
                self.split_word(&text[word_start..word_end], sep, page, kind, out);
                first += 1;
            } else {
                let count = counts
                    .iter()
                    .rev()
                    .find(|(j, _)| *j == end)
                    .map_or(0, |(_, count)| *count);
                out.push(self.unit(&text[from..words[end - 1].1], sep, page, kind, count));
                first = end;
            }
            sep = Sep::Space;
        }
    }

    /// Cuts a word that alone exceeds the budget at character boundaries; pieces after the first
    /// are glued to it ([`Sep::Glue`]) so a chunk holding several still shows the original word.
    fn split_word(&self, word: &str, sep: Sep, page: u32, kind: UnitKind, out: &mut Vec<Unit>) {
        let boundaries: Vec<usize> = word
            .char_indices()
            .map(|(index, _)| index)
            .skip(1)
            .chain([word.len()])
            .collect();
        // Some tokenizers read any long word as one unknown token, so characters are not bounded
        // by tokens; the cap only keeps the search short.
        let max_chars = self.budget.saturating_mul(8).max(1);
        let mut sep = sep;
        let mut start = 0; // index into `boundaries` of the first char not yet emitted
        let mut from = 0; // byte offset of that char
        while start < boundaries.len() {
            let mut counts = Vec::new();
            let end = largest_fitting(start, (start + max_chars).min(boundaries.len()) + 1, |j| {
                let count = self.counter.count_tokens(&word[from..boundaries[j - 1]]);
                counts.push((j, count));
                count <= self.budget
            });
            if end == start {
                // One character over the target: take it alone if it fits the hard limit. Only a
                // counter that gives one character more tokens than the limit gets past this, and
                // dropping the character is then the one way to keep the bound.
                let to = boundaries[start];
                let count = self.counter.count_tokens(&word[from..to]);
                if count <= self.limit {
                    out.push(self.unit(&word[from..to], sep, page, kind, count));
                    sep = Sep::Glue;
                } else {
                    tracing::warn!(
                        page,
                        "dropped a character that alone exceeds the token limit"
                    );
                }
                from = to;
                start += 1;
                continue;
            }
            let count = counts
                .iter()
                .rev()
                .find(|(j, _)| *j == end)
                .map_or(0, |(_, count)| *count);
            out.push(self.unit(&word[from..boundaries[end - 1]], sep, page, kind, count));
            from = boundaries[end - 1];
            start = end;
            sep = Sep::Glue;
        }
    }

    /// The longest run of `unit`'s trailing words (never all of them) whose tokens are at most
    /// `budget`, as an overlap unit; `None` when not even its last word fits.
    pub fn tail_words(&self, unit: &Unit, budget: usize) -> Option<Unit> {
        let words = word_spans(&unit.text);
        if words.len() < 2 || budget == 0 {
            return None;
        }
        let mut counts = Vec::new();
        let taken = largest_fitting(0, words.len().min(budget + 1), |k| {
            let text = &unit.text[words[words.len() - k].0..];
            let count = self.counter.count_tokens(text);
            counts.push((k, count));
            count.saturating_sub(self.overhead) <= budget
        });
        if taken == 0 {
            return None;
        }
        let count = counts
            .iter()
            .rev()
            .find(|(k, _)| *k == taken)
            .map_or(0, |(_, count)| *count);
        let text = &unit.text[words[words.len() - taken].0..];
        Some(self.unit(text, Sep::Space, unit.page, UnitKind::Overlap, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_recognises_atx_headings_only() {
        assert_eq!(heading("# Benefits"), Some((1, "Benefits")));
        assert_eq!(heading("  ## Dental ##"), Some((2, "Dental")));
        assert_eq!(heading("### C# basics"), Some((3, "C# basics")));
        assert_eq!(heading("#hashtag"), None);
        assert_eq!(heading("#"), None);
        assert_eq!(heading("####### seven"), None);
        assert_eq!(heading("    # indented code"), None);
    }

    #[test]
    fn blocks_separate_headings_and_paragraphs() {
        let text = "# Title\nFirst line\nsecond line\n\n\r\nNext para.\n## Sub\n";
        assert_eq!(
            blocks(text),
            [
                Block::Heading {
                    level: 1,
                    title: "Title",
                    line: "# Title"
                },
                Block::Paragraph("First line\nsecond line"),
                Block::Paragraph("Next para."),
                Block::Heading {
                    level: 2,
                    title: "Sub",
                    line: "## Sub"
                },
            ]
        );
    }

    #[test]
    fn sentences_end_at_terminators_and_line_breaks() {
        let units = sentences("One. Two (really.) Three 3.5 four!  Five\n- item a\n- item b");
        assert_eq!(
            units,
            [
                (Sep::Paragraph, "One."),
                (Sep::Space, "Two (really.)"),
                (Sep::Space, "Three 3.5 four!"),
                (Sep::Space, "Five"),
                (Sep::Line, "- item a"),
                (Sep::Line, "- item b"),
            ]
        );
    }

    #[test]
    fn word_spans_cover_every_word() {
        let text = "  a bb\tccc\n";
        let words: Vec<&str> = word_spans(text).iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(words, ["a", "bb", "ccc"]);
    }
}
