"""Broker files and secret files: never readable by other users, not even between creation and chmod, and a
symlink planted at the temporary or the final name is never written through. The same for the three writers:
the broker's files (`controller.broker.files`), the controller's secrets (`controller.provision.write_private`:
signing key, passwords, fleet file) and the receiver's config with its password (`receivers.agent.enroll`)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from controller import provision
from controller.broker import files
from controller.broker.amqtt_acl import covers, matches
from receivers.agent import enroll, store

Writer = Callable[[Path, bytes], None]


def broker_file(path: Path, data: bytes) -> None:
    files._write(path, data.decode())


# (name, writer, the module whose temporary name it uses, the mode the file must have)
WRITERS: list[tuple[str, Writer, ModuleType, int]] = [
    ("broker file", broker_file, files, 0o640),
    ("controller secret", provision.write_private, files, 0o600),
    ("receiver config", enroll.write_private, store, 0o600),  # through store.write_atomic
    ("receiver keys", store.write_atomic, store, 0o600),  # keys.json, and state.json (its own mode)
]
PARAMS = [pytest.param(w, m, mode, id=name) for name, w, m, mode in WRITERS]


class Watch:
    """Every regular file in `directory` with its mode, at every audited operation (open, chmod, rename…)
    of this process: a file created readable and chmod-ed afterwards is seen in between."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.seen: list[tuple[str, str, int]] = []
        self._busy = False

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        if self.directory is None or self._busy:
            return
        self._busy = True
        try:
            for name in os.listdir(self.directory):
                st = os.lstat(self.directory / name)
                if stat.S_ISREG(st.st_mode):
                    self.seen.append((event, name, stat.S_IMODE(st.st_mode)))
        except OSError:
            pass
        finally:
            self._busy = False


_WATCH = Watch()
_hooked = False


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Watch]:
    global _hooked
    if not _hooked:  # an audit hook cannot be removed: one per process, idle unless a directory is set
        sys.addaudithook(_WATCH)
        _hooked = True
    old_umask = os.umask(0)  # the worst umask: the writer alone must keep others out
    _WATCH.seen, _WATCH.directory = [], tmp_path
    try:
        yield _WATCH
    finally:
        _WATCH.directory = None
        os.umask(old_umask)


@pytest.mark.parametrize(("write", "module", "mode"), PARAMS)
def test_no_moment_when_others_can_read(write: Writer, module: ModuleType, mode: int, watch: Watch,
                                        tmp_path: Path) -> None:
    write(tmp_path / "passwd", b"controller:$7$secret\n")
    write(tmp_path / "passwd", b"controller:$7$rotated\n")  # and when it replaces an existing file
    watch.directory = None
    assert (tmp_path / "passwd").read_bytes() == b"controller:$7$rotated\n"
    assert stat.S_IMODE((tmp_path / "passwd").stat().st_mode) == mode
    assert watch.seen, "the audit hook saw the writes"
    too_open = [(event, name, oct(m)) for event, name, m in watch.seen if m & ~mode]
    assert too_open == [], "a file was readable beyond its mode for a moment"
    assert sorted(os.listdir(tmp_path)) == ["passwd"]  # no temporary file left behind


def plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


@pytest.mark.parametrize(("write", "module", "mode"), PARAMS)
def test_symlinks_planted_are_not_followed(write: Writer, module: ModuleType, mode: int, tmp_path: Path) -> None:
    """Another user's symlinks where the writer puts its temporary file (the names used so far) and at the
    file itself: the secret is written to neither target, and the file becomes a file of its own."""
    victims = tmp_path / "elsewhere"
    victims.mkdir()
    directory = tmp_path / "data"
    path = directory / "key.pem"
    for i, temp in enumerate([path.with_suffix(".tmp"), path.with_name(path.name + ".tmp"),
                              path.with_suffix(path.suffix + ".tmp")]):
        if not temp.is_symlink():
            plant(temp, victims / f"victim-{i}")
            (victims / f"victim-{i}").write_bytes(b"untouched")
    plant(path, victims / "victim-final")
    (victims / "victim-final").write_bytes(b"untouched")

    write(path, b"SECRET")

    assert {p.name: p.read_bytes() for p in victims.iterdir()} == {
        name: b"untouched" for name in ("victim-0", "victim-1", "victim-final")}
    assert not path.is_symlink() and path.read_bytes() == b"SECRET"
    assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.parametrize(("write", "module", "mode"), PARAMS)
def test_a_symlink_at_the_temporary_name_is_refused(write: Writer, module: ModuleType, mode: int,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if the temporary name were guessed and planted first, the writer refuses rather than follows."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    path = tmp_path / "data" / "fleet.json"
    temp = tmp_path / "data" / ".fleet.json.guessed.tmp"
    plant(temp, victim)
    monkeypatch.setattr(module, "_temp_name", lambda p: temp, raising=False)

    with pytest.raises(FileExistsError):
        write(path, b"SECRET")
    assert victim.read_bytes() == b"untouched" and temp.is_symlink() and not path.exists()


def test_the_embedded_brokers_topic_rules() -> None:
    """MQTT's wildcard rules as `AccountAcl` applies them: topics a filter matches, filters a filter covers."""
    assert matches("tt/receivers/r1/state", "tt/receivers/+/state")
    assert matches("tt/receivers/r1/state", "tt/#") and matches("tt", "tt/#")
    assert not matches("tt/receivers/r1/state", "tt/receivers/+")
    assert not matches("$SYS/broker/uptime", "#") and not matches("$SYS/x", "+/x")
    assert covers("tt/receivers/r1/cmd/+", "tt/receivers/r1/cmd/ping")
    assert covers("tt/#", "tt/receivers/+/state") and covers("tt/#", "tt/#")
    assert not covers("tt/receivers/r1/cmd/+", "tt/receivers/r1/cmd/#")  # `#` reaches deeper than `+`
    assert not covers("tt/receivers/r1/cmd/+", "tt/receivers/+/cmd/ping")
    assert not covers("tt/receivers/r1/cmd/+", "#") and not covers("tt/controller/availability", "$SYS/#")
