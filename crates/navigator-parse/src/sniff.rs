//! Media type from the bytes alone.
//!
//! Order matters: binary signatures first (PDF, then DOCX), then HTML, then UTF-8 text split into
//! Markdown and plain text. Anything else (images, executables, other archives, UTF-16 text) is
//! `None`, which the upload handler turns into `415`.

use navigator_domain::MediaType;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// PDF readers look for the header in the first 1024 bytes; we accept only whitespace and a BOM
/// before it, so arbitrary junk (or an HTML page) cannot smuggle a PDF header in.
const PDF_HEADER_WINDOW: usize = 1024;
/// A DOCX's central directory is walked only this far; more entries than this is a zip bomb anyway.
pub(crate) const MAX_ZIP_ENTRIES: usize = 10_000;
/// Markdown structure is looked for in this much of the text.
const MARKDOWN_WINDOW: usize = 64 * 1024;

/// The media type `bytes` really are, or `None` if they are not a type Navigator parses.
///
/// - `%PDF-` after optional whitespace/BOM within the first 1024 bytes → PDF;
/// - a ZIP whose central directory names `word/document.xml` → DOCX (other ZIPs → `None`);
/// - `<!doctype html`, `<html`, `<head` or `<body` as the first tag (after an optional BOM,
///   whitespace, XML declaration and comments), case-insensitive → HTML;
/// - otherwise valid UTF-8 (BOM allowed) without NUL and with few control characters → Markdown
///   when it has clear Markdown structure (ATX headings, fences, setext underlines, tables,
///   inline links), else plain text. Empty input is plain text (it then parses as `Empty`);
/// - anything else → `None`.
pub fn sniff(bytes: &[u8]) -> Option<MediaType> {
    if is_pdf(bytes) {
        return Some(MediaType::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return zip_has_entry(bytes, b"word/document.xml").then_some(MediaType::Docx);
    }
    if is_html(bytes) {
        return Some(MediaType::Html);
    }
    let text = as_text(bytes)?;
    if looks_like_markdown(text) {
        Some(MediaType::Markdown)
    } else {
        Some(MediaType::Text)
    }
}

fn is_pdf(bytes: &[u8]) -> bool {
    let window = &bytes[..bytes.len().min(PDF_HEADER_WINDOW)];
    let rest = window.strip_prefix(UTF8_BOM).unwrap_or(window);
    let start = rest
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    rest[start..].starts_with(b"%PDF-")
}

fn is_html(bytes: &[u8]) -> bool {
    let mut rest = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    // Skip whitespace, an XML declaration and comments, a bounded number of times.
    for _ in 0..16 {
        rest = trim_ascii_start(rest);
        if rest.starts_with(b"<?xml") {
            match find(rest, b"?>") {
                Some(end) => rest = &rest[end + 2..],
                None => return false,
            }
        } else if rest.starts_with(b"<!--") {
            match find(&rest[4..], b"-->") {
                Some(end) => rest = &rest[4 + end + 3..],
                None => return false,
            }
        } else {
            break;
        }
    }
    ["<!doctype html", "<html", "<head", "<body"]
        .iter()
        .any(|tag| starts_with_tag(rest, tag.as_bytes()))
}

fn starts_with_tag(bytes: &[u8], tag: &[u8]) -> bool {
    bytes.len() > tag.len()
        && bytes[..tag.len()].eq_ignore_ascii_case(tag)
        && matches!(
            bytes[tag.len()],
            b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'
        )
}

/// Valid UTF-8 without NUL and with at most 1 % other control characters (tab, line breaks, form
/// feed and escape are fine): the definition of "a text file" here.
fn as_text(bytes: &[u8]) -> Option<&str> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).ok()?;
    let mut controls = 0usize;
    for &b in bytes {
        match b {
            0 => return None,
            b'\t' | b'\n' | b'\r' | b'\x0c' | b'\x1b' => {}
            1..=0x1f | 0x7f => controls += 1,
            _ => {}
        }
    }
    (controls * 100 <= bytes.len()).then_some(text)
}

fn looks_like_markdown(text: &str) -> bool {
    let mut end = text.len().min(MARKDOWN_WINDOW);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut previous_was_text = false;
    for line in text[..end].lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent < 4 && is_strong_markdown_line(trimmed, previous_was_text) {
            return true;
        }
        previous_was_text = !trimmed.is_empty();
    }
    false
}

/// Lines no ordinary text file has by accident: ATX headings, code fences, setext underlines
/// under a text line, table delimiter rows, and inline links.
fn is_strong_markdown_line(line: &str, previous_was_text: bool) -> bool {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with([' ', '\t']) {
        return line[hashes..].trim().chars().any(char::is_alphanumeric);
    }
    if line.starts_with("```") || line.starts_with("~~~") {
        return true;
    }
    let t = line.trim_end();
    if previous_was_text && t.len() >= 3 && (t.bytes().all(|b| b == b'=')) {
        return true;
    }
    if t.starts_with('|') && t.contains("---") && t.bytes().all(|b| b"|-: ".contains(&b)) {
        return true;
    }
    if let Some(i) = line.find("](") {
        let after = &line[i + 2..];
        return line[..i].contains('[') && after.contains(')');
    }
    false
}

/// Whether the ZIP in `bytes` lists an entry named exactly `name` in its central directory.
///
/// Walks the central directory by hand (bounded by [`MAX_ZIP_ENTRIES`]) instead of opening a full
/// archive reader, because sniffing runs in the upload handler on untrusted bytes.
pub(crate) fn zip_has_entry(bytes: &[u8], name: &[u8]) -> bool {
    let Some((cd_offset, cd_entries)) = central_directory(bytes) else {
        return false;
    };
    let mut pos = cd_offset;
    for _ in 0..cd_entries.min(MAX_ZIP_ENTRIES as u64) {
        let Some(header) = pos.checked_add(46).and_then(|end| bytes.get(pos..end)) else {
            return false;
        };
        if !header.starts_with(b"PK\x01\x02") {
            return false;
        }
        let name_len = le16(header, 28) as usize;
        let extra_len = le16(header, 30) as usize;
        let comment_len = le16(header, 32) as usize;
        let Some(entry_name) = bytes.get(pos + 46..pos + 46 + name_len) else {
            return false;
        };
        if entry_name == name {
            return true;
        }
        pos += 46 + name_len + extra_len + comment_len;
    }
    false
}

/// Offset and entry count of the central directory, from the (ZIP64) end-of-central-directory.
fn central_directory(bytes: &[u8]) -> Option<(usize, u64)> {
    const EOCD_LEN: usize = 22;
    if bytes.len() < EOCD_LEN {
        return None;
    }
    // The EOCD is at the end, followed by a comment of at most 65535 bytes.
    let search_from = bytes.len().saturating_sub(EOCD_LEN + 0xFFFF);
    let eocd = (search_from..=bytes.len() - EOCD_LEN)
        .rev()
        .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))?;
    let record = &bytes[eocd..eocd + EOCD_LEN];
    let entries = le16(record, 10) as u64;
    let offset = le32(record, 16) as u64;
    if entries != 0xFFFF && offset != 0xFFFF_FFFF {
        return Some((usize::try_from(offset).ok()?, entries));
    }
    // ZIP64: the locator sits right before the EOCD and points at the ZIP64 EOCD record.
    let locator = bytes.get(eocd.checked_sub(20)?..eocd)?;
    if !locator.starts_with(b"PK\x06\x07") {
        return None;
    }
    let record_at = usize::try_from(le64(locator, 8)).ok()?;
    let record = bytes.get(record_at..record_at.checked_add(56)?)?;
    if !record.starts_with(b"PK\x06\x06") {
        return None;
    }
    Some((usize::try_from(le64(record, 48)).ok()?, le64(record, 32)))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[start..]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_header_after_whitespace_and_bom_is_a_pdf() {
        assert_eq!(sniff(b"\xEF\xBB\xBF \r\n%PDF-1.7\n"), Some(MediaType::Pdf));
    }

    #[test]
    fn pdf_header_after_other_bytes_is_not_a_pdf() {
        assert_ne!(sniff(b"<html>%PDF-1.7"), Some(MediaType::Pdf));
        assert_ne!(sniff(b"hello %PDF-1.7"), Some(MediaType::Pdf));
    }

    #[test]
    fn html_after_xml_declaration_and_comment_is_html() {
        let doc = b"<?xml version=\"1.0\"?>\n<!-- hi -->\n<HTML lang=en><body>x";
        assert_eq!(sniff(doc), Some(MediaType::Html));
        assert_eq!(sniff(b"  <body>hello</body>"), Some(MediaType::Html));
        assert_eq!(sniff(b"<htmlx>"), Some(MediaType::Text));
    }

    #[test]
    fn markdown_needs_clear_structure() {
        assert_eq!(sniff(b"# Title\n\ntext"), Some(MediaType::Markdown));
        assert_eq!(sniff(b"Title\n=====\n"), Some(MediaType::Markdown));
        assert_eq!(sniff(b"see [docs](https://x.y)"), Some(MediaType::Markdown));
        assert_eq!(sniff(b"```\ncode\n```"), Some(MediaType::Markdown));
        assert_eq!(sniff(b"- a list\n- is not enough\n"), Some(MediaType::Text));
        assert_eq!(sniff(b"#hashtag only"), Some(MediaType::Text));
    }

    #[test]
    fn text_with_nul_or_many_controls_is_not_text() {
        assert_eq!(sniff(b"abc\0def"), None);
        assert_eq!(sniff(b"\x01\x02\x03abc"), None);
        assert_eq!(sniff(b""), Some(MediaType::Text));
    }

    #[test]
    fn a_zip_without_word_document_is_not_docx() {
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&[0; 40]);
        assert_eq!(sniff(&zip), None);
    }
}
