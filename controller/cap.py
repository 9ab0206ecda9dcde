"""Common Alerting Protocol 1.2 intake: a CAP alert (XML bytes) in, plain values out. No database, no HTTP, no clock.

What is in here
- `parse_alert(xml_bytes) -> CapAlert`: safe parse (size limit, no DTD, no entities, no network) and validation
  of the parts the controller acts on. Anything wrong raises `CapError` with a plain-English message that the
  route can return to the sender as it is.
- Values: `CapAlert` (one `<alert>`), `CapInfo` (one `<info>` block, i.e. one language), `CapArea`, `Geocode`,
  `CapReference` (one `sender,identifier,sent` triple of `<references>`). All frozen; sequences are tuples.
- `choose_info(alert)`: the `<info>` block to broadcast (the first whose language starts with "vi", else the first).
  `text_to_read(info)`: what the loudspeaker says (headline, description, instruction).
- `communes_for(alert_or_info, table)`: geocodes → our commune codes, plus what could not be placed.
  `load_geocode_table(path)` reads such a table from TOML; `DEFAULT_GEOCODE_TABLE` is Bắc Trà My's.
- `verify_signature(xml_bytes, trusted_certs_pem)`: checks an enveloped XML-DSig signature over the whole alert
  against pinned certificates. Whether a signature is required is the caller's setting.

Expiry (`CapInfo.expires`) is deliberately not checked here: the caller compares it with its own clock.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NamedTuple, cast, get_args

from cryptography import x509
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidInput, InvalidSignature, SignXMLException

log = logging.getLogger(__name__)
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
MAX_ALERT_BYTES = 1_000_000
DEFAULT_GEOCODE_TABLE = Path(__file__).parent / "data" / "cap-geocodes.toml"

Status = Literal["Actual", "Exercise", "System", "Test", "Draft"]
MsgType = Literal["Alert", "Update", "Cancel", "Ack", "Error"]
Scope = Literal["Public", "Restricted", "Private"]
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
CATEGORIES = frozenset(
    {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"}
)


class CapError(ValueError):
    """The input is not an acceptable CAP 1.2 alert; the message says what is wrong, for the sender to read."""


class CapReference(NamedTuple):
    """One earlier alert named in `<references>`: CAP identifies an alert by sender, identifier and sent together."""

    sender: str
    identifier: str
    sent: datetime


class Geocode(NamedTuple):
    value_name: str  # the coding scheme, e.g. "MaDVHC"; not interpreted, only `value` is looked up
    value: str


@dataclass(frozen=True)
class CapArea:
    area_desc: str
    geocodes: tuple[Geocode, ...]


@dataclass(frozen=True)
class CapInfo:
    language: str
    categories: tuple[str, ...]
    event: str
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    headline: str
    description: str
    instruction: str
    expires: datetime | None
    areas: tuple[CapArea, ...]
    event_codes: tuple[Geocode, ...] = ()  # <eventCode> (valueName, value): what `controller.warnings` maps
    response_types: tuple[str, ...] = ()  # <responseType>: Shelter, Evacuate, …, AllClear (not validated)


@dataclass(frozen=True)
class CapAlert:
    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    references: tuple[CapReference, ...]
    infos: tuple[CapInfo, ...]


# --- parsing -----------------------------------------------------------------------------------------------------


_DOCTYPE = "<!DOCTYPE"
_NO_DTD = "not a CAP 1.2 alert: a DOCTYPE / DTD is not allowed (it could declare entities)"


def _parse_xml(xml_bytes: bytes) -> etree._Element:
    """Parse with a parser that cannot be made to read files, reach the network or expand entities."""
    if not isinstance(xml_bytes, bytes | bytearray):
        raise TypeError("CAP input must be bytes (the raw request body), not " + type(xml_bytes).__name__)
    if len(xml_bytes) > MAX_ALERT_BYTES:
        raise CapError(f"too large: {len(xml_bytes)} bytes, the limit is {MAX_ALERT_BYTES}")
    if not xml_bytes.strip():
        raise CapError("not XML: the body is empty")
    # CAP never needs a DTD; refusing any makes entity tricks (billion laughs, external entities) moot. Looked for
    # before parsing too, because libxml2 reports an entity bomb with an obscure "amplification factor" error.
    # UTF-32 too: libxml2 reads it, and would otherwise get as far as the DTD before refusing it.
    if any(_DOCTYPE.encode(codec) in xml_bytes for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le",
                                                              "utf-32-be")):
        raise CapError(_NO_DTD)
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        # Comments and processing instructions are outside what a signature covers (c14n drops comments), so they
        # must not be able to split or hide text that we read.
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(bytes(xml_bytes), parser=parser)
    except etree.XMLSyntaxError as e:
        raise CapError(f"not XML: {e}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise CapError(_NO_DTD)
    if root.tag != f"{{{CAP_NS}}}alert":
        raise CapError(f"not a CAP 1.2 alert: root element is {root.tag}, expected {{{CAP_NS}}}alert")
    return root


def _text(el: etree._Element) -> str:
    return unicodedata.normalize("NFC", "".join(el.itertext())).strip()


def _opt(parent: etree._Element, name: str, where: str = "") -> str:
    found = parent.findall(f"{{{CAP_NS}}}{name}")
    if len(found) > 1:
        raise CapError(f"more than one <{name}>{where}")
    return _text(found[0]) if found else ""


def _req(parent: etree._Element, name: str, where: str = "") -> str:
    value = _opt(parent, name, where)
    if not value:
        raise CapError(f"missing <{name}>{where}")
    return value


def _choice(value: str, name: str, kind: object) -> str:
    allowed = get_args(kind)
    if value not in allowed:
        raise CapError(f"unknown {name} {value!r} (expected one of {', '.join(allowed)})")
    return value


def _datetime(value: str, name: str) -> datetime:
    """CAP dates are xs:dateTime with an explicit offset, e.g. 2025-10-28T14:30:00+07:00."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or "T" not in value or parsed.tzinfo is None:
        raise CapError(
            f"{name} is not a date-time with a time zone: {value!r} (expected e.g. 2025-10-28T14:30:00+07:00)"
        )
    try:
        parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
        raise CapError(f"{name} is out of range: {value!r}") from None
    return parsed


def _check_token(value: str, name: str) -> str:
    # <references> is a space-separated list of comma-separated triples, so these two must not contain either.
    if re.search(r"[\s,<&]", value):
        raise CapError(f"{name} {value!r} must not contain spaces, commas, '<' or '&'")
    return value


def _references(value: str) -> tuple[CapReference, ...]:
    refs = []
    for entry in value.split():
        parts = entry.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(f"<references> entry {entry!r} is not sender,identifier,sent")
        refs.append(CapReference(parts[0], parts[1], _datetime(parts[2], "a <references> sent")))
    return tuple(refs)


def _area(el: etree._Element, where: str) -> CapArea:
    desc = _req(el, "areaDesc", where)
    geocodes = []
    for gc in el.findall(f"{{{CAP_NS}}}geocode"):
        name = _req(gc, "valueName", f" in a <geocode> of area {desc!r}")
        value = _req(gc, "value", f" in a <geocode> of area {desc!r}")
        geocodes.append(Geocode(name, value))
    return CapArea(desc, tuple(geocodes))


def _info(el: etree._Element, n: int) -> CapInfo:
    where = f" in <info> #{n}"
    categories = tuple(_text(c) for c in el.findall(f"{{{CAP_NS}}}category"))
    if not categories:
        raise CapError(f"missing <category>{where}")
    for category in categories:
        if category not in CATEGORIES:
            raise CapError(f"unknown category {category!r}{where} (expected one of {', '.join(sorted(CATEGORIES))})")
    expires = _opt(el, "expires", where)
    return CapInfo(
        language=_opt(el, "language", where) or "en-US",  # the CAP 1.2 default
        categories=categories,
        event=_req(el, "event", where),
        urgency=cast(Urgency, _choice(_req(el, "urgency", where), "urgency", Urgency)),
        severity=cast(Severity, _choice(_req(el, "severity", where), "severity", Severity)),
        certainty=cast(Certainty, _choice(_req(el, "certainty", where), "certainty", Certainty)),
        headline=_opt(el, "headline", where),
        description=_opt(el, "description", where),
        instruction=_opt(el, "instruction", where),
        expires=_datetime(expires, "expires") if expires else None,
        areas=tuple(_area(a, f" in an <area> of <info> #{n}") for a in el.findall(f"{{{CAP_NS}}}area")),
        event_codes=_event_codes(el, where),
        response_types=tuple(t for c in el.findall(f"{{{CAP_NS}}}responseType") if (t := _text(c))),
    )


def _event_codes(el: etree._Element, where: str) -> tuple[Geocode, ...]:
    """The `<eventCode>`s complete enough to read (a valueName and a value, once each); an incomplete one is
    skipped and logged: a label, it must not refuse the warning it labels."""
    codes = []
    for c in el.findall(f"{{{CAP_NS}}}eventCode"):
        try:
            codes.append(Geocode(_req(c, "valueName"), _req(c, "value")))
        except CapError as e:
            log.warning("an <eventCode>%s skipped: %s", where, e)
    return tuple(codes)


def parse_alert(xml_bytes: bytes) -> CapAlert:
    """Parse and validate one CAP 1.2 alert; raise `CapError` saying what is wrong.

    Alert and Update must carry at least one `<info>`; Update and Cancel must name what they replace in
    `<references>`. Elements the controller does not use (polygons, resources, parameters…) are ignored.
    """
    root = _parse_xml(xml_bytes)
    status = cast(Status, _choice(_req(root, "status"), "status", Status))
    msg_type = cast(MsgType, _choice(_req(root, "msgType"), "msgType", MsgType))
    scope = cast(Scope, _choice(_req(root, "scope"), "scope", Scope))
    if scope == "Restricted" and not _opt(root, "restriction"):
        raise CapError("scope 'Restricted' needs <restriction>")
    if scope == "Private" and not _opt(root, "addresses"):
        raise CapError("scope 'Private' needs <addresses>")
    references = _references(_opt(root, "references"))
    if msg_type in ("Update", "Cancel") and not references:
        raise CapError(f"msgType {msg_type!r} needs <references> (the alert it replaces or cancels)")
    infos = tuple(_info(el, n) for n, el in enumerate(root.findall(f"{{{CAP_NS}}}info"), start=1))
    if msg_type in ("Alert", "Update") and not infos:
        raise CapError(f"no <info> block (msgType {msg_type!r} needs one to say what to broadcast)")
    return CapAlert(
        identifier=_check_token(_req(root, "identifier"), "identifier"),
        sender=_check_token(_req(root, "sender"), "sender"),
        sent=_datetime(_req(root, "sent"), "sent"),
        status=status,
        msg_type=msg_type,
        scope=scope,
        references=references,
        infos=infos,
    )


# --- what to say -------------------------------------------------------------------------------------------------


def plays_recording(alert: CapAlert, info: CapInfo) -> bool:
    """Whether the alert may play a recorded warning (which says the danger is real and coming): only an
    `Actual` alert, not a `Cancel`, whose `<info>` is no all-clear (`responseType` AllClear) and not `Past`.
    A test, an exercise or an all-clear has its text read instead."""
    return (alert.status == "Actual" and alert.msg_type != "Cancel" and "AllClear" not in info.response_types
            and info.urgency != "Past")


def choose_info(alert: CapAlert) -> CapInfo | None:
    """The `<info>` block to broadcast: the first in Vietnamese ("vi", "vi-VN"…), else the first; None if none."""
    for info in alert.infos:
        if info.language.lower().startswith("vi"):
            return info
    return alert.infos[0] if alert.infos else None


def _sentence(text: str) -> str:
    text = " ".join(text.split())  # line breaks from the XML mean nothing to a voice
    return text if not text or text[-1] in ".!?…:;" else text + "."


def text_to_read(info: CapInfo) -> str:
    """Headline, description and instruction as sentences, skipping empty parts and repeats."""
    parts: list[str] = []
    for raw in (info.headline, info.description, info.instruction):
        part = _sentence(raw)
        if part and part not in parts:
            parts.append(part)
    return " ".join(parts)


# --- where to say it ---------------------------------------------------------------------------------------------


def communes_for(alert_or_info: CapAlert | CapInfo, table: Mapping[str, str]) -> tuple[set[str], list[str]]:
    """Our commune codes for the alert's (all its `<info>` blocks') or one info's areas, and what could not be placed.

    The second value lists, once each and in document order, geocode values missing from `table`, and for an
    area that has no geocode at all, `"<areaDesc>" (no geocode)`. The caller decides whether a partly placed alert
    is still broadcast where it can be; nothing is dropped silently.
    """
    infos: Iterable[CapInfo] = alert_or_info.infos if isinstance(alert_or_info, CapAlert) else (alert_or_info,)
    communes: set[str] = set()
    unknown: list[str] = []
    for info in infos:
        for area in info.areas:
            if not area.geocodes:
                missing = [f"{area.area_desc!r} (no geocode)"]
            else:
                missing = []
                for geocode in area.geocodes:
                    commune = table.get(geocode.value)
                    if commune is None:
                        missing.append(geocode.value)
                    else:
                        communes.add(commune)
            unknown.extend(m for m in missing if m not in unknown)
    return communes, unknown


def load_geocode_table(path: Path | str = DEFAULT_GEOCODE_TABLE) -> dict[str, str]:
    """Read a `[geocodes]` table of `"geocode value" = "commune-code"` from TOML; ValueError if it is malformed."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    table = data.get("geocodes")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{path}: expected a non-empty [geocodes] table")
    for key, value in table.items():
        if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9-]+", value):
            raise ValueError(f"{path}: geocode {key!r} maps to {value!r}, expected a commune code like 'tra-my'")
    return {key.strip(): value for key, value in table.items()}


# --- signatures --------------------------------------------------------------------------------------------------


def _load_certs(pems: list[bytes]) -> list[x509.Certificate]:
    certs = []
    for pem in pems:
        try:
            certs.append(x509.load_pem_x509_certificate(pem))
        except ValueError as e:
            raise ValueError(f"a trusted certificate is not a PEM X.509 certificate: {e}") from None
    return certs


def _verify_with(xml_bytes: bytes, cert: x509.Certificate) -> None:
    try:
        result = XMLVerifier().verify(
            bytes(xml_bytes),
            x509_cert=cert,
            expect_config=SignatureConfiguration(location="./", expect_references=1),
        )
    except (InvalidSignature, InvalidCertificate, InvalidInput, SignXMLException, etree.LxmlError, ValueError) as e:
        raise CapError(f"bad signature: {e}") from None
    signed = getattr(result, "signed_xml", None)
    if signed is None or signed.tag != f"{{{CAP_NS}}}alert":
        raise CapError("bad signature: the signed content is not the CAP alert")


def verify_signature(xml_bytes: bytes, trusted_certs_pem: list[bytes]) -> None:
    """Check the alert's enveloped XML signature against pinned (trusted) certificates; raise `CapError` if not OK.

    The signature must be the only `<ds:Signature>`, a direct child of `<alert>`, with one `<Reference URI="">`
    (the whole alert), so nothing outside what was signed can be read by `parse_alert`. The signing certificate is
    taken from `<KeyInfo>` and must equal one of `trusted_certs_pem` (no chain building); without one in
    `<KeyInfo>`, each trusted certificate is tried. SHA-1 is refused (signxml's default).
    """
    root = _parse_xml(xml_bytes)
    signatures = root.findall(f".//{{{DSIG_NS}}}Signature")
    if not signatures:
        raise CapError("unsigned: no XML signature")
    if len(signatures) > 1 or signatures[0].getparent() is not root:
        raise CapError("bad signature: expected exactly one <Signature>, as a direct child of <alert>")
    uris = [ref.get("URI") for ref in signatures[0].iterfind(f"{{{DSIG_NS}}}SignedInfo/{{{DSIG_NS}}}Reference")]
    if uris != [""]:
        raise CapError(f'bad signature: it must have one Reference with URI="" (the whole alert), found {uris}')
    trusted = _load_certs(trusted_certs_pem)
    x509_path = f"{{{DSIG_NS}}}KeyInfo/{{{DSIG_NS}}}X509Data/{{{DSIG_NS}}}X509Certificate"
    embedded = [_text(el) for el in signatures[0].iterfind(x509_path)]
    if embedded:
        try:
            signer = x509.load_der_x509_certificate(_b64(embedded[0]))
        except ValueError as e:
            raise CapError(f"bad signature: the certificate in <KeyInfo> is unreadable: {e}") from None
        match = next((c for c in trusted if c == signer), None)
        if match is None:
            raise CapError(f"signed by an untrusted certificate ({signer.subject.rfc4514_string()})")
        _verify_with(xml_bytes, match)
        return
    errors = []
    for cert in trusted:
        try:
            _verify_with(xml_bytes, cert)
            return
        except CapError as e:
            errors.append(str(e))
    if not trusted:
        raise CapError("signed by an untrusted certificate (no certificates are trusted)")
    raise CapError(f"bad signature: no certificate in <KeyInfo> and no trusted certificate verifies it ({errors[-1]})")


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None
