"""The content library: bulletins (bản tin) and announcements (thông báo), their approval (duyệt tin) and
the staff's abbreviation lists.

Shared with the other domains (these signatures are relied on):
- `usable_content(ctx, bulletin_id=…, announcement_id=…, action=…)`: the content a play, programme or
  emergency may use — visible to the principal (another commune's is `Hidden`, 404) and approved (a draft
  is a `Conflict`, 409).
- `spoken_text(session, text, commune)`: what the engine will actually read: the built-in abbreviations, the
  district's list, then the commune's own (None: the district list only, as for text sent to several
  communes).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from audio.vi_text import normalize
from controller.db.models import Abbreviation, Announcement, Bulletin, Commune, MediaFile
from controller.errors import Conflict, Hidden, Invalid, NotFound
from controller.policy import Right, require

from .context import Ctx

ContentModel = Bulletin | Announcement


def abbreviations_for(session: Session, commune: str | None) -> dict[str, str]:
    """The district's list, overridden by the commune's own where it has one."""
    rows = session.exec(select(Abbreviation, Commune)
                        .join(Commune, col(Commune.id) == Abbreviation.commune_id, isouter=True)).all()
    district = {a.abbr: a.expansion for a, c in rows if c is None}
    own = {a.abbr: a.expansion for a, c in rows if c is not None and c.code == commune} if commune else {}
    return {**district, **own}


def spoken_text(session: Session, text: str, commune: str | None) -> str:
    return normalize(text, abbreviations_for(session, commune))


def usable_content(ctx: Ctx, *, bulletin_id: int | None = None, announcement_id: int | None = None,
                   action: str = "content.use") -> tuple[ContentModel, MediaFile, str | None]:
    """(content, its audio, its commune code or None for the district's) if `ctx.who` may put it on air."""
    require(ctx.who, Right.CONTENT_READ, action)
    if (bulletin_id is None) == (announcement_id is None):
        raise Invalid("Give exactly one of bulletin_id or announcement_id.")
    content: ContentModel | None
    if bulletin_id is not None:
        kind, ident, content = "bulletin", bulletin_id, ctx.session.get(Bulletin, bulletin_id)
    else:
        kind, ident, content = "announcement", announcement_id or 0, ctx.session.get(Announcement, announcement_id)
    if content is None:
        raise NotFound(f"No {kind} {ident}.")
    commune = ctx.session.get(Commune, content.commune_id) if content.commune_id is not None else None
    code = commune.code if commune else None
    if not ctx.who.may_see(code):
        raise Hidden(f"No {kind} {ident}.", who=ctx.who, action=action)
    if content.approved_at is None:
        raise Conflict(f"The {kind} {ident} ({content.title!r}) is a draft: it goes on air once a commune "
                       "leader or the district approves it.")
    media = ctx.session.get(MediaFile, content.media_sha256)
    assert media is not None
    return content, media, code
