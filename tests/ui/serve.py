"""The controller with its staff UI, as its own process, for the UI's tests and benchmarks:
`python -m tests.ui.serve SETTINGS.json` (the keyword arguments of `Settings`, as JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import uvicorn

from controller.app import create_app
from controller.config import Settings


def main() -> None:
    settings = Settings(**json.loads(Path(sys.argv[1]).read_text()))
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
