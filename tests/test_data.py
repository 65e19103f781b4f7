"""Tests for nf_jax.data: the IDX parser on hand-written files, the real Fashion-MNIST files."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from nf_jax import data


def _idx_bytes(array: np.ndarray) -> bytes:
  """An IDX file written independently of the parser: magic, big-endian dims, raw bytes."""
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write(path: str, payload: bytes, gz: bool = True) -> str:
  if gz:
    with gzip.open(path, "wb") as f:
      f.write(payload)
  else:
    with open(path, "wb") as f:
      f.write(payload)
  return path


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_tiny_file_roundtrip(tmp_path, gz):
  images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
  path = _write(str(tmp_path / ("img.gz" if gz else "img")), _idx_bytes(images), gz)
  out = data.read_idx(path, expected_ndim=3, expected_count=3)
  np.testing.assert_array_equal(out, images)
  labels = np.array([0, 9, 3, 1], np.uint8)
  path = _write(str(tmp_path / "lab.gz"), _idx_bytes(labels))
  np.testing.assert_array_equal(data.read_idx(path, expected_ndim=1), labels)


def test_read_idx_bad_magic(tmp_path):
  payload = bytearray(_idx_bytes(np.zeros((2, 2, 2), np.uint8)))
  payload[2] = 0x0D  # float32 type code: not what Fashion-MNIST uses
  path = _write(str(tmp_path / "x.gz"), bytes(payload))
  with pytest.raises(data.CorruptDataError, match="bad IDX magic"):
    data.read_idx(path, expected_ndim=3)
  path = _write(str(tmp_path / "y.gz"), _idx_bytes(np.zeros((2, 2, 2), np.uint8)))
  with pytest.raises(data.CorruptDataError, match="bad IDX magic"):
    data.read_idx(path, expected_ndim=1)  # labels expected, images found


def test_read_idx_count_and_size_mismatch(tmp_path):
  images = np.ones((4, 3, 3), np.uint8)
  path = _write(str(tmp_path / "a.gz"), _idx_bytes(images))
  with pytest.raises(data.CorruptDataError, match="header says 4 items, expected 5"):
    data.read_idx(path, expected_ndim=3, expected_count=5)
  path = _write(str(tmp_path / "b.gz"), _idx_bytes(images)[:-7])  # data truncated
  with pytest.raises(data.CorruptDataError, match="data bytes but the header"):
    data.read_idx(path, expected_ndim=3)
  path = _write(str(tmp_path / "c.gz"), _idx_bytes(images)[:9])  # header truncated
  with pytest.raises(data.CorruptDataError, match="truncated header"):
    data.read_idx(path, expected_ndim=3)


def test_read_idx_truncated_gzip(tmp_path):
  blob = gzip.compress(_idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 28, 28))))
  path = str(tmp_path / "cut.gz")
  with open(path, "wb") as f:
    f.write(blob[: len(blob) // 2])
  with pytest.raises(data.CorruptDataError, match="corrupt or truncated"):
    data.read_idx(path, expected_ndim=3)
  with open(path, "wb") as f:
    f.write(b"not a gzip file at all")
  with pytest.raises(data.CorruptDataError, match="corrupt or truncated"):
    data.read_idx(path, expected_ndim=3)


def test_corrupt_file_in_data_dir_is_reported(tmp_path):
  # A data_dir with all four files, each holding 3 items instead of 60000/10000.
  for img, lab, _ in data.IDX_FILES.values():
    _write(str(tmp_path / (img + ".gz")), _idx_bytes(np.zeros((3, 2, 2), np.uint8)))
    _write(str(tmp_path / (lab + ".gz")), _idx_bytes(np.zeros((3,), np.uint8)))
  with pytest.raises(data.CorruptDataError, match="expected 60000"):
    data.load("fashion_mnist", data_dir=str(tmp_path))


def test_missing_data_names_both_remedies(tmp_path):
  for name in ("cifar10", "mnist"):
    with pytest.raises(data.DatasetNotFoundError) as info:
      data.load(name, data_dir=str(tmp_path))
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "pip install '.[tfds]'" in message and "data_dir" in message


def test_unknown_name():
  with pytest.raises(ValueError, match="name='svhn'"):
    data.load("svhn")


def test_normalise_uses_train_statistics():
  train = np.array([[0, 255], [255, 0]], np.uint8)
  test = np.array([[0, 0]], np.uint8)
  x_train, x_test = data.normalise(train, test)
  # Hand-computed: pixels 0/1 with mean 0.5 and std 0.5 -> -1/+1.
  np.testing.assert_allclose(x_train, [[-1, 1], [1, -1]])
  np.testing.assert_allclose(x_test, [[-1, -1]])


@pytest.mark.skipif(
  not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR), reason="apt-get install dataset-fashion-mnist"
)
def test_real_fashion_mnist():
  ds = data.load("fashion_mnist")
  assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
  # Fashion-MNIST is balanced: 6000 train and 1000 test images per class (Xiao et al. 2017).
  np.testing.assert_array_equal(np.bincount(ds.y_train), np.full(10, 6000))
  np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 1000))
  assert abs(float(ds.x_train.mean())) < 1e-3 and abs(float(ds.x_train.std()) - 1) < 1e-3
  # The parser agrees with an independent decode of the first test image.
  with gzip.open(os.path.join(data.DEBIAN_FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz")) as f:
    raw = f.read()
  first = np.frombuffer(raw[16 : 16 + 784], np.uint8).astype(np.float32) / 255.0
  train_raw = (
    data.read_idx(
      os.path.join(data.DEBIAN_FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"), 3, 60000
    ).astype(np.float32)
    / 255.0
  )
  expected = (first - train_raw.mean()) / train_raw.std()
  np.testing.assert_allclose(ds.x_test[0], expected, rtol=1e-5, atol=1e-5)


def test_pool_averages_blocks_and_renormalises():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(6, 4, 4, 1)).astype(np.float32)
  ds = data.Dataset(
    x_train=images[:4].reshape(4, -1),
    y_train=np.zeros(4, np.int32),
    x_test=images[4:].reshape(2, -1),
    y_test=np.zeros(2, np.int32),
    num_classes=10,
    image_shape=(4, 4, 1),
    source="synthetic",
  )
  pooled = data.pool(ds, 2)
  assert pooled.image_shape == (2, 2, 1) and pooled.x_train.shape == (4, 4)
  # Hand-computed: the top-left 2x2 block mean of each image, up to the train normalisation.
  block_means = images[:, :2, :2, 0].mean(axis=(1, 2))
  raw_train = images[:4].reshape(4, 2, 2, 2, 2).mean(axis=(2, 4)).reshape(4, -1)
  expected = (block_means - raw_train.mean()) / raw_train.std()
  np.testing.assert_allclose(pooled.x_train[:, 0], expected[:4], rtol=1e-5)
  np.testing.assert_allclose(pooled.x_test[:, 0], expected[4:], rtol=1e-5)
  assert abs(pooled.x_train.mean()) < 1e-5 and abs(pooled.x_train.std() - 1) < 1e-5
  assert data.pool(ds, 1) is ds
  with pytest.raises(ValueError, match="factor=3"):
    data.pool(ds, 3)


def _toy_dataset(num_train: int = 50, num_test: int = 20) -> data.Dataset:
  """Each image's pixels encode its own index, so rows can be traced through the split."""
  x_train = np.repeat(np.arange(num_train, dtype=np.float32)[:, None], 4, axis=1)
  x_test = np.repeat(1000 + np.arange(num_test, dtype=np.float32)[:, None], 4, axis=1)
  y_train = (np.arange(num_train) % 10).astype(np.int32)
  y_test = (np.arange(num_test) % 10).astype(np.int32)
  return data.Dataset(x_train, y_train, x_test, y_test, 10, (2, 2, 1), "toy")


def test_validation_split_is_deterministic_disjoint_and_complete():
  ds = _toy_dataset()
  a = data.split_validation(ds, 10, seed=0)
  b = data.split_validation(ds, 10, seed=0)
  np.testing.assert_array_equal(a.x_val, b.x_val)  # same seed, same split
  other = data.split_validation(ds, 10, seed=1)
  assert not np.array_equal(a.x_val, other.x_val)
  train_ids, val_ids = set(a.x_train[:, 0]), set(a.x_val[:, 0])
  assert len(val_ids) == 10 and len(train_ids) == 40
  assert not train_ids & val_ids  # held out from training
  assert train_ids | val_ids == set(range(50))  # nothing lost
  assert not (train_ids | val_ids) & set(a.x_test[:, 0])  # never the test split
  np.testing.assert_array_equal(a.x_test, ds.x_test)
  # Labels travel with their images; the remaining training rows keep their order.
  np.testing.assert_array_equal(a.y_val, a.x_val[:, 0].astype(np.int32) % 10)
  assert list(a.x_train[:, 0]) == sorted(a.x_train[:, 0])
  # The held-out indices are a function of (num_train, size, seed) only.
  np.testing.assert_array_equal(a.x_val[:, 0], data.validation_indices(50, 10, 0))


def test_validation_split_refuses_bad_sizes_and_a_second_split():
  ds = _toy_dataset()
  for size in (0, 50, -3):
    with pytest.raises(ValueError, match=f"validation size={size} must be in"):
      data.split_validation(ds, size)
  with pytest.raises(ValueError, match="already has a validation split"):
    data.split_validation(data.split_validation(ds, 10), 5)
