//! The system prompt and the per-attempt context message.

/// The instructions every attempt starts with.
pub fn system_prompt(workspace: &str) -> String {
    format!(
        "You are Errand, a software engineer working on one task in a repository. You work alone \
on a sandboxed computer: the repository is checked out at {workspace} and there is no network. \
Nobody answers questions until you finish, so make reasonable assumptions, state them in your \
final message, and carry the task through.

# How to work
- Explore before editing: read the relevant code with the shell tool (rg, sed -n, cat, ls).
- Edit files with the apply_patch tool. Keep changes small and in the style of the surrounding \
code; do not reformat or fix unrelated code.
- Run the tests, linters and builds that cover your change (those AGENTS.md names first). When a \
check fails, fix the cause and run it again.
- Use update_plan when the task has several steps.
- Do not commit, create branches or push: Errand turns your changes into a diff.
- When the task is a question, answer it from the code, with citations, and change nothing.

# Final message
When you are done, reply without calling a tool. That reply becomes the pull request:
- First line: a short title in the imperative mood, at most 72 characters, no Markdown. It is \
also the subject of the commit Errand makes, so follow the commit message conventions \
AGENTS.md gives (a type prefix, a ticket reference, ...).
- Then a blank line and a description in Markdown: what was wrong or asked, what you changed \
and why, and how you verified it. It is the commit message's body too.
- Cite code as `path:L10-L20` (lines of the file as it is now, path relative to the repository \
root) and command output as `log:17#L3-L9` (each command result tells you its log number; lines \
count from 1 within that command's output). Example: \"The parser skipped empty rows \
(src/import.py:L40-L52); the new test passes (log:12#L1-L4).\"
- Cite only what you have seen. Errand checks every citation, flags the ones that do not hold, \
and lists the checks you ran with their real exit codes, so say plainly when something failed \
or was not run.
"
    )
}

/// The system prompt for the model's context window: the compact one for a small window
/// (`window.rs`), which says the same rules in far fewer tokens, else [`system_prompt`].
pub fn system_prompt_for(workspace: &str, context_window: Option<u64>) -> String {
    if crate::window::is_small(context_window) {
        compact_system_prompt(workspace)
    } else {
        system_prompt(workspace)
    }
}

/// The rules for a model with a small context window, in as few words as they can take.
pub fn compact_system_prompt(workspace: &str) -> String {
    format!(
        "You are Errand, fixing one task in the repository at {workspace}, alone, with no network.
- Read code with the shell tool (rg, sed -n, cat). One command per call; never repeat a command \
that gave the same output.
- Edit with apply_patch. Keep changes small.
- Run the tests. Do not commit.
- When done, reply without a tool call: first line a short title, then what you changed and how \
you checked it. Cite code as path:L10-L20 and command output as log:17#L3-L9.
"
    )
}

/// Appended to the system prompt while tool calls are recovered from text (`recover.rs`).
pub const BASH_BLOCK_FORM: &str = "\nIf you cannot call a tool, reply with only a ```bash block holding one command: Errand runs it with the shell tool and replies with its output.\n";

/// Facts about this attempt given to the model as a developer message.
pub fn context_message(workspace: &str, workdir: &str, instructions: &str) -> String {
    let cwd =
        if workdir.is_empty() { workspace.to_string() } else { format!("{workspace}/{workdir}") };
    let mut text = format!(
        "<environment>\nrepository: {workspace}\nworking directory: {cwd}\nnetwork: none\n</environment>\n"
    );
    if !instructions.is_empty() {
        text.push('\n');
        text.push_str(instructions);
    }
    text
}

/// The user message that continues an earlier attempt's conversation with a follow-up. Log
/// numbers start again with every attempt, so the model is told its old ones no longer count.
pub fn followup_message(prompt: &str) -> String {
    format!(
        "Follow-up request. The workspace still holds your changes from before. Log numbers of \
earlier commands do not carry over: cite only commands you run from now on, and end with a new \
final message (title and description) that covers all of your changes.

{prompt}"
    )
}

/// The task of a follow-up whose parent left no conversation to continue (it failed before the
/// agent ran): the original task, the follow-up that parent was (if it was one), and the new
/// request, so the agent has the whole story in one message.
pub fn restarted_followup_prompt(
    task: &str,
    parent_followup: Option<&str>,
    followup: &str,
) -> String {
    let mut text = format!(
        "This task was attempted before; whatever that attempt changed is already in the \
workspace. The original task:\n\n{task}\n"
    );
    if let Some(earlier) = parent_followup {
        text.push_str(&format!("\nThe follow-up that attempt worked on:\n\n{earlier}\n"));
    }
    text.push_str(&format!("\nNow do this:\n\n{followup}"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_teaches_the_citation_syntax() {
        let prompt = system_prompt("/workspace");
        assert!(prompt.contains("/workspace"));
        assert!(prompt.contains("`path:L10-L20`") && prompt.contains("`log:17#L3-L9`"));
    }

    #[test]
    fn a_small_window_gets_the_compact_prompt() {
        let compact = system_prompt_for("/workspace", Some(4096));
        let full = system_prompt_for("/workspace", Some(128_000));
        assert_eq!(compact, compact_system_prompt("/workspace"));
        assert_eq!(full, system_prompt("/workspace"));
        assert_eq!(system_prompt_for("/workspace", None), full);
        assert!(compact.len() * 3 < full.len(), "{} vs {} bytes", compact.len(), full.len());
        assert!(compact.contains("log:17#L3-L9") && compact.contains("apply_patch"));
    }

    #[test]
    fn context_names_the_working_directory() {
        let text = context_message("/workspace", "api", "");
        assert!(text.contains("working directory: /workspace/api"));
    }

    #[test]
    fn a_restarted_followup_carries_every_prompt_in_order() {
        let text = restarted_followup_prompt("fix the parser", Some("add a test"), "rename it");
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle}: {text}"));
        assert!(at("fix the parser") < at("add a test") && at("add a test") < at("rename it"));
        assert!(!restarted_followup_prompt("a", None, "b").contains("follow-up that"));
    }
}
