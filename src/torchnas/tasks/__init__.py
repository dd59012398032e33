"""Tasks: what a network of a space is for. A task owns its data, how a standalone network is
built from (space, architecture, network settings), how it is retrained and judged, its
dry-run summary and the example input an export is checked on. A space names its task
(``SearchSpace.task``); everything above dispatches on the task, never on a space's name.

* ``image-classification`` (:class:`ImageClassification`): the CNN spaces; reward and result
  are accuracies.
* ``language-modeling`` (:class:`LanguageModeling`): the ENAS recurrent cell in a word-level
  language model; reward ``c / ppl``, result perplexities.
"""
from __future__ import annotations

from ..registry import lookup
from .base import Task
from .images import ImageClassification
from .language import LanguageModeling


def task_of(space) -> Task:
    """The task of a space's networks."""
    return lookup("task", space.task)()


__all__ = ["Task", "ImageClassification", "LanguageModeling", "task_of"]
