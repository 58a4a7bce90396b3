"""FID, KID, precision and recall between runs, checkpoints and image folders, with a pluggable feature network.

``features``: the Inception network and how images are fed to it. ``scores``: the scores as functions of
two feature sets. ``sources``: features of a run or a folder (cached) and ``compare``. ``training``: the
scorer ``--eval-every`` uses. Nothing heavy is imported until a function runs.
"""

from .features import (
    INCEPTION_SIZE,
    INSTALL_HINT,
    Extractor,
    InceptionFeatures,
    MetricsError,
    MetricsUnavailable,
    inception_path,
)
from .scores import feature_stats, frechet_distance, kid, knn_radii, precision_recall, scores
from .sources import (
    FolderFeatures,
    GeneratedFeatures,
    compare,
    folder_features,
    generated_images,
    generator_features,
    native_size,
)
from .training import TrainingScorer

__all__ = [
    "INCEPTION_SIZE",
    "INSTALL_HINT",
    "Extractor",
    "FolderFeatures",
    "GeneratedFeatures",
    "InceptionFeatures",
    "MetricsError",
    "MetricsUnavailable",
    "TrainingScorer",
    "compare",
    "feature_stats",
    "folder_features",
    "frechet_distance",
    "generated_images",
    "generator_features",
    "inception_path",
    "kid",
    "knn_radii",
    "native_size",
    "precision_recall",
    "scores",
]
