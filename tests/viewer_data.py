"""Realistic artifacts for the viewer's tests, screenshots and benchmark."""

from __future__ import annotations

import json
from collections.abc import Iterator

from necrocode.artifact_store import ArtifactStore, ArtifactType

ESC = "\x1b"

DIFF = """\
diff --git a/chat/server.py b/chat/server.py
index 3b18e51..a9c2d47 100644
--- a/chat/server.py
+++ b/chat/server.py
@@ -1,12 +1,15 @@
 import asyncio
+import logging
 from dataclasses import dataclass

 from .rooms import Room, RoomRegistry

+log = logging.getLogger(__name__)
+

 @dataclass
 class Server:
     registry: RoomRegistry
-    port: int = 8000
+    port: int = 8080

     async def join(self, room_name: str, user: str) -> Room:
@@ -30,6 +33,10 @@ class Server:
     async def broadcast(self, room: Room, message: str) -> int:
         delivered = 0
         for member in room.members:
-            await member.send(message)
-            delivered += 1
+            try:
+                await member.send(message)
+            except ConnectionError:
+                log.warning("dropping %s from %s", member, room.name)
+                continue
+            delivered += 1
         return delivered
diff --git a/chat/typing_indicator.py b/chat/typing_indicator.py
new file mode 100644
index 0000000..5d1e0c2
--- /dev/null
+++ b/chat/typing_indicator.py
@@ -0,0 +1,9 @@
+\"\"\"Typing indicators: who is typing in a room, expiring after a few seconds.\"\"\"
+
+import time
+
+
+class TypingIndicator:
+    def __init__(self, ttl: float = 4.0) -> None:
+        self.ttl = ttl
+        self.seen: dict[str, float] = {}
diff --git a/chat/legacy_poll.py b/chat/legacy_poll.py
deleted file mode 100644
index 77a10f3..0000000
--- a/chat/legacy_poll.py
+++ /dev/null
@@ -1,3 +0,0 @@
-def poll(room):
-    # <script>alert("diff")</script> long polling, replaced by websockets
-    return room.history[-50:]
diff --git a/docs/protocol.md b/docs/wire-protocol.md
similarity index 91%
rename from docs/protocol.md
rename to docs/wire-protocol.md
index 1c2d3e4..5f6a7b8 100644
--- a/docs/protocol.md
+++ b/docs/wire-protocol.md
@@ -1,4 +1,4 @@
-# Protocol
+# Wire protocol

 Messages are JSON objects with a `type` and a `room`.
 Clients send `join`, `leave` and `say`; the server sends `said`.
diff --git a/static/logo.png b/static/logo.png
index 9a8b7c6..6d5e4f3 100644
Binary files a/static/logo.png and b/static/logo.png differ
"""


def log_text(lines: int = 400) -> str:
    """A CI-like log: ANSI colours, GitHub/GitLab sections, warnings, an error, a traceback."""
    out = [
        f"{ESC}[1m$ necrocode run --task 1.2{ESC}[0m",
        "::group::Install dependencies",
        "Collecting fastapi>=0.115",
        "Collecting uvicorn>=0.30",
        f"{ESC}[33mWARNING: pip is configured with locations that require TLS{ESC}[0m",
        "Successfully installed fastapi-0.115.0 uvicorn-0.30.1",
        "::endgroup::",
        f"section_start:1733230000:tests[collapsed=true]\r{ESC}[0K{ESC}[36mRun the tests{ESC}[0m",
    ]
    for n in range(1, lines):
        if n % 97 == 0:
            out.append(f"tests/test_rooms.py::test_case_{n} {ESC}[31mFAILED{ESC}[0m")
        elif n % 41 == 0:
            out.append(f"tests/test_rooms.py::test_case_{n} {ESC}[33mSKIPPED{ESC}[0m (needs redis)")
        else:
            out.append(f"tests/test_rooms.py::test_case_{n} {ESC}[32mPASSED{ESC}[0m")
    out += [
        "section_end:1733230042:tests\r" + f"{ESC}[0K",
        "Traceback (most recent call last):",
        '  File "chat/server.py", line 41, in broadcast',
        "    await member.send(message)",
        "ConnectionResetError: [Errno 104] Connection reset by peer",
        "<script>document.title='pwned'</script> printed by a test",
        f"{ESC}[1;31mERROR: 3 tests failed{ESC}[0m",
        f"{ESC}[38;5;208mdone in 42.1 s{ESC}[0m",
    ]
    return "\n".join(out) + "\n"


def runner_report(success: bool = False) -> str:
    """The Agent Runner's test-result JSON: one passing and one failing command."""
    failing = {
        "command": "pytest -q tests/test_rooms.py",
        "success": success,
        "stdout": (
            "....F.F\n"
            "FAILED tests/test_rooms.py::test_broadcast_drops_dead_members - AssertionError\n"
            "FAILED tests/test_rooms.py::test_join_twice - KeyError: 'alice'\n"
            "<script>document.title='pwned'</script>\n"
            "2 failed, 5 passed in 1.23s\n"
        )
        if not success
        else "7 passed in 1.20s\n",
        "stderr": "",
        "exit_code": 0 if success else 1,
        "duration_seconds": 1.23,
    }
    return json.dumps(
        {
            "success": success,
            "test_results": [
                {
                    "command": "ruff check chat",
                    "success": True,
                    "stdout": "All checks passed!\n",
                    "stderr": "",
                    "exit_code": 0,
                    "duration_seconds": 0.21,
                },
                failing,
            ],
            "total_duration_seconds": 1.44,
        },
        indent=2,
    )


JUNIT = """\
<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" tests="5" failures="1" errors="1" skipped="1" time="0.92">
    <testcase classname="tests.test_history" name="test_history_is_capped" time="0.011"/>
    <testcase classname="tests.test_history" name="test_history_order" time="0.020"/>
    <testcase classname="tests.test_history" name="test_history_survives_restart" time="0.41">
      <failure message="assert 49 == 50">def test_history_survives_restart():
&gt;       assert len(room.history) == 50
E       assert 49 == 50</failure>
    </testcase>
    <testcase classname="tests.test_history" name="test_history_export" time="0.002">
      <error message="ImportError: cannot import name 'export'">ImportError while importing</error>
    </testcase>
    <testcase classname="tests.test_history" name="test_history_redis" time="0.0">
      <skipped message="redis not installed"/>
    </testcase>
  </testsuite>
</testsuites>
"""


def seed(store: ArtifactStore) -> dict[str, str]:
    """Two specs, a few tasks, two versions of a diff; returns the store URIs by name."""
    uris: dict[str, str] = {}
    meta = {"title": "Room broadcast survives dead members", "branch": "feature/1.2"}
    uris["diff_v1"] = store.upload(
        "1.2", "chat-app", ArtifactType.DIFF, DIFF.replace("8080", "8081"), metadata=meta
    )
    uris["diff"] = store.upload("1.2", "chat-app", ArtifactType.DIFF, DIFF, metadata=meta)
    uris["log"] = store.upload("1.2", "chat-app", ArtifactType.LOG, log_text(), metadata=meta)
    uris["test"] = store.upload(
        "1.2",
        "chat-app",
        ArtifactType.TEST_RESULT,
        runner_report(False),
        metadata={**meta, "success": False, "test_count": 7},
        tags=["needs-review"],
    )
    uris["test_1_1"] = store.upload(
        "1.1",
        "chat-app",
        ArtifactType.TEST_RESULT,
        runner_report(True),
        metadata={"title": "Rooms and members", "success": True, "test_count": 7},
    )
    uris["diff_1_1"] = store.upload(
        "1.1", "chat-app", ArtifactType.DIFF, DIFF, metadata={"title": "Rooms and members"}
    )
    uris["junit"] = store.upload(
        "2.1",
        "history-service",
        ArtifactType.TEST_RESULT,
        JUNIT,
        metadata={"title": "Message history", "success": False, "test_count": 5},
    )
    uris["log_2_1"] = store.upload(
        "2.1", "history-service", ArtifactType.LOG, log_text(60), metadata={"title": "History"}
    )
    return uris


def big_log_chunks(size: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """About ``size`` bytes of numbered, coloured log lines, chunk by chunk."""
    sent = 0
    number = 0
    while sent < size:
        lines = []
        block = 0
        while block < chunk:
            number += 1
            colour = 31 if number % 1000 == 0 else 32
            word = "ok" if colour == 32 else "ERROR"
            line = f"{number:09d} step {ESC}[{colour}m{word}{ESC}[0m payload {'x' * 40}\n"
            lines.append(line)
            block += len(line)
        data = "".join(lines).encode()
        sent += len(data)
        yield data
