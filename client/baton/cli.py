"""The `baton` command line: apply definitions from YAML/JSON, run and watch executions,
get, list, cancel, and read event logs. Tables for people, `--output json` for scripts."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from baton._errors import BatonError, NotFoundError
from baton._sync import SyncClient
from baton._views import MessageView
from baton.v1 import (
    agent_pb2,
    event_pb2,
    execution_pb2,
    handoff_pb2,
    schedule_pb2,
    tool_pb2,
    workflow_pb2,
)

KINDS = {
    "agent": "agents",
    "workflow": "workflows",
    "handoff": "handoffs",
    "execution": "executions",
    "schedule": "schedules",
    "tool": "tools",
}
_MESSAGES: dict[str, type[Message]] = {
    "agent": agent_pb2.Agent,
    "workflow": workflow_pb2.Workflow,
    "handoff": handoff_pb2.Handoff,
    "schedule": schedule_pb2.Schedule,
    "tool": tool_pb2.Tool,
}
# What a server fills in: a file and a stored resource are compared without these.
_OUTPUT_ONLY = (
    "name",
    "create_time",
    "update_time",
    "etag",
    "revision",
    "state",
    "pause_reason",
    "next_run_times",
    "last_run_time",
    "last_execution",
    "fired_count",
    "skipped_count",
    "last_error",
)
_STEP_EVENTS = {
    event_pb2.EVENT_TYPE_STEP_STARTED: "started",
    event_pb2.EVENT_TYPE_STEP_SUCCEEDED: "succeeded",
    event_pb2.EVENT_TYPE_STEP_FAILED: "failed",
    event_pb2.EVENT_TYPE_STEP_RETRYING: "retrying",
    event_pb2.EVENT_TYPE_STEP_SKIPPED: "skipped",
    event_pb2.EVENT_TYPE_STEP_TIMED_OUT: "timed out",
    event_pb2.EVENT_TYPE_FALLBACK_ACTIVATED: "fallback",
    event_pb2.EVENT_TYPE_HANDOFF: "handoff",
    event_pb2.EVENT_TYPE_STEP_INTERRUPTED: "interrupted by a restart",
}
_END_EVENTS = {
    event_pb2.EVENT_TYPE_EXECUTION_SUCCEEDED: "succeeded",
    event_pb2.EVENT_TYPE_EXECUTION_FAILED: "failed",
    event_pb2.EVENT_TYPE_EXECUTION_CANCELLED: "cancelled",
    event_pb2.EVENT_TYPE_EXECUTION_TIMED_OUT: "timed out",
}
_PAUSE_EVENTS = {
    event_pb2.EVENT_TYPE_EXECUTION_PAUSED: "paused",
    event_pb2.EVENT_TYPE_EXECUTION_RESUMED: "resumed",
}


class CliError(Exception):
    """A problem with what the user asked (bad file, bad JSON)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `baton` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        credentials = _credentials(args)
        with SyncClient.connect(
            args.server, token=args.token, timeout=args.timeout, credentials=credentials
        ) as client:
            status: int = args.handler(client, args, sys.stdout)
            return status
    except (BatonError, CliError) as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    if not (args.tls_ca or args.tls_cert):
        return None

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read(args.tls_ca),
        private_key=read(args.tls_key),
        certificate_chain=read(args.tls_cert),
    )


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes, before or after the command's name. After it
    (`suppress`), an option left out keeps what was given before the name."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--server",
        default=default(os.environ.get("BATON_SERVER", "localhost:50051")),
        help="host:port of the server (env BATON_SERVER)",
    )
    parser.add_argument(
        "--token",
        default=default(os.environ.get("BATON_TOKEN")),
        help="bearer token (env BATON_TOKEN)",
    )
    parser.add_argument("--timeout", type=float, default=default(30.0), help="seconds per call")
    parser.add_argument(
        "--tls-ca",
        default=default(os.environ.get("BATON_TLS_CA")),
        help="use TLS, trusting this PEM CA bundle (env BATON_TLS_CA)",
    )
    parser.add_argument(
        "--tls-cert",
        default=default(os.environ.get("BATON_TLS_CERT")),
        help="client certificate for mutual TLS (env BATON_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key",
        default=default(os.environ.get("BATON_TLS_KEY")),
        help="client key for mutual TLS (env BATON_TLS_KEY)",
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default=default("table"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baton", description="Talk to a Baton server.")
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    subparsers = parser.add_subparsers(dest="command", required=True)

    class _Commands:
        """add_parser with the global options on every command."""

        @staticmethod
        def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
            return subparsers.add_parser(name, parents=[common], **kwargs)

    commands = _Commands()

    apply = commands.add_parser("apply", help="create or update agents, workflows, handoffs")
    apply.add_argument(
        "-f",
        "--file",
        required=True,
        action="append",
        help="YAML or JSON file ('-' for standard input); may repeat",
    )
    apply.set_defaults(handler=_apply)

    validate = commands.add_parser("validate", help="check workflow definitions, store nothing")
    validate.add_argument(
        "-f", "--file", required=True, action="append", help="YAML or JSON file; may repeat"
    )
    validate.set_defaults(handler=_validate)

    run = commands.add_parser("run", help="start an execution")
    run.add_argument("workflow")
    run.add_argument("--input", default="{}", help="the input as JSON")
    run.add_argument(
        "--input-file", default=None, help="read the input (JSON) from a file; '-': stdin"
    )
    run.add_argument("--priority", type=int, default=0)
    run.add_argument("--execution-timeout", type=float, default=None, help="seconds")
    run.add_argument("--label", action="append", default=[], help="key=value; may repeat")
    run.add_argument("--watch", action="store_true", help="follow it until it ends")
    run.set_defaults(handler=_run)

    watch = commands.add_parser("watch", help="follow an execution's steps until it ends")
    watch.add_argument("execution")
    watch.set_defaults(handler=_watch)

    get = commands.add_parser("get", help="show one resource")
    get.add_argument("kind", choices=sorted(KINDS))
    get.add_argument("name")
    get.set_defaults(handler=_get)

    listing = commands.add_parser("list", help="list resources")
    listing.add_argument("kind", choices=sorted(KINDS))
    listing.add_argument("--workflow", default="", help="executions of this workflow")
    listing.add_argument("--state", default="", help="e.g. ACTIVE, RUNNING, FAILED")
    listing.add_argument(
        "--label", action="append", default=[], help="executions with key=value; may repeat"
    )
    listing.add_argument(
        "--waiting",
        action="store_true",
        help="executions with a step that waits for a signal or a person's approval",
    )
    listing.add_argument("--parent", default="", help="the child executions of this one")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=_list)

    delete = commands.add_parser("delete", help="delete a resource (an execution once ended)")
    delete.add_argument("kind", choices=sorted(KINDS))
    delete.add_argument("name")
    delete.set_defaults(handler=_delete)

    signal = commands.add_parser("signal", help="deliver a signal to an execution")
    signal.add_argument("execution")
    signal.add_argument("signal", help="its name, as the waiting step's wait_for names it")
    signal.add_argument("--payload", default="{}", help="what it carries, as JSON")
    signal.set_defaults(handler=_signal)

    approve = commands.add_parser("approve", help="approve (or reject) a waiting approval step")
    approve.add_argument("execution")
    approve.add_argument("step", help="the approval step's id")
    approve.add_argument("--reject", action="store_true", help="reject instead of approving")
    approve.add_argument("--reason", default="", help="why; recorded with the decision")
    approve.set_defaults(handler=_approve)

    retry = commands.add_parser("retry", help="run a failed execution again from some steps")
    retry.add_argument("execution")
    retry.add_argument(
        "--from-step", action="append", default=[], help="a step to start over; may repeat"
    )
    retry.add_argument("--watch", action="store_true", help="follow it until it ends")
    retry.set_defaults(handler=_retry)

    pause = commands.add_parser(
        "pause", help="pause an execution (nothing new starts), or schedules/<id>"
    )
    pause.add_argument("execution", help="an execution, or schedules/<id> to pause a schedule")
    pause.add_argument("--reason", default="paused from the command line")
    pause.set_defaults(handler=_pause)

    resume = commands.add_parser("resume", help="resume a paused execution, or schedules/<id>")
    resume.add_argument("execution", help="an execution, or schedules/<id> to unpause it")
    resume.set_defaults(handler=_resume)

    cancel = commands.add_parser("cancel", help="cancel an execution")
    cancel.add_argument("execution")
    cancel.add_argument("--reason", default="cancelled from the command line")
    cancel.set_defaults(handler=_cancel)

    metrics = commands.add_parser("metrics", help="workflow metrics or agent performance")
    metrics.add_argument("kind", choices=["workflow", "agent"])
    metrics.add_argument("name")
    metrics.add_argument("--hours", type=float, default=24.0, help="the window, ending now")
    metrics.set_defaults(handler=_metrics)

    health = commands.add_parser("health", help="the server's health")
    health.set_defaults(handler=_health)

    events = commands.add_parser("events", help="print an execution's event log")
    events.add_argument("execution")
    events.add_argument("--follow", action="store_true", help="keep following live events")
    events.set_defaults(handler=_events)
    return parser


# Commands ---------------------------------------------------------------------------


def _apply(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    """Applies every document in order; one that fails is reported (naming it) and the
    others still go through. Exit status 2 when any failed."""
    rows = []
    failed = False
    for path in args.file:
        for number, document in enumerate(_documents(path), 1):
            where = f"{path}, document {number}"
            try:
                kind, resource_id, message = _definition(document, where)
                name = f"{KINDS[kind]}/{resource_id}"
                action = _apply_one(client, kind, resource_id, message)
            except (BatonError, CliError) as exc:
                failed = True
                print(f"baton: {where}: {exc}", file=sys.stderr)
                label = document.get("id") or document.get("name") or "?"
                rows.append(
                    {
                        "kind": str(document.get("kind", "?")).lower(),
                        "name": label,
                        "action": f"failed ({where}): {exc}",
                    }
                )
                continue
            rows.append({"kind": kind, "name": name, "action": action})
    _print(out, args.output, rows, ["kind", "name", "action"])
    return 2 if failed else 0


def _validate(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    """Validates every Workflow document on the server (nothing is stored)."""
    rows = []
    failed = False
    for path in args.file:
        for number, document in enumerate(_documents(path), 1):
            where = f"{path}, document {number}"
            kind, resource_id, message = _definition(document, where)
            if kind != "workflow":
                continue
            try:
                client.workflows.validate(message)
                result = "valid"
            except BatonError as exc:
                failed = True
                result = f"invalid ({where}): {exc}"
            rows.append({"name": f"workflows/{resource_id}", "result": result})
    _print(out, args.output, rows, ["name", "result"])
    return 2 if failed else 0


def _apply_one(client: SyncClient, kind: str, resource_id: str, message: Any) -> str:
    service: Any = getattr(client, KINDS[kind])
    try:
        current = service.get(resource_id)
        current = current.proto if isinstance(current, MessageView) else current
    except NotFoundError:
        service.create(message, **{f"{kind}_id": resource_id})
        return "created"
    message.name = current.name
    comparable = type(current)()
    comparable.CopyFrom(current)
    for field in _OUTPUT_ONLY:
        if comparable.DESCRIPTOR.fields_by_name.get(field):
            comparable.ClearField(field)
    if kind == "schedule":
        message.state = schedule_pb2.Schedule.STATE_UNSPECIFIED  # pause and unpause set it
    proposed = type(message)()
    proposed.CopyFrom(message)
    proposed.ClearField("name")
    if _normalised(kind, proposed) == _normalised(kind, comparable):
        return "unchanged"
    service.update(message)
    return "updated"


def _normalised(kind: str, message: Any) -> dict[str, Any]:
    """A definition as a dict with agent references spelt `agents/<id>` and defaults made
    explicit, so that a file and the stored resource compare equal when they mean the same."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    if kind == "agent" and data.get("state") in (None, "STATE_UNSPECIFIED"):
        data["state"] = "STATE_ACTIVE"
    if kind == "workflow":
        if data.get("state") in (None, "STATE_UNSPECIFIED"):
            data["state"] = "STATE_ACTIVE"
        for step in data.get("steps", []):
            for key in ("agent",):
                if key in step and not step[key].startswith("agents/"):
                    step[key] = f"agents/{step[key]}"
            step["fallback_agents"] = [
                a if a.startswith("agents/") else f"agents/{a}"
                for a in step.get("fallback_agents", [])
            ]
    if kind == "schedule":
        if "workflow" in data and not data["workflow"].startswith("workflows/"):
            data["workflow"] = f"workflows/{data['workflow']}"
        for key, default in (
            ("overlap_policy", "OVERLAP_POLICY_SKIP"),
            ("catch_up_policy", "CATCH_UP_POLICY_LAST"),
        ):
            if data.get(key) in (None, key.upper() + "_UNSPECIFIED"):
                data[key] = default
        data["catch_up_limit"] = data.get("catch_up_limit") or 10
    if kind == "handoff":
        for key in ("source_agent", "target_agent"):
            if key in data and not data[key].startswith("agents/"):
                data[key] = f"agents/{data[key]}"
    return {k: v for k, v in data.items() if v not in ({}, [], "", None)}


def _run(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.input_file is not None:
        value = _json_arg(_read(args.input_file), "--input-file")
    else:
        value = _json_arg(args.input, "--input")
    labels = _labels(args.label)
    execution = client.executions.start(
        args.workflow,
        value,
        priority=args.priority,
        timeout=args.execution_timeout,
        labels=labels,
    ).proto
    if not args.watch:
        _print_execution(out, args.output, execution)
        return 0
    if args.output == "table":
        print(f"started {execution.name}", file=out)
    return _follow(client, execution.name, args.output, out)


def _watch(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    return _follow(client, _name("executions", args.execution), args.output, out)


def _get(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    service: Any = getattr(client, KINDS[args.kind])
    resource = service.get(args.name)
    if args.kind == "execution":
        _print_execution(out, args.output, resource.proto)
    else:
        _get_like(
            resource.proto if isinstance(resource, MessageView) else resource, args.output, out
        )
    return 0


def _list(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    state = args.state.upper()
    if args.kind == "execution":
        items: Iterable[Any] = client.executions.list(
            workflow=args.workflow,
            state=_enum(execution_pb2.Execution.State, state),
            labels=_labels(args.label),
            waiting=args.waiting,
            parent=args.parent,
        )
        columns = ["name", "workflow", "state", "create_time"]
        if args.waiting:
            items = _with_waits(client, items)
            columns.append("waiting_for")
    elif args.kind == "workflow":
        items = client.workflows.list(state=_enum(workflow_pb2.Workflow.State, state))
        columns = ["name", "display_name", "revision", "state", "tags"]
    elif args.kind == "schedule":
        items = client.schedules.list(
            workflow=args.workflow, state=_enum(schedule_pb2.Schedule.State, state)
        )
        columns = ["name", "workflow", "state", "cron", "interval", "next_run_times"]
    elif args.kind == "tool":
        items = client.tools.list()
        columns = ["name", "description"]
    elif args.kind == "agent":
        items = client.agents.list(state=_enum(agent_pb2.Agent.State, state))
        columns = ["name", "display_name", "state", "capabilities"]
    else:
        items = client.handoffs.list()
        columns = ["name", "source_agent", "target_agent", "type", "priority"]
    rows = []
    for i, item in enumerate(items):
        if i >= args.limit:
            break
        if isinstance(item, dict):
            rows.append(item)
            continue
        message = item.proto if isinstance(item, MessageView) else item
        rows.append(json_format.MessageToDict(message, preserving_proto_field_name=True))
    _print(out, args.output, rows, columns)
    return 0


def _with_waits(client: SyncClient, executions: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Executions as rows with a `waiting_for` column: each waiting step and what it waits
    for (an approval, with the roles that may give it, or a signal by name)."""
    steps_of: dict[tuple[str, int], dict[str, workflow_pb2.Step]] = {}
    for viewed in executions:
        execution = viewed.proto
        key = (execution.workflow, execution.workflow_revision)
        if key not in steps_of:
            workflow = client.workflows.get(execution.workflow, revision=key[1])
            steps_of[key] = {s.id: s for s in workflow.steps}
        waits = []
        for run in execution.steps:
            if run.state != execution_pb2.StepRun.STATE_WAITING:
                continue
            step = steps_of[key].get(run.step_id)
            if step is not None and step.HasField("approval"):
                roles = ", ".join(["operator", "admin", *step.approval.roles])
                waits.append(f"{run.step_id}: approval by {roles}")
            elif step is not None:
                waits.append(f"{run.step_id}: signal {step.wait_for.signal}")
        row = json_format.MessageToDict(execution, preserving_proto_field_name=True)
        row["waiting_for"] = "; ".join(waits)
        yield row


def _metrics(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    end = time.time()
    start_time, end_time = Timestamp(), Timestamp()
    start_time.FromNanoseconds(int((end - args.hours * 3600) * 1e9))
    end_time.FromNanoseconds(int(end * 1e9))
    found: Message
    if args.kind == "workflow":
        found = client.workflow_metrics(args.name, start_time=start_time, end_time=end_time)
    else:
        found = client.agent_performance(args.name, start_time=start_time, end_time=end_time)
    return _get_like(found, args.output, out)


def _health(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    return _get_like(client.system_health(), args.output, out)


def _get_like(message: Message, output: str, out: TextIO) -> int:
    if output == "json":
        print(_to_json(message), file=out)
        return 0
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        print(f"{key + ':':<20} {shown}", file=out)
    return 0


def _retry(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    execution = client.executions.retry(args.execution, args.from_step).proto
    if not args.watch:
        _print_execution(out, args.output, execution)
        return 0
    return _follow(client, execution.name, args.output, out)


def _pause(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.execution.startswith("schedules/"):
        schedule = client.schedules.pause(args.execution, reason=args.reason).proto
        return _get_like(schedule, args.output, out)
    execution = client.executions.pause(args.execution, reason=args.reason).proto
    _print_execution(out, args.output, execution)
    return 0


def _resume(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.execution.startswith("schedules/"):
        return _get_like(client.schedules.unpause(args.execution).proto, args.output, out)
    _print_execution(out, args.output, client.executions.resume(args.execution).proto)
    return 0


def _approve(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    execution = client.executions.approve(
        args.execution, args.step, reject=args.reject, reason=args.reason
    ).proto
    _print_execution(out, args.output, execution)
    return 0


def _signal(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    payload = _json_arg(args.payload, "--payload")
    execution = client.executions.signal(args.execution, args.signal, payload).proto
    _print_execution(out, args.output, execution)
    return 0


def _delete(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    collection = KINDS[args.kind]
    getattr(client, collection).delete(_name(collection, args.name))
    print(f"deleted {_name(collection, args.name)}", file=out)
    return 0


def _labels(pairs: Sequence[str]) -> dict[str, str]:
    """`key=value` arguments as a map."""
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--label {pair!r}: write key=value")
        labels[key] = value
    return labels


def _cancel(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    execution = client.executions.cancel(args.execution, reason=args.reason).proto
    _print_execution(out, args.output, execution)
    return 0


def _events(client: SyncClient, args: argparse.Namespace, out: TextIO) -> int:
    name = _name("executions", args.execution)
    events = client.executions.stream(name) if args.follow else client.executions.events(name)
    for viewed in events:
        event = viewed.proto
        if args.output == "json":
            print(_to_json(event, indent=None), file=out)
        else:
            print(_event_line(event), file=out)
        out.flush()
    return 0


# Watching ---------------------------------------------------------------------------


def _follow(client: SyncClient, name: str, output: str, out: TextIO) -> int:
    """Streams an execution's events (with a progress bar for people) and ends with a
    summary; exit status 0 when it succeeded, 1 otherwise."""
    execution = client.executions.get(name)
    total = len(execution.steps)
    done: set[str] = set()  # the stream replays the log from its start
    began: dict[str, float] = {}  # step -> when its current attempt started
    runtimes: dict[str, str] = {}  # agent -> its runtime, looked up once
    for viewed in client.executions.stream(name):
        event = viewed.proto
        if output == "json":
            print(_to_json(event, indent=None), file=out)
            out.flush()
            continue
        at = event.time.ToNanoseconds() / 1e9
        if event.type in _STEP_EVENTS:
            if event.type in (
                event_pb2.EVENT_TYPE_STEP_SUCCEEDED,
                event_pb2.EVENT_TYPE_STEP_FAILED,
                event_pb2.EVENT_TYPE_STEP_SKIPPED,
            ):
                done.add(event.step_id)
            detail = _event_detail(event)
            if event.iteration:
                detail += f" (iteration {event.iteration})"
            if event.type == event_pb2.EVENT_TYPE_STEP_STARTED:
                began[event.step_id] = at
                agent = event.step_started.agent
                if agent.startswith("workflows/"):
                    detail += f": child workflow {agent}"
                elif _runtime_of(client, agent, runtimes) == "worker":
                    detail += ": waiting for a worker to take it"
            elif event.step_id in began:
                detail += f" after {_duration(at - began[event.step_id])}"
            print(
                f"{_bar(len(done), total)} {event.step_id}: {_STEP_EVENTS[event.type]}{detail}",
                file=out,
            )
            out.flush()
        elif event.type == event_pb2.EVENT_TYPE_STEP_SCHEDULED and not event.step_scheduled.agent:
            waiting = _waiting_for(client.executions.get(name).proto, event.step_id)
            if waiting:
                print(f"{_bar(len(done), total)} {event.step_id}: {waiting}", file=out)
                out.flush()
        elif event.type == event_pb2.EVENT_TYPE_LOOP_ITERATION_STARTED:
            again = event.loop_iteration_started
            print(
                f"{event.step_id}: loop iteration {again.iteration} "
                f"({', '.join(again.reset_steps)} again)",
                file=out,
            )
            out.flush()
        elif event.type == event_pb2.EVENT_TYPE_AGENT_TURN:
            turn = event.agent_turn
            asked = ", ".join(call.tool for call in turn.tool_calls) or "answered"
            tokens = turn.usage.total_tokens
            print(f"{event.step_id}: turn {turn.turn}: {asked} ({tokens} tokens)", file=out)
            out.flush()
        elif event.type == event_pb2.EVENT_TYPE_TOOL_CALL_FAILED:
            failed = event.tool_call_failed
            retry = ", trying again" if failed.will_retry else ""
            print(f"{event.step_id}: {failed.tool} failed: {failed.error.type}{retry}", file=out)
            out.flush()
        elif event.type == event_pb2.EVENT_TYPE_SIGNAL_RECEIVED:
            print(f"signal{_event_detail(event)}", file=out)
            out.flush()
        elif event.type == event_pb2.EVENT_TYPE_APPROVAL_DECIDED:
            print(f"{event.step_id}{_event_detail(event)}", file=out)
            out.flush()
        elif event.type in _END_EVENTS or event.type in _PAUSE_EVENTS:
            what = _END_EVENTS.get(event.type) or _PAUSE_EVENTS[event.type]
            print(f"execution {what}{_event_detail(event)}", file=out)
            out.flush()
    final = client.executions.get(name).proto
    if output == "table":
        print(file=out)
        _print_execution(out, output, final)
    return 0 if final.state == execution_pb2.Execution.STATE_SUCCEEDED else 1


def _waiting_for(execution: execution_pb2.Execution, step_id: str) -> str:
    """What a step without an agent waits for, for people ('' once it no longer waits)."""
    run = next((s for s in execution.steps if s.step_id == step_id), None)
    if run is None:
        return ""
    if run.state == execution_pb2.StepRun.STATE_SLEEPING:
        wake = run.wake_time.ToDatetime(datetime.UTC).astimezone()
        return f"sleeping until {wake.strftime('%Y-%m-%d %H:%M:%S')}"
    if run.state == execution_pb2.StepRun.STATE_WAITING:
        return "waiting for a signal or an approval (baton signal, baton approve)"
    return ""


def _runtime_of(client: SyncClient, agent: str, known: dict[str, str]) -> str:
    """The agent's runtime kind (python, worker, openai), asked once per agent."""
    if agent not in known:
        try:
            known[agent] = client.agents.get(agent).WhichOneof("runtime") or ""
        except BatonError:
            known[agent] = ""
    return known[agent]


def _duration(seconds: float) -> str:
    """A duration for people: 340 ms, 1.2 s, 3 min 4 s, 2 h 5 min."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _when(text: str) -> str:
    """An RFC 3339 time from the API as local time for people (seconds precision)."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _event_detail(event: event_pb2.ExecutionEvent) -> str:
    kind = event.WhichOneof("payload")
    if kind == "step_started":
        return f" (attempt {event.attempt}, {event.step_started.agent})"
    if kind == "step_failed":
        return f": {event.step_failed.error.type}: {event.step_failed.error.message}"
    if kind == "step_retrying":
        retry = event.step_retrying
        delay = retry.delay.ToNanoseconds() / 1e9
        return f": {retry.error.type}; attempt {retry.next_attempt} in {delay:.2f}s"
    if kind == "step_skipped":
        return f": {event.step_skipped.reason}"
    if kind == "fallback_activated":
        return f": {event.fallback_activated.from_agent} -> {event.fallback_activated.to_agent}"
    if kind == "handoff":
        return f": {event.handoff.source_agent} -> {event.handoff.target_agent}"
    if kind == "signal_received":
        taken = event.signal_received.taken_by
        where = f", taken by {taken}" if taken else ", kept for a step that waits for it"
        return f": {event.signal_received.signal}{where}"
    if kind == "approval_decided":
        decided = event.approval_decided
        verdict = "approved" if decided.approved else "rejected"
        because = f": {decided.reason}" if decided.reason else ""
        return f": {verdict} by {decided.decided_by} ({decided.role}){because}"
    if kind == "step_interrupted":
        return f" (attempt {event.attempt}, {event.step_interrupted.agent})"
    if kind == "execution_paused":
        return f": {event.execution_paused.reason}" if event.execution_paused.reason else ""
    if kind == "execution_cancelled":
        return f": {event.execution_cancelled.reason}" if event.execution_cancelled.reason else ""
    if kind == "execution_failed":
        return f": {event.execution_failed.error.type}: {event.execution_failed.error.message}"
    if kind == "execution_timed_out":
        return f" after {_duration(event.execution_timed_out.timeout.ToNanoseconds() / 1e9)}"
    return ""


def _event_line(event: event_pb2.ExecutionEvent) -> str:
    kind = event_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_")
    time = event.time.ToDatetime(datetime.UTC).astimezone().strftime("%H:%M:%S.%f")[:-3]
    step = f" {event.step_id}" if event.step_id else ""
    detail = _event_detail(event)
    if event.WhichOneof("payload") == "log":
        detail = f": {event.log.message}"
    return f"{event.sequence:>5} {time} {kind}{step}{detail}"


def _print_execution(out: TextIO, output: str, execution: execution_pb2.Execution) -> None:
    if output == "json":
        print(_to_json(execution), file=out)
        return
    state = execution_pb2.Execution.State.Name(execution.state).removeprefix("STATE_")
    print(
        f"{execution.name}  {state}  ({execution.workflow} revision {execution.workflow_revision})",
        file=out,
    )
    rows = []
    for step in execution.steps:
        duration = ""
        if step.start_time.seconds and step.end_time.seconds:
            seconds = (step.end_time.ToNanoseconds() - step.start_time.ToNanoseconds()) / 1e9
            duration = _duration(seconds)
        rows.append(
            {
                "step": step.step_id,
                "state": execution_pb2.StepRun.State.Name(step.state).removeprefix("STATE_"),
                "attempts": str(step.attempt),
                "agent": step.agent,
                "duration": duration,
                "error": step.error.message,
            }
        )
    _print(out, "table", rows, ["step", "state", "attempts", "agent", "duration", "error"])
    if execution.HasField("output"):
        print(f"output: {json.dumps(json_format.MessageToDict(execution.output))}", file=out)
    if execution.error.message:
        print(f"error: {execution.error.type}: {execution.error.message}", file=out)


# Helpers ----------------------------------------------------------------------------


def _print(out: TextIO, output: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if output == "json":
        print(json.dumps(rows, indent=2), file=out)
        return
    cells = [
        [
            _when(row[c]) if c.endswith("_time") and c in row else _cell(row.get(c, ""))
            for c in columns
        ]
        for row in rows
    ]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    print(
        "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
        file=out,
    )
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    text = str(value)
    return text.removeprefix("STATE_").removeprefix("TYPE_")


def _to_json(message: Message, indent: int | None = 2) -> str:
    return json.dumps(
        json_format.MessageToDict(message, preserving_proto_field_name=True), indent=indent
    )


def _json_arg(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{flag} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"{flag} must be a JSON object")
    return value


def _enum(enum: Any, state: str) -> Any:
    if not state:
        return 0
    try:
        return enum.Value(f"STATE_{state}")
    except ValueError:
        raise CliError(f"unknown state {state!r}") from None


def _name(collection: str, value: str) -> str:
    return value if value.startswith(f"{collection}/") else f"{collection}/{value}"


def _read(path: str) -> str:
    """A file's text, or standard input's for '-'."""
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}") from None


def _documents(path: str) -> Iterator[dict[str, Any]]:
    """The definitions in a YAML (several documents allowed) or JSON (an object or a list)
    file."""
    text = _read(path)
    if path.endswith(".json") or text.lstrip().startswith(("{", "[")):
        try:
            loaded: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path} is not valid JSON: {exc}") from None
        documents = loaded if isinstance(loaded, list) else [loaded]
    else:
        try:
            import yaml
        except ImportError:
            raise CliError(
                "reading YAML needs PyYAML: pip install 'baton-workflows[cli]'"
            ) from None
        try:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise CliError(f"{path} is not valid YAML: {exc}") from None
    for document in documents:
        if not isinstance(document, dict):
            raise CliError(f"{path}: every document must be a mapping")
        yield document


def _definition(document: dict[str, Any], path: str) -> tuple[str, str, Any]:
    """(kind, id, message) from a document like `{kind: Agent, id: x, ...fields}`."""
    fields = dict(document)
    kind = str(fields.pop("kind", "")).lower()
    if kind not in _MESSAGES:
        raise CliError(
            f"{path}: 'kind' must be Agent, Workflow, Handoff, Schedule or Tool, not {kind!r}"
        )
    resource_id = str(fields.pop("id", "") or fields.pop("name", "")).split("/")[-1]
    if not resource_id:
        raise CliError(f"{path}: a {kind} needs an 'id'")
    message = _MESSAGES[kind]()
    try:
        json_format.ParseDict(fields, message)
    except json_format.ParseError as exc:
        raise CliError(f"{path}: {kind} {resource_id!r}: {exc}") from None
    return kind, resource_id, message


if __name__ == "__main__":
    sys.exit(main())
