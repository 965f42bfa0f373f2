//! Long-running git processes that read and write objects one at a time, so building a tree
//! costs one process start however many directories it touches: `git cat-file --batch`
//! reads trees and blobs, `git mktree -z --batch` writes trees.

use std::path::Path;

use crate::command::{Git, GitError, GitProcess};

/// One entry of a tree object as stored: `mode` in octal as git writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeEntry {
    pub mode: u32,
    pub name: Vec<u8>,
    pub id: String,
}

/// The mode of a subtree entry.
pub(crate) const TREE_MODE: u32 = 0o40000;
/// The mode of a submodule's commit.
const GITLINK_MODE: u32 = 0o160000;

/// Where the trees of the base come from (a `cat-file` process, or a map in unit tests).
pub(crate) trait TreeSource {
    /// The entries of tree `id`.
    async fn tree(&mut self, id: &str) -> Result<Vec<TreeEntry>, GitError>;
}

/// Where new trees go (a `mktree` process, or a map in unit tests).
pub(crate) trait TreeSink {
    /// Writes a tree of `entries` (mode, id, name; any order) and returns its id.
    async fn write_tree(&mut self, entries: Vec<(u32, &str, &[u8])>) -> Result<String, GitError>;
}

/// `git cat-file --batch`: one object per request.
pub(crate) struct ObjectReader {
    process: GitProcess,
}

impl ObjectReader {
    pub fn start(checkout: &Path) -> Result<ObjectReader, GitError> {
        let process = Git::hardened(checkout).args(["cat-file", "--batch"]).spawn()?;
        Ok(ObjectReader { process })
    }

    /// The type, id and content of the object `spec` names (`<id>`, `<commit>^{tree}`), or
    /// `None` if there is no such object.
    pub async fn read(&mut self, spec: &str) -> Result<Option<Object>, GitError> {
        // cat-file(1), BATCH OUTPUT: "<oid> SP <type> SP <size> LF <contents> LF", or
        // "<object> SP missing LF".
        self.process.write(format!("{spec}\n").as_bytes()).await?;
        let header = self.process.read_until(b'\n').await?;
        let header = String::from_utf8_lossy(&header).into_owned();
        let fields: Vec<&str> = header.split(' ').collect();
        let [id, kind, size] = fields[..] else {
            if header.ends_with(" missing") || header.ends_with(" ambiguous") {
                return Ok(None);
            }
            return Err(parse_error("cat-file --batch", format!("header `{header}`")));
        };
        let size: usize =
            size.parse().map_err(|_| parse_error("cat-file --batch", format!("size `{size}`")))?;
        let mut content = self.process.read_exact(size + 1).await?;
        content.pop();
        Ok(Some(Object { id: id.to_string(), kind: kind.to_string(), content }))
    }

    pub async fn finish(self) -> Result<(), GitError> {
        self.process.finish().await
    }
}

impl TreeSource for ObjectReader {
    async fn tree(&mut self, id: &str) -> Result<Vec<TreeEntry>, GitError> {
        match self.read(id).await? {
            Some(object) if object.kind == "tree" => parse_tree(&object.content, object.id.len()),
            Some(object) => Err(parse_error(
                "cat-file --batch",
                format!("{id} is a {}, not a tree", object.kind),
            )),
            None => Err(parse_error("cat-file --batch", format!("no tree {id}"))),
        }
    }
}

/// An object read by [`ObjectReader`].
#[derive(Debug)]
pub(crate) struct Object {
    pub id: String,
    pub kind: String,
    pub content: Vec<u8>,
}

/// Parses a tree object: entries of "<octal mode> SP <name> NUL <raw id>" (gitformat-tree(5));
/// `hex_len` is the length of an id in hex (40 for SHA-1, 64 for SHA-256).
pub(crate) fn parse_tree(content: &[u8], hex_len: usize) -> Result<Vec<TreeEntry>, GitError> {
    let bad = || parse_error("cat-file --batch", "a tree object that does not parse".into());
    let raw_len = hex_len / 2;
    let mut entries = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let mode = std::str::from_utf8(&rest[..space]).map_err(|_| bad())?;
        let mode = u32::from_str_radix(mode, 8).map_err(|_| bad())?;
        rest = &rest[space + 1..];
        let nul = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
        let name = rest[..nul].to_vec();
        rest = &rest[nul + 1..];
        if rest.len() < raw_len {
            return Err(bad());
        }
        let id: String = rest[..raw_len].iter().map(|b| format!("{b:02x}")).collect();
        rest = &rest[raw_len..];
        entries.push(TreeEntry { mode, name, id });
    }
    Ok(entries)
}

/// `git mktree -z --batch`: writes one tree per request and answers with its id.
pub(crate) struct TreeWriter {
    process: GitProcess,
}

impl TreeWriter {
    pub fn start(checkout: &Path) -> Result<TreeWriter, GitError> {
        let process = Git::hardened(checkout).args(["mktree", "-z", "--batch"]).spawn()?;
        Ok(TreeWriter { process })
    }

    pub async fn finish(self) -> Result<(), GitError> {
        self.process.finish().await
    }
}

impl TreeSink for TreeWriter {
    /// mktree sorts the entries; the objects they name must exist, except submodule commits.
    async fn write_tree(&mut self, entries: Vec<(u32, &str, &[u8])>) -> Result<String, GitError> {
        // git-mktree(1): ls-tree format, "<mode> SP <type> SP <object> TAB <file>", NUL
        // terminated with -z; an empty record ends the tree.
        let mut input = Vec::new();
        for (mode, id, name) in entries {
            let kind = match mode {
                TREE_MODE => "tree",
                GITLINK_MODE => "commit",
                _ => "blob",
            };
            input.extend_from_slice(format!("{mode:o} {kind} {id}\t").as_bytes());
            input.extend_from_slice(name);
            input.push(0);
        }
        input.push(0);
        self.process.write(&input).await?;
        let line = self.process.read_until(b'\n').await?;
        String::from_utf8(line).map_err(|_| parse_error("mktree", "an id that is not text".into()))
    }
}

fn parse_error(what: &str, detail: String) -> GitError {
    GitError::Parse { what: what.into(), detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_tree_object() {
        let mut content = b"100644 a.txt\0".to_vec();
        content.extend_from_slice(&[0xab; 20]);
        content.extend_from_slice(b"40000 dir\0");
        content.extend_from_slice(&[0x01; 20]);
        let entries = parse_tree(&content, 40).unwrap();
        assert_eq!(
            entries,
            vec![
                TreeEntry { mode: 0o100644, name: b"a.txt".to_vec(), id: "ab".repeat(20) },
                TreeEntry { mode: TREE_MODE, name: b"dir".to_vec(), id: "01".repeat(20) },
            ]
        );
        assert_eq!(parse_tree(b"", 40).unwrap(), vec![]);
    }

    #[test]
    fn a_truncated_tree_is_an_error() {
        let mut content = b"100644 a.txt\0".to_vec();
        content.extend_from_slice(&[0xab; 19]);
        assert!(parse_tree(&content, 40).is_err());
        assert!(parse_tree(b"100644 no-nul", 40).is_err());
        assert!(parse_tree(b"10x644 a\0", 40).is_err());
    }
}
