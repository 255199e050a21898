"""The inbox benchmark's shop: contacts, conversations and messages in six languages, loaded with
COPY into the tables the migrations made (their secondary indexes dropped for the load and made
again after it from their own definitions, as a bulk load does), then ANALYZE.

Everything is drawn from a seeded random generator, so a run at one scale loads the same shop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

FIRST = {
    "es": ["María", "José", "Lucía", "Javier", "Carmen", "Álvaro", "Núria", "Sofía", "Andrés", "Inés"],
    "ca": ["Jordi", "Montserrat", "Pere", "Mireia", "Oriol", "Laia", "Arnau", "Roser", "Martí", "Aina"],
    "fr": ["Élodie", "François", "Hélène", "Jérôme", "Céline", "Benoît", "Maëlle", "Loïc", "Zoé", "Gaël"],
    "pl": ["Łukasz", "Małgorzata", "Paweł", "Zofia", "Michał", "Agnieszka", "Wojciech", "Józef", "Ewa", "Bartłomiej"],
    "de": ["Jürgen", "Lena", "Björn", "Jörg", "Anneliese", "Matthias", "Sören", "Grete", "Uwe", "Käthe"],
    "en": ["Oliver", "Emily", "James", "Charlotte", "Harry", "Amelia", "George", "Isla", "Jack", "Ava"],
}
LAST = {
    "es": ["García", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Muñoz", "Díaz", "Núñez"],
    "ca": ["Puig", "Vila", "Soler", "Ferrer", "Roig", "Casals", "Serra", "Font", "Bosch", "Prat"],
    "fr": ["Lefèvre", "Dubois", "Moreau", "Laurent", "Girard", "Rousseau", "Lefèbvre", "Mercier", "Chevalier",
           "Boucher"],
    "pl": ["Kowalski", "Wiśniewska", "Wójcik", "Kamiński", "Lewandowska", "Zieliński", "Szymańska", "Woźniak",
           "Dąbrowski", "Kozłowska"],
    "de": ["Müller", "Schäfer", "Schröder", "Weiß", "Hoffmann", "Köhler", "Krüger", "Groß", "Böhm", "Wagner"],
    "en": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright"],
}
PRODUCTS = {
    "es": ["auriculares", "cafetera", "zapatillas", "mochila", "chaqueta", "lámpara", "reloj", "altavoz"],
    "ca": ["auriculars", "cafetera", "sabatilles", "motxilla", "jaqueta", "làmpada", "rellotge", "altaveu"],
    "fr": ["écouteurs", "cafetière", "baskets", "sac à dos", "veste", "lampe", "montre", "enceinte"],
    "pl": ["słuchawki", "ekspres", "buty", "plecak", "kurtka", "lampa", "zegarek", "głośnik"],
    "de": ["Kopfhörer", "Kaffeemaschine", "Turnschuhe", "Rucksack", "Jacke", "Lampe", "Armbanduhr", "Lautsprecher"],
    "en": ["headphones", "coffee maker", "trainers", "backpack", "jacket", "lamp", "watch", "speaker"],
}
ASK = {
    "es": ["Hola, ¿dónde está mi pedido {order}? Compré unos {product} hace una semana.",
           "Los {product} llegaron rotos, quiero devolverlos. Pedido {order}.",
           "¿Podéis cambiar la talla de la {product}? Gracias, {first}",
           "No he recibido la factura del pedido {order}, ¿me la enviáis por correo?"],
    "ca": ["Hola! On és la meva comanda {order}? Vaig comprar uns {product} dilluns.",
           "Els {product} han arribat trencats, els vull tornar. Comanda {order}.",
           "Em podeu canviar la talla de la {product}? Gràcies, {first}",
           "No he rebut la factura de la comanda {order}."],
    "fr": ["Bonjour, où en est ma commande {order} ? J'ai acheté des {product} la semaine dernière.",
           "Les {product} sont arrivés cassés, je souhaite un remboursement. Commande {order}.",
           "Pouvez-vous échanger la taille de ma {product} ? Merci, {first}",
           "Je n'ai pas reçu la facture de la commande {order}, pouvez-vous me l'envoyer ?"],
    "pl": ["Dzień dobry, gdzie jest moje zamówienie {order}? Kupiłem {product} tydzień temu.",
           "{product} przyszły uszkodzone, chcę zwrotu. Zamówienie {order}.",
           "Czy mogę wymienić rozmiar: {product}? Dziękuję, {first}",
           "Nie dostałam faktury do zamówienia {order}, proszę o przesłanie."],
    "de": ["Hallo, wo ist meine Bestellung {order}? Ich habe letzte Woche {product} gekauft.",
           "Die {product} sind kaputt angekommen, ich möchte sie zurückgeben. Bestellung {order}.",
           "Könnt ihr die Größe der {product} tauschen? Danke, {first}",
           "Ich habe keine Rechnung für Bestellung {order} bekommen."],
    "en": ["Hi, where is my order {order}? I bought {product} last week.",
           "The {product} arrived broken, I would like a refund. Order {order}.",
           "Can I swap the size of my {product}? Thanks, {first}",
           "I never got the invoice for order {order}, could you email it?"],
}
ANSWER = {
    "es": "Hola {first}, tu pedido {order} salió ayer del almacén. Número de seguimiento {tracking}.",
    "ca": "Hola {first}, la comanda {order} va sortir ahir del magatzem. Seguiment {tracking}.",
    "fr": "Bonjour {first}, votre commande {order} est partie hier. Numéro de suivi {tracking}.",
    "pl": "Dzień dobry {first}, zamówienie {order} zostało wysłane wczoraj. Numer przesyłki {tracking}.",
    "de": "Hallo {first}, deine Bestellung {order} hat gestern das Lager verlassen. Sendungsnummer {tracking}.",
    "en": "Hi {first}, your order {order} left our warehouse yesterday. Tracking number {tracking}.",
}
NOTE = "Customer {first} {last} asked twice about {order}; check with the carrier ({tracking})."
LANGUAGES = list(ASK)
DOMAINS = ["example.com", "correo.example", "poczta.example", "mail.example", "posteo.example"]

TEAMS = 5
AGENTS = 50
ADMINS = 5  # of the agents, with no team
STATUSES = [("resolved", 78), ("open", 14), ("pending", 5), ("snoozed", 3)]


@dataclass
class Shop:
    """What was loaded, as the measurements need it."""

    channel_id: int
    secret: str
    agents: list[tuple[int, str, bool, list[int]]]  # id, token, admin, team ids
    contacts: int = 0
    conversations: int = 0
    messages: int = 0
    seconds: float = 0.0
    open_threads: list[tuple[int, str]] = field(default_factory=list)  # conversation id, customer's external id
    words: list[str] = field(default_factory=list)  # things agents search for
    people: list[str] = field(default_factory=list)


def create(engine: Any, url: str, *, messages: int, conversations: int, secret: str, seed: int = 11) -> Shop:
    """Agents (in teams, online, with room to take more), the API channel, then the shop's history
    (COPY). ``engine``: omnidesk's, on the migrated database at ``url``."""
    from store.agents import create_agent, create_team
    from store.channels import create_channel

    rnd = random.Random(seed)
    team_ids = [create_team(engine, f"Team {n + 1}") for n in range(TEAMS)]
    agents = []
    for n in range(AGENTS):
        admin = n < ADMINS
        teams = [] if admin else [team_ids[n % TEAMS]] + ([team_ids[(n + 1) % TEAMS]] if n % 7 == 0 else [])
        agent_id, token = create_agent(engine, name=f"{rnd.choice(FIRST['en'])} {n}", email=f"agent{n}@shop.example",
                                       role="admin" if admin else "agent", capacity=10**6, team_ids=teams,
                                       presence="offline" if admin else "online")
        agents.append((agent_id, token, admin, teams))
    channel_id = create_channel(engine, "api", "Shop", {"secret": secret, "callback_url": "http://127.0.0.1:9/x"})
    shop = Shop(channel_id, secret, agents)
    began = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = _drop_indexes(conn)
        _load(conn, shop, rnd, team_ids, messages, conversations)
        conn.execute("SET maintenance_work_mem = '256MB'")
        for statement in indexes:
            conn.execute(statement)
        for table in ("contacts", "contact_identities", "conversations", "messages"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.execute("""UPDATE agents a SET active_count = (SELECT count(*) FROM conversations c
                        WHERE c.assignee_id = a.id AND c.status <> 'resolved')""")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")  # the load's pages written now, not during the first measurement
    shop.seconds = time.monotonic() - began
    return shop


def _drop_indexes(conn: Any) -> list[str]:
    """Drop the loaded tables' secondary indexes (not the keys and unique constraints); return the
    statements that make them again."""
    rows = conn.execute("""SELECT i.indexname, i.indexdef FROM pg_indexes i
        JOIN pg_class c ON c.relname = i.indexname JOIN pg_index x ON x.indexrelid = c.oid
        WHERE i.tablename IN ('contacts', 'contact_identities', 'conversations', 'messages')
          AND NOT x.indisunique AND NOT x.indisprimary""").fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def _load(conn: Any, shop: Shop, rnd: random.Random, team_ids: list[int], total_messages: int,
          total_conversations: int) -> None:
    now = datetime.utcnow().replace(microsecond=0)
    workers = [(a, teams) for a, _, admin, teams in shop.agents if not admin]
    by_team = {t: [a for a, teams in workers if t in teams] for t in team_ids}
    people_count = max(1, int(total_conversations * 0.8))
    people = []
    with conn.cursor().copy("COPY contacts (id, name, email, phone, created_at) FROM STDIN") as copy:
        for n in range(1, people_count + 1):
            lang = rnd.choice(LANGUAGES)
            first, last = rnd.choice(FIRST[lang]), rnd.choice(LAST[lang])
            email = f"{_ascii(first)}.{_ascii(last)}{n}@{rnd.choice(DOMAINS)}" if rnd.random() < 0.85 else None
            phone = None
            if rnd.random() < 0.5:
                phone = f"+{rnd.choice([34, 33, 48, 49, 44])} {rnd.randint(600, 699)} {n % 1000:03d} {n // 1000:03d}"
            copy.write_row((n, f"{first} {last}", email, phone, now - timedelta(days=400)))
            people.append((lang, first, last))
            if n % 997 == 0:
                shop.people += [last, email or first, (phone or "").replace(" ", "")[:9] or last]
    shop.contacts = people_count
    identities = "COPY contact_identities (id, contact_id, channel_id, external_id, created_at) FROM STDIN"
    with conn.cursor().copy(identities) as copy:
        for n in range(1, people_count + 1):
            copy.write_row((n, n, shop.channel_id, f"cust-{n}", now - timedelta(days=400)))
    # Conversations, oldest first; each customer's last one may be open (the API channel threads
    # by sender: thread key "from:<id>", the open key while it is not resolved).
    span = timedelta(days=365).total_seconds()
    owners = [1 + (n % people_count) for n in range(total_conversations)]
    last_of = {owner: n for n, owner in enumerate(owners)}
    per = [1] * total_conversations
    for _ in range(max(0, total_messages - total_conversations)):
        per[rnd.randrange(total_conversations)] += 1
    plan = []
    message_id = 0
    with conn.cursor().copy(
            "COPY conversations (id, channel_id, contact_id, status, assignee_id, last_assignee_id, team_id, priority, "
            "language, subject, thread_key, open_key, waiting_since, needs_routing, route_attempts, first_response_at, "
            "resolved_at, snoozed_until, last_message_at, created_at, updated_at) FROM STDIN") as copy:
        for n, owner in enumerate(owners):
            conv_id = n + 1
            started = now - timedelta(seconds=span * (1 - n / total_conversations) + 3600)
            lang = people[owner - 1][0]
            status = _weighted(rnd, STATUSES) if last_of[owner] == n else "resolved"
            team = rnd.choice(team_ids) if rnd.random() < 0.6 else None
            pool = by_team[team] if team else [a for a, _ in workers]
            assignee = rnd.choice(pool) if status != "resolved" and rnd.random() < 0.8 else None
            last_assignee = assignee or rnd.choice(pool)
            count = per[n]
            last_at = started + timedelta(minutes=7 * count)
            waiting = last_at if status == "open" and count % 2 == 1 else None
            key = f"from:cust-{owner}"
            copy.write_row((conv_id, shop.channel_id, owner, status, assignee, last_assignee, team,
                            rnd.choice([0, 0, 0, 1, 5]), lang, None, key, None if status == "resolved" else key,
                            waiting, False, 0, started + timedelta(minutes=7) if count > 1 else None,
                            last_at if status == "resolved" else None,
                            now + timedelta(days=1) if status == "snoozed" else None, last_at, started, last_at))
            plan.append((conv_id, owner, lang, started, count, last_assignee))
            if status == "open":
                shop.open_threads.append((conv_id, f"cust-{owner}"))
    shop.conversations = total_conversations
    with conn.cursor().copy(
            "COPY messages (id, conversation_id, channel_id, direction, author_agent_id, sender_contact_id, text, "
            "private, automatic, external_id, status, attempts, sent_at, created_at) FROM STDIN") as copy:
        for conv_id, owner, lang, started, count, agent in plan:
            _, first, last = people[owner - 1]
            order = f"{rnd.randint(10000, 99999)}"
            for k in range(count):
                message_id += 1
                at = started + timedelta(minutes=7 * k)
                values = {"first": first, "last": last, "order": order, "product": rnd.choice(PRODUCTS[lang]),
                          "tracking": f"PX{rnd.randint(10**8, 10**9)}"}
                if k % 2 == 0:
                    copy.write_row((message_id, conv_id, shop.channel_id, "in", None, owner,
                                    rnd.choice(ASK[lang]).format(**values), False, False, f"h-{message_id}",
                                    "received", 0, None, at))
                else:
                    note = rnd.random() < 0.06
                    copy.write_row((message_id, conv_id, shop.channel_id, "out", agent, None,
                                    (NOTE if note else ANSWER[lang]).format(**values), note, False,
                                    f"h-{message_id}", "sent" if note else "delivered", 0, at, at))
            if conv_id % 997 == 0:
                shop.words += [order, values["product"].split()[0], values["tracking"]]
    shop.messages = message_id


def _weighted(rnd: random.Random, choices: list[tuple[str, int]]) -> str:
    return rnd.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


_PLAIN = str.maketrans("áàâäãåçéèêëíìîïñóòôöõúùûüýÿłśźżćńąęøßÁÉÍÓÚŁŚŹŻĆŃĄĘÖÜÄ",
                       "aaaaaaceeeeiiiinooooouuuuyylszzcnaeosAEIOULSZZCNAEOUA")


def _ascii(name: str) -> str:
    return name.translate(_PLAIN).lower()


def queries(shop: Shop, rnd: random.Random, count: int) -> Iterator[str]:
    """What agents type into search: order and tracking numbers, products (whole and half typed),
    names, emails, phone digits, two words, a common word."""
    common = ["pedido", "commande", "zamówienie", "Bestellung", "order", "factura", "refund"]
    for _ in range(count):
        kind = rnd.randrange(7)
        if kind == 0:
            yield rnd.choice(shop.words)
        elif kind == 1:
            word = rnd.choice(shop.words)
            yield word[: max(3, len(word) // 2)]  # still typing
        elif kind in (2, 3):
            yield rnd.choice(shop.people)
        elif kind == 4:
            who = rnd.choice(shop.people)
            yield who[: max(3, len(who) - 3)]
        elif kind == 5:
            yield f"{rnd.choice(common)} {rnd.choice(shop.words)}"
        else:
            yield rnd.choice(common)
