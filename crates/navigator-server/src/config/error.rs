//! Configuration problems: each names the key path (when there is one) and where the offending
//! value came from, and they are always reported together.

use std::fmt;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the configuration file (1-based).
    Line(u64),
    /// A `NAVIGATOR__…` environment override.
    EnvVar(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(line) => write!(f, "line {line}"),
            Origin::EnvVar(var) => write!(f, "from {var}"),
        }
    }
}

/// One configuration problem. Messages never contain secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path such as `workers.concurrency`; `None` for problems that precede the
    /// key structure (unreadable file, bad `${VAR}` substitution, YAML syntax).
    pub key: Option<String>,
    pub message: String,
    pub origin: Option<Origin>,
}

impl ConfigError {
    pub(crate) fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            message: message.into(),
            origin: None,
        }
    }

    pub(crate) fn general(message: impl Into<String>, origin: Option<Origin>) -> Self {
        Self {
            key: None,
            message: message.into(),
            origin,
        }
    }
}

/// `workers.concurrency: must be between 1 and 64, got 0 (line 12)`,
/// `line 4: environment variable DB_URL is not set`,
/// `NAVIGATOR__WORKERS__CONCURENCY: unknown key workers.concurency`.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, &self.origin) {
            (Some(key), Some(origin)) => write!(f, "{key}: {} ({origin})", self.message),
            (Some(key), None) => write!(f, "{key}: {}", self.message),
            (None, Some(Origin::EnvVar(var))) => write!(f, "{var}: {}", self.message),
            (None, Some(origin)) => write!(f, "{origin}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// Every problem found in one load, in a stable order; displays one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    pub(crate) fn new(errors: Vec<ConfigError>) -> Self {
        debug_assert!(!errors.is_empty());
        Self(errors)
    }

    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problem reported for `key`, if any.
    pub fn for_key(&self, key: &str) -> Option<&ConfigError> {
        self.0
            .iter()
            .find(|error| error.key.as_deref() == Some(key))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
