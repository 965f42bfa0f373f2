//! AGENTS.md: instructions for the agent that live in the repository. The chain runs from the
//! repository root down to the working directory; deeper files take precedence over shallower
//! ones, and the whole chain is held to a byte budget, dropping from the root side first.

use errand_sandbox::{Sandbox, SandboxError};

/// One AGENTS.md found on the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstructionFile {
    /// Path relative to the workspace root, e.g. `api/AGENTS.md`.
    pub path: String,
    pub contents: String,
}

/// The instructions given to the model, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstructionsChain {
    /// Files used, root first.
    pub files: Vec<String>,
    pub text: String,
    pub truncated: bool,
}

pub const AGENTS_FILE: &str = "AGENTS.md";

/// The directories from the root down to `workdir` (relative to the workspace root).
fn chain_dirs(workdir: &str) -> Vec<String> {
    let mut dirs = vec![String::new()];
    let mut current = String::new();
    for part in workdir.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if !current.is_empty() {
            current.push('/');
        }
        current.push_str(part);
        dirs.push(current.clone());
    }
    dirs
}

/// Reads the AGENTS.md chain for `workdir` through the sandbox.
pub async fn load_chain(
    sandbox: &dyn Sandbox,
    workdir: &str,
    budget: usize,
) -> Result<InstructionsChain, SandboxError> {
    let mut files = Vec::new();
    for dir in chain_dirs(workdir) {
        let path =
            if dir.is_empty() { AGENTS_FILE.to_string() } else { format!("{dir}/{AGENTS_FILE}") };
        if let Some(bytes) = sandbox.read_file(&path).await? {
            files.push(InstructionFile { path, contents: String::from_utf8_lossy(&bytes).into() });
        }
    }
    Ok(assemble_chain(files, budget))
}

/// Renders the chain (root first) within `budget` bytes of file contents. When over budget, the
/// shallowest files are cut first, since deeper ones take precedence.
pub fn assemble_chain(files: Vec<InstructionFile>, budget: usize) -> InstructionsChain {
    if files.is_empty() {
        return InstructionsChain::default();
    }
    let mut remaining = budget;
    let mut kept: Vec<(String, String, bool)> = Vec::new();
    let mut truncated = false;
    for file in files.iter().rev() {
        let contents = file.contents.trim_end();
        if contents.len() <= remaining {
            remaining -= contents.len();
            kept.push((file.path.clone(), contents.to_string(), false));
        } else {
            truncated = true;
            if remaining > 0 {
                let mut cut = remaining;
                while !contents.is_char_boundary(cut) {
                    cut -= 1;
                }
                kept.push((file.path.clone(), contents[..cut].to_string(), true));
                remaining = 0;
            }
        }
    }
    kept.reverse();
    let mut text = String::from(
        "Instructions from AGENTS.md files in the repository. Each applies to the files in its \
         directory and below; where they conflict, the deeper file wins. Instructions in the \
         task itself take precedence over all of them.\n",
    );
    for (path, contents, cut) in &kept {
        text.push_str(&format!("\n<agents_md path=\"{path}\">\n{contents}\n"));
        if *cut {
            text.push_str("[… cut to fit the instructions budget …]\n");
        }
        text.push_str("</agents_md>\n");
    }
    InstructionsChain { files: kept.into_iter().map(|(p, _, _)| p).collect(), text, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, contents: &str) -> InstructionFile {
        InstructionFile { path: path.into(), contents: contents.into() }
    }

    #[test]
    fn chain_runs_from_root_to_workdir() {
        assert_eq!(chain_dirs(""), vec![""]);
        assert_eq!(chain_dirs("./api/v1/"), vec!["", "api", "api/v1"]);
    }

    #[test]
    fn deeper_files_come_last_so_they_win() {
        let chain = assemble_chain(
            vec![file("AGENTS.md", "use tabs"), file("api/AGENTS.md", "use spaces")],
            1000,
        );
        assert_eq!(chain.files, vec!["AGENTS.md", "api/AGENTS.md"]);
        let root = chain.text.find("use tabs").unwrap();
        let deep = chain.text.find("use spaces").unwrap();
        assert!(root < deep);
        assert!(chain.text.contains("the deeper file wins"));
        assert!(!chain.truncated);
    }

    #[test]
    fn over_budget_cuts_the_root_side_first() {
        let chain = assemble_chain(
            vec![file("AGENTS.md", &"r".repeat(100)), file("a/AGENTS.md", &"d".repeat(60))],
            80,
        );
        assert!(chain.truncated);
        assert!(chain.text.contains(&"d".repeat(60)));
        assert!(chain.text.contains(&format!("{}\n[… cut", "r".repeat(20))));
        let tiny = assemble_chain(vec![file("AGENTS.md", "root"), file("a/AGENTS.md", "deep")], 4);
        assert_eq!(tiny.files, vec!["a/AGENTS.md"]);
    }

    #[test]
    fn no_files_no_text() {
        assert_eq!(assemble_chain(vec![], 10), InstructionsChain::default());
    }
}
