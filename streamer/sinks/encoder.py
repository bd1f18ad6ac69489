"""Video encoders: which one a container gets, what to suggest when one is missing, and quality/speed
options in each encoder's own terms (crf 18 / preset medium mean what they mean to x264)."""

from __future__ import annotations

import logging

import av

from engines.errors import OutputError

log = logging.getLogger(__name__)

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
DEFAULT_CODEC = "libx264"
CONTAINER_CODEC = {"webm": "libvpx-vp9"}  # where H.264 cannot go
# Encoders worth suggesting, by preference; only those present and fitting the container are listed.
KNOWN_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "h264_nvenc", "hevc_nvenc", "av1_nvenc",
                  "h264_qsv", "h264_videotoolbox", "mpeg4")
VPX_SPEED = {"ultrafast": 8, "superfast": 7, "veryfast": 6, "faster": 5, "fast": 4, "medium": 2, "slow": 1,
             "slower": 0, "veryslow": 0}
SVT_PRESET = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8, "medium": 6,
              "slow": 4, "slower": 3, "veryslow": 2}
NVENC_PRESET = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p3", "fast": "p4",
                "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7"}


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """Quality/speed options in each encoder's own terms (crf 18 / preset medium = x264's meaning)."""
    if codec in ("libx264", "libx265"):
        if crf > 51:
            log.warning("%s: crf %d is above the maximum 51; using 51", codec, crf)
        opts = {"crf": str(min(crf, 51)), "preset": preset}
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        return opts
    if codec in ("libvpx-vp9", "libvpx"):
        return {"crf": str(crf), "b": "0", "row-mt": "1", "deadline": "good",
                "cpu-used": str(VPX_SPEED.get(preset, 2))}
    if codec.endswith("_nvenc"):
        return {"rc": "vbr", "cq": str(min(crf, 51)), "preset": NVENC_PRESET.get(preset, preset)}
    if codec == "libsvtav1":
        return {"crf": str(crf), "preset": str(SVT_PRESET.get(preset, 6))}
    return {}


def available_encoder(name: str) -> av.codec.Codec | None:
    try:
        codec = av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return None
    return codec if codec.type == "video" else None


def needs_even(pix_fmt: str) -> bool:
    return any(tag in pix_fmt for tag in ("420", "422", "411", "nv12", "nv21", "p010"))


def choose_codec(codec: str | None, fmt: str, suffix: str, out: av.container.OutputContainer) -> str:
    """The encoder to use: `codec`, or the container's default (libx264; libvpx-vp9 where H.264 cannot go).
    OutputError, naming the encoders that would fit, if it is missing or the container cannot hold it."""
    wanted = codec or CONTAINER_CODEC.get(fmt, DEFAULT_CODEC)
    enc = available_encoder(wanted)
    if enc is None:
        raise OutputError(f"The video encoder '{wanted}' is not available in this PyAV build; "
                          f"{alternatives(out, exclude=wanted)}")
    if enc.name not in out.supported_codecs and enc.canonical_name not in out.supported_codecs:
        fallback = CONTAINER_CODEC.get(fmt)
        if wanted == DEFAULT_CODEC and fallback:  # the project-wide default, with a .webm name
            log.info("%s cannot hold H.264; encoding %s", suffix, fallback)
            return fallback
        raise OutputError(f"A {suffix} file cannot hold {wanted} video; "
                          f"{alternatives(out, exclude=wanted)}")
    return enc.name


def alternatives(out: av.container.OutputContainer, exclude: str) -> str:
    """What to suggest instead of `exclude`: the known encoders present here that fit the container."""
    fits = []
    for name in KNOWN_ENCODERS:
        enc = available_encoder(name)
        if name != exclude and enc is not None and (enc.canonical_name in out.supported_codecs):
            fits.append(name)
    if not fits:
        return "no other known encoder fits this container here"
    return f"use one of: {', '.join(fits)} (--codec, or video.codec in the config)"
