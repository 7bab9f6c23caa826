"""The options of a submission or a schedule that are not pipeline parameters: where a run's
artifacts go, its labels and how many runs of a schedule may overlap (SubmitOptions), checked on
construction like every step's settings, so that `--dry-run` refuses what Vertex AI or KFP would."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loopline.core import rules
from loopline.core.errors import LooplineError

TARGET_KINDS = ("kfp", "vertex")
# Vertex AI (Google Cloud) labels: keys start with a lowercase letter; keys and values hold at most 63
# lowercase letters, digits, '_' and '-'
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """`["team=risk"]` -> {"team": "risk"}; an item without '=' or without a key is an error."""
    labels = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LooplineError(f"--label '{item}' is not KEY=VALUE")
        labels[key] = value
    return labels


@dataclass(frozen=True, kw_only=True)
class SubmitOptions:
    """What `loopline submit`/`schedule` send besides the parameters. Checked on construction."""

    target: str = "kfp"  # kfp or vertex
    pipeline_root: str = ""  # KFP: empty for the cluster's; Vertex AI: a gs:// URI, required
    labels: dict[str, str] = field(default_factory=dict)  # Vertex AI only
    max_concurrency: int = 1  # of a schedule

    def __post_init__(self) -> None:
        """The checks of the submission options, each a one-line LooplineError."""
        rules.choice("target", self.target, TARGET_KINDS)
        if self.target == "vertex" and not self.pipeline_root.startswith("gs://"):
            raise LooplineError(f"Vertex AI needs a gs:// pipeline root (--pipeline-root), got '{self.pipeline_root}'")
        if self.pipeline_root and not rules.has_scheme(self.pipeline_root):
            raise LooplineError(f"--pipeline-root '{self.pipeline_root}' has no scheme: give a URI such as "
                                "s3://bucket/loopline, minio://bucket/loopline or gs://bucket/loopline")
        for key, value in self.labels.items():
            if not _LABEL_KEY.match(key):
                raise LooplineError(f"--label '{key}={value}': a Vertex AI label key starts with a lowercase letter "
                                    "and holds at most 63 lowercase letters, digits, '_' and '-'")
            if not _LABEL_VALUE.match(value):
                raise LooplineError(f"--label '{key}={value}': a Vertex AI label value holds at most 63 lowercase "
                                    "letters, digits, '_' and '-'")
        rules.number("max_concurrency", self.max_concurrency, LooplineError, low=1, whole=True)
