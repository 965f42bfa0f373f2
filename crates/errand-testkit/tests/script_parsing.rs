//! Bad scripts are refused with errors that name the turn and the field.

use errand_testkit::{FaultKind, Output, Script};

fn error_of(text: &str) -> String {
    Script::from_toml(text).expect_err("script should be refused").to_string()
}

#[test]
fn bad_scripts_name_the_turn_and_field() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["no `[[turns]]`"]),
        ("turns = 3", &["`turns` must be an array"]),
        ("[[turns]]\n[other]\nx = 1", &["unknown top-level key `other`"]),
        ("[[turns]\n", &["not valid TOML"]),
        ("[[turns]]\n[[turns]]\nbogus = 1", &["turn 2", "bogus"]),
        ("[[turns]]\nexpect.tool = [\"shell\"]", &["turn 1", "tool"]),
        (
            "[[turns]]\n[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"a\"\n[[turns.output]]\ntype = \"image\"",
            &["turn 2, output 2", "image"],
        ),
        (
            "[[turns]]\n[[turns.output]]\ntype = \"function_call\"\nname = \"shell\"",
            &["turn 1, output 1", "arguments"],
        ),
        (
            "[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"hi\"\nextra = 1",
            &["turn 1, output 1", "extra"],
        ),
        (
            "[[turns]]\n[turns.fault]\nstatus = 429\nfailed = \"server_error\"",
            &["turn 1, fault", "exactly one"],
        ),
        ("[[turns]]\n[turns.fault]\ntimes = 2", &["turn 1, fault", "exactly one"]),
        ("[[turns]]\n[turns.fault]\nstatus = 200", &["turn 1, fault", "400..=599"]),
        (
            "[[turns]]\n[turns.fault]\ndrop_after_events = 2\nretry_after = 1",
            &["turn 1, fault", "`retry_after`"],
        ),
        ("[[turns]]\n[turns.fault]\nstatus = 500\ntimes = 0", &["turn 1, fault", "`times`"]),
        ("[[turns]]\n[turns.usage]\ninput = 3", &["turn 1", "input"]),
    ];
    for (text, needles) in cases {
        let error = error_of(text);
        for needle in *needles {
            assert!(error.contains(needle), "script {text:?}: error {error:?} lacks {needle:?}");
        }
    }
}

#[test]
fn full_script_parses() {
    let script = Script::from_toml(
        r#"
        [[turns]]
        expect.tools = ["shell", "apply_patch"]
        delay_ms = 5
        [[turns.output]]
        type = "reasoning"
        summary = "look first"
        [[turns.output]]
        type = "function_call"
        name = "shell"
        arguments = { command = ["cat", "src/lib.rs"] }
        [turns.fault]
        status = 429
        retry_after = 0
        times = 2

        [[turns]]
        expect.last_tool_output_contains = ["fn main"]
        [[turns.output]]
        type = "custom_tool_call"
        name = "apply_patch"
        input = '''
*** Begin Patch
*** End Patch
'''
        [[turns.output]]
        type = "function_call"
        name = "shell"
        arguments = "{not json"
        [turns.usage]
        input_tokens = 100
        output_tokens = 20

        [[turns]]
        [[turns.output]]
        type = "message"
        text = "done"
        [turns.fault]
        drop_after_events = 3
        "#,
    )
    .unwrap();
    assert_eq!(script.turns.len(), 3);
    let first = &script.turns[0];
    assert_eq!(first.delay_ms, 5);
    let fault = first.fault.as_ref().unwrap();
    assert_eq!(fault.times, 2);
    assert!(matches!(fault.kind, FaultKind::Status { status: 429, retry_after: Some(0), .. }));
    let Output::FunctionCall { arguments, .. } = &script.turns[1].output[1] else { panic!() };
    assert_eq!(arguments.to_json_text(), "{not json");
    assert_eq!(script.turns[1].usage.unwrap().input_tokens, 100);
    assert_eq!(script.turns[2].fault.as_ref().unwrap().kind, FaultKind::DropAfterEvents(3));
}

#[test]
fn missing_file_names_the_path() {
    let error = Script::from_file("/nonexistent/errand-script.toml").unwrap_err().to_string();
    assert!(error.contains("/nonexistent/errand-script.toml"), "{error}");
}
