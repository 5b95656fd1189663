"""The compatibility module: RecBole 1.2.1 on NumPy 2, pandas 3 and torch >= 2.6, without Ray."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import recbole_autodenoise as rad
from recbole_autodenoise import checkpoints, compat


def test_numpy_aliases_recbole_config_reads_exist():
    compat.apply()
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_


def test_recbole_config_builds_on_this_numpy():
    config = rad.make_config("BPR", "ml-100k")
    assert config["model"] == "BPR" and config["eval_protocol"] == "user_first"


@pytest.mark.slow
def test_importing_the_plugin_and_training_never_imports_ray_or_recbole_quick_start(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        sys.argv = ["x"]
        from recbole_autodenoise.quick_start import run
        run("BPR", "ml-100k", config_dict={"epochs": 1, "show_progress": False, "state": "WARNING",
            "eval_batch_size": 1048576}, saved=False)
        bad = [m for m in sys.modules if m == "ray" or m.startswith("ray.") \
or m.startswith("recbole.quick_start")]
        print("IMPORTED", bad)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "IMPORTED []" in out.stdout


def test_recbole_models_do_not_leave_anomaly_detection_on():
    import recbole.model.sequential_recommender  # noqa: F401  (SINE switches it on at import)

    compat.apply()
    assert not torch.is_anomaly_enabled()


def test_missing_values_are_filled_under_pandas_copy_on_write(tmp_path):
    # a float field other than the rating and the timestamp (empty cells there are refused)
    folder = tmp_path / "holes"
    folder.mkdir()
    rows = [(1, 1, 4, 1, 0.5), (1, 2, 3, 2, ""), (2, 1, 2, 3, 1.5), (2, 3, 3, 4, 1.0)]
    (folder / "holes.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\tweight:float\n"
        + "".join("\t".join(map(str, row)) + "\n" for row in rows),
        encoding="utf-8",
    )
    config = rad.make_config(
        "BPR",
        "holes",
        config_dict={
            "data_path": str(tmp_path),
            "user_inter_num_interval": "[0,inf)",
            "item_inter_num_interval": "[0,inf)",
            "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp", "weight"]},
        },
    )
    dataset = rad.create_dataset(config)
    weights = torch.as_tensor(dataset.inter_feat["weight"])
    assert not torch.isnan(weights).any()
    assert sorted(weights.tolist()) == [0.5, 1.0, 1.0, 1.5]  # the hole gets the mean, 1


def test_checkpoints_load_with_weights_only(tmp_path):
    path = tmp_path / "c.pth"
    state = {"state_dict": {"w": torch.arange(3)}, "meta": {"model": "BPR", "k": [1, 2]}}
    checkpoints.atomic_torch_save(state, path)
    loaded = checkpoints.load_checkpoint(path)
    assert loaded["meta"] == {"model": "BPR", "k": [1, 2]}
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(3))


def test_a_pickled_object_is_refused_by_the_safe_loader(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save(
        {"obj": Path("x")}, path
    )  # an arbitrary class instance can only be loaded by unpickling
    with pytest.raises(Exception):
        checkpoints.load_checkpoint(path)


def test_dok_update_restored_as_an_unchecked_dict_update():
    from scipy.sparse import dok_matrix

    compat.apply()
    matrix = dok_matrix((2, 3), dtype=np.float32)
    matrix._update({(0, 2): 1, (1, 0): 1})
    assert matrix.toarray().tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    assert matrix.nnz == 2


def test_graph_models_build_their_normalised_adjacency():
    """LightGCN's (and NGCF's) own ``get_norm_adj_mat`` on 2 users x 2 items, u0-i0, u0-i1, u1-i1:
    L = D^-1/2 A D^-1/2 over the (user + item) graph, degrees u0 2, u1 1, i0 1, i1 2."""
    from types import SimpleNamespace

    from recbole.model.general_recommender import NGCF, LightGCN
    from scipy.sparse import coo_matrix

    compat.apply()
    inter = coo_matrix((np.ones(3, dtype=np.float32), ([0, 0, 1], [0, 1, 1])), shape=(2, 2))
    fake = SimpleNamespace(n_users=2, n_items=2, interaction_matrix=inter)
    half, eps = 1 / np.sqrt(2), torch.finfo(torch.float32).eps * 4
    expected = torch.tensor(
        [[0, 0, half, 0.5], [0, 0, 0, half], [half, 0, 0, 0], [0.5, half, 0, 0]],
        dtype=torch.float32,
    )
    torch.testing.assert_close(
        LightGCN.get_norm_adj_mat(fake).to_dense(), expected, rtol=0, atol=eps
    )
    ngcf = NGCF.get_norm_adj_mat(fake)
    ngcf = ngcf.to_dense() if ngcf.is_sparse else ngcf
    torch.testing.assert_close(ngcf, expected, rtol=0, atol=eps)
