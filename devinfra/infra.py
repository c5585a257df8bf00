"""`DevInfra`: the cache directory of the development servers, and the entry point that fetches or
builds Kafka, FerretDB and the local language model into it and starts them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from devinfra.cache import REPO_ROOT
from devinfra.ferretdb import FerretDBMixin
from devinfra.kafka import KafkaMixin
from devinfra.model import ModelMixin


@dataclass
class DevInfra(KafkaMixin, FerretDBMixin, ModelMixin):
    """Fetches/builds the development servers into `cache_dir` and starts them."""

    cache_dir: Path
    deploy_dir: Path = REPO_ROOT / "deploy" / "dev"
    keep_go_caches: bool = False
    """Keep Go's module and build caches (about 1 GB) after building FerretDB; by default they
    are deleted once the binary exists, since only a change of the wrapper module needs them."""

    _java_version_text: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir).resolve()
