"""Build and validate MeMo 1.2 messages for the survey's Digital Post letters.

MeMo (https://DigitalPost.dk/MeMo-1) is the message format of Danish Digital
Post. A municipality hands a MeMo message to KOMBIT's SF1601 (KombiPostAfsend),
which delivers it to the citizen's digital mailbox, or prints it for citizens
exempt from Digital Post. Two shapes are built here:

* a letter (`build_letter_message`): the PDF letter as the main document and a
  SELVBETJENING action carrying the survey link, so mailbox apps show an
  "answer the survey" button next to the letter;
* a NemSMS message (`build_nemsms_message`): header only, the SMS text in
  `notification`, as NemSMS through SF1601 expects.

Every message is validated against the MeMo 1.2 XSD shipped in `memo_xsd/`
(copied from the published schema so the service needs nothing at run time).
Validation errors are redacted: an XSD error can quote element content, and
the header carries the recipient's CPR number.
"""

from __future__ import annotations

import base64
import functools
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import xmlschema
from lxml import etree

from .privacy import redact

MEMO_NS = "https://DigitalPost.dk/MeMo-1"
MEMO_VERSION = "1.2"
MEMO_XSD_DIR = Path(__file__).with_name("memo_xsd")
MEMO_CORE_XSD = MEMO_XSD_DIR / "Version1.2" / "MeMo_core.xsd"

ACTION_SELF_SERVICE = "SELVBETJENING"
TEXT_MAX = 256  # dt:memoTextType and dt:memoUriType
NOTIFICATION_MAX = 160  # dt:memoNotificationType

_M = f"{{{MEMO_NS}}}"
_CPR = re.compile(r"\d{10}")
_CVR = re.compile(r"\d{8}")
_LOOPBACK_HTTP = re.compile(r"http://(127\.0\.0\.1|localhost)(:\d+)?/")

# A parser that never touches the network nor expands entities: messages we
# validate may come back from storage, and XXE has no business here.
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


class MemoValidationError(ValueError):
    """The message does not satisfy the MeMo 1.2 schema.

    `reason` and `path` are redacted so the error can be logged as is."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = redact(reason)
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"invalid MeMo message{where}: {self.reason}")


@dataclass(frozen=True, slots=True)
class MemoSender:
    """The sending authority: the municipality.

    The schema requires an id, its type and a label. Digital Post knows
    municipalities by CVR number, so that is the default; `id_type` stays open
    for an SE number should a municipality send from a sub-unit."""

    sender_id: str
    label: str
    id_type: str = "CVR"

    def __post_init__(self) -> None:
        if self.id_type == "CVR" and not _CVR.fullmatch(self.sender_id):
            raise ValueError("a CVR sender id is 8 digits")
        _check_len("sender label", self.label, TEXT_MAX)


@dataclass(frozen=True, slots=True)
class MemoRecipient:
    """A citizen, identified by CPR number (10 digits, no dash)."""

    cpr: str = field(repr=False)
    name: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # No modulus-11 check: CPR numbers issued since 2007 need not pass it.
        if not _CPR.fullmatch(self.cpr):
            raise ValueError("a CPR number is 10 digits without a dash")
        if self.name is not None:
            _check_len("recipient name", self.name, TEXT_MAX)


@dataclass(frozen=True, slots=True)
class SurveyLetter:
    """What goes into one Digital Post letter about the survey."""

    sender: MemoSender
    recipient: MemoRecipient
    title: str
    """`label` in the header: the subject line in the citizen's mailbox."""
    notification: str
    """Short text for the mailbox's push notification (at most 160 chars)."""
    pdf: bytes = field(repr=False)
    survey_url: str = field(repr=False)
    pdf_filename: str = "Spørgeskema om jobcentret.pdf"
    action_label: str = "Besvar spørgeskemaet"
    action_end: datetime | None = None
    """When the survey link stops being useful (shown by some mailbox apps)."""
    message_id: str | None = None
    """Our own reference for support look-ups; must not contain personal data."""


@dataclass(frozen=True, slots=True)
class MemoMessage:
    message_uuid: str
    xml: bytes = field(repr=False)


def format_memo_datetime(value: datetime) -> str:
    """MeMo dateTimes are UTC and end in `Z` (dt:memoDateTimeType)."""
    if value.tzinfo is None:
        # Guessing the zone of a naive datetime would shift deadlines by hours.
        raise ValueError("MeMo dateTimes need a timezone-aware datetime")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def memo_schema() -> xmlschema.XMLSchema10:
    """The MeMo 1.2 schema, loaded once per process (loading it is slow).

    `allow="local"` keeps schema imports on disk: the relative imports of the
    copied XSDs resolve, nothing is fetched."""
    return xmlschema.XMLSchema10(str(MEMO_CORE_XSD), allow="local")


def validate_memo(xml: bytes | etree._Element) -> None:
    """Raise MemoValidationError unless `xml` is a valid MeMo 1.2 message."""
    if isinstance(xml, (bytes, bytearray)):
        try:
            element = etree.fromstring(bytes(xml), parser=_SAFE_PARSER)
        except etree.XMLSyntaxError as exc:
            raise MemoValidationError(f"not well-formed XML: {exc.msg}") from None
    else:
        element = xml
    if element.tag != _M + "Message":
        raise MemoValidationError(f"root element is {element.tag!r}, not memo:Message")
    error = next(memo_schema().iter_errors(element), None)
    if error is not None:
        raise MemoValidationError(error.reason or "schema violation", error.path)


def build_letter_message(
    letter: SurveyLetter,
    *,
    message_uuid: uuid.UUID | None = None,
    created: datetime | None = None,
    validate: bool = True,
) -> MemoMessage:
    """Build the MeMo message for a survey letter.

    Pass `message_uuid` when re-building a message that may already have been
    handed to SF1601 (a retry): Digital Post treats the messageUUID as the
    message's identity. Validation is cheap enough to run on every
    message; `validate=False` exists for benchmarks and for
    re-building a message already validated once. The length checks always run.
    """
    _check_letter(letter)
    msg_uuid = _new_uuid(message_uuid)
    root, content = _letter_tree(letter, msg_uuid, format_memo_datetime(created or datetime.now(timezone.utc)))

    if validate:
        validate_memo(root)
    # Checking xs:base64Binary over ~60 KB of PDF is half of xmlschema's time
    # per letter, and b64encode's output conforms by construction, so the
    # content goes in after the structure has been validated.
    content.text = base64.b64encode(letter.pdf).decode("ascii")
    return _serialize(root, msg_uuid)


def _check_letter(letter: SurveyLetter) -> None:
    _check_len("title", letter.title, TEXT_MAX)
    _check_len("notification", letter.notification, NOTIFICATION_MAX)
    _check_len("survey URL", letter.survey_url, TEXT_MAX)
    _check_len("PDF file name", letter.pdf_filename, TEXT_MAX)
    _check_len("action label", letter.action_label, TEXT_MAX)
    if not letter.pdf.startswith(b"%PDF-"):
        raise ValueError("the letter must be a PDF document")
    if not (letter.survey_url.startswith("https://") or _LOOPBACK_HTTP.match(letter.survey_url)):
        # Plain http only for a survey running on this machine (make up, the e2e test).
        raise ValueError("the survey link must be an https URL")


def _letter_tree(letter: SurveyLetter, msg_uuid: str, created: str) -> tuple[etree._Element, etree._Element]:
    """The letter's element tree, with an empty `content` element (returned) for the PDF."""
    root = _message_with_header("DIGITALPOST", msg_uuid, letter.message_id, letter.title,
                                letter.notification, letter.sender, letter.recipient)
    body = _sub(root, "MessageBody")
    _sub(body, "createdDateTime", created)
    main = _sub(body, "MainDocument")
    _sub(main, "label", letter.title)
    file_ = _sub(main, "File")
    _sub(file_, "encodingFormat", "application/pdf")
    _sub(file_, "filename", letter.pdf_filename)
    _sub(file_, "language", "da")
    content = _sub(file_, "content", "")
    action = _sub(main, "Action")
    _sub(action, "label", letter.action_label)
    _sub(action, "actionCode", ACTION_SELF_SERVICE)
    if letter.action_end is not None:
        _sub(action, "endDateTime", format_memo_datetime(letter.action_end))
    _sub(_sub(action, "EntryPoint"), "url", letter.survey_url)
    return root, content


# --- letters at volume -------------------------------------------------------------------------
#
# A national wave builds 200,000 letters that differ only in a handful of values. The element
# tree of one letter "shape" (sender, title, notification, file name, whether the recipient has a
# name and the action an end) is built once by `_letter_tree` itself, with marker texts in the
# per-letter elements, and serialised; a letter is then the serialisation's fixed segments with
# the letter's values, escaped exactly as lxml escapes text, in between. The output is byte for
# byte what `build_letter_message` produces (a unit test holds them together), and the first
# message of every shape per process is validated against the XSD in full.

_SLOT = re.compile(rb"@@SLOT(\d)@@")
_SLOTS = ("uuid", "message_id", "cpr", "name", "created", "content", "end", "url")


def _xml_text(value: str) -> str:
    """Element text as lxml serialises it (`&`, `<`, `>` and CR escaped; the rest verbatim)."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    return value


_XML_TEXT_OK = re.compile(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]*")


@functools.lru_cache(maxsize=4096)
def _letter_shape(sender: MemoSender, title: str, notification: str, pdf_filename: str, action_label: str,
                  has_message_id: bool, has_name: bool, has_end: bool) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
    marker = {name: f"@@SLOT{i}@@" for i, name in enumerate(_SLOTS)}
    dummy = SurveyLetter(
        sender=sender, recipient=MemoRecipient("0000000000", "x" if has_name else None), title=title,
        notification=notification, pdf=b"%PDF-", survey_url="https://x/", pdf_filename=pdf_filename,
        action_label=action_label, action_end=datetime(2000, 1, 1, tzinfo=timezone.utc) if has_end else None,
        message_id="x" if has_message_id else None,
    )
    root, content = _letter_tree(dummy, marker["uuid"], marker["created"])
    content.text = marker["content"]
    header = root.find(_M + "MessageHeader")
    for path, slot in (("messageID", "message_id"), ("Recipient/" + _M + "recipientID", "cpr"),
                       ("Recipient/" + _M + "label", "name")):
        element = header.find(_M + path)
        if element is not None:
            element.text = marker[slot]
    action = root.find(f"{_M}MessageBody/{_M}MainDocument/{_M}Action")
    if has_end:
        action.find(_M + "endDateTime").text = marker["end"]
    action.find(f"{_M}EntryPoint/{_M}url").text = marker["url"]
    parts = _SLOT.split(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return tuple(parts[0::2]), tuple(int(i) for i in parts[1::2])


def build_letter_message_fast(letter: SurveyLetter, *, pdf_base64: bytes, message_uuid: uuid.UUID,
                              created: datetime, validate: bool = False) -> MemoMessage:
    """`build_letter_message` for a wave: same bytes, a few microseconds per letter.

    `pdf_base64` is `letter.pdf` in base64 (the caller may have it for free, see
    `letter_cache.render_letter_fast_b64`). With `validate` the whole message, content
    included, is parsed and validated against the XSD."""
    _check_letter(letter)
    if letter.message_id is not None:
        _check_len("message id", letter.message_id, TEXT_MAX)
    name = letter.recipient.name or None
    for value in (letter.survey_url, name or "", letter.message_id or ""):
        if not _XML_TEXT_OK.fullmatch(value):
            raise ValueError("a value holds characters XML cannot carry")
    msg_uuid = _new_uuid(message_uuid)
    segments, slots = _letter_shape(letter.sender, letter.title, letter.notification, letter.pdf_filename,
                                    letter.action_label, letter.message_id is not None, name is not None,
                                    letter.action_end is not None)
    values = {
        0: msg_uuid.encode(),
        1: _xml_text(letter.message_id).encode() if letter.message_id is not None else b"",
        2: letter.recipient.cpr.encode(),
        3: _xml_text(name).encode() if name is not None else b"",
        4: format_memo_datetime(created).encode(),
        5: pdf_base64,
        6: format_memo_datetime(letter.action_end).encode() if letter.action_end is not None else b"",
        7: _xml_text(letter.survey_url).encode(),
    }
    out = [segments[0]]
    for slot, segment in zip(slots, segments[1:], strict=True):
        out.append(values[slot])
        out.append(segment)
    xml = b"".join(out)
    if validate:
        _validate_letter_bytes(xml, pdf_base64)
    return MemoMessage(message_uuid=msg_uuid, xml=xml)


def _validate_letter_bytes(xml: bytes, pdf_base64: bytes) -> None:
    """Validate a serialised letter: the document against the XSD with `content` emptied (the
    xs:base64Binary check over ~70 KB is most of xmlschema's time), and the content itself as
    strict base64 that is exactly `pdf_base64`."""
    try:
        element = etree.fromstring(xml, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise MemoValidationError(f"not well-formed XML: {exc.msg}") from None
    content = element.find(f"{_M}MessageBody/{_M}MainDocument/{_M}File/{_M}content")
    if content is None or (content.text or "").encode() != pdf_base64:
        raise MemoValidationError("the file content is not the letter's PDF")
    try:
        base64.b64decode(pdf_base64, validate=True)
    except ValueError:
        raise MemoValidationError("the file content is not base64") from None
    content.text = ""
    validate_memo(element)


def build_nemsms_message(
    sender: MemoSender,
    recipient: MemoRecipient,
    *,
    label: str,
    text: str,
    message_id: str | None = None,
    message_uuid: uuid.UUID | None = None,
    validate: bool = True,
) -> MemoMessage:
    """Build a NemSMS message (sent through SF1601 with KombiValgKode NemSMS).

    NemSMS carries no documents: the SMS text is the header's notification,
    which caps it at 160 characters."""
    _check_len("label", label, TEXT_MAX)
    _check_len("SMS text", text, NOTIFICATION_MAX)
    msg_uuid = _new_uuid(message_uuid)
    root = _message_with_header("NEMSMS", msg_uuid, message_id, label, text, sender, recipient)
    if validate:
        validate_memo(root)
    return _serialize(root, msg_uuid)


def _message_with_header(
    message_type: str,
    msg_uuid: str,
    message_id: str | None,
    label: str,
    notification: str,
    sender: MemoSender,
    recipient: MemoRecipient,
) -> etree._Element:
    if message_id is not None:
        _check_len("message id", message_id, TEXT_MAX)
    root = etree.Element(_M + "Message", nsmap={"memo": MEMO_NS})
    root.set("memoVersion", MEMO_VERSION)
    header = _sub(root, "MessageHeader")
    # Element order is fixed by the schema's xs:sequence.
    _sub(header, "messageType", message_type)
    _sub(header, "messageUUID", msg_uuid)
    if message_id is not None:
        _sub(header, "messageID", message_id)
    _sub(header, "label", label)
    _sub(header, "notification", notification)
    # An invitation to a voluntary survey: no reply via Digital Post, not
    # mandatory reading, no legal effect. Stated explicitly rather than left
    # to schema defaults so every mailbox provider reads the same thing.
    _sub(header, "reply", "false")
    _sub(header, "mandatory", "false")
    _sub(header, "legalNotification", "false")
    snd = _sub(header, "Sender")
    _sub(snd, "senderID", sender.sender_id)
    _sub(snd, "idType", sender.id_type)
    _sub(snd, "label", sender.label)
    rcp = _sub(header, "Recipient")
    _sub(rcp, "recipientID", recipient.cpr)
    _sub(rcp, "idType", "CPR")
    if recipient.name:
        _sub(rcp, "label", recipient.name)
    return root


def _serialize(root: etree._Element, msg_uuid: str) -> MemoMessage:
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return MemoMessage(message_uuid=msg_uuid, xml=xml)


def _new_uuid(given: uuid.UUID | None) -> str:
    value = given or uuid.uuid4()
    if value.version != 4:
        # dt:memoUuidType only admits version-4 UUIDs.
        raise ValueError("messageUUID must be a version 4 UUID")
    return str(value)


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _M + tag)
    if text is not None:
        element.text = text
    return element


def _check_len(what: str, value: str, limit: int) -> None:
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters; MeMo allows {limit}")
