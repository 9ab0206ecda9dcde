"""A local stand-in for Google Translate's TTS endpoint (batchexecute), so the gTTS code path runs with no
network: it answers in Google's framing with real MP3 audio and records the text it was asked to read.
`fail_with = 500`: it answers that status instead; `hang = True`: it reads the request and never answers (until
`close`), as a link that swallows packets does."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeGoogleTts:
    def __init__(self, mp3: Path) -> None:
        self.audio = mp3.read_bytes()
        self.texts: list[str] = []
        self.fail_with: int | None = None
        self.hang = False
        self.released = threading.Event()  # set by `close`: hung requests end (without an answer)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                rpc = json.loads(urllib.parse.parse_qs(body)["f.req"][0])
                text, lang, *_ = json.loads(rpc[0][0][1])
                fake.texts.append(text)
                if fake.hang:
                    fake.released.wait()
                    self.close_connection = True
                    return
                if fake.fail_with:
                    self.send_response(fake.fail_with)
                    self.end_headers()
                    return
                b64 = base64.b64encode(fake.audio).decode()
                payload = (")]}'\n\n123\n" + '[["wrb.fr","jQ1olc","[\\"' + b64 + '\\"]",null,null,null,"generic"]]\n')
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/_/TranslateWebserverUi/data/batchexecute"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
