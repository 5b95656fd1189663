"""AutoDenoise (paper Sec. 4, Algorithm 1): a controller samples each sample's weight and learns
from the clean validation set. How it gets credit is ``controller_credit`` (``recbole_autodenoise.credit``):
``epoch``, the paper's REINFORCE after each validation with a moving-average baseline b (b = 0 at
the start, as in Algorithm 1), ``user``, REINFORCE with each user's own clean reward and baseline,
or ``meta``, per-batch meta-gradients through a virtual step.

Two diagnostics for the paper's Fig. 2 question (can Algorithm 1 separate true from false
positives?): ``controller_oracle_state: true`` appends each sample's true-positive flag (rating >=
``clean_rating_threshold``, not injected) to the controller's state, so the answer is in its
input; ``baseline_init: first_reward`` starts the epoch credit's baseline b at the first reward
instead of the paper's 0 (with b = 0 every early advantage R - b is positive).

``controller_state: loss_features`` replaces the paper's state (embeddings, loss, epoch) by seven
loss-derived features per training row kept in a ``LossStore`` (``recbole_autodenoise.loss_store``,
16 bytes per training interaction). ``controller_prior`` multiplies the controller's weight by a
baseline scheme's weight and rescales each batch to mean 1 (``mean_one``): ``adt_rl``, ADT-RL's
exp(-adt_beta * loss), or ``adt_tl``, ADT-TL's truncation (0 for the batch's largest losses on its
drop-rate schedule, the ``adt_*`` keys); the soft controller starts with expected output exactly 1,
so training starts at the prior. The hard
controller's weights {0, 1, 2, ...} cannot start at 1 for every sample, and the meta credit's
virtual step does not apply the prior: both are refused with the prior."""

from __future__ import annotations

from typing import Any

import torch
from recbole.evaluator import register
from recbole.utils import EvaluatorType

from recbole_autodenoise import distributed
from recbole_autodenoise.canaries import Canaries
from recbole_autodenoise.config import fraction, is_int, non_negative, positive, positive_int, read_key
from recbole_autodenoise.controller import Policy, ReinforceAccumulator, controller_state
from recbole_autodenoise.credit import CREDITS, Credit
from recbole_autodenoise.guidance import read_virtual_step
from recbole_autodenoise.loss_store import STATES, LossStore, add_row_ids
from recbole_autodenoise.schemes.adt_rl import ReweightedLossScheme
from recbole_autodenoise.schemes.adt_tl import TruncatedLossScheme
from recbole_autodenoise.schemes.base import Batch, WeightingScheme, mean_one

BASELINE_INITS = ("zero", "first_reward")
EXPLICIT_LABELS = ("rating", "observed")
# the baseline schemes a controller can start from (``controller_prior``), each reading its own keys
PRIOR_SCHEMES: dict[str, type[WeightingScheme]] = {"adt_rl": ReweightedLossScheme, "adt_tl": TruncatedLossScheme}
PRIORS = ("none", *PRIOR_SCHEMES)


def parse_reward_metric(value: Any, topk: list[int]) -> str:
    """'GAUC' -> 'gauc', 'NDCG@20' -> 'ndcg@20': a RecBole ranking metric, k among ``topk``."""
    ranking = sorted(name for name, kind in register.metric_types.items() if kind == EvaluatorType.RANKING)
    if not isinstance(value, str):
        raise ValueError(f"config key 'reward_metric' = {value!r} is invalid: expected one of {ranking}")
    name, _, k = value.lower().partition("@")
    if name not in ranking:
        raise ValueError(f"config key 'reward_metric' = {value!r} is not a ranking metric; expected one of {ranking}")
    needs_k = "rec.topk" in register.metric_information[name]
    if needs_k and (not k.isdigit() or int(k) not in topk):
        raise ValueError(f"config key 'reward_metric' = {value!r} needs '@K' with K in topk {topk}")
    if not needs_k and k:
        raise ValueError(f"config key 'reward_metric' = {value!r}: {name} takes no '@K'")
    return f"{name}@{int(k)}" if needs_k else name


class ControllerScheme(WeightingScheme):
    """Shared by the hard and soft controllers; subclasses only build their policy. Credit
    assignment is delegated to a ``Credit`` object chosen by ``controller_credit``."""

    config_keys = (
        "controller_hidden_size", "controller_learning_rate", "controller_weight_decay", "baseline_decay",
        "reward_metric", "controller_credit", "meta_interval", "meta_normalize_weights",
        "controller_state", "loss_ema_decay", "controller_prior", "adt_beta", "adt_max_drop_rate",
        "adt_num_gradual", "adt_gradual_unit", "meta_virtual_step",
        "explicit_negatives", "explicit_canaries", "explicit_weight_power", "explicit_labels",
    )
    needs_representations = True
    learns_from_validation = True

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.hidden_size = read_key(config, "controller_hidden_size", positive_int, "a positive integer")
        self.learning_rate = read_key(config, "controller_learning_rate", positive, "a number > 0")
        self.weight_decay = read_key(config, "controller_weight_decay", non_negative, "a number >= 0")
        self.baseline_decay = read_key(config, "baseline_decay", fraction, "a number in [0, 1)")
        self.reward_key = parse_reward_metric(config["reward_metric"], list(config["topk"] or []))
        self.credit_mode = read_key(
            config, "controller_credit", lambda v: isinstance(v, str) and v in CREDITS, f"one of {CREDITS.names()}"
        )
        self.meta_interval = read_key(config, "meta_interval", positive_int, "a positive integer")
        self.meta_normalize_weights = read_key(
            config, "meta_normalize_weights", lambda v: isinstance(v, bool), "true or false"
        )
        self.meta_virtual_step = read_virtual_step(config, self.credit_mode)
        self.oracle_state = read_key(config, "controller_oracle_state", lambda v: isinstance(v, bool), "true or false")
        self.baseline_init = read_key(
            config, "baseline_init", lambda v: isinstance(v, str) and v in BASELINE_INITS, f"one of {list(BASELINE_INITS)}"
        )
        if self.baseline_init != "zero" and self.credit_mode != "epoch":
            raise ValueError(
                f"config key 'baseline_init' = {self.baseline_init!r} applies to controller_credit 'epoch' only "
                f"(this run uses {self.credit_mode!r}); leave it at 'zero'"
            )
        self._read_loss_keys(config)
        self._read_explicit_keys(config)
        self.canaries: Canaries | None = None
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(distributed.rank_seed(config))  # under DDP each rank draws its own shard's weights
        self.policy: Policy | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.input_size: int | None = None
        self.credit: Credit = CREDITS.get(self.credit_mode)(self)
        self.reads_ratings = self.oracle_state or self.credit.reads_ratings
        self.needs_guidance = self.credit.needs_guidance
        self.guide_rows = self.credit.guide_rows
        self.needs_user_rewards = self.credit.needs_user_rewards
        self.needs_reward = self.credit.needs_reward

    @classmethod
    def _credit_class(cls, config) -> type[Credit] | None:
        """``controller_credit``'s class; None for a value ``__init__`` refuses."""
        credit = config["controller_credit"]
        return CREDITS.get(credit) if isinstance(credit, str) and credit in CREDITS else None

    @classmethod
    def rating_readers(cls, config) -> list[tuple[str, Any]]:
        """``controller_credit`` where its mode reads the ratings (``supervised``), and
        ``controller_oracle_state: true``."""
        credit = cls._credit_class(config)
        found = []
        if credit is not None and credit.reads_ratings:
            found.append(("controller_credit", credit.name))
        if config["controller_oracle_state"] is True:
            found.append(("controller_oracle_state", True))
        return found

    @classmethod
    def validation_learners(cls, config) -> list[tuple[str, Any]]:
        """``controller_credit`` where its mode learns from the validation rows (meta, user,
        explicit)."""
        credit = cls._credit_class(config)
        if credit is None or not credit.learns_from_validation_rows:
            return []
        return [("controller_credit", credit.name)]

    def _read_explicit_keys(self, config) -> None:
        """``explicit_negatives``, ``explicit_canaries``, ``explicit_weight_power`` and
        ``explicit_labels``: explicit credit only."""
        self.explicit_negatives = read_key(config, "explicit_negatives", lambda v: is_int(v) and v >= 0, "an integer >= 0")
        self.canary_rate = read_key(config, "explicit_canaries", fraction, "a number in [0, 1)")
        self.weight_power = read_key(config, "explicit_weight_power", positive, "a number > 0")
        if config["explicit_labels"] == "interaction":
            raise ValueError(
                "config key 'explicit_labels' = 'interaction' was renamed 'observed' (every rated "
                "row labelled 1: no rating is used); set explicit_labels: observed"
            )
        self.explicit_labels = read_key(config, "explicit_labels", lambda v: isinstance(v, str) and v in EXPLICIT_LABELS,
                                        f"one of {list(EXPLICIT_LABELS)}")
        for key, value, neutral in (("explicit_negatives", self.explicit_negatives, 0),
                                    ("explicit_canaries", self.canary_rate, 0),
                                    ("explicit_weight_power", self.weight_power, 1),
                                    ("explicit_labels", self.explicit_labels, "rating")):
            if value != neutral and self.credit_mode != "explicit":
                raise ValueError(
                    f"config key {key!r} = {value!r} applies to controller_credit 'explicit' only (this run uses "
                    f"{self.credit_mode!r}); leave it at {neutral!r}"
                )
        if self.explicit_labels == "observed" and not (self.explicit_negatives or self.canary_rate):
            raise ValueError(
                "config key 'explicit_labels' = 'observed' labels every rated row 1, so the fit "
                "needs rows "
                "labelled 0: set explicit_negatives >= 1 (or explicit_canaries > 0)"
            )

    def _read_loss_keys(self, config) -> None:
        """``controller_state``, ``loss_ema_decay``, ``controller_prior`` and the priors' keys (every
        prior scheme is built, so each of its keys is checked whichever prior the run uses)."""
        self.state_kind = read_key(
            config, "controller_state", lambda v: isinstance(v, str) and v in STATES, f"one of {list(STATES)}"
        )
        self.loss_ema_decay = read_key(config, "loss_ema_decay", fraction, "a number in [0, 1)")
        self.prior = read_key(
            config, "controller_prior", lambda v: isinstance(v, str) and v in PRIORS, f"one of {list(PRIORS)}"
        )
        priors = {name: scheme(config, self.device) for name, scheme in PRIOR_SCHEMES.items()}
        self.prior_scheme: WeightingScheme | None = priors.get(self.prior)
        if self.prior != "none" and self.credit_mode in ("meta", "supervised"):
            why = "its virtual step would ignore the prior" if self.credit_mode == "meta" else "it fits the ratings alone"
            raise ValueError(
                f"config key 'controller_prior' = {self.prior!r} is not supported with controller_credit "
                f"{self.credit_mode!r} ({why}); allowed there: 'none'"
            )
        if self.state_kind == "loss_features":
            self.needs_representations = False  # the loss features replace e_u and e_v
        self.loss_store: LossStore | None = None
        self._pending_store: dict[str, Any] | None = None

    def setup(self, train_dataset: Any, held_out: Any = None) -> None:
        """With ``explicit_canaries``: plant the canaries. With ``loss_features``: give every training
        row an id and build its loss store. The prior's own setup (ADT-TL's schedule in epochs)."""
        if self.prior_scheme is not None:
            self.prior_scheme.batches_per_epoch = self.batches_per_epoch
            self.prior_scheme.setup(train_dataset)
        if self.canary_rate:
            seed = int(self.config["seed"])
            self.canaries = Canaries(train_dataset, self.canary_rate, seed, held_out)
        if self.state_kind != "loss_features":
            return
        add_row_ids(train_dataset)
        inter_feat = train_dataset.inter_feat
        self.loss_store = LossStore(inter_feat[train_dataset.uid_field], inter_feat[train_dataset.iid_field],
                                    train_dataset.user_num, train_dataset.item_num, self.loss_ema_decay)
        if self._pending_store is not None:
            self.loss_store.load_state_dict(self._pending_store)
            self._pending_store = None

    def augment(self, interaction: Any) -> Any:
        return interaction if self.canaries is None else self.canaries.augment(interaction)

    # the epoch credit's REINFORCE state, where the tests and older callers look for it
    @property
    def baseline(self) -> float | None:
        return getattr(self.credit, "baseline", None)

    @property
    def accumulator(self) -> ReinforceAccumulator | None:
        return getattr(self.credit, "accumulator", None)

    def build_policy(self, input_size: int) -> Policy:
        raise NotImplementedError

    def _build(self, input_size: int) -> None:
        # the policy's own initialisation draws from a generator seeded by the config's seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.config["seed"]))
            self.policy = self.build_policy(input_size).to(self.device)
        distributed.broadcast_module(self.policy)  # under DDP every rank starts from rank 0's controller
        self.input_size = input_size
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        self.credit.on_build()

    def _state(self, batch: Batch) -> torch.Tensor:
        true_positive = batch.true_positive if self.oracle_state else None
        if self.state_kind != "loss_features":
            return controller_state(batch.user_repr, batch.item_repr, batch.losses, batch.epoch_fraction,
                                    true_positive, product=self.state_kind == "paper_product")
        if self.loss_store is None or batch.row_ids is None or batch.user_ids is None:
            raise ValueError(
                "controller_state 'loss_features' needs the training rows' ids and users: train with "
                "AutoDenoiseTrainer (the scheme's setup adds the row ids) on a model whose batches hold the user id"
            )
        state = self.loss_store.features(batch.row_ids, batch.user_ids, batch.item_ids, batch.losses,
                                         batch.epoch, batch.epoch_fraction)
        if true_positive is not None:
            state = torch.cat([state, true_positive.to(state.dtype).unsqueeze(1)], dim=1)
        return state

    def weights(self, batch: Batch) -> torch.Tensor:
        state = self._state(batch)
        if self.policy is None:
            self._build(state.shape[1])
        self.credit.before_weights(state, batch)
        if self.credit.records_score:  # the score's gradient from the sampling pass: no autograd graph
            action, weight, grads = self.policy.sample_scored(state, self.generator)
            self.credit.record_score(grads, len(action))
        else:
            action, weight = self.policy.sample(state, self.generator)
            self.credit.record(state, action, batch)
        weight = self.credit.real_weights(weight)
        if self.prior_scheme is not None:
            return mean_one(self.prior_scheme.weights(batch) * weight)
        return weight

    def observe_user_rewards(self, rewards: torch.Tensor) -> None:
        self.credit.observe_user_rewards(rewards)

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        return self.credit.after_evaluation(valid_result, epoch)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state(), "credit": self.credit_mode,
                                 "controller_state": self.state_kind}
        state.update(self.credit.state_dict())
        if self.policy is not None:
            state.update(
                input_size=self.input_size, policy=self.policy.state_dict(), optimizer=self.optimizer.state_dict()
            )
        if self.loss_store is not None:
            state["loss_store"] = self.loss_store.state_dict()
        if self.prior_scheme is not None:
            state["prior"] = {"name": self.prior, **self.prior_scheme.state_dict()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_mode = state.get("credit", "epoch")  # states from before credit modes are epoch's
        if saved_mode != self.credit_mode:
            raise ValueError(
                f"the saved controller was trained with controller_credit={saved_mode!r}, "
                f"this run uses {self.credit_mode!r}"
            )
        saved_kind = state.get("controller_state", "paper")  # states from before loss features are the paper's
        if saved_kind != self.state_kind:
            raise ValueError(
                f"the saved controller was trained with controller_state={saved_kind!r}, this run uses {self.state_kind!r}"
            )
        self._load_prior(state)
        self.generator.set_state(state["generator"].cpu())
        if "policy" in state:
            self._build(int(state["input_size"]))
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.credit.load_state_dict(state)
        if "loss_store" in state:
            if self.loss_store is None:  # a resumed run loads before the trainer's setup
                self._pending_store = state["loss_store"]
            else:
                self.loss_store.load_state_dict(state["loss_store"])

    def _load_prior(self, state: dict[str, Any]) -> None:
        """The prior's own state (ADT-TL's iteration); refuses a checkpoint of another prior."""
        saved = state.get("prior")  # absent: no prior, or a stateless ADT-RL one saved before priors had state
        if saved is not None and saved["name"] != self.prior:
            raise ValueError(f"the saved controller was trained with controller_prior={saved['name']!r}, "
                             f"this run uses {self.prior!r}")
        if self.prior_scheme is None:
            return
        if saved is None and self.prior_scheme.state_dict():
            raise ValueError(f"the saved controller has no state for controller_prior={self.prior!r} "
                             f"(it was trained without that prior)")
        self.prior_scheme.load_state_dict({key: value for key, value in (saved or {}).items() if key != "name"})
