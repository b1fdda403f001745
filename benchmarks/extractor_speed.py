"""Inference speed of the multimodal extractor (MNER + MRE) on this machine.

    python -m benchmarks.extractor_speed [--models var/models] [--posts 256]
    python -m benchmarks.extractor_speed --gpu     # on a machine with an NVIDIA GPU

Measures posts/s for batch 1 and 32, text only and with a 224 px image, each
configuration in its own process so its peak memory (max RSS) is its own.
``--gpu`` runs on CUDA with bf16 autocast at batches 1, 32, 128 and 256 and
also records the peak GPU memory of each; it writes extractor_speed_gpu.json.
With no promoted versions in ``--models``, the shipped ones are measured.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from .common import mnre_posts, write_result


def one(models: str, batch: int, image: bool, n_posts: int, device: str, precision: str = "auto") -> dict:
    import torch
    from PIL import Image, ImageDraw

    from extractors.base import ExtractionInput
    from extractors.multimodal import MultimodalExtractor

    torch.set_grad_enabled(False)
    img = None
    if image:
        img = Image.new("RGB", (320, 240), (30, 120, 200))
        ImageDraw.Draw(img).ellipse((60, 40, 220, 200), fill=(240, 200, 40))
    extractor = MultimodalExtractor(models, device=device, batch_size=batch, precision=precision, shipped=True)
    cuda = extractor.device.startswith("cuda")
    inputs = [ExtractionInput(p["id"], p["text"], img) for p in mnre_posts(n_posts, "test")]
    extractor.extract(inputs[:batch])  # warm-up
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(0, len(inputs), batch):
        extractor.extract(inputs[i:i + batch])
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {"posts_per_s": round(len(inputs) / seconds, 1), "device": extractor.device,
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if cuda:
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="var/models")
    parser.add_argument("--posts", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--gpu", action="store_true",
                        help="CUDA, bf16, batches 1/32/128/256 and peak GPU memory -> extractor_speed_gpu.json")
    parser.add_argument("--one", nargs=2, metavar=("BATCH", "IMAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.models, int(args.one[0]), args.one[1] == "image", args.posts, args.device,
                             args.precision)))
        return
    device, precision, batches = args.device, args.precision, (1, 32)
    if args.gpu:
        device, precision, batches = "cuda", "bf16", (1, 32, 128, 256)
    metrics = {}
    for batch in batches:
        for image in ("text", "image"):
            n = max(args.posts, 2 * batch) if batch > 1 else max(32, args.posts // 4)
            out = subprocess.run([sys.executable, "-m", "benchmarks.extractor_speed", "--models", args.models,
                                  "--posts", str(n), "--device", device, "--precision", precision,
                                  "--one", str(batch), image], capture_output=True, text=True, check=True)
            metrics[f"batch{batch}_{image}"] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"batch {batch} {image}: {metrics[f'batch{batch}_{image}']}", flush=True)
    write_result("extractor_speed_gpu" if args.gpu else "extractor_speed", metrics, module="benchmarks.extractor_speed",
                 notes=f"device={device} precision={precision}; MNER then MRE on every ordered entity pair; "
                       "image = 224 px after preprocessing; peak RSS (and peak GPU memory on CUDA) per "
                       "configuration (own process)")


if __name__ == "__main__":
    main()
