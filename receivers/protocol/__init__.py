"""The wire protocol, defined once for the controller, the agent and the simulator.

Imports only pydantic and cryptography. `topics` builds and parses topic names, `messages` holds the
models, `signing` signs and verifies commands. docs/PROTOCOL.md describes the same in prose.
"""

from .messages import (
    COMMAND_KINDS,
    INLINE_AUDIO_MAX,
    PLAY_STEPS,
    PRIORITY_RANK,
    PROTOCOL_VERSION,
    Ack,
    AnyCommand,
    AnyCommandT,
    Availability,
    Command,
    ControllerAvailability,
    MediaRef,
    Ping,
    Plan,
    PlanEntry,
    Play,
    PlayEvent,
    ProtocolError,
    ReceiverState,
    RestartAgent,
    RotateKey,
    SelfTest,
    SetVolume,
    Stop,
    SyncSchedule,
    Telemetry,
    parse_command,
    parse_receiver_message,
    utcnow,
)
from .signing import Rejected, Signer, TrustedKey, Verifier, generate_private_key_pem, public_key_b64
from .target import Target, TargetField
from .topics import TopicInfo, Topics, check_level

__all__ = [
    "INLINE_AUDIO_MAX", "PLAY_STEPS", "PRIORITY_RANK", "PROTOCOL_VERSION", "AnyCommandT", "MediaRef", "Play",
    "PlayEvent",
    "RestartAgent", "RotateKey", "TrustedKey", "SelfTest", "Stop", "SyncSchedule", "Plan", "PlanEntry",
    "COMMAND_KINDS", "Ack", "AnyCommand", "Availability", "Command", "ControllerAvailability", "Ping",
    "ProtocolError", "ReceiverState", "SetVolume", "Telemetry", "parse_command", "parse_receiver_message",
    "utcnow", "Rejected", "Signer", "Verifier", "generate_private_key_pem", "public_key_b64", "Topics",
    "TopicInfo", "check_level", "Target", "TargetField",
]
