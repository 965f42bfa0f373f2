//! Small context windows (a 1.5B model behind llama.cpp with 4k–8k tokens): a compact system
//! prompt, and the budgets that fill the window (AGENTS.md, what the model sees of a command's
//! output) scaled to it, with compaction earlier. Strong models with large windows are not
//! affected.

use crate::run::AgentConfig;

/// Windows of at most this many tokens count as small.
pub const SMALL_WINDOW: u64 = 8192;
/// Below this, no model serves real tasks: such a window only appears in configurations that
/// force compaction on purpose (the compaction tests), which keep the usual prompt and budgets.
const TINY_WINDOW: u64 = 2048;

/// Whether `window` (the configured context window) is small: 2k to 8k tokens, what local
/// models are served with.
pub fn is_small(window: Option<u64>) -> bool {
    window.is_some_and(|w| (TINY_WINDOW..=SMALL_WINDOW).contains(&w))
}

impl AgentConfig {
    /// The configuration fitted to its context window: for a small one, AGENTS.md gets at most
    /// an eighth of the window (in bytes, ~4 per token), a command's output what fits in about
    /// a sixteenth, and compaction starts at 60% instead of waiting for the usual ratio.
    pub fn fitted_to_window(mut self) -> AgentConfig {
        let Some(window) = self.context_window.filter(|&w| is_small(Some(w))) else {
            return self;
        };
        let bytes = (window * 4) as usize;
        self.instructions_budget = self.instructions_budget.min(bytes / 8);
        self.model_output_bytes = self.model_output_bytes.min(bytes / 16);
        self.model_output_lines = self.model_output_lines.min(60);
        self.auto_compact_ratio = self.auto_compact_ratio.min(0.6);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_windows_are_scaled() {
        let large = AgentConfig { context_window: Some(272_000), ..AgentConfig::default() };
        let fitted = large.clone().fitted_to_window();
        assert_eq!(
            (fitted.instructions_budget, fitted.model_output_bytes, fitted.auto_compact_ratio),
            (large.instructions_budget, large.model_output_bytes, large.auto_compact_ratio)
        );
        let small =
            AgentConfig { context_window: Some(4096), ..AgentConfig::default() }.fitted_to_window();
        assert_eq!(small.instructions_budget, 2048);
        assert_eq!(small.model_output_bytes, 1024);
        assert_eq!(small.model_output_lines, 60);
        assert!(small.auto_compact_ratio <= 0.6);
        assert!(is_small(Some(8192)) && !is_small(Some(8193)) && !is_small(None));
        assert!(!is_small(Some(1000)), "a tiny window forces compaction, it is not a model's");
    }
}
