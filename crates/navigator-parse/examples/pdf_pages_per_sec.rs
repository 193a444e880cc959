//! Throughput check for the PDF parser: builds a 200-page text PDF in memory (about 2,500
//! characters per page, varied words, a numbered heading per page, some lines as kerned `TJ`
//! arrays) and reports pages per second for `navigator_parse::parse`.
//!
//! `cargo run --release -p navigator-parse --example pdf_pages_per_sec`

#[path = "../tests/it/support/pdf_writer.rs"]
mod pdf_writer;

use std::time::Instant;

use navigator_domain::MediaType;

const PAGES: usize = 200;
const CHARS_PER_PAGE: usize = 2_500;
const ROUNDS: usize = 5;

const WORDS: &[&str] = &[
    "policy",
    "coverage",
    "deductible",
    "premium",
    "claim",
    "member",
    "provider",
    "network",
    "benefit",
    "exclusion",
    "copayment",
    "coinsurance",
    "emergency",
    "prescription",
    "annual",
    "maximum",
    "out-of-pocket",
    "eligible",
    "dependent",
    "enrollment",
    "preauthorization",
    "specialist",
    "hospital",
    "outpatient",
    "inpatient",
    "reimbursement",
    "appeal",
    "grievance",
    "the",
    "and",
    "of",
    "to",
    "within",
    "days",
    "must",
    "be",
    "is",
    "for",
    "with",
    "under",
];

fn main() {
    let pdf = build_document();
    println!("document: {PAGES} pages, {} bytes", pdf.len());

    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let doc = navigator_parse::parse(MediaType::Pdf, &pdf).expect("parses");
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(doc.pages.len(), PAGES);
        let first = &doc.pages[0].text;
        assert!(first.starts_with("# 1. Section 1 Benefits\n\n"), "{first}");
        assert!(doc.pages.iter().all(|p| p.text.len() >= CHARS_PER_PAGE));
        best = best.min(elapsed);
    }
    println!(
        "best of {ROUNDS}: {:.1} ms, {:.0} pages/s",
        best * 1000.0,
        PAGES as f64 / best
    );
}

fn build_document() -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let contents: Vec<Vec<u8>> = (1..=PAGES)
        .map(|page| {
            let mut content = format!(
                "BT\n/F1 14 Tf\n72 760 Td\n({page}. Section {page} Benefits) Tj\n/F1 10 Tf\n12 TL\n0 -24 Td\n"
            )
            .into_bytes();
            let mut chars = 0;
            let mut line_no = 0;
            while chars < CHARS_PER_PAGE {
                let mut line = Vec::new();
                let mut len = 0;
                while len < 90 {
                    let word = WORDS[(next() % WORDS.len() as u64) as usize];
                    len += word.len() + 1;
                    line.push(word);
                }
                chars += len;
                if line_no > 0 {
                    content.extend_from_slice(b"T*\n");
                }
                if line_no % 3 == 2 {
                    // A kerned TJ array: word gaps as large negative adjustments.
                    content.push(b'[');
                    for word in &line {
                        content.extend_from_slice(&pdf_writer::literal(word));
                        content.extend_from_slice(b" -280 ");
                    }
                    content.extend_from_slice(b"] TJ\n");
                } else {
                    content.extend_from_slice(&pdf_writer::literal(&line.join(" ")));
                    content.extend_from_slice(b" Tj\n");
                }
                line_no += 1;
            }
            content.extend_from_slice(b"ET\n");
            content
        })
        .collect();
    pdf_writer::build(&contents, &pdf_writer::PdfOptions::default())
}
