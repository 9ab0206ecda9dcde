"""The content library's service layer, shared by the bulletin and announcement routes and the CLI:
turn a source file into stored broadcast audio (`make_media`), refuse with the right HTTP status
(`ingest_error`), check who may touch which commune's content (`commune_for`), and make speech
(`engines`, `normalized`, `speak`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Protocol

from fastapi import HTTPException
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from audio import ffmpeg
from audio.compose import compose_file
from audio.ingest import BroadcastFormat, Ingested, IngestError, ingest
from audio.store import MediaStore
from audio.tts import EspeakEngine, GttsEngine, TtsEngine, synthesize
from audio.vi_text import normalize
from controller.auth import Principal, audit
from controller.config import AudioSettings
from controller.db.models import Abbreviation, Announcement, Bulletin, Commune, MediaFile


class Layout(Protocol):
    chime_before: bool
    chime_after: bool
    repeat: int
    gap_s: float


def broadcast_format(a: AudioSettings) -> BroadcastFormat:
    return BroadcastFormat(sample_rate=a.sample_rate, bitrate_kbps=a.bitrate_kbps, target_lufs=a.target_lufs,
                           true_peak_dbtp=a.true_peak_dbtp, max_duration_s=a.max_duration_s)


def make_media(session: Session, store: MediaStore, source: Path, fmt: BroadcastFormat, *,
               trim_silence: bool) -> tuple[MediaFile, Ingested]:
    """Ingest `source` and store the result once; the MediaFile row is added to `session`, not committed.
    Raises IngestError for input that cannot become broadcast audio."""
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".work-") as work:
        result = ingest(source, Path(work) / "out.mp3", fmt, trim_silence=trim_silence)
        sha = store.put(result.output)
    media = session.get(MediaFile, sha) or MediaFile(
        sha256=sha, size_bytes=store.path(sha).stat().st_size, duration_s=result.duration_s,
        loudness_lufs=result.loudness_after, true_peak_dbtp=result.true_peak_after)
    session.add(media)
    session.flush()  # the row must exist before anything refers to it
    return media, result


def ingest_error(e: IngestError) -> HTTPException:
    message = str(e)
    status = 415 if ("not audio" in message or "no audio track" in message) else 422
    return HTTPException(status, message)


def commune_for(session: Session, who: Principal, code: str | None) -> Commune | None:
    """The commune named by `code` (None: district-wide), if `who` may publish content there."""
    if code is None:
        if who.communes is not None:
            raise HTTPException(403, "This token is limited to some communes: name one of them (commune=…).")
        return None
    commune = session.exec(select(Commune).where(Commune.code == code)).first()
    if commune is None:
        raise HTTPException(422, f"No commune with code {code!r}.")
    if not who.may_see(code):
        raise HTTPException(403, f"This token may not publish content for commune {code!r}.")
    return commune


def media_url(sha: str) -> str:
    return f"/media/{sha}.mp3"


# ---------------------------------------------------------------------------------------- speech


def engines(a: AudioSettings) -> dict[str, TtsEngine]:
    return {"offline": EspeakEngine(), "gtts": GttsEngine(timeout_s=a.gtts_timeout_s, url=a.gtts_url)}


def normalized(session: Session, text: str) -> str:
    """`text` as the engine will read it, with the staff's abbreviations on top of the built-in ones."""
    own = {a.abbr: a.expansion for a in session.exec(select(Abbreviation))}
    return normalize(text, own)


def speak(engine: TtsEngine, text: str, voice: str, cache_dir: Path, out_wav: Path, options: Layout) -> None:
    """Synthesise `text` (cached) and lay it out with chimes and repeats into `out_wav`."""
    speech = synthesize(engine, text, voice, cache_dir)
    decoded = out_wav.with_suffix(".speech.wav")
    ffmpeg.run(["-i", str(speech), "-ac", "1", "-ar", "22050", "-y", str(decoded)])
    compose_file(decoded, out_wav, chime_before=options.chime_before, chime_after=options.chime_after,
                 repeat=options.repeat, gap_s=options.gap_s)
    decoded.unlink()


# ------------------------------------------------------------------ bulletins and announcements alike

ContentRow = tuple[Any, MediaFile, Commune | None]


def content_query(model: type[Bulletin] | type[Announcement], who: Principal) -> Any:
    """Rows of (content, its MediaFile, its Commune or None) that `who` may see: its communes' content and
    the district-wide content."""
    q = (select(model, MediaFile, Commune)
         .join(MediaFile, MediaFile.sha256 == model.media_sha256)  # type: ignore[arg-type]
         .join(Commune, Commune.id == model.commune_id, isouter=True))  # type: ignore[arg-type]
    if who.communes is not None:
        q = q.where(col(Commune.code).in_(who.communes) | col(model.commune_id).is_(None))
    return q


def find_content(session: Session, model: type[Bulletin] | type[Announcement], ident: int,
                 who: Principal) -> ContentRow:
    row = session.exec(content_query(model, who).where(model.id == ident)).first()
    if row is None:
        raise HTTPException(404, f"No {model.__name__.lower()} {ident}.")
    return row


def delete_content(session: Session, engine: Engine, store: MediaStore, row: ContentRow, who: Principal) -> None:
    """Delete a bulletin or announcement, and its audio once nothing else refers to it."""
    content, media, commune = row
    if commune is None and who.communes is not None:
        raise HTTPException(403, "District-wide content can only be deleted by a district token.")
    kind = type(content).__name__.lower()
    from controller.scheduling import programmes_using  # imported here: scheduling imports this module

    using = programmes_using(session, f"{kind}:{content.id}")
    if using:
        names = ", ".join(f'#{p.id} "{p.title}"' for p in using[:5]) + (" …" if len(using) > 5 else "")
        message = f"This {kind} is used by programme(s) {names}: remove it from them (or delete them) first."
        audit(engine, who.actor, f"{kind}.delete", "refused", target=str(content.id), detail=message)
        raise HTTPException(409, message)
    session.delete(content)
    session.commit()
    used = sum(session.exec(select(func.count()).select_from(m).where(m.media_sha256 == media.sha256)).one()
               for m in (Bulletin, Announcement))
    if used == 0:
        session.delete(media)
        session.commit()
        store.delete(media.sha256)
    audit(engine, who.actor, f"{kind}.delete", "ok", target=str(content.id), detail=content.title)
