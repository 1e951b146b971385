"""Versioned schema migrations, tracked in SQLite's `user_version`; each runs in one transaction."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from baton_server.storage.codec import Codec

if TYPE_CHECKING:
    from baton_server.storage.database import SqlConnection


log = logging.getLogger(__name__)

# Each entry is one schema version: the statements that take the schema from the previous
# version to this one. Never edit a released entry; append a new one.
MIGRATIONS: list[list[str]] = [
    # 1: definitions (agents, workflows with revisions, handoffs), idempotency, metadata.
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY) STRICT",
        # `seq` orders lists (creation order) and is the pagination cursor; `version` is a
        # database-wide counter stamped on each write (etag and cache ordering).
        """CREATE TABLE agents (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
            version INTEGER NOT NULL, doc BLOB NOT NULL) STRICT""",
        "CREATE INDEX agents_state ON agents (state, seq)",
        """CREATE TABLE agent_capabilities (
            owner_seq INTEGER NOT NULL REFERENCES agents (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq)) STRICT""",
        "CREATE INDEX agent_capabilities_owner ON agent_capabilities (owner_seq)",
        """CREATE TABLE workflows (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
            version INTEGER NOT NULL, doc BLOB NOT NULL) STRICT""",
        "CREATE INDEX workflows_state ON workflows (state, seq)",
        """CREATE TABLE workflow_tags (
            owner_seq INTEGER NOT NULL REFERENCES workflows (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq)) STRICT""",
        "CREATE INDEX workflow_tags_owner ON workflow_tags (owner_seq)",
        # The agents the latest revision of each workflow names, to refuse deleting them.
        """CREATE TABLE workflow_agents (
            owner_seq INTEGER NOT NULL REFERENCES workflows (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq)) STRICT""",
        "CREATE INDEX workflow_agents_owner ON workflow_agents (owner_seq)",
        """CREATE TABLE workflow_revisions (
            workflow_seq INTEGER NOT NULL REFERENCES workflows (seq) ON DELETE CASCADE,
            revision INTEGER NOT NULL, doc BLOB NOT NULL,
            PRIMARY KEY (workflow_seq, revision)) STRICT""",
        """CREATE TABLE handoffs (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
            target TEXT NOT NULL, type TEXT NOT NULL,
            version INTEGER NOT NULL, doc BLOB NOT NULL) STRICT""",
        "CREATE INDEX handoffs_source ON handoffs (source, seq)",
        "CREATE INDEX handoffs_target ON handoffs (target, seq)",
        "CREATE INDEX handoffs_type ON handoffs (type, seq)",
        """CREATE TABLE idempotency (
            key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, response BLOB,
            create_time REAL NOT NULL) STRICT""",
        "CREATE INDEX idempotency_time ON idempotency (create_time)",
    ],
    # 2: executions, their step runs, and the append-only per-execution event log.
    [
        # `seq` is the list cursor (newest first); `last_sequence` numbers the event log.
        """CREATE TABLE executions (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, workflow_id TEXT NOT NULL,
            workflow_revision INTEGER NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL,
            create_time REAL NOT NULL, start_time REAL, end_time REAL,
            last_sequence INTEGER NOT NULL DEFAULT 0, input BLOB NOT NULL,
            doc BLOB NOT NULL) STRICT""",
        "CREATE INDEX executions_workflow ON executions (workflow_id, seq)",
        "CREATE INDEX executions_state ON executions (state, seq)",
        "CREATE INDEX executions_create_time ON executions (create_time)",
        """CREATE TABLE step_runs (
            execution_seq INTEGER NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
            position INTEGER NOT NULL, step_id TEXT NOT NULL, state TEXT NOT NULL,
            attempt INTEGER NOT NULL, doc BLOB NOT NULL,
            PRIMARY KEY (execution_seq, position)) STRICT""",
        """CREATE TABLE events (
            execution_seq INTEGER NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
            sequence INTEGER NOT NULL, type TEXT NOT NULL, time REAL NOT NULL,
            step_id TEXT NOT NULL, attempt INTEGER NOT NULL, doc BLOB NOT NULL,
            PRIMARY KEY (execution_seq, sequence)) STRICT, WITHOUT ROWID""",
        "CREATE INDEX events_type ON events (execution_seq, type, sequence)",
    ],
    # 3: several server processes on one database: the engine lease and cancel requests
    # made in a process that does not run the execution.
    [
        """CREATE TABLE engine_lease (
            id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, host TEXT NOT NULL,
            pid INTEGER NOT NULL, expires REAL NOT NULL) STRICT""",
        """CREATE TABLE cancel_requests (
            execution_id TEXT PRIMARY KEY, reason TEXT NOT NULL, create_time REAL NOT NULL)
            STRICT""",
    ],
    # 4: workflow metrics read executions of one workflow by creation time.
    [
        "CREATE INDEX executions_workflow_time ON executions (workflow_id, create_time)",
    ],
    # 5: where the engine process can be reached, for processes that relay worker calls.
    [
        "ALTER TABLE engine_lease ADD COLUMN address TEXT NOT NULL DEFAULT ''",
    ],
    # 6: finding executions by label, and deleting ended ones by age (retention).
    [
        """CREATE TABLE execution_labels (
            execution_seq INTEGER NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
            key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (key, value, execution_seq)) STRICT""",
        "CREATE INDEX execution_labels_owner ON execution_labels (execution_seq)",
        "CREATE INDEX executions_end_time ON executions (end_time) WHERE end_time IS NOT NULL",
    ],
    # 7: finding the executions that wait for a signal or a person.
    [
        "CREATE INDEX step_runs_waiting ON step_runs (execution_seq) WHERE state = 'WAITING'",
    ],
    # 8: schedules, and what firing each has done (kept apart, so that firing a slot never
    # changes the definition's etag).
    [
        """CREATE TABLE schedules (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
            workflow TEXT NOT NULL, version INTEGER NOT NULL, doc BLOB NOT NULL) STRICT""",
        "CREATE INDEX schedules_state ON schedules (state, seq)",
        "CREATE INDEX schedules_workflow ON schedules (workflow, seq)",
        """CREATE TABLE schedule_firings (
            schedule_seq INTEGER PRIMARY KEY REFERENCES schedules (seq) ON DELETE CASCADE,
            next_fire REAL, doc BLOB NOT NULL) STRICT""",
        "CREATE INDEX schedule_firings_due ON schedule_firings (next_fire) "
        "WHERE next_fire IS NOT NULL",
    ],
    # 9: the ended items of `for_each` steps, apart from their step runs.
    [
        """CREATE TABLE map_items (
            execution_seq INTEGER NOT NULL REFERENCES executions (seq) ON DELETE CASCADE,
            position INTEGER NOT NULL, item INTEGER NOT NULL, state TEXT NOT NULL,
            attempt INTEGER NOT NULL, doc BLOB NOT NULL,
            PRIMARY KEY (execution_seq, position, item)) STRICT, WITHOUT ROWID""",
    ],
    # 10: tools, and the tools each agent names (to refuse deleting one in use).
    [
        """CREATE TABLE tools (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
            version INTEGER NOT NULL, doc BLOB NOT NULL) STRICT""",
        """CREATE TABLE agent_tools (
            owner_seq INTEGER NOT NULL REFERENCES agents (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq)) STRICT""",
        "CREATE INDEX agent_tools_owner ON agent_tools (owner_seq)",
        """CREATE TABLE tool_runs (
            owner_seq INTEGER NOT NULL REFERENCES tools (seq) ON DELETE CASCADE,
            value TEXT NOT NULL, PRIMARY KEY (value, owner_seq)) STRICT""",
        "CREATE INDEX tool_runs_owner ON tool_runs (owner_seq)",
    ],
    # 11: the mailbox between the engine process and workers polling other processes.
    [
        """CREATE TABLE worker_pollers (
            id TEXT PRIMARY KEY, identity TEXT NOT NULL, queues TEXT NOT NULL,
            capacity INTEGER NOT NULL, seen REAL NOT NULL) STRICT""",
        """CREATE TABLE worker_deliveries (
            token TEXT PRIMARY KEY, poller TEXT NOT NULL, task BLOB NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0) STRICT""",
        "CREATE INDEX worker_deliveries_poller ON worker_deliveries (poller, sent)",
        """CREATE TABLE worker_answers (
            seq INTEGER PRIMARY KEY, token TEXT NOT NULL, kind TEXT NOT NULL,
            body BLOB NOT NULL, verdict INTEGER) STRICT""",
    ],
    # 12: who runs each execution, and the fencing token of its claim (bumped by each claim:
    # a process whose claim was taken over cannot write the execution any more).
    [
        "ALTER TABLE executions ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE executions ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
    ],
    # 13: every server process runs executions. The processes alive (each renews its own
    # row; `running` is how many executions it runs, for spreading new ones), the worker
    # tasks an execution's owner offers to workers connected to any process, and workers'
    # answers addressed to the owner of their task. (The engine lease and the mailbox of
    # the one process that ran executions go.)
    [
        "DROP TABLE engine_lease",
        "DROP TABLE worker_pollers",
        "DROP TABLE worker_deliveries",
        "DROP TABLE worker_answers",
        """CREATE TABLE replicas (
            id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
            address TEXT NOT NULL, expires REAL NOT NULL, running INTEGER NOT NULL) STRICT""",
        """CREATE TABLE task_offers (
            seq INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, queue TEXT NOT NULL,
            owner TEXT NOT NULL, task BLOB NOT NULL, host TEXT NOT NULL DEFAULT '',
            ended TEXT NOT NULL DEFAULT '') STRICT""",
        "CREATE INDEX task_offers_open ON task_offers (queue, seq) WHERE host = ''",
        "CREATE INDEX task_offers_host ON task_offers (host)",
        """CREATE TABLE worker_answers (
            seq INTEGER PRIMARY KEY, token TEXT NOT NULL, owner TEXT NOT NULL,
            kind TEXT NOT NULL, body BLOB NOT NULL, verdict INTEGER) STRICT""",
        "CREATE INDEX worker_answers_open ON worker_answers (owner, seq) WHERE verdict IS NULL",
    ],
]


async def migrate(conn: SqlConnection) -> int:
    """Applies every migration newer than the database's `user_version`; returns the version."""
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    current = int(rows[0][0]) if rows else 0
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {current} is newer than this server "
            f"(knows {len(MIGRATIONS)}): upgrade Baton"
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            if version == 1:
                await conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("page_token_secret", secrets.token_hex(32)), ("version", 0)],
                )
            if version == 6:
                await _label_existing_executions(conn)
            if version == 10:
                await _index_agent_tools(conn)
            await conn.execute(f"PRAGMA user_version = {version}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        log.info("migrated database schema", extra={"schema_version": version})
    return len(MIGRATIONS)


async def _index_agent_tools(conn: SqlConnection) -> None:
    """Fills agent_tools from the tools named in each stored agent's document."""
    rows = await conn.execute_fetchall("SELECT seq, doc FROM agents")
    names = {
        (seq, str(tool).removeprefix("tools/"))
        for seq, doc in rows
        for tool in Codec.decode(doc).get("tools") or []
    }
    await conn.executemany("INSERT INTO agent_tools (owner_seq, value) VALUES (?, ?)", names)


async def _label_existing_executions(conn: SqlConnection) -> None:
    """Fills execution_labels from the labels in each stored execution's document."""
    rows = await conn.execute_fetchall("SELECT seq, doc FROM executions")
    labels = [
        (seq, key, value)
        for seq, doc in rows
        for key, value in (Codec.decode(doc).get("labels") or {}).items()
    ]
    await conn.executemany(
        "INSERT INTO execution_labels (execution_seq, key, value) VALUES (?, ?, ?)", labels
    )
