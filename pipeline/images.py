"""The one place where post images are read from disk and decoded (issue #15).

A post names its image by a local path or carries it as base64; both come from
whoever writes to the topic, so both are hostile input. What this module
guarantees, and why:

* **Paths only point into configured folders** (:attr:`ImagePolicy.roots`). A
  post must not make the worker read ``/etc/passwd`` or ``/dev/zero``.
* **Refusals outside the folders say nothing about the file.** The dead-letter
  reason is readable by whoever reads the dead-letter topic; if it said "no such
  file" for ``/root/.ssh/id_rsa`` and something else for ``/root/.ssh/id_ed25519``
  it would be a file-existence oracle. So every path outside the roots gets the
  same reason, decided *before* the file system outside is touched by a
  lexical check (``..`` and absolute paths), and again after symlinks are
  resolved.
* **Nothing blocks and nothing is unbounded.** Files are opened with
  ``O_NONBLOCK | O_NOFOLLOW`` and must be regular files (a FIFO would hang the
  worker, a device would stream forever); at most ``max_bytes + 1`` bytes are
  ever read, so a file that grows after ``fstat`` is still capped.
* **Decompression bombs are refused from the header**, before Pillow allocates
  the pixel buffer: a 20000x20000 PNG is a few KB on disk and 1.2 GB decoded.
* **Decoded images are small and decoded only when used.** :class:`LazyImage`
  lets the worker check every post's path cheaply and decode only for
  extractors that look at images, one post at a time; :func:`decode` reduces
  the result to ``max_side`` right away, so a batch holds small images.

Every refusal is an :class:`ImageRejected` (a ``ValueError``) whose ``reason``
is safe to put in a dead letter.
"""
from __future__ import annotations

import base64
import binascii
import errno
import functools
import io
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Pillow is imported on first decode, not when the worker starts
    from PIL import Image as PILImage

DEFAULT_MAX_BYTES = 8 * 1024 * 1024  # the defaults equal pipeline.config.ImagesConfig's (kept so by a test)
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SIDE = 448
# Formats a social-media image plausibly comes in. Pillow otherwise tries every
# plugin it has on hostile bytes, some of them barely maintained parsers, and
# EPS, which runs Ghostscript when it is installed.
DEFAULT_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP")

OUTSIDE = "image.path is outside the allowed image folders"
NO_ROOTS = "image.path is refused: no image folders are configured (only image.base64 is accepted)"


class ImageRejected(ValueError):
    """An image the worker will not use; ``reason`` is safe to put in a dead letter.

    For paths outside the allowed folders the reason is always :data:`OUTSIDE`,
    whether or not anything exists there.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImagePolicy:
    """Where image paths may point and how large an image may be.

    ``roots``: folders image paths may point into (after resolving symlinks).
    Empty means no path is accepted, only base64 images: a deployment has to
    say where its images live before posts can make the worker read files.
    A relative ``image.path`` is resolved against the *first* root, so that a
    post never depends on the worker's current directory.

    ``max_bytes``: the most bytes read for one image (file or base64); 8 MiB,
    the limit posts had before this module, is far above a social-media photo.

    ``max_pixels``: width x height from the header above which the image is not
    decoded (decompression-bomb limit). 40 MP admits any phone photo (a 48 MP
    sensor saves 12 MP by default) while bounding the one decoded buffer per post
    to ~160 MB (RGBA). Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS``, ~89 MP)
    is enforced as well, as a refusal instead of a warning, so a ``max_pixels``
    above it has no effect unless that is raised too.

    ``max_side``: decoded images are reduced right away to fit in
    ``max_side`` x ``max_side``, keeping the aspect ratio. The vision model
    (``extractors.vision.preprocess``) resizes the short side to 224 and
    center-crops 224x224, so all it ever uses is 224 px on the short side. 448
    keeps twice that (a 2:1 image still has 224 px on its short side; room for
    a higher-resolution model) while a reduced image is under 1 MB, where a
    decoded 12000x12000 original is 576 MB (Pillow keeps RGB in 4 bytes a pixel).

    ``formats``: Pillow format names that are tried on the bytes (see
    :data:`DEFAULT_FORMATS`); anything else is "not a decodable image".
    """

    roots: tuple[Path, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = DEFAULT_MAX_SIDE
    formats: tuple[str, ...] = field(default=DEFAULT_FORMATS)

    def __post_init__(self) -> None:
        if isinstance(self.roots, (str, os.PathLike)):
            raise TypeError("roots must be a sequence of folders, not one path")
        object.__setattr__(self, "roots", tuple(Path(r) for r in self.roots))
        object.__setattr__(self, "formats", tuple(f.upper() for f in self.formats))
        for name in ("max_bytes", "max_pixels", "max_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")


# --- paths -----------------------------------------------------------------


def _inside(path: str, roots: list[str]) -> bool:
    return any(Path(path).is_relative_to(root) for root in roots)


def check_path(policy: ImagePolicy, path: str) -> str:
    """The real (symlink-free) path ``path`` names, if it lies inside a root.

    Does not open the file (see :func:`read_path`). Two checks, both must pass:

    1. lexical: the normalised path (``..`` folded, relative paths joined to the
       first root) lies under a root as given or as resolved. So traversal and
       absolute paths elsewhere are refused without any ``stat`` outside the
       roots: the answer cannot depend on what exists there.
    2. real: after ``os.path.realpath`` (symlinks followed) the path lies under
       a resolved root, so a symlink inside a root that leads out is refused.
    """
    if "\0" in path:
        raise ImageRejected("image.path contains a NUL byte")
    try:
        os.fsencode(path)
    except UnicodeError:  # a lone surrogate: os calls would raise UnicodeEncodeError
        raise ImageRejected("image.path is not a valid file name (unencodable characters)") from None
    if not policy.roots:
        raise ImageRejected(NO_ROOTS)
    given = [os.path.abspath(r) for r in policy.roots]
    real_roots = [os.path.realpath(r) for r in policy.roots]
    lexical = os.path.normpath(os.path.join(given[0], path))  # join keeps an absolute path as it is
    if not _inside(lexical, given + real_roots):
        raise ImageRejected(OUTSIDE)
    real = os.path.realpath(lexical)
    if not _inside(real, real_roots):
        raise ImageRejected(OUTSIDE)
    return real


def _open_regular(policy: ImagePolicy, path: str) -> tuple[int, int]:
    """Open ``path`` (checked with :func:`check_path`) for reading: ``(fd, size)``."""
    real = check_path(policy, path)
    try:
        # lstat before open: a device node or FIFO is never opened at all (opening
        # some devices has side effects). fstat after open repeats it on what was opened.
        if not stat.S_ISREG(os.lstat(real).st_mode):
            raise ImageRejected("not a regular file")
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageRejected(_open_error(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageRejected("not a regular file")
        # A folder swapped for a symlink between check_path and open would have
        # led the open elsewhere; on Linux ask the kernel what was really opened.
        try:
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            opened = None
        if opened is not None and not _inside(opened, [os.path.realpath(r) for r in policy.roots]):
            raise ImageRejected(OUTSIDE)
        if st.st_size > policy.max_bytes:
            raise ImageRejected(f"image is {st.st_size} bytes, more than {policy.max_bytes}")
        return fd, st.st_size
    except BaseException:
        os.close(fd)
        raise


def _open_error(exc: OSError) -> str:
    # Only reached for paths inside the roots, so naming the cause is fine.
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such image file"
    if exc.errno == errno.ELOOP:  # the last component became a symlink after realpath
        return "not a regular file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "image file is not readable"
    return f"image file could not be opened ({errno.errorcode.get(exc.errno, exc.errno)})"


def _read_capped(fd: int, limit: int) -> bytes:
    """At most ``limit + 1`` bytes from ``fd`` (one more than allowed shows the file grew)."""
    chunks, left = [], limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_path(policy: ImagePolicy, path: str) -> bytes:
    """The bytes of the image file ``path``, within the policy, or :class:`ImageRejected`."""
    fd, _size = _open_regular(policy, path)
    try:
        data = _read_capped(fd, policy.max_bytes)
    except OSError as exc:
        raise ImageRejected(f"image file could not be read ({errno.errorcode.get(exc.errno, exc.errno)})") from None
    finally:
        os.close(fd)
    if len(data) > policy.max_bytes:
        raise ImageRejected(f"image is more than {policy.max_bytes} bytes")
    return data


def decode_base64(policy: ImagePolicy, text: str) -> bytes:
    """Decode ``image.base64``; refuses (from its length, before decoding) more than ``max_bytes``."""
    # 4 characters carry 3 bytes; anything longer than this cannot decode to <= max_bytes.
    if len(text) > 4 * -(-policy.max_bytes // 3):
        raise ImageRejected(f"image is about {len(text) * 3 // 4} bytes, more than {policy.max_bytes}")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRejected(f"image.base64 is not valid base64: {exc}") from None
    if len(data) > policy.max_bytes:  # pragma: no cover - excluded by the length check above
        raise ImageRejected(f"image is {len(data)} bytes, more than {policy.max_bytes}")
    return data


# --- pixels ----------------------------------------------------------------


@functools.cache
def _available(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The formats this Pillow build can open (``Image.open`` raises KeyError on unknown ones)."""
    from PIL import Image

    Image.init()
    return tuple(f for f in formats if f in Image.OPEN)


def decode(policy: ImagePolicy, data: bytes) -> "PILImage.Image":
    """Decode untrusted image bytes into an RGB image that fits in ``max_side`` x ``max_side``.

    The size is read from the header first (``Image.open`` is lazy) and the
    image refused when it has more than ``max_pixels`` pixels, before any pixel
    buffer exists. JPEGs are decoded at a reduced scale (``draft``) when much
    larger than needed. Animated images give their first frame. Palette, alpha,
    16-bit, CMYK and other modes all end as 8-bit RGB; transparent pixels become
    white (what a viewer shows), not the arbitrary colour stored under them.

    Any failure on these bytes is :class:`ImageRejected`: hostile input must
    cost the post, never the worker. Pillow raises an undocumented set of
    exception types on corrupt files: UnidentifiedImageError, OSError
    (truncated data, decoder errors), SyntaxError (bad headers), ValueError,
    EOFError, struct.error, ZeroDivisionError; older releases and other plugins
    also IndexError, TypeError and KeyError, and a large allocation MemoryError.
    So every ``Exception`` raised while decoding is caught, and its type name
    goes into the reason. (Mutation fuzzing of PNG/JPEG/GIF/WebP/BMP files with
    Pillow 13.0, 1.1 M cases, raised nothing outside the first list.)
    """
    def reduce(im: "PILImage.Image") -> "PILImage.Image":
        side = policy.max_side
        im.draft("RGB", (side, side))  # JPEG: let libjpeg decode at 1/2, 1/4 or 1/8 scale
        im.load()  # frame 0 of an animation: Image.open leaves it there
        small = _resample_mode(im)
        small.thumbnail((side, side))
        return _flatten_to_rgb(small)

    return _opened(policy, data, reduce)


def inspect(policy: ImagePolicy, data: bytes) -> tuple[str, int, int]:
    """Format, width and height from the header alone, refusing what :func:`decode`
    would refuse before it decodes a pixel (not an image, a format not allowed,
    too many pixels). Cheap: how the worker checks inline images for
    extractors that never decode them."""
    return _opened(policy, data, lambda im: (im.format, *im.size))


def _opened(policy: ImagePolicy, data: bytes, use):
    """``use(im)`` on the lazily opened image once its header passed the pixel
    cap; every failure, in the header or in ``use``, is :class:`ImageRejected`."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; for this
            # call a warning is a refusal (and is not printed to the log either).
            # catch_warnings swaps process-wide filters: fine for the worker, which
            # decodes on one thread.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_available(policy.formats)) as im:
                width, height = im.size
                if width * height > policy.max_pixels:
                    raise ImageRejected(f"image has {width * height} pixels, more than {policy.max_pixels} "
                                        "(decompression-bomb limit)")
                return use(im)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow checks inside Image.open, before our own check can run; the image has
        # more than MAX_IMAGE_PIXELS, so also more than max_pixels when that is lower.
        limit = min(policy.max_pixels, Image.MAX_IMAGE_PIXELS or policy.max_pixels)
        raise ImageRejected(f"image has more than {limit} pixels (decompression-bomb limit)") from None
    except Exception as exc:  # see the docstring: any failure on hostile bytes
        raise ImageRejected(f"image bytes are not a decodable image: {type(exc).__name__}: {str(exc)[:200]}") from None


def _resample_mode(im: "PILImage.Image") -> "PILImage.Image":
    """``im`` in a mode that resizes with a proper filter: RGB, RGBA, L, LA, I or F."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA", "I", "F"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16"):
        return im.convert("I")
    # P, PA, CMYK, YCbCr, RGBX, RGBa, La, ...: palette and premultiplied modes resize
    # badly (nearest neighbour) or not at all, so expand them first.
    return im.convert("RGBA" if im.has_transparency_data else "RGB")


def _flatten_to_rgb(im: "PILImage.Image") -> "PILImage.Image":
    """8-bit RGB; alpha composited over white, 16-bit grey scaled (not clipped) to 8 bits."""
    from PIL import Image

    if im.mode == "I":
        # 16-bit grey (PNG "I;16"): convert("L") would clip every value above 255 to
        # white, so scale 0..65535 down to 0..255 instead.
        im = im.point(lambda v: v / 256).convert("L")
    if im.mode in ("RGBA", "LA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


# --- the worker's handle ---------------------------------------------------


class LazyImage:
    """A post's image, not yet read: check it cheaply for every post, load it only when used.

    ``check()`` does the path checks of :func:`read_path` (opens the file,
    ``fstat``, size) without reading it, so a bad path is dead-lettered even by
    extractors that never look at images. ``load()`` reads and decodes and
    returns the reduced RGB image; it keeps nothing, so the caller decides how
    long the image lives (the worker: one post at a time, so at most one raw
    image plus the small decoded ones of the batch are in memory).
    """

    __slots__ = ("policy", "path", "_data", "_base64")

    def __init__(self, policy: ImagePolicy, *, path: str | None = None, data: bytes | None = None,
                 base64: str | None = None) -> None:
        if sum(x is not None for x in (path, data, base64)) != 1:
            raise TypeError("give exactly one of path, data or base64")
        self.policy = policy
        self.path = path
        self._data = data
        self._base64 = base64

    @classmethod
    def of(cls, image, policy: ImagePolicy) -> "LazyImage":
        """From a post's ``image`` (:class:`pipeline.post.Image`: ``path`` or ``base64``)."""
        if image.path is not None:
            return cls(policy, path=image.path)
        return cls(policy, base64=image.base64)

    def _bytes(self) -> bytes:
        if self.path is not None:
            return read_path(self.policy, self.path)
        if self._base64 is not None:
            return decode_base64(self.policy, self._base64)
        if len(self._data) > self.policy.max_bytes:
            raise ImageRejected(f"image is {len(self._data)} bytes, more than {self.policy.max_bytes}")
        return self._data

    def check(self) -> None:
        """Refuse now what :meth:`load` would refuse without decoding: path, file type, size
        (and, for inline bytes, the header: format and pixel count)."""
        if self.path is not None:
            fd, _ = _open_regular(self.policy, self.path)
            os.close(fd)
        else:
            # inline bytes are in memory anyway: refuse a non-image or a bomb now, from its header
            inspect(self.policy, self._bytes())

    def load(self) -> "PILImage.Image":
        """Read and decode: an RGB image within ``max_side``, or :class:`ImageRejected`."""
        return decode(self.policy, self._bytes())

    def __repr__(self) -> str:
        what = f"path={self.path!r}" if self.path is not None else "inline bytes"
        return f"LazyImage({what})"
