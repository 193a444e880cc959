//! Strict `${VAR}` substitution in the configuration text, before YAML parsing.
//!
//! Grammar: `${VAR}` (unset is an error; set-but-empty gives the empty string),
//! `${VAR:-default}` (unset or empty gives `default`, taken literally), `${VAR:?message}` (unset
//! or empty is an error carrying `message`), and `$$` for a literal `$`. A `$` followed by
//! anything else — including a bare `$VAR` — stays literal, unlike a shell.
//!
//! Why not `shellexpand`: it expands bare `$VAR`, which silently eats dollar signs in passwords
//! and regexes, and it cannot report the line of a missing variable.
//!
//! The expander knows just enough YAML to be safe on one line at a time: comments are copied
//! unexpanded (a commented-out `${VAR:?…}` must not fail start-up), and a value substituted inside
//! a quoted scalar is escaped for that quoting style so it cannot end the string early. A value
//! with a line break is refused in a plain scalar, where it would inject new keys.
//! Limitation: quoted scalars spanning several lines are not tracked; quote state resets at each
//! line break.

use super::error::{ConfigError, Origin};
use std::collections::HashMap;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Plain,
    Single,
    Double,
}

/// Expands every substitution in `source`, reporting all problems with their line numbers.
pub(crate) fn expand(
    source: &str,
    env: &HashMap<String, String>,
) -> Result<String, Vec<ConfigError>> {
    let mut out = String::with_capacity(source.len());
    let mut errors = Vec::new();
    for (index, line) in source.split_inclusive('\n').enumerate() {
        let line_no = index as u64 + 1;
        expand_line(line, line_no, env, &mut out, &mut errors);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn expand_line(
    line: &str,
    line_no: u64,
    env: &HashMap<String, String>,
    out: &mut String,
    errors: &mut Vec<ConfigError>,
) {
    let mut quote = Quote::Plain;
    // The last character written in plain context that was not whitespace, to decide whether a
    // quote character opens a quoted scalar or is part of a plain one (`don't`).
    let mut last_plain_non_space: Option<char> = None;
    let mut prev: Option<char> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '$' => match chars.peek().map(|&(_, next)| next) {
                Some('$') => {
                    chars.next();
                    out.push('$');
                }
                Some('{') => {
                    let body_start = at + 2;
                    match line[body_start..].find('}') {
                        Some(len) => {
                            let body = &line[body_start..body_start + len];
                            match substitute(body, env) {
                                Ok(value) => {
                                    push_escaped(&value, quote, body, line_no, out, errors)
                                }
                                Err(message) => errors.push(ConfigError::general(
                                    message,
                                    Some(Origin::Line(line_no)),
                                )),
                            }
                            // Skip the body and the closing brace.
                            while chars.next_if(|&(i, _)| i <= body_start + len).is_some() {}
                        }
                        None => {
                            errors.push(ConfigError::general(
                                "unterminated `${` (the closing `}` must be on the same line)",
                                Some(Origin::Line(line_no)),
                            ));
                            out.push_str(&line[at..]);
                            return;
                        }
                    }
                }
                _ => out.push('$'),
            },
            '#' if quote == Quote::Plain && prev.is_none_or(char::is_whitespace) => {
                out.push_str(&line[at..]);
                return;
            }
            '\'' if quote == Quote::Plain && opens_quote(prev, last_plain_non_space) => {
                quote = Quote::Single;
                out.push(c);
            }
            '"' if quote == Quote::Plain && opens_quote(prev, last_plain_non_space) => {
                quote = Quote::Double;
                out.push(c);
            }
            '\'' if quote == Quote::Single => {
                if chars.peek().map(|&(_, next)| next) == Some('\'') {
                    chars.next();
                    out.push_str("''");
                } else {
                    quote = Quote::Plain;
                    out.push(c);
                }
            }
            '"' if quote == Quote::Double => {
                quote = Quote::Plain;
                out.push(c);
            }
            '\\' if quote == Quote::Double => {
                out.push(c);
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            }
            _ => out.push(c),
        }
        if quote == Quote::Plain && !c.is_whitespace() {
            last_plain_non_space = Some(c);
        }
        prev = Some(c);
    }
}

/// A quote opens a quoted scalar only where a scalar can start: at the start of the line, or
/// after whitespace that follows an indicator (`key: '…'`, `- '…'`), or right after `[ { ,`.
fn opens_quote(prev: Option<char>, last_plain_non_space: Option<char>) -> bool {
    match prev {
        None => true,
        Some('[' | '{' | ',') => true,
        Some(p) if p.is_whitespace() => matches!(
            last_plain_non_space,
            None | Some(':' | '-' | '?' | '[' | '{' | ',')
        ),
        Some(_) => false,
    }
}

/// Resolves the text between `${` and `}`.
fn substitute(body: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let (name, op) = match body.find(':') {
        Some(i) => (&body[..i], Some(&body[i..])),
        None => (body, None),
    };
    if !is_var_name(name) {
        return Err(format!(
            "invalid substitution `${{{body}}}`: expected ${{VAR}}, ${{VAR:-default}} or ${{VAR:?message}}"
        ));
    }
    let value = env.get(name);
    match op {
        None => value
            .cloned()
            .ok_or_else(|| format!("environment variable {name} is not set (write ${{{name}:-default}} to make it optional)")),
        Some(op) if op.starts_with(":-") => Ok(match value {
            Some(v) if !v.is_empty() => v.clone(),
            _ => op[2..].to_owned(),
        }),
        Some(op) if op.starts_with(":?") => match value {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => {
                let message = op[2..].trim();
                Err(if message.is_empty() {
                    format!("environment variable {name} is required")
                } else {
                    format!("environment variable {name} is not set: {message}")
                })
            }
        },
        Some(_) => Err(format!(
            "invalid substitution `${{{name}…}}`: expected ${{VAR}}, ${{VAR:-default}} or ${{VAR:?message}}"
        )),
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes a substituted value so that it stays one scalar in its quoting context.
fn push_escaped(
    value: &str,
    quote: Quote,
    body: &str,
    line_no: u64,
    out: &mut String,
    errors: &mut Vec<ConfigError>,
) {
    let has_line_break = value.contains(['\n', '\r']);
    match quote {
        Quote::Double => {
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c => out.push(c),
                }
            }
        }
        Quote::Single if !has_line_break => out.push_str(&value.replace('\'', "''")),
        Quote::Plain if !has_line_break => out.push_str(value),
        Quote::Single | Quote::Plain => {
            let name = body.split(':').next().unwrap_or(body);
            errors.push(ConfigError::general(
                format!(
                    "the value of {name} contains a line break; put ${{{name}}} in double quotes"
                ),
                Some(Origin::Line(line_no)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ok(source: &str, pairs: &[(&str, &str)]) -> String {
        expand(source, &env(pairs)).expect("expands")
    }

    #[test]
    fn comments_are_copied_without_expansion() {
        assert_eq!(
            ok("a: 1 # ${MISSING:?never}\n# ${ALSO_MISSING}\n", &[]),
            "a: 1 # ${MISSING:?never}\n# ${ALSO_MISSING}\n"
        );
    }

    #[test]
    fn hash_inside_a_plain_or_quoted_scalar_is_not_a_comment() {
        assert_eq!(
            ok("a: x#${A}\nb: \"# ${A}\"\n", &[("A", "1")]),
            "a: x#1\nb: \"# 1\"\n"
        );
    }

    #[test]
    fn values_are_escaped_for_their_quoting_style() {
        let vars = [("V", "it's \"q\" \\ ok")];
        assert_eq!(
            ok("a: \"${V}\"\nb: '${V}'\n", &vars),
            "a: \"it's \\\"q\\\" \\\\ ok\"\nb: 'it''s \"q\" \\ ok'\n"
        );
    }

    #[test]
    fn apostrophe_inside_a_plain_scalar_does_not_open_a_quote() {
        assert_eq!(
            ok("a: don't ${V} # c ${X}\n", &[("V", "1")]),
            "a: don't 1 # c ${X}\n"
        );
    }

    #[test]
    fn line_break_in_a_plain_substitution_is_refused() {
        let errors = expand("a: ${V}\n", &env(&[("V", "1\nb: 2")])).unwrap_err();
        assert!(errors[0].message.contains("line break"), "{errors:?}");
    }

    #[test]
    fn unterminated_and_malformed_substitutions_are_errors_with_lines() {
        let errors = expand("a: ${V\nb: ${1X}\nc: ${V:+x}\n", &env(&[("V", "1")])).unwrap_err();
        let lines: Vec<_> = errors.iter().map(|e| e.origin.clone()).collect();
        assert_eq!(
            lines,
            [
                Some(Origin::Line(1)),
                Some(Origin::Line(2)),
                Some(Origin::Line(3))
            ]
        );
    }
}
