#!/usr/bin/env python3
"""Drives the official OpenAI and Anthropic Python SDKs against errand-testkit's scripted model.

Usage: drive.py {responses|chat|anthropic} BASE_URL

Runs the steps of one suite, in order; each SDK call consumes the next turn(s) of the script that
tests/sdk_conformance.rs serves for that suite, so the two files change together. Prints one JSON
object on stdout, `{"problems": [...], "<step>": {...}, ...}`: what the SDK made of each answer
(its own typed models, dumped), for the Rust test to compare with the script.

A problem is anything the SDK would not accept from the real API: an event or chunk that does not
validate against the SDK's own models (the SDK's loose fallback would hide it), a `type` that no
event class claims, or a field the SDK does not know. Unexpected exceptions propagate (exit 1, with
the traceback on stderr).
"""

import json
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Set, get_args

import pydantic

PROBLEMS: List[str] = []
# Known gaps (see `check`) that showed up.
GAPS_SEEN: Dict[str, str] = {}
# Delays the SDKs' retry loops asked to sleep; recorded instead of slept (see `record_sleeps`).
SLEEPS: List[float] = []

MODEL = "scripted-model"
API_KEY = "sk-test-conformance"


class _RecordingTime:
    """Stands in for the `time` module inside an SDK's `_base_client`: `sleep` records the delay
    (so a `Retry-After` of minutes is checked without waiting), everything else is `time`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        SLEEPS.append(seconds)


def record_sleeps(sdk: Any) -> None:
    sdk._base_client.time = _RecordingTime()


# ---------------------------------------------------------------------------------------------
# Strict checks


def unknown_fields(model: Any, path: str, expected: Set[str]) -> List[str]:
    """Paths of fields the SDK kept as extras (fields its models do not declare), except those
    named `<class>.<field>` in `expected`."""
    found: List[str] = []
    if isinstance(model, pydantic.BaseModel):
        for name in (model.__pydantic_extra__ or {}).keys():
            if f"{type(model).__name__}.{name}" not in expected:
                found.append(f"{path}.{name} ({type(model).__name__})")
        for name in type(model).model_fields:
            found += unknown_fields(getattr(model, name, None), f"{path}.{name}", expected)
    elif isinstance(model, (list, tuple)):
        for i, item in enumerate(model):
            found += unknown_fields(item, f"{path}[{i}]", expected)
    elif isinstance(model, dict):
        for key, item in model.items():
            found += unknown_fields(item, f"{path}.{key}", expected)
    return found


def declared_type(cls: type) -> Optional[str]:
    """The literal `type` a model class declares, e.g. `response.completed`."""
    field = cls.model_fields.get("type")
    args = get_args(field.annotation) if field else ()
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def by_type(union: Any) -> Dict[str, type]:
    """The classes of an SDK event union (`Annotated[Union[...], ...]`) by the `type` they claim."""
    members = get_args(get_args(union)[0])
    return {declared_type(cls): cls for cls in members}


def check(
    classes: Dict[Optional[str], type],
    parsed: Any,
    where: str,
    extras: Set[str] = frozenset(),
    gaps: Optional[Dict[str, str]] = None,
) -> None:
    """`parsed` (what the SDK yielded) must be of the class that claims its `type` (the SDK's
    loose parsing would put an unknown `type` into some unrelated class), its JSON must validate
    strictly against that class, and it must carry no field the SDK does not know (`extras`
    names the unknown fields that are expected, as `<class>.<field>`). A validation error whose
    `<location>: <kind>` is a key of `gaps` is recorded as a known gap instead of a problem."""
    raw = parsed.to_dict(mode="json")
    cls = classes.get(raw.get("type")) or classes.get(None)
    if cls is None:
        PROBLEMS.append(f"{where}: no class of the SDK claims `type` {raw.get('type')!r}")
        return
    if type(parsed) is not cls:
        got = type(parsed).__name__
        PROBLEMS.append(f"{where}: the SDK parsed it as {got}, not {cls.__name__}")
    try:
        cls.model_validate_json(json.dumps(raw), strict=True)
    except pydantic.ValidationError as e:
        for error in e.errors():
            key = ".".join(str(part) for part in error["loc"]) + ": " + error["type"]
            if gaps is not None and key in gaps:
                GAPS_SEEN[key] = gaps[key]
            else:
                PROBLEMS.append(f"{where}: {cls.__name__}.{key} ({error['msg']})")
    for path in unknown_fields(parsed, where, extras):
        PROBLEMS.append(f"{path}: a field the SDK does not know")


def stale_gaps(gaps: Dict[str, str]) -> None:
    """A known gap that no longer shows has been fixed: its entry must go too."""
    for key in gaps:
        if key not in GAPS_SEEN:
            PROBLEMS.append(f"known gap `{key}` no longer shows: remove it from drive.py")


def dump(model: Any) -> Any:
    """A model as JSON, without fields the server did not send."""
    return model.model_dump(mode="json", exclude_unset=True, by_alias=True)


def typed_error(call: Callable[[], Any], base: Any) -> Dict[str, Any]:
    """Runs `call`, which must raise one of `base` (an SDK's error class, or a tuple); describes
    the error."""
    try:
        call()
    except base as e:
        response = getattr(e, "response", None)
        headers = response.headers if response is not None else {}
        return {
            "class": type(e).__name__,
            "classes": [cls.__name__ for cls in type(e).__mro__],
            "status": getattr(e, "status_code", None),
            "code": getattr(e, "code", None),
            "type": getattr(e, "type", None),
            # The API's machine-readable kind: OpenAI's error `code`, Anthropic's error `type`.
            "kind": getattr(e, "code", None) or getattr(e, "type", None),
            "message": str(e),
            "body": getattr(e, "body", None),
            "retry_after": headers.get("retry-after"),
        }
    raise AssertionError("the call succeeded, but an error was scripted")


def fault_steps(
    create: Callable[..., Dict[str, Any]],
    text: Callable[[Dict[str, Any]], str],
    sdk: Any,
    failed: Callable[[], Dict[str, Any]],
    cut: Any = None,
) -> Dict[str, Any]:
    """The fault turns every suite's script ends with, in order. `create(retries)` streams one
    turn; after each fault a plain call consumes the rest of the turn, whose text is the step's
    `_then` (proof the client recovered). `cut` is what a connection cut mid-stream raises
    (default: the SDK's `APIError`)."""

    def status_error() -> Dict[str, Any]:
        return typed_error(create, sdk.APIStatusError)

    steps: Dict[str, Any] = {}
    # 429 with `Retry-After: 7`, served twice: without retries the typed error, with one retry
    # the SDK waits what the header says (recorded, not slept) and then succeeds.
    steps["rate_limited"] = status_error()
    SLEEPS.clear()
    steps["rate_limited_then"] = text(create(retries=1))
    steps["rate_limited_sleeps"] = list(SLEEPS)
    steps["unauthorized"] = status_error()
    steps["unauthorized_then"] = text(create())
    steps["context_length"] = status_error()
    steps["context_length_then"] = text(create())
    steps["server_errors"] = []
    steps["server_errors_then"] = []
    for _ in SERVER_ERRORS:
        steps["server_errors"].append(status_error())
        steps["server_errors_then"].append(text(create()))
    steps["failed"] = failed()
    steps["failed_then"] = text(create())
    steps["dropped"] = typed_error(create, cut or sdk.APIError)
    steps["dropped_then"] = text(create())
    return steps


# HTTP statuses of the server-error turns, in order.
SERVER_ERRORS = [500, 502, 503, 529]


# ---------------------------------------------------------------------------------------------
# OpenAI Responses


def responses_suite(base_url: str) -> Dict[str, Any]:
    import openai
    from openai.types.responses import ResponseStreamEvent

    record_sleeps(openai)
    classes = by_type(ResponseStreamEvent)
    # The API sends the function's `name` in `function_call_arguments.done` (it is required in
    # OpenAI's OpenAPI document); openai-python's model does not declare it.
    extras = {"ResponseFunctionCallArgumentsDoneEvent.name"}
    gaps: Dict[str, str] = {}

    def client(retries: int = 0) -> "openai.OpenAI":
        return openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=retries)

    tools: List[Dict[str, Any]] = [
        {
            "type": "function",
            "name": "shell",
            "description": "Runs a command.",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                "required": ["command"],
                "additionalProperties": False,
            },
        },
        {"type": "custom", "name": "apply_patch", "description": "Applies a patch."},
    ]

    def create(retries: int = 0) -> Dict[str, Any]:
        """`responses.create(stream=True)`: every raw event checked, the completed response."""
        events = []
        stream = client(retries).responses.create(
            model=MODEL, input="hi", tools=tools, stream=True
        )
        for event in stream:
            check(classes, event, f"responses event {len(events)} ({event.type})", extras, gaps)
            events.append(event)
        last = events[-1]
        out: Dict[str, Any] = {
            "types": [event.type for event in events],
            "sequence_numbers": [event.sequence_number for event in events],
            "text_deltas": "".join(
                e.delta for e in events if e.type == "response.output_text.delta"
            ),
            "reasoning_deltas": "".join(
                e.delta for e in events if e.type == "response.reasoning_summary_text.delta"
            ),
            "argument_deltas": {},
            "custom_input_deltas": "".join(
                e.delta for e in events if e.type == "response.custom_tool_call_input.delta"
            ),
            "last": dump(last),
        }
        for e in events:
            if e.type == "response.function_call_arguments.delta":
                out["argument_deltas"].setdefault(e.item_id, "")
                out["argument_deltas"][e.item_id] += e.delta
        if last.type == "response.completed":
            out["output_text"] = last.response.output_text
        return out

    def helper() -> Dict[str, Any]:
        """`responses.stream(...)` and `get_final_response()`: the SDK's own accumulation."""
        with client().responses.stream(model=MODEL, input="hi", tools=tools) as stream:
            types = [event.type for event in stream]
            final = stream.get_final_response()
        calls = [
            {
                "name": item.name,
                "call_id": item.call_id,
                "arguments": item.arguments,
                "parsed_arguments": getattr(item, "parsed_arguments", None),
            }
            for item in final.output
            if item.type == "function_call"
        ]
        return {
            "types": types,
            "output_text": final.output_text,
            "output": [dump(item) for item in final.output],
            "function_calls": calls,
            "usage": dump(final.usage),
            "status": final.status,
        }

    def failed_helper() -> Dict[str, Any]:
        """A `response.failed` stream: the helper yields the typed event, then has no response."""
        with client().responses.stream(model=MODEL, input="hi") as stream:
            events = list(stream)
            try:
                stream.get_final_response()
                final_error = None
            except RuntimeError as e:
                final_error = str(e)
        failed = events[-1]
        return {
            "types": [event.type for event in events],
            "error": dump(failed.response.error) if failed.type == "response.failed" else None,
            "final_error": final_error,
        }

    report = {"create": create(), "helper": helper()}
    report.update(
        fault_steps(create, lambda result: result["output_text"], openai, failed_helper)
    )
    stale_gaps(gaps)
    return report


# ---------------------------------------------------------------------------------------------
# OpenAI Chat Completions


def chat_suite(base_url: str) -> Dict[str, Any]:
    import openai
    from openai.types.chat import ChatCompletionChunk

    record_sleeps(openai)
    # One class for every chunk, which has no `type`.
    classes = {None: ChatCompletionChunk}
    # `reasoning_content` is how vLLM, DeepSeek and llama.cpp stream reasoning; OpenAI's SDK has
    # no field for it and keeps it as an extra, which is what a client of those servers reads.
    extras = {"ChoiceDelta.reasoning_content"}

    def client(retries: int = 0) -> "openai.OpenAI":
        return openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=retries)

    def function(name: str, properties: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": name,
                "strict": True,
                "parameters": {
                    "type": "object",
                    "properties": properties,
                    "required": list(properties),
                    "additionalProperties": False,
                },
            },
        }

    tools = [
        function("shell", {"command": {"type": "array", "items": {"type": "string"}}}),
        function("apply_patch", {"input": {"type": "string"}}),
    ]
    messages = [{"role": "user", "content": "hi"}]

    def create(retries: int = 0) -> Dict[str, Any]:
        """`chat.completions.create(stream=True)` with usage: every chunk checked, then the
        pieces put together the way a client does."""
        chunks = []
        stream = client(retries).chat.completions.create(
            model=MODEL,
            messages=messages,
            tools=tools,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            check(classes, chunk, f"chat chunk {len(chunks)}", extras)
            chunks.append(chunk)
        content, reasoning, calls, finish, roles = "", "", {}, None, []
        for chunk in chunks:
            for choice in chunk.choices:
                delta = choice.delta
                if delta.role:
                    roles.append(delta.role)
                content += delta.content or ""
                reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
                for call in delta.tool_calls or []:
                    slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                    if call.id:
                        slot["id"] = call.id
                    if call.function and call.function.name:
                        slot["name"] += call.function.name
                    if call.function and call.function.arguments:
                        slot["arguments"] += call.function.arguments
                finish = choice.finish_reason or finish
        usage = [dump(chunk.usage) for chunk in chunks if chunk.usage is not None]
        return {
            "objects": sorted({chunk.object for chunk in chunks}),
            "ids": sorted({chunk.id for chunk in chunks}),
            "models": sorted({chunk.model for chunk in chunks}),
            "roles": roles,
            "content": content,
            "reasoning": reasoning,
            "tool_calls": [calls[i] for i in sorted(calls)],
            "finish_reason": finish,
            "usage": usage,
            "last_has_choices": bool(chunks[-1].choices),
        }

    def helper() -> Dict[str, Any]:
        """`chat.completions.stream(...)`: the SDK assembles the tool calls and parses their
        arguments (strict tools)."""
        events = []
        with client().chat.completions.stream(
            model=MODEL, messages=messages, tools=tools, stream_options={"include_usage": True}
        ) as stream:
            for event in stream:
                events.append(event)
            final = stream.get_final_completion()
        message = final.choices[0].message
        done = [
            {"index": e.index, "name": e.name, "arguments": e.arguments,
             "parsed_arguments": e.parsed_arguments}
            for e in events
            if e.type == "tool_calls.function.arguments.done"
        ]
        return {
            "types": sorted({event.type for event in events}),
            "content": message.content,
            "finish_reason": final.choices[0].finish_reason,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": call.type,
                    "name": call.function.name,
                    "arguments": call.function.arguments,
                    "parsed_arguments": call.function.parsed_arguments,
                }
                for call in message.tool_calls or []
            ],
            "arguments_done": done,
            "usage": dump(final.usage) if final.usage else None,
        }

    def failed() -> Dict[str, Any]:
        """A server-side failure mid-stream (`{"error": …}` chunk): the SDK raises it."""
        return typed_error(create, openai.APIError)

    report = {"create": create(), "helper": helper()}
    report.update(fault_steps(create, lambda result: result["content"], openai, failed))
    return report


# ---------------------------------------------------------------------------------------------
# Anthropic Messages


def anthropic_suite(base_url: str) -> Dict[str, Any]:
    import anthropic
    import httpx2
    from anthropic.types import RawMessageStreamEvent

    record_sleeps(anthropic)
    classes = by_type(RawMessageStreamEvent)
    # The SDK appends `/v1/messages` to its base URL itself.
    root = base_url.removesuffix("/v1")

    def client(retries: int = 0) -> "anthropic.Anthropic":
        return anthropic.Anthropic(base_url=root, api_key=API_KEY, max_retries=retries)

    def tool(name: str, properties: Dict[str, Any]) -> Dict[str, Any]:
        schema = {"type": "object", "properties": properties, "required": list(properties)}
        return {"name": name, "description": f"The {name} tool.", "input_schema": schema}

    tools = [
        tool("shell", {"command": {"type": "array", "items": {"type": "string"}}}),
        tool("apply_patch", {"input": {"type": "string"}}),
    ]
    request: Dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
    }

    def create(retries: int = 0) -> Dict[str, Any]:
        """`messages.create(stream=True)`: every raw event checked (the SDK skips `ping`), then
        the blocks put together the way a client does."""
        events = []
        for event in client(retries).messages.create(**request, stream=True):
            check(classes, event, f"anthropic event {len(events)} ({event.type})")
            events.append(event)
        blocks: List[Dict[str, Any]] = []
        for event in events:
            if event.type == "content_block_start":
                assert event.index == len(blocks), f"block {event.index} out of order"
                blocks.append({"start": dump(event.content_block), "deltas": {}})
            elif event.type == "content_block_delta":
                deltas = blocks[event.index]["deltas"]
                kind = event.delta.type
                piece = {
                    "text_delta": "text",
                    "thinking_delta": "thinking",
                    "signature_delta": "signature",
                    "input_json_delta": "partial_json",
                }[kind]
                deltas[kind] = deltas.get(kind, "") + getattr(event.delta, piece)
        start = next(e for e in events if e.type == "message_start")
        delta = next(e for e in events if e.type == "message_delta")
        return {
            "types": [event.type for event in events],
            "message_start": dump(start.message),
            "blocks": blocks,
            "text": "".join(b["deltas"].get("text_delta", "") for b in blocks),
            "stop_reason": delta.delta.stop_reason,
            "final_usage": dump(delta.usage),
        }

    def helper() -> Dict[str, Any]:
        """`messages.stream(...)` and `get_final_message()`: the SDK's own accumulation, tool
        inputs parsed from their `input_json_delta` pieces."""
        with client().messages.stream(**request) as stream:
            types = sorted({event.type for event in stream})
            final = stream.get_final_message()
        return {
            "types": types,
            "id": final.id,
            "content": [dump(block) for block in final.content],
            "stop_reason": final.stop_reason,
            "usage": dump(final.usage),
        }

    def failed() -> Dict[str, Any]:
        """An `error` event mid-stream: the SDK raises it as a status error with its body."""
        return typed_error(create, anthropic.APIStatusError)

    # Unlike openai-python, this SDK lets the HTTP library's error through when the connection
    # is cut mid-stream (its own `APIConnectionError` covers only the request).
    cut = (anthropic.APIError, httpx2.TransportError)
    report = {"create": create(), "helper": helper()}
    report.update(fault_steps(create, lambda result: result["text"], anthropic, failed, cut))
    return report


SUITES = {"responses": responses_suite, "chat": chat_suite, "anthropic": anthropic_suite}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in SUITES:
        print(__doc__, file=sys.stderr)
        return 2
    report = SUITES[sys.argv[1]](sys.argv[2])
    print(json.dumps({"problems": PROBLEMS, "known_gaps": GAPS_SEEN, **report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
