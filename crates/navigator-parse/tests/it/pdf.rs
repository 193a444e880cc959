use navigator_domain::MediaType;
use navigator_parse::{ParseError, parse};

use crate::support::fixture;
use crate::support::pdf_writer::{self, PdfOptions, build, lines_content};

#[test]
fn the_fixture_pdf_keeps_the_claims_sentence_contiguous_on_page_one() {
    let doc = parse(MediaType::Pdf, &fixture("simulated_insurance_document.pdf")).expect("parses");
    assert_eq!(doc.media_type, MediaType::Pdf);
    assert_eq!(doc.pages.len(), 1);
    assert_eq!(doc.pages[0].number, 1);
    let text = &doc.pages[0].text;
    assert!(
        text.contains("All claims must be submitted within 60 days of service."),
        "{text}"
    );
}

#[test]
fn numbered_section_lines_in_the_fixture_become_headings_by_depth() {
    let doc = parse(MediaType::Pdf, &fixture("simulated_insurance_document.pdf")).expect("parses");
    let text = &doc.pages[0].text;
    assert!(text.contains("\n# 4. Claims and Reimbursement\n"), "{text}");
    assert!(text.contains("\n## 3.1 In-Network Services\n"), "{text}");
}

#[test]
fn each_page_of_a_generated_pdf_carries_its_own_text() {
    let pages: Vec<Vec<String>> = (1..=5)
        .map(|n| {
            vec![
                format!("Page {n} opens with marker{n}."),
                format!("Second line of page {n} (with parentheses)."),
            ]
        })
        .collect();
    let doc = parse(MediaType::Pdf, &pdf_writer::text_pdf(&pages)).expect("parses");
    assert_eq!(doc.pages.len(), 5);
    for (i, page) in doc.pages.iter().enumerate() {
        let n = i + 1;
        assert_eq!(page.number as usize, n);
        assert!(
            page.text
                .contains(&format!("Page {n} opens with marker{n}.")),
            "{}",
            page.text
        );
        assert!(
            page.text.contains(&format!("page {n} (with parentheses).")),
            "{}",
            page.text
        );
        for other in (1..=5).filter(|o| *o != n) {
            assert!(
                !page.text.contains(&format!("marker{other}")),
                "{}",
                page.text
            );
        }
    }
}

#[test]
fn lines_written_with_t_star_come_out_as_separate_lines() {
    let pages = vec![vec!["first line".to_owned(), "second line".to_owned()]];
    let doc = parse(MediaType::Pdf, &pdf_writer::text_pdf(&pages)).expect("parses");
    assert_eq!(doc.pages[0].text, "first line\nsecond line");
}

#[test]
fn large_tj_adjustments_are_word_spaces_and_small_ones_are_kerning() {
    let content = b"BT /F1 12 Tf 72 700 Td [(Cover) -20 (age) -320 (details)] TJ ET".to_vec();
    let doc = parse(MediaType::Pdf, &build(&[content], &PdfOptions::default())).expect("parses");
    assert_eq!(doc.pages[0].text, "Coverage details");
}

#[test]
fn separately_positioned_words_on_one_line_get_spaces_between_them() {
    // Word by word with absolute positions, as some generators write text.
    let content = b"BT /F1 12 Tf 1 0 0 1 72 700 Tm (Policy) Tj 1 0 0 1 112 700 Tm (holder) Tj \
        1 0 0 1 150 700 Tm (rights) Tj 1 0 0 1 72 686 Tm (next) Tj ET"
        .to_vec();
    let doc = parse(MediaType::Pdf, &build(&[content], &PdfOptions::default())).expect("parses");
    assert_eq!(doc.pages[0].text, "Policy holder rights\nnext");
}

#[test]
fn an_encrypted_pdf_is_reported_as_encrypted() {
    let content = lines_content(&["secret".to_owned()]);
    let pdf = build(
        &[content],
        &PdfOptions {
            encrypted: true,
            ..PdfOptions::default()
        },
    );
    assert_eq!(parse(MediaType::Pdf, &pdf), Err(ParseError::Encrypted));
}

#[test]
fn a_pdf_header_followed_by_garbage_is_corrupt() {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let error = parse(MediaType::Pdf, &bytes).expect_err("fails");
    assert!(matches!(error, ParseError::Corrupt(_)), "{error:?}");
}

#[test]
fn a_pdf_with_pages_but_no_text_operators_has_no_text_layer() {
    let drawing = b"0 0 1 rg 72 72 200 200 re f 0 0 m 300 300 l S".to_vec();
    let pdf = build(&[drawing.clone(), drawing], &PdfOptions::default());
    assert_eq!(parse(MediaType::Pdf, &pdf), Err(ParseError::NoTextLayer));
}

#[test]
fn a_pdf_without_pages_is_empty() {
    let pdf = build(&[], &PdfOptions::default());
    assert_eq!(parse(MediaType::Pdf, &pdf), Err(ParseError::Empty));
}

#[test]
fn pages_without_text_keep_their_place_between_pages_with_text() {
    let pdf = build(
        &[
            lines_content(&["one".to_owned()]),
            b"0 0 m 1 1 l S".to_vec(),
            lines_content(&["three".to_owned()]),
        ],
        &PdfOptions::default(),
    );
    let doc = parse(MediaType::Pdf, &pdf).expect("parses");
    let texts: Vec<(u32, &str)> = doc
        .pages
        .iter()
        .map(|p| (p.number, p.text.as_str()))
        .collect();
    assert_eq!(texts, vec![(1, "one"), (2, ""), (3, "three")]);
}

#[test]
fn control_characters_in_pdf_strings_are_removed() {
    let content = b"BT /F1 12 Tf 72 700 Td (a\\000b\\007c) Tj ET".to_vec();
    let doc = parse(MediaType::Pdf, &build(&[content], &PdfOptions::default())).expect("parses");
    assert_eq!(doc.pages[0].text, "abc");
}

#[test]
fn text_inside_form_xobjects_is_extracted_in_place() {
    let page = b"BT /F1 12 Tf 72 700 Td (Before the form.) Tj ET q /Fm1 Do Q \
        BT /F1 12 Tf 72 500 Td (After the form.) Tj ET"
        .to_vec();
    // The form's /Matrix moves it down 100 pt: its line lands between the page's two lines.
    let form = b"BT /F1 12 Tf 72 700 Td (Inside the form.) Tj ET".to_vec();
    let options = PdfOptions {
        form: Some(form),
        ..PdfOptions::default()
    };
    let doc = parse(MediaType::Pdf, &build(&[page], &options)).expect("parses");
    assert_eq!(
        doc.pages[0].text,
        "Before the form.\n\nInside the form.\n\nAfter the form."
    );
}
