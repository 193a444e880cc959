//! A minimal PDF writer: classic cross-reference table, uncompressed content streams, the
//! standard Helvetica fonts with WinAnsiEncoding. Small enough to read in one sitting, strict
//! enough that poppler and lopdf open its files without repairing them.

use std::fmt::Write as _;

use super::crypto::{StandardSecurity, md5};

/// Characters per wrapped line (Helvetica 10 pt averages ~5 pt a glyph: 90 fit in 468 pt).
const LINE_CHARS: usize = 90;
const PAGE_WIDTH: u32 = 612;
const PAGE_HEIGHT: u32 = 792;
const LEFT_MARGIN: u32 = 72;
const TOP_Y: f32 = 740.0;
/// Vertical space the text may use, from `TOP_Y` down to the bottom margin.
const TEXT_HEIGHT: f32 = 680.0;
const BODY_SIZE: f32 = 10.0;
const BODY_LEADING: f32 = 13.0;

/// The user password of [`encrypted_pdf`]; the owner password is `navigator-owner`.
pub const ENCRYPTED_PDF_USER_PASSWORD: &str = "navigator";
const ENCRYPTED_PDF_OWNER_PASSWORD: &str = "navigator-owner";
/// Print and copy allowed, modify and annotate not (the usual value for an R2 handler).
const ENCRYPTED_PDF_PERMISSIONS: i32 = -44;

/// Objects numbered from 1; object 1 is always the catalog and 2 the page tree.
struct PdfWriter {
    objects: Vec<Vec<u8>>,
}

impl PdfWriter {
    fn new() -> Self {
        Self {
            objects: Vec::new(),
        }
    }

    /// Reserves the next object number, to be filled by [`PdfWriter::set`].
    fn reserve(&mut self) -> u32 {
        self.objects.push(Vec::new());
        self.objects.len() as u32
    }

    fn set(&mut self, number: u32, body: Vec<u8>) {
        self.objects[number as usize - 1] = body;
    }

    fn add(&mut self, body: Vec<u8>) -> u32 {
        let number = self.reserve();
        self.set(number, body);
        number
    }

    /// Serialises the file: header, objects, xref table with each object's byte offset, trailer.
    fn finish(self, trailer_extra: &str) -> Vec<u8> {
        // The binary comment line tells transfer tools the file is binary (ISO 32000-1, 7.5.2).
        let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let mut offsets = Vec::with_capacity(self.objects.len());
        for (index, body) in self.objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", index + 1).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref_at = out.len();
        let mut xref = format!("xref\n0 {}\n0000000000 65535 f\r\n", self.objects.len() + 1);
        for offset in offsets {
            // Each entry is exactly 20 bytes, end of line included.
            let _ = write!(xref, "{offset:010} 00000 n\r\n");
        }
        let _ = write!(
            xref,
            "trailer\n<< /Size {} /Root 1 0 R{trailer_extra} >>\nstartxref\n{xref_at}\n%%EOF\n",
            self.objects.len() + 1
        );
        out.extend_from_slice(xref.as_bytes());
        out
    }
}

fn stream(data: &[u8]) -> Vec<u8> {
    let mut body = format!("<< /Length {} >>\nstream\n", data.len()).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\nendstream");
    body
}

fn hex_string(bytes: &[u8]) -> String {
    let mut out = String::from("<");
    for byte in bytes {
        let _ = write!(out, "{byte:02X}");
    }
    out.push('>');
    out
}

/// The WinAnsiEncoding byte of `c`, or `?` for characters Helvetica cannot show.
fn win_ansi(c: char) -> u8 {
    match c {
        ' '..='~' => c as u8,
        '\u{A0}'..='\u{FF}' => c as u32 as u8,
        '€' => 0x80,
        '‚' => 0x82,
        '„' => 0x84,
        '…' => 0x85,
        '•' => 0x95,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '–' => 0x96,
        '—' => 0x97,
        '™' => 0x99,
        '\t' => b' ',
        _ => b'?',
    }
}

/// `text` as a PDF literal string: WinAnsi bytes, `(`, `)` and `\` escaped, bytes outside
/// printable ASCII written as octal escapes so the content stream stays 7-bit.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('(');
    for byte in text.chars().map(win_ansi) {
        match byte {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7E => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\{byte:03o}");
            }
        }
    }
    out.push(')');
    out
}

#[derive(Debug, PartialEq)]
enum Line {
    Heading(String),
    Body(String),
    Blank,
}

/// Splits a page into drawn lines: `#` lines become headings (markers stripped), other lines are
/// wrapped at [`LINE_CHARS`] on spaces (a longer word is cut), blank lines separate paragraphs.
fn layout(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for source in text.lines() {
        let trimmed = source.trim();
        if trimmed.is_empty() {
            if !matches!(lines.last(), None | Some(Line::Blank)) {
                lines.push(Line::Blank);
            }
        } else if let Some(heading) = heading_text(trimmed) {
            lines.push(Line::Heading(heading.to_owned()));
        } else {
            wrap(trimmed, &mut lines);
        }
    }
    while lines.last() == Some(&Line::Blank) {
        lines.pop();
    }
    lines
}

fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    let rest = &line[hashes..];
    ((1..=6).contains(&hashes) && rest.starts_with(' ')).then(|| rest.trim())
}

fn wrap(paragraph: &str, lines: &mut Vec<Line>) {
    let mut current = String::new();
    for word in paragraph.split_whitespace() {
        let mut word = word;
        while word.chars().count() > LINE_CHARS {
            if !current.is_empty() {
                lines.push(Line::Body(std::mem::take(&mut current)));
            }
            let cut = word
                .char_indices()
                .nth(LINE_CHARS)
                .map_or(word.len(), |(i, _)| i);
            lines.push(Line::Body(word[..cut].to_owned()));
            word = &word[cut..];
        }
        if word.is_empty() {
            continue;
        }
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > LINE_CHARS {
            lines.push(Line::Body(std::mem::take(&mut current)));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(Line::Body(current));
    }
}

/// The content stream drawing `text`: one text object, `Td` to the first line, `T*` between lines.
/// Long pages get a smaller leading and font so every line stays on the page.
fn text_content(text: &str) -> Vec<u8> {
    let lines = layout(text);
    let scale = (TEXT_HEIGHT / (lines.len().max(1) as f32 * BODY_LEADING)).min(1.0);
    let (size, leading) = (BODY_SIZE * scale, BODY_LEADING * scale);
    let heading_size = size * 1.2;
    let mut out = format!("BT\n/F1 {size:.2} Tf\n{leading:.2} TL\n{LEFT_MARGIN} {TOP_Y:.2} Td\n");
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            out.push_str("T*\n");
        }
        match line {
            Line::Heading(heading) => {
                let _ = writeln!(
                    out,
                    "/F2 {heading_size:.2} Tf\n{} Tj\n/F1 {size:.2} Tf",
                    literal(heading)
                );
            }
            Line::Body(body) => {
                let _ = writeln!(out, "{} Tj", literal(body));
            }
            Line::Blank => {}
        }
    }
    out.push_str("ET\n");
    out.into_bytes()
}

/// Writes catalog, page tree and one page per content stream; `encrypt` transforms each stream
/// given its object number (the identity for plain files).
fn document(
    contents: Vec<Vec<u8>>,
    with_fonts: bool,
    encrypt: &dyn Fn(u32, &[u8]) -> Vec<u8>,
) -> PdfWriter {
    let mut pdf = PdfWriter::new();
    let catalog = pdf.reserve();
    let tree = pdf.reserve();
    pdf.set(
        catalog,
        format!("<< /Type /Catalog /Pages {tree} 0 R >>").into_bytes(),
    );
    let resources = if with_fonts {
        let regular = pdf.add(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .to_vec(),
        );
        let bold = pdf.add(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
                .to_vec(),
        );
        format!("<< /Font << /F1 {regular} 0 R /F2 {bold} 0 R >> >>")
    } else {
        "<< >>".to_owned()
    };
    let mut kids = Vec::with_capacity(contents.len());
    for content in contents {
        let content_id = pdf.reserve();
        pdf.set(content_id, stream(&encrypt(content_id, &content)));
        kids.push(
            pdf.add(
                format!(
                    "<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] \
                 /Resources {resources} /Contents {content_id} 0 R >>"
                )
                .into_bytes(),
            ),
        );
    }
    let kids_list: Vec<String> = kids.iter().map(|id| format!("{id} 0 R")).collect();
    pdf.set(
        tree,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids_list.join(" "),
            kids.len()
        )
        .into_bytes(),
    );
    pdf
}

/// A valid multi-page PDF whose page `i` (0-based) shows `pages[i]` as selectable text.
///
/// Text is drawn in Helvetica (WinAnsiEncoding; characters it cannot show become `?`), wrapped into
/// lines of about 90 characters. Lines starting with `#` are drawn as bold headings without their
/// `#` markers, as a typeset booklet would show them. An empty slice gives one blank page, since a
/// PDF page tree needs a page to be valid for most readers.
pub fn pdf(pages: &[String]) -> Vec<u8> {
    let contents = if pages.is_empty() {
        vec![text_content("")]
    } else {
        pages.iter().map(|page| text_content(page)).collect()
    };
    document(contents, true, &|_, data| data.to_vec()).finish("")
}

/// A PDF of `pages` pages (at least one) holding only a filled grey rectangle each and no text
/// operators or fonts at all: what a scan without OCR looks like to a text extractor.
pub fn pdf_without_text(pages: usize) -> Vec<u8> {
    let contents = (0..pages.max(1))
        .map(|page| {
            format!(
                "q\n0.75 g\n72 {} 468 300 re\nf\n0 G\n2 w\n72 120 468 560 re\nS\nQ\n",
                380 + (page % 5) * 10
            )
            .into_bytes()
        })
        .collect();
    document(contents, false, &|_, data| data.to_vec()).finish("")
}

/// A two-page PDF encrypted with the standard security handler, revision 2 (RC4, 40-bit key), whose
/// user password is [`ENCRYPTED_PDF_USER_PASSWORD`]. The trailer carries `/Encrypt` and `/ID`; the
/// content streams really are encrypted, so a reader without the password sees no text, and
/// `pdfinfo -upw navigator` shows `Encrypted: yes`.
pub fn encrypted_pdf() -> Vec<u8> {
    let id = md5(b"navigator-testkit encrypted.pdf");
    let security = StandardSecurity::new(
        ENCRYPTED_PDF_USER_PASSWORD.as_bytes(),
        ENCRYPTED_PDF_OWNER_PASSWORD.as_bytes(),
        ENCRYPTED_PDF_PERMISSIONS,
        &id,
    );
    let contents = [
        "Confidential member statement. This document is protected by a password.",
        "Page two of the confidential member statement.",
    ]
    .iter()
    .map(|text| text_content(text))
    .collect();
    let mut pdf = document(contents, true, &|number, data| {
        security.encrypt(number, data)
    });
    let encrypt = pdf.add(
        format!(
            "<< /Filter /Standard /V 1 /R 2 /Length 40 /O {} /U {} /P {} >>",
            hex_string(&security.owner_entry),
            hex_string(&security.user_entry),
            security.permissions
        )
        .into_bytes(),
    );
    let id_hex = hex_string(&id);
    pdf.finish(&format!(" /Encrypt {encrypt} 0 R /ID [{id_hex} {id_hex}]"))
}

/// `%PDF-1.7` followed by deterministic garbage: no objects, no xref, no trailer.
pub fn corrupt_pdf() -> Vec<u8> {
    let mut rng = crate::rng::XorShift64::new(0xC0_22_07);
    let mut out = b"%PDF-1.7\n".to_vec();
    out.extend((0..2048).map(|_| rng.next_u64() as u8));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
        haystack[from..]
            .windows(needle.len())
            .position(|window| window == needle)
            .map(|at| at + from)
    }

    fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack
            .windows(needle.len())
            .rposition(|window| window == needle)
    }

    fn number_at(bytes: &[u8], at: usize) -> usize {
        let digits: String = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| b as char)
            .collect();
        digits.parse().expect("a number")
    }

    /// Finds the last `startxref`, reads the xref table and checks every in-use entry points at
    /// `N 0 obj`; returns the trailer text. Works on bytes: the binary comment line means the
    /// file is not UTF-8.
    fn check_xref(pdf: &[u8]) -> String {
        let start = rfind(pdf, b"startxref\n").expect("startxref present");
        let xref_at = number_at(pdf, start + "startxref\n".len());
        assert!(
            pdf[xref_at..].starts_with(b"xref\n0 "),
            "startxref points at the xref table"
        );
        let count = number_at(pdf, xref_at + "xref\n0 ".len());
        let entries_at = find(pdf, b"\n", xref_at + 5).unwrap() + 1;
        for number in 0..count {
            let entry = std::str::from_utf8(&pdf[entries_at + number * 20..][..20]).unwrap();
            assert!(entry.ends_with("\r\n"), "entry {number} is 20 bytes");
            let offset: usize = entry[..10].parse().unwrap();
            if number == 0 {
                assert_eq!(&entry[..18], "0000000000 65535 f");
                continue;
            }
            assert_eq!(&entry[11..18], "00000 n");
            let expected = format!("{number} 0 obj\n");
            assert!(
                pdf[offset..].starts_with(expected.as_bytes()),
                "xref entry {number} points at {offset}, which is not `{}`",
                expected.trim()
            );
        }
        let trailer_at = entries_at + count * 20;
        let trailer = String::from_utf8(pdf[trailer_at..start].to_vec()).unwrap();
        assert!(trailer.starts_with("trailer"), "trailer follows the table");
        assert!(trailer.contains(&format!("/Size {count}")));
        assert!(pdf.ends_with(b"%%EOF\n"));
        trailer
    }

    /// Each stream's `/Length` equals the bytes between `stream\n` and `\nendstream`.
    fn check_stream_lengths(pdf: &[u8]) {
        let mut seen = 0;
        let mut from = 0;
        while let Some(at) = find(pdf, b"<< /Length ", from) {
            from = at + 1;
            let length = number_at(pdf, at + "<< /Length ".len());
            let data_start = find(pdf, b">>\nstream\n", at).unwrap() + ">>\nstream\n".len();
            assert!(
                pdf[data_start + length..].starts_with(b"\nendstream"),
                "stream at {at} has the /Length it declares"
            );
            seen += 1;
        }
        assert!(seen > 0, "streams were checked");
    }

    fn pages(n: usize) -> Vec<String> {
        (1..=n)
            .map(|i| format!("# Section {i}\n\nPage {i} text (with parens) and a back\\slash."))
            .collect()
    }

    #[test]
    fn pdf_xref_offsets_point_at_their_objects() {
        let trailer = check_xref(&pdf(&pages(3)));
        assert!(trailer.contains("/Root 1 0 R"));
        check_stream_lengths(&pdf(&pages(3)));
    }

    #[test]
    fn pdf_has_one_page_object_per_input_page() {
        let bytes = pdf(&pages(7));
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("/Type /Page ").count(), 7);
        assert!(text.contains("/Count 7"));
    }

    #[test]
    fn pdf_is_byte_for_byte_deterministic() {
        assert_eq!(pdf(&pages(4)), pdf(&pages(4)));
    }

    #[test]
    fn pdf_escapes_parentheses_and_backslashes() {
        let text = String::from_utf8_lossy(&pdf(&pages(1))).into_owned();
        assert!(text.contains(r"(Page 1 text \(with parens\) and a back\\slash.) Tj"));
        assert!(
            text.contains("/F2 12.00 Tf\n(Section 1) Tj"),
            "heading drawn bold"
        );
    }

    #[test]
    fn literal_writes_non_ascii_as_win_ansi_octal_escapes() {
        assert_eq!(literal("café – €5"), r"(caf\351 \226 \2005)");
        assert_eq!(literal("日本"), "(??)");
    }

    #[test]
    fn layout_wraps_long_lines_and_cuts_long_words() {
        let lines = layout(&format!("{} {}", "word ".repeat(40), "x".repeat(200)));
        for line in &lines {
            if let Line::Body(body) = line {
                assert!(body.chars().count() <= LINE_CHARS, "{body}");
            }
        }
        let joined: String = lines
            .iter()
            .filter_map(|l| match l {
                Line::Body(b) => Some(b.replace(' ', "")),
                _ => None,
            })
            .collect();
        assert_eq!(joined, format!("{}{}", "word".repeat(40), "x".repeat(200)));
    }

    #[test]
    fn long_pages_are_scaled_to_stay_on_the_page() {
        let long = "A sentence that fills a line. ".repeat(300);
        let content = String::from_utf8(text_content(&long)).unwrap();
        let leading: f32 = content
            .lines()
            .find_map(|l| l.strip_suffix(" TL"))
            .unwrap()
            .parse()
            .unwrap();
        let lines = content.matches(" Tj").count() as f32;
        assert!(lines * leading <= TEXT_HEIGHT + 1.0);
    }

    #[test]
    fn pdf_without_text_has_no_text_operators_or_fonts() {
        let bytes = pdf_without_text(3);
        check_xref(&bytes);
        check_stream_lengths(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("/Type /Page ").count(), 3);
        assert!(!text.contains("BT"));
        assert!(!text.contains("/Font"));
    }

    #[test]
    fn encrypted_pdf_trailer_names_a_standard_security_handler() {
        let bytes = encrypted_pdf();
        let trailer = check_xref(&bytes);
        check_stream_lengths(&bytes);
        assert!(trailer.contains("/Encrypt "), "{trailer}");
        assert!(trailer.contains("/ID [<"), "{trailer}");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("/Filter /Standard /V 1 /R 2 /Length 40 /O <"));
        assert!(
            !text.contains("Confidential"),
            "content streams are encrypted"
        );
    }

    #[test]
    fn corrupt_pdf_has_a_header_and_no_structure() {
        let bytes = corrupt_pdf();
        assert!(bytes.starts_with(b"%PDF-1.7\n"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("xref") && !text.contains("trailer") && !text.contains(" obj"));
        assert_eq!(bytes, corrupt_pdf());
    }
}
