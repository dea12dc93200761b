"""The `folder:PATH` source: every image under a folder, sorted by relative path, as RGB, with
labels from class subfolders and captions from a JSON-lines file. A damaged, oversized or
mis-sized image, or a missing caption, is a one-line error naming the file."""

from __future__ import annotations

import json
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, ImageOps

from collapse.data.checks import MAX_IMAGE_PIXELS
from collapse.data.shards import images_to_table
from collapse.data.source_tables import CHUNK_ROWS, SourceTables
from collapse.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FOLDER_CAPTIONS = "captions.jsonl"
# What a damaged or hostile file makes PIL's decoders raise, besides OSError.
_UNDECODABLE = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)


def folder_tables(
    folder: Path, limit: int | None, size: int | None, captions: str | None
) -> SourceTables:
    """Every image under `folder`, sorted by relative path, as RGB.

    With `size`, each image is center-cropped to a square and resized (PIL bicubic), so a folder
    of mixed photos becomes one shape; without it every image must already share the first's
    size, since silently distorting images would change the data the chain measures against.
    Images in subfolders get `label`: the index of their top subfolder among the sorted names.
    """
    if not folder.is_dir():
        raise UserError(f"folder:{folder}: not a directory")
    files = sorted(
        (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
    )
    files = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES)][:limit]
    if not files:
        raise UserError(f"folder:{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) under it")

    labels: np.ndarray | None = None
    in_subfolder = ["/" in f for f in files]
    if all(in_subfolder):
        tops = [f.split("/", 1)[0] for f in files]
        classes = sorted(set(tops))
        labels = np.array([classes.index(t) for t in tops], dtype=np.int64)
    elif any(in_subfolder):
        loose = files[in_subfolder.index(False)]
        raise UserError(
            f"folder:{folder}: {loose} is at the top level but other images are in class "
            "subfolders; put every image in a subfolder (labelled) or none (unlabelled)"
        )

    texts: list[str] | None = None
    captions_file = Path(captions) if captions else folder / FOLDER_CAPTIONS
    if captions or captions_file.is_file():
        by_file = _read_captions(captions_file)
        missing = next((f for f in files if f not in by_file), None)
        if missing is not None:
            raise UserError(f"{folder / missing}: no caption for it in {captions_file}")
        texts = [by_file[f] for f in files]

    def tables() -> Iterator[pa.Table]:
        shape: tuple[int, int] | None = None
        for i in range(0, len(files), CHUNK_ROWS):
            chunk = []
            for rel in files[i : i + CHUNK_ROWS]:
                image, shape = _load_image(folder / rel, size, shape)
                chunk.append(image)
            yield images_to_table(
                np.stack(chunk),
                source="real",
                generation=None,
                first_id=i,
                labels=None if labels is None else labels[i : i + CHUNK_ROWS],
                captions=None if texts is None else texts[i : i + CHUNK_ROWS],
            )

    return SourceTables(len(files), tables())


def _load_image(
    path: Path, size: int | None, shape: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """One RGB image, and the (width, height) every later image must have.

    An image over PIL's decompression-bomb limit is refused before it is decoded (PIL only
    warns below twice the limit; that warning is made an error here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                image = opened.convert("RGB")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UserError(
            f"{path}: over {MAX_IMAGE_PIXELS} pixels, PIL's decompression-bomb limit; "
            "shrink it or leave it out"
        ) from None
    except _UNDECODABLE as err:
        raise UserError(f"{path}: not a readable image ({_first_line(err)})") from None
    if size is not None:
        image = ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
    elif shape is not None and image.size != shape:
        raise UserError(
            f"{path}: {image.size[0]}x{image.size[1]} but the first image is "
            f"{shape[0]}x{shape[1]}; give a size to resize them all"
        )
    return np.asarray(image), image.size


def _read_captions(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise UserError(f"captions {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"captions {path}: cannot be read as UTF-8 text ({err})") from None
    by_file: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            by_file[Path(record["file"]).as_posix()] = str(record["text"])
        except (KeyError, TypeError, ValueError, RecursionError) as err:
            raise UserError(
                f'{path}:{n}: expected {{"file": "relative/path.png", "text": "..."}} ({err})'
            ) from None
    return by_file


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
