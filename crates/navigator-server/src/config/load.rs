//! From text to a validated [`Config`]: substitution, a located YAML tree, environment
//! overrides, one deserialisation, derived defaults, validation.
//!
//! Why a tree of our own instead of deserialising the file straight into `Config`: overrides
//! must be merged before the single deserialisation, and serde's derive reports a wrong type
//! without saying which key held it. The tree keeps each key's origin (file line or environment
//! variable) and each plain scalar's source text, and a wrong type is pinned to its key by trying
//! that one value against the defaults.

use super::error::{ConfigError, ConfigErrors, Origin};
use super::expand::expand;
use super::validate::validate;
use super::{Config, REDACTED};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_saphyr::{DuplicateKeyPolicy, MessageFormatter, Spanned};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// The file read when no path is given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "navigator.yaml";

/// Prefix of environment overrides: `NAVIGATOR__WORKERS__CONCURRENCY=8` sets
/// `workers.concurrency`.
pub const ENV_PREFIX: &str = "NAVIGATOR__";

/// Loads the configuration from `path` (which must exist), else from `./navigator.yaml` if it
/// exists, else from the built-in defaults; then applies `NAVIGATOR__…` overrides from `env`
/// and validates. `env` is the process environment in production (`std::env::vars()`) and a
/// literal map in tests; nothing here reads the environment itself.
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|error| {
            ConfigErrors::new(vec![ConfigError::general(
                format!("cannot read config file {}: {error}", path.display()),
                None,
            )])
        })
    };
    let source = match path {
        Some(path) => read(path)?,
        None if Path::new(DEFAULT_CONFIG_PATH).is_file() => read(Path::new(DEFAULT_CONFIG_PATH))?,
        None => String::new(),
    };
    load_from_str(&source, env)
}

/// [`load`] for configuration text already in memory (tests, `preflight` of a candidate file).
pub fn load_from_str(source: &str, env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
    let text = expand(source, env).map_err(ConfigErrors::new)?;
    let mut tree = parse_tree(&text).map_err(ConfigErrors::new)?;
    let schema = schema();

    let mut errors = Vec::new();
    remove_unknown_keys(&mut tree, &schema, &mut Vec::new(), &mut errors);
    apply_overrides(&mut tree, env, &schema, &mut errors);
    settle_types(&mut tree, &schema, &mut Vec::new(), &mut errors);

    let config = match Config::deserialize(tree_to_value(&tree)) {
        Ok(config) => config.with_derived_defaults(env),
        Err(error) => {
            // Unreachable in practice: every value that failed on its own was removed above.
            errors.push(ConfigError::general(error.to_string(), None));
            return Err(ConfigErrors::new(errors));
        }
    };

    let mut origins = HashMap::new();
    collect_origins(&tree, &mut String::new(), &mut origins);
    let already_reported: Vec<Option<String>> = errors.iter().map(|e| e.key.clone()).collect();
    for mut problem in validate(&config) {
        if already_reported.contains(&problem.key) {
            continue;
        }
        problem.origin = problem
            .key
            .as_ref()
            .and_then(|key| origins.get(key).cloned());
        errors.push(problem);
    }

    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors::new(errors))
    }
}

/// The effective configuration as YAML, with every secret shown as `[redacted]` and passwords
/// masked inside connection URLs. For `navigator config show` and start-up diagnostics.
pub fn redacted_yaml(config: &Config) -> String {
    let header = format!("# effective navigator configuration; secrets shown as {REDACTED}\n");
    match serde_saphyr::to_string(config) {
        Ok(yaml) => header + &yaml,
        Err(error) => format!("{header}# cannot render the configuration: {error}\n"),
    }
}

// ---------------------------------------------------------------------------------------------
// The located tree

#[derive(Debug)]
enum Node {
    Map(BTreeMap<String, Entry>),
    Leaf(Leaf),
}

#[derive(Debug)]
struct Entry {
    node: Node,
    origin: Option<Origin>,
}

#[derive(Debug)]
struct Leaf {
    value: Value,
    /// Source text of a plain scalar that YAML typed as a number or boolean, so a string field
    /// can still receive it verbatim (`region: 1.10`, a numeric password).
    raw: Option<String>,
}

/// The parser options: YAML 1.2 booleans only (`yes` is a string, not `true`), `0123` stays
/// text, repeated keys reach our visitor so they can be reported with their path, and no
/// snippets (errors are one line each).
fn parse_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
    }
}

fn parse_tree(text: &str) -> Result<BTreeMap<String, Entry>, Vec<ConfigError>> {
    let root: Spanned<RawNode> = serde_saphyr::from_str_with_options(text, parse_options())
        .map_err(|error| {
            let message = match error.without_snippet() {
                // The library's own text points at its multi-document API.
                serde_saphyr::Error::MultipleDocuments { .. } => {
                    "the file must hold a single YAML document (found a second `---`)".to_owned()
                }
                error => serde_saphyr::DefaultMessageFormatter
                    .format_message(error)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect(),
            };
            let origin = error
                .location()
                .map(|location| Origin::Line(location.line()));
            vec![ConfigError::general(
                format!("invalid YAML: {message}"),
                origin,
            )]
        })?;
    let mut errors = Vec::new();
    let tree = match root.value {
        RawNode::Map(entries) => convert_map(entries, text, &mut Vec::new(), &mut errors),
        RawNode::Scalar(Value::Null) => BTreeMap::new(),
        RawNode::Scalar(_) | RawNode::Seq(_) => {
            errors.push(ConfigError::general(
                "the configuration must be a mapping of sections (`server:`, `database:`, …)",
                Some(Origin::Line(root.referenced.line())),
            ));
            BTreeMap::new()
        }
    };
    if errors.is_empty() {
        Ok(tree)
    } else {
        Err(errors)
    }
}

fn convert_map(
    entries: Vec<(Spanned<String>, Spanned<RawNode>)>,
    text: &str,
    path: &mut Vec<String>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, Entry> {
    let mut map = BTreeMap::new();
    for (key, value) in entries {
        let line = key.referenced.line();
        path.push(key.value.clone());
        if map.contains_key(&key.value) {
            errors.push(ConfigError {
                key: Some(path.join(".")),
                message: "duplicate key".to_owned(),
                origin: Some(Origin::Line(line)),
            });
            path.pop();
            continue;
        }
        let node = match value.value {
            RawNode::Map(entries) => Node::Map(convert_map(entries, text, path, errors)),
            RawNode::Seq(items) => Node::Leaf(Leaf {
                value: Value::Array(items),
                raw: None,
            }),
            RawNode::Scalar(scalar) => {
                let raw = match scalar {
                    Value::Number(_) | Value::Bool(_) => source_text(text, &value.defined),
                    _ => None,
                };
                Node::Leaf(Leaf { value: scalar, raw })
            }
        };
        map.insert(
            key.value,
            Entry {
                node,
                origin: Some(Origin::Line(line)),
            },
        );
        path.pop();
    }
    map
}

fn source_text(text: &str, location: &serde_saphyr::Location) -> Option<String> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    text.get(start..start.checked_add(len)?).map(str::to_owned)
}

/// What serde-saphyr hands us: any YAML node, with locations on map keys and values.
enum RawNode {
    Scalar(Value),
    Seq(Vec<Value>),
    Map(Vec<(Spanned<String>, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawNodeVisitor)
    }
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawNode, E> {
        // Non-finite floats have no JSON form; keep the text and let the target type decide.
        Ok(RawNode::Scalar(
            serde_json::Number::from_f64(v)
                .map_or_else(|| Value::String(v.to_string()), Value::Number),
        ))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            entries.push((key, map.next_value::<Spanned<RawNode>>()?));
        }
        Ok(RawNode::Map(entries))
    }
}

fn tree_to_value(map: &BTreeMap<String, Entry>) -> Value {
    Value::Object(
        map.iter()
            .map(|(key, entry)| {
                let value = match &entry.node {
                    Node::Map(map) => tree_to_value(map),
                    Node::Leaf(leaf) => leaf.value.clone(),
                };
                (key.clone(), value)
            })
            .collect::<Map<String, Value>>(),
    )
}

fn collect_origins(
    map: &BTreeMap<String, Entry>,
    prefix: &mut String,
    out: &mut HashMap<String, Origin>,
) {
    for (key, entry) in map {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(key);
        if let Some(origin) = &entry.origin {
            out.insert(prefix.clone(), origin.clone());
        }
        if let Node::Map(children) = &entry.node {
            collect_origins(children, prefix, out);
        }
        prefix.truncate(len);
    }
}

// ---------------------------------------------------------------------------------------------
// Schema: the serialised defaults say which keys exist and which of them are sections.

fn schema() -> Value {
    serde_json::to_value(Config::default()).unwrap_or(Value::Null)
}

fn schema_at<'a>(schema: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(schema, |node, key| node.as_object()?.get(key))
}

fn keys_of(section: &Value) -> String {
    section
        .as_object()
        .map(|map| map.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// Sections whose keys are names the operator chooses (a map), not fields: their entries are
/// checked by deserialisation, not against the defaults' keys.
const FREE_FORM_MAPS: &[&[&str]] = &[
    &["usage", "prices"],
    &["auth", "roles"],
    &["encryption", "keys"],
];

/// Whether `path` names an entry inside a [`FREE_FORM_MAPS`] section (e.g.
/// `encryption.keys.k2026`), which the defaults cannot list.
fn in_free_form_map(path: &[String]) -> bool {
    FREE_FORM_MAPS
        .iter()
        .any(|free| path.len() > free.len() && free.iter().zip(path).all(|(a, b)| *a == b))
}

fn remove_unknown_keys(
    map: &mut BTreeMap<String, Entry>,
    schema: &Value,
    path: &mut Vec<String>,
    errors: &mut Vec<ConfigError>,
) {
    if FREE_FORM_MAPS
        .iter()
        .any(|free| free.iter().eq(path.iter()))
    {
        return;
    }
    let section = schema_at(schema, path).cloned().unwrap_or(Value::Null);
    let known = section.as_object();
    map.retain(|key, entry| {
        path.push(key.clone());
        let keep = match known {
            Some(known) if known.contains_key(key) => {
                if let Node::Map(children) = &mut entry.node
                    && schema_at(schema, path).is_some_and(Value::is_object)
                {
                    remove_unknown_keys(children, schema, path, errors);
                }
                true
            }
            _ => {
                errors.push(ConfigError {
                    key: Some(path.join(".")),
                    message: format!("unknown key; expected one of: {}", keys_of(&section)),
                    origin: entry.origin.clone(),
                });
                false
            }
        };
        path.pop();
        keep
    });
}

// ---------------------------------------------------------------------------------------------
// Environment overrides

fn apply_overrides(
    tree: &mut BTreeMap<String, Entry>,
    env: &HashMap<String, String>,
    schema: &Value,
    errors: &mut Vec<ConfigError>,
) {
    let mut overrides: Vec<(&String, &String)> = env
        .iter()
        .filter(|(name, _)| {
            name.get(..ENV_PREFIX.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
        })
        .collect();
    overrides.sort();
    for (name, raw) in overrides {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let origin = Origin::EnvVar(name.clone());
        let problem = if path.iter().any(String::is_empty) {
            Some("malformed override: use NAVIGATOR__SECTION__KEY (double underscores)".to_owned())
        } else if in_free_form_map(&path) {
            // A name the operator chooses (a key id, a provider): deserialisation checks it.
            None
        } else {
            match schema_at(schema, &path) {
                None => Some(format!("unknown key {}", path.join("."))),
                Some(section @ Value::Object(_)) => Some(format!(
                    "{} is a section; set one of its keys: {}",
                    path.join("."),
                    keys_of(section)
                )),
                Some(_) => None,
            }
        };
        match problem {
            Some(message) => errors.push(ConfigError::general(message, Some(origin))),
            None => insert_override(tree, &path, override_leaf(raw), origin),
        }
    }
}

/// An override's value read as a YAML scalar, so `8` and `true` reach number and boolean fields;
/// anything YAML would read as text is kept verbatim (no quote or comment processing, so a
/// password such as `a#b 'c'` arrives intact).
fn override_leaf(raw: &str) -> Leaf {
    let typed = serde_saphyr::from_str_with_options::<Value>(raw, parse_options()).ok();
    let value = match typed {
        Some(value @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => value,
        _ => Value::String(raw.to_owned()),
    };
    Leaf {
        value,
        raw: Some(raw.to_owned()),
    }
}

fn insert_override(
    tree: &mut BTreeMap<String, Entry>,
    path: &[String],
    leaf: Leaf,
    origin: Origin,
) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut map = tree;
    for key in parents {
        let entry = map.entry(key.clone()).or_insert_with(|| Entry {
            node: Node::Map(BTreeMap::new()),
            origin: Some(origin.clone()),
        });
        if !matches!(entry.node, Node::Map(_)) {
            entry.node = Node::Map(BTreeMap::new());
            entry.origin = Some(origin.clone());
        }
        let Node::Map(children) = &mut entry.node else {
            unreachable!("replaced by a map just above");
        };
        map = children;
    }
    map.insert(
        last.clone(),
        Entry {
            node: Node::Leaf(leaf),
            origin: Some(origin),
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Types: each value is tried on its own against the defaults.

/// Tries every value against the defaults on its own: keeps it if it deserialises, falls back
/// to its source text for string fields, and otherwise reports it with its key and drops it so
/// the rest of the configuration can still be validated.
fn settle_types(
    map: &mut BTreeMap<String, Entry>,
    schema: &Value,
    path: &mut Vec<String>,
    errors: &mut Vec<ConfigError>,
) {
    map.retain(|key, entry| {
        path.push(key.clone());
        let expected = schema_at(schema, path).cloned().unwrap_or(Value::Null);
        let keep = match &mut entry.node {
            Node::Map(children) if expected.is_object() => {
                settle_types(children, schema, path, errors);
                true
            }
            Node::Leaf(_) if expected.is_object() => {
                errors.push(ConfigError {
                    key: Some(path.join(".")),
                    message: format!("must be a section with keys: {}", keys_of(&expected)),
                    origin: entry.origin.clone(),
                });
                false
            }
            node => match try_value(schema, path, node) {
                Ok(()) => true,
                Err(message) => {
                    errors.push(ConfigError {
                        key: Some(path.join(".")),
                        message,
                        origin: entry.origin.clone(),
                    });
                    false
                }
            },
        };
        path.pop();
        keep
    });
}

fn try_value(schema: &Value, path: &[String], node: &mut Node) -> Result<(), String> {
    let value = match node {
        Node::Map(map) => tree_to_value(map),
        Node::Leaf(leaf) => leaf.value.clone(),
    };
    let Err(error) = probe(schema, path, value) else {
        return Ok(());
    };
    if let Node::Leaf(leaf) = node
        && let Some(raw) = &leaf.raw
        && !leaf.value.is_string()
        && probe(schema, path, Value::String(raw.clone())).is_ok()
    {
        leaf.value = Value::String(raw.clone());
        return Ok(());
    }
    Err(error.to_string())
}

fn probe(schema: &Value, path: &[String], value: Value) -> Result<(), serde_json::Error> {
    let mut candidate = schema.clone();
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut node = &mut candidate;
    for key in parents {
        node = node
            .as_object_mut()
            .and_then(|map| map.get_mut(key))
            .ok_or_else(|| de::Error::custom("unknown key"))?;
    }
    node.as_object_mut()
        .ok_or_else(|| de::Error::custom("unknown key"))?
        .insert(last.clone(), value);
    Config::deserialize(candidate).map(|_| ())
}
