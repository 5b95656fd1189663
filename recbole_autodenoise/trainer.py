"""``AutoDenoiseTrainer``: RecBole's ``Trainer`` with per-sample weights from a weighting scheme.

Only the hooks RecBole offers are overridden: ``_train_epoch`` passes a weighted ``loss_func``,
``_valid_epoch`` lets the scheme learn from the clean validation result (or from
``train_data.clean_guide_data``: the guide part of the clean validation set where the data
pipeline split one off, the whole clean validation set under ``eval_protocol: user_first``), and the checkpoint holds plain
state dicts plus a ``denoise`` key (loadable with ``torch.load(..., weights_only=True)``), written
atomically with a checksum (``checkpoints.py``). Beside RecBole's best-model file ``<name>.pth``
(saved on improvement, read by ``evaluate(load_best_model=True)``), ``<name>-latest.pth`` holds
the full state after every finished epoch, from which ``resume_checkpoint`` continues exactly.
Schemes with ``needs_guidance`` get a ``Guidance`` per batch (clean batches, per-sample
alignment, virtual meta steps). Evaluation never applies weights.

Early stopping is RecBole's (``stopping_step`` validations without gain) with one guard: it cannot
fire before ``stopping_min_epochs`` epochs have trained, so a run whose first validations happen to
be its best cannot end as an untrained model by accident. ``stopping_summary`` says how a run
ended (best epoch, stopped early, or ran into the ``epochs`` cap).
"""

from __future__ import annotations

import json
import os
import random
from time import time
from typing import Any

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.utils.data.distributed import DistributedSampler

from recbole_autodenoise import compat, distributed
from recbole_autodenoise.adapters import USER_LEVEL_MODELS
from recbole_autodenoise.checkpoints import (
    FORMAT_VERSION,
    best_file,
    check_checkpoint_dir,
    check_same_settings,
    check_structure,
    check_writable_folder,
    latest_file,
    unique_checkpoint_file,
)
from recbole_autodenoise.checks import positive, positive_int, read_key
from recbole_autodenoise.controller import parse_reward_metric
from recbole_autodenoise.data.dataloader import InteractionFullSortEvalDataLoader
from recbole_autodenoise.diagnostics import Diagnosis, sample_groups
from recbole_autodenoise.evaluation import per_query
from recbole_autodenoise.evaluation.per_user import CleanAUC
from recbole_autodenoise.guidance import CleanBatches, Guidance, double_backward_safe, guide_dataset
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.rows import CANARY_FIELD, ROW_FIELD
from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.default import DefaultScheme


class WeightStudy:
    """Mean weight of true-positive (rating >= threshold), false-positive (rating below it) and,
    where noise was injected (``noise_rate``), injected training samples (paper Sec. 5.4.1, Fig. 2),
    per epoch and over the whole run. Injected samples are counted apart, never as false positives."""

    SIZE = 6  # tp weight sum, tp count, fp weight sum, fp count, injected weight sum, injected count

    def __init__(self, rating_field: str, threshold: float, label_field: str | None = None) -> None:
        self.rating_field = rating_field
        self.threshold = threshold
        self.label_field = label_field  # pointwise models: sampled negatives (label 0) are not studied
        self.total = torch.zeros(self.SIZE, dtype=torch.float64)
        self.epoch = torch.zeros(self.SIZE, dtype=torch.float64)

    def begin_epoch(self) -> None:
        self.epoch = torch.zeros(self.SIZE, dtype=torch.float64)

    def add(self, weights: torch.Tensor | None, interaction) -> None:
        groups = sample_groups(interaction, self.rating_field, self.threshold, self.label_field)
        true_positive, false_positive, injected = groups["tp"], groups["fp"], groups["injected"]
        weights = torch.ones_like(true_positive) if weights is None else weights.detach().double()
        # sums stay on the batch's device: no host sync per batch, one per epoch in ``summary``
        batch = torch.stack([(weights * true_positive).sum(), true_positive.sum(), (weights * false_positive).sum(),
                             false_positive.sum(), (weights * injected).sum(), injected.sum()])
        self.epoch = self.epoch.to(batch.device) + batch
        self.total = self.total.to(batch.device) + batch

    def sum_over_ranks(self) -> None:
        """Under DDP, after an epoch: this epoch's sums become every rank's (the total follows)."""
        summed = distributed.all_reduce_sum(self.epoch)
        self.total = self.total + (summed - self.epoch).to(self.total.device)
        self.epoch = summed

    def load_total(self, total: torch.Tensor) -> None:
        """A saved total (``SIZE`` sums)."""
        if tuple(total.shape) != (self.SIZE,):
            raise ValueError(f"the weight study's total has shape {tuple(total.shape)}, "
                             f"expected ({self.SIZE},)")
        self.total = total.detach().cpu().double()

    @staticmethod
    def summary(sums: torch.Tensor) -> dict[str, float]:
        tp_w, tp_n, fp_w, fp_n, inj_w, inj_n = sums.tolist()
        out: dict[str, float] = {
            "tp_mean_weight": tp_w / tp_n if tp_n else float("nan"),
            "fp_mean_weight": fp_w / fp_n if fp_n else float("nan"),
            "tp_samples": int(tp_n),
            "fp_samples": int(fp_n),
        }
        if inj_n:
            out.update(injected_mean_weight=inj_w / inj_n, injected_samples=int(inj_n))
        return out


def _plain(value: Any) -> Any:
    """Config values as JSON-able plain data (enums, devices and classes become strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def plain_config(config) -> dict[str, Any]:
    return _plain(dict(config.final_config_dict))


class AutoDenoiseTrainer(Trainer):
    """Trains a RecBole model on ``mean(w * loss)`` with ``w`` from ``denoise_scheme``."""

    def __init__(self, config, model) -> None:
        # the settings as the run chose them, before this trainer adds the reward's metric: a
        # checkpoint records them and a resume must match them (``checkpoints.check_same_settings``)
        self.run_config = plain_config(config)
        self.scheme_name = read_key(config, "denoise_scheme", lambda v: isinstance(v, str), "a scheme name")
        scheme_cls = SCHEMES.get(self.scheme_name)  # an unknown name fails listing the available ones
        self.guide_learning_rate = float(read_key(config, "learning_rate", positive, "a number > 0"))
        self.guide_batch_size = read_key(config, "guide_batch_size", positive_int, "a positive integer")
        self.diagnostics = read_key(config, "denoise_diagnostics", lambda v: isinstance(v, bool), "true or false")
        self.stopping_min_epochs = read_key(
            config, "stopping_min_epochs", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "an integer >= 0 (0: no minimum)",
        )
        # built before RecBole's Trainer so the reward metric can join ``metrics`` if needed
        self.scheme = scheme_cls(config, config["device"])
        distributed.check_supported(config, self.scheme, self.diagnostics)
        self.reward_key = None
        if self.scheme.needs_reward:
            self.reward_key = parse_reward_metric(config["reward_metric"], list(config["topk"] or []))
            if self.reward_key != "gauc":  # GAUC is computed here, cheaper than RecBole's full ranking
                self._ensure_metric(config, self.reward_key)
        num_items = getattr(model, "n_items", None)
        if num_items is not None and max(config["topk"] or [0]) >= num_items:  # n_items counts the padding id
            raise ValueError(
                f"config key 'topk' = {config['topk']} asks for more items than the data set has ({num_items - 1})"
            )
        valid_name = str(config["valid_metric"]).split("@")[0].lower()
        if valid_name not in [m.lower() for m in config["metrics"]]:
            raise ValueError(
                f"config key 'valid_metric' = {config['valid_metric']!r} is not among the evaluated "
                f"metrics {list(config['metrics'])}"
            )
        check_checkpoint_dir(config)  # before RecBole's ensure_dir, which fails with a bare OSError
        super().__init__(config, model)
        # RecBole's <model>-<local time>.pth is shared by two runs started in the same second
        # under DDP every rank reads the best model rank 0 writes
        self.saved_model_file = distributed.broadcast_object(unique_checkpoint_file(self.checkpoint_dir, config["model"]))
        self.latest_model_file = latest_file(self.saved_model_file)
        self.evaluator = per_query.RecordingEvaluator(config)
        self._query_users: list[torch.Tensor] | None = None  # each evaluated row's user, during evaluate()
        self.last_per_query: dict[str, Any] | None = None  # ``per_query.record`` of the last evaluation
        self._valid_per_query: dict[str, Any] | None = None  # that of the last validation
        self.best_valid_per_query: dict[str, Any] | None = None  # that of the best validation
        self.best_epoch: int | None = None
        self.resumed_from: str | None = None
        self._saving = False
        self._trained_epoch: int | None = None  # the last epoch trained by this process
        self._latest_epoch: int | None = None  # the epoch whose state latest_model_file holds
        self._last_valid_result = None
        self.sample_loss = None if scheme_cls is DefaultScheme else PerSampleLoss(model)
        self.diagnosis = Diagnosis(model, config, self.device) if self.diagnostics else None
        if scheme_cls.needs_representations:
            self.sample_loss.check_representations()
        self.study = WeightStudy(config["clean_rating_field"], float(config["clean_rating_threshold"]),
                                 config["LABEL_FIELD"])
        # user-level training batches (MultiVAE, ENMF, ...; only the default scheme) hold no ratings to study
        self._rows_are_interactions = config["model"] not in USER_LEVEL_MODELS
        self.history: list[dict[str, Any]] = []
        self._epoch = 0
        self._is_set_up = False
        self._pending_rng: dict[str, Any] | None = None
        self._train_data = None
        self.clean_batches: CleanBatches | None = None  # built in fit() for schemes with needs_guidance
        self._pending_guide: dict[str, Any] | None = None
        self._collect_auc: CleanAUC | None = None

    @staticmethod
    def _ensure_metric(config, metric_key: str) -> None:
        """The reward must be computed on validation: add its metric to ``metrics`` if absent."""
        name = metric_key.split("@")[0]
        if name not in [m.lower() for m in config["metrics"]]:
            config["metrics"] = list(config["metrics"]) + [name]

    # --- training -------------------------------------------------------------------------
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_data = train_data
        if not self._is_set_up:
            self.scheme.batches_per_epoch = len(train_data)
            self.scheme.setup(train_data._dataset)
            self._is_set_up = True
        if self.scheme.needs_guidance and self.clean_batches is None:
            self.clean_batches = CleanBatches(
                guide_dataset(train_data, valid_data, self.scheme.guide_rows), self.model, self.guide_batch_size,
                int(self.config["seed"]), self.device, exclude=train_data._dataset,
            )
        if self.diagnosis is not None:
            self.diagnosis.setup(guide_dataset(train_data, valid_data), self.guide_batch_size, train_data._dataset)
        if self._pending_guide is not None and self.clean_batches is not None:
            try:
                self.clean_batches.load_state_dict(self._pending_guide)
            except (KeyError, TypeError, RuntimeError) as error:
                raise ValueError(f"{self.resumed_from} does not fit this run: its guide state: "
                                 f"{type(error).__name__}: {error}") from None
            self._pending_guide = None
        if self._pending_rng is not None:
            self._restore_rng(self._pending_rng)
            self._pending_rng = None
        self._saving = saved
        result = super().fit(train_data, valid_data, verbose, saved, show_progress,
                             self._after_validation(callback_fn, verbose))
        if self._trained_epoch is not None:
            self._save_latest(self._trained_epoch, verbose)
        return result

    def _after_validation(self, callback_fn, verbose):
        """RecBole calls this after a validation's early-stopping update: the epoch is finished."""

        def callback(epoch_idx, valid_score):
            if self.cur_step == 0:  # RecBole's early stopping just took this validation as the best
                self.best_valid_per_query = self._valid_per_query
            self._save_latest(epoch_idx, verbose)
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        return callback

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._trained_epoch is not None:  # an epoch without validation (eval_step > 1) is finished too
            self._save_latest(self._trained_epoch, verbose=False)
        self._epoch = epoch_idx
        self.study.begin_epoch()
        start = time()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func or self._weighted_loss,
                                    show_progress=show_progress)
        train_loss = float(sum(loss) if isinstance(loss, tuple) else loss)
        if distributed.is_distributed(self.config):  # every rank's samples: the weight study and mean loss
            self.study.sum_over_ranks()
            summed = distributed.all_reduce_sum(torch.tensor(train_loss, dtype=torch.float64, device=self.device))
            train_loss = float(summed) / self.config["world_size"]
        record = {"epoch": epoch_idx, "train_seconds": time() - start, "train_loss": train_loss}
        record.update(WeightStudy.summary(self.study.epoch))
        self.history.append(record)
        self._trained_epoch = epoch_idx
        return loss

    def _weighted_loss(self, interaction) -> torch.Tensor:
        if self.diagnosis is not None:
            self.diagnosis.observe_training_batch(interaction)
        interaction = self.scheme.augment(interaction)
        if self.sample_loss is None:
            if self._rows_are_interactions:
                self.study.add(None, interaction)
            return self.model.calculate_loss(interaction)
        if self.clean_batches is None:
            sample = self.sample_loss(interaction, with_representations=self.scheme.needs_representations)
            weights = self.scheme.weights(self._batch(interaction, sample))
        else:
            # the forward whose graph guidance differentiates twice must avoid cuDNN RNN kernels
            with double_backward_safe(self.model):
                sample = self.sample_loss(interaction, with_representations=self.scheme.needs_representations)
                guidance = Guidance(self.model, self.sample_loss, self.clean_batches, self.guide_learning_rate,
                                    interaction, sample.losses, self.optimizer)
                weights = self.scheme.weights(self._batch(interaction, sample, guidance))
        self.study.add(weights, interaction)
        if weights is None:
            return sample.weighted(torch.ones_like(sample.losses))
        return sample.weighted(weights)

    def _batch(self, interaction, sample, guidance: Guidance | None = None) -> Batch:
        return Batch(
            losses=sample.losses.detach(),
            item_ids=interaction[self.model.ITEM_ID],
            epoch=self._epoch,
            epoch_fraction=self._epoch / max(self.epochs, 1),
            user_repr=sample.user_repr,
            item_repr=sample.item_repr,
            guidance=guidance,
            user_ids=interaction[self.model.USER_ID] if self.model.USER_ID in interaction.interaction else None,
            true_positive=self._true_positive(interaction) if self.scheme.reads_ratings else None,
            row_ids=interaction[ROW_FIELD] if ROW_FIELD in interaction.interaction else None,
            canary=interaction[CANARY_FIELD] if CANARY_FIELD in interaction.interaction else None,
        )

    def _true_positive(self, interaction) -> torch.Tensor:
        return sample_groups(interaction, self.study.rating_field, self.study.threshold)["tp"]

    def _check_nan(self, loss) -> None:
        if torch.isnan(loss):
            raise ValueError(
                f"training loss is NaN at epoch {self._epoch} (denoise_scheme={self.scheme_name}); "
                "lower learning_rate or check the data"
            )

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time()
        # the scheme learns from ``clean_guide_data`` where the data pipeline made one: the guide part
        # of a guide/select split, or (eval_protocol user_first, whose validation loader holds one
        # query per user) every clean validation interaction; validation selects
        guide_loader = getattr(self._train_data, "clean_guide_data", None)
        own_gauc = self.reward_key == "gauc"
        wants_auc = own_gauc or self.scheme.needs_user_rewards
        # without a guide part the reward comes from the validation pass itself
        collector = self._clean_auc_accumulator() if wants_auc and guide_loader is None else None
        self._collect_auc = collector
        try:
            valid_score, valid_result = super()._valid_epoch(valid_data, show_progress=show_progress)
        finally:
            self._collect_auc = None
        self._valid_per_query = self.last_per_query  # before a guide pass evaluates again
        guide_score = None
        learn_from = valid_result
        if wants_auc:
            gauc, per_user = collector.result() if collector is not None else self.clean_auc(guide_loader)
            if self.scheme.needs_user_rewards:
                self.scheme.observe_user_rewards(per_user)
            if own_gauc:
                learn_from = {**(valid_result if guide_loader is None else {}), "gauc": gauc}
        elif self.reward_key is not None and guide_loader is not None:
            guide_score, learn_from = super()._valid_epoch(guide_loader, show_progress=show_progress)
            self.tensorboard.add_scalar("AutoDenoise/guide_score", guide_score, self._epoch)
        logs = self.scheme.after_evaluation(learn_from, self._epoch)
        for key, value in logs.items():
            self.tensorboard.add_scalar(f"AutoDenoise/{key}", value, self._epoch)
        if logs:
            self.logger.info(
                set_color("controller", "blue") + ": " + ", ".join(f"{k}={v:.6f}" for k, v in logs.items())
            )
        diagnostics = {} if self.diagnosis is None else self.diagnosis.run()
        if distributed.is_distributed(self.config):
            diagnostics["rank_digests"] = distributed.check_agreement(
                f"the model, controller and baseline after epoch {self._epoch}", self.shared_state_digest())
        if self.history:
            self.history[-1].update(valid_seconds=time() - start, valid_score=float(valid_score),
                                    **{f"controller_{k}": v for k, v in logs.items()}, **diagnostics)
            if guide_score is not None:
                self.history[-1]["guide_score"] = float(guide_score)
        self._hold_early_stopping()
        self._last_valid_result = valid_result
        return valid_score, valid_result

    def shared_state_digest(self) -> str:
        """sha256 of what every rank must hold identically: the model's parameters, the scheme's
        learned state (controller parameters, its optimiser, baseline b) without its generator,
        whose draws are each rank's own."""
        scheme_state = {k: v for k, v in self.scheme.state_dict().items() if k != "generator"}
        return distributed.digest(self.model.state_dict(), scheme_state)

    def _map_reduce(self, result, num_sample):
        """RecBole averages the ranks' metrics; here every rank evaluated the whole set
        (``data_preparation`` builds whole-set evaluation loaders): the result is already exact."""
        return result

    def _hold_early_stopping(self) -> None:
        """Before ``stopping_min_epochs`` epochs have trained, keep RecBole's patience counter
        (``cur_step``, which its ``fit`` passes to ``early_stopping`` right after this validation)
        one short of running out. The kept count is min(true count, stopping_step), so from the
        minimum on the stop fires exactly where the true count exceeds ``stopping_step``."""
        if self._epoch + 1 < self.stopping_min_epochs:
            self.cur_step = min(self.cur_step, self.stopping_step - 1)

    def stopping_summary(self) -> dict[str, Any]:
        """How the run ended: ``best_epoch`` (RecBole's rule: the last validation at least as good
        as every earlier one; None without validation), ``epochs_trained``, ``hit_epoch_cap`` (it
        ran all ``epochs``: it may not have converged) and ``stopped_early`` (early stopping ended it)."""
        best_epoch, best = None, None
        for record in self.history:
            score = record.get("valid_score")
            if score is None:
                continue
            if best is None or (score >= best if self.valid_metric_bigger else score <= best):
                best_epoch, best = record["epoch"], score
        epochs_trained = self.history[-1]["epoch"] + 1 if self.history else 0
        return {"best_epoch": best_epoch, "epochs_trained": epochs_trained, "hit_epoch_cap": epochs_trained >= self.epochs,
                "stopped_early": 0 < epochs_trained < self.epochs, "stopping_min_epochs": self.stopping_min_epochs}

    def _clean_auc_accumulator(self) -> CleanAUC:
        return CleanAUC(self._train_data._dataset.user_num, self.model.USER_ID, self.device)

    @torch.no_grad()
    def clean_auc(self, loader) -> tuple[float, torch.Tensor]:
        """RecBole's GAUC over ``loader`` and each user's mean AUC ([num_users], NaN where none),
        from the same full-sort scores as RecBole's evaluation, without its full ranking
        (``evaluation.per_user.CleanAUC``; a test checks the equality with RecBole's GAUC)."""
        self.model.eval()
        accumulator = self._clean_auc_accumulator()
        # one query per interaction of a general model: the same pairs from one score row per user
        batches = loader.user_batches() if isinstance(loader, InteractionFullSortEvalDataLoader) else loader
        for batched_data in batches:
            accumulator.add(*self._full_sort_batch_eval(batched_data))
        return accumulator.result()

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's, plus the clean AUC of the scores while a validation pass collects it."""
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if self._query_users is not None:
            self._query_users.append(interaction[self.config["USER_ID_FIELD"]].cpu())
        if self._collect_auc is not None:
            self._collect_auc.add(interaction, scores, positive_u, positive_i)
        return interaction, scores, positive_u, positive_i

    # --- checkpoints ----------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        if self._train_data is not None:
            state["loader"] = self._train_data.generator.get_state()
        return state

    def _restore_rng(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"].cpu())
        numpy_state = state["numpy"]
        np.random.set_state(("MT19937", numpy_state["keys"].cpu().numpy().astype(np.uint32),
                             numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached"]))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
        if "loader" in state and self._train_data is not None:
            self._train_data.generator.set_state(state["loader"].cpu())

    def denoise_state(self) -> dict[str, Any]:
        state = {
            "scheme": self.scheme_name,
            "scheme_state": self.scheme.state_dict(),
            "study_total": self.study.total.cpu(),
            "history": json.loads(json.dumps(self.history)),
            "rng": self._rng_state(),
        }
        if distributed.is_distributed(self.config):  # each rank's own draws, for a resume on as many ranks
            state["ranks"] = distributed.gather_objects({"rng": state["rng"], "scheme_state": state["scheme_state"]})
        if self.clean_batches is not None:
            state["guide"] = self.clean_batches.state_dict()
        if self.diagnosis is not None:
            state["diagnosis"] = self.diagnosis.state_dict()
        return state

    def _state(self, kind: str, epoch: int, best_valid_result) -> dict[str, Any]:
        """RecBole's checkpoint without the pickled ``Config`` (the run's settings as a plain dict
        instead), plus ``format_version`` and what an exact resume needs: the best result so far,
        the losses per epoch and ``denoise``."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "config": self.run_config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": None if best_valid_result is None else
            {str(k): float(v) for k, v in best_valid_result.items()},
            "best_epoch": self.best_epoch,
            "best_valid_per_query": self.best_valid_per_query,
            "train_loss_dict": {int(k): float(v) for k, v in self.train_loss_dict.items()},
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "denoise": self.denoise_state(),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """The best model so far (RecBole calls this on improvement), to ``saved_model_file``."""
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        self.best_epoch = epoch
        self.best_valid_per_query = self._valid_per_query
        state = self._state("best", epoch, self._last_valid_result)  # every rank: it gathers their states
        if not distributed.is_writer(self.config):
            return
        compat.atomic_torch_save(state, saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def _save_latest(self, epoch: int, verbose: bool = True) -> None:
        """The state after the finished ``epoch``, to ``latest_model_file`` (once per epoch)."""
        if not self._saving or self._latest_epoch == epoch:
            return
        state = self._state("latest", epoch, self.best_valid_result)  # every rank: it gathers their states
        if not distributed.is_writer(self.config):
            self._latest_epoch = epoch
            return
        compat.atomic_torch_save(state, self.latest_model_file)
        self._latest_epoch = epoch
        if verbose:
            self.logger.info(set_color("Saving latest", "blue") + f": {self.latest_model_file}")

    def resume_checkpoint(self, resume_file):
        """Continue from a checkpoint: ``<name>-latest.pth`` (the last finished epoch; the best model
        stays in ``<name>.pth``) or a best-model file (its epoch, as RecBole does). RecBole's own
        ``resume_checkpoint`` is not called: it reads the file again with torch's default loader
        (full unpickling before torch 2.6) and only warns when the model differs."""
        resume_file = os.fspath(resume_file)
        checkpoint = load_resumable(resume_file, self.run_config, map_location=self.device)
        if checkpoint["kind"] == "latest":
            best, latest = best_file(resume_file), resume_file
            if checkpoint["best_epoch"] is not None and not os.path.isfile(best):
                raise ValueError(f"{resume_file} continues a run whose best-model file {best} is missing")
        else:
            best, latest = resume_file, latest_file(resume_file)
            self._warn_if_later_state(latest, checkpoint["epoch"])
        self._load_training_state(checkpoint, resume_file)
        self.saved_model_file, self.latest_model_file, self.resumed_from = best, latest, resume_file
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _warn_if_later_state(self, latest: str, epoch: int) -> None:
        if os.path.isfile(latest) and load_trainer_checkpoint(latest)["epoch"] > epoch:
            self.logger.warning(
                f"resuming from the best epoch {epoch}; the run's last finished epoch is in {latest}: "
                "resume from that file to continue where it stopped"
            )

    def _load_training_state(self, checkpoint: dict[str, Any], resume_file: str) -> None:
        """Everything ``_state`` saved (its layout checked by ``checkpoints.check_structure``); a
        part that does not fit this run's model, optimiser or scheme is one ValueError."""
        try:
            self.model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:
            raise ValueError(f"{resume_file} does not fit this model: {error}") from None
        denoise = checkpoint["denoise"]
        needs = {"guide": self.scheme.needs_guidance, "diagnosis": self.diagnosis is not None}
        for key, needed in needs.items():
            if needed and key not in denoise:
                raise ValueError(f"{resume_file} is malformed: it has no denoise.{key} entry, "
                                 "which this run needs")
        own = distributed.own_rank_state(denoise, self.config, resume_file)
        try:
            self._load_parts(checkpoint, denoise, own)
        except ValueError as error:  # the scheme's or the optimiser's own words
            raise ValueError(f"{resume_file} does not fit this run: {error}") from None
        except (KeyError, TypeError, IndexError, RuntimeError) as error:
            raise ValueError(f"{resume_file} does not fit this run: "
                             f"{type(error).__name__}: {error}") from None

    def _load_parts(self, checkpoint: dict[str, Any], denoise: dict[str, Any],
                    own: dict[str, Any]) -> None:
        self.model.load_other_parameter(checkpoint["other_parameter"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint["best_valid_result"]
        self.best_epoch = checkpoint["best_epoch"]
        self.best_valid_per_query = checkpoint.get("best_valid_per_query")
        self.train_loss_dict = dict(checkpoint["train_loss_dict"])
        self.scheme.load_state_dict(own["scheme_state"])
        self.study.load_total(denoise["study_total"])
        self.history = list(denoise["history"])
        self._pending_rng = own["rng"]
        self._pending_guide = denoise["guide"] if self.scheme.needs_guidance else None
        if self.diagnosis is not None:
            self.diagnosis.load_state_dict(denoise["diagnosis"])

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's, with the best model read through the checksummed, ``weights_only`` loader.
        Under DDP rank 0 reads it and sends it to the other ranks (other machines need not see its files).
        Keeps the evaluation's per-query ranks in ``last_per_query`` (``evaluation.per_query``)."""
        check_whole_set(eval_data, self.config)
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            if distributed.is_writer(self.config):
                checkpoint = load_trainer_checkpoint(checkpoint_file, map_location=self.device)
                self.model.load_state_dict(checkpoint["state_dict"])
                self.model.load_other_parameter(checkpoint["other_parameter"])
                self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
            if distributed.is_distributed(self.config):
                distributed.broadcast_module(self.model)
                self.model.load_other_parameter(distributed.broadcast_object(self.model.other_parameter()))
        self._query_users, self.evaluator.last_topk = [], None
        try:
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        finally:
            users, self._query_users = self._query_users, None
        self.last_per_query = per_query.record(self.evaluator.last_topk, torch.cat(users) if users else torch.empty(0))
        return result

    # --- results --------------------------------------------------------------------------
    def weight_study(self) -> dict[str, Any]:
        overall = WeightStudy.summary(self.study.total)
        overall["per_epoch"] = [
            {k: record[k] for k in ("epoch", "tp_mean_weight", "fp_mean_weight", "injected_mean_weight") if k in record}
            for record in self.history
        ]
        return overall


def check_whole_set(eval_data, config) -> None:
    """Under DDP evaluation must see the whole set on every rank (see ``_map_reduce``)."""
    if distributed.is_distributed(config) and isinstance(getattr(eval_data, "sampler", None), DistributedSampler):
        raise ValueError("under multi-process training every rank evaluates the whole set: build the loaders "
                         "with recbole_autodenoise.data_preparation (its evaluation loaders are not sharded)")


def load_trainer_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A checksum-verified checkpoint with the trainer's layout
    (``checkpoints.check_structure``)."""
    checkpoint = compat.load_checkpoint(path, map_location=map_location)
    check_structure(checkpoint, os.fspath(path))
    return checkpoint


def load_resumable(path: str | os.PathLike, config, map_location: Any = "cpu") -> dict[str, Any]:
    """A verified checkpoint this run can continue, in a folder the run can write to. ``config``:
    the run's ``Config`` as ``make_config`` made it, or its settings as a plain dict."""
    path = os.fspath(path)
    checkpoint = load_trainer_checkpoint(path, map_location=map_location)
    check_resumable(checkpoint, path, config)
    check_writable_folder(os.path.dirname(os.path.abspath(path)), f"the folder of {path}")
    return checkpoint


def check_resumable(checkpoint: dict[str, Any], path: str, config) -> None:
    """A checkpoint (layout checked) this run can continue: same model, data set and scheme, every
    setting outside ``checkpoints.RESUMABLE_KEYS`` unchanged, and not finished."""
    settings = config if isinstance(config, dict) else plain_config(config)
    saved = {**checkpoint["config"], "denoise_scheme": checkpoint["denoise"]["scheme"]}
    for key in ("model", "dataset", "denoise_scheme"):
        if saved.get(key) != settings.get(key):
            raise ValueError(
                f"{path} was trained with {key}={saved.get(key)!r}, "
                f"this run uses {settings.get(key)!r}: resume with the same {key}"
            )
    check_same_settings(checkpoint["config"], settings, path)
    epoch, epochs = checkpoint["epoch"], settings["epochs"]
    if epoch + 1 >= epochs:
        raise ValueError(f"{path} holds epoch {epoch}, the last of epochs={epochs}: nothing left to train "
                         "(raise epochs to train on)")
    if checkpoint["cur_step"] > settings["stopping_step"]:
        raise ValueError(f"{path} holds epoch {epoch}, where early stopping ended the run "
                         f"(stopping_step={settings['stopping_step']}): nothing left to train "
                         "(raise stopping_step to train on)")
