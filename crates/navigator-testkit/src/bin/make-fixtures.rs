//! `make-fixtures OUT_DIR`: writes the standard fixture set (see the crate's `//!` note).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use navigator_testkit::docs;

fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let known = docs::known_passage_pages();
    let known_text = known.join("\n\n");
    vec![
        ("multi-page.pdf", docs::pdf(&known)),
        (
            "policy-200.pdf",
            docs::pdf(&docs::insurance_policy_pages(200, 1)),
        ),
        ("no-text-layer.pdf", docs::pdf_without_text(3)),
        ("encrypted.pdf", docs::encrypted_pdf()),
        ("corrupt.pdf", docs::corrupt_pdf()),
        (
            "policy.docx",
            docs::docx(&docs::markdown_paragraphs(&known_text)),
        ),
        (
            "policy.html",
            docs::html(
                "Evidence of Coverage",
                &docs::markdown_sections(&known_text),
            ),
        ),
        ("empty.txt", Vec::new()),
    ]
}

fn write_all(out_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out_dir)?;
    for (name, bytes) in fixtures() {
        std::fs::write(out_dir.join(name), &bytes)?;
        println!("{}\t{} bytes", out_dir.join(name).display(), bytes.len());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out_dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: make-fixtures OUT_DIR");
        return ExitCode::from(2);
    };
    match write_all(&PathBuf::from(out_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("make-fixtures: cannot write fixtures: {error}");
            ExitCode::FAILURE
        }
    }
}
