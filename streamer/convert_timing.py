"""`stylestream bench`'s end-to-end `convert` timing: each engine on a generated clip with audio."""

from __future__ import annotations

from pathlib import Path

from streamer.config import StreamConfig
from streamer.convert import convert_one
from streamer.stylize import NamedStyle


def convert_timing_hook(clip_size: str, seconds: float, folder: Path, presets: tuple[str, ...] = ("medium",),
                        breakdown: bool = True):
    """A run_bench hook: end-to-end `convert` fps of each engine on a generated clip with audio (the demo clip).

    Same loop, sink and defaults as `stylestream convert` (smoothing on, libx264), at the clip's own size;
    one run per encoder preset, then (`breakdown`) one more with the default preset and stage timing on
    (streamer.timing: decode, upload, network, smoothing, download, encode in ms per frame).
    """
    from engines.bench import parse_resolutions, random_style
    from streamer.democlip import render_frame, write_demo_clip

    ((h, w),) = parse_resolutions(clip_size)
    h, w = h // 2 * 2, w // 2 * 2  # H.264 in yuv420p needs even sides
    clip = write_demo_clip(folder / f"clip-{w}x{h}.mp4", seconds=seconds, width=w, height=h)
    style = random_style()

    def run(engine, name: str, preset: str, timings: bool) -> dict:
        cfg = StreamConfig(size=0, video={"overwrite": True, "preset": preset})
        out = folder / f"out-{engine.model}-{name}.mp4"
        result = convert_one(cfg, engine, [NamedStyle("random", style)], clip, out, timings=timings)
        return {"clip": f"{w}x{h}", "frames": result.frames_out, "seconds": round(result.seconds, 2),
                "fps": round(result.fps, 2), "preset": preset, "audio": True,
                "smoothing": cfg.temporal.mechanism if cfg.temporal.enabled else "off",
                **({"stages": result.stages} if result.stages else {})}

    def hook(engine, name: str) -> dict:
        # Smoothing runs the split graph (encode, decode), which a backend may build on first use: not timed.
        feat, mean, std = engine.encode(engine.upload([render_frame(0.0, w, h)]))
        engine.decode(feat, mean, std, style, 1.0, (h, w))
        runs = [run(engine, name, p, timings=False) for p in presets]
        extra = {"convert": runs[0]}
        if len(runs) > 1:
            extra["convert_presets"] = runs
        if breakdown:
            extra["convert_stages"] = run(engine, name, presets[0], timings=True)
        return extra

    return hook
