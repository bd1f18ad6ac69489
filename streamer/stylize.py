"""The stylize step: input frames in, stylized frames out, whatever the device and smoothing mechanism.

The one place where the network and the temporal smoother meet; the stream loop (streamer.loop) and
the benchmarks (benchmarks/flicker.py) both call it. For a batch of consecutive BGR uint8 frames:

    upload (one transfer) -> resize on the device -> network -> [preserve colour] -> flow blending -> download
    -> [edge-aware upscale to the output size, when the network ran smaller: streamer.working_size]

With smoothing, the network runs in its two halves (engine.encode, engine.decode) when the statistics
EMA is on, and the smoother's CPU work is done while the device computes: thumbnails and cuts after the
encoder is queued, the flow after the decoder is queued. Flow blending runs where the stylized frames
are: on a GPU before the download (on the device), on a CPU after it (OpenCV on uint8 images).

`start` does everything up to that host blending and `finish` the blending, so that the stream loop can
run a batch's blending on one thread while the next batch's network runs on another; calling the step
does both in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engines.adain import StyleCode, preserve_color
from engines.backends.base import Engine
from engines.errors import InputError, OutOfMemory
from engines.images import MAX_ASPECT, MIN_SIDE
from engines.machine import keep_freed_buffers
from streamer.temporal import TemporalSmoother
from streamer.temporal.smoother import Seen
from streamer.timing import StageTimes, stage
from streamer.upscale import guided_upscale

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """A batch between StylizeStep.start and StylizeStep.finish."""

    frames: list[np.ndarray]         # the input frames
    images: list[np.ndarray]         # the network's outputs (BGR uint8); smoothed already where `seen` is None
    seen: list[Seen] | None          # the smoother's records for the blending still to do
    smoother: TemporalSmoother | None


@dataclass
class NamedStyle:
    name: str
    code: StyleCode


def is_out_of_memory(e: BaseException) -> bool:
    """A device (CUDA) or host allocator that could not allocate: worth retrying with fewer frames."""
    text = str(e)
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def output_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) the network works at: shorter side `size` if the input is larger, never under the network's
    MIN_SIDE (tiny videos are scaled up), even numbers. InputError for an extreme aspect ratio."""
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputError(f"The video is {width}x{height}, more than {MAX_ASPECT} times longer than it is wide; "
                         f"crop it to a less extreme shape")
    k = min(1.0, size / min(width, height)) if size else 1.0
    k = max(k, MIN_SIDE / min(width, height))
    return max(2, round(width * k / 2) * 2), max(2, round(height * k / 2) * 2)


class StylizeStep:
    """`step(frames, style, alpha)` -> the stylized frames (BGR uint8, `out_size` or the input size).

    Called from one thread (the loop's main thread), one batch at a time, frames in stream order.
    `smoother` None (or disabled) stylizes each frame on its own.
    """

    def __init__(self, engine: Engine, smoother: TemporalSmoother | None = None,
                 out_size: tuple[int, int] | None = None, preserve_color: bool = False):
        self.engine = engine
        self.smoother = smoother
        self.out_size = out_size  # (width, height) of the result; None: as the frames come
        self.work_size: tuple[int, int] | None = None  # the network's, when lower (live: streamer.working_size)
        self.preserve_color = preserve_color
        self.max_chunk: int | None = None  # frames per network call after running out of memory; None: all
        self.times: StageTimes | None = None  # set to time upload, network, smoothing, download
        keep_freed_buffers()  # every frame allocates the same frame-sized temporaries again
        if smoother is not None:
            smoother.settle(engine.device.type)

    @property
    def smoothing(self) -> bool:
        return self.smoother is not None and self.smoother.enabled

    @property
    def smooths_on_host(self) -> bool:
        """Whether finish() may have work: flow blending on the CPU, after the download (also while the
        smoothing is switched off for now). The stream loop then runs it on a thread of its own, beside
        the network's next batch."""
        return self.smoother is not None and self.engine.device.type != "cuda"

    def __call__(self, frames: Sequence[np.ndarray], style: StyleCode, alpha: float,
                 resets: Sequence[bool] | None = None, before_flow: list | None = None) -> list[np.ndarray]:
        """Stylize a batch of consecutive frames (same size). `resets[i]` restarts the smoothing at frame
        i (temporal.needs_reset(frame.meta)). `before_flow`, if a list, gets the frames as they were
        before flow blending (the benchmarks compare the two)."""
        return self.finish(self.start(frames, style, alpha, resets, before_flow))

    def start(self, frames: Sequence[np.ndarray], style: StyleCode, alpha: float,
              resets: Sequence[bool] | None = None, before_flow: list | None = None) -> Pending:
        """Everything up to the flow blending on the host: upload, network (in its halves around the
        statistics EMA), download. On a GPU the blending is done here too, before the download."""
        engine, smoother, t = self.engine, self.smoother if self.smoothing else None, self.times
        with stage(t, "upload"):
            x = self._upload(frames)
        seen = None
        if smoother is not None and smoother.uses_stats:
            with stage(t, "network"):  # queued on a GPU: the CPU work below overlaps it
                feat, mean, std = self._chunked(engine.encode, x)
            with stage(t, "smoothing"):
                seen = smoother.see(frames, resets, x.device)
                mean, std = smoother.smooth_stats(mean, std, seen)
            hw = tuple(x.shape[-2:])
            with stage(t, "network"):
                y = self._chunked(lambda f, m, s: engine.decode(f, m, s, style, alpha, hw), feat, mean, std)
        else:
            with stage(t, "network"):
                y = self._chunked(lambda b: engine.stylize(b, style, alpha), x)
            if smoother is not None:
                with stage(t, "smoothing"):
                    seen = smoother.see(frames, resets, x.device)
        if self.preserve_color:
            y = preserve_color(y.float(), x.float())
        if smoother is not None and y.device.type == "cuda":
            with stage(t, "smoothing"):  # the flow while the device runs the decoder, then warp there
                smoother.estimate_flow(seen, x.device)
                if before_flow is not None:
                    before_flow += engine.download(y)
                y = torch.stack([smoother.smooth(f, yi, si) for f, yi, si in zip(frames, y, seen, strict=True)])
            with stage(t, "download"):
                return Pending(list(frames), engine.download(y), None, smoother)
        with stage(t, "download"):
            images = engine.download(y)
        if before_flow is not None:
            before_flow += [im.copy() for im in images]
        return Pending(list(frames), images, seen, smoother)

    def finish(self, pending: Pending) -> list[np.ndarray]:
        """The host work after the network: the flow blending on a CPU (the batch's flow, then each frame
        in order), then the upscale to `out_size` where the network ran at a smaller `work_size`.
        Batches are finished in the order they were started, on one thread."""
        smoother, seen = pending.smoother, pending.seen
        images = pending.images
        if smoother is not None and seen is not None:
            with stage(self.times, "blend"):
                smoother.estimate_flow(seen)
                images = [smoother.smooth(f, im, si) for f, im, si in zip(pending.frames, images, seen, strict=True)]
        return self._to_out_size(pending.frames, images)

    def _to_out_size(self, frames: list[np.ndarray], images: list[np.ndarray]) -> list[np.ndarray]:
        """Images the network made below the output size, upscaled along the input frame's edges."""
        if self.out_size is None or not images or images[0].shape[1::-1] == self.out_size:
            return images
        with stage(self.times, "upscale"):
            return [guided_upscale(im, f, self.out_size) for im, f in zip(images, frames, strict=True)]

    def _chunked(self, fn, *batched: torch.Tensor):
        """fn(*batched), in chunks of at most `max_chunk` frames; out of device memory, the chunk is halved
        and tried again (network calls have no state, so retrying one is safe), down to one frame, then one
        OutOfMemory error that says what to lower. The size that worked is kept for the next batches."""
        n = batched[0].shape[0]
        while True:
            chunk = min(n, self.max_chunk or n)
            try:
                # the whole batch as it is when it fits one chunk (no slicing: the same tensors go in)
                parts = [fn(*batched)] if chunk >= n else [fn(*(t[i:i + chunk] for t in batched))
                                                           for i in range(0, n, chunk)]
                break
            except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
                if not is_out_of_memory(e):
                    raise
                del e  # its traceback holds the failed call's tensors
                if batched[0].device.type == "cuda":
                    torch.cuda.empty_cache()
                if chunk == 1:
                    h, w = batched[0].shape[-2:] if batched[0].ndim == 4 else (0, 0)
                    raise OutOfMemory(
                        f"{batched[0].device} ran out of memory on a single frame"
                        f"{f' of {w}x{h} (network input)' if h else ''}: lower --size, use --model lite, or free "
                        f"memory on it (other programs)") from None
                self.max_chunk = chunk // 2
                log.warning("%s ran out of memory at %d frames per call; going on with %d (pass --batch %d to "
                            "start there)", batched[0].device, chunk, self.max_chunk, self.max_chunk)
        if len(parts) == 1:
            return parts[0]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(p) for p in zip(*parts, strict=True))
        return torch.cat(parts)

    def _upload(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """One upload of the batch, then the resize to the network's size on the device."""
        x = self.engine.upload(list(frames))
        size = self.work_size or self.out_size
        if size is not None and x.shape[-2:] != (size[1], size[0]):
            w, h = size
            x = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False,
                              antialias=True).clamp_(0, 1).to(x.dtype)
        return x
