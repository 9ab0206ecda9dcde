"""`truyenthanh-dev demo`: the whole system on one machine — database, embedded broker, the controller and a
simulated receiver for every loudspeaker cluster in the seed file. Re-running reuses `var/`.

The broker and the fleet run as child processes in their own sessions, so Ctrl-C reaches only this
process, which then stops them in order: fleet (each agent says `stopped`), then broker. The fleet spreads
its receivers over one process per core (`truyenthanh-dev fleet`'s default), which it stops itself.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import uvicorn
from sqlmodel import Session, select

from controller.app import create_app
from controller.config import Settings
from controller.db import make_engine, migrate
from controller.db.models import ApiToken, Commune, Receiver, User
from controller.errors import Unauthenticated
from controller.inventory import apply_seed, load_seed
from controller.provision import (
    broker_accounts,
    demo_controller_password,
    demo_fleet_file,
    ensure_signing_key,
    write_broker_files,
    write_private,
)
from controller.services.accounts import UserCreate, add_user, authenticate, hash_password, hash_token, issue_token
from receivers.protocol import Topics

from .ports import free_port, port_free, stop_child, wait_port

DEMO_ADMIN = "quantri"


def ensure_demo_token(session: Session, path: Path, base_url: str) -> tuple[str, bool]:
    """The admin token from `path` if it is still valid, else a new one written there."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    token = saved.get("token", "")
    new = not session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if new:
        token = issue_token(session, "demo-admin", ["admin"], created_by="demo")[1]
    ui = ensure_demo_admin(session, saved.get("ui"), base_url)
    write_private(path, json.dumps({"token": token, "url": base_url, "scopes": ["admin"], "ui": ui},
                                   indent=1, ensure_ascii=False).encode())
    return token, new


def ensure_demo_admin(session: Session, saved: dict[str, str] | None, base_url: str) -> dict[str, str]:
    """The staff UI's demo district admin (`quantri`), with the password saved before if it still signs in,
    else a new random one."""
    password = (saved or {}).get("password", "")
    try:
        authenticate(session, DEMO_ADMIN, password)
    except Unauthenticated:
        password = secrets.token_urlsafe(12)
        user = session.exec(select(User).where(User.username == DEMO_ADMIN)).first()
        if user is None:
            add_user(session, UserCreate(username=DEMO_ADMIN, display_name="Quản trị huyện (demo)", password=password,
                                         role="district_admin"), created_by="demo")
        else:
            user.password_hash, user.disabled = hash_password(password), False
            session.add(user)
            session.commit()
    return {"url": f"{base_url}/ui/", "username": DEMO_ADMIN, "password": password}


def run_demo(settings: Settings) -> None:
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True, mode=0o700)  # holds keys, credentials and hashes
    base_url = f"http://{settings.host}:{settings.port}"
    if not port_free(settings.port):
        sys.exit(f"Port {settings.port} is in use: is a demo already running? (set TT_PORT to use another)")
    engine = make_engine(settings.db_url)
    migrate(engine)
    _, public_key = ensure_signing_key(settings)
    children: list[subprocess.Popen[bytes]] = []
    with Session(engine) as session:
        added = apply_seed(session, load_seed(settings.seed_file))
        communes = len(session.exec(select(Commune)).all())
        token, new_token = ensure_demo_token(session, data / "demo-credentials.json", base_url)
        ui_login = json.loads((data / "demo-credentials.json").read_text())["ui"]
        topics = Topics(settings.mqtt_base)
        if settings.mqtt_url:
            broker_note = f"external broker {settings.mqtt.host}:{settings.mqtt.port}"
            receiver_url = settings.receiver_mqtt_url or f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}"
            demo_fleet_file(session, data / "fleet.json", mqtt_url=receiver_url, base=settings.mqtt_base,
                            public_key=public_key, controller_url=base_url)
            accounts = broker_accounts(session, topics, settings.mqtt.username or "controller",
                                       settings.mqtt.password or "")
            write_broker_files("mosquitto", data / "broker", accounts, settings.mqtt.port)
        else:
            port = 1883 if port_free(1883) else free_port()
            password = demo_controller_password(settings)
            settings = settings.model_copy(update={"mqtt_url": f"mqtt://controller:{password}@127.0.0.1:{port}"})
            demo_fleet_file(session, data / "fleet.json", mqtt_url=f"mqtt://127.0.0.1:{port}",
                            base=settings.mqtt_base, public_key=public_key, controller_url=base_url)
            accounts = broker_accounts(session, topics, "controller", password)
            config = write_broker_files("amqtt", data / "broker", accounts, port)
            log = (data / "broker.log").open("ab")
            children.append(subprocess.Popen([sys.executable, "-m", "controller.broker.embedded", str(config)],
                                             stdout=log, stderr=log, start_new_session=True))
            wait_port(port, 30, children[-1])
            broker_note = f"embedded MQTT broker (amqtt) on 127.0.0.1:{port}"
        receivers = len(session.exec(select(Receiver)).all())
    engine.dispose()
    # Enrolment (POST /api/v1/enrol) rewrites the broker's files here; the embedded broker re-reads them.
    settings = settings.model_copy(update={"broker_dir": settings.broker_dir or data / "broker"})

    fleet_log = (data / "fleet.log").open("ab")
    children.append(subprocess.Popen(
        [sys.executable, "-m", "devrig.cli", "fleet", "--file", str(data / "fleet.json"),
         "--state-dir", str(data / "fleet"), "--telemetry-interval", "15", "--keepalive", "10"],
        stdout=fleet_log, stderr=fleet_log, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}))

    print(f"""
truyenthanh demo
  staff web UI    {ui_login["url"]}
                  sign in as {ui_login["username"]} / {ui_login["password"]}  (district admin)
  controller      {base_url}   (API docs: {base_url}/docs)
  broker          {broker_note}
  database        {settings.db_url}
  receivers       {receivers} simulated loudspeaker clusters in {communes} communes ({added} new); log: {data}/fleet.log
  admin token     {token}{'  (new)' if new_token else ''}
                  saved in {data}/demo-credentials.json
  try             curl -H "Authorization: Bearer {token}" {base_url}/api/v1/communes
Press Ctrl-C to stop everything.
""", flush=True)
    # uvicorn re-raises the signal that stopped it once it has shut down; make SIGTERM an exception like
    # SIGINT so that the children below are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
    finally:
        for child in reversed(children):  # fleet first, then the broker
            stop_child(child, 15)
        print("truyenthanh demo stopped.", flush=True)
