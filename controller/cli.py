"""The `truyenthanh` command.

    truyenthanh serve [--create-key]         the controller against an external broker (TT_MQTT_URL)
    truyenthanh seed                         load the seed file (TT_SEED_FILE) into the database
    truyenthanh provision --broker mosquitto write broker password/ACL files for every receiver
    truyenthanh user add|list|disable|enable|passwd   people's accounts (controller/cli_accounts.py)
    truyenthanh token create|list|revoke     API tokens
    truyenthanh ingest FILE                  make a recording broadcast-ready (as an upload would be)
    truyenthanh tts "TEXT" -o FILE.mp3       read Vietnamese text aloud into an MP3
    truyenthanh install-voice VOICE.onnx     install a Piper voice for the neural engine (audio/neural.py)
    truyenthanh receiver enrolment-code RID  make a one-time code for installing receiver RID
    truyenthanh rotate-key [--grace-h 24]    a new signing key, announced to every receiver (via the API)

The development rig (demo, simulated fleet, an agent on simulated hardware) is `truyenthanh-dev` (devrig/).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controller.cli_accounts import token_app, user_app
from controller.config import Settings

if TYPE_CHECKING:
    from sqlmodel import Session

app = typer.Typer(add_completion=False, no_args_is_help=True, help="truyenthanh: commune loudspeaker controller")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
receiver_app = typer.Typer(help="Receivers (the Pi runs `truyenthanh-agent`).", no_args_is_help=True)
app.add_typer(receiver_app, name="receiver")


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _session(settings: Settings) -> Session:
    """A session on the migrated database. Imported here, not at the top: commands that need no database
    (tts, ingest) start without the database stack."""
    from sqlmodel import Session

    from controller.db import make_engine, migrate

    engine = make_engine(settings.db_url)
    migrate(engine)
    return Session(engine)


def _settings() -> Settings:
    """The settings, or a clear message and exit status 2 (clear text off loopback, placeholder secrets…)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as e:
        for err in e.errors():
            where = ".".join(map(str, err["loc"]))
            typer.echo(f"error: {where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    create_key: Annotated[bool, typer.Option("--create-key", help="create the signing key if it is missing (a new "
                                                                  "installation; receivers enrolled before would "
                                                                  "refuse a new key)")] = False,
) -> None:
    """Run the controller against the broker named by TT_MQTT_URL (the production shape)."""
    import uvicorn

    from controller.app import create_app
    from controller.provision import MissingSigningKey, load_signing_key

    _logging()
    settings = _settings()
    try:
        settings.mqtt  # noqa: B018  (fails early with a clear message when TT_MQTT_URL is missing)
        load_signing_key(settings, create=create_key or settings.create_key or settings.demo)
    except (ValueError, MissingSigningKey) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


@app.command()
def seed() -> None:
    """Load the administrative units of TT_SEED_FILE into the database (idempotent)."""
    from controller.inventory import apply_seed, load_seed

    settings = Settings()
    with _session(settings) as s:
        added = apply_seed(s, load_seed(settings.seed_file))
    typer.echo(f"{added} receivers added from {settings.seed_file}")


@app.command()
def provision(
    out: Annotated[Path, typer.Option(help="directory for the broker files")] = Path("var/broker"),
    broker: Annotated[str, typer.Option(help="mosquitto or amqtt")] = "mosquitto",
    port: Annotated[int, typer.Option(help="the broker's listening port")] = 1883,
    bind: Annotated[str, typer.Option(help="the broker's listening address (0.0.0.0: every interface)")]
    = "127.0.0.1",
    fleet_file: Annotated[Path | None, typer.Option(help="also write simulated-fleet credentials here")] = None,
) -> None:
    """Write the broker's password and ACL files from the database (controller account from TT_MQTT_URL)."""
    from controller.provision import broker_accounts, demo_fleet_file, ensure_signing_key, write_broker_files
    from receivers.protocol import Topics
    from receivers.protocol.enrolment import key_fingerprint

    settings = _settings()
    mqtt = settings.mqtt
    _, public_key = ensure_signing_key(settings)  # the installation step: a missing key is made here
    typer.echo(f"signing key {settings.key_file}, fingerprint {key_fingerprint(public_key)}")
    with _session(settings) as s:
        if fleet_file is not None:
            demo_fleet_file(s, fleet_file, mqtt_url=settings.receiver_mqtt_url or f"mqtt://{mqtt.host}:{port}",
                            base=settings.mqtt_base, public_key=public_key)
        accounts = broker_accounts(s, Topics(settings.mqtt_base), mqtt.username or "controller", mqtt.password or "")
    # Production: Mosquitto keeps sessions, queued commands and retained status across its restarts.
    path = write_broker_files(broker, out, accounts, port, bind=bind, persistence=True)
    typer.echo(f"{len(accounts)} accounts written; broker config: {path}")


@app.command("receiver-config")
def receiver_config(
    receiver_id: Annotated[str, typer.Argument(help="the receiver's id, e.g. tra-bui-thon-1-1")],
    out: Annotated[Path, typer.Option(help="where to write the agent's config (mode 0600)")],
    mqtt_url: Annotated[str, typer.Option(help="broker URL as the receiver reaches it, e.g. mqtts://host:8883")],
    state_dir: Path = Path("/var/lib/truyenthanh"),
) -> None:
    """Issue a receiver a new MQTT password and write its agent config. Re-run `provision` afterwards so
    the broker learns the new password."""
    from controller.db.models import AuditEntry, Commune, Receiver
    from controller.provision import MissingSigningKey, issue_receiver_password, load_signing_key, write_private
    from receivers.protocol.urls import cleartext_problem

    settings = _settings()
    problem = cleartext_problem(mqtt_url, "--mqtt-url")
    if problem and not settings.allow_cleartext:  # the agent would refuse it; said now, before a password is issued
        raise typer.BadParameter(f"{problem} (TT_ALLOW_CLEARTEXT=1 writes allow_cleartext = true into the config)",
                                 param_hint="--mqtt-url")
    try:  # before a password is issued
        _, public_key = load_signing_key(settings, create=settings.create_key)
    except MissingSigningKey as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    with _session(settings) as s:
        receiver = s.get(Receiver, receiver_id)
        if receiver is None:
            raise typer.BadParameter(f"no receiver {receiver_id!r}; load the seed file first (truyenthanh seed)")
        commune = s.get(Commune, receiver.commune_id)
        assert commune is not None
        commune_code = commune.code
        password = issue_receiver_password(receiver)
        s.add(receiver)
        s.add(AuditEntry(actor="cli", action="receiver.credentials", target=receiver_id, outcome="ok",
                         detail="new MQTT password issued"))
        s.commit()
    lines = {"receiver_id": receiver_id, "commune": commune_code, "mqtt_url": mqtt_url, "username": receiver_id,
             "password": password, "base": settings.mqtt_base, "controller_public_key": public_key,
             "state_dir": str(state_dir), **({"allow_cleartext": True} if problem else {})}
    write_private(out, "".join(f"{k} = {json.dumps(v)}\n" for k, v in lines.items()).encode())
    typer.echo(f"wrote {out}; now run `truyenthanh provision` so the broker accepts the new password")


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="any recording: MP3, WAV, OGG/Opus, M4A/AAC, FLAC, AMR, 3GP…")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="the MP3 to write (default: FILE.broadcast.mp3)")]
    = None,
    trim_silence: Annotated[bool, typer.Option(help="cut leading and trailing silence")] = True,
) -> None:
    """Make a recording broadcast-ready (mono MP3, EBU R128 loudness) as the controller does on upload."""
    from audio.ingest import IngestError
    from audio.ingest import ingest as run_ingest
    from controller.content import broadcast_format

    target = out or file.with_suffix(".broadcast.mp3")
    with typer.progressbar(length=200, label=f"{file.name}", show_eta=True) as bar:
        done = [0]

        def progress(stage: str, fraction: float) -> None:
            position = int((100 if stage == "encode" else 0) + 100 * fraction)
            bar.update(max(0, position - done[0]))
            done[0] = max(done[0], position)

        try:
            result = run_ingest(file, target, broadcast_format(Settings().audio), trim_silence=trim_silence,
                                on_progress=progress)
        except IngestError as e:
            raise typer.BadParameter(str(e), param_hint="FILE") from None
        bar.update(200 - done[0])
    typer.echo(f"{target}: {result.duration_s:.1f} s, loudness {result.loudness_before:.1f} → "
               f"{result.loudness_after:.1f} LUFS, true peak {result.true_peak_after:.1f} dBTP"
               + (f", {result.trimmed_s:.1f} s of silence trimmed" if result.trimmed_s else ""))


@app.command()
def tts(
    text: Annotated[str, typer.Argument(help="Vietnamese text to read")],
    out: Annotated[Path, typer.Option("-o", "--out", help="the MP3 to write")],
    engine: Annotated[str, typer.Option(help="offline (eSpeak NG) or gtts (Google, online)")] = "offline",
    voice: Annotated[str | None, typer.Option(help="engine voice, e.g. vi, vi-vn-x-south")] = None,
    chime: Annotated[bool, typer.Option(help="attention chime before and after")] = False,
    repeat: Annotated[int, typer.Option(min=1, max=10)] = 1,
    gap: Annotated[float, typer.Option(help="seconds between repeats")] = 2.0,
    show_text: Annotated[bool, typer.Option(help="print the normalised text that is read")] = True,
) -> None:
    """Read Vietnamese text aloud into a broadcast-ready MP3 (text normalised first)."""
    import tempfile
    from types import SimpleNamespace

    from audio.ingest import ingest as run_ingest
    from audio.tts import TtsUnavailable
    from audio.vi_text import normalize
    from controller.content import broadcast_format, engines, speak

    settings = Settings()
    available = engines(settings.audio)
    if engine not in available:
        raise typer.BadParameter(f"choose one of {', '.join(available)}", param_hint="--engine")
    chosen = available[engine]
    voice = voice or chosen.voices[0]
    if voice not in chosen.voices:
        raise typer.BadParameter(f"choose one of {', '.join(chosen.voices)}", param_hint="--voice")
    if not text.strip():
        raise typer.BadParameter("the text is empty", param_hint="TEXT")
    spoken = normalize(text)
    if show_text:
        typer.echo(f"reading: {spoken}")
    layout = SimpleNamespace(chime_before=chime, chime_after=chime, repeat=repeat, gap_s=gap)
    with tempfile.TemporaryDirectory() as work:
        wav = Path(work) / "speech.wav"
        try:
            speak(chosen, spoken, voice, settings.data_dir / "tts-cache", wav, layout)
        except TtsUnavailable as e:
            if engine == "offline":
                typer.echo(f"text-to-speech unavailable: {e}", err=True)
                raise typer.Exit(1) from None
            typer.echo(f"{e}; using the offline engine instead", err=True)
            chosen = available["offline"]
            speak(chosen, spoken, chosen.voices[0], settings.data_dir / "tts-cache", wav, layout)
        result = run_ingest(wav, out, broadcast_format(settings.audio), trim_silence=False)
    typer.echo(f"{out}: {result.duration_s:.1f} s by {chosen.name}, {result.loudness_after:.1f} LUFS")


@app.command("install-voice")
def install_voice(
    model: Annotated[Path, typer.Argument(help="a Piper voice, e.g. vi_VN-vais1000-medium.onnx")],
    config: Annotated[Path | None, typer.Argument(help="its configuration (default: MODEL.json beside it)")] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="where the neural engine looks (default: TT_TTS__NEURAL_DIR, else data_dir/voices)")] = None,
) -> None:
    """Install a Piper voice for the neural engine: check that it loads and speaks, then copy it in."""
    from audio.neural import install_voice as install
    from audio.tts import TtsUnavailable

    target = directory or _settings().neural_dir
    try:
        _, said = install(model, config, target)
    except TtsUnavailable as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(said)


@receiver_app.command("enrolment-code")
def receiver_enrolment_code(
    receiver_id: Annotated[str, typer.Argument(help="the receiver's id, e.g. tra-bui-thon-1-1")],
    ttl_h: Annotated[float | None, typer.Option(help="hours the code works (default: TT_ENROLMENT_TTL_H)")]
    = None,
) -> None:
    """Make a one-time enrolment code for a receiver (as POST /api/v1/receivers/{rid}/enrolment does)."""
    from controller.db.models import AuditEntry, Receiver
    from controller.enrolment import create_code
    from controller.provision import MissingSigningKey, load_signing_key
    from receivers.protocol.enrolment import key_fingerprint

    settings = _settings()
    try:
        _, public_key = load_signing_key(settings)
    except MissingSigningKey as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    with _session(settings) as s:
        if s.get(Receiver, receiver_id) is None:
            raise typer.BadParameter(f"no receiver {receiver_id!r}; load the seed file first (truyenthanh seed)")
        code, expires_at = create_code(s, receiver_id, "cli", ttl_h or settings.enrolment_ttl_h, public_key)
        s.add(AuditEntry(actor="cli", action="receiver.enrolment-code", target=receiver_id, outcome="ok",
                         detail=f"valid until {expires_at:%Y-%m-%d %H:%M} UTC"))
        s.commit()
    typer.echo(f"enrolment code for {receiver_id}: {code}  (valid until {expires_at:%Y-%m-%d %H:%M} UTC, once)")
    typer.echo(f"on the Pi: sudo truyenthanh-agent enroll --controller {settings.public_url} --code {code}")
    typer.echo(f"(the last four groups are the fingerprint of the controller's key, {key_fingerprint(public_key)}: "
               "the Pi refuses any other key)")


@app.command("rotate-key")
def rotate_key(
    token: Annotated[str, typer.Option(envvar="TT_API_TOKEN", help="an API token of a district admin")],
    grace_h: Annotated[float, typer.Option(help="hours receivers still accept the old key")] = 24.0,
    controller: Annotated[str | None, typer.Option(help="the running controller (default: TT_CONTROLLER_URL, "
                                                        "else http://TT_HOST:TT_PORT)")] = None,
) -> None:
    """Change the signing key of the running controller: every receiver is told of the new key by a command
    signed with the old one, which it accepts for --grace-h more hours. Receivers away longer than the broker
    keeps their queue (at most 7 days) must be enrolled again."""
    import httpx

    settings = _settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = (controller or settings.controller_url or f"http://{host}:{settings.port}").rstrip("/")
    try:
        r = httpx.post(f"{url}/api/v1/signing-key/rotate", json={"grace_s": grace_h * 3600},
                       headers={"Authorization": f"Bearer {token}"}, timeout=60)
    except httpx.HTTPError as e:
        typer.echo(f"error: cannot reach the controller at {url}: {e}", err=True)
        raise typer.Exit(1) from None
    if r.status_code != 200:
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else r.text
        typer.echo(f"error: the controller answered {r.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    body = r.json()
    typer.echo(f"signing key rotated: fingerprint {body['fingerprint']}; receivers accept the old key until "
               f"{body['previous_until']} (command {body['command_id']})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
