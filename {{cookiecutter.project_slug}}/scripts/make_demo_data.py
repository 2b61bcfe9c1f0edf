"""Generate the seeded demo data set: customer-support ticket triage as chat JSONL, plus
preference pairs for the optional DPO stage.

Usage::

    python scripts/make_demo_data.py [--out data/raw/support_tickets.jsonl] [--seed 13] [--n 300]
        [--pairs 60] [--pairs-out data/raw/support_preferences.jsonl]

Run without arguments, it regenerates both shipped files. With another ``--out`` only the
chat file is written, unless ``--pairs-out`` is given too.

Each clean row is ``{"messages": [system, user, assistant]}``. The user turn is a
support ticket; the assistant turn is a compact JSON object with keys, in this order,
``category``, ``priority``, ``needs_human`` and ``reply``.

Labelling rules (deterministic, so a small model can learn them from the text):

* ``category`` comes from the subject matter of the ticket body:
  billing (invoices, charges, refunds, payment cards), technical (errors, crashes,
  bugs, sync and login failures), account (password, email change, 2FA, username,
  account deletion), shipping (delivery, tracking, packages, address changes),
  product (features, compatibility, sizes, how-to questions). Roughly balanced.
* ``priority`` comes from urgency cues: "urgent", "ASAP", "today", "production is
  down", "all users", "charged twice" mean ``high``; "no rush", "just curious",
  "when you get a chance", "not urgent" mean ``low``; no cue means ``medium``.
* ``needs_human`` is true when the ticket asks for a refund or chargeback, files a
  complaint / threatens legal action / asks for escalation, asks to delete or close
  the account, or is a high-priority technical ticket (an outage); otherwise false.
* ``reply`` is one short sentence (8-20 words) chosen from several templates per
  category, with wording that depends on the priority and on ``needs_human``.

Deliberate defects are mixed in at seeded random positions so the curation stage
has something to remove. At ``--n 420`` the counts are: 20 exact duplicate lines of
clean rows, 6 malformed lines (truncated JSON, plain text, a JSON array), 5 rows
with a wrong role name, 5 rows with an empty or whitespace assistant turn, 6 rows
whose assistant JSON is followed by prose, 4 rows without an assistant turn and 3
rows whose assistant JSON misses a key or has an extra one. The counts scale with
``--n``. Everything else (371 rows at the default size) is clean and unique.

Preference pairs (``--pairs``; ``--pairs 0`` writes none) are ``{"prompt": [system, user],
"chosen": [assistant], "rejected": [assistant], "rejected_kind": ...}`` on tickets that none
of the chat rows uses, drawn from their own seeded stream so the chat file does not change.
The chosen answer is the correct JSON; the rejected one is a realistic bad answer, in equal
shares: JSON that drifts into prose after its first fields (``drift``), or valid JSON with
a wrong ``priority`` (``wrong_priority``) or ``category`` (``wrong_category``).

Only the standard library is used, and the same seed gives byte-identical output.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

# The system prompt of every row, in its own file because `make chat` sends it too. Short,
# since it is repeated in every row and every prompt token costs training time on a CPU, but
# it names the allowed values: a small model then learns to choose among them.
SYSTEM = (Path(__file__).parent / "demo_system_prompt.txt").read_text(encoding="utf-8").strip()

CATEGORIES = ("billing", "technical", "account", "shipping", "product")

# Base defect counts for n=420; scaled linearly for other sizes.
DEFECTS_AT_420 = {
    "duplicate": 20,
    "malformed": 6,
    "wrong_role": 5,
    "empty_assistant": 5,
    "trailing_prose": 6,
    "no_assistant": 4,
    "bad_keys": 3,
}

FIRST_NAMES = (
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
    "Maya",
    "Noah",
    "Olivia",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Priya",
    "Marco",
    "Lena",
    "Tom",
)
LAST_NAMES = (
    "Smith",
    "Garcia",
    "Nguyen",
    "Muller",
    "Rossi",
    "Kowalski",
    "Okafor",
    "Tanaka",
    "Silva",
    "Brown",
    "Jensen",
    "Haddad",
    "Novak",
    "Dubois",
    "Kim",
    "Patel",
)
PLANS = ("Nimbus Basic", "Nimbus Pro", "Nimbus Team", "Nimbus Enterprise")
APPS = (
    "Nimbus app",
    "Nimbus desktop app",
    "Nimbus web dashboard",
    "Nimbus iPhone app",
    "Nimbus Android app",
)
GADGETS = (
    "Aero headphones",
    "Aero Mini earbuds",
    "Orbit smartwatch",
    "Lumen desk lamp",
    "Pulse speaker",
    "Drift backpack",
    "Terra water bottle",
    "Aero Max headphones",
)
DEVICES = (
    "Aero headphones",
    "Aero Mini earbuds",
    "Orbit smartwatch",
    "Pulse speaker",
    "Aero Max headphones",
)
OSES = ("Windows 11", "macOS Sonoma", "Ubuntu 22.04", "iOS 17", "Android 14", "ChromeOS")
CARRIERS = ("UPS", "DHL", "FedEx", "the postal service", "DPD")
CITIES = ("Berlin", "Austin", "Lyon", "Toronto", "Leeds", "Denver", "Porto", "Oslo")
DATES = (
    "last Monday",
    "on March 3",
    "two weeks ago",
    "on the 12th",
    "last Friday",
    "ten days ago",
    "on June 21",
    "over a week ago",
)
AMOUNTS = ("$12.99", "$29.00", "$49.00", "$99.00", "$19.50", "$240.00", "$8.99")
ERRORS = ("E-401", "E-1022", "500", "503", "SYNC_FAILED", "0x80070005", "E-77")
VERSIONS = ("4.2", "4.2.1", "5.0", "5.0.3", "3.9.8")
FEATURES = (
    "dark mode",
    "CSV export",
    "calendar sync",
    "shared folders",
    "offline mode",
    "custom reports",
    "single sign-on",
)
PEOPLE = ("daughter", "son", "partner", "dad", "mom", "team", "colleague")
DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "example.org")

GREETINGS = (
    "Hi,",
    "Hello,",
    "Hey there,",
    "Hi support team,",
    "Good morning,",
    "Dear Nimbus support,",
    "Hello team,",
    "Hi there,",
    "Hey,",
)
SIGNOFFS = ("Thanks,", "Cheers,", "Best regards,", "Regards,", "Thank you,", "Best,", "-")
FILLER = (
    "I have been a happy customer for a long time and this is the first time I write in.",
    "I searched the help center first but could not find an answer there.",
    "Sorry if this has been asked before, I am new to all of this.",
    "A friend recommended your company to me and so far I like it.",
    "I tried the chat on your website but nobody answered.",
    "I am writing on behalf of my small business.",
    "English is not my first language, so sorry for any mistakes.",
)
NEUTRAL = (
    "Thanks for your help.",
    "Could you take a look?",
    "Let me know what you find.",
    "Appreciate any help.",
    "Thanks in advance.",
    "Looking forward to your reply.",
)
HIGH_CUES = (
    "This is urgent.",
    "Please fix this ASAP.",
    "I need this sorted out today.",
    "URGENT, please help!",
    "Please treat this as urgent, it is blocking my work.",
    "I need an answer today, please.",
    "This is time sensitive, please respond asap.",
    "Please handle this urgently.",
)
LOW_CUES = (
    "No rush on this.",
    "Just curious, no rush.",
    "Whenever you get a chance.",
    "Take your time, reply when you get a chance.",
    "No hurry, just wanted to ask.",
    "Low priority, answer whenever you have time.",
    "No rush, just curious.",
)
COMPLAINTS = (
    "I want to file a formal complaint about this.",
    "Please escalate this to a manager.",
    "If this is not resolved I will be contacting my lawyer.",
    "This is my third message, I want to speak to a supervisor.",
    "I would like to make an official complaint.",
    "Please escalate this, I am considering legal action.",
)

# Ticket bodies per category. Keys: text (str.format template), topic (used in the
# reply), and optional flags: "human" (asks refund/deletion), "high" (forced high).
BODIES: dict[str, list[dict]] = {
    "billing": [
        {
            "text": "I was charged {amount} for my {plan} plan but my invoice shows a "
            "different amount. Can you explain the charge?",
            "topic": "the charge",
        },
        {
            "text": "I was charged twice for my {plan} subscription this month, {amount} "
            "both times. Can you check what happened?",
            "topic": "the double charge",
            "high": True,
        },
        {
            "text": "My card was charged twice for order #{order}. Please refund the "
            "second charge.",
            "topic": "your refund",
            "high": True,
            "human": True,
        },
        {
            "text": "I cancelled my {plan} subscription {date} but was still billed "
            "{amount}. I would like a refund please.",
            "topic": "your refund",
            "human": True,
        },
        {
            "text": "Can you send me a copy of my invoice for {plan}? I need it for my "
            "expense report.",
            "topic": "your invoice",
        },
        {
            "text": "The invoice for my last payment is missing our company name and VAT "
            "number. Could you reissue it?",
            "topic": "your invoice",
        },
        {
            "text": "I need to update the credit card on file for my {plan} billing, the "
            "old one expired.",
            "topic": "your payment method",
        },
        {
            "text": "The promo code I used at checkout was not applied and I paid the full "
            "{amount}. Please refund the difference.",
            "topic": "your refund",
            "human": True,
        },
        {
            "text": "There is a charge of {amount} on my statement from Nimbus that I do "
            "not recognise. What is this payment for?",
            "topic": "the charge",
        },
        {
            "text": "I upgraded from {plan} mid-month and the prorated charge looks wrong. "
            "Can you check my billing?",
            "topic": "your billing",
        },
        {
            "text": "My bank says you charged {amount} without permission. I have started "
            "a chargeback with my bank.",
            "topic": "the chargeback",
            "human": True,
        },
        {
            "text": "The annual renewal of {plan} charged {amount} but I expected the "
            "monthly price. Please refund me.",
            "topic": "your refund",
            "human": True,
        },
        {
            "text": "Could you switch my {plan} billing from monthly to annual payments and "
            "tell me the new price?",
            "topic": "your billing",
        },
        {
            "text": "I was billed in euros instead of dollars on my latest invoice. Which "
            "currency will future charges use?",
            "topic": "your invoice",
        },
    ],
    "technical": [
        {
            "text": "The {app} crashes every time I open the reports page. I am on version "
            "{version}.",
            "topic": "the crash",
        },
        {
            "text": "I keep getting error {error} when I try to sync my files in the {app}.",
            "topic": "the sync error",
        },
        {
            "text": "The login page of the {app} just spins forever after I enter my "
            "details, there is no error message.",
            "topic": "the login bug",
        },
        {
            "text": "Since updating the {app} to version {version} it freezes after a few "
            "minutes and I have to restart it.",
            "topic": "the freezing issue",
        },
        {
            "text": "Notifications stopped working in the {app}, I no longer get alerts "
            "for new comments.",
            "topic": "the notification bug",
        },
        {
            "text": "The firmware update for my {device} failed halfway and now the app "
            "shows error {error}.",
            "topic": "the firmware error",
        },
        {
            "text": "Uploading attachments in the {app} fails with error {error} for any "
            "file bigger than 5 MB.",
            "topic": "the upload error",
        },
        {
            "text": "The {app} shows a blank white screen after login on {os}. Reinstalling "
            "did not fix the bug.",
            "topic": "the blank screen bug",
        },
        {
            "text": "Search in the {app} returns no results even for files I can see. "
            "Looks like a bug.",
            "topic": "the search bug",
        },
        {
            "text": "The {device} keeps disconnecting from the companion app with error {error}.",
            "topic": "the connection error",
        },
        {
            "text": "Production is down: none of our users can log in to the {app}, it "
            "returns error {error}.",
            "topic": "the outage",
            "high": True,
        },
        {
            "text": "The {app} is returning error {error} for all users in our company, "
            "nobody can work.",
            "topic": "the outage",
            "high": True,
        },
        {
            "text": "Our whole team is blocked, the {app} crashes on start for all users "
            "since version {version}.",
            "topic": "the outage",
            "high": True,
        },
        {
            "text": "The export button in the {app} does nothing when I click it, and the "
            "console shows error {error}.",
            "topic": "the export bug",
        },
    ],
    "account": [
        {
            "text": "I forgot my password and the password reset email never arrives at {email}.",
            "topic": "your password reset",
        },
        {
            "text": "How do I change the email address on my account from {email} to my "
            "new work address?",
            "topic": "your email change",
        },
        {
            "text": "I lost my phone and can no longer get my 2FA codes. How can I get back "
            "into my account?",
            "topic": "your two-factor access",
        },
        {
            "text": "Please delete my account and all the personal data you hold about me.",
            "topic": "your account deletion",
            "human": True,
        },
        {
            "text": "I want to close my account permanently. My username is {user}.",
            "topic": "your account closure",
            "human": True,
        },
        {
            "text": "Can I change my username from {user} to something else? I cannot find "
            "the option in my account settings.",
            "topic": "your username change",
        },
        {
            "text": "I would like to turn on two-factor authentication for my account but "
            "the 2FA setup QR code will not load.",
            "topic": "your 2FA setup",
        },
        {
            "text": "My account got locked after too many password attempts. Can you unlock it?",
            "topic": "your locked account",
        },
        {
            "text": "I have two accounts, {user} and {email}. Can you merge them into one account?",
            "topic": "your account merge",
        },
        {
            "text": "Please remove my account entirely, I no longer use Nimbus. Delete "
            "everything linked to {email}.",
            "topic": "your account deletion",
            "human": True,
        },
        {
            "text": "Someone changed the password on my account and the recovery email is "
            "now wrong.",
            "topic": "your account access",
        },
        {
            "text": "How do I add a second admin to my {plan} account and change my own role?",
            "topic": "your account roles",
        },
        {
            "text": "I need to update the phone number used for 2FA on my account.",
            "topic": "your 2FA phone number",
        },
    ],
    "shipping": [
        {
            "text": "Where is my order #{order}? The tracking number has not updated since {date}.",
            "topic": "your delivery",
        },
        {
            "text": "My package with the {gadget} is marked as delivered but I never "
            "received it. Order #{order}.",
            "topic": "your missing package",
        },
        {
            "text": "Can I change the delivery address for order #{order}? I am moving to "
            "{city} next week.",
            "topic": "your delivery address",
        },
        {
            "text": "Do you ship to {city}, and how long does delivery usually take?",
            "topic": "delivery to your area",
        },
        {
            "text": "The box for order #{order} arrived crushed and the {gadget} package was open.",
            "topic": "your damaged delivery",
        },
        {
            "text": "{carrier} left my package at the wrong address. The order number is #{order}.",
            "topic": "your misdelivered package",
        },
        {
            "text": "I ordered the {gadget} {date} and it still has not shipped. When will "
            "it be dispatched?",
            "topic": "your shipment",
        },
        {
            "text": "The tracking link for #{order} from {carrier} says the label was "
            "created but nothing since.",
            "topic": "your tracking",
        },
        {
            "text": "Is express shipping available for the {gadget}? I need the package "
            "delivered to {city}.",
            "topic": "express delivery",
        },
        {
            "text": "Only half of my order #{order} was delivered, the {gadget} is missing "
            "from the package.",
            "topic": "the missing item",
        },
        {
            "text": "Can {carrier} deliver my order #{order} to a pickup point instead of "
            "my home address?",
            "topic": "your delivery option",
        },
        {
            "text": "My delivery for #{order} was returned to sender by {carrier}. Can you "
            "ship it again?",
            "topic": "your returned package",
        },
    ],
    "product": [
        {
            "text": "Will the {device} work with {os}? I want to make sure it is compatible "
            "before buying.",
            "topic": "compatibility",
        },
        {
            "text": "What size is the Drift backpack? Will it fit a 16 inch laptop?",
            "topic": "the backpack size",
        },
        {
            "text": "How do I pair the {device} with two devices at the same time?",
            "topic": "pairing",
        },
        {
            "text": "Does {plan} include {feature}, or is that only in the higher plans?",
            "topic": "{feature}",
        },
        {
            "text": "Is the Orbit smartwatch waterproof enough for swimming?",
            "topic": "water resistance",
        },
        {
            "text": "I am thinking of buying the {gadget} for my {person}. What colours and "
            "sizes does it come in?",
            "topic": "colours and sizes",
        },
        {
            "text": "How long does the battery of the {device} last on a full charge?",
            "topic": "battery life",
        },
        {
            "text": "Can I use {feature} in the {app}, and how do I turn it on?",
            "topic": "{feature}",
        },
        {
            "text": "Is the Terra water bottle dishwasher safe, and what capacity is the "
            "large size?",
            "topic": "the bottle features",
        },
        {
            "text": "What is the difference between the Aero headphones and the Aero Max "
            "headphones? Is the noise cancelling better?",
            "topic": "the Aero models",
        },
        {
            "text": "Does the Lumen desk lamp have a dimmer and a warm light setting?",
            "topic": "the lamp features",
        },
        {
            "text": "How many people can share one {plan} workspace, and does it support "
            "{feature}?",
            "topic": "plan features",
        },
        {
            "text": "Which Orbit smartwatch strap size should I pick for a small wrist?",
            "topic": "strap sizes",
        },
    ],
}

# Optional extra context sentences per category (never contain priority cues).
CONTEXT: dict[str, tuple[str, ...]] = {
    "billing": (
        "I am on the {plan} plan.",
        "My account email is {email}.",
        "The invoice number is INV-{invoice}.",
        "I pay with a Visa card.",
    ),
    "technical": (
        "I am using {os}.",
        "I already tried reinstalling and clearing the cache.",
        "It started after the latest update.",
        "My colleague sees the same problem.",
        "I attached a screenshot of the error.",
    ),
    "account": (
        "My username is {user}.",
        "The account is registered to {email}.",
        "I have been a customer for three years.",
        "I am on the {plan} plan.",
    ),
    "shipping": (
        "I ordered it {date}.",
        "It was shipped with {carrier}.",
        "The order number is #{order}.",
        "It was meant to be a gift.",
    ),
    "product": (
        "I already own the {device}.",
        "I could not find this on your website.",
        "I mostly use {os}.",
        "It would be a gift for my {person}.",
    ),
}

WHEN = {
    "high": ("right away", "as a priority", "immediately", "urgently"),
    "medium": ("shortly", "within one business day", "soon", "as soon as possible"),
    "low": ("within a few days", "in the coming days", "when it is ready", "soon"),
}

REPLIES_HUMAN = (
    "I have passed {topic} to a specialist who will contact you {when}.",
    "Thanks for flagging this; our team will follow up on {topic} {when}.",
    "I am escalating {topic} to a senior agent, who will reach out {when}.",
    "Sorry about this; a team member will personally review {topic} and reply {when}.",
)
REPLIES: dict[str, tuple[str, ...]] = {
    "billing": (
        "Thanks for reaching out; our billing team will review {topic} and reply {when}.",
        "I have checked your account and will send an update on {topic} {when}.",
        "Sorry for the confusion; we will look into {topic} and get back to you {when}.",
        "Our billing team will check {topic} and email you the details {when}.",
    ),
    "technical": (
        "Sorry about {topic}; our engineers will investigate and update you {when}.",
        "Thanks for the report; we are looking into {topic} and will reply {when}.",
        "Please try restarting the app; meanwhile we will investigate {topic} {when}.",
        "We have logged {topic} with our technical team and will follow up {when}.",
    ),
    "account": (
        "Thanks for writing in; we will help you with {topic} {when}.",
        "We will verify your identity and then sort out {topic} {when}.",
        "Our account team will guide you through {topic} by email {when}.",
        "I have opened a request for {topic} and will confirm the next steps {when}.",
    ),
    "shipping": (
        "Sorry for the trouble; we are checking {topic} and will reply {when}.",
        "Thanks for your patience; we will look into {topic} and update you {when}.",
        "We have contacted the carrier about {topic} and will send news {when}.",
        "Our shipping team will review {topic} and get back to you {when}.",
    ),
    "product": (
        "Great question; we will send you details about {topic} {when}.",
        "Thanks for your interest; our product team will answer about {topic} {when}.",
        "Happy to help; you will get a full answer about {topic} {when}.",
        "We will check the specifications for {topic} and reply {when}.",
    ),
}

TRAILING_PROSE = (
    " Let me know if you need anything else!",
    "\n\nI hope this helps. Have a great day!",
    " This ticket has been triaged according to the guidelines.",
    " Is there anything else I can help you with?",
    "\nNote: the priority was inferred from the ticket text.",
    " Thank you for contacting support.",
)

PROTECTED = {"refund", "chargeback", "delete", "close", "twice", "down", "users", "urgent"}


def _slots(rng: random.Random) -> dict[str, str]:
    """Draw one value for every template slot."""
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    return {
        "first": first,
        "name": f"{first} {last}",
        "order": f"A{rng.randint(10000, 99999)}",
        "invoice": str(rng.randint(100000, 999999)),
        "plan": rng.choice(PLANS),
        "app": rng.choice(APPS),
        "gadget": rng.choice(GADGETS),
        "device": rng.choice(DEVICES),
        "os": rng.choice(OSES),
        "carrier": rng.choice(CARRIERS),
        "city": rng.choice(CITIES),
        "date": rng.choice(DATES),
        "amount": rng.choice(AMOUNTS),
        "error": rng.choice(ERRORS),
        "version": rng.choice(VERSIONS),
        "feature": rng.choice(FEATURES),
        "person": rng.choice(PEOPLE),
        "email": f"{first.lower()}.{last.lower()}@{rng.choice(DOMAINS)}",
        "user": f"{first.lower()}{rng.randint(1, 99)}",
    }


def _typo(rng: random.Random, text: str) -> str:
    """Introduce one small typo (swap or drop a letter) in an unprotected word."""
    words = text.split(" ")
    idx = [
        i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha() and w.lower() not in PROTECTED
    ]
    if not idx:
        return text
    i = rng.choice(idx)
    w = words[i]
    j = rng.randint(1, len(w) - 2)
    if rng.random() < 0.5:
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    else:
        words[i] = w[:j] + w[j + 1 :]
    return " ".join(words)


def _reply(rng: random.Random, category: str, priority: str, human: bool, topic: str) -> str:
    """Pick a reply sentence for the labels."""
    pool = REPLIES_HUMAN if human else REPLIES[category]
    text = rng.choice(pool).format(topic=topic, when=rng.choice(WHEN[priority]))
    return text[0].upper() + text[1:]


def make_example(rng: random.Random, category: str) -> tuple[str, dict]:
    """Build one (ticket, target) pair for a category following the labelling rules."""
    while True:
        slots = _slots(rng)
        body = rng.choice(BODIES[category])
        text = body["text"].format(**slots)
        if rng.random() < 0.12:
            text = _typo(rng, text)
        if body.get("high"):
            priority = "high"
        else:
            priority = rng.choices(("high", "medium", "low"), weights=(3, 4, 3))[0]
        complaint = rng.random() < 0.07
        human = (
            bool(body.get("human")) or complaint or (category == "technical" and priority == "high")
        )

        parts: list[str] = [text]
        n_ctx = rng.choice((0, 0, 1, 1, 2))
        for ctx in rng.sample(CONTEXT[category], n_ctx):
            parts.insert(rng.randint(0, len(parts)), ctx.format(**slots))
        if rng.random() < 0.3:
            parts.insert(rng.randint(0, 1), rng.choice(FILLER))
        cue = ""
        if priority == "high" and (not body.get("high") or rng.random() < 0.5):
            cue = rng.choice(HIGH_CUES)
        elif priority == "low":
            cue = rng.choice(LOW_CUES)
        if cue:
            if rng.random() < 0.3:
                parts.insert(0, cue)
            else:
                parts.append(cue)
        if complaint:
            parts.append(rng.choice(COMPLAINTS))
        if rng.random() < 0.35:
            parts.append(rng.choice(NEUTRAL))

        ticket = " ".join(parts)
        if rng.random() < 0.7:
            sep = "\n" if rng.random() < 0.5 else " "
            ticket = rng.choice(GREETINGS) + sep + ticket
        if rng.random() < 0.6:
            signer = slots["first"] if rng.random() < 0.5 else slots["name"]
            ticket = ticket + "\n" + rng.choice(SIGNOFFS) + " " + signer
        if rng.random() < 0.04:
            ticket = ticket.lower()

        n_words = len(ticket.split())
        if not 15 <= n_words <= 90:
            continue
        reply = _reply(rng, category, priority, human, body["topic"].format(**slots))
        if not 8 <= len(reply.split()) <= 20:
            raise AssertionError(f"reply length out of range: {reply!r}")
        target = {
            "category": category,
            "priority": priority,
            "needs_human": human,
            "reply": reply,
        }
        return ticket, target


def _messages(ticket: str, assistant: str) -> list[dict[str, str]]:
    """Chat messages for one row."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": ticket},
        {"role": "assistant", "content": assistant},
    ]


def _line(messages: object) -> str:
    """Serialise one row as a JSONL line (without newline)."""
    return json.dumps({"messages": messages}, ensure_ascii=False)


def _target_json(target: dict) -> str:
    """Compact JSON for the assistant turn."""
    return json.dumps(target, separators=(", ", ": "))


def _defect_line(rng: random.Random, kind: str, ticket: str, target: dict) -> str:
    """Build one defective line of the given kind."""
    good = _messages(ticket, _target_json(target))
    if kind == "malformed":
        style = rng.choice(("truncated", "text", "array"))
        if style == "truncated":
            full = _line(good)
            return full[: rng.randint(len(full) // 3, len(full) - 5)]
        if style == "text":
            flat = " ".join(ticket.split())
            return f"ticket: {flat[:60]} => {target['category']}"
        return json.dumps(good, ensure_ascii=False)
    if kind == "wrong_role":
        idx = rng.choice((1, 2))
        good[idx]["role"] = rng.choice(("bot", "agent")) if idx == 2 else "customer"
        return _line(good)
    if kind == "empty_assistant":
        good[2]["content"] = rng.choice(("", " ", "\n", "   \t "))
        return _line(good)
    if kind == "trailing_prose":
        good[2]["content"] = _target_json(target) + rng.choice(TRAILING_PROSE)
        return _line(good)
    if kind == "no_assistant":
        return _line(good[:2])
    if kind == "bad_keys":
        bad = dict(target)
        if rng.random() < 0.5:
            del bad[rng.choice(("needs_human", "reply", "priority"))]
        else:
            bad["confidence"] = round(rng.uniform(0.5, 0.99), 2)
        good[2]["content"] = _target_json(bad)
        return _line(good)
    raise ValueError(f"unknown defect kind: {kind}")


def defect_counts(n: int) -> dict[str, int]:
    """Defect counts for a data set of n lines (scaled from the n=420 baseline)."""
    return {k: max(1, round(v * n / 420)) for k, v in DEFECTS_AT_420.items()}


def generate(n: int = 300, seed: int = 13) -> list[str]:
    """Generate n JSONL lines (clean rows plus seeded defects)."""
    counts = defect_counts(n)
    n_clean = n - sum(counts.values())
    if n_clean < len(CATEGORIES):
        raise ValueError(f"--n {n} is too small")
    rng = random.Random(seed)

    cats = [CATEGORIES[i % len(CATEGORIES)] for i in range(n_clean)]
    rng.shuffle(cats)
    seen: set[str] = set()
    clean: list[str] = []
    for cat in cats:
        while True:
            ticket, target = make_example(rng, cat)
            if ticket not in seen:
                break
        seen.add(ticket)
        clean.append(_line(_messages(ticket, _target_json(target))))

    extra: list[str] = []
    extra.extend(rng.sample(clean, min(counts["duplicate"], len(clean))))
    for kind, count in counts.items():
        if kind == "duplicate":
            continue
        for _ in range(count):
            ticket, target = make_example(rng, rng.choice(CATEGORIES))
            extra.append(_defect_line(rng, kind, ticket, target))

    lines = list(clean)
    for line in extra:
        lines.insert(rng.randint(0, len(lines)), line)
    return lines


# ------------------------------------------------------------------ preference pairs

DEFAULT_OUT = Path("data/raw/support_tickets.jsonl")
DEFAULT_PAIRS_OUT = Path("data/raw/support_preferences.jsonl")
REJECTED_KINDS = ("drift", "wrong_priority", "wrong_category")
# Mistakes a triage model plausibly makes: neighbouring priorities, related categories.
WRONG_PRIORITY = {"high": ("medium",), "medium": ("low", "high"), "low": ("medium",)}
WRONG_CATEGORY = {
    "billing": ("account", "shipping"),
    "technical": ("product", "account"),
    "account": ("technical", "billing"),
    "shipping": ("product", "billing"),
    "product": ("technical", "shipping"),
}
DRIFT_TOPICS = {
    "billing": ("a billing problem", "the charge on their card", "their invoice"),
    "technical": ("a bug in the app", "the error they see", "a technical problem"),
    "account": ("their account access", "an account setting", "their login details"),
    "shipping": ("their delivery", "the order status", "a shipping problem"),
    "product": ("a product question", "the product features", "what the product can do"),
}
DRIFT_PROSE = (
    "The customer is writing about {topic}, so I would reply {when} and keep them updated.",
    "This looks like a question about {topic}. A short, friendly reply should be enough here.",
    "Based on the ticket, the main issue is {topic}; someone from the team should look at it.",
    "I think this is about {topic}. Let me know if you want me to draft a longer answer!",
    "Summary: the user needs help with {topic}. I hope this triage is useful.",
)


def _rejected(rng: random.Random, kind: str, target: dict, topic: str) -> str:
    """A realistic bad answer of the given kind for a ticket whose correct answer is `target`."""
    if kind == "drift":
        kept = dict(list(target.items())[: rng.choice((1, 2))])
        head = _target_json(kept)
        head = head if rng.random() < 0.5 else head[:-1] + ","  # closed, or left open
        when = rng.choice(WHEN[target["priority"]])
        prose = rng.choice(DRIFT_PROSE).format(topic=topic, when=when)
        return head + ("\n" if rng.random() < 0.3 else " ") + prose
    wrong = dict(target)
    if kind == "wrong_priority":
        wrong["priority"] = rng.choice(WRONG_PRIORITY[target["priority"]])
    elif kind == "wrong_category":
        wrong["category"] = rng.choice(WRONG_CATEGORY[target["category"]])
    else:
        raise ValueError(f"unknown rejected kind: {kind}")
    return _target_json(wrong)


def chat_tickets(lines: list[str]) -> set[str]:
    """The user turns of every chat line that parses (malformed lines have none to reuse)."""
    tickets = set()
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        messages = row.get("messages", []) if isinstance(row, dict) else row
        tickets.update(m.get("content", "") for m in messages if m.get("role") == "user")
    return tickets


def generate_preferences(n_pairs: int, seed: int, exclude: set[str]) -> list[str]:
    """n_pairs preference lines on tickets not in `exclude`, balanced over categories and
    rejected kinds, from a random stream of their own (the chat lines stay as they are)."""
    rng = random.Random(f"preferences-{seed}")
    cats = [CATEGORIES[i % len(CATEGORIES)] for i in range(n_pairs)]
    kinds = [REJECTED_KINDS[i % len(REJECTED_KINDS)] for i in range(n_pairs)]
    rng.shuffle(cats)
    rng.shuffle(kinds)
    seen = set(exclude)
    lines = []
    for cat, kind in zip(cats, kinds, strict=True):
        while True:
            ticket, target = make_example(rng, cat)
            if ticket not in seen:
                break
        seen.add(ticket)
        prompt = _messages(ticket, "")[:2]
        chosen = [{"role": "assistant", "content": _target_json(target)}]
        topic = rng.choice(DRIFT_TOPICS[cat])
        rejected = [{"role": "assistant", "content": _rejected(rng, kind, target, topic)}]
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "rejected_kind": kind}
        lines.append(json.dumps(row, ensure_ascii=False))
    return lines


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} lines to {path}")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=60, help="preference pairs; 0 = none")
    parser.add_argument(
        "--pairs-out",
        type=Path,
        default=None,
        help=f"default: {DEFAULT_PAIRS_OUT} when --out is left at its default, else none",
    )
    args = parser.parse_args(argv)
    lines = generate(args.n, args.seed)
    write_lines(args.out, lines)
    pairs_out = args.pairs_out or (DEFAULT_PAIRS_OUT if args.out == DEFAULT_OUT else None)
    if pairs_out is not None and args.pairs > 0:
        write_lines(pairs_out, generate_preferences(args.pairs, args.seed, chat_tickets(lines)))


if __name__ == "__main__":
    main()
