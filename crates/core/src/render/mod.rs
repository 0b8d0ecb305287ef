//! Renderers: a plan as text for the terminal, Markdown for a pull-request
//! comment, JSON for machines, or its step graph as Graphviz. Each is a pure function of the plan, and
//! the same plan always renders to the same bytes.
//!
//! The planner computes a typed diff ([`crate::plan::ResourceChange`]);
//! these only decide how it reads. Text and Markdown share the step from a
//! typed diff to marked lines (a private module), and differ only in how
//! they draw a line.

mod diff;
mod dot;
mod json;
mod markdown;
mod text;

pub use dot::dot;
pub use json::json;
pub use markdown::{MarkdownOptions, markdown, markdown_with};
pub use text::{TextOptions, text};
