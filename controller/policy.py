"""The access policy: the one place that decides what a principal may see and do, in which communes.

- `Right`: what can be granted — the API token scopes that exist (`receivers:read`, `receivers:control`,
  `content:read`, `content:write`, `emergency:trigger`, `admin`) and `content:approve` (duyệt tin).
- `ROLES`: what each role of a person holds — quản trị huyện (district admin: everything, every commune),
  cán bộ xã (commune operator), lãnh đạo xã (commune leader: also approves), trực khẩn cấp (emergency duty),
  xem (read only).
- `Principal`: who is acting — a person or a token — with the rights and communes in force. A token's are
  its scopes and communes bounded by its owner's, so it never holds more than the person who made it.
- `require`, `require_in`, `require_all_in`, `visible`: the checks the services make. A principal that lacks a
  right gets `Forbidden` (403); anything outside its communes is `Hidden` (404: it does not learn that it
  exists) or left out of lists. Both are refusals, which the faces (API, UI) audit with who, what and from
  where.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from controller.errors import Forbidden, Hidden


class Right(StrEnum):
    RECEIVERS_READ = "receivers:read"
    RECEIVERS_CONTROL = "receivers:control"  # volume, play, stop (below emergency), self-test, restart
    CONTENT_READ = "content:read"
    CONTENT_WRITE = "content:write"  # bulletins, announcements, programmes, groups, the commune's abbreviations
    CONTENT_APPROVE = "content:approve"  # puts drafts on air
    EMERGENCY = "emergency:trigger"  # trigger, cancel and silence emergencies
    ADMIN = "admin"  # accounts, tokens, district-wide settings; implies every other right


SCOPES: tuple[str, ...] = tuple(r.value for r in Right)


@dataclass(frozen=True)
class Role:
    title: str  # as staff read it
    rights: frozenset[Right]
    district: bool = False  # always every commune


ROLES: dict[str, Role] = {
    "district_admin": Role("Quản trị huyện", frozenset(Right), district=True),
    "commune_operator": Role("Cán bộ xã", frozenset({Right.RECEIVERS_READ, Right.RECEIVERS_CONTROL,
                                                    Right.CONTENT_READ, Right.CONTENT_WRITE})),
    "commune_leader": Role("Lãnh đạo xã", frozenset({Right.RECEIVERS_READ, Right.RECEIVERS_CONTROL, Right.CONTENT_READ,
                                                     Right.CONTENT_WRITE, Right.CONTENT_APPROVE})),
    "emergency_duty": Role("Trực khẩn cấp", frozenset({Right.RECEIVERS_READ, Right.CONTENT_READ, Right.EMERGENCY})),
    "viewer": Role("Xem", frozenset({Right.RECEIVERS_READ, Right.CONTENT_READ})),
}


def parse_rights(scopes: Iterable[str]) -> frozenset[Right]:
    """Scope names → rights; ValueError naming the unknown ones (or an empty list)."""
    names = [s.strip() for s in scopes if s.strip()]
    unknown = sorted(set(names) - set(SCOPES))
    if unknown or not names:
        raise ValueError(f"unknown scope(s) {unknown or names}: choose from {', '.join(SCOPES)}")
    return frozenset(Right(n) for n in names)


def parse_communes(communes: Iterable[str] | None) -> frozenset[str] | None:
    """None = every commune. A list given but empty (say `--communes ","`) is refused, never read as 'all'."""
    if communes is None:
        return None
    codes = frozenset(c.strip() for c in communes if c.strip())
    if not codes:
        raise ValueError("an empty commune list: name at least one commune, or give none for every commune")
    return codes


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "token", "system"]
    id: int
    name: str
    rights: frozenset[Right]
    communes: frozenset[str] | None  # None: every commune
    role: str | None = None
    address: str | None = None  # where the request came from, for the audit log

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.id}:{self.name}"

    @property
    def district(self) -> bool:
        return self.communes is None

    def has(self, right: Right) -> bool:
        return Right.ADMIN in self.rights or right in self.rights

    def may_see(self, commune: str | None) -> bool:
        """Objects of `commune`; None is the district's own (shared content): visible to everybody."""
        return self.communes is None or commune is None or commune in self.communes

    def may_touch(self, commune: str | None) -> bool:
        """Change objects of `commune`; the district's own only with every commune."""
        return self.communes is None or (commune is not None and commune in self.communes)

    def may_touch_all(self, communes: frozenset[str] | None) -> bool:
        """Every one of `communes` (None: the whole district) is within this principal's."""
        return self.communes is None or (communes is not None and communes <= self.communes)

    def at(self, address: str | None) -> Principal:
        return replace(self, address=address)

    @classmethod
    def for_user(cls, uid: int, username: str, role: str, communes: frozenset[str] | None) -> Principal:
        r = ROLES[role]
        return cls("user", uid, username, r.rights, None if r.district else communes, role)

    @classmethod
    def for_token(cls, tid: int, name: str, scopes: frozenset[Right], communes: frozenset[str] | None,
                  owner: Principal | None) -> Principal:
        """The token's scopes and communes, bounded by its owner's (when it has one)."""
        if owner is None:
            return cls("token", tid, name, scopes, communes)
        owned = frozenset(Right) if Right.ADMIN in owner.rights else owner.rights
        rights = frozenset(r for r in scopes if r in owned)
        if Right.ADMIN in scopes and Right.ADMIN not in owner.rights:  # admin scope: all the owner has
            rights |= owner.rights
        return cls("token", tid, name, rights, narrow(communes, owner.communes), owner.role)


SYSTEM = Principal("system", 0, "controller", frozenset(Right), None)


def narrow(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """The communes both allow."""
    if a is None:
        return b
    if b is None:
        return a
    return a & b


# ------------------------------------------------------------------------------------------- checks


def require(who: Principal, right: Right, action: str) -> None:
    if not who.has(right):
        raise Forbidden(f"This needs the '{right}' right, which {who.kind} {who.name!r} does not have.",
                        who=who, action=action)


def require_district(who: Principal, right: Right, action: str) -> None:
    """`right` over the whole district: accounts, the audit log, district-wide settings."""
    require(who, right, action)
    if who.communes is not None:
        raise Forbidden(f"This needs the '{right}' right over the whole district; {who.kind} {who.name!r} is "
                        f"limited to {', '.join(sorted(who.communes))}.", who=who, action=action)


def require_in(who: Principal, right: Right, commune: str | None, action: str, what: str, *,
               change: bool = False) -> None:
    """`right`, and the object (of `commune`; None = the district's own) within the principal's communes.
    `what` names the object in the 404 ("No receiver 'x'.")."""
    require(who, right, action)
    if not (who.may_touch(commune) if change else who.may_see(commune)):
        raise Hidden(f"No {what}.", who=who, action=action)


def require_all_in(who: Principal, right: Right, communes: Iterable[str], action: str, what: str) -> None:
    """`right` in every one of `communes` (an emergency's, a group's, a programme's targets)."""
    require(who, right, action)
    if who.communes is None:
        return
    outside = sorted(set(communes) - who.communes)
    if outside:
        raise Hidden(f"No {what}.", who=who, action=action)


def visible(who: Principal) -> frozenset[str] | None:
    """The communes a list is limited to (None: every commune)."""
    return who.communes


def role_title(role: str | None) -> str:
    return ROLES[role].title if role in ROLES else "Dịch vụ"
