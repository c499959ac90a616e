//! A manifest file as parsed documents, each with a digest of its text. Reading a changed file again
//! parses only the documents whose text changed — an edit to one object of a 30,000-document file
//! parses one document, not 30,000 — and every other document gives the objects it gave before
//! (shared, so the incremental build sees them unchanged). Many documents to hash or parse (a long
//! file, a file's first read) are hashed and parsed on the build threads.

use foldhash::HashMap;

use super::file::{parse_document, split_documents};
use crate::store::KubeObject;
use crate::Result;

/// A file's text as parsed: a digest of the whole text, each document's digest and the objects the
/// documents gave. The digests stand in for the text: holding every file's text would cost as much
/// memory again as the directory's size. The same digests in the same order are the same file.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    /// The first half of BLAKE3 over the whole text: a file read again unchanged (every file but the
    /// edited one, on a rescan) is known by one pass over its text, without splitting it into
    /// documents and hashing each (which made a read of an unchanged directory 1.8× as slow).
    text: [u8; 16],
    /// In file order.
    documents: Vec<Document>,
    /// Every document's objects, in file order.
    pub objects: Vec<KubeObject>,
}

#[derive(Debug, Clone, Copy)]
struct Document {
    /// The first half of SHA-256 over the document's text.
    digest: [u8; 16],
    /// Where the document's objects end in [`ParsedFile::objects`] (they start where the previous
    /// document's end).
    end: usize,
}

/// Which of a file's objects a new parse may have changed: what the file gives for any other object
/// is what it gave before.
#[derive(Debug)]
pub enum Touched {
    /// Any object the file gave before or gives now.
    All,
    /// The objects of the documents that went and of the documents parsed anew.
    Objects(Vec<KubeObject>),
}

impl ParsedFile {
    /// Parses `text` (`file` names it in errors): the documents whose text `previous` held too give
    /// the objects they gave then; every other one is parsed, and each object it gives passes
    /// through `share` (which may return an equal object already held). `None`: the text has
    /// `previous`'s documents in `previous`'s order, so it gives what it gave (and `previous` now
    /// knows this text by its digest). The first document that does not parse, in file order, is
    /// the error.
    pub fn parse(
        file: &str,
        text: &str,
        mut previous: Option<&mut ParsedFile>,
        share: impl Fn(KubeObject) -> KubeObject,
    ) -> Result<Option<(ParsedFile, Touched)>> {
        let whole = text_digest(text);
        if previous.as_ref().is_some_and(|p| p.text == whole) {
            return Ok(None);
        }
        let documents = split_documents(text);
        // On the build threads for many documents (SHA-256 of each is most of a long file's rescan).
        let digests: Vec<[u8; 16]> = crate::parallel::map(&documents, |(_, d)| digest(d));
        // Documents unchanged in the same order (only a comment on a separator changed, say) are
        // the same file too: known by this text's digest from now on, so that reading it again
        // unchanged is one pass over it, not a split and a digest per document.
        if let Some(previous) = previous.as_mut().filter(|p| {
            p.documents
                .iter()
                .map(|d| d.digest)
                .eq(digests.iter().copied())
        }) {
            previous.text = whole;
            return Ok(None);
        }
        let previous = previous.as_deref();
        // The previous documents by digest, the first of equal ones (they gave equal objects).
        let before: HashMap<[u8; 16], usize> = previous
            .into_iter()
            .flat_map(|p| p.documents.iter().enumerate().rev())
            .map(|(index, d)| (d.digest, index))
            .collect();
        let reused: Vec<Option<usize>> = digests.iter().map(|d| before.get(d).copied()).collect();
        let fresh: Vec<(usize, &str)> = documents
            .iter()
            .zip(&reused)
            .filter(|(_, r)| r.is_none())
            .map(|(d, _)| *d)
            .collect();
        let mut parsed = crate::parallel::map(&fresh, |(line, document)| {
            parse_document(file, *line, document)
        })
        .into_iter();

        // What the file gives for an object is its last document naming it: documents kept but
        // reordered may change that for objects of neither the fresh nor the gone documents, so then
        // (and on a first read) every object counts and no list of them is kept.
        let in_order = reused.iter().flatten().is_sorted_by(|a, b| a < b);
        let listed = previous.is_some() && in_order;

        let mut out = ParsedFile {
            text: whole,
            documents: Vec::with_capacity(digests.len()),
            objects: Vec::new(),
        };
        let mut touched = Vec::new();
        for (digest, reused) in digests.into_iter().zip(&reused) {
            match (reused, previous) {
                (Some(index), Some(previous)) => {
                    out.objects.extend_from_slice(previous.objects_of(*index))
                }
                _ => {
                    let objects = parsed.next().expect("one parse per fresh document")?;
                    for object in objects.into_iter().map(&share) {
                        if listed {
                            touched.push(object.clone());
                        }
                        out.objects.push(object);
                    }
                }
            }
            out.documents.push(Document {
                digest,
                end: out.objects.len(),
            });
        }

        let touched = match previous {
            Some(previous) if listed => {
                let mut kept = vec![false; previous.documents.len()];
                for index in reused.iter().flatten() {
                    kept[*index] = true;
                }
                for (index, _) in kept.iter().enumerate().filter(|(_, k)| !**k) {
                    touched.extend_from_slice(previous.objects_of(index));
                }
                Touched::Objects(touched)
            }
            _ => Touched::All,
        };
        Ok(Some((out, touched)))
    }

    /// The objects document `index` gave.
    fn objects_of(&self, index: usize) -> &[KubeObject] {
        let start = index.checked_sub(1).map_or(0, |i| self.documents[i].end);
        &self.objects[start..self.documents[index].end]
    }
}

/// The first half of BLAKE3 over a file's text: for a whole file (kilobytes), BLAKE3 is the faster
/// of the two; for one document (a few hundred bytes), SHA-256 is.
fn text_digest(text: &str) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&blake3::hash(text.as_bytes()).as_bytes()[..16]);
    out
}

/// The first half of SHA-256 over a document's text: 128 bits tell a changed text from an unchanged
/// one.
fn digest(document: &str) -> [u8; 16] {
    use sha2::Digest;
    let mut out = [0; 16];
    out.copy_from_slice(&sha2::Sha256::digest(document.as_bytes())[..16]);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::StoreKind;

    fn service(name: &str, port: u16) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - port: {port}\n")
    }

    fn parse(text: &str, previous: Option<&ParsedFile>) -> Result<(ParsedFile, Touched)> {
        // A changed file leaves `previous` as it was: parse a copy's digests.
        let mut copy = previous.cloned();
        ParsedFile::parse("f.yaml", text, copy.as_mut(), |o| o).map(|p| p.expect("a changed file"))
    }

    fn names(objects: &[KubeObject]) -> Vec<String> {
        objects.iter().map(|o| o.id().1.name.to_string()).collect()
    }

    fn same(a: &KubeObject, b: &KubeObject) -> bool {
        match (a, b) {
            (KubeObject::Service(a), KubeObject::Service(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    #[test]
    fn an_edit_parses_only_the_edited_document_and_touches_only_its_objects() {
        let before = [service("a", 80), service("b", 80), service("c", 80)].join("---\n");
        let (first, touched) = parse(&before, None).unwrap();
        assert!(matches!(touched, Touched::All));
        let after = [service("a", 80), service("b", 81), service("c", 80)].join("---\n");
        let (second, touched) = parse(&after, Some(&first)).unwrap();
        let Touched::Objects(touched) = touched else {
            panic!("{touched:?}")
        };
        // The new b, then the old one.
        assert_eq!(names(&touched), ["b", "b"]);
        assert!(same(&touched[1], &first.objects[1]));
        assert_eq!(names(&second.objects), ["a", "b", "c"]);
        assert!(same(&second.objects[0], &first.objects[0]));
        assert!(same(&second.objects[2], &first.objects[2]));
        assert!(!same(&second.objects[1], &first.objects[1]));
    }

    #[test]
    fn an_inserted_document_shifts_the_others_without_parsing_them_again() {
        let before = [service("a", 80), service("c", 80)].join("---\n");
        let (first, _) = parse(&before, None).unwrap();
        let after = [service("a", 80), service("b", 80), service("c", 80)].join("---\n");
        let (second, touched) = parse(&after, Some(&first)).unwrap();
        let Touched::Objects(touched) = touched else {
            panic!("{touched:?}")
        };
        assert_eq!(names(&touched), ["b"]);
        assert!(same(&second.objects[2], &first.objects[1]));
    }

    #[test]
    fn the_same_documents_in_the_same_order_are_the_same_file() {
        let (mut first, _) =
            parse(&[service("a", 80), service("b", 80)].join("---\n"), None).unwrap();
        // A comment on a separator line is no document's text.
        let again = [service("a", 80), service("b", 80)].join("--- # b\n");
        assert_ne!(first.text, text_digest(&again));
        assert!(ParsedFile::parse("f.yaml", &again, Some(&mut first), |o| o)
            .unwrap()
            .is_none());
        assert_eq!(
            first.text,
            text_digest(&again),
            "the file now known by the new text's digest"
        );
        let swapped = [service("b", 80), service("a", 80)].join("---\n");
        assert!(
            ParsedFile::parse("f.yaml", &swapped, Some(&mut first), |o| o)
                .unwrap()
                .is_some()
        );
        let fewer = service("a", 80);
        assert!(ParsedFile::parse("f.yaml", &fewer, Some(&mut first), |o| o)
            .unwrap()
            .is_some());
    }

    #[test]
    fn documents_kept_but_reordered_touch_everything() {
        // Both name a: the last one gives it, so swapping them changes a without a new document.
        let before = [service("a", 80), service("a", 81)].join("---\n");
        let (first, _) = parse(&before, None).unwrap();
        let after = [service("a", 81), service("a", 80)].join("---\n");
        let (_, touched) = parse(&after, Some(&first)).unwrap();
        assert!(matches!(touched, Touched::All), "{touched:?}");
    }

    #[test]
    fn a_bad_document_is_the_error_with_its_line_even_among_unchanged_ones() {
        let good = [service("a", 80), service("b", 80)].join("---\n");
        let (first, _) = parse(&good, None).unwrap();
        let bad = [service("a", 80), "kind: [\n".to_string(), service("b", 80)].join("---\n");
        let line = |err: crate::Error| match err {
            crate::Error::Manifest { line, .. } => line,
            other => panic!("{other}"),
        };
        let at = line(parse(&bad, Some(&first)).unwrap_err());
        // a's 7 lines, the separator, then the bad document, which ends unclosed.
        assert!((9..=10).contains(&at), "line {at}");
        let whole = super::super::file::parse_manifests("f.yaml", &bad).unwrap_err();
        assert_eq!(at, line(whole));
    }

    #[test]
    fn a_first_read_of_many_documents_parses_every_one_in_order() {
        // Enough documents to be parsed on the build threads.
        let count = crate::parallel::MIN_BATCH * 2;
        let text: Vec<String> = (0..count).map(|i| service(&format!("s{i}"), 80)).collect();
        let (parsed, _) = parse(&text.join("---\n"), None).unwrap();
        let expected: Vec<String> = (0..count).map(|i| format!("s{i}")).collect();
        assert_eq!(names(&parsed.objects), expected);
        assert!(parsed
            .objects
            .iter()
            .all(|o| o.id().0 == StoreKind::Service));
    }
}
