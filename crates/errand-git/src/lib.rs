//! Git for Errand, through the `git` command line: the user's repository ([`Repo`]), private
//! checkouts at one commit ([`clone_at_commit`]), and the diff of a changed work tree against
//! its base commit ([`diff_changes`]).
//!
//! Repositories elsewhere: a URL as the user typed it, checked ([`RemoteUrl`], `remote.rs`).
//!
//! Invariant: every git process that touches a checkout or contents an agent wrote runs with no
//! system or global configuration, no hooks and no filters (see `command.rs`), so a hostile
//! repository cannot make the host run anything.

mod batch;
mod checkout;
mod command;
mod edit;
mod ignore;
mod patch;
mod remote;
mod repo;
mod summary;
mod tree;

pub use checkout::{clone_at_commit, refresh_index};
pub use command::GitError;
pub use remote::{RemoteUrl, RemoteUrlError, Transport};
pub use repo::Repo;
pub use tree::{PathChange, TreeDiff, diff_changes, tree_with_changes};
