//! A resource's content hash: the first 8 bytes of BLAKE3 over its type URL and its encoding. It is
//! what a delta response gives as a resource's version, written as 16 hex digits.
//!
//! Held as the 8 bytes, not as the text: the cache holds one per resource (20,000 at 10,000 Ingresses),
//! and a text was a 24-byte `String` plus a 16-byte allocation each, and a byte-by-byte comparison per
//! entry of every diff.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 8]);

impl ContentHash {
    /// The hash of a resource of `type_url` encoded as `value`.
    pub fn of(type_url: &str, value: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(type_url.as_bytes());
        hasher.update(&[0]);
        hasher.update(value);
        Self::first_bytes(&hasher)
    }

    /// What a client says it holds (a delta client's initial version). A version isobar wrote is
    /// its hash again. Any other text (another server's version, a made-up one) stands for content
    /// isobar never hashed: a hash of the text under a different domain, so it equals no hash
    /// isobar makes except by a 64-bit collision, as two contents' hashes could.
    pub fn of_version(version: &str) -> Self {
        // Only the text `hex` writes: `hex::decode` also reads upper-case digits, and an upper-case
        // version is text isobar never wrote (compared as text, it matched no hash of ours).
        let ours = version.len() == 16
            && version
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut bytes = [0; 8];
        if ours && hex::decode_to_slice(version, &mut bytes).is_ok() {
            return ContentHash(bytes);
        }
        let mut hasher = blake3::Hasher::new_derive_key("isobar foreign resource version");
        hasher.update(version.as_bytes());
        Self::first_bytes(&hasher)
    }

    fn first_bytes(hasher: &blake3::Hasher) -> Self {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        ContentHash(bytes)
    }

    /// The 16 lower-case hex digits, without an allocation.
    pub fn hex(&self) -> [u8; 16] {
        let mut out = [0; 16];
        hex::encode_to_slice(self.0, &mut out).expect("16 digits for 8 bytes");
        out
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_sixteen_hex_digits_and_read_back() {
        let h = ContentHash::of("type.googleapis.com/x", b"body");
        let text = h.to_string();
        assert_eq!(text.len(), 16);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(ContentHash::of_version(&text), h);
    }

    #[test]
    fn type_and_body_both_count() {
        let h = ContentHash::of("type.googleapis.com/x", b"body");
        assert_ne!(ContentHash::of("type.googleapis.com/y", b"body"), h);
        assert_ne!(ContentHash::of("type.googleapis.com/x", b"bodz"), h);
    }

    #[test]
    fn a_foreign_version_is_no_hash_of_ours_and_distinct_foreign_versions_stay_distinct() {
        let outdated = ContentHash::of_version("outdated");
        assert_eq!(outdated, ContentHash::of_version("outdated"));
        assert_ne!(outdated, ContentHash::of_version("whatever"));
        assert_ne!(outdated, ContentHash::of("outdated", b""));
        // Our hash in upper case is foreign: isobar writes lower case only.
        let ours = ContentHash::of("type.googleapis.com/x", b"body");
        assert_ne!(
            ContentHash::of_version(&ours.to_string().to_uppercase()),
            ours
        );
        // Sixteen characters that are not all hex digits are foreign too.
        assert_ne!(
            ContentHash::of_version("0123456789abcdeg"),
            ContentHash::of_version("0123456789abcdef")
        );
    }
}
