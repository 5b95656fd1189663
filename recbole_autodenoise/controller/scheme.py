"""AutoDenoise (paper Sec. 4, Algorithm 1): a controller samples each sample's weight and learns
from the clean validation set. How it gets credit is ``controller_credit`` (``controller.credit``):
``epoch``, the paper's REINFORCE after each validation with a moving-average baseline b (b = 0 at
the start, as in Algorithm 1), ``explicit``, the controller fitted to the validation period's
ratings, or ``supervised``, a diagnostic fitted to the training ratings. What the controller sees
is ``controller_state`` (``controller.state``; the paper's by default).

Two diagnostics for the paper's Fig. 2 question (can Algorithm 1 separate true from false
positives?): ``controller_oracle_state: true`` appends each sample's true-positive flag (rating >=
``clean_rating_threshold``, not injected) to the controller's state, so the answer is in its
input; ``baseline_init: first_reward`` starts the epoch credit's baseline b at the first reward
instead of the paper's 0 (with b = 0 every early advantage R - b is positive).

``controller_prior`` multiplies the controller's weight by a baseline scheme's weight and rescales
each batch to mean 1 (``mean_one``; ``controller.prior``): ``adt_rl``, ADT-RL's
exp(-adt_beta * loss); the soft controller starts with expected output exactly 1, so training
starts at the prior. The hard controller's weights {0, 1, 2, ...} cannot start at 1 for every
sample, and a credit with a ``prior_refusal`` cannot take a prior: both are refused with it.

Credits, states and priors are found in their registries. ``ControllerScheme`` declares the keys
that choose them (``controller_credit``, ``controller_state``, ``controller_prior``); the options of
every registered credit, state and prior are checked whichever of them a run uses, and the rules of
the ones it uses (``check_config``)."""

from __future__ import annotations

from typing import Any

import torch
from recbole.evaluator import register
from recbole.utils import EvaluatorType

from recbole_autodenoise import distributed
from recbole_autodenoise.checks import fraction, non_negative, positive, positive_int
from recbole_autodenoise.controller.credit import CREDITS, ControllerHandle, Credit
from recbole_autodenoise.controller.policy import Policy, ReinforceAccumulator
from recbole_autodenoise.controller.prior import PRIORS
from recbole_autodenoise.controller.state import STATES, StateFeatures
from recbole_autodenoise.options import Option, Rule, along_mro, declare
from recbole_autodenoise.schemes.base import Batch, WeightingScheme, mean_one


def parse_reward_metric(value: Any, topk: list[int]) -> str:
    """'GAUC' -> 'gauc', 'NDCG@20' -> 'ndcg@20': a RecBole ranking metric, k among ``topk``."""
    ranking = sorted(
        name for name, kind in register.metric_types.items() if kind == EvaluatorType.RANKING
    )
    if not isinstance(value, str):
        raise ValueError(
            f"config key 'reward_metric' = {value!r} is invalid: expected one of {ranking}"
        )
    name, _, k = value.lower().partition("@")
    if name not in ranking:
        raise ValueError(
            f"config key 'reward_metric' = {value!r} is not a ranking metric; expected one of "
            f"{ranking}"
        )
    needs_k = "rec.topk" in register.metric_information[name]
    if needs_k and (not k.isdigit() or int(k) not in topk):
        raise ValueError(f"config key 'reward_metric' = {value!r} needs '@K' with K in topk {topk}")
    if not needs_k and k:
        raise ValueError(f"config key 'reward_metric' = {value!r}: {name} takes no '@K'")
    return f"{name}@{int(k)}" if needs_k else name


def check_reward_metric(config: Any) -> None:
    parse_reward_metric(config["reward_metric"], list(config["topk"] or []))


def check_other_credits_at_default(config: Any) -> None:
    """The ``exclusive`` keys of every mode but the running one keep their default."""
    mode = config["controller_credit"]
    for name in CREDITS.names():
        if name == mode:
            continue
        credit = CREDITS.get(name)
        for option in credit.declared_options():
            value = config[option.name]
            if option.name in credit.exclusive and value != option.default:
                raise ValueError(
                    f"config key {option.name!r} = {value!r} applies to controller_credit "
                    f"{name!r} only (this run uses {mode!r}); leave it at {option.default!r}"
                )


def check_prior_fits_credit(config: Any) -> None:
    """A credit with a ``prior_refusal`` takes no prior."""
    prior, mode = config["controller_prior"], config["controller_credit"]
    refusal = CREDITS.get(mode).prior_refusal
    if prior != "none" and refusal is not None:
        raise ValueError(
            f"config key 'controller_prior' = {prior!r} is not supported with controller_credit "
            f"{mode!r} ({refusal}); allowed there: 'none'"
        )


class ControllerScheme(WeightingScheme):
    """Shared by the hard and soft controllers; subclasses only build their policy. Credit
    assignment is delegated to a ``Credit`` object chosen by ``controller_credit``, which sees the
    controller through a ``ControllerHandle``; the state is computed by a ``StateFeatures`` object
    chosen by ``controller_state``."""

    OPTIONS = declare(
        Option(
            "controller_hidden_size",
            "int",
            64,
            "AutoDenoise: width of the controller's two-layer MLP",
            positive_int,
            "a positive integer",
        ),
        Option(
            "controller_learning_rate",
            "float",
            0.001,
            "AutoDenoise: Adam learning rate of the controller",
            positive,
            "a number > 0",
        ),
        Option(
            "controller_weight_decay",
            "float",
            0.0,
            "AutoDenoise: L2 penalty on the controller (lambda_2)",
            non_negative,
            "a number >= 0",
        ),
        Option(
            "baseline_decay",
            "float",
            0.9,
            "moving-average baseline b <- decay*b + (1-decay)*R",
            fraction,
            "a number in [0, 1)",
        ),
        Option(
            "reward_metric",
            "str",
            "GAUC",
            "clean-validation metric used as reward (any ranking metric)",
            allowed="a RecBole ranking metric",
        ),
        Option(
            "controller_credit",
            "str",
            "epoch",
            "AutoDenoise: epoch (paper's Eq. 10 REINFORCE) | supervised (diagnostic, reads the "
            "ratings: the controller fitted to them) | explicit (the controller fitted to the "
            "validation period's ratings, high and low)",
            registry=CREDITS,
            lists_unknown=True,
        ),
        Option(
            "controller_oracle_state",
            "bool",
            False,
            "diagnostic only: append each sample's true-positive flag (rating >= "
            "clean_rating_threshold) to the controller's state",
            lambda v: isinstance(v, bool),
            "true or false",
        ),
        Option(
            "controller_state",
            "str",
            "paper",
            "AutoDenoise: paper (e_u, e_v, loss, epoch)",
            registry=STATES,
        ),
        Option(
            "controller_prior",
            "str",
            "none",
            "AutoDenoise-S: none | adt_rl (weight = exp(-adt_beta * loss) * controller output); "
            "mean 1 per batch; not with autodenoise_h or controller_credit supervised",
            choices=("none",),
            registry=PRIORS,
        ),
    )
    RULES = (
        Rule(
            ("reward_metric", "topk"),
            "@K with K in topk where the metric takes one (NDCG@20; GAUC takes none)",
            check_reward_metric,
        ),
        Rule(
            ("controller_credit",),
            "the keys of the other modes (baseline_init, explicit_*) stay at their defaults",
            check_other_credits_at_default,
        ),
        Rule(
            ("controller_prior", "controller_credit"),
            "none with a credit that refuses a prior (supervised)",
            check_prior_fits_credit,
        ),
    )
    needs_representations = True
    learns_from_validation = True

    @classmethod
    def declared_options(cls) -> list[Option]:
        """The options of this class and its bases, and those of every registered credit, state
        and prior: checked whichever of them a run uses."""
        found = super().declared_options()
        parts = [
            registry.get(name)
            for registry in (CREDITS, STATES, PRIORS)
            for name in registry.names()
        ]
        for part in parts:
            found += [option for option in part.declared_options() if option not in found]
        return found

    @classmethod
    def check_config(cls, config) -> None:
        """Every declared option, the rules of this class and its bases, then those of the credit,
        state and prior the run uses."""
        super().check_config(config)
        credit = CREDITS.get(config["controller_credit"])
        state = STATES.get(config["controller_state"])
        rules = along_mro(credit, "RULES") + along_mro(state, "RULES")
        if config["controller_prior"] != "none":
            rules += along_mro(PRIORS.get(config["controller_prior"]), "RULES")
        for rule in rules:
            rule.check(config)

    def __init__(self, config, device) -> None:
        super().__init__(config, device)  # checks every key it reads below
        self.hidden_size = config["controller_hidden_size"]
        self.learning_rate = config["controller_learning_rate"]
        self.weight_decay = config["controller_weight_decay"]
        baseline_decay = config["baseline_decay"]
        reward_key = parse_reward_metric(config["reward_metric"], list(config["topk"] or []))
        self.credit_mode = config["controller_credit"]
        self.oracle_state = config["controller_oracle_state"]
        credit = CREDITS.get(self.credit_mode)
        features = self._build_state(config)
        self.prior = config["controller_prior"]
        self.prior_scheme: WeightingScheme | None = None
        if self.prior != "none":
            self.prior_scheme = PRIORS.get(self.prior)(config, device)
        generator = torch.Generator(device=device)
        # under DDP each rank draws its own shard's weights
        generator.manual_seed(distributed.rank_seed(config))
        self.controller = ControllerHandle(
            device=device,
            generator=generator,
            seed=int(config["seed"]),
            reward_key=reward_key,
            baseline_decay=baseline_decay,
            features=features,
        )
        self.input_size: int | None = None
        self.credit: Credit = credit(self.controller, credit.read_options(config))
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
        """``controller_credit`` where its mode learns from the validation rows (explicit)."""
        credit = cls._credit_class(config)
        if credit is None or not credit.learns_from_validation_rows:
            return []
        return [("controller_credit", credit.name)]

    @classmethod
    def guidance_users(cls, config) -> list[tuple[str, Any]]:
        """``controller_credit`` where its mode draws clean guiding batches (explicit, meta)."""
        credit = cls._credit_class(config)
        return [("controller_credit", credit.name)] if credit and credit.needs_guidance else []

    def _build_state(self, config) -> StateFeatures:
        """The running state (``controller_state``) with its options."""
        self.state_kind = config["controller_state"]
        state = STATES.get(self.state_kind)
        features = state(state.read_options(config))
        if not features.needs_representations:
            self.needs_representations = False  # the state replaces e_u and e_v
        return features

    # the handle's policy, optimiser and generator, where the trainer, the tests and older callers
    # look for them
    @property
    def policy(self) -> Policy | None:
        return self.controller.policy

    @policy.setter
    def policy(self, policy: Policy | None) -> None:
        self.controller.policy = policy

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self.controller.optimizer

    @optimizer.setter
    def optimizer(self, optimizer: torch.optim.Optimizer | None) -> None:
        self.controller.optimizer = optimizer

    @property
    def generator(self) -> torch.Generator:
        return self.controller.generator

    @property
    def features(self) -> StateFeatures:
        return self.controller.features

    def setup(self, train_dataset: Any, held_out: Any = None) -> None:
        """The prior's own setup (ADT-TL's schedule in epochs), then the credit's and the state's
        (rows they add or keep per training row; ``held_out``: every validation row, which
        added rows must avoid)."""
        if self.prior_scheme is not None:
            self.prior_scheme.batches_per_epoch = self.batches_per_epoch
            self.prior_scheme.setup(train_dataset, held_out)
        self.credit.setup(train_dataset, held_out)
        self.features.setup(train_dataset, held_out)

    def augment(self, interaction: Any) -> Any:
        return self.credit.augment(interaction)

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
        distributed.broadcast_module(
            self.policy
        )  # under DDP every rank starts from rank 0's controller
        self.input_size = input_size
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        self.credit.on_build()

    def _state(self, batch: Batch) -> torch.Tensor:
        return self.features(batch, batch.true_positive if self.oracle_state else None)

    def weights(self, batch: Batch) -> torch.Tensor:
        state = self._state(batch)
        if self.policy is None:
            self._build(state.shape[1])
        self.credit.before_weights(state, batch)
        if (
            self.credit.records_score
        ):  # the score's gradient from the sampling pass: no autograd graph
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
        state: dict[str, Any] = {
            "generator": self.generator.get_state(),
            "credit": self.credit_mode,
            "controller_state": self.state_kind,
        }
        state.update(self.credit.state_dict())
        if self.policy is not None:
            state.update(
                input_size=self.input_size,
                policy=self.policy.state_dict(),
                optimizer=self.optimizer.state_dict(),
            )
        state.update(self.features.state_dict())
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
        saved_kind = state.get(
            "controller_state", "paper"
        )  # states from before loss features are the paper's
        if saved_kind != self.state_kind:
            raise ValueError(
                f"the saved controller was trained with controller_state={saved_kind!r}, this "
                f"run uses {self.state_kind!r}"
            )
        self._load_prior(state)
        self.generator.set_state(state["generator"].cpu())
        if "policy" in state:
            self._build(int(state["input_size"]))
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.credit.load_state_dict(state)
        self.features.load_state_dict(state)

    def _load_prior(self, state: dict[str, Any]) -> None:
        """The prior's own state (ADT-TL's iteration); refuses a checkpoint of another prior."""
        saved = state.get(
            "prior"
        )  # absent: no prior, or a stateless ADT-RL one saved before priors had state
        if saved is not None and saved["name"] != self.prior:
            raise ValueError(
                f"the saved controller was trained with controller_prior={saved['name']!r}, "
                f"this run uses {self.prior!r}"
            )
        if self.prior_scheme is None:
            return
        if saved is None and self.prior_scheme.state_dict():
            raise ValueError(
                f"the saved controller has no state for controller_prior={self.prior!r} "
                f"(it was trained without that prior)"
            )
        self.prior_scheme.load_state_dict(
            {key: value for key, value in (saved or {}).items() if key != "name"}
        )
