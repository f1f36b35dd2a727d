"""The TC string decoder moved to ``consentinel.streams.events.tcf`` (the policy's R22 needs
it, and the policy layer may not import connectors); re-exported here unchanged."""

from consentinel.streams.events import tcf as _moved
from consentinel.streams.events.tcf import *  # noqa: F403

__all__ = list(_moved.__all__)
