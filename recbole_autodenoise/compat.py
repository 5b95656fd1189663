"""Make RecBole 1.2.1 work on today's stack, in one place, applied once on import.

RecBole 1.2.1 (the latest release) predates NumPy 2, pandas 3 and torch 2.6. Each fix below is
the smallest change that restores RecBole's own behaviour; nothing here changes results.

* NumPy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``, which RecBole's
  ``Config.compatibility_settings`` reads: the aliases are restored when missing.
* pandas 3 (copy-on-write) turns RecBole's chained ``df[field].fillna(..., inplace=True)`` in
  ``Dataset._fill_nan`` into a silent no-op: the numeric and token fields are filled by assignment
  first. (The same idiom in ``_load_feat`` only touches sequence fields, which a missing value
  still makes fail loudly rather than silently.)
* Importing RecBole's models (``recbole.model.sequential_recommender.sine``) switches on
  ``torch.autograd.set_detect_anomaly(True)`` for the whole process, which makes every backward
  pass several times slower (SASRec, one ML-100K epoch on a busy 2-core CPU: 55 s with it, 16 s
  without): the models are imported here and anomaly detection is switched back off.
* SciPy >= 1.12 dropped ``dok_matrix._update`` (a ``dict.update`` without index checks), with
  which RecBole's graph models (LightGCN, NGCF, NCL, GCMC, SpectralCF, KGIN, MCCLK) build their
  adjacency matrix: it is restored as an update of the matrix's own dict, as it was.
* RecBole's multi-process mode wraps the model in ``DistributedDataParallel(model,
  device_ids=[local_rank])``, which torch refuses for a model on the CPU (gloo ranks,
  ``distributed.py``): ``device_ids`` is dropped there, as torch's documentation asks for CPU
  modules.
* RecBole's ``ensure_dir`` checks, then creates: two ranks starting together (``./log``) race,
  and the loser fails with ``FileExistsError``. It creates with ``exist_ok`` here, wherever
  RecBole imported it by name.
* ``recbole.quick_start`` imports Ray, which fails on NumPy 2 and has no wheel for Python 3.12+:
  this package never imports it (a test guards that).
* torch >= 2.6 loads with ``weights_only=True``; RecBole's own checkpoints pickle its ``Config``.
  Our trainer saves plain state dicts instead, read and written by ``checkpoints.py`` only.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

_NUMPY_ALIASES = {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}


def _restore_numpy_aliases() -> None:
    for name, target in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, target)


def _patch_fill_nan() -> None:
    from recbole.data.dataset import Dataset
    from recbole.utils import FeatureType

    original = Dataset._fill_nan
    if getattr(original, "_autodenoise_patched", False):
        return

    def _fill_nan(self) -> None:
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
        with warnings.catch_warnings():  # its own fillna calls are now no-ops on filled columns
            warnings.simplefilter("ignore")
            original(self)

    _fill_nan._autodenoise_patched = True  # type: ignore[attr-defined]
    Dataset._fill_nan = _fill_nan


def _restore_dok_update() -> None:
    from scipy.sparse import dok_matrix

    if not hasattr(dok_matrix, "_update"):

        def _update(self, data: dict) -> None:
            self._dict.update(data)

        dok_matrix._update = _update


def _undo_global_anomaly_detection() -> None:
    import torch
    import recbole.model.sequential_recommender  # noqa: F401  (its SINE module turns detection on)

    torch.autograd.set_detect_anomaly(False)


def _let_ddp_wrap_cpu_models() -> None:
    import recbole.trainer.trainer as recbole_trainer

    original = recbole_trainer.DistributedDataParallel
    if getattr(original, "_autodenoise_patched", False):
        return

    def DistributedDataParallel(module, device_ids=None, **kwargs):  # noqa: N802 (RecBole's name)
        on_cpu = all(p.device.type == "cpu" for p in module.parameters())
        return original(module, device_ids=None if on_cpu else device_ids, **kwargs)

    DistributedDataParallel._autodenoise_patched = True  # type: ignore[attr-defined]
    recbole_trainer.DistributedDataParallel = DistributedDataParallel


# the RecBole modules that bound ``ensure_dir`` by name
_ENSURE_DIR_MODULES = (
    "recbole.utils.utils",
    "recbole.utils",
    "recbole.utils.logger",
    "recbole.trainer.trainer",
    "recbole.data.utils",
    "recbole.data.dataset.dataset",
)


def _race_free_ensure_dir() -> None:
    import importlib

    def ensure_dir(dir_path):
        if not os.path.exists(
            dir_path
        ):  # RecBole's check (an existing file passes), then a race-free create
            os.makedirs(dir_path, exist_ok=True)

    for name in _ENSURE_DIR_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "ensure_dir"):
            module.ensure_dir = ensure_dir


def apply() -> None:
    """Apply every fix (idempotent)."""
    _restore_numpy_aliases()
    _patch_fill_nan()
    _restore_dok_update()
    _undo_global_anomaly_detection()
    _let_ddp_wrap_cpu_models()
    _race_free_ensure_dir()
