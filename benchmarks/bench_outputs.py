"""Benchmark of what a run writes besides the masks: the overlay video in each codec, and `preview.jpg`.

A synthetic video (`glus_cli.testing.videos`) is decoded and tinted once; then each overlay codec
(`glus_cli.overlay.OVERLAY_CODECS`: H.264, VP9, mp4v) encodes the same tinted frames, and a preview sheet
is rendered and written from the same masks. Printed per codec: encode seconds, frames per second, file
size, PSNR of the decoded overlay against the tinted frames; then the preview's seconds and size.

    .venv/bin/python benchmarks/bench_outputs.py                          # 48 frames at 540x960
    .venv/bin/python benchmarks/bench_outputs.py --frames 120 --size 1080x1920
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from glus_cli.outputs import overlay_mask
from glus_cli.overlay import OVERLAY_CODECS, encode_video, overlay_timing
from glus_cli.preview import PreviewSheet
from glus_cli.protocol import FrameResult
from glus_cli.testing.videos import synthetic_mask, write_synthetic_video
from glus_cli.video import open_video


def main() -> None:
    """Parse the options, run the benchmark, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="540x960", help="HxW of the synthetic video (even numbers)")
    args = parser.parse_args()
    height, width = (int(side) for side in args.size.split("x"))
    with tempfile.TemporaryDirectory() as work:
        source = write_synthetic_video(Path(work) / "clip.mp4", args.frames, (height, width), fps=25.0)
        with open_video(source) as video:
            started = time.perf_counter()
            masks = [synthetic_mask(index, video.frame_size) for index in range(video.num_frames)]
            frames = video.iter_frames(range(video.num_frames))
            tinted = [overlay_mask(frame, masks[index]) for index, frame in frames]
            elapsed = time.perf_counter() - started
            print(f"{args.frames} frames at {width}x{height}: decoded and tinted in {elapsed:.2f} s")
            print(f"{'codec':<22} {'seconds':>8} {'fps':>7} {'MiB':>7} {'PSNR dB':>8}")
            for codec in OVERLAY_CODECS:
                path = Path(work) / codec.filename
                started = time.perf_counter()
                encode_video(path, tinted, codec, overlay_timing(video), video.frame_size)
                seconds = time.perf_counter() - started
                psnr = _psnr(path, tinted)
                mib = path.stat().st_size / 2**20
                rate = args.frames / seconds
                print(f"{codec.label:<22} {seconds:>8.2f} {rate:>7.1f} {mib:>7.2f} {psnr:>8.1f}")
            sheet = PreviewSheet(video)
            for index, mask in enumerate(masks):
                sheet.add(FrameResult(0, index, index, "forward", mask, True, 0.9, 1.0))
            started = time.perf_counter()
            sheet.write(Path(work) / "preview.jpg")
            size_kib = (Path(work) / "preview.jpg").stat().st_size / 1024
            print(f"preview.jpg: {time.perf_counter() - started:.3f} s, {size_kib:.0f} KiB")


def _psnr(path: Path, reference: list[np.ndarray]) -> float:
    """Mean PSNR of the decoded video against `reference` (cropped to its size: padding is not counted)."""
    height, width = reference[0].shape[:2]
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24")[:height, :width] for frame in container.decode(video=0)]
    return float(np.mean([cv2.PSNR(ours, theirs) for ours, theirs in zip(decoded, reference, strict=True)]))


if __name__ == "__main__":
    main()
