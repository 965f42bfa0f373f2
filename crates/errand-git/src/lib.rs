//! Git for Errand, through the `git` command line: the user's repository ([`Repo`]), private
//! checkouts at one commit ([`clone_at_commit`]), and the diff of a changed work tree against
//! its base commit ([`diff_changes`]).
//!
//! Repositories elsewhere: a URL as the user typed it, checked ([`RemoteUrl`], `remote.rs`),
//! the credentials for its host ([`Credentials`], `credentials.rs`), a local bare mirror of it
//! fetched before a task ([`Mirror`], `mirror.rs`), and checkouts from the mirror that borrow
//! its objects instead of copying them ([`clone_from_mirror`]). The way back: a commit built in
//! the mirror and pushed to the remote as a branch, for a pull request ([`Mirror::push_branch`],
//! `push.rs`).
//!
//! Invariant: every git process that touches a checkout or contents an agent wrote runs with no
//! system or global configuration, no hooks and no filters (see `command.rs`), so a hostile
//! repository cannot make the host run anything. A token never reaches a process's arguments,
//! a repository's files or an error message.

mod batch;
mod checkout;
mod command;
mod credentials;
mod edit;
pub mod forge;
mod ignore;
mod mirror;
mod patch;
mod push;
mod remote;
mod repo;
mod summary;
mod tree;

pub use checkout::{clone_at_commit, clone_from_mirror, clone_linked_at_commit, refresh_index};
pub use command::GitError;
pub use credentials::{Credentials, DEFAULT_TOKEN_USER};
pub use mirror::Mirror;
pub use push::{BranchExpectation, PushError, PushKind, PushOutcome};
pub use remote::{RemoteUrl, RemoteUrlError, Transport};
pub use repo::Repo;
pub use tree::{PathChange, TreeDiff, diff_changes, tree_with_changes};
