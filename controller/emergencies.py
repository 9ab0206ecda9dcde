"""Emergency announcements: the fast path out, and each one's live progress back.

- `voiced_media(...)` (and `speech_media`, its audio alone): spoken text → speech by the first engine of the
  use's order (`TT_TTS__EMERGENCIES` / `TT_TTS__CAP`; Google and the neural voice each under a deadline; speech
  that cannot be made into audio, a damaged cached file, is removed and the next engine reads) with the attention
  chime → audio in the speech format (mono, 32 kbps: `controller.content.speech_format`), reusing the audio of
  an earlier emergency of the same spoken text read by the same engine with its present settings, in today's
  speech format (so a repeated warning costs nothing to prepare, and a fallback voice is never pinned: each
  engine before it in the order is tried again first). `speak_emergency`: the same speech laid out in a file,
  nothing stored.
- `plan_topics(...)`: which publishes reach exactly the targeted receivers — one per commune (or one to
  every receiver), one per receiver only for village or single-receiver targets.
- `Tracker`: the progress of every live emergency, receiver by receiver, fed by the bridge's acks; streams
  changes to subscribers (the SSE endpoint); re-sends the same command (its id, item and expiry), issued
  anew and signed again, to a targeted receiver that comes back online before expiry (an agent refuses it
  after expiry, and refuses a second copy as a replay); writes progress to the database in batches.
  Once an emergency is cancelled, its stop goes (newly signed, to the receiver alone) to every targeted
  receiver that comes back online before expiry without having acknowledged a stop: a receiver that missed
  the cancel would otherwise play the emergency if anyone replayed the original command to it. The agent
  remembers a stopped item and refuses its play command afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from audio.tts import cache_path
from audio.tts_chain import NoEngineSpoke, Skipped, skipped_note
from controller.content import made_in, make_media, speak_and_make, speak_first, speech_format, voice_order
from controller.db.models import Emergency, EmergencyReceiver, MediaFile, ReceiverStatus, utcnow
from controller.errors import Unavailable
from controller.ports import CommandNotSent
from controller.scheduling import Inventory
from receivers.protocol import Ack, Stop, Target
from receivers.protocol.messages import parse_command

log = logging.getLogger(__name__)
# The agent's answer to a stop of an item it does not hold (`receivers.agent.player.Player.stop`).
NOTHING_TO_STOP = "nothing to stop"
STEP = {"pending": 0, "received": 1, "fetched": 2, "playing": 3, "done": 4}
FINAL = ("done", "failed", "cancelled")
STATUSES = ("pending", "received", "fetched", "playing", "done", "failed", "cancelled")
FLUSH_S = 0.25
FORGET_AFTER = dt.timedelta(minutes=10)


@dataclass
class SpeechLayout:
    chime_before: bool = True
    chime_after: bool = False
    repeat: int = 1  # the play command repeats; the audio holds one reading
    gap_s: float = 0.0


@dataclass(frozen=True)
class Voiced:
    """Broadcast audio of a text and who read it."""

    media: MediaFile
    engine: str  # gtts, neural or offline
    voice: str
    note: str | None  # why the engines before it did not read it
    reused: bool = False  # an earlier emergency's audio


def voiced_media(engine: Engine, settings: Any, store: Any, said: str, use: str = "emergencies") -> Voiced:
    """Broadcast audio of `said` (the text as it is read out: see `services.content.spoken_text`) after the
    attention chime, read by the first engine of `use`'s order that can: for each engine in turn, an earlier
    emergency's audio of the same text read by that engine, else that engine now (the online one and the neural
    voice each under its deadline). An engine that fails or misses its deadline gives way to the next: a dead
    link delays a warning by the deadline at most; so does one whose speech cannot be made into broadcast audio
    (a damaged file in the speech cache, removed). Not put in the content library (whose lists other communes
    read). `Unavailable` when no engine could read it."""
    candidates = voice_order(settings, use, chars=len(said))
    names = [c.engine.name for c in candidates]
    skipped: list[Skipped] = []
    with Session(engine) as s:
        rows = s.exec(select(MediaFile, Emergency.engine)
                      .join(Emergency, col(Emergency.media_sha256) == MediaFile.sha256)
                      .where(Emergency.spoken_text == said, col(Emergency.source).in_(("text", "cap")),
                             col(Emergency.engine).in_(names))
                      .order_by(col(Emergency.created_at).desc())).all()
        fmt = speech_format(settings.audio)
        earlier: dict[str, MediaFile] = {}
        for media, name in rows:
            # An earlier emergency's audio in another format (made before the speech bitrate) is made again.
            if name is not None and name not in earlier and store.exists(media.sha256) and made_in(store, media, fmt):
                earlier[name] = media
        cache = settings.data_dir / "tts-cache"
        for c in candidates:
            name = c.engine.name
            # Reused only while this engine's speech of it, with today's settings, is in the speech cache: an
            # emergency read before its settings (or voice) changed is read again.
            if name in earlier and cache_path(c.engine, c.voice, said, cache).exists():
                return Voiced(earlier[name], name, c.voice, skipped_note(skipped, name), reused=True)
            with tempfile.TemporaryDirectory(dir=store.root, prefix=".work-") as work:
                composed = Path(work) / "emergency.wav"

                def stored(composed: Path = composed) -> MediaFile:
                    return make_media(s, store, composed, fmt, trim_silence=False)[0]

                try:
                    speech, media = speak_and_make([c], said, cache, composed, SpeechLayout(), stored)
                except NoEngineSpoke as e:
                    skipped.extend(e.skipped)
                    continue
            s.commit()  # the emergency row that refers to it is written in another session
            s.refresh(media)
            return Voiced(media, name, speech.voice, skipped_note(skipped, name))
    raise Unavailable(f"Text-to-speech is not available on this controller: {NoEngineSpoke(skipped)}")


def speech_media(engine: Engine, settings: Any, store: Any, said: str, use: str = "emergencies") -> MediaFile:
    """The audio of `voiced_media` alone."""
    return voiced_media(engine, settings, store, said, use).media


def speak_emergency(settings: Any, said: str, out_wav: Path, use: str = "emergencies") -> tuple[str, str, str | None]:
    """`said` read as `voiced_media` reads it (the same order and deadlines, the same speech cache, so an
    emergency sent afterwards reuses the speech), laid out after the chime into `out_wav`; nothing stored.
    (engine, voice, note). For listening before sending."""
    try:
        speech = speak_first(voice_order(settings, use, chars=len(said)), said, settings.data_dir / "tts-cache",
                             out_wav, SpeechLayout())
    except NoEngineSpoke as e:
        raise Unavailable(f"Text-to-speech is not available on this controller: {e}") from None
    return speech.engine, speech.voice, speech.note


def plan_topics(receivers: Iterable[str], commune_of: dict[str, str], by_commune: dict[str, set[str]],
                everyone: set[str]) -> dict[Target, list[str]]:
    """Command targets (all, a commune, a receiver) that reach exactly `receivers`, with who each reaches."""
    wanted = set(receivers)
    if wanted and wanted == everyone:
        return {Target.everyone(): sorted(wanted)}
    out: dict[Target, list[str]] = {}
    for code in sorted({commune_of[r] for r in wanted}):
        members = by_commune[code]
        if members <= wanted:
            out[Target.commune(code)] = sorted(members)
        else:
            for rid in sorted(members & wanted):
                out[Target.receiver(rid)] = [rid]
    return out


@dataclass
class Live:
    id: str
    command_ids: list[str]  # one play command per target
    expires_at: dt.datetime
    payloads: dict[str, str]  # target (its wire string) → signed payload
    route: dict[str, str]  # receiver → the target that reaches it
    commune: dict[str, str]  # receiver → commune code
    status: dict[str, tuple[str, str | None]]  # receiver → (status, reason)
    cancelled: bool = False
    stop_acked: set[str] = field(default_factory=set)  # receivers that acknowledged a stop of it
    queues: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)  # status → receivers

    def __post_init__(self) -> None:
        self.counts.update(s for s, _ in self.status.values())

    def set(self, rid: str, new: tuple[str, str | None]) -> None:
        self.counts[self.status[rid][0]] -= 1
        self.counts[new[0]] += 1
        self.status[rid] = new

    def totals(self) -> dict[str, int]:
        return {"targeted": len(self.status), **{s: self.counts[s] for s in STATUSES}, "offline": 0}

    def over(self, now: dt.datetime) -> bool:
        return self.cancelled or now >= self.expires_at or sum(self.counts[s] for s in FINAL) == len(self.status)


class Tracker:
    def __init__(self, engine: Engine, bridge: Any | None) -> None:
        self.engine, self.bridge = engine, bridge
        self.live: dict[str, Live] = {}
        self.by_command: dict[str, str] = {}
        self.by_stop: dict[str, str] = {}  # stop command id → emergency id
        self.stops_resent = 0
        self._dirty: dict[tuple[str, str], tuple[str, str | None, dt.datetime]] = {}
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self.recent: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)  # rate limit

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        if self.bridge is not None:
            self.bridge.ack_watchers.append(self.on_ack)
            self.bridge.availability_watchers.append(self.on_availability)
        self._task = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.flush)

    def _load(self) -> None:
        """Emergencies still running when the controller restarted keep being tracked and re-sent; cancelled
        ones not yet expired too, for their stop (which receivers acknowledged it is not stored: each gets
        the stop again once, which it ignores)."""
        now = utcnow()
        with Session(self.engine) as s:
            commune_of = Inventory.load(s).receivers
            for e in s.exec(select(Emergency).where(Emergency.expires_at > now)):
                rows = s.exec(select(EmergencyReceiver).where(EmergencyReceiver.emergency_id == e.id)).all()
                rids = [r.receiver_id for r in rows]
                ids = [json.loads(json.loads(p)["body"])["command_id"] for p in e.payloads.values()]
                self.add(Live(e.id, ids, e.expires_at, e.payloads, routes(e.payloads, rids, commune_of),
                              {r: commune_of.get(r, "") for r in rids},
                              {r.receiver_id: (r.status, r.reason) for r in rows}, e.cancelled_at is not None))

    def add(self, live: Live) -> None:
        self.live[live.id] = live
        for command_id in live.command_ids:
            self.by_command[command_id] = live.id

    # --------------------------------------------------------------------------------------- progress

    def note_stop(self, eid: str, command_id: str) -> None:
        """`command_id` is a stop of emergency `eid`: its acknowledgements tell who has heard the cancel."""
        self.by_stop[command_id] = eid

    def on_ack(self, rid: str, ack: Ack) -> None:
        stop_of = self.by_stop.get(str(ack.command_id))
        if stop_of is not None:
            # Applied, or "nothing to stop": either way the receiver has the stop and remembers it. Any other
            # refusal (a handler that failed, a bad signature, a replay) is not a cancel heard: sent again.
            cancelled = self.live.get(stop_of)
            if cancelled is not None and (ack.status == "applied" or (
                    ack.status == "rejected" and ack.reason == NOTHING_TO_STOP)):
                cancelled.stop_acked.add(rid)
            return
        eid = self.by_command.get(str(ack.command_id))
        live = self.live.get(eid) if eid else None
        if live is None or rid not in live.status:
            return
        current, _ = live.status[rid]
        new: tuple[str, str | None] | None = None
        if ack.status in STEP and current not in FINAL and STEP[ack.status] > STEP.get(current, 0):
            new = (ack.status, None)
        elif ack.status == "failed" and current not in FINAL:
            stopped = live.cancelled or "stopped by the controller" in (ack.reason or "")
            new = ("cancelled", ack.reason) if stopped else ("failed", ack.reason)
        elif ack.status == "rejected" and current == "pending" and not (ack.reason or "").startswith("replayed"):
            new = ("failed", f"refused by the receiver: {ack.reason}")
        if new is not None:
            self._set(live, rid, new)

    def _set(self, live: Live, rid: str, new: tuple[str, str | None]) -> None:
        live.set(rid, new)
        self._dirty[(live.id, rid)] = (*new, utcnow())
        self.publish(live, {"receiver": rid, "commune": live.commune.get(rid), "status": new[0], "reason": new[1]})

    def publish(self, live: Live, change: dict[str, Any]) -> None:
        """Hand `change` to every listener; the totals go with each batch of them (`Live.totals`), not each."""
        for q in live.queues:
            q.put_nowait(change)

    def on_availability(self, rid: str, status: str) -> None:
        if status != "online" or self.bridge is None:
            return
        now = utcnow()
        for live in self.live.values():
            if live.cancelled and now < live.expires_at and rid in live.status and rid not in live.stop_acked:
                self._spawn(self._resend_stop(rid, live))
                continue
            if live.cancelled or now >= live.expires_at or live.status.get(rid, ("", None))[0] != "pending":
                continue
            target = live.route[rid]
            payload = live.payloads[target].encode()
            self._spawn(self._resend(rid, payload, live.id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _resend_stop(self, rid: str, live: Live) -> None:
        assert self.bridge is not None
        ttl = max(60.0, (live.expires_at - utcnow()).total_seconds())
        stop = Stop.new(Target.receiver(rid), ttl, item_id=f"em-{live.id}", priority="emergency")
        self.note_stop(live.id, str(stop.command_id))
        try:
            await self.bridge.send(stop, "emergency-tracker")
            self.stops_resent += 1
            log.info("emergency %s: cancel sent again to %s, back online", live.id, rid)
        except CommandNotSent as e:
            log.warning("emergency %s: could not send the cancel again to %s: %s", live.id, rid, e)

    async def _resend(self, rid: str, payload: bytes, eid: str) -> None:
        assert self.bridge is not None
        try:
            await self.bridge.republish(Target.receiver(rid), "play", self._restamped(payload))
            log.info("emergency %s: sent again to %s, back online", eid, rid)
        except CommandNotSent as e:
            log.warning("emergency %s: could not send again to %s: %s", eid, rid, e)

    def _restamped(self, payload: bytes) -> bytes:
        """The same play (its id, item and expiry) issued now and signed again: a receiver refuses a command
        issued well before the latest it has verified (its high-water mark), and one that comes back may have
        verified newer commands (a resync's sync-schedule) before this one reaches it. The id stays, so a copy
        of the original still queued at the broker is refused as a replay: it plays once."""
        assert self.bridge is not None
        command = parse_command(json.loads(payload)["body"].encode())
        return self.bridge.signer.sign(command.model_copy(update={"issued_at": utcnow()}))

    def in_emergency(self, rid: str) -> bool:
        """Whether an emergency is (or is still to be) playing on receiver `rid`: a live one, not cancelled nor
        expired, whose status there is not final (a pending receiver counts: it is sent again when back)."""
        now = utcnow()
        return any(not live.cancelled and now < live.expires_at and rid in live.status
                   and live.status[rid][0] not in FINAL for live in self.live.values())

    def cancel(self, eid: str) -> None:
        live = self.live.get(eid)
        if live is None:
            return
        live.cancelled = True
        for rid, (status, _) in list(live.status.items()):
            if status not in FINAL:
                self._set(live, rid, ("cancelled", "cancelled by the sender"))

    # ------------------------------------------------------------------------------------- storage

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                await asyncio.to_thread(self.flush)
            except Exception:
                log.exception("emergency progress not written; will retry")
                continue
            self._prune(utcnow())

    def _prune(self, now: dt.datetime) -> None:
        """Forget emergencies long expired (their progress is in the database, which GET reads then); late acks
        within the grace period still count."""
        for eid, live in list(self.live.items()):
            if now - live.expires_at > FORGET_AFTER and not live.queues and not self._dirty:
                del self.live[eid]
                for command_id in live.command_ids:
                    self.by_command.pop(command_id, None)
                for command_id in [c for c, e in self.by_stop.items() if e == eid]:
                    del self.by_stop[command_id]

    def flush(self) -> None:
        batch, self._dirty = self._dirty, {}
        if not batch:
            return
        try:
            table = EmergencyReceiver.__table__  # type: ignore[attr-defined]
            statement = (table.update()
                         .where(table.c.emergency_id == bindparam("eid"), table.c.receiver_id == bindparam("rid"))
                         .values(status=bindparam("new_status"), reason=bindparam("new_reason"),
                                 updated_at=bindparam("at")))
            with self.engine.begin() as conn:  # one executemany, however many changed
                conn.execute(statement, [{"eid": eid, "rid": rid, "new_status": status, "new_reason": reason, "at": at}
                                         for (eid, rid), (status, reason, at) in batch.items()])
        except Exception:
            self._dirty = {**batch, **self._dirty}
            raise


def routes(payloads: dict[str, Any], rids: Iterable[str], commune_of: dict[str, str]) -> dict[str, str]:
    """Which of the published targets reaches each receiver."""
    route = {}
    for rid in rids:
        commune = commune_of.get(rid)
        reaching = [Target.receiver(rid), *([Target.commune(commune)] if commune else []), Target.everyone()]
        for target in map(str, reaching):
            if target in payloads:
                route[rid] = target
                break
    return route


def totals(statuses: Iterable[tuple[str, str | None]], offline: Iterable[str] = ()) -> dict[str, int]:
    counts = dict.fromkeys((*STATUSES, "offline"), 0)
    n = 0
    for status, _ in statuses:
        counts[status] += 1
        n += 1
    off = len(list(offline))
    counts["offline"], counts["pending"] = off, counts["pending"] - off
    return {"targeted": n, **counts}


def store_rows(engine: Engine, emergency: Emergency, receivers: Iterable[str]) -> None:
    """The emergency and one progress row per targeted receiver, in one transaction."""
    with Session(engine) as s:
        s.add(emergency)
        s.flush()
        rows = [{"emergency_id": emergency.id, "receiver_id": rid, "status": "pending"} for rid in receivers]
        if rows:
            s.exec(insert(EmergencyReceiver), params=rows)
        s.commit()


def offline_among(engine: Engine, rids: Iterable[str]) -> set[str]:
    wanted = list(rids)
    with Session(engine) as s:
        online = set(s.exec(select(ReceiverStatus.receiver_id).where(
            col(ReceiverStatus.receiver_id).in_(wanted), ReceiverStatus.availability == "online")))
    return {r for r in wanted if r not in online}
