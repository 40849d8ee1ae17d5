"""The sandbox's Slack stand-in, as a process: the recording Slack Web API server plus a
page (and JSON) showing every channel's messages with their threads, and a log line per
message as it arrives.

    python -m tests.harness.slack_sandbox --port 0 --port-file F --token T
"""

from __future__ import annotations

import argparse
import html
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness.slack_stub import SlackMessage, SlackStub


def text_of(m: SlackMessage) -> str:
    latest = m.updates[-1] if m.updates else {}
    return str(latest.get("text") or m.text)


def snapshot(stub: SlackStub) -> list[dict[str, Any]]:
    names = {v: k for k, v in stub._channels.items()}  # id -> name
    out = []
    for m in stub.messages():
        out.append({"channel": "#" + names.get(m.channel, m.channel), "ts": m.ts,
                    "thread_ts": m.thread_ts, "text": text_of(m),
                    "updates": len(m.updates), "broadcast": m.reply_broadcast})
    return out


def page(messages: list[dict[str, Any]]) -> str:
    rows = []
    for m in messages:
        indent = "margin-left:2em;" if m["thread_ts"] else "font-weight:bold;"
        edited = f" <small>(updated {m['updates']}x)</small>" if m["updates"] else ""
        rows.append(f"<div style='{indent}padding:4px;border-bottom:1px solid #ddd'>"
                    f"<code>{html.escape(m['channel'])}</code> "
                    f"{html.escape(m['text'])}{edited}</div>")
    return ("<html><head><meta http-equiv='refresh' content='2'><title>rolloutctl sandbox "
            "Slack</title></head><body style='font-family:sans-serif'><h2>Slack stand-in"
            "</h2>" + "".join(rows) + "</body></html>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--page-port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--token", default=SlackStub.DEFAULT_TOKEN)
    args = parser.parse_args()
    stub = SlackStub(token=args.token, port=args.port).start()

    class Page(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:
            messages = snapshot(stub)
            if self.path.startswith("/messages.json"):
                body, ctype = json.dumps(messages).encode(), "application/json"
            else:
                body, ctype = page(messages).encode(), "text/html"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", args.page_port), Page)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(args.port_file, "w", encoding="utf-8") as f:
        json.dump({"api": stub.api_url, "page": f"http://127.0.0.1:{server.server_address[1]}/"},
                  f)
    seen = 0
    while True:  # one log line per new message
        messages = snapshot(stub)
        for m in messages[seen:]:
            where = "  reply " if m["thread_ts"] else "message "
            print(f"{time.strftime('%H:%M:%S')} {m['channel']} {where}{m['text']}", flush=True)
        seen = len(messages)
        time.sleep(0.5)


if __name__ == "__main__":
    main()
