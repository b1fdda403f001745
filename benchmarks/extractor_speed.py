"""Inference speed of the multimodal extractor (MNER + MRE) on this machine.

    python -m benchmarks.extractor_speed [--models var/models] [--posts 256]
Measures posts/s for batch 1 and 32, text only and with a 224 px image, each
configuration in its own process so its peak memory (max RSS) is its own.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from .common import mnre_posts, write_result


def one(models: str, batch: int, image: bool, n_posts: int, device: str) -> dict:
    import torch
    from PIL import Image, ImageDraw

    from extractors.base import ExtractionInput
    from extractors.multimodal import MultimodalExtractor

    torch.set_grad_enabled(False)
    img = None
    if image:
        img = Image.new("RGB", (320, 240), (30, 120, 200))
        ImageDraw.Draw(img).ellipse((60, 40, 220, 200), fill=(240, 200, 40))
    extractor = MultimodalExtractor(models, device=device, batch_size=batch)
    inputs = [ExtractionInput(p["id"], p["text"], img) for p in mnre_posts(n_posts, "test")]
    extractor.extract(inputs[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(inputs), batch):
        extractor.extract(inputs[i:i + batch])
    seconds = time.perf_counter() - start
    return {"posts_per_s": round(len(inputs) / seconds, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="var/models")
    parser.add_argument("--posts", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=2, metavar=("BATCH", "IMAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.models, int(args.one[0]), args.one[1] == "image", args.posts, args.device)))
        return
    metrics = {}
    for batch in (1, 32):
        for image in ("text", "image"):
            n = args.posts if batch > 1 else max(32, args.posts // 4)
            out = subprocess.run([sys.executable, "-m", "benchmarks.extractor_speed", "--models", args.models,
                                  "--posts", str(n), "--device", args.device, "--one", str(batch), image],
                                 capture_output=True, text=True, check=True)
            metrics[f"batch{batch}_{image}"] = json.loads(out.stdout.strip().splitlines()[-1])
    write_result("extractor_speed", metrics,
                 notes=f"device={args.device}; MNER then MRE on every ordered entity pair; image = 224 px after "
                       "preprocessing; peak RSS per configuration (own process)")


if __name__ == "__main__":
    main()
