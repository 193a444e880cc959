//! HTML via html2text, rendered as Markdown-ish plain text (headings as `#` lines, no link
//! footnotes, no table borders), then normalised.
//!
//! html5ever has no nesting cap and degrades quadratically (and can overflow its stack) on
//! pathological nesting, so a cheap pre-scan rejects documents nested deeper than
//! [`MAX_HTML_DEPTH`] (the cap browsers use) before html2text sees them.

use html2text::render::TextDecorator;

use crate::ParseError;
use crate::normalize::normalize_text;

/// Deepest element nesting accepted; deeper documents are rejected as corrupt.
pub(crate) const MAX_HTML_DEPTH: usize = 512;
/// Wide enough that html2text never wraps a paragraph.
const RENDER_WIDTH: usize = 10_000;

pub(crate) fn parse(bytes: &[u8]) -> Result<String, ParseError> {
    if nesting_depth(bytes) > MAX_HTML_DEPTH {
        return Err(ParseError::corrupt("html nesting too deep"));
    }
    let rendered = html2text::config::with_decorator(MarkdownishDecorator)
        .link_footnotes(false)
        .no_table_borders()
        .string_from_read(bytes, RENDER_WIDTH)
        .map_err(|_| ParseError::corrupt("unreadable html"))?;
    Ok(normalize_text(&rendered))
}

/// html2text's plain decorator, minus the noise: links and images render as their text only
/// (no `[...]`, no footnotes), lists use Markdown's `- `, headings keep their `#` prefix.
#[derive(Clone, Debug)]
struct MarkdownishDecorator;

impl TextDecorator for MarkdownishDecorator {
    type Annotation = ();

    fn decorate_link_start(&mut self, _url: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        String::new()
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_owned(), ())
    }
    fn header_prefix(&self, level: usize) -> String {
        "#".repeat(level.clamp(1, 6)) + " "
    }
    fn quote_prefix(&self) -> String {
        "> ".to_owned()
    }
    fn unordered_item_prefix(&self) -> String {
        "- ".to_owned()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        self.clone()
    }
}

/// Approximate element nesting depth: counts open tags of elements that need an end tag, so a
/// document of unclosed `<p>`/`<li>`/`<td>` (legal HTML) is not mistaken for a deep one.
pub(crate) fn nesting_depth(bytes: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'<') {
        i += offset + 1;
        let rest = &bytes[i..];
        if rest.starts_with(b"!--") {
            i += find(&rest[3..], b"-->").map_or(rest.len(), |e| e + 6);
            continue;
        }
        let closing = rest.first() == Some(&b'/');
        let name_start = usize::from(closing);
        let name_len = rest[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        if name_len == 0 {
            continue;
        }
        let name = rest[name_start..name_start + name_len].to_ascii_lowercase();
        let tag_end = tag_end(rest).unwrap_or(rest.len());
        let self_closing = tag_end > 0 && rest[tag_end - 1] == b'/';
        i += tag_end;
        if !needs_end_tag(&name) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else if !self_closing {
            if is_raw_text(&name) {
                // Skip script/style bodies: their `<` are not tags.
                let close = [b"</".as_slice(), &name].concat();
                let body = &bytes[i..];
                let skip = (0..body.len())
                    .find(|&j| {
                        body[j..].len() >= close.len()
                            && body[j..j + close.len()].eq_ignore_ascii_case(&close)
                    })
                    .unwrap_or(body.len());
                i += skip;
                continue;
            }
            depth += 1;
            max_depth = max_depth.max(depth);
        }
    }
    max_depth
}

/// Index of the `>` closing the tag that starts `rest`, skipping quoted attribute values.
fn tag_end(rest: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (j, &b) in rest.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), b) if b == q => quote = None,
            (None, b'>') => return Some(j),
            _ => {}
        }
    }
    None
}

fn needs_end_tag(name: &[u8]) -> bool {
    const VOID_OR_OPTIONAL_END: &[&[u8]] = &[
        b"area",
        b"base",
        b"br",
        b"col",
        b"embed",
        b"hr",
        b"img",
        b"input",
        b"link",
        b"meta",
        b"source",
        b"track",
        b"wbr",
        b"param",
        b"p",
        b"li",
        b"dt",
        b"dd",
        b"tr",
        b"td",
        b"th",
        b"thead",
        b"tbody",
        b"tfoot",
        b"option",
        b"optgroup",
        b"colgroup",
        b"caption",
        b"rb",
        b"rt",
        b"rtc",
        b"rp",
        b"html",
        b"head",
        b"body",
    ];
    !VOID_OR_OPTIONAL_END.contains(&name)
}

fn is_raw_text(name: &[u8]) -> bool {
    matches!(name, b"script" | b"style" | b"textarea" | b"title" | b"xmp")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_depth_counts_only_elements_that_need_end_tags() {
        assert_eq!(nesting_depth(b"<div><div><p>a<p>b</div></div>"), 2);
        assert_eq!(nesting_depth(b"<ul><li>a<li>b<li>c</ul>"), 1);
        assert_eq!(nesting_depth(b"<div/><br><img src='a>b'>"), 0);
        assert_eq!(
            nesting_depth(b"<script>if (a<b) { x = '<div><div>' }</script><div>"),
            1
        );
    }

    #[test]
    fn deeply_nested_html_is_rejected_before_rendering() {
        let doc = "<html><body>".to_owned() + &"<div>".repeat(100_000) + "x";
        assert_eq!(
            parse(doc.as_bytes()),
            Err(ParseError::corrupt("html nesting too deep"))
        );
    }

    #[test]
    fn headings_are_kept_and_scripts_and_styles_dropped() {
        let html = b"<!doctype html><html><head><title>T</title><style>p{color:red}</style>\
            <script>var secret = 1;</script></head><body><h1>Claims</h1><p>Submit within \
            <a href='https://x'>60 days</a>.</p><h2>Appeals</h2><p>Write   to us.</p>\
            <table><tr><td>a</td><td>b</td></tr></table></body></html>";
        let text = parse(html).expect("parses");
        assert!(text.contains("# Claims"), "{text}");
        assert!(text.contains("## Appeals"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("color"), "{text}");
        assert!(text.contains("Write to us."), "{text}");
        assert!(text.contains("Submit within 60 days."), "{text}");
    }
}
