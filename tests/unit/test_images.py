"""pipeline.images: reading and decoding hostile post images (issue #15).

Every image here is a real file written by Pillow (or a PNG assembled chunk by
chunk, for the decompression bombs) in tmp_path.
"""
from __future__ import annotations

import base64
import io
import os
import random
import struct
import threading
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageFile

from pipeline import images
from pipeline.images import NO_ROOTS, OUTSIDE, ImagePolicy, ImageRejected, LazyImage, decode
from pipeline.config import ImagesConfig
from pipeline.post import parse_post


# --- helpers -----------------------------------------------------------------


def photo(size=(1200, 800), mode="RGB") -> Image.Image:
    """Something with structure (gradients in three directions), not a flat colour."""
    w, h = size
    r = Image.linear_gradient("L").resize(size)
    g = Image.linear_gradient("L").rotate(90).resize(size)
    b = Image.radial_gradient("L").resize(size)
    return Image.merge("RGB", (r, g, b)).convert(mode) if mode != "RGB" else Image.merge("RGB", (r, g, b))


def save(im: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    im.save(path, fmt, **kw)
    return path


def encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of zeros: a few KB on disk for any size (a decompression bomb)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def reason(fn, *args) -> str:
    with pytest.raises(ImageRejected) as info:
        fn(*args)
    return info.value.reason


@pytest.fixture
def root(tmp_path) -> Path:
    (tmp_path / "images").mkdir()
    return tmp_path / "images"


@pytest.fixture
def policy(root) -> ImagePolicy:
    return ImagePolicy(roots=(root,))


@pytest.fixture
def no_decoding(monkeypatch):
    """Any attempt to decode pixels fails the test (a refusal must come before load())."""
    def refuse(self, *a, **k):
        raise AssertionError(f"pixels were decoded for a {self.size} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def load(policy: ImagePolicy, path) -> Image.Image:
    return LazyImage(policy, path=str(path)).load()


# --- normal images -------------------------------------------------------------


@pytest.mark.parametrize("name, size", [("wide.png", (1200, 800)), ("tall.jpg", (700, 2100)),
                                        ("small.png", (100, 50))])
def test_png_and_jpeg_inside_the_root_load_as_rgb_within_max_side(policy, root, name, size):
    original = photo(size)
    save(original, root / name)
    im = load(policy, name)
    assert im.mode == "RGB"
    assert max(im.size) == min(448, max(size))  # reduced to fit, never enlarged
    assert abs(im.size[0] / im.size[1] - size[0] / size[1]) < 0.02  # aspect ratio kept
    # the content survives: mean colour close to the original's
    want = np.asarray(original.resize((32, 32)), dtype=float)
    got = np.asarray(im.resize((32, 32)), dtype=float)
    assert np.abs(want - got).mean() < 6


def test_absolute_path_inside_a_root_and_relative_path_against_the_first_root(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    save(photo((40, 30)), second / "only-here.png")
    policy = ImagePolicy(roots=(first, second))
    assert load(policy, second / "only-here.png").size == (40, 30)
    assert reason(load, policy, "only-here.png") == "no such image file"  # relative: first root only


def test_a_root_given_through_a_symlink_accepts_paths_on_both_sides(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    save(photo((40, 30)), real / "a.png")
    policy = ImagePolicy(roots=(tmp_path / "alias",))
    assert load(policy, "a.png").size == (40, 30)
    assert load(policy, real / "a.png").size == (40, 30)
    assert load(policy, tmp_path / "alias" / "a.png").size == (40, 30)


def test_large_jpeg_is_decoded_at_reduced_scale(policy, root, monkeypatch):
    save(photo((4000, 3000)), root / "big.jpg", quality=80)
    decoded_sizes = []
    real = images._resample_mode
    monkeypatch.setattr(images, "_resample_mode", lambda im: decoded_sizes.append(im.size) or real(im))
    assert load(policy, "big.jpg").size == (448, 336)
    assert decoded_sizes == [(1000, 750)]  # libjpeg decoded at 1/4 scale, not 12 MP


# --- paths: nothing outside the roots, and no oracle for what exists there ----


def test_paths_out_of_the_root_get_one_reason_whether_or_not_the_file_exists(policy, root, tmp_path):
    save(photo((40, 30)), tmp_path / "secret.png")  # exists, next to the root
    outside = ["../secret.png", str(tmp_path / "secret.png"), "sub/../../secret.png", "../../../../etc/passwd",
               "/etc/passwd", "/etc/shadow", "/proc/self/environ", "../missing.png", "/no/such/dir/x.png",
               str(tmp_path / "images-sibling" / "x.png"),  # shares the root's name as a prefix
               "/"]
    for path in outside:
        assert reason(load, policy, path) == OUTSIDE, path
        assert reason(LazyImage(policy, path=path).check) == OUTSIDE, path


def test_a_symlink_inside_the_root_that_leads_out_is_refused(policy, root, tmp_path):
    save(photo((40, 30)), tmp_path / "secret.png")
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    (root / "dirlink").symlink_to(tmp_path)
    (root / "dangling.png").symlink_to(tmp_path / "missing.png")
    for path in ("link.png", "dirlink/secret.png", "dirlink/missing.png", "dangling.png"):
        assert reason(load, policy, path) == OUTSIDE, path
    # a symlink that stays inside is fine: symlinks as such are not the problem
    save(photo((40, 30)), root / "real.png")
    (root / "inner.png").symlink_to(root / "real.png")
    assert load(policy, "inner.png").size == (40, 30)


def test_paths_out_of_the_root_are_refused_without_looking_at_the_file_system_there(policy, root, tmp_path,
                                                                                     monkeypatch):
    save(photo((40, 30)), tmp_path / "secret.png")
    looked = []
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: looked.append(os.fspath(p)) or real_lstat(p, *a, **k))
    for path in ("../secret.png", str(tmp_path / "secret.png"), "a/../../secret.png", "/etc/passwd"):
        assert reason(load, policy, path) == OUTSIDE
    # resolving the root itself walks its ancestors; nothing else outside it is touched
    ancestors = {str(p) for p in root.parents}
    assert [p for p in looked if p not in ancestors and not Path(p).is_relative_to(root)] == []


def test_a_folder_swapped_for_a_symlink_after_the_check_is_caught_at_open(policy, root, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    save(photo((40, 30)), outside / "x.png")
    (root / "sub").mkdir()
    save(photo((40, 30)), root / "sub" / "x.png")
    real_check = images.check_path

    def check_then_swap(policy, path):  # the race: a writer of the root swaps a folder in between
        checked = real_check(policy, path)
        (root / "sub").rename(root / "sub-old")
        (root / "sub").symlink_to(outside)
        return checked

    monkeypatch.setattr(images, "check_path", check_then_swap)
    assert reason(load, policy, "sub/x.png") == OUTSIDE


def test_a_symlink_to_dev_zero_is_refused(policy, root):
    (root / "zero.png").symlink_to("/dev/zero")
    assert reason(load, policy, "zero.png") == OUTSIDE
    # and with /dev as a root (a misconfiguration) a device is still never read
    dev = ImagePolicy(roots=(Path("/dev"),))
    assert reason(load, dev, "zero") == "not a regular file"
    assert reason(load, dev, "/dev/urandom") == "not a regular file"


def test_a_fifo_is_refused_without_blocking(policy, root):
    fifo = root / "pipe.png"
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        for fn in (LazyImage(policy, path="pipe.png").check, LazyImage(policy, path="pipe.png").load):
            try:
                fn()
                outcome.append("loaded")
            except ImageRejected as exc:
                outcome.append(exc.reason)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=5)
    hung = thread.is_alive()
    if hung:  # release the blocked reader so the thread ends: a writer opens, then closes (EOF)
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=5)
    assert not hung, "reading a FIFO blocked the worker"
    assert outcome == ["not a regular file", "not a regular file"]


def test_a_file_swapped_for_a_fifo_after_lstat_is_refused_by_fstat_without_blocking(policy, root, monkeypatch):
    fifo = root / "pipe.png"
    os.mkfifo(fifo)
    save(photo((40, 30)), root / "regular.png")
    real_lstat = os.lstat
    # lstat saw a regular file; by the time of open() it is a FIFO
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: real_lstat(root / "regular.png" if os.fspath(p) == str(fifo)
                                                                   else p, *a, **k))
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(reason(load, policy, "pipe.png")), daemon=True)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=5)
        pytest.fail("opening a FIFO blocked the worker")
    assert outcome == ["not a regular file"]


def test_a_directory_is_refused(policy, root):
    (root / "album").mkdir()
    assert reason(load, policy, "album") == "not a regular file"
    assert reason(load, policy, "") == "not a regular file"  # the root itself
    assert reason(load, policy, ".") == "not a regular file"


def test_a_missing_file_inside_the_root(policy, root):
    assert reason(load, policy, "nope.png") == "no such image file"
    assert reason(LazyImage(policy, path="nope.png").check) == "no such image file"
    assert reason(load, policy, "nodir/nope.png") == "no such image file"


def test_nul_and_unencodable_paths_are_refused(policy, root):
    save(photo((40, 30)), root / "a.png")
    assert reason(load, policy, "a.png\0.jpg") == "image.path contains a NUL byte"
    assert reason(load, policy, "a\ud800.png").startswith("image.path is not a valid file name")


def test_empty_roots_refuse_every_path_but_base64_still_loads(tmp_path):
    save(photo((40, 30)), tmp_path / "a.png")
    policy = ImagePolicy()
    for path in ("a.png", str(tmp_path / "a.png"), "/etc/passwd", "../x"):
        assert reason(load, policy, path) == NO_ROOTS
    inline = base64.b64encode(encoded(photo((40, 30)), "PNG")).decode()
    assert LazyImage(policy, base64=inline).load().size == (40, 30)


# --- sizes -----------------------------------------------------------------------


def test_a_file_over_max_bytes_is_refused_before_reading(policy, root, monkeypatch):
    big = root / "huge.png"
    with open(big, "wb") as fh:  # sparse: no disk, no memory
        fh.truncate(64 * 1024 ** 3)
    monkeypatch.setattr(images, "_read_capped", lambda fd, limit: pytest.fail("the file was read"))
    want = f"image is {64 * 1024 ** 3} bytes, more than {8 * 1024 * 1024}"
    assert reason(load, policy, "huge.png") == want
    assert reason(LazyImage(policy, path="huge.png").check) == want
    small = ImagePolicy(roots=(root,), max_bytes=1000)
    (root / "k.png").write_bytes(b"\0" * 1001)
    assert reason(load, small, "k.png") == "image is 1001 bytes, more than 1000"


def test_a_file_that_grows_after_fstat_is_still_capped(policy, root, monkeypatch):
    (root / "growing.png").write_bytes(encoded(photo((40, 30)), "PNG") + b"\0" * 5000)
    small = ImagePolicy(roots=(root,), max_bytes=2000)
    real_fstat = os.fstat

    def fstat_before_growth(fd):  # the size as it was when fstat ran, before the writer appended
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 100,
                               st.st_atime, st.st_mtime, st.st_ctime))

    monkeypatch.setattr(os, "fstat", fstat_before_growth)
    read = []
    real_read = images._read_capped
    monkeypatch.setattr(images, "_read_capped", lambda fd, limit: read.append(real_read(fd, limit)) or read[-1])
    assert reason(load, small, "growing.png") == "image is more than 2000 bytes"
    assert [len(r) for r in read] == [2001]


def test_base64_over_the_cap_is_refused_and_bad_base64_too(policy, monkeypatch):
    small = ImagePolicy(max_bytes=1000)
    huge = "A" * (64 * 1024 * 1024)
    real_b64decode = base64.b64decode
    monkeypatch.setattr(base64, "b64decode", lambda s, *a, **k: pytest.fail("decoded") if len(s) > 2000
                        else real_b64decode(s, *a, **k))
    assert reason(LazyImage(small, base64=huge).check) == f"image is about {len(huge) * 3 // 4} bytes, more than 1000"
    assert "more than 1000" in reason(LazyImage(small, base64=base64.b64encode(b"\0" * 1003).decode()).load)
    assert "more than 1000" in reason(LazyImage(small, base64=base64.b64encode(b"\0" * 1003).decode()).check)
    assert "more than 1000" in reason(LazyImage(small, data=b"\0" * 1001).load)
    assert reason(LazyImage(small, base64="not base64!").check).startswith("image.base64 is not valid base64")
    exactly = encoded(photo((8, 8)), "PNG")
    fits = ImagePolicy(max_bytes=len(exactly))
    assert LazyImage(fits, base64=base64.b64encode(exactly).decode()).load().size == (8, 8)


def test_defaults_are_the_configs_defaults():
    cfg, policy = ImagesConfig(), ImagePolicy()
    assert (policy.roots, policy.max_bytes, policy.max_pixels, policy.max_side) == \
        (tuple(cfg.roots), cfg.max_bytes, cfg.max_pixels, cfg.max_side) == ((), 8 * 1024 * 1024, 40_000_000, 448)


# --- decompression bombs ------------------------------------------------------------


def test_a_decompression_bomb_is_refused_from_its_header(policy, root, no_decoding):
    bomb = png_of_zeros(8000, 8000)  # 64 MP: over max_pixels (40 MP), under Pillow's own 89 MP
    assert len(bomb) < 20_000
    (root / "bomb.png").write_bytes(bomb)
    start = time.perf_counter()
    assert reason(load, policy, "bomb.png") == \
        "image has 64000000 pixels, more than 40000000 (decompression-bomb limit)"
    assert time.perf_counter() - start < 1


def test_the_bomb_file_is_a_real_image_that_a_higher_limit_would_decode(root):
    (root / "bomb.png").write_bytes(png_of_zeros(8000, 8000))
    im = load(ImagePolicy(roots=(root,), max_pixels=64_000_000), "bomb.png")
    assert im.size == (448, 448) and im.getextrema() == ((0, 0),) * 3


@pytest.mark.parametrize("side", [10_000, 20_000])  # 100 MP: Pillow warns; 400 MP: Pillow raises
def test_pillows_own_bomb_limit_is_a_refusal_not_a_warning(root, no_decoding, side):
    (root / "bomb.png").write_bytes(png_of_zeros(side, side))
    lenient = ImagePolicy(roots=(root,), max_pixels=10 ** 9)  # our limit is not what stops it here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert reason(load, lenient, "bomb.png") == \
            f"image has more than {Image.MAX_IMAGE_PIXELS} pixels (decompression-bomb limit)"
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    # at the default policy the reason names the policy's limit, whichever check fired first
    assert reason(load, ImagePolicy(roots=(root,)), "bomb.png") == \
        "image has more than 40000000 pixels (decompression-bomb limit)"


# --- corrupt bytes ------------------------------------------------------------------


def test_truncated_and_corrupt_files_are_refused_with_a_reason(policy, root):
    png = encoded(photo((300, 200)), "PNG")
    jpeg = encoded(photo((300, 200)), "JPEG")
    cases = {"truncated.png": png[: len(png) // 2], "truncated.jpg": jpeg[: len(jpeg) // 2],
             "header-only.png": png[:40], "empty.png": b"", "text.png": b"hello, not an image\n" * 10,
             "flipped.png": png[:60] + bytes(b ^ 0xFF for b in png[60:200]) + png[200:]}
    for name, data in cases.items():
        (root / name).write_bytes(data)
        why = reason(load, policy, name)
        assert why.startswith("image bytes are not a decodable image: "), (name, why)


def test_formats_outside_the_policy_are_not_decoded(policy, root):
    (root / "a.tif").write_bytes(encoded(photo((40, 30)), "TIFF"))
    assert "cannot identify image file" in reason(load, policy, "a.tif")
    tiff_ok = ImagePolicy(roots=(root,), formats=("TIFF",))
    assert load(tiff_ok, "a.tif").size == (40, 30)


# --- modes and animation -----------------------------------------------------------


def test_palette_png_with_transparency_loads_as_rgb_with_white_behind_it(policy, root):
    im = Image.new("P", (64, 32), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    im.paste(1, (32, 0, 64, 32))  # right half red, left half index 0 = transparent black
    save(im, root / "p.png", transparency=0)
    out = load(policy, "p.png")
    assert out.mode == "RGB" and out.size == (64, 32)
    assert out.getpixel((5, 5)) == (255, 255, 255) and out.getpixel((50, 5)) == (255, 0, 0)


def test_rgba_and_la_load_as_rgb(policy, root):
    rgba = Image.new("RGBA", (20, 10), (0, 0, 255, 0))
    rgba.paste((0, 0, 255, 255), (10, 0, 20, 10))
    save(rgba, root / "rgba.png")
    out = load(policy, "rgba.png")
    assert out.getpixel((2, 2)) == (255, 255, 255) and out.getpixel((15, 2)) == (0, 0, 255)
    save(Image.new("LA", (20, 10), (40, 255)), root / "la.png")
    assert load(policy, "la.png").getpixel((2, 2)) == (40, 40, 40)


def test_16_bit_grey_png_is_scaled_not_clipped(policy, root):
    im = Image.new("I;16", (4, 1))
    im.putdata([0, 1000, 32768, 65535])
    save(im, root / "16.png")
    assert Image.open(root / "16.png").mode == "I;16"
    out = load(policy, "16.png")
    assert out.mode == "RGB"
    assert [out.getpixel((x, 0))[0] for x in range(4)] == [0, 3, 128, 255]  # clipping would give 0, 255, 255, 255


def test_cmyk_jpeg_loads_as_rgb(policy, root):
    save(Image.new("CMYK", (600, 300), (0, 255, 255, 0)), root / "cmyk.jpg", quality=95)  # red in CMYK
    assert Image.open(root / "cmyk.jpg").mode == "CMYK"
    out = load(policy, "cmyk.jpg")
    assert out.mode == "RGB" and out.size == (448, 224)
    r, g, b = out.getpixel((100, 100))
    assert r > 230 and g < 25 and b < 25


def test_bilevel_image_loads_as_rgb(policy, root):
    save(Image.new("1", (900, 90), 1), root / "bw.png")
    out = load(policy, "bw.png")
    assert out.mode == "RGB" and out.size == (448, 45) and out.getpixel((10, 10)) == (255, 255, 255)


def test_animated_gif_gives_its_first_frame(policy, root):
    red, green, blue = (Image.new("RGB", (600, 60), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    save(red, root / "anim.gif", save_all=True, append_images=[green, blue], duration=100, loop=0)
    assert Image.open(root / "anim.gif").n_frames == 3
    out = load(policy, "anim.gif")
    assert out.mode == "RGB" and out.size == (448, 45) and out.getpixel((10, 10)) == (255, 0, 0)


# --- LazyImage: cheap checks for every post, decoding only when used -----------------


def test_check_does_not_read_or_decode_and_load_does(policy, root, monkeypatch):
    (root / "corrupt.png").write_bytes(b"not an image")
    lazy = LazyImage(policy, path="corrupt.png")
    monkeypatch.setattr(images, "_read_capped", lambda fd, limit: pytest.fail("check() read the file"))
    monkeypatch.setattr(images, "decode", lambda *a: pytest.fail("check() decoded"))
    lazy.check()  # a regular file inside the root, within max_bytes: the path is fine
    monkeypatch.undo()
    assert reason(lazy.load).startswith("image bytes are not a decodable image")


def test_lazy_image_of_a_posts_image(policy, root):
    save(photo((40, 30)), root / "a.png")
    inline = base64.b64encode(encoded(photo((20, 10)), "PNG")).decode()
    by_path = parse_post(f'{{"id":"1","text":"t","created_at":"2024-01-01T00:00:00Z","image":{{"path":"a.png"}}}}')
    by_b64 = parse_post(f'{{"id":"2","text":"t","created_at":"2024-01-01T00:00:00Z","image":{{"base64":"{inline}"}}}}')
    assert LazyImage.of(by_path.image, policy).load().size == (40, 30)
    assert LazyImage.of(by_b64.image, policy).load().size == (20, 10)
    with pytest.raises(TypeError):
        LazyImage(policy)


def test_policy_validates_its_fields(root):
    assert ImagePolicy(roots=[str(root)]).roots == (root,)
    with pytest.raises(TypeError):
        ImagePolicy(roots=str(root))  # one path, not a sequence: would be split into characters
    with pytest.raises(ValueError):
        ImagePolicy(max_side=0)


# --- only ImageRejected ever comes out of decode ------------------------------------


def _seeds() -> list[bytes]:
    base = photo((64, 48))
    pal = base.convert("P")
    return [encoded(base, "PNG"), encoded(base, "JPEG"), encoded(base, "JPEG", progressive=True),
            encoded(pal, "GIF", save_all=True, append_images=[pal.rotate(90)]), encoded(base, "WEBP"),
            encoded(base, "BMP"), encoded(pal, "PNG", transparency=0), encoded(base.convert("CMYK"), "JPEG"),
            encoded(base.convert("I;16"), "PNG")]


def test_mutated_images_never_raise_anything_but_image_rejected():
    """Deterministic mutation fuzzing (bit flips, truncation, insertion) of real files."""
    rng = random.Random(15)
    seeds = _seeds()
    policy = ImagePolicy()
    outcomes = {"decoded": 0, "rejected": 0}
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(data))
            op = rng.random()
            if op < 0.6:
                data[i] = rng.randrange(256)
            elif op < 0.8:
                del data[i:]
            else:
                data[i:i] = rng.randbytes(rng.randint(1, 8))
            if not data:
                data = bytearray(b"\0")
        try:
            im = decode(policy, bytes(data))
            assert im.mode == "RGB" and max(im.size) <= policy.max_side
            outcomes["decoded"] += 1
        except ImageRejected:
            outcomes["rejected"] += 1
    assert outcomes["decoded"] > 100 and outcomes["rejected"] > 100  # both paths exercised


_PREFIXES = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 ", b"BM"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_PREFIXES), st.binary(max_size=4096))
def test_random_bytes_never_raise_anything_but_image_rejected(prefix, tail):
    policy = ImagePolicy()
    try:
        im = decode(policy, prefix + tail)
    except ImageRejected:
        return
    assert im.mode == "RGB" and max(im.size) <= policy.max_side
