"""Who is calling: the CRM lookup at setup, in one place.

The session asks `profile_for()` once per call and then uses the profile for
the greeting (worded in phrases.py), the caller context the answer engine sees,
the call log's CRM columns and the transfer target (the client's own manager
when the CRM names one, else the operator number from the bot settings).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import crm
from ..bot_settings import BotSettings
from ..rag.types import CallerContext

log = logging.getLogger(__name__)


def caller_context(info: crm.CallerInfo | None) -> CallerContext | None:
    """The facts the answer engine may use about the caller, or None (notes are never
    included: they are not for speaking)."""
    if info is None:
        return None
    name = info.address or info.name
    if not (name or info.company or info.manager_name):
        return None
    return CallerContext(name=name, company=info.company, manager=info.manager_name)


@dataclass
class CallerProfile:
    info: crm.CallerInfo | None

    @property
    def context(self) -> CallerContext | None:
        # The LLM addresses the caller as the greeting did («Иван Петрович»), not by the full CRM name.
        return caller_context(self.info)

    def call_columns(self) -> dict:
        """The Call columns this profile fills."""
        if self.info is None:
            return {}
        return dict(crm_data=self.info.to_dict(), caller_name=self.info.name, caller_company=self.info.company)

    def transfer_target(self, settings: BotSettings) -> str | None:
        if self.info is not None and self.info.manager_phone:
            return self.info.manager_phone
        return settings.operator_phone or None


def profile_for(number: str | None) -> CallerProfile:
    """Needs an app context. Never raises: an unknown or unreachable CRM means no profile."""
    info = None
    try:
        info = crm.lookup_caller(number)
    except Exception:  # the CRM has its own time budget; a bug there must not drop the call
        log.exception("CRM lookup failed for %s", number)
    return CallerProfile(info=info)
