import numpy as np
from scipy import stats

from collapse.data.noise import row_normals, row_uniforms


def test_rows_do_not_depend_on_batching():
    ids = np.arange(1000, 3000)
    whole = row_normals(7, ids, 5)
    parts = np.concatenate([row_normals(7, ids[a : a + 333], 5) for a in range(0, 2000, 333)])
    np.testing.assert_array_equal(whole, parts)
    shuffled = np.random.default_rng(0).permutation(ids)
    np.testing.assert_array_equal(row_normals(7, shuffled, 5), whole[shuffled - 1000])


def test_seed_stream_and_id_each_change_the_row():
    ids = np.arange(100)
    base = row_normals(1, ids, 4)
    assert not np.allclose(base, row_normals(2, ids, 4))
    assert not np.allclose(base, row_normals(1, ids, 4, stream=1))
    assert not np.allclose(base, row_normals(1, ids + 1, 4))


def test_normals_are_standard_and_uncorrelated():
    z = row_normals(0, np.arange(50_000), 6)
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.01
    corr = np.corrcoef(z.T)
    assert np.abs(corr - np.eye(6)).max() < 0.02
    assert stats.kstest(z[:, 3], "norm").pvalue > 0.01
    # consecutive ids are independent too (no lattice structure across rows)
    assert abs(np.corrcoef(z[:-1, 0], z[1:, 0])[0, 1]) < 0.02


def test_uniforms_cover_the_unit_interval_evenly():
    u = row_uniforms(3, np.arange(20_000), 3)
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u.reshape(-1), "uniform").pvalue > 0.01
