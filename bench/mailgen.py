"""A mailbox of realistic customer mail for the email benchmark, with what each message must become.

Mixed as a shop's inbox is: Catalan, Spanish, Portuguese, Polish, English, German, French and
Russian customers; utf-8, iso-8859-1/2/15, windows-1250/1252 and koi8-r; quoted-printable, base64
and 8-bit bodies; plain, HTML-only and multipart/alternative; 15% with an attachment whose name is
encoded (RFC 2231 or RFC 2047); 20% replies to earlier messages by In-Reply-To/References, quoting
them as mail clients do. Deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

# (language, charsets that can carry it, customer names, subjects, sentences)
LANGUAGES = [
    ("ca", ["utf-8", "iso-8859-1", "windows-1252"], ["Martí Puigdemont", "Núria Solà", "Jordi Ferrer"],
     ["On és la meva comanda?", "Devolució d'un article", "Factura incorrecta"],
     ["Encara no he rebut el paquet que vaig demanar fa deu dies.", "Voldria tornar les sabates, són petites.",
      "La factura no té el meu NIF, la podeu refer?", "Gràcies per l'atenció, tot correcte."]),
    ("es", ["utf-8", "iso-8859-1", "iso-8859-15", "windows-1252"], ["María Núñez", "José Ibáñez", "Begoña Peña"],
     ["¿Dónde está mi pedido?", "Devolución del artículo", "Cambio de talla"],
     ["El paquete llegó dañado, ¿qué hago?", "Necesito cambiar la talla de la camiseta, por favor.",
      "¿Podéis enviarme la factura con mi dirección correcta?", "Muchas gracias, añadiré una reseña."]),
    ("pt", ["utf-8", "iso-8859-1", "windows-1252"], ["João Gonçalves", "Conceição Araújo", "Sebastião Simões"],
     ["Encomenda não chegou", "Devolução", "Pagamento em duplicado"],
     ["A minha encomenda ainda não chegou, podem verificar?", "Fui cobrado duas vezes, peço o reembolso.",
      "Gostaria de devolver o casaco, não serviu.", "Obrigado pela ajuda rápida, está resolvido."]),
    ("pl", ["utf-8", "iso-8859-2", "windows-1250"],
     ["Łukasz Wąsik", "Zofia Żółkiewska", "Grzegorz Brzęczyszczykiewicz"],
     ["Gdzie jest moja paczka?", "Zwrot towaru", "Źle naliczona płatność"],
     ["Zamówiłem buty tydzień temu i nadal nie dotarły.", "Chciałbym zwrócić źle dobrany rozmiar kurtki.",
      "Płatność została pobrana dwukrotnie, proszę o zwrot.", "Dziękuję za szybką odpowiedź, wszystko się zgadza."]),
    ("en", ["utf-8", "us-ascii"], ["Olivia Smith", "Liam O'Brien", "Amelia Jones"],
     ["Where is my order?", "Return request", "Wrong item received"],
     ["My order has not arrived yet, could you check the tracking?", "I received the wrong colour of the mug.",
      "Please cancel my subscription at the end of the month.", "Thanks, that solved it."]),
    ("de", ["utf-8", "iso-8859-1", "iso-8859-15", "windows-1252"], ["Jürgen Müller", "Götz Weiß", "Bärbel Schön"],
     ["Wo ist meine Bestellung?", "Rücksendung", "Falsche Größe"],
     ["Meine Bestellung ist noch nicht angekommen, bitte prüfen Sie das.", "Ich möchte die Schuhe zurückschicken.",
      "Die Größe passt leider nicht, können Sie umtauschen?", "Vielen Dank für die schnelle Hilfe."]),
    ("fr", ["utf-8", "iso-8859-1", "iso-8859-15", "windows-1252"], ["Zoé Lefèvre", "François Côté", "Hélène Dubœuf"],
     ["Où est ma commande ?", "Retour d'un article", "Facture erronée"],
     ["Je n'ai toujours pas reçu mon colis, pouvez-vous vérifier ?", "L'article reçu est abîmé, que faire ?",
      "Pourriez-vous corriger l'adresse sur la facture ?", "Merci beaucoup, c'est parfait."]),
    ("ru", ["utf-8", "koi8-r"], ["Дмитрий Иванов", "Анна Смирнова", "Сергей Кузнецов"],
     ["Где мой заказ?", "Возврат товара", "Ошибка в счёте"],
     ["Мой заказ до сих пор не доставлен, проверьте, пожалуйста.", "Хочу вернуть куртку, размер не подошёл.",
      "В счёте указана неверная сумма.", "Спасибо, всё решено."]),
]

QUOTE_HEADERS = {
    "en": "On {date}, {name} <{addr}> wrote:",
    "es": "El {date}, {name} (<{addr}>) escribió:",
    "ca": "El {date}, {name} (<{addr}>) va escriure:",
    "pt": "Em {date}, {name} <{addr}> escreveu:",
    "pl": "{date} {name} <{addr}> napisał(a):",
    "de": "Am {date} schrieb {name} <{addr}>:",
    "fr": "Le {date}, {name} <{addr}> a écrit :",
    "ru": "{date}, {name} <{addr}> написал:",
}

ATTACHMENT_NAMES = ["factura_març.pdf", "zdjęcie_paczki.jpg", "devolução.pdf", "Rücksendeschein.pdf",
                    "reçu.png", "счёт.pdf", "receipt.pdf", "pedido_Nº123.pdf"]


@dataclasses.dataclass(frozen=True, slots=True)
class Expected:
    """What one generated message must be once imported."""

    message_id: str
    sender: str
    subject: str
    new_text: str  # the customer's own words: must be in the message's text
    quoted_text: str | None  # the earlier message it quotes: must not be in the new text
    parent: str | None  # Message-ID of the message it answers: same conversation
    attachment: str | None  # the decoded file name
    language: int  # index into LANGUAGES
    name: str
    raw: bytes = dataclasses.field(repr=False, default=b"")


def _address(n: int) -> str:
    return f"customer{n}@mail{n % 7}.example"


def generate(count: int, *, seed: int = 7, shop: str = "support@shop.example") -> list[Expected]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    sent: list[Expected] = []
    for n in range(count):
        reply_to = sent[rng.randrange(len(sent))] if sent and rng.random() < 0.20 else None
        lang = LANGUAGES[reply_to.language] if reply_to is not None else rng.choice(LANGUAGES)
        code, charsets, names, subjects, sentences = lang
        charset = rng.choice(charsets)
        if reply_to is not None:
            name, addr = reply_to.name, reply_to.sender
            subject = "Re: " + reply_to.subject.removeprefix("Re: ")
        else:
            name = rng.choice(names)
            addr = _address(n)
            subject = rng.choice(subjects)
        sentence = rng.choice(sentences)
        new_text = f"{sentence} (#{n})"
        when = start + timedelta(minutes=n)
        message_id = f"<bench.{seed}.{n}.{rng.getrandbits(40):010x}@mail{n % 7}.example>"

        quoted = reply_to.new_text if reply_to is not None else None
        header = QUOTE_HEADERS[code].format(date=format_datetime(when - timedelta(minutes=1))[:16], name=name,
                                            addr=addr)
        body = new_text + "\n\n" + (f"{header}\n> {quoted}\n" if quoted else "")
        html = f"<div dir=\"ltr\"><p>{new_text}</p>" + (
            f"<div class=\"gmail_quote\">{header}<blockquote>{quoted}</blockquote></div>" if quoted else "") + "</div>"
        fits = [cs for cs in charsets if _encodes(body + html + subject + name, cs)]
        charset = charset if charset in fits else (fits[0] if fits else "utf-8")

        msg = EmailMessage(policy=SMTP)
        if charset not in ("utf-8", "us-ascii") and rng.random() < 0.5:
            # Headers in the body's charset, as older clients write them (RFC 2047).
            msg["From"] = formataddr((name, addr), charset=charset)
            msg["Subject"] = Header(subject, charset).encode()
        else:
            msg["From"] = formataddr((name, addr))
            msg["Subject"] = subject
        msg["To"] = shop
        msg["Date"] = format_datetime(when)
        msg["Message-ID"] = message_id
        if reply_to is not None:
            msg["In-Reply-To"] = reply_to.message_id
            msg["References"] = reply_to.message_id
        cte = rng.choice(["quoted-printable", "base64", "8bit"])
        if cte == "8bit" and charset == "utf-8" and rng.random() < 0.5:
            cte = "quoted-printable"
        form = rng.random()
        if form < 0.10:  # HTML only
            msg.set_content(html, subtype="html", charset=charset, cte=cte)
        else:
            msg.set_content(body, charset=charset, cte=cte)
            if form < 0.45:
                msg.add_alternative(html, subtype="html", charset=charset, cte=cte)
        attachment = None
        if rng.random() < 0.15:
            attachment = rng.choice(ATTACHMENT_NAMES)
            data = rng.randbytes(rng.randrange(2_000, 60_000))
            maintype, subtype = ("image", "jpeg") if attachment.endswith((".jpg",)) else (
                ("image", "png") if attachment.endswith(".png") else ("application", "pdf"))
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=attachment)
            if rng.random() < 0.4:  # Outlook's way: an RFC 2047 word inside the quoted name
                part = msg.get_payload()[-1]
                del part["Content-Disposition"]
                part["Content-Disposition"] = f'attachment; filename="{Header(attachment, "utf-8").encode()}"'
        raw = msg.as_bytes()
        sent.append(Expected(message_id, addr, subject, new_text, quoted, reply_to.message_id if reply_to else None,
                             attachment, LANGUAGES.index(lang), name, raw))
    return sent


def _encodes(text: str, charset: str) -> bool:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return False
    return True
