"""An email channel's settings: one mailbox read by IMAP, replies sent by SMTP.

The keys of ../shared/API.md (``address``, ``imap_*``, ``smtp_*``, ``after_import``) plus:

- ``imap_folders``: more folders to import besides ``imap_folder``;
- ``poll_interval``: seconds between polls when the server cannot tell us of new mail (no IDLE);
- ``import_since_days``: how far back the first connection to a mailbox imports (None: all of it);
- ``batch_size``: messages fetched and stored per transaction;
- ``signature``, ``from_name``: how replies are signed and who they come from;
- ``max_attachment_mb``, ``allow_remote_images``: what is kept of customers' mail;
- ``use_idle``: wait with IMAP IDLE where the server offers it (default on);
- ``timeout``: seconds for any network operation.

Left out, ``imap_port``/``smtp_port`` follow the security setting (993/143, 465/587/25),
``imap_username`` the address, ``smtp_username`` the IMAP one and ``smtp_password`` the IMAP one;
they are saved as "not given", so they keep following when the address or security changes.
``after_import`` may not move mail into a folder the channel imports from.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    FieldSerializationInfo,
    PrivateAttr,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from connectors.base import ChannelConfig

Security = Literal["tls", "starttls", "none"]
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}
_SMTP_PORTS = {"tls": 465, "starttls": 587, "none": 25}


class EmailConfig(ChannelConfig):
    address: str = Field(max_length=320)
    imap_host: str = Field(min_length=1, max_length=255)
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_security: Security = "tls"
    imap_username: str | None = Field(default=None, max_length=320)
    imap_password: SecretStr
    imap_folder: str = Field(default="INBOX", min_length=1, max_length=200)
    imap_folders: list[str] = Field(default_factory=list, max_length=20)
    smtp_host: str = Field(min_length=1, max_length=255)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_security: Security = "starttls"
    smtp_username: str | None = Field(default=None, max_length=320)
    smtp_password: SecretStr | None = None
    after_import: str = "seen"
    poll_interval: float = Field(default=60.0, ge=5, le=3600)
    import_since_days: int | None = Field(default=30, ge=0)
    batch_size: int = Field(default=100, ge=1, le=1000)
    signature: str | None = Field(default=None, max_length=5000)
    from_name: str | None = Field(default=None, max_length=200)
    max_attachment_mb: float = Field(default=25.0, gt=0, le=200)
    allow_remote_images: bool = False
    use_idle: bool = True
    timeout: float = Field(default=30.0, gt=0, le=300)

    _derived: set[str] = PrivateAttr(default_factory=set)  # filled in from other keys, not given

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if not _ADDRESS.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("after_import")
    @classmethod
    def _after_import(cls, value: str) -> str:
        if value in ("seen", "delete") or (value.startswith("move:") and value[5:].strip()):
            return value
        raise ValueError("must be 'seen', 'delete' or 'move:<folder>'")

    @model_validator(mode="after")
    def _defaults(self) -> EmailConfig:
        derived = {
            "imap_port": _IMAP_PORTS[self.imap_security],
            "smtp_port": _SMTP_PORTS[self.smtp_security],
            "imap_username": self.address,
        }
        for name, value in derived.items():
            if not getattr(self, name):
                setattr(self, name, value)
                self._derived.add(name)
        if not self.smtp_username:
            self.smtp_username = self.imap_username
            self._derived.add("smtp_username")
        target = self.after_import[5:].strip() if self.after_import.startswith("move:") else None
        if target in self.folders:
            raise ValueError(f"after_import moves mail into {target!r}, a folder it imports from")
        return self

    @field_serializer("imap_port", "smtp_port", "imap_username", "smtp_username")
    def _keep_derived_open(self, value: object, info: FieldSerializationInfo) -> object:
        # Saved as "not given", so that they follow their source when it changes (e.g. a new
        # address or security setting), instead of being frozen at today's value.
        return None if info.field_name in self._derived else value

    @property
    def folders(self) -> list[str]:
        return list(dict.fromkeys([self.imap_folder, *self.imap_folders]))

    @property
    def smtp_secret(self) -> str | None:
        """The SMTP password: its own, else the IMAP one (most providers share them)."""
        chosen = self.smtp_password or self.imap_password
        return chosen.get_secret_value() if chosen else None
