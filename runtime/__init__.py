"""Runtime: compiled artifacts and the Session API (devices: cpu now; cuda, sim, fpga later)."""
from .artifact import Artifact, ArtifactError, SCHEMA_VERSION, load_artifact, write_artifact  # noqa: F401
from .session import DEVICES, DeviceUnavailable, Session  # noqa: F401
