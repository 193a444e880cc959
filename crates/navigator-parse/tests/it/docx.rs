use navigator_domain::MediaType;
use navigator_parse::{ParseError, parse};

use crate::support::{docx, docx_with_document, fixture, para, table, zip};

#[test]
fn a_docx_with_headings_paragraphs_and_a_table_becomes_markdown() {
    let body = [
        para(Some("Title"), "Member Handbook"),
        para(Some("berschrift1"), "Claims"),
        para(None, "Submit   claims within 60 days &amp; keep receipts."),
        para(Some("Heading2"), "Appeals"),
        table(&[&["Plan", "Deductible"], &["Basic", "$500"]]),
        para(None, "Closing words."),
    ]
    .concat();
    let doc = parse(MediaType::Docx, &docx(&body)).expect("parses");
    assert_eq!(doc.media_type, MediaType::Docx);
    assert_eq!(doc.pages.len(), 1);
    assert_eq!(
        doc.pages[0].text,
        "# Member Handbook\n\n# Claims\n\nSubmit claims within 60 days & keep receipts.\n\n\
         ## Appeals\n\nPlan | Deductible\nBasic | $500\n\nClosing words."
    );
}

#[test]
fn tabs_and_breaks_inside_runs_become_spaces_and_newlines() {
    let body = "<w:p><w:pPr><w:tabs><w:tab w:val=\"left\" w:pos=\"720\"/></w:tabs></w:pPr>\
        <w:r><w:t>Name:</w:t><w:tab/><w:t>Jane</w:t><w:br/><w:t>Line two</w:t></w:r>\
        <w:r><w:delText>deleted</w:delText><w:instrText>PAGE</w:instrText></w:r></w:p>";
    let doc = parse(MediaType::Docx, &docx(body)).expect("parses");
    assert_eq!(doc.pages[0].text, "Name: Jane\nLine two");
}

#[test]
fn a_docx_with_a_doctype_is_corrupt() {
    let document = b"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">]>\n\
        <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
        <w:body><w:p><w:r><w:t>&lol;</w:t></w:r></w:p></w:body></w:document>";
    let error = parse(MediaType::Docx, &docx_with_document(document)).expect_err("fails");
    assert!(matches!(error, ParseError::Corrupt(_)), "{error:?}");
}

#[test]
fn a_docx_whose_document_inflates_far_beyond_its_size_is_refused() {
    // 16 MiB of spaces deflate to a few KiB: a bomb by ratio long before any size cap.
    let mut document = b"<w:document xmlns:w=\"x\"><w:body><w:p><w:r><w:t>".to_vec();
    document.resize(document.len() + 16 * 1024 * 1024, b' ');
    document.extend_from_slice(b"</w:t></w:r></w:p></w:body></w:document>");
    let bomb = zip(&[("word/document.xml", &document)]);
    drop(document);
    assert!(bomb.len() < 256 * 1024);
    assert_eq!(
        parse(MediaType::Docx, &bomb),
        Err(ParseError::ResourceLimit)
    );
}

#[test]
fn a_docx_with_malformed_xml_is_corrupt() {
    let broken = zip(&[("word/document.xml", b"<w:document><w:body><w:p></w:body>")]);
    let error = parse(MediaType::Docx, &broken).expect_err("fails");
    assert!(matches!(error, ParseError::Corrupt(_)), "{error:?}");
}

#[test]
fn a_truncated_docx_archive_is_corrupt() {
    let whole = docx(&para(None, "hello"));
    let truncated = &whole[..whole.len() - 30];
    // Still starts like a ZIP but the central directory is gone: not even a DOCX any more.
    assert_eq!(
        parse(MediaType::Docx, truncated),
        Err(ParseError::Unsupported)
    );
    // Central directory intact, entry data damaged.
    let mut damaged = whole.clone();
    let name = b"word/document.xml";
    let at = damaged
        .windows(name.len())
        .position(|w| w == name)
        .expect("local header")
        + name.len();
    for b in &mut damaged[at + 4..at + 40] {
        *b ^= 0x5A;
    }
    let error = parse(MediaType::Docx, &damaged).expect_err("fails");
    assert!(matches!(error, ParseError::Corrupt(_)), "{error:?}");
}

#[test]
fn a_docx_without_text_is_empty() {
    let doc = docx("<w:p/><w:p><w:r><w:t>   </w:t></w:r></w:p>");
    assert_eq!(parse(MediaType::Docx, &doc), Err(ParseError::Empty));
}

#[test]
fn the_fake_docx_fixture_is_refused_as_unsupported() {
    assert_eq!(
        parse(MediaType::Docx, &fixture("not-really-a.docx")),
        Err(ParseError::Unsupported)
    );
}

#[test]
fn a_docx_nested_deeper_than_the_xml_limit_is_corrupt() {
    let body = "<w:sdt>".repeat(300) + &para(None, "deep") + &"</w:sdt>".repeat(300);
    let error = parse(MediaType::Docx, &docx(&body)).expect_err("fails");
    assert!(matches!(error, ParseError::Corrupt(_)), "{error:?}");
}
