use navigator_domain::MediaType;
use navigator_parse::sniff;

use crate::support::{docx, fixture, para, pdf_writer, zip};

#[test]
fn sniffing_recognises_every_supported_type_and_rejects_the_rest() {
    let pdf = pdf_writer::text_pdf(&[vec!["Hello".to_owned()]]);
    let docx = docx(&para(None, "Hello"));
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde".to_vec();
    let cases: Vec<(&str, Vec<u8>, Option<MediaType>)> = vec![
        ("generated pdf", pdf, Some(MediaType::Pdf)),
        (
            "fixture pdf",
            fixture("simulated_insurance_document.pdf"),
            Some(MediaType::Pdf),
        ),
        ("generated docx", docx, Some(MediaType::Docx)),
        (
            "html",
            b"<!DOCTYPE html><html><body><h1>Hi</h1></body></html>".to_vec(),
            Some(MediaType::Html),
        ),
        (
            "html body only",
            b"\n  <BODY>hi</BODY>".to_vec(),
            Some(MediaType::Html),
        ),
        (
            "markdown",
            b"# Policy\n\nSome *terms*.\n".to_vec(),
            Some(MediaType::Markdown),
        ),
        (
            "text",
            b"Policy number: 123\nCoverage: basic\n".to_vec(),
            Some(MediaType::Text),
        ),
        (
            "text with bom",
            b"\xEF\xBB\xBFhello".to_vec(),
            Some(MediaType::Text),
        ),
        ("png", png, None),
        ("nul bytes", b"abc\0\0\0def".to_vec(), None),
        ("invalid utf-8", b"caf\xE9 cr\xE8me".to_vec(), None),
        (
            "zip without a word document",
            zip(&[("a.txt", b"hi")]),
            None,
        ),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(sniff(&bytes), expected, "{name}");
    }
}

#[test]
fn the_fake_fixtures_do_not_sniff_as_what_their_names_claim() {
    let not_pdf = fixture("not-really-a.pdf");
    let not_docx = fixture("not-really-a.docx");
    assert_ne!(sniff(&not_pdf), Some(MediaType::Pdf));
    assert_ne!(sniff(&not_docx), Some(MediaType::Docx));
    assert!(matches!(sniff(&not_pdf), Some(MediaType::Text) | None));
}
