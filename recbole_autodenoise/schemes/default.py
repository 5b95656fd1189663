"""Default: no reweighting; the model's own loss, exactly as stock RecBole trains it."""

from __future__ import annotations

from recbole_autodenoise.schemes.base import Batch, WeightingScheme, register_scheme


@register_scheme("default")
class DefaultScheme(WeightingScheme):
    def weights(self, batch: Batch) -> None:
        return None
