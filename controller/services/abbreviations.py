"""The staff's abbreviations, read out in full by the text-to-speech engines on top of the built-in list
(`audio/vi_abbreviations.toml`): the district's list, which district admins change, and each commune's own,
which its content writers change and which wins in that commune.

- Shapes: `AbbreviationPut` (the expansion, and the commune or none for the district list),
  `AbbreviationPublic` / `AbbreviationsPublic`.
- `abbreviations_for(session, commune)`: the table that applies to text of `commune` (None: district only).
- `list_abbreviations`, `put_abbreviation`, `delete_abbreviation`: the services behind `/abbreviations`.

Guards, because this list is applied to every announcement and emergency before it is spoken: an expansion
must have something to read (an empty or whitespace-only one would silently delete a word), and the words of
negation are never remapped (turning "không" into nothing or into another word reverses what a notice says,
"Bà con không được về nhà" read as "Bà con được về nhà").
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, SQLModel, col, func, select

from controller.db.models import Abbreviation, Commune, utcnow
from controller.errors import Forbidden, Hidden, Invalid, NotFound
from controller.policy import Right, require

from .communes import commune_named
from .context import Ctx, Page

# Words that turn a sentence around; matching is case-sensitive, so their capitalised forms are refused too.
NEGATIONS = frozenset({"không", "chưa", "chẳng", "chả", "đừng", "chớ", "cấm"})
MAX_ABBR = 40


class AbbreviationPut(BaseModel):
    expansion: str = Field(max_length=200, description="what is read instead of the abbreviation")
    commune: str | None = Field(default=None, description="a commune's own list; none: the district's list "
                                                          "(district admins only)")

    @field_validator("expansion")
    @classmethod
    def _readable(cls, v: str) -> str:
        v = unicodedata.normalize("NFC", v.strip())
        if not v:
            raise ValueError("the expansion is empty: it would silently delete the word from what is read "
                             "(to stop expanding an abbreviation, delete it)")
        if not any(ch.isalnum() for ch in v):
            raise ValueError("the expansion has nothing to read: give the words to say instead")
        return v


class AbbreviationPublic(SQLModel):
    abbr: str
    expansion: str
    commune: str | None  # None: the district's list
    updated_by: str
    updated_at: dt.datetime


class AbbreviationsPublic(SQLModel):
    data: list[AbbreviationPublic]
    count: int


def abbreviations_for(session: Session, commune: str | None) -> dict[str, str]:
    """The district's list, overridden by the commune's own where it has one."""
    rows = session.exec(select(Abbreviation, Commune)
                        .join(Commune, col(Commune.id) == Abbreviation.commune_id, isouter=True)).all()
    district = {a.abbr: a.expansion for a, c in rows if c is None}
    own = {a.abbr: a.expansion for a, c in rows if c is not None and c.code == commune} if commune else {}
    return {**district, **own}


def _list_to_change(ctx: Ctx, code: str | None, action: str) -> Commune | None:
    """The list's commune (None: the district's). A commune outside the principal's is `Hidden` (known or
    not); the district's list changes only for district admins (`Forbidden`, 403)."""
    if code is None:
        if not (ctx.who.has(Right.ADMIN) and ctx.who.district):
            raise Forbidden("The district's abbreviation list is changed by district admins only: name your "
                            "commune (\"commune\": \"…\") to change its own list.", who=ctx.who, action=action)
        return None
    return commune_named(ctx, code, action)  # for a named commune, seeing it and changing its list go together


def _abbr(abbr: str) -> str:
    """The abbreviation as text is matched (NFC), refused when it is not one word or is a word of negation."""
    word = unicodedata.normalize("NFC", abbr.strip())
    if not word or len(word) > MAX_ABBR or any(ch.isspace() for ch in word):
        raise Invalid(f"An abbreviation is one word of at most {MAX_ABBR} characters.", code="abbr_one_word",
                      params={"max": MAX_ABBR})
    if word.casefold() in NEGATIONS:
        raise Invalid(f"{word!r} is a word of negation ({', '.join(sorted(NEGATIONS))}): it is never remapped, "
                      "since reading it otherwise reverses what a notice says.", code="abbr_negation",
                      params={"word": word})
    return word


def _row(ctx: Ctx, abbr: str, commune: Commune | None) -> Abbreviation | None:
    q = select(Abbreviation).where(Abbreviation.abbr == abbr)
    q = q.where(col(Abbreviation.commune_id).is_(None) if commune is None else Abbreviation.commune_id == commune.id)
    return ctx.session.exec(q).first()


def _public(a: Abbreviation, commune: str | None) -> AbbreviationPublic:
    return AbbreviationPublic(abbr=a.abbr, expansion=a.expansion, commune=commune, updated_by=a.updated_by,
                              updated_at=a.updated_at)


def list_abbreviations(ctx: Ctx, page: Page, commune: str | None = None) -> AbbreviationsPublic:
    """The district's list, then (with `commune`) that commune's own, each by abbreviation."""
    action = "abbreviation.list"
    require(ctx.who, Right.CONTENT_READ, action)
    if commune is not None and not ctx.who.may_see(commune):
        raise Hidden(f"No commune {commune!r}.", who=ctx.who, action=action)
    if commune is not None and ctx.session.exec(select(Commune).where(Commune.code == commune)).first() is None:
        raise Invalid(f"No commune with code {commune!r}.")
    q = (select(Abbreviation, Commune)
         .join(Commune, col(Commune.id) == Abbreviation.commune_id, isouter=True))
    q = q.where(col(Abbreviation.commune_id).is_(None) | (Commune.code == commune) if commune
                else col(Abbreviation.commune_id).is_(None))
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(Abbreviation.commune_id).is_not(None),
                                                  col(Abbreviation.abbr)))).all()
    return AbbreviationsPublic(data=[_public(a, c.code if c else None) for a, c in rows], count=count)


def put_abbreviation(ctx: Ctx, abbr: str, body: AbbreviationPut) -> AbbreviationPublic:
    """Set what `abbr` is read as in `body.commune`'s list (None: the district's, district admins only)."""
    action = "abbreviation.put"
    require(ctx.who, Right.CONTENT_WRITE, action)
    commune = _list_to_change(ctx, body.commune, action)
    try:
        word = _abbr(abbr)
    except Invalid as e:  # above all a negation remapped: somebody tried to reverse what notices say
        ctx.audit(action, "refused", target=abbr[:60], detail=f"{body.expansion!r}: {e.message}")
        raise
    row = _row(ctx, word, commune) or Abbreviation(abbr=word, commune_id=commune.id if commune else None,
                                                   expansion="", updated_by=ctx.who.actor)
    before = row.expansion
    row.expansion, row.updated_by, row.updated_at = body.expansion, ctx.who.actor, utcnow()
    ctx.session.add(row)
    ctx.session.commit()
    ctx.session.refresh(row)
    code = commune.code if commune else None
    ctx.audit(action, target=f"{code or 'district'}:{word}",
              detail=f"{before!r} → {row.expansion!r}" if before else row.expansion)
    return _public(row, code)


def delete_abbreviation(ctx: Ctx, abbr: str, commune: str | None = None) -> None:
    action = "abbreviation.delete"
    require(ctx.who, Right.CONTENT_WRITE, action)
    where = _list_to_change(ctx, commune, action)
    word = unicodedata.normalize("NFC", abbr.strip())
    row = _row(ctx, word, where)
    if row is None:
        raise NotFound(f"No abbreviation {word!r} in the {commune or 'district'} list.")
    ctx.session.delete(row)
    ctx.session.commit()
    ctx.audit(action, target=f"{commune or 'district'}:{word}", detail=row.expansion)

