//! Values that must never be printed: [`Secret`] (tokens, keys, passwords) and [`ConnectionUrl`]
//! (a URL that may carry a password). Both print, debug-format and serialise in redacted form;
//! the raw text is only reachable through an explicit `expose()`.

use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// What every redacted value prints as.
pub const REDACTED: &str = "[redacted]";

/// A secret string (API key, HMAC secret, access key). `Debug`, `Display` and `Serialize` all
/// print [`REDACTED`], so a secret cannot leak through logs, `{:?}` or the effective-config dump.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw secret, for the one place that hands it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A connection URL (`postgres://user:password@host/db`) whose password, in the user-info part
/// or in a `password=` style query parameter, is masked whenever it is displayed, debugged or
/// serialised. The rest of the URL stays visible because operators need it to debug connections.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw URL including any password, for the one place that opens the connection.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme before `://`, if there is one.
    pub fn scheme(&self) -> Option<&str> {
        self.0.split_once("://").map(|(scheme, _)| scheme)
    }

    /// The URL with its password(s) replaced by [`REDACTED`].
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ConnectionUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

const SECRET_QUERY_PARAMS: [&str; 4] = ["password", "secret", "token", "key"];

fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we understand: show nothing rather than risk showing a password.
        return if url.is_empty() {
            String::new()
        } else {
            REDACTED.to_owned()
        };
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}={REDACTED}"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_QUERY_PARAMS.iter().any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_url_masks_userinfo_password_and_secret_query_parameters() {
        let url =
            ConnectionUrl::new("postgres://nav:hunter2@db:5432/nav?sslmode=require&password=x1");
        assert_eq!(
            url.to_string(),
            "postgres://nav:[redacted]@db:5432/nav?sslmode=require&password=[redacted]"
        );
        assert_eq!(url.scheme(), Some("postgres"));
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn connection_url_without_credentials_is_shown_unchanged() {
        let url = ConnectionUrl::new("sqlite://./navigator-data/navigator.db");
        assert_eq!(url.to_string(), "sqlite://./navigator-data/navigator.db");
    }

    #[test]
    fn unparseable_connection_url_is_hidden_entirely() {
        assert_eq!(ConnectionUrl::new("nav:hunter2@db").to_string(), REDACTED);
    }
}
