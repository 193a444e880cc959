//! Mutated documents (bytes flipped, inserted, removed) must come back as a result, never a
//! panic, from the in-process parsers. Deterministic: a fixed xorshift sequence, no randomness.

use navigator_domain::MediaType;
use navigator_parse::{parse, sniff};

use crate::support::{docx, fixture, para, pdf_writer, table};

#[test]
fn mutated_documents_of_every_type_never_panic_the_parsers() {
    let seeds: Vec<Vec<u8>> = vec![
        fixture("simulated_insurance_document.pdf"),
        pdf_writer::text_pdf(&[vec!["Hello (world)".to_owned()], vec!["two".to_owned()]]),
        docx(
            &[
                para(Some("Heading1"), "T"),
                table(&[&["a", "b"]]),
                para(None, "body"),
            ]
            .concat(),
        ),
        b"<!doctype html><html><body><h1>x</h1><div><p>a<table><tr><td>b</table></div>".to_vec(),
        b"# t\n\n```\ncode\n```\n- item\n".to_vec(),
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..1_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..1 + next() % 8 {
            if bytes.is_empty() {
                break;
            }
            let at = next() as usize % bytes.len();
            match next() % 4 {
                0 => bytes[at] = next() as u8,
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, next() as u8),
                _ => {
                    let end = (at + next() as usize % 64).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
        let media = sniff(&bytes).unwrap_or(MediaType::Text);
        let outcome = std::panic::catch_unwind(|| parse(media, &bytes));
        assert!(outcome.is_ok(), "round {round} panicked parsing {media:?}");
    }
}
