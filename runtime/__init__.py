"""Runtime: compiled artifacts, the Session API, and the devices it runs on (runtime/devices.py)."""
from .artifact import Artifact, ArtifactError, SCHEMA_VERSION, load_artifact, write_artifact  # noqa: F401
from .devices import DEVICES, DeviceUnavailable, pick_device  # noqa: F401
from .session import KVCache, Sampling, Session  # noqa: F401
