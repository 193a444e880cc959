//! Identifiers. Documents and jobs get time-ordered UUIDv7s; chunk ids are UUIDv5 derivations so
//! re-running a stage yields the same rows (SPEC §3).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The namespace of chunk ids (SPEC §3). Never change it: ids already stored depend on it.
pub const CHUNK_ID_NAMESPACE: Uuid = uuid::uuid!("6c8a1e6e-1f0b-4aa8-9f0a-1a7c2e6f2b42");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what}")]
pub struct InvalidId {
    pub what: &'static str,
}

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                Uuid::parse_str(text)
                    .map(Self)
                    .map_err(|_| InvalidId { what: $what })
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(DocumentId, "document id");
uuid_id!(JobId, "job id");
uuid_id!(ChunkId, "chunk id");

impl ChunkId {
    /// `uuidv5(NS, "{document_id}:{chunker}:{chunker_version}:{ord}")` — SPEC §3.
    pub fn derive(document_id: DocumentId, chunker: &str, chunker_version: &str, ord: u32) -> Self {
        let name = format!("{document_id}:{chunker}:{chunker_version}:{ord}");
        Self(Uuid::new_v5(&CHUNK_ID_NAMESPACE, name.as_bytes()))
    }
}

/// Who owns a document: the `sub` of the principal. Opaque, bounded, printable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerId(String);

impl OwnerId {
    pub const MAX_LEN: usize = 256;
    /// The single principal used while authentication is off (the embedded default).
    pub const LOCAL: &'static str = "local";

    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.chars().all(|c| !c.is_control() && !c.is_whitespace());
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidId { what: "owner id" })
        }
    }

    pub fn local() -> Self {
        Self(Self::LOCAL.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OwnerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lowercase hex SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    pub fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }

    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        if text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidId { what: "sha256" })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ids_are_stable_and_follow_the_spec_formula() {
        let doc = DocumentId::parse("01900000-0000-7000-8000-000000000001").unwrap();
        let a = ChunkId::derive(doc, "navigator-md", "1", 0);
        let b = ChunkId::derive(doc, "navigator-md", "1", 0);
        assert_eq!(a, b);
        let expected = Uuid::new_v5(
            &CHUNK_ID_NAMESPACE,
            b"01900000-0000-7000-8000-000000000001:navigator-md:1:0",
        );
        assert_eq!(a.0, expected);
        assert_eq!(a.0.get_version_num(), 5);
        assert_ne!(a, ChunkId::derive(doc, "navigator-md", "1", 1));
        assert_ne!(a, ChunkId::derive(doc, "navigator-md", "2", 0));
    }

    #[test]
    fn owner_ids_reject_empty_control_and_oversized_values() {
        assert!(OwnerId::parse("").is_err());
        assert!(OwnerId::parse("a b").is_err());
        assert!(OwnerId::parse("a\nb").is_err());
        assert!(OwnerId::parse(&"x".repeat(257)).is_err());
        assert_eq!(OwnerId::parse("user-1").unwrap().as_str(), "user-1");
    }

    #[test]
    fn sha256_is_lowercase_hex_and_parse_rejects_anything_else() {
        let h = Sha256Hex::of(b"abc");
        assert_eq!(
            h.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Sha256Hex::parse(h.as_str()).is_ok());
        assert!(Sha256Hex::parse(&h.as_str().to_uppercase()).is_err());
        assert!(Sha256Hex::parse("abc").is_err());
    }

    #[test]
    fn uuid_ids_parse_only_uuids() {
        assert!(DocumentId::parse("not-a-uuid").is_err());
        let id = JobId::new_v7();
        assert_eq!(JobId::parse(&id.to_string()).unwrap(), id);
    }
}
