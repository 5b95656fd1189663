"""``AutoDenoiseTrainer``: RecBole's ``Trainer`` with per-sample weights from a weighting scheme.

Only RecBole's hooks are overridden, each calling ``super()``: ``_train_epoch`` passes the
weighted ``loss_func`` of ``weighting.BatchWeighting``; ``_valid_epoch`` lets the scheme learn
from the clean validation result or from the data bundle's guide loader (``evaluation.reward``,
``after_validation``); the checkpoint hooks write the state ``checkpoints.py`` defines: the best
model ``<name>.pth`` (saved on improvement, read by ``evaluate(load_best_model=True)``) and
``<name>-latest.pth``, the full state after every finished epoch, from which
``resume_checkpoint`` continues exactly. Evaluation never applies weights.

Early stopping is RecBole's with the guard of ``stopping.py`` (``stopping_min_epochs``);
``stopping_summary`` says how a run ended. With ``valid_selection`` other than ``metric`` the
validation score is the validation loss of ``evaluation.valid_loss`` (lower is better), added to
each validation result as ``valid_loss``; RecBole's early stopping and best-model saving then
follow it.
"""

from __future__ import annotations

from functools import partial
from time import time
from typing import Any

import torch
from recbole.trainer import Trainer

from recbole_autodenoise import after_validation, checkpoints, distributed, options, stopping
from recbole_autodenoise.checks import is_int, positive_int
from recbole_autodenoise.data.bundle import DataBundle, TrainingData, training_data_for
from recbole_autodenoise.diagnostics import Diagnosis
from recbole_autodenoise.evaluation import per_query, reward
from recbole_autodenoise.evaluation.metrics import check_metrics
from recbole_autodenoise.evaluation.per_user import CleanAUC
from recbole_autodenoise.evaluation.valid_loss import ValidationLoss
from recbole_autodenoise.guidance import CleanBatches
from recbole_autodenoise.options import Option
from recbole_autodenoise.schemes import SCHEMES
from recbole_autodenoise.weighting import BatchWeighting


class AutoDenoiseTrainer(Trainer):
    """Trains a RecBole model on ``mean(w * loss)`` with ``w`` from ``denoise_scheme``."""

    OPTIONS = options.declare(
        Option(
            "stopping_min_epochs",
            "int",
            10,
            "early stopping cannot end a run before this many epochs have trained (0: no minimum)",
            lambda v: is_int(v) and v >= 0,
            "an integer >= 0 (0: no minimum)",
        ),
        Option(
            "evaluate_test",
            "bool",
            True,
            "false: the run never evaluates the clean test set",
            lambda v: isinstance(v, bool),
            "true or false",
        ),
        Option(
            "guide_batch_size",
            "int",
            2048,
            "explicit credit and diagnostics: clean (explicit: rated) validation interactions per "
            "guiding batch",
            positive_int,
            "a positive integer",
        ),
        Option(
            "denoise_diagnostics",
            "bool",
            False,
            "per validation: alignment of TP / FP / injected samples' gradients with the clean "
            "gradient",
            lambda v: isinstance(v, bool),
            "true or false",
        ),
    )

    def __init__(self, config, model) -> None:
        # the settings as the run chose them, before this trainer adds the reward's metric: a
        # checkpoint records them and a resume must match them (``checkpoints.check_same_settings``)
        self.run_config = checkpoints.plain_config(config)
        options.check(config, self.OPTIONS)
        self.scheme_name = options.read(config, "denoise_scheme")
        self.guide_batch_size = config["guide_batch_size"]
        self.diagnostics = config["denoise_diagnostics"]
        self.stopping_min_epochs = config["stopping_min_epochs"]
        # built before RecBole's Trainer so the reward metric can join ``metrics`` if needed
        self.scheme = SCHEMES.get(self.scheme_name)(config, config["device"])
        distributed.check_supported(config, self.scheme, self.diagnostics)
        self.reward_key = reward.reward_key(config, self.scheme)
        check_metrics(config, model)
        # before RecBole's ensure_dir, which fails with a bare OSError
        checkpoints.check_checkpoint_dir(config)
        self.valid_loss = ValidationLoss.from_config(config)
        super().__init__(config, model)
        if self.valid_loss is not None:  # the lowest validation loss is the best
            self.valid_metric_bigger = False
            self.best_valid_score = float("inf")
        # RecBole's <model>-<local time>.pth is shared by two runs started in the same second
        # under DDP every rank reads the best model rank 0 writes
        unique = checkpoints.unique_checkpoint_file(self.checkpoint_dir, config["model"])
        self.saved_model_file = distributed.broadcast_object(unique)
        self.latest_model_file = checkpoints.latest_file(self.saved_model_file)
        self.evaluator = per_query.RecordingEvaluator(config)
        self.last_per_query: dict[str, Any] | None = None  # ``per_query.record``: last evaluation
        self._valid_per_query: dict[str, Any] | None = None  # that of the last validation
        self.best_valid_per_query: dict[str, Any] | None = None  # that of the best validation
        self.best_epoch: int | None = None
        self.resumed_from: str | None = None
        self._saving = False
        self._trained_epoch: int | None = None  # the last epoch trained by this process
        self._latest_epoch: int | None = None  # the epoch whose state latest_model_file holds
        self._last_valid_result = None
        self.diagnosis = Diagnosis(model, config, self.device) if self.diagnostics else None
        self.weighting = BatchWeighting(config, model, self.scheme, self.optimizer, self.diagnosis)
        self.sample_loss, self.study = self.weighting.sample_loss, self.weighting.study
        self.history: list[dict[str, Any]] = []
        self._epoch = 0
        self.pending: dict[str, Any] = {}  # what a resume read for fit: "rng", "guide"
        self.train_data = None
        self.data: TrainingData | None = None  # the training side of the data (set_data)
        self._collect_auc: CleanAUC | None = None

    @property
    def clean_batches(self) -> CleanBatches | None:
        """The guiding batches of schemes with ``needs_guidance`` (built in ``fit``), else None."""
        return self.weighting.clean_batches

    # --- training -------------------------------------------------------------------------
    def set_data(self, bundle: DataBundle) -> None:
        """The data ``fit`` trains on: ``prepare_data``'s bundle, of which the trainer keeps the
        training side only (``bundle.training``: guide loader, guide, explicit and validation
        rows; never a test row). ``fit`` then takes ``bundle.train`` and ``bundle.select``.
        Without it, ``fit`` on ``data_preparation``'s loaders finds the same training side
        (``data.bundle.training_data_of``); on other loaders the validation set guides."""
        self.data = bundle.training

    def fit(
        self,
        train_data,
        valid_data=None,
        verbose=True,
        saved=True,
        show_progress=False,
        callback_fn=None,
    ):
        self.data, self.train_data = training_data_for(self.data, train_data), train_data
        if self.valid_loss is not None and self.valid_loss.users is None and valid_data:
            self.valid_loss.setup(train_data._dataset, valid_data._dataset)
        self.weighting.setup(self.data, train_data, valid_data, self.guide_batch_size)
        checkpoints.restore_pending(self)
        self._saving = saved
        callback = self._after_validation(callback_fn, verbose)
        result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback)
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
        if self._trained_epoch is not None:  # an epoch without validation (eval_step > 1) ended
            self._save_latest(self._trained_epoch, verbose=False)
        self._epoch = epoch_idx
        self.study.begin_epoch()
        start = time()
        loss_func = loss_func or self._weighted_loss
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        summary = self.weighting.end_epoch(loss)  # every rank's samples under DDP
        self.history.append({"epoch": epoch_idx, "train_seconds": time() - start, **summary})
        self._trained_epoch = epoch_idx
        return loss

    def _weighted_loss(self, interaction) -> torch.Tensor:
        """``mean(w * loss)`` of one training batch (``weighting.BatchWeighting.loss``)."""
        return self.weighting.loss(interaction, self._epoch)

    def _check_nan(self, loss) -> None:
        if torch.isnan(loss):
            raise ValueError(
                f"training loss is NaN at epoch {self._epoch} (denoise_scheme={self.scheme_name}); "
                "lower learning_rate or check the data"
            )

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time()
        rewards = reward.RewardPass(self, None if self.data is None else self.data.guide)
        self._collect_auc = rewards.collector
        try:
            valid_score, valid_result = super()._valid_epoch(valid_data, show_progress)
        finally:
            self._collect_auc = None
        if self.valid_loss is not None:
            valid_score = self.valid_loss.compute(self.model, self._epoch, self.scheme)
            valid_result = type(valid_result)(valid_result)
            valid_result["valid_loss"] = valid_score
        self._valid_per_query = self.last_per_query  # before a guide pass evaluates again
        evaluate = partial(super()._valid_epoch, show_progress=show_progress)
        learned = rewards.learn_from(valid_result, evaluate)
        after_validation.learn_and_record(self, self._epoch, learned, valid_score, start)
        # RecBole's fit passes cur_step to early_stopping right after this validation
        self.cur_step = stopping.held_patience(
            self.cur_step, self._epoch, self.stopping_min_epochs, self.stopping_step
        )
        self._last_valid_result = valid_result
        return valid_score, valid_result

    def _map_reduce(self, result, num_sample):
        """RecBole averages the ranks' metrics; here every rank evaluated the whole set
        (``data_preparation`` builds whole-set evaluation loaders): the result is already exact."""
        return result

    def stopping_summary(self) -> dict[str, Any]:
        """How the run ended (``stopping.summary``)."""
        return stopping.summary(
            self.history, self.epochs, self.valid_metric_bigger, self.stopping_min_epochs
        )

    def clean_auc(self, loader) -> tuple[float, torch.Tensor]:
        """RecBole's GAUC over ``loader`` and each user's mean AUC (``reward.clean_auc``)."""
        return reward.clean_auc(self, loader)

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's, plus each query's user (``evaluation.per_query``) and the clean AUC of the
        scores while a validation pass collects it."""
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        self.evaluator.add_users(interaction[self.config["USER_ID_FIELD"]])
        if self._collect_auc is not None:
            self._collect_auc.add(interaction, scores, positive_u, positive_i)
        return interaction, scores, positive_u, positive_i

    # --- checkpoints (their format: checkpoints.py) ---------------------------------------
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """The best model so far (RecBole calls this on improvement), to ``saved_model_file``."""
        self.best_epoch, self.best_valid_per_query = epoch, self._valid_per_query
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        checkpoints.save(self, "best", epoch, self._last_valid_result, path, verbose)

    def _save_latest(self, epoch: int, verbose: bool = True) -> None:
        """The state after the finished ``epoch``, to ``latest_model_file`` (once per epoch)."""
        if self._saving and self._latest_epoch != epoch:
            checkpoints.save(
                self, "latest", epoch, self.best_valid_result, self.latest_model_file, verbose
            )
            self._latest_epoch = epoch

    def resume_checkpoint(self, resume_file):
        """Continue from a checkpoint (``checkpoints.resume``). RecBole's own ``resume_checkpoint``
        is not called: it reads the file again with torch's default loader (full unpickling before
        torch 2.6) and only warns when the model differs."""
        checkpoints.resume(self, resume_file)
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's, with the best model read through the checksummed, ``weights_only`` loader.
        Under DDP rank 0 reads it and sends it to the other ranks (other machines need not see its
        files).
        Keeps the evaluation's per-query ranks in ``last_per_query`` (``evaluation.per_query``)."""
        distributed.check_whole_set(eval_data, self.config)
        if load_best_model and eval_data:
            checkpoints.load_best_model(self, model_file or self.saved_model_file)
        self.evaluator.begin()
        try:
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        finally:
            found = self.evaluator.end()
        self.last_per_query = found
        return result

    # --- results --------------------------------------------------------------------------
    def weight_study(self) -> dict[str, Any]:
        """The run's weight study (``evaluation.weights.WeightStudy.report``)."""
        return self.study.report(self.history)
