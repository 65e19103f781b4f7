"""Datasets as numpy arrays: Fashion-MNIST from Debian's IDX files, or TFDS.

``load(name, data_dir=None)`` returns a :class:`Dataset` of flattened, normalised images
(``float32[N, H*W*C]``) and integer labels (``int32[N]``). Sources, in order:

1. IDX files (the format of LeCun's MNIST and Zalando's Fashion-MNIST; ``mnist`` and
   ``fashion_mnist``): ``data_dir`` (or ``data_dir/fashion-mnist``) when given, else, for
   ``fashion_mnist``, Debian's ``dataset-fashion-mnist`` package at
   ``/usr/share/datasets/fashion-mnist``. A given ``data_dir`` is never replaced by Debian's
   copy: a missing folder, or one with only some of the four IDX files, is an error.
2. TensorFlow Datasets (``mnist``, ``fashion_mnist``, ``cifar10``), imported lazily, read from
   ``data_dir`` with ``download=False``: nothing here ever downloads.

If neither source has the data, :class:`DatasetNotFoundError` names both remedies. A corrupt or
truncated file raises :class:`CorruptDataError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import NamedTuple

import numpy as np
from absl import logging

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
NAMES = ("mnist", "fashion_mnist", "cifar10")
IDX_NAMES = ("mnist", "fashion_mnist")

# IDX file names of both MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/,
# https://github.com/zalandoresearch/fashion-mnist#get-the-data).
IDX_FILES = {
  "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
# IDX magic: two zero bytes, a type code (0x08 = unsigned byte) and the number of dimensions.
IDX_UBYTE = 0x08
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}


class Dataset(NamedTuple):
  """Train and test splits.

  Fields:
    x_train: ``float32[N_train, D]`` flattened images, normalised to zero mean and unit
      variance with the *train* split's pixel mean and std (applied to both splits).
    y_train: ``int32[N_train]`` labels in ``[0, num_classes)``.
    x_test: ``float32[N_test, D]``.
    y_test: ``int32[N_test]``.
    num_classes: number of classes.
    image_shape: ``(H, W, C)`` of one image before flattening.
    source: where the data came from (a folder or ``"tfds:<data_dir>"``).
    x_val: ``float32[N_val, D]`` validation images carved from the training set by
      :func:`split_validation` (None until then).
    y_val: ``int32[N_val]``.
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  image_shape: tuple[int, int, int]
  source: str
  x_val: np.ndarray | None = None
  y_val: np.ndarray | None = None


class DatasetNotFoundError(FileNotFoundError):
  """Neither the IDX files nor TFDS have the data set."""


class CorruptDataError(ValueError):
  """A data file is truncated, not gzip, or its header disagrees with its contents."""


def _read_bytes(path: str) -> bytes:
  """The (gunzipped if ``.gz``) contents of ``path``; CorruptDataError if the gzip is broken."""
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        return f.read()
    with open(path, "rb") as f:
      return f.read()
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise CorruptDataError(
      f"{path} is corrupt or truncated ({type(e).__name__}: {e}); delete it and reinstall "
      "(e.g. apt-get install --reinstall dataset-fashion-mnist)"
    ) from e


def read_idx(path: str, expected_ndim: int, expected_count: int | None = None) -> np.ndarray:
  """Parses one IDX file of unsigned bytes into ``uint8[count, *dims]``.

  Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): magic ``0x00 0x00 0x08 ndim``,
  then ``ndim`` big-endian uint32 sizes, then the data, row-major.

  Args:
    path: the file (``.gz`` is gunzipped).
    expected_ndim: 1 for labels, 3 for images.
    expected_count: the number of items the split must hold (None: any).

  Raises:
    CorruptDataError: naming the file and the mismatch (magic, count, size).
  """
  raw = _read_bytes(path)
  if len(raw) < 4:
    raise CorruptDataError(f"{path}: {len(raw)} bytes is too short for an IDX header (4 bytes)")
  zero0, zero1, dtype_code, ndim = raw[:4]
  if zero0 or zero1 or dtype_code != IDX_UBYTE or ndim != expected_ndim:
    raise CorruptDataError(
      f"{path}: bad IDX magic {raw[:4].hex()}; expected 0000{IDX_UBYTE:02x}{expected_ndim:02x} "
      f"(unsigned bytes, {expected_ndim} dims)"
    )
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise CorruptDataError(f"{path}: truncated header ({len(raw)} < {header} bytes)")
  dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
  if expected_count is not None and dims[0] != expected_count:
    raise CorruptDataError(f"{path}: header says {dims[0]} items, expected {expected_count}")
  size = int(np.prod(dims))
  if len(raw) - header != size:
    raise CorruptDataError(
      f"{path}: {len(raw) - header} data bytes but the header {dims} needs {size} "
      "(truncated or padded file)"
    )
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(directory: str, stem: str) -> str | None:
  for candidate in (stem + ".gz", stem):
    path = os.path.join(directory, candidate)
    if os.path.exists(path):
      return path
  return None


def _idx_dirs(name: str, data_dir: str | None) -> list[str]:
  """Folders searched for IDX files: ``data_dir`` (and its ``<name>`` subfolder) when given,
  else Debian's copy (Fashion-MNIST only). A given ``data_dir`` is never substituted."""
  if data_dir is not None:
    return [data_dir, os.path.join(data_dir, name.replace("_", "-"))]
  return [DEBIAN_FASHION_MNIST_DIR] if name == "fashion_mnist" else []


def load_idx_dir(directory: str, num_classes: int = 10) -> tuple[np.ndarray, ...]:
  """Reads the four IDX files in ``directory``: ``(x_train, y_train, x_test, y_test)`` uint8.

  Checks that images and labels agree in count and that labels are in ``[0, num_classes)``.
  """
  out = []
  for split, (images_stem, labels_stem, count) in IDX_FILES.items():
    images_path, labels_path = _find_idx(directory, images_stem), _find_idx(directory, labels_stem)
    if images_path is None or labels_path is None:
      raise DatasetNotFoundError(f"{directory} lacks the {split} IDX files ({images_stem}[.gz])")
    images = read_idx(images_path, expected_ndim=3, expected_count=count)
    labels = read_idx(labels_path, expected_ndim=1, expected_count=count)
    if labels.max(initial=0) >= num_classes:
      raise CorruptDataError(f"{labels_path}: label {int(labels.max())} outside [0, {num_classes})")
    out += [images, labels]
  return tuple(out)


def _has_idx(directory: str) -> bool:
  return all(
    _find_idx(directory, stem) is not None for files in IDX_FILES.values() for stem in files[:2]
  )


def _load_tfds(name: str, data_dir: str | None) -> tuple[np.ndarray, ...] | None:
  """``(x_train, y_train, x_test, y_test)`` uint8 from TFDS, or None if TFDS/data is absent."""
  try:
    import tensorflow_datasets as tfds  # Lazy: a heavy optional dependency ('.[tfds]').
  except ImportError:
    logging.info("tensorflow_datasets is not installed; skipping the TFDS source for %s", name)
    return None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      logging.info("TFDS has no prepared %s in data_dir=%s", name, data_dir)
      return None
    splits = tfds.as_numpy(
      builder.as_dataset(split=["train", "test"], batch_size=-1, as_supervised=True)
    )
  except Exception as e:  # TFDS raises many types; say which and fall through to the error.
    logging.warning("TFDS could not load %s from %s: %s", name, data_dir, e)
    return None
  (x_train, y_train), (x_test, y_test) = splits
  return x_train, y_train, x_test, y_test


def normalise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images ``[N, ...]`` -> ``float32[N, D]`` with the train split's mean 0 and std 1."""
  train = x_train.reshape(len(x_train), -1).astype(np.float32) / 255.0
  test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255.0
  mean, std = float(train.mean()), float(train.std())
  if std == 0.0:
    raise CorruptDataError("the training images are constant (pixel std = 0)")
  return (train - mean) / std, (test - mean) / std


def pool(ds: Dataset, factor: int) -> Dataset:
  """Average-pools every image over ``factor x factor`` pixel blocks (a lower-resolution task).

  ``[N, H * W * C] -> [N, (H / factor) * (W / factor) * C]``; H and W must divide by ``factor``.
  The pixel statistics change, so the result is re-normalised with the train split's mean, std.
  """
  height, width, channels = ds.image_shape
  if factor < 1 or height % factor or width % factor:
    raise ValueError(
      f"pool factor={factor} should be a positive divisor of the image size {height}x{width}"
    )
  if factor == 1:
    return ds

  def pooled(x: np.ndarray) -> np.ndarray:
    blocks = x.reshape(len(x), height // factor, factor, width // factor, factor, channels)
    return blocks.mean(axis=(2, 4)).reshape(len(x), -1)

  train, test = pooled(ds.x_train), pooled(ds.x_test)
  mean, std = float(train.mean()), float(train.std())
  shape = (height // factor, width // factor, channels)
  val = None if ds.x_val is None else (pooled(ds.x_val) - mean) / std
  return ds._replace(
    x_train=(train - mean) / std, x_test=(test - mean) / std, x_val=val, image_shape=shape
  )


def validation_indices(num_train: int, size: int, seed: int = 0) -> np.ndarray:
  """Sorted indices ``int64[size]`` of the training examples held out for validation.

  A function of ``(num_train, size, seed)`` only: the first ``size`` entries of a seeded
  permutation, so every run with the same split holds out the same examples.
  """
  if not 0 < size < num_train:
    raise ValueError(
      f"validation size={size} must be in (0, {num_train}): it is carved from the "
      f"{num_train} training examples; 10000 (of 60000) is the project's default"
    )
  return np.sort(np.random.default_rng([seed, num_train]).permutation(num_train)[:size])


def split_validation(ds: Dataset, size: int, seed: int = 0) -> Dataset:
  """Holds ``size`` training examples out as the validation split (:func:`validation_indices`).

  ``x_train``/``y_train`` keep the other examples in their original order; ``x_val``/``y_val``
  get the held-out ones. The test split is untouched, so validation and test are disjoint.
  Pixel normalisation is unchanged: its two scalars (mean, std) were computed over the whole
  training split, validation images included, which leaks no labels.
  """
  if ds.x_val is not None:
    raise ValueError("this Dataset already has a validation split; split the loaded data once")
  held = validation_indices(len(ds.x_train), size, seed)
  keep = np.ones(len(ds.x_train), bool)
  keep[held] = False
  return ds._replace(
    x_train=ds.x_train[keep],
    y_train=ds.y_train[keep],
    x_val=ds.x_train[held],
    y_val=ds.y_train[held],
  )


def load(name: str, data_dir: str | None = None) -> Dataset:
  """Loads ``name`` (one of ``NAMES``) from IDX files or TFDS; see the module docstring.

  Returns:
    A :class:`Dataset` with flattened ``float32`` images and ``int32`` labels.

  Raises:
    ValueError: for an unknown name.
    DatasetNotFoundError: neither source has the data (the message names both remedies), or
      a given ``data_dir`` is missing or holds only some of the IDX files (named).
    CorruptDataError: a file is corrupt or truncated.
  """
  if name not in NAMES:
    raise ValueError(f"name={name!r} is not a known data set; choose one of {NAMES}")
  num_classes = NUM_CLASSES[name]
  if data_dir is not None and not os.path.isdir(data_dir):
    what = "is a file" if os.path.exists(data_dir) else "does not exist"
    raise DatasetNotFoundError(
      f"data_dir={data_dir!r} {what}; pass the folder that holds {name!r}'s files, or omit "
      "data_dir for the default source"
    )
  arrays, source = None, None
  if name in IDX_NAMES:
    for directory in _idx_dirs(name, data_dir):
      if _has_idx(directory):
        arrays, source = load_idx_dir(directory, num_classes), directory
        break
      stems = [stem for files in IDX_FILES.values() for stem in files[:2]]
      missing = [stem for stem in stems if _find_idx(directory, stem) is None]
      if data_dir is not None and len(missing) < len(stems):  # some files, not all: partial
        raise DatasetNotFoundError(
          f"data_dir={data_dir!r}: {directory} holds only part of {name!r}'s IDX files; missing "
          f"{', '.join(m + '[.gz]' for m in missing)}. Add them, or omit data_dir for the "
          "default source"
        )
  if arrays is None:
    arrays, source = _load_tfds(name, data_dir), f"tfds:{data_dir}"
  if arrays is None:
    searched = ", ".join(_idx_dirs(name, data_dir)) or "(no IDX source for this data set)"
    raise DatasetNotFoundError(
      f"no data for {name!r}. Searched IDX files in: {searched}; TFDS in data_dir={data_dir}. "
      "Remedies: (1) `apt-get install dataset-fashion-mnist` (Fashion-MNIST IDX files in "
      f"{DEBIAN_FASHION_MNIST_DIR}), or (2) `pip install '.[tfds]'` and prepare the data set "
      "with TFDS into a folder passed as data_dir (--data_dir)."
    )
  x_train, y_train, x_test, y_test = arrays
  image_shape = tuple(x_train.shape[1:]) + (1,) * (4 - x_train.ndim)
  x_train_f, x_test_f = normalise(x_train, x_test)
  return Dataset(
    x_train=x_train_f,
    y_train=np.asarray(y_train, dtype=np.int32),
    x_test=x_test_f,
    y_test=np.asarray(y_test, dtype=np.int32),
    num_classes=num_classes,
    image_shape=image_shape,  # type: ignore[arg-type]
    source=source,
  )
