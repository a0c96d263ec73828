"""A tiny WebM video built in Python, for tests that play a video in a browser.

Every frame is a VP8 key frame whose bits are all zero (RFC 6386). A VP8
boolean decoder reads an all-zero stream as a run of 0 decisions whatever
the probabilities, and here every header field and every mode and token
whose first branch is 0 means "nothing": no segmentation, no loop filter,
quantizer index 0, no coefficient updates, B_PRED with B_DC_PRED in every
sub-block, DC_PRED for chroma, and an end-of-block token first in every
block. So the frame decodes to plain mid-grey without any probability
table in this file. The frames go into a Matroska (WebM) container with
one cluster per second and a cue per cluster, so browsers can seek.
"""

import struct

# Zero bytes given to each partition. A zero decision costs at most 8 bits,
# so these cover the frame header, 1,056 coefficient update flags and 18
# mode decisions per macroblock for up to 80 macroblocks (640 x 128 pixels),
# and the 24 end-of-block tokens of each macroblock.
FIRST_PARTITION_BYTES = 3072
TOKEN_PARTITION_BYTES = 2048
MAX_MACROBLOCKS = 80


def vp8_grey_key_frame(width: int, height: int) -> bytes:
    """Return one VP8 key frame of the given size that decodes to plain grey."""
    macroblocks = ((width + 15) // 16) * ((height + 15) // 16)
    if macroblocks > MAX_MACROBLOCKS:
        raise ValueError(
            f"{width}x{height} has {macroblocks} macroblocks; use at most "
            f"{MAX_MACROBLOCKS}, or raise the partition sizes"
        )
    # Frame tag: bit 0 is 0 for a key frame, bits 1-3 the version (0),
    # bit 4 shows the frame, bits 5-23 give the first partition's size.
    tag = (1 << 4) | (FIRST_PARTITION_BYTES << 5)
    header = tag.to_bytes(3, "little") + b"\x9d\x01\x2a"
    # Width and height are 14 bits each, with a 2-bit scale (0) above them.
    header += width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return header + bytes(FIRST_PARTITION_BYTES) + bytes(TOKEN_PARTITION_BYTES)


def _id(element_id: int) -> bytes:
    # Matroska element ids carry their own length marker in the first byte.
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")


def _element(element_id: int, payload: bytes) -> bytes:
    # Every size is written as an 8-byte variable-length integer: a leading
    # 0x01 byte marks the length, and the value fills the other 7 bytes.
    return _id(element_id) + ((1 << 56) | len(payload)).to_bytes(8, "big") + payload


def _uint(element_id: int, value: int, width: int = 0) -> bytes:
    size = width or max(1, (value.bit_length() + 7) // 8)
    return _element(element_id, value.to_bytes(size, "big"))


def _text(element_id: int, value: str) -> bytes:
    return _element(element_id, value.encode())


def _cues(cluster_offsets: list[int]) -> bytes:
    points = b"".join(
        _element(
            0xBB,  # CuePoint
            _uint(0xB3, second * 1000, 8)  # CueTime, in milliseconds
            + _element(
                0xB7,  # CueTrackPositions
                _uint(0xF7, 1) + _uint(0xF1, offset, 8),  # CueTrack, position
            ),
        )
        for second, offset in enumerate(cluster_offsets)
    )
    return _element(0x1C53BB6B, points)


def grey_webm(
    seconds: int = 8, frames_per_second: int = 5, width: int = 64, height: int = 48
) -> bytes:
    """Return a WebM file of a grey VP8 video that lasts the given whole seconds."""
    frame = vp8_grey_key_frame(width, height)
    frame_ms = 1000 // frames_per_second

    header = (
        _element(0x4286, b"\x01")  # EBMLVersion
        + _element(0x42F7, b"\x01")  # EBMLReadVersion
        + _element(0x42F2, b"\x04")  # EBMLMaxIDLength
        + _element(0x42F3, b"\x08")  # EBMLMaxSizeLength
        + _text(0x4282, "webm")  # DocType
        + _element(0x4287, b"\x02")  # DocTypeVersion
        + _element(0x4285, b"\x02")  # DocTypeReadVersion
    )
    info = _element(
        0x1549A966,
        _uint(0x2AD7B1, 1_000_000)  # TimecodeScale: timestamps in milliseconds
        + _element(0x4489, struct.pack(">d", seconds * 1000.0))  # Duration
        + _text(0x4D80, "nudgepath tests")  # MuxingApp
        + _text(0x5741, "nudgepath tests"),  # WritingApp
    )
    tracks = _element(
        0x1654AE6B,
        _element(
            0xAE,  # TrackEntry
            _uint(0xD7, 1)  # TrackNumber
            + _uint(0x73C5, 1)  # TrackUID
            + _uint(0x83, 1)  # TrackType: video
            + _text(0x86, "V_VP8")  # CodecID
            + _element(0xE0, _uint(0xB0, width) + _uint(0xBA, height)),
        ),
    )

    clusters = []
    for second in range(seconds):
        blocks = b"".join(
            # SimpleBlock: track 1, the time relative to the cluster, key frame.
            _element(0xA3, b"\x81" + struct.pack(">hB", index * frame_ms, 0x80) + frame)
            for index in range(frames_per_second)
        )
        clusters.append(_element(0x1F43B675, _uint(0xE7, second * 1000) + blocks))

    # Cue positions count from the start of the segment's content. The cues
    # use fixed-width numbers, so their length does not depend on the values.
    before_clusters = len(info) + len(tracks) + len(_cues([0] * seconds))
    offsets = []
    position = before_clusters
    for cluster in clusters:
        offsets.append(position)
        position += len(cluster)
    segment = info + tracks + _cues(offsets) + b"".join(clusters)
    return _element(0x1A45DFA3, header) + _element(0x18538067, segment)
