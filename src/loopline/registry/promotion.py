"""Moving the `champion` alias as a compare-and-set: only from the version the gate compared with.

A version is gated against the champion of its day (`loopline.gate_champion` on the version). Two
runs gated against the same champion — a scheduled training and a drift-triggered one, or two
runs sharing a registry — must not both promote. `champion_move` takes the model's champion
lease (see `claims`), checks that the champion is still the version the gate compared with, and
only then lets the rollout go ahead; `commit` moves the alias, checking once more. When the
champion moved in between, or another run holds the lease, the step fails closed with a message
and the serving champion stays.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

from loopline import registry
from loopline.core.errors import DeploymentError
from loopline.registry import claims

log = logging.getLogger(__name__)

PURPOSE = "champion"
NONE = "none"  # the gate's record when there was no champion


class ChampionMoved(DeploymentError):
    """The champion is not the version the gate compared with, or another run is moving it."""


@dataclass
class ChampionMove:
    tracking_uri: str
    model_name: str
    version: str
    expected: str  # the champion the gate compared with ("none": there was none)
    lease: claims.Lease | None
    client: object = field(repr=False, default=None)
    committed: bool = False

    def commit(self) -> None:
        """Point `champion` at the new version, if it is still `expected`."""
        current = _current(self.tracking_uri, self.model_name)
        if current not in (self.expected, self.version):
            raise ChampionMoved(_moved(self.model_name, self.version, self.expected, current))
        registry.set_alias(self.tracking_uri, self.model_name, registry.CHAMPION, self.version)
        self.committed = True


def _current(tracking_uri: str, model_name: str) -> str:
    return registry.alias_version(tracking_uri, model_name, registry.CHAMPION) or NONE


def _shown(version: str) -> str:
    return "no champion" if version == NONE else f"v{version}"


def _moved(model_name: str, version: str, expected: str, current: str) -> str:
    return (f"the champion of {model_name} moved since the gate judged v{version}: the gate compared it with "
            f"{_shown(expected)}, the champion is now {_shown(current)}; not promoting v{version} (it stays registered "
            f"as a candidate), the champion stays {_shown(current)}; train again to gate against it")


def gate_champion(tracking_uri: str, model_name: str, version: str) -> str | None:
    """The champion version the gate compared `version` with ("none"), or None when not recorded."""
    from mlflow.exceptions import MlflowException

    try:
        tags = registry.version_tags(tracking_uri, model_name, version)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise DeploymentError(f"{model_name} has no version {version} in {registry.safe_uri(tracking_uri)}: "
                                  "nothing to deploy") from None
        raise
    return tags.get(registry.TAG_GATE_CHAMPION)


@contextmanager
def champion_move(tracking_uri: str, model_name: str, version: str, *, holder: str = "", ttl_seconds: float = 1800.0):
    """Hold the champion lease of `model_name` for promoting `version`; release it on the way out."""
    version = str(version)
    expected = gate_champion(tracking_uri, model_name, version)
    current = _current(tracking_uri, model_name)
    if current == version:  # promoted already (a retried step): nothing to compare
        yield ChampionMove(tracking_uri, model_name, version, current, None)
        return
    if expected is None:  # not gated by Loopline: compare with the champion of now
        expected = current
    if current != expected:
        raise ChampionMoved(_moved(model_name, version, expected, current))
    client = registry.connect(tracking_uri)
    name = claims.lease_name(model_name, PURPOSE)
    taken = registry.with_retries(
        lambda: claims.acquire(client, name, holder=holder or claims.default_holder(f"promoting v{version}"),
                               ttl_seconds=ttl_seconds),
        what=f"taking the champion lease of {model_name}", tracking_uri=tracking_uri,
    )
    if isinstance(taken, claims.Held):
        raise ChampionMoved(
            f"another run is moving the champion of {model_name} ({taken.describe()}); not promoting v{version}, "
            f"the champion stays {_shown(current)}"
        )
    try:
        current = _current(tracking_uri, model_name)  # it may have moved between the look and the lease
        if current != expected:
            raise ChampionMoved(_moved(model_name, version, expected, current))
        log.info("holding the champion lease of %s to promote v%s over %s", model_name, version, _shown(expected))
        yield ChampionMove(tracking_uri, model_name, version, expected, taken, client)
    finally:
        registry.with_retries(lambda: claims.release(client, taken), what=f"releasing the champion lease of {model_name}",
                              tracking_uri=tracking_uri)
