//! Plain text and Markdown: normalised passthrough. Markdown additionally has setext headings
//! (`Title` over `=====`) rewritten as ATX (`# Title`), so the chunker only needs to know one form.

use crate::normalize::{normalize_markdown, normalize_text};

pub(crate) fn parse_text(bytes: &[u8]) -> String {
    normalize_text(&decode(bytes))
}

pub(crate) fn parse_markdown(bytes: &[u8]) -> String {
    let normalised = normalize_markdown(&decode(bytes));
    setext_to_atx(&normalised)
}

/// Sniffing guarantees UTF-8; decoding lossily anyway keeps this total for direct callers.
fn decode(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes)
}

fn setext_to_atx(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_fence = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        }
        let next = lines.get(i + 1).map(|l| l.trim());
        let level = match next {
            Some(n) if n.len() >= 3 && n.bytes().all(|b| b == b'=') => Some("#"),
            Some(n) if n.len() >= 3 && n.bytes().all(|b| b == b'-') => Some("##"),
            _ => None,
        };
        let is_paragraph_line = !trimmed.is_empty()
            && !trimmed.starts_with('#')
            && !trimmed.starts_with(['-', '*', '+', '>', '|'])
            && line.len() == trimmed.len();
        if !out.is_empty() {
            out.push('\n');
        }
        match level {
            Some(hashes) if !in_fence && is_paragraph_line => {
                out.push_str(hashes);
                out.push(' ');
                out.push_str(trimmed);
                i += 2;
            }
            _ => {
                out.push_str(line);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setext_headings_become_atx_headings() {
        let md = parse_markdown(b"Title\n=====\n\nIntro\n\nPart\n----\nbody\n");
        assert_eq!(md, "# Title\n\nIntro\n\n## Part\nbody");
    }

    #[test]
    fn setext_underlines_inside_fences_are_left_alone() {
        let md = parse_markdown(b"```\ncode\n===\n```\n");
        assert_eq!(md, "```\ncode\n===\n```");
    }

    #[test]
    fn atx_headings_and_indentation_pass_through() {
        let md = parse_markdown(b"\xEF\xBB\xBF# Policy  terms\n\n- a\n  - b\n");
        assert_eq!(md, "# Policy terms\n\n- a\n  - b");
    }

    #[test]
    fn whitespace_only_text_is_empty() {
        assert_eq!(parse_text(b" \n\t \r\n"), "");
    }
}
