"""recbole-autodenoise: AutoDenoise (Ge et al.) and its baselines as a RecBole plugin."""

from recbole_autodenoise import compat
from recbole_autodenoise.evaluation.metrics import register_metrics

compat.apply()
register_metrics()

from recbole_autodenoise.adapters import register_loss_adapter, register_representations  # noqa: E402
from recbole_autodenoise.config import make_config, property_files  # noqa: E402
from recbole_autodenoise.data import create_dataset, data_preparation, prepare_data  # noqa: E402
from recbole_autodenoise.schemes import SCHEMES, WeightingScheme, register_scheme  # noqa: E402
from recbole_autodenoise import controller  # noqa: E402, F401  (registers AutoDenoise's schemes)
from recbole_autodenoise.trainer import AutoDenoiseTrainer  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "SCHEMES",
    "AutoDenoiseTrainer",
    "WeightingScheme",
    "create_dataset",
    "data_preparation",
    "make_config",
    "prepare_data",
    "property_files",
    "register_loss_adapter",
    "register_representations",
    "register_scheme",
]
