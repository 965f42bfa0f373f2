//! Model clients: a provider-neutral conversation (`conversation`) and the wire protocols that
//! translate it at the edge.
//!
//! Invariant: this crate does not know what tools mean, nor anything of sandboxes or storage.

mod conversation;

pub use conversation::{FreeformFormat, Item, ModelRequest, ModelTurn, Role, ToolSpec};
