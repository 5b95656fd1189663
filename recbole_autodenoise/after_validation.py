"""What follows each validation pass of ``AutoDenoiseTrainer._valid_epoch``: the scheme learns
from its reward (``evaluation.reward.RewardPass`` picks what it learns from), the scheme's logs go
to tensorboard and the run's log, the denoising diagnostics run, under DDP every rank's model and
controller are checked to agree, and the epoch's record in the trainer's ``history`` gets the
validation's entries."""

from __future__ import annotations

from time import time
from typing import Any

from recbole.utils import set_color

from recbole_autodenoise import checkpoints, distributed


def learn_and_record(
    trainer: Any, epoch: int, learned: tuple[Any, Any], valid_score: float, start: float
) -> None:
    """After the validation of ``epoch``, whose score is ``valid_score`` and which began at
    ``start`` (``time()``): ``trainer.scheme`` learns from ``learned`` (what it learns from and
    the guide loader's score, ``RewardPass.learn_from``), then the logs and the record."""
    learn_from, guide_score = learned
    if guide_score is not None:
        trainer.tensorboard.add_scalar("AutoDenoise/guide_score", guide_score, epoch)
    logs = trainer.scheme.after_evaluation(learn_from, epoch)
    for key, value in logs.items():
        trainer.tensorboard.add_scalar(f"AutoDenoise/{key}", value, epoch)
    if logs:
        trainer.logger.info(
            set_color("controller", "blue")
            + ": "
            + ", ".join(f"{k}={v:.6f}" for k, v in logs.items())
        )
    diagnostics = {} if trainer.diagnosis is None else trainer.diagnosis.run()
    if distributed.is_distributed(trainer.config):
        diagnostics["rank_digests"] = distributed.check_agreement(
            f"the model, controller and baseline after epoch {epoch}",
            checkpoints.shared_state_digest(trainer.model, trainer.scheme),
        )
    if trainer.history:
        trainer.history[-1].update(
            valid_seconds=time() - start,
            valid_score=float(valid_score),
            **{f"controller_{k}": v for k, v in logs.items()},
            **diagnostics,
        )
        if guide_score is not None:
            trainer.history[-1]["guide_score"] = float(guide_score)
