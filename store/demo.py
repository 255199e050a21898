"""A demo shop for ``omnidesk up --demo``: three agents online and an API channel whose replies go
to a demo endpoint of omnidesk itself, so the whole loop works with no outside service.

The demo agents' passwords are derived from the installation's secret key (HMAC-SHA256 of the
email): the same on every start of one installation, so a browser can sign in again after a
restart, yet no two installations share them and none is written in this code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable

from sqlalchemy import Engine, select, update

from store import agents, passwords
from store.channels import create_channel
from store.settings import get_settings, secret_key
from store.sql import agents as agent_table
from store.sql import channels

DEMO_AGENTS = [
    ("Ana Puig", "ana@demo.shop", ["ca", "es", "en"]),
    ("Jan Kowalski", "jan@demo.shop", ["pl", "en"]),
    ("Rita Sousa", "rita@demo.shop", ["pt", "es", "en"]),
]


def add_demo(engine: Engine, say: Callable[[str], None]) -> None:
    with engine.connect() as conn:
        started = conn.execute(select(channels.c.id).where(channels.c.name == "Demo shop")).first()
    if started:  # an installation from before the demo chat gets it now (its line comes with the logins)
        add_demo_chat(engine, lambda _line: None)
        return
    for name, email, langs in DEMO_AGENTS:
        password = demo_password(email)
        _, token = agents.create_agent(engine, name=name, email=email, languages=langs, presence="online",
                                       password=password)
        say(f"demo agent {name} <{email}> token: {token}")
        say(login_line(email, password))
    secret = secrets.token_urlsafe(24)
    callback = get_settings().public_url.rstrip("/") + "/demo/callback"
    channel_id = create_channel(engine, "api", "Demo shop", {"callback_url": callback, "secret": secret})
    say(f"demo API channel {channel_id}: POST /webhooks/{channel_id} signed with secret {secret}")
    add_demo_chat(engine, say)


def add_demo_chat(engine: Engine, say: Callable[[str], None]) -> None:
    """The demo shop's web chat channel (once), served on ``/demo/shop``."""
    public = get_settings().public_url.rstrip("/")
    with engine.connect() as conn:
        found = conn.execute(select(channels.c.id).where(channels.c.name == "Demo shop chat")).scalar()
    if found is None:
        origins = sorted({"/".join(public.split("/")[:3]).lower(), "http://localhost:8000", "http://127.0.0.1:8000"})
        found = create_channel(engine, "webchat", "Demo shop chat", {
            "allowed_origins": origins, "greeting": "Hi! Ask us anything about your order."})
    say(demo_shop_line())


def demo_shop_line() -> str:
    public = get_settings().public_url.rstrip("/")
    return f"demo shop with the chat widget: {public}/demo/shop (open it in two tabs, and the inbox)"


def demo_password(email: str) -> str:
    """The demo agent's password: stable for one installation (its secret key), secret elsewhere."""
    digest = hmac.new(secret_key().encode(), b"omnidesk demo password\0" + email.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def admin_login(engine: Engine) -> str | None:
    """The inbox login of the first active admin (the one ``omnidesk up`` made), with the demo
    password scheme: in demo mode the admin pages can be tried at once too."""
    with engine.connect() as conn:
        email = conn.execute(select(agent_table.c.email).where(agent_table.c.role == "admin",
                             agent_table.c.active.is_(True)).order_by(agent_table.c.id).limit(1)).scalar()
    password = restore_password(engine, email) if email is not None else None
    return login_line(email, password) if email is not None and password is not None else None


def login_line(email: str, password: str) -> str:
    return f"demo inbox login {email} password: {password}"


def restore_password(engine: Engine, email: str) -> str | None:
    """The demo agent's password, set again if it was changed or removed (an invite, a reset);
    None when the agent is gone or disabled. Sessions are kept: a restart signs nobody out."""
    password = demo_password(email)
    with engine.connect() as conn:
        row = conn.execute(select(agent_table).where(agent_table.c.email == email)).first()
    if row is None or not row.active:
        return None
    if row.password_hash is None or not passwords.verify(row.password_hash, password):
        with engine.begin() as conn:
            conn.execute(update(agent_table).where(agent_table.c.id == row.id)
                         .values(password_hash=passwords.hash_password(password)))
    return password
