//! A base tree with changes applied, held in memory as only the directories the changes touch.
//!
//! Reading starts at the root tree and loads a directory's tree only when a change lies below
//! it; every other subtree stays a reference to the base's object. Writing goes bottom-up over
//! the loaded directories alone, so the cost follows the changes, not the repository.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::batch::{TREE_MODE, TreeEntry, TreeSink, TreeSource};
use crate::command::GitError;

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A file, symlink or submodule commit.
    Leaf { mode: u32, id: String },
    /// A directory: the base's tree `id` as it is, or loaded into `dirs[dir]` to be rewritten.
    Tree { id: Option<String>, dir: Option<usize> },
}

type Dir = BTreeMap<Vec<u8>, Node>;

/// The tree being built. `dirs[0]` is the root.
#[derive(Debug)]
pub(crate) struct TreeEdit {
    dirs: Vec<Dir>,
}

/// Whether a leaf set by [`TreeEdit::set_leaf`] existed in the base (as a file, symlink or
/// submodule at that very path).
pub(crate) type InBase = bool;

impl TreeEdit {
    /// Starts from the root tree `root`.
    pub async fn load(source: &mut impl TreeSource, root: &str) -> Result<TreeEdit, GitError> {
        let root = dir_of(source.tree(root).await?);
        Ok(TreeEdit { dirs: vec![root] })
    }

    /// Whether the base has a file, symlink or submodule at `path`. Call before any edit:
    /// it loads the directories on the way, which later edits then change.
    pub async fn is_base_leaf(
        &mut self,
        source: &mut impl TreeSource,
        path: &Path,
    ) -> Result<InBase, GitError> {
        let Some((parent, name)) = split(path) else {
            return Ok(false);
        };
        let Some(dir) = self.dir_at(source, &parent, false).await? else {
            return Ok(false);
        };
        Ok(matches!(self.dirs[dir].get(name), Some(Node::Leaf { .. })))
    }

    /// Removes `path` and everything below it.
    pub async fn remove(
        &mut self,
        source: &mut impl TreeSource,
        path: &Path,
    ) -> Result<(), GitError> {
        let Some((parent, name)) = split(path) else {
            return Ok(());
        };
        if let Some(dir) = self.dir_at(source, &parent, false).await? {
            self.dirs[dir].remove(name);
        }
        Ok(())
    }

    /// Makes `path` an empty directory, whatever was there (its parents become directories).
    pub async fn replace_with_empty_dir(
        &mut self,
        source: &mut impl TreeSource,
        path: &Path,
    ) -> Result<(), GitError> {
        let Some((parent, name)) = split(path) else {
            // The root replaced wholesale.
            self.dirs[0].clear();
            return Ok(());
        };
        let Some(dir) = self.dir_at(source, &parent, true).await? else {
            return Ok(());
        };
        let empty = self.new_dir();
        self.dirs[dir].insert(name.to_vec(), Node::Tree { id: None, dir: Some(empty) });
        Ok(())
    }

    /// Puts a file (mode 100644 or 100755), symlink (120000) or submodule at `path`, replacing
    /// whatever was there, a directory included; the parents become directories.
    pub async fn set_leaf(
        &mut self,
        source: &mut impl TreeSource,
        path: &Path,
        mode: u32,
        id: &str,
    ) -> Result<(), GitError> {
        let Some((parent, name)) = split(path) else {
            return Ok(());
        };
        if let Some(dir) = self.dir_at(source, &parent, true).await? {
            self.dirs[dir].insert(name.to_vec(), Node::Leaf { mode, id: id.to_string() });
        }
        Ok(())
    }

    /// The id of the regular file at `path` in the tree as edited so far, if it is one and its
    /// directory is loaded (as every directory above a change is).
    pub fn regular_file(&self, path: &Path) -> Option<&str> {
        let (parent, name) = split(path)?;
        let mut dir = 0;
        for component in &parent {
            match self.dirs[dir].get(*component) {
                Some(Node::Tree { dir: Some(next), .. }) => dir = *next,
                _ => return None,
            }
        }
        match self.dirs[dir].get(name) {
            Some(Node::Leaf { mode: 0o100644 | 0o100755, id }) => Some(id),
            _ => None,
        }
    }

    /// Writes every loaded directory, children first, and returns the root tree's id. A
    /// directory left empty is dropped from its parent (git stores no empty directories); an
    /// empty root is the empty tree.
    pub async fn write(&self, writer: &mut impl TreeSink) -> Result<String, GitError> {
        let mut order = Vec::new();
        self.post_order(0, &mut order);
        let mut written: Vec<Option<String>> = vec![None; self.dirs.len()];
        for dir in order {
            let mut entries: Vec<(u32, &str, &[u8])> = Vec::new();
            for (name, node) in &self.dirs[dir] {
                match node {
                    Node::Leaf { mode, id } => entries.push((*mode, id, name)),
                    Node::Tree { dir: Some(child), .. } => {
                        if let Some(id) = &written[*child] {
                            entries.push((TREE_MODE, id, name));
                        }
                    }
                    Node::Tree { id: Some(id), dir: None } => entries.push((TREE_MODE, id, name)),
                    Node::Tree { id: None, dir: None } => {}
                }
            }
            if entries.is_empty() && dir != 0 {
                continue;
            }
            written[dir] = Some(writer.write_tree(entries).await?);
        }
        written[0].take().ok_or_else(|| GitError::Parse {
            what: "mktree".into(),
            detail: "the root tree was not written".into(),
        })
    }

    fn post_order(&self, dir: usize, out: &mut Vec<usize>) {
        for node in self.dirs[dir].values() {
            if let Node::Tree { dir: Some(child), .. } = node {
                self.post_order(*child, out);
            }
        }
        out.push(dir);
    }

    fn new_dir(&mut self) -> usize {
        self.dirs.push(Dir::new());
        self.dirs.len() - 1
    }

    /// The loaded directory at `components`, loading base trees on the way. Where a name is
    /// missing or not a directory: with `create`, an empty directory takes its place; without,
    /// there is no such directory (`None`).
    async fn dir_at(
        &mut self,
        source: &mut impl TreeSource,
        components: &[&[u8]],
        create: bool,
    ) -> Result<Option<usize>, GitError> {
        let mut dir = 0;
        for component in components {
            let next = match self.dirs[dir].get(*component) {
                Some(Node::Tree { dir: Some(next), .. }) => *next,
                Some(Node::Tree { id: Some(id), dir: None }) => {
                    let id = id.clone();
                    let loaded = dir_of(source.tree(&id).await?);
                    self.dirs.push(loaded);
                    let next = self.dirs.len() - 1;
                    self.dirs[dir]
                        .insert(component.to_vec(), Node::Tree { id: Some(id), dir: Some(next) });
                    next
                }
                _ if create => {
                    let next = self.new_dir();
                    self.dirs[dir]
                        .insert(component.to_vec(), Node::Tree { id: None, dir: Some(next) });
                    next
                }
                _ => return Ok(None),
            };
            dir = next;
        }
        Ok(Some(dir))
    }
}

fn dir_of(entries: Vec<TreeEntry>) -> Dir {
    entries
        .into_iter()
        .map(|entry| {
            let node = if entry.mode == TREE_MODE {
                Node::Tree { id: Some(entry.id), dir: None }
            } else {
                Node::Leaf { mode: entry.mode, id: entry.id }
            };
            (entry.name, node)
        })
        .collect()
}

/// A relative path as its parent's components and its name; `None` for the root (or a path
/// with `..`, `.` or a root in it, which no change of a work tree has).
fn split(path: &Path) -> Option<(Vec<&[u8]>, &[u8])> {
    let mut components = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => components.push(name.as_bytes()),
            _ => return None,
        }
    }
    let name = components.pop()?;
    Some((components, name))
}

/// The directories from the root down to `path`'s parent, as paths (`""` for the root).
pub(crate) fn parent_dirs(path: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = path.ancestors().skip(1).map(Path::to_path_buf).collect();
    dirs.reverse();
    dirs
}
