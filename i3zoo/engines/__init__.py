"""Engines: the jobs a user runs on real files, as Python APIs that the ``i3zoo`` commands only parse for.

``loading``: a model and its weights for a job (:func:`load_model`, shared by extraction, prediction, ONNX
export and fine-tuning), ``extraction``: features of sliding windows, one resumable, atomic output per video
(:func:`extract`, :class:`Extractor`), ``prediction``: top-k classes per video over evenly spaced clips
(:func:`predict`, :class:`Predictor`), ``evaluation``: top-1 / top-5 on a labelled list with the weights' own
multi-view protocol (:func:`i3zoo.engines.evaluation.evaluate`), ``folder_settings``: one settings per output
folder (:func:`i3zoo.engines.folder_settings.claim_folder`); ``loading`` also decides how a job runs the model
(:func:`choose_path`: an optimized copy, compiled with freezing when the job is long enough). Each returns what
it did (a summary, the predictions) and raises :class:`i3zoo.UsageError` for what cannot be done as asked; apart
from a run's progress (a bar on a terminal, a line per video otherwise), printing is the caller's.

May import: torch, torchvision (ImageNet's class names), numpy, safetensors, tqdm, and of i3zoo ``registry``,
``files``, ``errors``, ``distributed``, ``inference``, ``video`` and ``weights``; never ``models`` directly
(models come through the registry), ``train`` or ``cli``.
"""

from .extraction import ExtractionSummary, Extractor, extract
from .loading import LoadedModel, choose_path, count_windows, describe_weights, load_model, model_label_names
from .prediction import Predictions, Predictor, predict

__all__ = ["load_model", "LoadedModel", "model_label_names", "describe_weights", "choose_path", "count_windows",
           "Extractor", "extract", "ExtractionSummary", "Predictor", "predict", "Predictions"]
