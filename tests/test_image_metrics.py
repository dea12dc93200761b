"""Image metrics: density/coverage, FID/KID through clean-fid, and the feature extractors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from collapse.data.space import DataSpace
from collapse.errors import UserError
from collapse.metrics import digits_cnn, features, manifold
from collapse.metrics.frechet import fid, kid
from collapse.metrics.inception import WEIGHTS_ENV, weights_location
from collapse.metrics.manifold import density_coverage
from collapse.store.storage import Storage

DIGITS = DataSpace("image", (8, 8, 1))


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- density and coverage (Naeem et al. 2020) ------------------------------------------------


def test_density_coverage_hand_computed():
    # real 0..5 on a line, k=2: radii 2,1,1,1,1,2. Sample 0.5 lies in the balls of 0 and 1;
    # sample 10 in none. density = 2 / (k * 2 samples) = 0.5; coverage = 2 of 6 balls.
    real = np.arange(6.0)[:, None]
    assert density_coverage(np.array([[0.5], [10.0]]), real, k=2) == (0.5, pytest.approx(1 / 3))


def test_density_coverage_of_a_set_with_itself():
    x = _rng(1).normal(size=(300, 3))
    density, coverage = density_coverage(x, x)
    assert coverage == 1.0
    # each ball holds its centre and k neighbours, the k-th on its boundary, where rounding
    # decides: density is between 1 and (k + 1) / k
    assert 1.0 <= density <= 1.2


def test_density_of_samples_from_the_real_distribution_is_about_one():
    samples, real = _rng(9).normal(size=(3000, 8)), _rng(10).normal(size=(3000, 8))
    density, coverage = density_coverage(samples, real)
    assert density == pytest.approx(1.0, abs=0.05)
    assert coverage > 0.9


def test_density_coverage_far_apart_is_zero():
    x = _rng(2).normal(size=(100, 2))
    assert density_coverage(x + 100.0, x) == (0.0, 0.0)


def test_mode_collapse_keeps_density_and_loses_coverage():
    rng = _rng(3)
    real = np.concatenate([rng.normal(size=(200, 2)) + c for c in ([-6, 0], [6, 0])])
    collapsed = rng.normal(size=(400, 2)) * 0.3 + [-6, 0]  # one mode's core only
    density, coverage = density_coverage(collapsed, real)
    assert density > 0.8 and coverage < 0.5


def test_density_coverage_independent_of_chunking(monkeypatch):
    rng = _rng(4)
    samples, real = rng.normal(size=(230, 3)), rng.normal(size=(170, 3)) + 0.3
    whole = density_coverage(samples, real)
    monkeypatch.setattr(manifold, "_CHUNK_ELEMENTS", 1000)
    assert density_coverage(samples, real) == whole


# --- FID and KID on features (clean-fid) -----------------------------------------------------


def test_fid_is_the_frechet_distance_of_the_fitted_gaussians():
    rng = _rng(5)
    a = rng.normal(size=(500, 4)) @ np.diag([1.0, 2.0, 0.5, 1.0]) + 1.0
    b = rng.normal(size=(400, 4))
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_the_unbiased_polynomial_mmd_and_deterministic():
    rng = _rng(6)
    x, y = rng.normal(size=(60, 3)) + 0.5, rng.normal(size=(60, 3))
    # with fewer rows than a subset, every subset is all rows: the full unbiased estimate
    d, m = 3, 60

    def kernel(p, q):
        return (p @ q.T / d + 1) ** 3

    within = kernel(x, x) + kernel(y, y)
    expected = ((within.sum() - np.trace(within)) / (m - 1) - 2 * kernel(y, x).sum() / m) / m
    state = np.random.get_state()
    assert kid(x, y) == pytest.approx(expected, rel=1e-9)
    assert kid(x, y) == kid(x, y)
    assert np.array_equal(np.random.get_state()[1], state[1]), "the global RNG was disturbed"
    same = rng.normal(size=(60, 3))  # from y's distribution: about 0, far below the shift's
    assert abs(kid(same, y)) < kid(x, y) / 5


# --- digits-cnn ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_net(tmp_path_factory):
    storage = Storage(str(tmp_path_factory.mktemp("extractors")))
    return storage, features.load_digits_cnn(DIGITS, storage)


def test_digits_cnn_classifies_the_held_out_digits(digits_net):
    import pyarrow as pa

    from collapse.data.shards import table_to_images
    from collapse.data.sources import real_tables

    table = pa.concat_tables(real_tables("sklearn:digits", "test"))
    x, labels = digits_cnn.to_input(table_to_images(table)), table.column("label").to_numpy()
    with torch.no_grad():
        accuracy = (digits_net[1](x).argmax(1).numpy() == labels).mean()
    assert accuracy > 0.95


def test_digits_cnn_is_cached_in_storage_and_reused(digits_net, monkeypatch):
    storage, net = digits_net
    assert storage.exists(features.digits_cnn_key((8, 8, 1)))

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(digits_cnn, "train_extractor", no_training)
    again = features.load_digits_cnn(DIGITS, storage)
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_digits_cnn_training_is_deterministic(monkeypatch):
    monkeypatch.setattr(digits_cnn, "EPOCHS", 1)
    images = _rng(7).integers(0, 256, size=(128, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(128) % 10
    first, second = (
        digits_cnn.train_extractor(images, labels),
        digits_cnn.train_extractor(images, labels),
    )
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_digits_cnn_features_separate_real_digits_from_noise(digits_net):
    storage = digits_net[0]
    extract = features.build("digits-cnn", DIGITS, storage)
    import pyarrow as pa

    from collapse.data.sources import real_tables

    train = DIGITS.to_vectors(pa.concat_tables(real_tables("sklearn:digits", "train", limit=360)))
    test = DIGITS.to_vectors(pa.concat_tables(real_tables("sklearn:digits", "test")))
    noise = _rng(8).uniform(-1, 1, size=test.shape).astype(np.float32)
    f_train, f_test, f_noise = extract(train), extract(test), extract(noise)
    assert f_train.shape == (360, digits_cnn.FEATURE_DIM)
    assert fid(f_train, f_test) * 10 < fid(f_noise, f_test)


def test_digits_cnn_needs_square_single_channel_images(tmp_path):
    with pytest.raises(UserError, match="digits-cnn needs square single-channel"):
        features.build("digits-cnn", DataSpace("image", (8, 8, 3)), Storage(str(tmp_path)))
    with pytest.raises(UserError, match="is for images"):
        features.build("inception", DataSpace("vector", (2,)), Storage(str(tmp_path)))


# --- Inception (clean-fid), with a stand-in weights file -------------------------------------


class _StandInLayers(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 2048 numbers per image from its normalised pixels: mean and spread, repeated
        stats = torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], dim=1)
        return stats.repeat(1, 1024)


class _StandInInception(torch.nn.Module):
    """What clean-fid's InceptionV3W reads from the weights file: a module with `layers`."""

    def __init__(self):
        super().__init__()
        self.layers = _StandInLayers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def test_missing_inception_weights_are_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(UserError) as err:
        weights_location(str(tmp_path / "nowhere.pt"))
    message = str(err.value)
    assert "\n" not in message
    assert "inception-2015-12-05.pt" in message and "/tmp/inception-2015-12-05.pt" in message
    assert "nowhere.pt" in message and WEIGHTS_ENV in message


def test_inception_features_through_clean_fid_with_weights_from_the_environment(
    tmp_path, monkeypatch
):
    weights = tmp_path / "my-inception.pt"
    torch.jit.save(torch.jit.script(_StandInInception()), str(weights))
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    space = DataSpace("image", (8, 8, 1))
    extract = features.build("inception", space, Storage(str(tmp_path)), batch_size=3)
    dark = np.full((4, 64), -1.0, dtype=np.float32)  # black images
    light = np.full((5, 64), 1.0, dtype=np.float32)  # white images
    f_dark, f_light = extract(dark), extract(light)
    assert f_dark.shape == (4, 2048) and f_light.shape == (5, 2048)
    # clean-fid's normalisation: (pixel - 128) / 128 over the 299x299 resize
    np.testing.assert_allclose(f_dark[:, 0], -1.0, atol=1e-5)
    np.testing.assert_allclose(f_light[:, 0], 127 / 128, atol=1e-5)
