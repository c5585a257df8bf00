"""The vocabulary shared by all services: topics, the CloudEvents envelope, v1 message models."""

from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope, wrap

__all__ = ["Envelope", "topics", "v1", "wrap"]
