"""Memory held for one batch's images: the old full decode vs pipeline.images (issue #15).

    python -m benchmarks.image_memory [--posts 64] [--side 12000] [--old-budget-gb 4]

Images (written once to a temporary folder; every post of a batch references one):
  huge.png   side x side PNG (144 MP at the default 12000), Grace Hopper tiled;
  huge.jpg   side x side JPEG, Grace Hopper resized (a few MB: within max_bytes);
  large.png  side/2 x side/2 PNG (36 MP: within the default 40 MP cap), tiled;
  large.jpg  side/2 x side/2 JPEG, resized.
The photo is matplotlib's sample ``grace_hopper.jpg`` (portrait of Rear Admiral
Grace Hopper, US Navy photograph, public domain), shipped in matplotlib's
``sample_data``, so nothing is downloaded.

Each measurement runs in a fresh process: peak RSS (VmHWM, reset after imports
and a warm-up decode) minus the RSS at that point, and the RSS still held with
all the batch's images in a list at the end.
  old: what the worker did before: ``Image.open(BytesIO(open(path).read())).convert("RGB")``
       per post, all held for the batch. Capped at the posts that fit in
       --old-budget-gb (the full decodes would not fit for 64 posts of 144 MP);
       the 64-post figure is extrapolated from the measured per-post cost.
  new: ``LazyImage.of(post.image, policy)``, ``check()`` then ``load()`` per post,
       the reduced images held for the batch; at the default policy, and for the
       huge PNG also with the caps raised so it is decoded (peak = one full decode).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import write_result

MIB = 1024 * 1024


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _peak_mib() -> float:
    """Peak RSS of this process's memory map (VmHWM), which :func:`_reset_peak` can reset.

    Not ``ru_maxrss``: on Linux that is also at least the RSS the *parent* had when it
    spawned us (the kernel carries the pre-exec hiwater over), so it would count the
    benchmark driver's memory. ``ru_maxrss`` is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_peak() -> bool:
    """Make the peak start again from the current RSS (Linux: writing 5 to clear_refs resets VmHWM).

    Without it the peak would still include transient memory of the imports, which can
    exceed what the measured loop adds.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def make_images(folder: Path, side: int) -> dict[str, dict]:
    """The four test images (see the module docstring); returns name -> size facts."""
    import matplotlib
    from PIL import Image

    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    out = {}
    for name, s in (("huge", side), ("large", side // 2)):
        tiled = Image.new("RGB", (s, s))
        for x in range(0, s, photo.width):
            for y in range(0, s, photo.height):
                tiled.paste(photo, (x, y))
        tiled.save(folder / f"{name}.png", compress_level=6)
        del tiled
        resized = photo.resize((s, s), Image.Resampling.BICUBIC)
        resized.save(folder / f"{name}.jpg", quality=85)
        del resized
        for ext in ("png", "jpg"):
            path = folder / f"{name}.{ext}"
            out[path.name] = {"width": s, "height": s, "megapixels": round(s * s / 1e6, 1),
                              "file_mib": round(path.stat().st_size / MIB, 2)}
    return out


def one(spec: dict) -> dict:
    """Runs in its own process: load ``spec["posts"]`` posts' images the old or new way, all held."""
    from PIL import Image

    from pipeline.images import ImagePolicy, ImageRejected, LazyImage, decode
    from pipeline.post import parse_post

    folder = Path(spec["folder"])
    # warm-up, the same for both ways: import every Pillow plugin (pipeline.images does,
    # to know which formats exist) and the codecs, parse a post, before the baseline
    Image.init()
    parse_post('{"id": "w", "text": "t", "created_at": "2026-01-01T00:00:00Z", "image": {"path": "w.png"}}')
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        Image.new("RGB", (64, 64)).save(buf, fmt)
        Image.open(io.BytesIO(buf.getvalue())).convert("RGB").thumbnail((32, 32))
        decode(ImagePolicy(), buf.getvalue())
    if spec.get("pillow_max_pixels"):
        Image.MAX_IMAGE_PIXELS = spec["pillow_max_pixels"]
    reset = _reset_peak()
    base_rss = _rss_mib()
    base_peak = base_rss if reset else _peak_mib()
    held, refused = [], {}
    start = time.perf_counter()
    for i in range(spec["posts"]):
        if spec["way"] == "old":
            with open(folder / spec["image"], "rb") as fh:  # pipeline.post.Image.open() before issue #15
                held.append(Image.open(io.BytesIO(fh.read())).convert("RGB"))
            continue
        post = parse_post(json.dumps({"id": f"p{i}", "text": "t", "created_at": "2026-01-01T00:00:00Z",
                                      "image": {"path": spec["image"]}}))
        policy = ImagePolicy(roots=(folder,), **spec.get("policy", {}))
        lazy = LazyImage.of(post.image, policy)
        try:
            lazy.check()
            held.append(lazy.load())
        except ImageRejected as exc:
            refused[exc.reason] = refused.get(exc.reason, 0) + 1
    seconds = time.perf_counter() - start
    return {"image": spec["image"], "posts": spec["posts"], "loaded": len(held), "refused": refused,
            "decoded_size": list(held[0].size) if held else None,
            "peak_mib": round(_peak_mib() - base_peak, 1), "peak_reset": reset,
            "held_mib": round(_rss_mib() - base_rss, 1), "seconds": round(seconds, 2),
            "ms_per_post": round(1000 * seconds / spec["posts"], 1)}


def run_one(spec: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.image_memory", "--one", json.dumps(spec)],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=64, help="posts in one batch")
    parser.add_argument("--side", type=int, default=12000, help="side of the huge images (px)")
    parser.add_argument("--old-budget-gb", type=float, default=4.0,
                        help="cap the old way at the posts whose full decodes fit in this (x2 for the transient copy)")
    parser.add_argument("--raised-posts", type=int, default=8,
                        help="posts for the huge PNG with raised caps (each is a full decode, ~4 s at 144 MP)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        spec = json.loads(args.one)
        if spec["way"] == "make":  # in a child too, so the driver stays small
            print(json.dumps(make_images(Path(spec["folder"]), spec["side"])))
        else:
            print(json.dumps(one(spec)))
        return

    folder = Path(tempfile.mkdtemp(prefix="mkg-image-memory-"))
    try:
        t0 = time.perf_counter()
        images = run_one({"way": "make", "folder": str(folder), "side": args.side})
        made_s = time.perf_counter() - t0
        huge_px = args.side * args.side
        runs: dict[str, dict] = {}

        def old(name: str, image: str) -> None:
            w = images[image]["width"]
            n = max(1, min(args.posts, int(args.old_budget_gb * 1e9 // (w * w * 3 * 2))))
            r = run_one({"way": "old", "folder": str(folder), "image": image, "posts": n})
            r["per_post_mib"] = round(r["peak_mib"] / n, 1)
            r[f"extrapolated_{args.posts}_posts_mib"] = round(r["held_mib"] / n * args.posts, 1)
            runs[name] = r

        def new(name: str, image: str, posts: int, **extra) -> None:
            runs[name] = {**run_one({"way": "new", "folder": str(folder), "image": image, "posts": posts, **extra}),
                          **({"policy": extra["policy"]} if extra.get("policy") else {})}

        old("old_huge_png", "huge.png")
        new("new_default_huge_png", "huge.png", args.posts)
        new("new_default_huge_jpg", "huge.jpg", args.posts)
        raised = {"max_bytes": 256 * MIB, "max_pixels": huge_px + 1}
        new("new_raised_caps_huge_png", "huge.png", args.raised_posts, policy=raised, pillow_max_pixels=huge_px + 1)
        old("old_large_png", "large.png")
        new("new_default_large_png", "large.png", args.posts)
        old("old_large_jpg", "large.jpg")
        new("new_default_large_jpg", "large.jpg", args.posts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\n{'run':28s} {'image':10s} {'posts':>5s} {'loaded':>6s} {'peak MiB':>9s} {'held MiB':>9s} "
          f"{'ms/post':>8s}  note")
    for name, r in runs.items():
        note = ", ".join(f"{k} x{v}" for k, v in r["refused"].items()) if r["refused"] else (
            f"decoded {r['decoded_size'][0]}x{r['decoded_size'][1]}" if r["decoded_size"] else "")
        if name.startswith("old"):
            held = r[f"extrapolated_{args.posts}_posts_mib"] / 1024
            note += f"; {args.posts} posts extrapolated: {held:.1f} GiB held"
        print(f"{name:28s} {r['image']:10s} {r['posts']:5d} {r['loaded']:6d} {r['peak_mib']:9.1f} {r['held_mib']:9.1f} "
              f"{r['ms_per_post']:8.1f}  {note}")

    metrics = {"batch_posts": args.posts, "images": images, "make_images_s": round(made_s, 1), "runs": runs}
    write_result("image_memory", metrics, notes=(
        "peak_mib: peak RSS (VmHWM; not ru_maxrss, which on Linux includes the spawning parent's RSS) minus the "
        "RSS after imports and a warm-up decode, the peak reset there with /proc/self/clear_refs (peak_reset), "
        "in a fresh process per run; "
        "held_mib: RSS still held at the end with every loaded image of the batch in a list. "
        "old = Image.open(BytesIO(file bytes)).convert('RGB') per post (the worker before issue #15), "
        f"measured on as many posts as fit in {args.old_budget_gb} GB and extrapolated linearly to "
        f"{args.posts} posts (extrapolated_*: not measured). new = LazyImage.of(post.image).check() + load() at "
        "the default ImagePolicy (8 MiB, 40 MP, 448 px), and for huge.png also with max_bytes/max_pixels and "
        "PIL.Image.MAX_IMAGE_PIXELS raised so that it is decoded (fewer posts: each is a full decode). "
        "Images: matplotlib sample_data grace_hopper.jpg tiled (PNG) or resized (JPEG)."))


if __name__ == "__main__":
    main()
