"""Which files each lesson kind accepts, checked by name, content and size.

The browser's Content-Type of an upload is whatever the uploader's machine
says, so it is ignored: a file is accepted when its extension is on the
kind's list and its first bytes match that extension's format.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO

from django.core.exceptions import ValidationError

from courses.models import LessonKind

MEGABYTE = 1024 * 1024

# Bytes read from the start of a file to recognise its format.
SNIFF_BYTES = 4096


def _is_mp4(head: bytes) -> bool:
    # An ISO base media file starts with a box whose type, at offset 4, is ftyp.
    return head[4:8] == b"ftyp"


def _is_webm(head: bytes) -> bool:
    # WebM is Matroska: an EBML header, then the doc type "webm".
    return head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]


def _is_pdf(head: bytes) -> bool:
    return head.startswith(b"%PDF-")


def _is_zip(head: bytes) -> bool:
    # Office documents (docx, xlsx, pptx) are zip archives too.
    return head.startswith(b"PK\x03\x04")


def _is_png(head: bytes) -> bool:
    return head.startswith(b"\x89PNG\r\n\x1a\n")


def _is_jpeg(head: bytes) -> bool:
    return head.startswith(b"\xff\xd8\xff")


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        # The last character may be cut in half at SNIFF_BYTES.
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3
    return True


@dataclass(frozen=True)
class FileType:
    content_type: str
    matches: Callable[[bytes], bool]
    # The name of the format in messages.
    label: str


FILE_TYPES = {
    ".mp4": FileType("video/mp4", _is_mp4, "MP4 video"),
    ".webm": FileType("video/webm", _is_webm, "WebM video"),
    ".pdf": FileType("application/pdf", _is_pdf, "PDF"),
    ".zip": FileType("application/zip", _is_zip, "zip archive"),
    ".docx": FileType(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _is_zip,
        "Word document",
    ),
    ".xlsx": FileType(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _is_zip,
        "Excel workbook",
    ),
    ".pptx": FileType(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _is_zip,
        "PowerPoint presentation",
    ),
    ".csv": FileType("text/csv", _is_text, "CSV file"),
    ".txt": FileType("text/plain", _is_text, "text file"),
    ".png": FileType("image/png", _is_png, "PNG image"),
    ".jpg": FileType("image/jpeg", _is_jpeg, "JPEG image"),
    ".jpeg": FileType("image/jpeg", _is_jpeg, "JPEG image"),
}


@dataclass(frozen=True)
class KindFiles:
    extensions: tuple[str, ...]
    max_bytes: int


# The lesson kinds that carry a file, with the extensions and the largest
# size each accepts.
KIND_FILES = {
    LessonKind.VIDEO: KindFiles((".mp4", ".webm"), 500 * MEGABYTE),
    LessonKind.PDF: KindFiles((".pdf",), 50 * MEGABYTE),
    LessonKind.FILE: KindFiles(
        (
            ".pdf",
            ".zip",
            ".docx",
            ".xlsx",
            ".pptx",
            ".csv",
            ".txt",
            ".png",
            ".jpg",
            ".jpeg",
        ),
        100 * MEGABYTE,
    ),
}


def file_type_of(name: str) -> FileType | None:
    """Return the accepted type of a stored file by its extension, if any."""
    return FILE_TYPES.get(PurePath(name).suffix.lower())


def _kind_label(kind: str) -> str:
    return LessonKind(kind).label if kind in LessonKind.values else kind


def validate_lesson_file(kind: str, name: str, size: int, stream: IO[bytes]) -> None:
    """Raise ValidationError, with the reason and the fix, for a file the kind rejects.

    Checks, in order: that the kind takes a file, the extension, the size,
    and that the content starts like the extension's format. The stream is
    read from its start and rewound.
    """
    rules = KIND_FILES.get(LessonKind(kind)) if kind in LessonKind.values else None
    if rules is None:
        takes_files = ", ".join(_kind_label(k) for k in KIND_FILES)
        raise ValidationError(
            f"{_kind_label(kind)} lessons take no file. Remove “{name}”, or "
            f"change the kind to one that takes a file: {takes_files}.",
            code="kind_takes_no_file",
        )

    extension = PurePath(name).suffix.lower()
    accepted = ", ".join(rules.extensions)
    if extension not in rules.extensions:
        raise ValidationError(
            f"“{name}” is not an accepted file for a {_kind_label(kind)} lesson: "
            f"the extension {extension or '(none)'} is not one of {accepted}. "
            "Convert the file to one of these types and upload it again.",
            code="file_extension",
        )

    if size > rules.max_bytes:
        raise ValidationError(
            f"“{name}” is {size / MEGABYTE:.1f} MB, over the limit of "
            f"{rules.max_bytes // MEGABYTE} MB for a {_kind_label(kind)} lesson. "
            "Upload a smaller or compressed file.",
            code="file_too_large",
        )

    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    file_type = FILE_TYPES[extension]
    if not file_type.matches(head):
        raise ValidationError(
            f"“{name}” is named {extension} but its content is not a "
            f"{file_type.label}. Export the file again as a {file_type.label} "
            "and upload that.",
            code="file_content",
        )
