"""Hypothesis against the CAP 1.2 intake (`controller.cap`): what a warning system, or whoever reaches
`POST /api/v1/cap` with the emergency right, can send.

Arbitrary bytes, the samples of tests/controller/cap_samples mutated (an element's text replaced by any
text, an element dropped or doubled, bytes flipped, cut short, re-encoded), and XML bombs in every
encoding libxml2 reads: `parse_alert` and `verify_signature` either accept or raise `CapError` with a
message for the sender; never another exception, and a bomb is refused without being expanded (quickly,
whatever its size on expansion). A signed sample, tampered with, is never accepted with other content.
Derandomized: the same examples on every run.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml import SignatureMethod, XMLSigner, methods

from controller.cap import CapAlert, CapError, parse_alert, verify_signature

SAMPLES = Path(__file__).parent.parent / "controller" / "cap_samples"
FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
# A bomb that were expanded would take minutes and gigabytes; refusing one takes milliseconds. The bound
# is far above the latter so a busy machine does not fail it, far below the former.
BOMB_SECONDS = 10.0


def samples() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SAMPLES.glob("*.xml"))]


def refused(xml: bytes) -> str | None:
    """`parse_alert`'s refusal (None if the alert is accepted), checked to be a message for the sender."""
    try:
        alert = parse_alert(xml)
    except CapError as e:
        message = str(e)
        assert message.strip(), "a CapError without a message"
        return message
    assert isinstance(alert, CapAlert)
    return None


any_text = st.text(st.characters(codec="utf-8"), max_size=60)  # no lone surrogates: XML has none
TAGS = ["identifier", "sender", "sent", "status", "msgType", "scope", "references", "info", "language",
        "category", "event", "urgency", "severity", "certainty", "headline", "description", "instruction",
        "expires", "area", "areaDesc", "geocode", "valueName", "value", "restriction", "addresses"]


@st.composite
def mutated_xml(draw: st.DrawFn) -> bytes:
    """A sample with one to three of: an element's text replaced (escaped or raw), an element dropped or
    doubled, a byte flipped, the document cut short, or the whole re-encoded."""
    text = draw(st.sampled_from(samples())).decode()
    for _ in range(draw(st.integers(1, 3))):
        tag = draw(st.sampled_from(TAGS))
        element = re.compile(rf"<{tag}>.*?</{tag}>", re.S)
        found = element.search(text)
        op = draw(st.sampled_from(["text", "raw", "drop", "double", "flip", "cut"]))
        if op in ("text", "raw") and found:
            value = draw(any_text)
            if op == "text":
                value = value.replace("&", "&amp;").replace("<", "&lt;")
            text = text[:found.start()] + f"<{tag}>{value}</{tag}>" + text[found.end():]
        elif op == "drop" and found:
            text = text[:found.start()] + text[found.end():]
        elif op == "double" and found:
            text = text[:found.end()] + found.group(0) + text[found.end():]
        elif op == "cut":
            text = text[:draw(st.integers(0, len(text)))]
        elif op == "flip" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + chr(draw(st.integers(0, 0x2FF))) + text[i + 1:]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1"]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8")


@FUZZ
@given(xml=st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_with_a_message(xml: bytes) -> None:
    assert refused(xml) is not None


@FUZZ
@given(xml=mutated_xml())
def test_mutated_alerts_are_parsed_or_refused(xml: bytes) -> None:
    refused(xml)


def test_the_samples_are_accepted() -> None:
    """The mutations start from alerts the parser takes (else they would only test refusals)."""
    assert all(refused(xml) is None for xml in samples())


# --- bombs --------------------------------------------------------------------------------------------------------

LAUGHS = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
BOMBS = {
    "billion laughs": f'<!DOCTYPE alert [<!ENTITY l0 "lol">{LAUGHS}]>'
                      '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&l9;</identifier></alert>',
    "quadratic blowup": f'<!DOCTYPE alert [<!ENTITY a "{"x" * 50_000}">]>'
                        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>'
                        + "&a;" * 10_000 + "</identifier></alert>",
    "external entity": '<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>',
    "external DTD": '<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/cap.dtd">'
                    '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier></alert>',
    "parameter entities": '<!DOCTYPE alert [<!ENTITY % p0 "lol">'
                          + "".join(f'<!ENTITY % p{i} "{f"%p{i - 1};" * 10}">' for i in range(1, 8))
                          + '<!ENTITY x "%p7;">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>',
    "XInclude": '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2" xmlns:xi="http://www.w3.org/2001/XInclude">'
                '<identifier><xi:include href="file:///etc/passwd" parse="text"/></identifier></alert>',
}
ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_xml_bombs_are_refused_fast(name: str, encoding: str) -> None:
    declared = f'<?xml version="1.0" encoding="{encoding.replace("-le", "le").replace("-be", "be").upper()}"?>'
    xml = (declared + BOMBS[name]).encode(encoding)
    started = time.monotonic()
    message = refused(xml)
    elapsed = time.monotonic() - started
    assert message is not None, f"{name} in {encoding} was accepted"
    assert "root:" not in message, "the content of a local file came back in the refusal"
    if "<!DOCTYPE" in BOMBS[name]:  # refused as a DTD, before libxml2 reads one, whatever the encoding
        assert "DTD" in message, message
    assert elapsed < BOMB_SECONDS, f"{name} in {encoding} took {elapsed:.1f} s to refuse"


# --- signatures ---------------------------------------------------------------------------------------------------


class CertSigner:
    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, xml: bytes) -> bytes:
        root = etree.fromstring(xml)
        signed = XMLSigner(method=methods.enveloped, signature_algorithm=SignatureMethod.ECDSA_SHA256).sign(
            root, key=self.key, cert=[self.cert])
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


SIGNER = CertSigner("Đài KTTV Quảng Nam (test)")
SIGNED = SIGNER.sign(samples()[0])


def test_the_signed_sample_verifies() -> None:
    verify_signature(SIGNED, [SIGNER.pem])


@st.composite
def tampered_signed(draw: st.DrawFn) -> bytes:
    text = SIGNED.decode()
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "text"]))
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "flip" and text:
            text = text[:i] + chr(draw(st.integers(0x20, 0x7E))) + text[i + 1:]
        elif op == "cut":
            text = text[:i]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(["<x/>", "<!-- c -->", " ", "&amp;", "<ds:Signature/>"])) + text[i:]
        else:
            tag = draw(st.sampled_from(TAGS + ["ds:SignatureValue", "ds:DigestValue", "ds:X509Certificate"]))
            found = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
            if found:
                text = text[:found.start(1)] + draw(any_text).replace("&", "").replace("<", "") + text[found.end(1):]
    return text.encode("utf-8", "surrogatepass")


@settings(FUZZ, max_examples=120)
@given(xml=tampered_signed() | st.binary(max_size=500))
def test_tampered_signed_alerts_are_refused_with_a_message(xml: bytes) -> None:
    try:
        verify_signature(xml, [SIGNER.pem])
    except CapError as e:
        assert str(e).strip()
        return
    # Still verifies: then what is read of it is what was signed.
    assert parse_alert(xml) == parse_alert(SIGNED)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
@pytest.mark.parametrize("tag", ["sent", "expires"])
def test_a_date_outside_utcs_calendar_is_refused(tag: str, moment: str) -> None:
    """Such a date reached the emergency service, which turned it into UTC: a 500 at POST /api/v1/cap."""
    text = samples()[0].decode()
    found = re.search(rf"<{tag}>(.*?)</{tag}>", text)
    assert found
    message = refused((text[:found.start(1)] + moment + text[found.end(1):]).encode())
    assert message is not None and "out of range" in message
