"""What a CRM lookup returns about a caller."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import names


@dataclass
class CallerInfo:
    name: str | None = None  # full name as the CRM has it
    first_name: str | None = None
    patronymic: str | None = None
    last_name: str | None = None
    company: str | None = None
    manager_name: str | None = None
    manager_phone: str | None = None  # transfer target for this client, when set
    notes: str | None = None  # never spoken aloud
    source: str | None = None  # bitrix24 | amocrm | webhook
    raw: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def address(self) -> str | None:
        """How the bot addresses the caller («Иван Петрович»), None when no name is fit to speak."""
        return names.address(self.first_name, self.patronymic)

    def clip(self) -> "CallerInfo":
        """Fit the call log's columns (names and company 255, transfer target 128): a CRM may hold more."""
        for key in ("name", "first_name", "patronymic", "last_name", "company", "manager_name"):
            value = getattr(self, key)
            if value and len(value) > 255:
                setattr(self, key, value[:254].rstrip() + "…")
        if self.manager_phone and len(self.manager_phone) > 128:
            self.manager_phone = None  # a cut number would ring someone else
        if self.notes and len(self.notes) > 2000:
            self.notes = self.notes[:1999] + "…"
        return self

    def resolve_names(self) -> "CallerInfo":
        """Keep in first_name/patronymic only words that are a real given name and patronymic."""
        first, patronymic, last = names.resolve(self.first_name, self.patronymic, self.last_name, self.name)
        self.first_name, self.patronymic = first, patronymic
        self.last_name = last or self.last_name
        if not self.name:
            self.name = " ".join(p for p in (self.last_name, self.first_name, self.patronymic) if p) or None
        return self
