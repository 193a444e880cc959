//! A minimal WordprocessingML package: the five parts Word, LibreOffice and docx parsers need.

use std::io::{Cursor, Write as _};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/></Types>"#;

const PACKAGE_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

const DOCUMENT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#;

const W_NS: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";

pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 forbids outright; a generator must never emit them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn styles() -> String {
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="{W_NS}"><w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/><w:rPr><w:sz w:val="22"/></w:rPr></w:style>"#
    );
    for level in 1..=6u8 {
        let size = 36 - u32::from(level) * 3;
        out.push_str(&format!(
            r#"<w:style w:type="paragraph" w:styleId="Heading{level}"><w:name w:val="heading {level}"/><w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:qFormat/><w:pPr><w:keepNext/><w:outlineLvl w:val="{}"/></w:pPr><w:rPr><w:b/><w:sz w:val="{size}"/></w:rPr></w:style>"#,
            level - 1
        ));
    }
    out.push_str("</w:styles>");
    out
}

fn document(paragraphs: &[(Option<u8>, String)]) -> String {
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="{W_NS}"><w:body>"#
    );
    for (level, text) in paragraphs {
        out.push_str("<w:p>");
        if let Some(level) = level {
            let level = (*level).clamp(1, 6);
            out.push_str(&format!(
                r#"<w:pPr><w:pStyle w:val="Heading{level}"/></w:pPr>"#
            ));
        }
        // Line breaks inside a paragraph become <w:br/>, as Word writes a soft return.
        out.push_str("<w:r>");
        for (index, line) in text.split('\n').enumerate() {
            if index > 0 {
                out.push_str("<w:br/>");
            }
            out.push_str(&format!(
                r#"<w:t xml:space="preserve">{}</w:t>"#,
                xml_escape(line)
            ));
        }
        out.push_str("</w:r></w:p>");
    }
    out.push_str(r#"<w:sectPr><w:pgSz w:w="12240" w:h="15840"/></w:sectPr></w:body></w:document>"#);
    out
}

/// A minimal valid DOCX: one `w:p` per paragraph; `Some(level)` (1–6) makes it a heading through the
/// `HeadingN` paragraph style defined in `word/styles.xml`. Deterministic: fixed timestamps and
/// permissions in the zip.
pub fn docx(paragraphs: &[(Option<u8>, String)]) -> Vec<u8> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let parts = [
        ("[Content_Types].xml", CONTENT_TYPES.to_owned()),
        ("_rels/.rels", PACKAGE_RELS.to_owned()),
        ("word/document.xml", document(paragraphs)),
        ("word/_rels/document.xml.rels", DOCUMENT_RELS.to_owned()),
        ("word/styles.xml", styles()),
    ];
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in parts {
        zip.start_file(name, options)
            .expect("writing to memory cannot fail");
        zip.write_all(content.as_bytes())
            .expect("writing to memory cannot fail");
    }
    zip.finish()
        .expect("writing to memory cannot fail")
        .into_inner()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn part(bytes: &[u8], name: &str) -> String {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a valid zip");
        let mut file = archive.by_name(name).expect("part present");
        let mut out = String::new();
        file.read_to_string(&mut out).unwrap();
        out
    }

    fn sample() -> Vec<u8> {
        docx(&[
            (Some(1), "Benefits".to_owned()),
            (Some(2), "Dental & Vision".to_owned()),
            (None, "Cleanings are covered <twice> a year.".to_owned()),
        ])
    }

    #[test]
    fn docx_holds_the_five_required_parts() {
        let bytes = sample();
        let archive = zip::ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
        let mut names: Vec<String> = archive
            .file_names()
            .map(|name| name.expect("utf-8 name").into_owned())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "[Content_Types].xml",
                "_rels/.rels",
                "word/_rels/document.xml.rels",
                "word/document.xml",
                "word/styles.xml"
            ]
        );
    }

    #[test]
    fn docx_headings_use_heading_styles_and_text_is_escaped() {
        let document = part(&sample(), "word/document.xml");
        assert!(document.contains(
            r#"<w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t xml:space="preserve">Benefits</w:t>"#
        ));
        assert!(document.contains("Dental &amp; Vision"));
        assert!(document.contains("covered &lt;twice&gt; a year."));
        assert!(part(&sample(), "word/styles.xml").contains(r#"w:styleId="Heading2""#));
    }

    #[test]
    fn docx_is_byte_for_byte_deterministic() {
        assert_eq!(sample(), sample());
    }
}
