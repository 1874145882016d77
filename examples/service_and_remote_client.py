"""Run the HTTP service and use it the way agent runners and scripts do.

    python examples/service_and_remote_client.py

Starts ``necrocode-artifacts serve`` on a free loopback port over a store in a
temporary folder (with a tokens file), uploads like NecroCode's Agent Runner
(a ``requests`` multipart form), reads the returned link back, then uses
``RemoteArtifactStore``: the store's own methods, over HTTP. Needs the
``service`` extra.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import requests

from necrocode.artifact_store import RemoteArtifactStore, StoragePermissionError

#: Fresh random tokens for this run (a real tokens file keeps them, or their SHA-256).
RUNNER_TOKEN = secrets.token_urlsafe(24)
READER_TOKEN = secrets.token_urlsafe(24)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        tokens = folder / "tokens"
        tokens.write_text(f"write {RUNNER_TOKEN} runners\nread {READER_TOKEN} reviewers\n")
        env = dict(os.environ, NECROCODE_ARTIFACT_STORE_BASE_PATH=str(folder / "store"))
        command = [sys.executable, "-m", "necrocode.artifact_store", "serve", "--port", "0"]
        server = subprocess.Popen(
            [*command, "--tokens-file", str(tokens)], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            assert server.stderr is not None
            base = ""
            for line in server.stderr:
                found = re.search(r"serving (http://\S+)", line)
                if found:
                    base = found[1]
                    break
            print("service at", base)
            # Keep reading the server's log so that it never blocks on a full pipe.
            threading.Thread(target=server.stderr.read, daemon=True).start()
            demo(base)
        finally:
            server.terminate()
            print("server exit code", server.wait(30))


def demo(base: str) -> None:
    # 1. What the Agent Runner does: a multipart form, then the link it got back.
    with requests.Session() as runner:
        runner.headers["Authorization"] = f"Bearer {RUNNER_TOKEN}"
        answer = runner.post(
            f"{base}/artifacts",
            files={"file": ("diff", b"--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x\n+y\n")},
            data={
                "type": "diff",
                "metadata": json.dumps(
                    {"spec_name": "chat-app", "task_id": "1.1", "title": "Fix login"}
                ),
            },
            timeout=30,
        )
        uri = answer.json()["uri"]
        print("runner got", answer.status_code, uri)
        again = runner.post(
            f"{base}/artifacts",
            files={"file": ("diff", b"--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x\n+y\n")},
            data={"type": "diff", "metadata": '{"spec_name": "chat-app", "task_id": "1.1"}'},
            timeout=30,
        )
        print("retried upload:", again.status_code, "same uri:", again.json()["uri"] == uri)
        print("link returns", runner.get(uri, timeout=30).content.decode().splitlines()[0])

    # 2. The store's methods over HTTP.
    with RemoteArtifactStore(base, token=READER_TOKEN) as store:
        meta = store.get_metadata(uri)
        print("metadata:", meta.spec_name, meta.task_id, meta.type.value, meta.metadata)
        print("search:", [m.version_uri for m in store.search(spec_name="chat-app")])
        try:
            store.upload("1.2", "chat-app", "log", b"not allowed")
        except StoragePermissionError as exc:
            print("reader may not upload:", exc)


if __name__ == "__main__":
    main()
