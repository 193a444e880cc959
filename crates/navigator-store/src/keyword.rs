//! Turning a free-text question into keyword-search terms, shared by every backend so they rank
//! the same words.
//!
//! A question like "how long do I have to submit a claim" is mostly function words; OR-ing them
//! into a bm25 query lets long chunks full of "to", "a" and "have" outrank the one sentence about
//! claims. So English stop words are dropped (unless the query has nothing else), words are
//! lowercased and de-duplicated, and the count and length of terms are bounded so a hostile
//! 10 000-character query costs no more than a normal one. Only alphanumeric runs survive, so
//! user syntax (quotes, `*`, `NEAR(`, `AND`/`NOT`, column filters) never reaches a query parser.

/// At most this many distinct words of a query are searched.
pub const MAX_TERMS: usize = 32;
/// Longer "words" are skipped: nothing a person types is that long (a sha256 is 64).
pub const MAX_TERM_CHARS: usize = 128;

/// Function words that carry no topic. Kept short on purpose: domain words ("claim", "plan",
/// "cover") must never be here.
const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can",
    "could", "did", "do", "does", "for", "from", "get", "got", "had", "has", "have", "how", "i",
    "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "should", "so",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "to", "us", "was", "we", "were", "what", "when", "where", "which", "who", "whom", "why",
    "will", "with", "would", "you", "your",
];

/// The distinct lowercase terms of `text`, stop words removed (all of them kept when the text
/// is nothing but stop words), in first-seen order.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || word.chars().count() > MAX_TERM_CHARS {
            continue;
        }
        let word = word.to_lowercase();
        if !all.contains(&word) {
            all.push(word);
        }
        if all.len() >= MAX_TERMS * 4 {
            break;
        }
    }
    let content: Vec<String> = all
        .iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .cloned()
        .collect();
    let mut terms = if content.is_empty() { all } else { content };
    terms.truncate(MAX_TERMS);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_keeps_only_its_topic_words() {
        assert_eq!(
            query_terms("How long do I have to submit a claim?"),
            ["long", "submit", "claim"]
        );
    }

    #[test]
    fn a_query_of_only_stop_words_is_kept_whole() {
        assert_eq!(query_terms("to be, or to be"), ["to", "be", "or"]);
    }

    #[test]
    fn hostile_input_is_reduced_to_bounded_words() {
        assert!(query_terms("\" * NEAR( ' --").len() <= 1);
        assert_eq!(query_terms("' OR 1=1 --"), ["1"]);
        let long = "word ".repeat(5000) + &"x".repeat(10_000);
        assert_eq!(query_terms(&long), ["word"]);
        let many: String = (0..1000).map(|i| format!("w{i} ")).collect();
        assert_eq!(query_terms(&many).len(), MAX_TERMS);
    }
}
