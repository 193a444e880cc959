//! A tiny PDF writer for tests and examples: uncompressed content streams, the standard
//! Helvetica font (WinAnsi, no embedded metrics), one content stream per page, a correct xref.
//! Test-local on purpose; the shared fixtures crate is someone else's.
#![allow(dead_code)]

/// Options for [`build`].
#[derive(Default)]
pub struct PdfOptions {
    /// Adds a (bogus) standard security handler `/Encrypt` dictionary to the trailer.
    pub encrypted: bool,
    /// Content of a form XObject every page can paint with `/Fm1 Do`.
    pub form: Option<Vec<u8>>,
}

/// A PDF whose page N shows `pages[N]`'s lines, top to bottom, one `Tj` per line.
pub fn text_pdf(pages: &[Vec<String>]) -> Vec<u8> {
    let contents: Vec<Vec<u8>> = pages.iter().map(|lines| lines_content(lines)).collect();
    build(&contents, &PdfOptions::default())
}

/// A content stream that writes `lines` in 11 pt Helvetica with 14 pt leading.
pub fn lines_content(lines: &[String]) -> Vec<u8> {
    let mut content = b"BT\n/F1 11 Tf\n14 TL\n72 760 Td\n".to_vec();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            content.extend_from_slice(b"T*\n");
        }
        content.extend_from_slice(&literal(line));
        content.extend_from_slice(b" Tj\n");
    }
    content.extend_from_slice(b"ET\n");
    content
}

/// `text` as a PDF literal string, `(` `)` and `\` escaped.
pub fn literal(text: &str) -> Vec<u8> {
    let mut out = vec![b'('];
    for b in text.bytes() {
        if matches!(b, b'(' | b')' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b')');
    out
}

/// A PDF with one page per content stream (an empty slice gives a document with zero pages).
pub fn build(contents: &[Vec<u8>], options: &PdfOptions) -> Vec<u8> {
    // Objects: 1 catalog, 2 page tree, 3 font, then (page, content) pairs, then /Encrypt.
    let page_ids: Vec<usize> = (0..contents.len()).map(|i| 4 + 2 * i).collect();
    let mut objects: Vec<Vec<u8>> = Vec::new();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    let kids: Vec<String> = page_ids.iter().map(|id| format!("{id} 0 R")).collect();
    objects.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} /MediaBox [0 0 612 792] >>",
            kids.join(" "),
            contents.len()
        )
        .into_bytes(),
    );
    objects.push(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    );
    let form_id = 4 + 2 * contents.len();
    let xobjects = if options.form.is_some() {
        format!(" /XObject << /Fm1 {form_id} 0 R >>")
    } else {
        String::new()
    };
    for (i, content) in contents.iter().enumerate() {
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >>{xobjects} >> /Contents {} 0 R >>",
                page_ids[i] + 1
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(content);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }
    if let Some(form) = &options.form {
        let mut stream = format!(
            "<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Matrix [1 0 0 1 0 -100] /Length {} >>\nstream\n",
            form.len()
        )
        .into_bytes();
        stream.extend_from_slice(form);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }
    let encrypt_id = objects.len() + 1;
    if options.encrypted {
        let filler = "0".repeat(64);
        objects.push(
            format!("<< /Filter /Standard /V 1 /R 2 /O <{filler}> /U <{filler}> /P -4 >>")
                .into_bytes(),
        );
    }

    let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref_at = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let mut trailer = format!("<< /Size {} /Root 1 0 R", objects.len() + 1);
    if options.encrypted {
        trailer.push_str(&format!(
            " /Encrypt {encrypt_id} 0 R /ID [<00112233445566778899AABBCCDDEEFF> <00112233445566778899AABBCCDDEEFF>]"
        ));
    }
    trailer.push_str(" >>");
    pdf.extend_from_slice(format!("trailer\n{trailer}\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    pdf
}
