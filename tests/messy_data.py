"""A seeded, messy "bring your own data" set for a `task_preset=custom` bake (free-text
targets), with the answer key the custom end-to-end test checks curate against.

`write_messy_data(raw_dir)` writes three files, one per input format, and returns a
`Manifest`: the `file:line` of every row by slice, and the reason code curate must give each
row that is meant to be rejected. The same seed gives byte-identical files.

- `helpdesk_chats.jsonl` (chat): English tickets under varied system prompts, multi-turn
  chats, German, Spanish, Japanese and Arabic tickets, a few rows in a script the data set
  does not allow (Cyrillic), exact and near copies, a row too long for train.max_length, and
  malformed lines (truncated JSON, plain text, a JSON array, Latin-1 bytes, a wrong role, a
  chat ending on the user);
- `product_copy.jsonl` (prompt/completion): one templated prompt with its slots filled, most
  of whose targets are placeholders ("N/A", "(no description)", "unknown", "-"), and a row
  without a completion;
- `message_summaries.jsonl` (alpaca): one instruction for every row (the input is the slot),
  varied `system` fields, pasted threads too long for train.max_length, and a row without an
  output.

Every row has a `topic` (raw-row metadata, kept by curate under `meta`), imbalanced: most
rows are `account`, few are `legal`. The targets are free text (replies, blurbs, summaries).

    python tests/messy_data.py OUT_DIR   # writes OUT_DIR/*.jsonl and prints the slice counts
"""

import json
import random
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

CHATS = "helpdesk_chats.jsonl"
PRODUCTS = "product_copy.jsonl"
SUMMARIES = "message_summaries.jsonl"
PLACEHOLDERS = ("N/A", "(no description)", "unknown", "-")
MAX_ROW_BYTES = 500  # see `fits`

SYSTEM_PROMPTS = (
    "You are the Larkspur support assistant. Answer in one or two friendly sentences.",
    "Reply to the customer as a Larkspur agent: be brief, concrete and polite.",
    "You help Larkspur customers. Give the next step, not a lecture.",
    "Support desk, tier 1. Keep answers short and never ask for a password.",
)
TOPIC_WEIGHTS = {"account": 0.66, "billing": 0.2, "security": 0.1, "legal": 0.04}

NAMES = (
    "Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Keiko", "Liam", "Maya", "Noah", "Olivia", "Pedro", "Quinn", "Rosa", "Sam", "Tariq",
    "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe", "Priya", "Marco", "Lena", "Tom",
)  # fmt: skip
SURNAMES = ("Smith", "Garcia", "Nguyen", "Muller", "Rossi", "Okafor", "Tanaka", "Silva", "Haddad")
GREETINGS = ("Hi,", "Hello,", "Hey there,", "Good morning,", "Dear Larkspur team,", "Hi all,")
TRIED = (
    "I already restarted the app twice.",
    "Clearing the browser cache did not help.",
    "My colleague has the same problem on her laptop.",
    "It worked fine until the update yesterday.",
    "I checked the help center but found nothing.",
    "This is blocking our weekly planning meeting.",
    "We are on the Team plan if that matters.",
)
DEVICES = ("Windows laptop", "MacBook", "Android phone", "iPhone", "Chromebook", "iPad")

# topic -> (issue sentence with {device}/{ref}, reply template with {name}/{n}/{ref})
ISSUES: dict[str, list[tuple[str, str]]] = {
    "account": [
        (
            "I cannot log in on my {device}: the reset link from ticket {ref} never arrives.",
            "Sorry {name}, I re-sent the reset link for ticket {ref}; it is valid for {n} "
            "minutes, so please check the spam folder too.",
        ),
        (
            "Since I switched on two-factor login my {device} keeps asking for a code that "
            "is always rejected (case {ref}).",
            "Thanks {name}: the code is rejected because the phone clock is off; turn on "
            "automatic time and try again, case {ref} stays open for {n} days.",
        ),
        (
            "How do I change the e-mail address on my account? Reference {ref}.",
            "Hi {name}, open Profile, then Email, enter the new address and confirm it with "
            "the link we send; it expires after {n} hours.",
        ),
        (
            "Our workspace owner left the company and nobody can add seats (request {ref}).",
            "Hello {name}, another admin can take ownership under Settings, Members; if there "
            "is none, reply to {ref} with a note from a manager and we switch it in {n} days.",
        ),
        (
            "Invites to new teammates expire before they open them, see {ref}.",
            "Good catch {name}: invites last {n} days by default, and an admin can resend "
            "them from Members without creating a new one.",
        ),
        (
            "The {device} app logs me out every few minutes since the last update ({ref}).",
            "Sorry about that {name}; version {n}.2 fixes the early logout, so update the app "
            "and sign in once more.",
        ),
    ],
    "billing": [
        (
            "We were charged twice for this month, invoice {ref}.",
            "Apologies {name}: I refunded the second charge on {ref}, it shows on your card in "
            "{n} working days.",
        ),
        (
            "Please add our VAT number to invoice {ref}, we need it for accounting.",
            "Done {name}: the VAT number is now on {ref} and on every invoice after it; the "
            "corrected PDF is in Billing within {n} minutes.",
        ),
        (
            "Our card was declined when upgrading to the Team plan, reference {ref}.",
            "Hi {name}, the bank blocked a foreign charge; approve it in your banking app and "
            "retry the upgrade, the quote on {ref} holds for {n} days.",
        ),
    ],
    "security": [
        (
            "I got a login alert from a country I have never visited, alert {ref}.",
            "Please change your password now, {name}, and sign out all sessions; we locked "
            "the session from alert {ref} and review it within {n} hours.",
        ),
        (
            "A colleague pasted our API key into a public chat ({ref}).",
            "Revoke that key under Settings, API right away, {name}, and create a new one; "
            "we saw no calls with it in the last {n} hours.",
        ),
    ],
    "legal": [
        (
            "Under GDPR I request a copy of all data you hold about me, reference {ref}.",
            "Thank you {name}: your export for {ref} is being prepared and the download link "
            "arrives within {n} days.",
        ),
    ],
}

MULTI_TURN_FOLLOW_UPS = (
    ("Thanks, that worked. Can I also do this from my {device}?", "Yes {name}, the {device} "
     "app has the same option under Settings; it syncs within {n} seconds."),
    ("Will my teammates notice anything?", "No, {name}: nothing changes for them, and the "
     "audit log keeps a note of it for {n} days."),
    ("And if it happens again?", "Then reply to this thread, {name}, and quote the time it "
     "happened; we keep the logs for {n} days."),
    ("Is there a way to get notified next time?", "Turn on alerts under Notifications, "
     "{name}; you then get an e-mail within {n} minutes of the event."),
)  # fmt: skip

# (language, topic, message, reply): written by hand, one ticket each
FOREIGN = [
    ("german", "account", "Hallo, ich habe mein Passwort vergessen und bekomme keine E-Mail "
     "zum Zurücksetzen.", "Ich habe Ihnen einen neuen Link geschickt; bitte prüfen Sie auch "
     "den Spam-Ordner."),
    ("german", "billing", "Meine Rechnung für März enthält zwei Lizenzen, wir nutzen aber nur "
     "eine.", "Danke für den Hinweis: Ich habe die zweite Lizenz entfernt und schicke Ihnen "
     "eine korrigierte Rechnung."),
    ("german", "security", "Wie kann ich die Zwei-Faktor-Anmeldung für mein ganzes Team "
     "verpflichtend machen?", "Öffnen Sie Einstellungen, Sicherheit, und aktivieren Sie "
     "„2FA für alle erzwingen“; danach braucht jede Anmeldung einen Code."),
    ("german", "account", "Unser Administrator hat die Firma verlassen. Wie übertragen wir "
     "die Inhaberrechte?", "Ein anderes Mitglied mit Admin-Rechten kann unter Mitglieder die "
     "Inhaberschaft übernehmen."),
    ("german", "legal", "Ich möchte alle meine Daten gemäß DSGVO exportieren.", "Unter Konto, "
     "Datenschutz können Sie einen Export anfordern; der Link kommt innerhalb von 48 Stunden."),
    ("german", "account", "Die App meldet immer „Sitzung abgelaufen“, obwohl ich mich gerade "
     "angemeldet habe.", "Bitte stellen Sie Datum und Uhrzeit Ihres Geräts auf automatisch; "
     "eine falsche Uhrzeit beendet die Sitzung sofort."),
    ("spanish", "account", "Hola, no puedo iniciar sesión desde que cambié de teléfono y perdí "
     "la app de autenticación.", "Puedo desactivar la verificación en dos pasos tras "
     "confirmar su identidad; le envié un formulario a su correo."),
    ("spanish", "billing", "Me cobraron dos veces la suscripción de este mes.", "Lo siento: "
     "ya solicité el reembolso del cargo duplicado, lo verá en su tarjeta en 5 a 7 días."),
    ("spanish", "account", "¿Cómo cambio el correo electrónico de mi cuenta?", "Vaya a "
     "Perfil, Correo, escriba la nueva dirección y confírmela con el enlace que le enviamos."),
    ("spanish", "security", "Recibí un correo que parece de ustedes pidiendo mi contraseña. "
     "¿Es real?", "No es nuestro: nunca pedimos contraseñas por correo. Reenvíelo a "
     "seguridad y no abra los enlaces."),
    ("spanish", "billing", "Necesito una factura con el NIF de mi empresa.", "Añada el NIF en "
     "Facturación, Datos fiscales, y las próximas facturas lo incluirán."),
    ("spanish", "legal", "Quiero eliminar mi cuenta y todos mis datos.", "Puede hacerlo en "
     "Cuenta, Eliminar cuenta; borramos los datos en 30 días y le avisamos por correo."),
    ("japanese", "account", "パスワードを忘れてしまい、ログインできません。再設定のメールも"
     "届きません。", "再設定用のリンクを再送しました。迷惑メールフォルダもご確認ください。"),
    ("japanese", "billing", "今月の請求額がいつもより高いのですが、理由を教えてください。",
     "今月はユーザーが二名追加されたため、日割りの料金が加算されています。"),
    ("japanese", "security", "二段階認証用のスマートフォンを紛失しました。",
     "本人確認の後で二段階認証を一時的に解除しますので、登録済みのアドレスからご連絡ください。"),
    ("japanese", "account", "チームのメンバーを招待するにはどうすればいいですか。",
     "設定のメンバー画面で「招待」を押して、相手のメールアドレスを入力してください。"),
    ("japanese", "security", "見覚えのない国からのログイン通知が届きました。",
     "すぐにパスワードを変更して、すべての端末からログアウトしてください。"),
    ("japanese", "legal", "解約した場合、データはいつ削除されますか。",
     "解約から三十日後にすべてのデータを削除します。それまでは書き出しができます。"),
    ("arabic", "account", "نسيت كلمة المرور ولا تصلني رسالة إعادة التعيين.",
     "أرسلت لك رابطا جديدا لإعادة التعيين، يرجى التحقق من مجلد الرسائل غير المرغوب فيها."),
    ("arabic", "billing", "تم خصم قيمة الاشتراك مرتين هذا الشهر.",
     "نعتذر عن ذلك، طلبنا استرداد المبلغ المكرر وسيظهر في حسابك خلال أسبوع."),
    ("arabic", "account", "كيف أغير البريد الإلكتروني المرتبط بحسابي؟",
     "افتح الإعدادات ثم الملف الشخصي، واكتب البريد الجديد وأكده عبر الرابط الذي سنرسله."),
    ("arabic", "security", "وصلني إشعار بتسجيل دخول من جهاز لا أعرفه.",
     "غير كلمة المرور فورا وسجل الخروج من جميع الأجهزة، وسنراجع النشاط من جهتنا."),
    ("arabic", "billing", "أحتاج فاتورة باسم شركتي ورقمها الضريبي.",
     "أضف الرقم الضريبي في صفحة الفوترة وسيظهر في الفواتير القادمة."),
    ("arabic", "account", "كيف أدعو زملائي إلى مساحة العمل؟",
     "من صفحة الأعضاء اضغط على دعوة وأدخل عناوين البريد الإلكتروني لزملائك."),
]  # fmt: skip
# Two rows (fewer than quality.MIN_SCRIPT_ROWS): `scripts: auto` quarantines them as
# charset_outlier, while the six rows each of Arabic and Japanese (kana and kanji) are data
OFF_SCRIPT = [
    ("account", "Не могу войти в аккаунт после смены пароля.",
     "Я отправил вам новую ссылку для входа, проверьте папку со спамом."),
    ("billing", "Пришлите, пожалуйста, счёт за прошлый месяц.",
     "Счёт за прошлый месяц уже в разделе оплаты, его можно скачать в PDF."),
]  # fmt: skip

PRODUCT_NAMES = (
    "Aster desk lamp", "Birch notebook", "Cobalt mug", "Dune backpack", "Ember candle",
    "Fern plant pot", "Gale umbrella", "Harbor tote", "Iris vase", "Juniper scarf",
    "Kelp towel", "Lumen clock", "Moss rug", "Nectar jar", "Onyx pen", "Pine shelf",
    "Quartz coaster", "Reed basket", "Sage apron", "Tide bottle", "Umber wallet",
    "Vale blanket", "Willow chair", "Yarrow cushion",
)  # fmt: skip
MATERIALS = ("oak", "recycled cotton", "stoneware", "brushed steel", "linen", "cork", "glass")
COLOURS = ("sand", "forest green", "slate", "terracotta", "ivory", "midnight blue", "ochre")
USES = ("a home office", "gifting", "a small kitchen", "travel", "a reading corner", "picnics")
BLURB_OPENERS = (
    "Meet the {name}: {material} in {colour}, made for {use}.",
    "The {name} brings {colour} {material} to {use}.",
    "Built from {material}, the {name} in {colour} is at home in {use}.",
)
BLURB_CLOSERS = (
    "It weighs {n}00 grams and ships flat.",
    "Each one is finished by hand, so no two are quite alike.",
    "Wipe it clean with a damp cloth; it will last for years.",
    "Comes with a {n}-year warranty.",
)

SUMMARY_INSTRUCTION = "Summarise the customer's message in one sentence for the ticket queue."
SUMMARY_SYSTEMS = (
    "You triage Larkspur tickets.",
    "Write queue summaries: who, what, and what they want.",
    "",
)
FILLER_WORDS = (
    "meeting", "calendar", "export", "folder", "sync", "invoice", "workspace", "update",
    "browser", "tablet", "deadline", "project", "comment", "attachment", "notification",
    "report", "client", "quarter", "migration", "spreadsheet", "permission", "archive",
    "colleague", "timeline", "backup", "template", "dashboard", "reminder", "upload", "draft",
)  # fmt: skip


@dataclass
class Manifest:
    """Where each slice of the data set lies (`data/raw/<file>:<line>`, as curate names
    rows) and the reason code each row meant to be rejected must get."""

    slices: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    expected_reasons: dict[str, str] = field(default_factory=dict)
    duplicate_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (kind, source)
    placeholder_targets: dict[str, str] = field(default_factory=dict)  # source -> placeholder
    lines: int = 0

    def counts(self) -> dict[str, int]:
        return {name: len(sources) for name, sources in self.slices.items()}


def fits(row: dict) -> bool:
    """Whether a row surely fits train.max_length (512) with the tiny test model, whose
    tokenizer is nearly byte-level: at most one token per UTF-8 byte, plus the chat template's
    few tokens per turn."""
    if "messages" in row:
        turns = [m["content"] for m in row["messages"]]
    elif "instruction" in row:
        turns = [row.get("system", ""), f"{row['instruction']}\n\n{row['input']}", row["output"]]
    else:
        turns = [row["prompt"], row["completion"]]
    return sum(len(text.encode("utf-8")) + 16 for text in turns if text) <= MAX_ROW_BYTES


class RawFile:
    """Lines of one data/raw file, numbered as curate numbers them (1-based, no blanks)."""

    def __init__(self, name: str, manifest: Manifest) -> None:
        self.name, self.manifest, self.lines = name, manifest, []

    def add(self, row: dict | bytes | str, slice_name: str, reason: str | None = None) -> str:
        if isinstance(row, dict):
            assert reason or fits(row), f"a valid {slice_name} row would be too_long: {row}"
            row = json.dumps(row, ensure_ascii=False)
        data = row if isinstance(row, bytes) else row.encode("utf-8")
        self.lines.append(data)
        source = f"data/raw/{self.name}:{len(self.lines)}"
        self.manifest.slices[slice_name].append(source)
        if reason:
            self.manifest.expected_reasons[source] = reason
        return source

    def write(self, raw_dir: Path) -> None:
        (raw_dir / self.name).write_bytes(b"\n".join(self.lines) + b"\n")
        self.manifest.lines += len(self.lines)


class Tickets:
    """English tickets from a few templates per topic. Each carries its own reference,
    customer and number, so none is a near duplicate of another; tickets of one template do
    form small near-duplicate groups, as templated data does."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.serial = rng, 0

    def topic(self) -> str:
        return self.rng.choices(list(TOPIC_WEIGHTS), weights=list(TOPIC_WEIGHTS.values()))[0]

    def slots(self) -> dict[str, str]:
        self.serial += 1
        return {
            # a customer per ticket: rows 30 apart must not share a name
            "name": f"{NAMES[self.serial % len(NAMES)]} "
            f"{SURNAMES[self.serial // len(NAMES) % len(SURNAMES)]}",
            "ref": f"LK-{self.rng.randrange(10000, 99999)}",
            "n": str(self.rng.randrange(2, 60)),
            "device": self.rng.choice(DEVICES),
        }

    def ticket(self, topic: str, tried: bool = True) -> tuple[str, str, dict[str, str]]:
        """(message, reply, slots) of a fresh ticket on `topic`."""
        issue, reply = self.rng.choice(ISSUES[topic])
        slots = self.slots()
        parts = [self.rng.choice(GREETINGS), issue.format(**slots)]
        parts += [self.rng.choice(TRIED)] if tried else []
        message = " ".join([*parts, f"Thanks, {slots['name']}"])
        return message, reply.format(**slots), slots

    def long_thread(self, words: int) -> str:
        """A pasted e-mail thread: far more tokens than train.max_length, not repetitive."""
        parts = []
        for _ in range(words // 12):
            picked = self.rng.sample(FILLER_WORDS, 8)
            parts.append(
                f"On {self.rng.randrange(1, 28)} May {self.rng.choice(NAMES)} wrote about the "
                + " ".join(picked)
                + f" (#{self.rng.randrange(1000, 9999)})."
            )
        return " ".join(parts)


def chat_row(system: str | None, turns: list[str], topic: str) -> dict:
    roles = ["user", "assistant"] * len(turns)
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": role, "content": text} for role, text in zip(roles, turns, strict=False)]
    return {"messages": messages, "topic": topic}


def write_chats(raw: RawFile, tickets: Tickets, rng: random.Random, english: int) -> None:
    manifest = raw.manifest
    originals = []
    for k in range(english):
        topic = tickets.topic()
        message, reply, _ = tickets.ticket(topic)
        system = SYSTEM_PROMPTS[k % len(SYSTEM_PROMPTS)] if k % 5 else None
        row = chat_row(system, [message, reply], topic)
        originals.append((raw.add(row, "english"), row))
    for k in range(14):
        while True:  # draw again until the chat fits train.max_length
            topic = tickets.topic()
            message, reply, slots = tickets.ticket(topic, tried=False)
            follow_up, answer = MULTI_TURN_FOLLOW_UPS[k % len(MULTI_TURN_FOLLOW_UPS)]
            turns = [message, reply, follow_up.format(**slots), answer.format(**slots)]
            system = SYSTEM_PROMPTS[k % len(SYSTEM_PROMPTS)]
            if k % 3 == 0:  # a clarifying turn pair first, and no system prompt
                clarify = [f"Which device is this on, {slots['name']}?", f"My {slots['device']}."]
                turns, system = [message, *clarify, *turns[1:]], None
            row = chat_row(system, turns, topic)
            if fits(row):
                break
        raw.add(row, "multi_turn")
    for k, (language, topic, message, reply) in enumerate(FOREIGN):
        system = SYSTEM_PROMPTS[k % len(SYSTEM_PROMPTS)] if k % 2 else None
        raw.add(chat_row(system, [message, reply], topic), language)
    for topic, message, reply in OFF_SCRIPT:
        raw.add(chat_row(None, [message, reply], topic), "off_script", "charset_outlier")

    # copies: three verbatim, one differing only in case and spacing (exact after
    # normalisation), two with the sign-off reworded (near)
    for k, (source, row) in enumerate(rng.sample(originals[: english // 2], 6)):
        copy = json.loads(json.dumps(row))
        user = copy["messages"][-2]
        kind = "exact" if k < 4 else "near"
        if k == 3:
            user["content"] = "  " + user["content"].upper()
        elif kind == "near":
            head, _, name = user["content"].rpartition("Thanks, ")
            user["content"] = f"{head}Many thanks again, {name}"
        manifest.duplicate_of[raw.add(copy, f"{kind}_duplicate")] = (kind, source)

    message, reply, _ = tickets.ticket("account")
    raw.add(
        chat_row(None, [message + " Full log: " + tickets.long_thread(300), reply], "account"),
        "too_long",
        "too_long",
    )
    good = json.dumps(chat_row(None, list(tickets.ticket("billing")[:2]), "billing"))
    raw.add(good[: len(good) // 2], "malformed", "not_json")
    raw.add("Customer: my invoice is wrong. Agent: fixed, sorry!", "malformed", "not_json")
    raw.add(
        json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]),
        "malformed",
        "not_json_object",
    )
    latin1 = chat_row(None, ["Grüße, mein Konto ist gesperrt.", "Ich entsperre es."], "account")
    raw.add(json.dumps(latin1, ensure_ascii=False).encode("latin-1"), "malformed", "not_utf8")
    message, reply, _ = tickets.ticket("account")
    wrong_role = chat_row(None, [message, reply], "account")
    wrong_role["messages"][0]["role"] = "customer"
    raw.add(wrong_role, "malformed", "unknown_role")
    message, reply, _ = tickets.ticket("billing")
    unanswered = chat_row(None, [message, reply, "Hello? Anyone there?"], "billing")
    raw.add(unanswered, "malformed", "assistant_not_last")


def write_products(
    raw: RawFile, rng: random.Random, per_placeholder: int, blurbs: int, keep_copies: int
) -> None:
    """One templated prompt, its slots filled; most targets are placeholders, of which curate
    keeps the first `keep_copies` of each and quarantines the rest."""
    targets = [p for p in PLACEHOLDERS for _ in range(per_placeholder)] + [None] * blurbs
    rng.shuffle(targets)
    for k, target in enumerate(targets):
        slots = {
            "name": PRODUCT_NAMES[k % len(PRODUCT_NAMES)],
            "material": rng.choice(MATERIALS),
            "colour": rng.choice(COLOURS),
            "use": rng.choice(USES),
            "n": str(rng.randrange(2, 9)),
        }
        sku = f"SKU-{rng.randrange(100000, 999999)}"
        prompt = (
            f"Write the catalogue blurb for the {slots['name']} ({sku}). Material: "
            f"{slots['material']}. Colour: {slots['colour']}. Best for: {slots['use']}."
        )
        if target is None:
            completion = (
                rng.choice(BLURB_OPENERS).format(**slots)
                + " "
                + rng.choice(BLURB_CLOSERS).format(**slots)
            )
            raw.add({"prompt": prompt, "completion": completion, "topic": "catalog"}, "blurb")
        else:
            row = {"prompt": prompt, "completion": target, "topic": "catalog"}
            raw.manifest.placeholder_targets[raw.add(row, "placeholder")] = target
    no_completion = {"prompt": "Write the catalogue blurb for the Zest grater.", "topic": "catalog"}
    raw.add(no_completion, "malformed", "empty_prompt_or_completion")

    seen: dict[str, int] = defaultdict(int)
    for source, target in raw.manifest.placeholder_targets.items():
        seen[target] += 1
        if seen[target] > keep_copies:
            raw.manifest.expected_reasons[source] = "placeholder_target"


def write_summaries(raw: RawFile, tickets: Tickets, rng: random.Random, rows: int) -> None:
    """Alpaca rows sharing one instruction: the customer's message is the slot."""
    for k in range(rows):
        topic = tickets.topic()
        message, _, slots = tickets.ticket(topic)
        summary = (
            f"{slots['name']} ({slots['ref']}) reports a {topic} problem on a {slots['device']} "
            f"and wants it fixed within {slots['n']} hours."
        )
        row = {"instruction": SUMMARY_INSTRUCTION, "input": message, "output": summary}
        if system := SUMMARY_SYSTEMS[k % len(SUMMARY_SYSTEMS)]:
            row["system"] = system
        raw.add(row | {"topic": topic}, "templated_summary")
    for _ in range(3):
        slots = tickets.slots()
        row = {
            "instruction": SUMMARY_INSTRUCTION,
            "input": f"Forwarded thread from {slots['name']}: " + tickets.long_thread(300),
            "output": f"{slots['name']} forwards a long thread about a workspace migration.",
            "topic": "account",
        }
        raw.add(row, "too_long", "too_long")
    message, _, _ = tickets.ticket("billing")
    row = {"instruction": SUMMARY_INSTRUCTION, "input": message, "output": "", "topic": "billing"}
    raw.add(row, "malformed", "empty_instruction_or_output")


def write_messy_data(raw_dir: Path, seed: int = 7, keep_copies: int = 3) -> Manifest:
    """Write the three files into `raw_dir` and return where each slice went; `keep_copies`
    is the project's curate.keep_target_copies."""
    rng = random.Random(seed)
    tickets = Tickets(rng)
    manifest = Manifest()
    raw_dir.mkdir(parents=True, exist_ok=True)
    files = [RawFile(name, manifest) for name in (CHATS, PRODUCTS, SUMMARIES)]
    write_chats(files[0], tickets, rng, english=48)
    write_products(files[1], rng, per_placeholder=9, blurbs=20, keep_copies=keep_copies)
    write_summaries(files[2], tickets, rng, rows=28)
    for raw in files:
        raw.write(raw_dir)
    return manifest


if __name__ == "__main__":
    found = write_messy_data(Path(sys.argv[1]))
    print(json.dumps({"lines": found.lines, **found.counts()}, indent=2))
