//! A plain, valid HTML5 page.

use super::docx::xml_escape;

/// An HTML5 document: `title` as `<title>` and `<h1>`, then one `<section>` per `(heading, body)`
/// with an `<h2>` (omitted when the heading is empty) and one `<p>` per blank-line-separated
/// paragraph of `body`. Everything is escaped.
pub fn html(title: &str, sections: &[(String, String)]) -> Vec<u8> {
    let title = xml_escape(title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    for (heading, body) in sections {
        out.push_str("<section>\n");
        if !heading.trim().is_empty() {
            out.push_str(&format!("<h2>{}</h2>\n", xml_escape(heading.trim())));
        }
        for paragraph in body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
            out.push_str(&format!("<p>{}</p>\n", xml_escape(paragraph)));
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_has_title_sections_and_escaped_paragraphs() {
        let page = String::from_utf8(html(
            "Plan <2026>",
            &[
                ("Benefits".to_owned(), "First & one.\n\nSecond.".to_owned()),
                (String::new(), "No heading.".to_owned()),
            ],
        ))
        .unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<title>Plan &lt;2026&gt;</title>"));
        assert!(page.contains("<h2>Benefits</h2>\n<p>First &amp; one.</p>\n<p>Second.</p>"));
        assert!(page.contains("<section>\n<p>No heading.</p>"));
        assert!(page.trim_end().ends_with("</html>"));
    }
}
