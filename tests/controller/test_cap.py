"""CAP 1.2 intake (`controller.cap`): parsing, validation, choosing what to say and where, and signatures.

The sample alerts in `cap_samples/` are fictitious but shaped like those of a provincial warning system for
Quảng Nam; tests that need a broken alert derive it from a sample by a small text edit.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import SignatureMethod, XMLSigner, methods

from controller import cap
from controller.cap import CapError, CapInfo, choose_info, communes_for, parse_alert, text_to_read, verify_signature

SAMPLES = Path(__file__).parent / "cap_samples"
SEED = Path(cap.__file__).parent / "data" / "bac-tra-my.toml"
ICT = timezone(timedelta(hours=7))


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def edit(name: str, old: str, new: str) -> bytes:
    """A sample with one piece of text replaced (the piece must be there, so a stale test fails loudly)."""
    text = sample(name).decode()
    assert old in text, old
    return text.replace(old, new, 1).encode()


def drop(name: str, element: str) -> bytes:
    """A sample without the first `<element>…</element>`."""
    text = sample(name).decode()
    out, n = re.subn(rf"<{element}>.*?</{element}>", "", text, count=1, flags=re.S)
    assert n == 1, element
    return out.encode()


@pytest.fixture(scope="module")
def table() -> dict[str, str]:
    return cap.load_geocode_table()


def raises(xml: bytes, message: str) -> CapError:
    with pytest.raises(CapError) as e:
        parse_alert(xml)
    assert message in str(e.value), str(e.value)
    return e.value


# --- the message kinds ---------------------------------------------------------------------------------------------


def test_alert_parses_every_field(table: dict[str, str]) -> None:
    alert = parse_alert(sample("flash-flood-alert.xml"))
    assert alert.identifier == "QNM-LQ-20241028-001"
    assert alert.sender == "dai-kttv-quangnam@canhbao.example"
    assert alert.sent == datetime(2024, 10, 28, 7, 30, tzinfo=UTC)
    assert alert.sent.utcoffset() == timedelta(hours=7)
    assert (alert.status, alert.msg_type, alert.scope, alert.references) == ("Actual", "Alert", "Public", ())
    (info,) = alert.infos
    assert info.language == "vi-VN"
    assert info.categories == ("Met", "Geo")
    assert info.event == "Lũ quét, sạt lở đất"
    assert (info.urgency, info.severity, info.certainty) == ("Immediate", "Severe", "Likely")
    assert info.headline == "Cảnh báo lũ quét, sạt lở đất tại huyện Bắc Trà My"
    assert info.description.startswith("Do ảnh hưởng của mưa lớn") and info.description.endswith("cấp 2.")
    assert info.instruction.endswith("chính quyền địa phương")
    assert info.expires == datetime(2024, 10, 29, 14, 30, tzinfo=ICT)
    (area,) = info.areas
    assert area.area_desc.startswith("Các xã Trà Giáp")
    assert area.geocodes[0] == cap.Geocode("MaDVHC", "20929")
    assert communes_for(alert, table) == ({"tra-giap", "tra-ka", "tra-bui", "tra-doc"}, [])


def test_update_names_the_alert_it_replaces(table: dict[str, str]) -> None:
    alert = parse_alert(sample("flash-flood-update.xml"))
    assert alert.msg_type == "Update"
    assert alert.references == (
        cap.CapReference(
            "dai-kttv-quangnam@canhbao.example", "QNM-LQ-20241028-001", datetime(2024, 10, 28, 14, 30, tzinfo=ICT)
        ),
    )
    assert communes_for(alert, table)[0] == {"tra-giap", "tra-ka", "tra-bui", "tra-doc", "tra-tan", "tra-giac"}


def test_cancel_names_every_alert_it_cancels() -> None:
    alert = parse_alert(sample("flash-flood-cancel.xml"))
    assert alert.msg_type == "Cancel"
    assert [(r.identifier, r.sent.hour) for r in alert.references] == [
        ("QNM-LQ-20241028-001", 14),
        ("QNM-LQ-20241028-002", 18),
    ]


def test_cancel_needs_no_info() -> None:
    alert = parse_alert(drop("flash-flood-cancel.xml", "info"))
    assert alert.infos == () and choose_info(alert) is None


@pytest.mark.parametrize(
    ("name", "status", "communes"),
    [
        ("forest-fire-test.xml", "Test", {"tra-my", "tra-son", "tra-duong", "tra-giang"}),
        ("flash-flood-exercise.xml", "Exercise", {"tra-tan", "tra-giac"}),
    ],
)
def test_test_and_exercise_status(name: str, status: str, communes: set[str], table: dict[str, str]) -> None:
    alert = parse_alert(sample(name))
    assert alert.status == status and alert.msg_type == "Alert"
    assert communes_for(alert, table) == (communes, [])


# --- what to say ---------------------------------------------------------------------------------------------------


def test_vietnamese_text_survives() -> None:
    info = choose_info(parse_alert(sample("flash-flood-update.xml")))
    assert info is not None
    said = text_to_read(info)
    assert "suối Nước Mả, xã Trà Bui" in said and "Khẩn trương sơ tán" in said
    assert unicodedata.is_normalized("NFC", said)


def test_decomposed_text_comes_out_composed() -> None:
    nfd = unicodedata.normalize("NFD", "Cảnh báo lũ quét")
    info = parse_alert(edit("flash-flood-alert.xml", "Cảnh báo lũ quét", nfd)).infos[0]
    assert info.headline.startswith("Cảnh báo lũ quét") and unicodedata.is_normalized("NFC", info.headline)


def test_several_infos_the_vietnamese_one_is_read(table: dict[str, str]) -> None:
    alert = parse_alert(sample("landslide-bilingual.xml"))
    assert [i.language for i in alert.infos] == ["en-US", "vi-VN"]
    info = choose_info(alert)
    assert info is not None and info.event == "Sạt lở đất"
    assert text_to_read(info).startswith("Cảnh báo sạt lở đất tại các huyện Bắc Trà My, Nam Trà My. Lượng mưa")


def test_without_vietnamese_the_first_info_is_read() -> None:
    alert = parse_alert(edit("landslide-bilingual.xml", "<language>vi-VN</language>", "<language>fr</language>"))
    info = choose_info(alert)
    assert info is not None and info.language == "en-US"


def test_language_defaults_to_english_as_in_the_standard() -> None:
    alert = parse_alert(drop("flash-flood-alert.xml", "language"))
    assert alert.infos[0].language == "en-US"


def _info(**fields: str) -> CapInfo:
    base = parse_alert(sample("flash-flood-alert.xml")).infos[0]
    return CapInfo(**{**base.__dict__, **fields})


def test_text_to_read_joins_sentences_and_skips_empty_and_repeated_parts() -> None:
    info = _info(headline="Cảnh báo lũ quét", description="", instruction="  Sơ tán\n   ngay!  ")
    assert text_to_read(info) == "Cảnh báo lũ quét. Sơ tán ngay!"
    assert text_to_read(_info(headline="Lũ quét.", description="Lũ quét", instruction="")) == "Lũ quét."
    assert text_to_read(_info(headline="", description="", instruction="")) == ""


# --- where to say it -----------------------------------------------------------------------------------------------


def test_unknown_geocodes_are_reported(table: dict[str, str]) -> None:
    alert = parse_alert(sample("landslide-bilingual.xml"))
    assert communes_for(alert, table) == ({"tra-nu", "tra-kot", "tra-dong"}, ["20935"])
    vi = choose_info(alert)
    assert vi is not None and communes_for(vi, table) == ({"tra-nu", "tra-kot", "tra-dong"}, ["20935"])


def test_an_area_without_geocode_is_reported(table: dict[str, str]) -> None:
    xml = edit("landslide-bilingual.xml", "<geocode><valueName>MaDVHC</valueName><value>20935</value></geocode>", "")
    communes, unknown = communes_for(parse_alert(xml), table)
    assert communes == {"tra-nu", "tra-kot", "tra-dong"}
    assert unknown == ["'Trà Leng commune, Nam Trà My district' (no geocode)", "20935"]


def test_default_table_covers_the_thirteen_communes(table: dict[str, str]) -> None:
    seed = tomllib.loads(SEED.read_text(encoding="utf-8"))
    assert sorted(table.values()) == sorted(c["code"] for c in seed["communes"])
    assert len(table) == 13 and all(re.fullmatch(r"\d{5}", k) for k in table)


def test_geocode_table_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "g.toml"
    bad.write_text('[geocodes]\n"20899" = "Thị trấn Trà My"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="expected a commune code"):
        cap.load_geocode_table(bad)
    bad.write_text('"20899" = "tra-my"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[geocodes\]"):
        cap.load_geocode_table(bad)


# --- what is refused -----------------------------------------------------------------------------------------------


def test_expired_alerts_are_not_judged_here() -> None:
    alert = parse_alert(sample("flash-flood-alert.xml"))  # expired in 2024; the caller checks against its clock
    assert alert.infos[0].expires is not None and alert.infos[0].expires.year == 2024


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</alert>", "not XML: "),
        (b"", "not XML: the body is empty"),
        (b"just text", "not XML: "),
        (
            b"<alarm xmlns='urn:oasis:names:tc:emergency:cap:1.2'/>",
            "not a CAP 1.2 alert: root element is {urn:oasis:names:tc:emergency:cap:1.2}alarm",
        ),
        (
            b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.1'/>",
            "not a CAP 1.2 alert: root element is {urn:oasis:names:tc:emergency:cap:1.1}alert",
        ),
        (b"<alert/>", "not a CAP 1.2 alert: root element is alert,"),
    ],
)
def test_not_a_cap_alert(xml: bytes, message: str) -> None:
    raises(xml, message)


@pytest.mark.parametrize(
    "element", ["identifier", "sender", "sent", "status", "msgType", "scope", "category", "event", "urgency"]
)
def test_missing_required_element(element: str) -> None:
    name = "flash-flood-cancel.xml" if element == "category" else "flash-flood-alert.xml"  # cancel has one category
    raises(drop(name, element), f"missing <{element}>")


def test_missing_area_desc_says_where() -> None:
    raises(drop("flash-flood-alert.xml", "areaDesc"), "missing <areaDesc> in an <area> of <info> #1")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("<status>Actual</status>", "<status>Live</status>", "unknown status 'Live'"),
        ("<msgType>Alert</msgType>", "<msgType>Warning</msgType>", "unknown msgType 'Warning'"),
        ("<scope>Public</scope>", "<scope>Restricted</scope>", "scope 'Restricted' needs <restriction>"),
        ("<severity>Severe</severity>", "<severity>High</severity>", "unknown severity 'High'"),
        ("<category>Geo</category>", "<category>Flood</category>", "unknown category 'Flood' in <info> #1"),
        (
            "<sent>2024-10-28T14:30:00+07:00</sent>",
            "<sent>2024-10-28T14:30:00</sent>",
            "sent is not a date-time with a time zone: '2024-10-28T14:30:00'",
        ),
        ("<sent>2024-10-28T14:30:00+07:00</sent>", "<sent>28/10/2024</sent>", "sent is not a date-time"),
        ("<expires>2024-10-29T14:30:00+07:00", "<expires>2024-10-29", "expires is not a date-time"),
        ("<identifier>QNM-LQ-20241028-001", "<identifier>QNM LQ 001", "identifier 'QNM LQ 001' must not contain"),
        ("<msgType>Alert</msgType>", "<msgType>Update</msgType>", "msgType 'Update' needs <references>"),
        ("<scope>Public</scope>", "<scope>Public</scope><scope>Public</scope>", "more than one <scope>"),
    ],
)
def test_invalid_values(old: str, new: str, message: str) -> None:
    raises(edit("flash-flood-alert.xml", old, new), message)


def test_cancel_needs_references() -> None:
    raises(drop("flash-flood-cancel.xml", "references"), "msgType 'Cancel' needs <references>")


def test_malformed_reference() -> None:
    xml = edit("flash-flood-update.xml", ",QNM-LQ-20241028-001,", ",QNM-LQ-20241028-001;")
    raises(xml, "is not sender,identifier,sent")


def test_alert_needs_an_info_block() -> None:
    raises(drop("flash-flood-alert.xml", "info"), "no <info> block")


def test_oversize_input_is_refused_before_parsing() -> None:
    padding = "Mưa lớn. " * 120_000
    xml = edit("flash-flood-alert.xml", "<description>", f"<description>{padding}")
    assert len(xml) > cap.MAX_ALERT_BYTES
    raises(xml, f"too large: {len(xml)} bytes, the limit is 1000000")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>
"""


@pytest.mark.parametrize("codec", ["utf-8", "utf-16"])
def test_entity_expansion_is_refused(codec: str) -> None:
    xml = BILLION_LAUGHS.decode().replace('version="1.0"', f'version="1.0" encoding="{codec}"').encode(codec)
    with pytest.raises(CapError, match="DTD"):
        parse_alert(xml)


def test_external_entities_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("MẬT KHẨU", encoding="utf-8")
    doctype = f'<!DOCTYPE alert [<!ENTITY x SYSTEM "{secret.as_uri()}">]>\n<alert '
    xml = edit("flash-flood-alert.xml", "<alert ", doctype).replace(b"<headline>", b"<headline>&x;")
    with pytest.raises(CapError, match="DTD") as e:
        parse_alert(xml)
    assert "MẬT" not in str(e.value)


def test_input_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        parse_alert(sample("flash-flood-alert.xml").decode())  # type: ignore[arg-type]


# --- signatures ----------------------------------------------------------------------------------------------------


class Signer:
    """A key and a self-signed certificate valid from yesterday to tomorrow, made in the test."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, xml: bytes, *, with_cert: bool = True) -> bytes:
        root = etree.fromstring(xml, parser=etree.XMLParser(remove_blank_text=False))
        signer = XMLSigner(method=methods.enveloped, signature_algorithm=SignatureMethod.ECDSA_SHA256)
        signed = signer.sign(root, key=self.key, cert=[self.cert] if with_cert else None)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


@pytest.fixture(scope="module")
def warning_centre() -> Signer:
    return Signer("Đài KTTV tỉnh Quảng Nam")


@pytest.fixture(scope="module")
def stranger() -> Signer:
    return Signer("Someone else")


def refused(xml: bytes, trusted: list[bytes], message: str) -> None:
    with pytest.raises(CapError) as e:
        verify_signature(xml, trusted)
    assert str(e.value).startswith(message), str(e.value)


def test_signed_alert_verifies_and_still_parses(warning_centre: Signer, stranger: Signer) -> None:
    signed = warning_centre.sign(sample("flash-flood-alert.xml"))
    verify_signature(signed, [stranger.pem, warning_centre.pem])
    assert parse_alert(signed).identifier == "QNM-LQ-20241028-001"


def test_tampered_text_is_a_bad_signature(warning_centre: Signer) -> None:
    signed = warning_centre.sign(sample("flash-flood-alert.xml"))
    tampered = signed.replace("đạt 85 mm".encode(), "đạt 15 mm".encode())
    assert tampered != signed
    refused(tampered, [warning_centre.pem], "bad signature: ")


def test_comments_cannot_hide_signed_text(warning_centre: Signer) -> None:
    signed = warning_centre.sign(sample("flash-flood-alert.xml"))
    # c14n ignores comments, so the signature still verifies: what matters is that the parser reads the whole text
    commented = signed.replace("Cảnh báo lũ quét,".encode(), "Cảnh báo<!-- x --> lũ quét,".encode())
    verify_signature(commented, [warning_centre.pem])
    assert parse_alert(commented).infos[0].headline == "Cảnh báo lũ quét, sạt lở đất tại huyện Bắc Trà My"


def test_other_certificate_is_untrusted(warning_centre: Signer, stranger: Signer) -> None:
    signed = stranger.sign(sample("flash-flood-alert.xml"))
    refused(signed, [warning_centre.pem], "signed by an untrusted certificate (CN=Someone else)")


def test_unsigned_alert(warning_centre: Signer) -> None:
    refused(sample("flash-flood-alert.xml"), [warning_centre.pem], "unsigned: no XML signature")


def test_signature_without_certificate_is_tried_with_each_trusted_one(warning_centre: Signer, stranger: Signer) -> None:
    signed = warning_centre.sign(sample("flash-flood-alert.xml"), with_cert=False)
    verify_signature(signed, [stranger.pem, warning_centre.pem])
    refused(signed, [stranger.pem], "bad signature: no certificate in <KeyInfo>")
    refused(signed, [], "signed by an untrusted certificate")


def test_signature_must_cover_the_whole_alert(warning_centre: Signer) -> None:
    signed = warning_centre.sign(sample("flash-flood-alert.xml")).decode()
    moved = re.sub(r'URI=""', 'URI="#part"', signed, count=1)
    refused(moved.encode(), [warning_centre.pem], 'bad signature: it must have one Reference with URI=""')
    nested = signed.replace("</info>", "").replace("</alert>", "</info></alert>")
    refused(nested.encode(), [warning_centre.pem], "bad signature: expected exactly one <Signature>")


def test_signature_check_refuses_entities_too(warning_centre: Signer) -> None:
    refused(BILLION_LAUGHS, [warning_centre.pem], "not a CAP 1.2 alert: a DOCTYPE")
