"""``AutoDenoiseTrainer``: RecBole's ``Trainer`` with per-sample weights from a weighting scheme.

Only the hooks RecBole offers are overridden: ``_train_epoch`` passes a weighted ``loss_func``,
``_valid_epoch`` lets the scheme learn from the clean validation result (or from the data
bundle's guide loader: the guide part of the clean validation set where the data pipeline split
one off, the whole clean validation set under ``eval_protocol: user_first``), and
the checkpoint hooks write the state ``checkpoints.py`` defines: the best model ``<name>.pth``
(saved on improvement, read by ``evaluate(load_best_model=True)``) and ``<name>-latest.pth``, the
full state after every finished epoch, from which ``resume_checkpoint`` continues exactly.
Schemes with ``needs_guidance`` get a ``Guidance`` per batch (clean batches, per-sample
alignment, virtual meta steps). Evaluation never applies weights; the weight study is
``evaluation.weights``.

Early stopping is RecBole's (``stopping_step`` validations without gain) with one guard: it cannot
fire before ``stopping_min_epochs`` epochs have trained, so a run whose first validations happen to
be its best cannot end as an untrained model by accident. ``stopping_summary`` says how a run
ended (best epoch, stopped early, or ran into the ``epochs`` cap).
"""

from __future__ import annotations

from time import time
from typing import Any

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.utils.data.distributed import DistributedSampler

from recbole_autodenoise import checkpoints, distributed
from recbole_autodenoise.adapters import USER_LEVEL_MODELS
from recbole_autodenoise.canaries import CANARY_FIELD
from recbole_autodenoise.loss_store import ROW_FIELD
from recbole_autodenoise.checkpoints import (
    check_checkpoint_dir,
    latest_file,
    plain_config,
    unique_checkpoint_file,
)
from recbole_autodenoise.config import positive, read_key
from recbole_autodenoise.data.bundle import DataBundle, TrainingData, training_data_of
from recbole_autodenoise.data.dataloader import InteractionFullSortEvalDataLoader
from recbole_autodenoise.diagnostics import Diagnosis
from recbole_autodenoise.evaluation import per_query
from recbole_autodenoise.evaluation.per_user import CleanAUC
from recbole_autodenoise.evaluation.weights import WeightStudy
from recbole_autodenoise.guidance import CleanBatches, Guidance, double_backward_safe, guide_dataset
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.autodenoise import parse_reward_metric, positive_int
from recbole_autodenoise.schemes.default import DefaultScheme


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
        self.pending: dict[str, Any] = {}  # what a resume read for fit: "rng", "guide"
        self.train_data = None
        self.data: TrainingData | None = None  # the training side of the data (set_data)
        self.clean_batches: CleanBatches | None = None  # built in fit() for schemes with needs_guidance
        self._collect_auc: CleanAUC | None = None

    @staticmethod
    def _ensure_metric(config, metric_key: str) -> None:
        """The reward must be computed on validation: add its metric to ``metrics`` if absent."""
        name = metric_key.split("@")[0]
        if name not in [m.lower() for m in config["metrics"]]:
            config["metrics"] = list(config["metrics"]) + [name]

    # --- training -------------------------------------------------------------------------
    def set_data(self, bundle: DataBundle) -> None:
        """The data ``fit`` trains on: ``prepare_data``'s bundle, of which the trainer keeps the
        training side only (``bundle.training``: guide loader, guide, explicit and validation
        rows; never a test row). ``fit`` then takes ``bundle.train`` and ``bundle.select``.
        Without it, ``fit`` on ``data_preparation``'s loaders finds the same training side
        (``data.bundle.training_data_of``); on other loaders the validation set guides."""
        self.data = bundle.training

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):
        if self.data is None:
            self.data = training_data_of(train_data)
        elif self.data.train is not train_data:
            raise ValueError("fit() got another training loader than this trainer's data "
                             "(set_data, or the first fit): pass that bundle's train loader")
        self.train_data, data = train_data, self.data
        if not self._is_set_up:
            self.scheme.batches_per_epoch = len(train_data)
            self.scheme.setup(train_data._dataset, None if data is None else data.valid_rows)
            self._is_set_up = True
        if self.scheme.needs_guidance and self.clean_batches is None:
            self.clean_batches = CleanBatches(
                guide_dataset(data, valid_data, self.scheme.guide_rows), self.model,
                self.guide_batch_size, int(self.config["seed"]), self.device,
                exclude=train_data._dataset,
            )
        if self.diagnosis is not None:
            self.diagnosis.setup(guide_dataset(data, valid_data), self.guide_batch_size,
                                 train_data._dataset)
        checkpoints.restore_pending(self)
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
            true_positive=(self.study.true_positive(interaction) if self.scheme.reads_ratings
                           else None),
            row_ids=interaction[ROW_FIELD] if ROW_FIELD in interaction.interaction else None,
            canary=interaction[CANARY_FIELD] if CANARY_FIELD in interaction.interaction else None,
        )

    def _check_nan(self, loss) -> None:
        if torch.isnan(loss):
            raise ValueError(
                f"training loss is NaN at epoch {self._epoch} (denoise_scheme={self.scheme_name}); "
                "lower learning_rate or check the data"
            )

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time()
        # the scheme learns from the guide loader where the data pipeline made one: the guide part
        # of a guide/select split, or (eval_protocol user_first, whose validation loader holds one
        # query per user) every clean validation interaction; validation selects
        guide_loader = None if self.data is None else self.data.guide
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
                f"the model, controller and baseline after epoch {self._epoch}",
                checkpoints.shared_state_digest(self.model, self.scheme))
        if self.history:
            self.history[-1].update(valid_seconds=time() - start, valid_score=float(valid_score),
                                    **{f"controller_{k}": v for k, v in logs.items()}, **diagnostics)
            if guide_score is not None:
                self.history[-1]["guide_score"] = float(guide_score)
        self._hold_early_stopping()
        self._last_valid_result = valid_result
        return valid_score, valid_result

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
        return CleanAUC(self.train_data._dataset.user_num, self.model.USER_ID, self.device)

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

    # --- checkpoints (their format: checkpoints.py) ---------------------------------------
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """The best model so far (RecBole calls this on improvement), to ``saved_model_file``."""
        self.best_epoch, self.best_valid_per_query = epoch, self._valid_per_query
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        checkpoints.save(self, "best", epoch, self._last_valid_result, path, verbose)

    def _save_latest(self, epoch: int, verbose: bool = True) -> None:
        """The state after the finished ``epoch``, to ``latest_model_file`` (once per epoch)."""
        if self._saving and self._latest_epoch != epoch:
            checkpoints.save(self, "latest", epoch, self.best_valid_result, self.latest_model_file,
                             verbose)
            self._latest_epoch = epoch

    def resume_checkpoint(self, resume_file):
        """Continue from a checkpoint (``checkpoints.resume``). RecBole's own ``resume_checkpoint``
        is not called: it reads the file again with torch's default loader (full unpickling before
        torch 2.6) and only warns when the model differs."""
        checkpoints.resume(self, resume_file)
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's, with the best model read through the checksummed, ``weights_only`` loader.
        Under DDP rank 0 reads it and sends it to the other ranks (other machines need not see its files).
        Keeps the evaluation's per-query ranks in ``last_per_query`` (``evaluation.per_query``)."""
        check_whole_set(eval_data, self.config)
        if load_best_model and eval_data:
            checkpoints.load_best_model(self, model_file or self.saved_model_file)
        self._query_users, self.evaluator.last_topk = [], None
        try:
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        finally:
            users, self._query_users = self._query_users, None
        self.last_per_query = per_query.record(self.evaluator.last_topk, torch.cat(users) if users else torch.empty(0))
        return result

    # --- results --------------------------------------------------------------------------
    def weight_study(self) -> dict[str, Any]:
        """The run's weight study (``evaluation.weights.WeightStudy.report``)."""
        return self.study.report(self.history)


def check_whole_set(eval_data, config) -> None:
    """Under DDP evaluation must see the whole set on every rank (see ``_map_reduce``)."""
    if distributed.is_distributed(config) and isinstance(getattr(eval_data, "sampler", None), DistributedSampler):
        raise ValueError("under multi-process training every rank evaluates the whole set: build the loaders "
                         "with recbole_autodenoise.data_preparation (its evaluation loaders are not sharded)")
