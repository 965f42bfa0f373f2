//! The tools offered to the model, in the shapes Codex's models are trained on (design: "Wire
//! compatibility"): `shell` with an argv array, `apply_patch` as a freeform tool (or a JSON
//! `{input}` function where freeform tools are not supported), and `update_plan`.

use errand_model::{FreeformFormat, ToolSpec};
use errand_protocol::{PlanItem, PlanStatus};
use serde::Deserialize;
use serde_json::json;

use crate::run::PatchToolMode;

pub const SHELL: &str = "shell";
pub const APPLY_PATCH: &str = "apply_patch";
pub const UPDATE_PLAN: &str = "update_plan";

/// A grammar for the `*** Begin Patch` format, so providers that constrain freeform tool input
/// can keep the model inside the format. Written from the format's description in errand-patch.
const PATCH_GRAMMAR: &str = r#"start: "*** Begin Patch" LF file_op+ "*** End Patch" LF?
file_op: add_file | delete_file | update_file
add_file: "*** Add File: " path LF ("+" TEXT? LF)*
delete_file: "*** Delete File: " path LF
update_file: "*** Update File: " path LF ("*** Move to: " path LF)? chunk+
chunk: ("@@" (" " TEXT)? LF)? diff_line+ ("*** End of File" LF)?
diff_line: (" " | "+" | "-") TEXT? LF
path: /[^\r\n]+/
TEXT: /[^\r\n]+/
%import common.LF
"#;

const PATCH_DESCRIPTION: &str = "Edits files with a patch. The input is the whole patch:\n\
*** Begin Patch\n\
*** Add File: path/new.py\n\
+line of the new file\n\
*** Update File: path/old.py\n\
@@ def function_near_the_change():\n\
 unchanged context line\n\
-removed line\n\
+added line\n\
*** Delete File: path/obsolete.py\n\
*** End Patch\n\
Paths are relative to the working directory and must stay inside the repository. Give about \
three lines of context around each change; `@@` followed by a class or function line narrows \
where the context is searched. `*** Move to: new/path` after `*** Update File:` renames the file.";

pub fn specs(mode: PatchToolMode) -> Vec<ToolSpec> {
    let shell = ToolSpec::Function {
        name: SHELL.into(),
        description: "Runs a command in the repository's sandbox and returns its exit code and \
                      output. Pass argv as an array; use [\"bash\", \"-lc\", \"...\"] for pipes, \
                      redirection or globbing. The sandbox has no network."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "array", "items": {"type": "string"}, "description": "The command and its arguments."},
                "workdir": {"type": "string", "description": "Directory to run in, relative to the repository root or absolute. Defaults to the task's working directory."},
                "timeout_ms": {"type": "number", "description": "Kill the command and everything it started after this many milliseconds."}
            },
            "required": ["command"],
            "additionalProperties": false
        }),
    };
    let apply_patch = match mode {
        PatchToolMode::Freeform => ToolSpec::Freeform {
            name: APPLY_PATCH.into(),
            description: PATCH_DESCRIPTION.into(),
            format: Some(FreeformFormat {
                syntax: "lark".into(),
                definition: PATCH_GRAMMAR.into(),
            }),
        },
        PatchToolMode::Function => ToolSpec::Function {
            name: APPLY_PATCH.into(),
            description: PATCH_DESCRIPTION.into(),
            parameters: json!({
                "type": "object",
                "properties": {"input": {"type": "string", "description": "The whole patch, from *** Begin Patch to *** End Patch."}},
                "required": ["input"],
                "additionalProperties": false
            }),
        },
    };
    let update_plan = ToolSpec::Function {
        name: UPDATE_PLAN.into(),
        description: "Records your plan as a short list of steps with their status, so the user \
                      can follow along. At most one step is in_progress at a time."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "explanation": {"type": "string"},
                "plan": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "step": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]}
                    },
                    "required": ["step", "status"],
                    "additionalProperties": false
                }}
            },
            "required": ["plan"],
            "additionalProperties": false
        }),
    };
    vec![shell, apply_patch, update_plan]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellArgs {
    pub command: Vec<String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchArgs {
    pub input: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanArgs {
    #[serde(default)]
    pub explanation: Option<String>,
    pub plan: Vec<PlanStepArgs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStepArgs {
    pub step: String,
    pub status: PlanStatus,
}

impl PlanArgs {
    pub fn into_items(self) -> (Option<String>, Vec<PlanItem>) {
        let plan =
            self.plan.into_iter().map(|s| PlanItem { step: s.step, status: s.status }).collect();
        (self.explanation, plan)
    }
}

/// Parses JSON arguments; the error says what a valid call looks like, with a concrete example
/// (see `malformed.rs`).
pub fn parse_args<T: serde::de::DeserializeOwned>(
    tool: &str,
    arguments: &str,
) -> Result<T, String> {
    serde_json::from_str(arguments)
        .map_err(|e| crate::malformed::invalid_arguments(tool, arguments, &e.to_string()))
}

/// Whether `arguments` would be accepted by `tool` (the deserialization its call goes through,
/// plus `shell`'s non-empty command); the error is what the model would be told.
pub fn check_args(tool: &str, arguments: &str) -> Result<(), String> {
    match tool {
        SHELL => match parse_args::<ShellArgs>(tool, arguments)? {
            args if args.command.is_empty() => Err(crate::malformed::empty_command()),
            _ => Ok(()),
        },
        APPLY_PATCH => parse_args::<PatchArgs>(tool, arguments).map(drop),
        UPDATE_PLAN => parse_args::<PlanArgs>(tool, arguments).map(drop),
        other => Err(crate::malformed::unknown_tool(other)),
    }
}

/// Models trained on Codex sometimes send a patch through the shell: `["apply_patch", PATCH]` or
/// `["bash", "-lc", "apply_patch <<'EOF' ... EOF"]`. Returns the patch text when that is the case.
pub fn patch_in_shell_call(command: &[String]) -> Option<String> {
    if let [program, patch] = command
        && (program == APPLY_PATCH || program == "applypatch")
    {
        return Some(patch.clone());
    }
    let rest = shell_script(command)?.trim_start().strip_prefix(APPLY_PATCH)?;
    if !rest.starts_with([' ', '\n']) {
        return None;
    }
    let rest = rest.trim_start();
    // A heredoc: `<<'EOF'`, `<<"EOF"` or `<<EOF`; the patch engine unwraps it.
    rest.starts_with("<<").then(|| rest.to_string())
}

/// The script of a `bash -lc SCRIPT` (or `sh -c`) command, the form models use for pipes and
/// redirection.
pub fn shell_script(command: &[String]) -> Option<&str> {
    match command {
        [shell, flag, script]
            if (shell == "bash" || shell == "sh") && (flag == "-lc" || flag == "-c") =>
        {
            Some(script)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_the_three_tools_in_both_patch_modes() {
        for mode in [PatchToolMode::Freeform, PatchToolMode::Function] {
            let names: Vec<_> = specs(mode).iter().map(|t| t.name().to_string()).collect();
            assert_eq!(names, ["shell", "apply_patch", "update_plan"]);
        }
        assert!(matches!(specs(PatchToolMode::Freeform)[1], ToolSpec::Freeform { .. }));
        assert!(matches!(specs(PatchToolMode::Function)[1], ToolSpec::Function { .. }));
    }

    #[test]
    fn bad_arguments_get_a_concrete_example() {
        let err = parse_args::<ShellArgs>(SHELL, r#"{"cmd": "ls"}"#).unwrap_err();
        assert!(err.contains("unknown field `cmd`"), "{err}");
        assert!(err.contains(r#""command": ["bash", "-lc", "ls -la"]"#), "{err}");
        assert!(!err.contains('<'), "no placeholders: {err}");
        let err = parse_args::<ShellArgs>(SHELL, "{not json").unwrap_err();
        assert!(err.contains("invalid arguments for `shell`"), "{err}");
    }

    #[test]
    fn plan_statuses_parse() {
        let args: PlanArgs =
            parse_args(UPDATE_PLAN, r#"{"plan":[{"step":"a","status":"in_progress"}]}"#).unwrap();
        assert_eq!(args.into_items().1[0].status, PlanStatus::InProgress);
        assert!(
            parse_args::<PlanArgs>(UPDATE_PLAN, r#"{"plan":[{"step":"a","status":"done"}]}"#)
                .is_err()
        );
    }

    #[test]
    fn recognises_patches_sent_through_the_shell() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(patch_in_shell_call(&s(&["apply_patch", "P"])), Some("P".into()));
        let heredoc = "apply_patch <<'EOF'\n*** Begin Patch\n*** End Patch\nEOF\n";
        assert_eq!(
            patch_in_shell_call(&s(&["bash", "-lc", heredoc])),
            Some("<<'EOF'\n*** Begin Patch\n*** End Patch\nEOF\n".into())
        );
        assert_eq!(patch_in_shell_call(&s(&["bash", "-lc", "apply_patchy x"])), None);
        assert_eq!(patch_in_shell_call(&s(&["ls", "-la"])), None);
    }
}
