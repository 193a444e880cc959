use navigator_domain::MediaType;
use navigator_parse::{ParseError, parse};

#[test]
fn html_keeps_headings_and_drops_scripts() {
    let html = b"<!doctype html><html><head><script>alert('do not index me')</script></head>\
        <body><h1>Summary of Benefits</h1><p>Preventive care is covered.</p></body></html>";
    let doc = parse(MediaType::Html, html).expect("parses");
    assert_eq!(doc.pages.len(), 1);
    let text = &doc.pages[0].text;
    assert!(text.starts_with("# Summary of Benefits\n\n"), "{text}");
    assert!(text.contains("Preventive care is covered."), "{text}");
    assert!(!text.contains("do not index me"), "{text}");
}

#[test]
fn html_without_text_is_empty() {
    let html = b"<html><body><script>x()</script>  </body></html>";
    assert_eq!(parse(MediaType::Html, html), Err(ParseError::Empty));
}

#[test]
fn markdown_passes_through_normalised() {
    let md = b"# Plan   overview  \n\n\n\nDeductible:\t$500\r\n\n## Claims\n- file\n- wait\n";
    let doc = parse(MediaType::Markdown, md).expect("parses");
    assert_eq!(
        doc.pages[0].text,
        "# Plan overview\n\nDeductible: $500\n\n## Claims\n- file\n- wait"
    );
}

#[test]
fn plain_text_passes_through_normalised() {
    let doc = parse(MediaType::Text, b"  Member ID:   42 \n\n\n\nGroup: 7").expect("parses");
    assert_eq!(doc.pages[0].text, "Member ID: 42\n\nGroup: 7");
}

#[test]
fn empty_and_whitespace_only_text_is_empty() {
    assert_eq!(parse(MediaType::Text, b""), Err(ParseError::Empty));
    assert_eq!(
        parse(MediaType::Text, b" \n\t\r\n  "),
        Err(ParseError::Empty)
    );
    assert_eq!(parse(MediaType::Markdown, b"\n\n"), Err(ParseError::Empty));
}
