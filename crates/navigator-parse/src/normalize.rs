//! The one text dialect every parser emits.
//!
//! Rules: line breaks are `\n`; tabs and Unicode spaces become a plain space; NUL and every other
//! control or invisible formatting character is removed (PostgreSQL rejects NUL in `text`, and
//! control characters only confuse the chunker and the logs); runs of spaces collapse to one;
//! lines carry no trailing spaces; there is at most one blank line in a row and none at either end.

/// Normalises `input` with leading indentation removed.
pub fn normalize_text(input: &str) -> String {
    normalize(input, false)
}

/// Like [`normalize_text`], but keeps each line's leading indentation (collapsed runs inside the
/// line still become one space), because indentation carries structure in Markdown (nested lists,
/// indented code).
pub fn normalize_markdown(input: &str) -> String {
    normalize(input, true)
}

fn normalize(input: &str, keep_indent: bool) -> String {
    let mut out = String::with_capacity(input.len());
    // Pending state, so trailing spaces and surplus blank lines are never written.
    let mut line_has_text = false;
    let mut pending_space = false;
    let mut indent = 0usize;
    let mut newlines_pending = 0usize;

    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                '\n'
            }
            '\n' | '\u{0B}' | '\u{0C}' | '\u{2028}' | '\u{2029}' | '\u{85}' => '\n',
            c if c.is_whitespace() => ' ',
            c if c.is_control() || is_invisible_format(c) => continue,
            c => c,
        };
        match c {
            '\n' => {
                if line_has_text {
                    newlines_pending = 1;
                } else if !out.is_empty() {
                    newlines_pending = 2;
                }
                line_has_text = false;
                pending_space = false;
                indent = 0;
            }
            ' ' => {
                if line_has_text {
                    pending_space = true;
                } else {
                    indent += 1;
                }
            }
            c => {
                if !line_has_text {
                    if !out.is_empty() {
                        for _ in 0..newlines_pending.clamp(1, 2) {
                            out.push('\n');
                        }
                    }
                    newlines_pending = 0;
                    if keep_indent {
                        for _ in 0..indent.min(64) {
                            out.push(' ');
                        }
                    }
                    line_has_text = true;
                } else if pending_space {
                    out.push(' ');
                }
                pending_space = false;
                match ligature(c) {
                    Some(letters) => out.push_str(letters),
                    None => out.push(c),
                }
            }
        }
    }
    out
}

/// Typographic ligatures (common in PDFs) spelled out, so `ﬁle` matches a search for `file`.
fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{FB00}' => "ff",
        '\u{FB01}' => "fi",
        '\u{FB02}' => "fl",
        '\u{FB03}' => "ffi",
        '\u{FB04}' => "ffl",
        '\u{FB05}' | '\u{FB06}' => "st",
        _ => return None,
    })
}

/// Zero-width and bidi formatting characters that render as nothing (and BOMs).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_collapse_and_trailing_spaces_vanish() {
        assert_eq!(normalize_text("  a \t  b   \n c  "), "a b\nc");
    }

    #[test]
    fn blank_line_runs_collapse_to_one_and_ends_are_trimmed() {
        assert_eq!(normalize_text("\n\n a\n \n\n\t\nb\n\n"), "a\n\nb");
    }

    #[test]
    fn control_characters_and_nul_are_removed() {
        assert_eq!(normalize_text("a\0b\u{7}c\u{1b}d\u{FEFF}e"), "abcde");
    }

    #[test]
    fn carriage_returns_and_form_feeds_become_line_breaks() {
        assert_eq!(normalize_text("a\r\nb\rc\u{0C}d"), "a\nb\nc\nd");
    }

    #[test]
    fn markdown_keeps_indentation_but_not_inner_runs() {
        assert_eq!(normalize_markdown("- a\n    - b   c  \n"), "- a\n    - b c");
    }

    #[test]
    fn ligatures_are_spelled_out() {
        assert_eq!(
            normalize_text("\u{FB01}le \u{FB02}ow e\u{FB03}cient"),
            "file flow efficient"
        );
    }

    #[test]
    fn whitespace_only_input_normalises_to_nothing() {
        assert_eq!(normalize_text(" \n\t\r\n \u{00A0} "), "");
    }
}
