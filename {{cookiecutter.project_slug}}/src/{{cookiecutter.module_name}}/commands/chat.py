"""`make chat`: send one prompt to the local OpenAI-compatible server (`make serve`) and print
the answer. The server applies the model's chat template; decoding is greedy (temperature 0).

Uses the `openai` client where it is installed, else the standard library."""

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from ..cli import run_stage
from ..errors import StageError

SERVED_NAME = "selected"  # the name `make serve` gives the selected model where it can
# The local server checks no key; a fixed one keeps a real OPENAI_API_KEY from being sent.
API_KEY = "local"
TIMEOUT_S = 600.0  # a long answer on a CPU takes a while
CLIENTS = ("auto", "openai", "urllib")


@dataclass(frozen=True)
class Answer:
    content: str
    finish_reason: str
    model: str


def messages_for(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": system}] if system else []
    return [*turns, {"role": "user", "content": prompt}]


def pick_model(ids: list[str]) -> str:
    """The selected model (vLLM also lists the base under an adapter), else the only one."""
    if not ids:
        raise StageError("the server lists no model")
    return SERVED_NAME if SERVED_NAME in ids else ids[0]


def ask_openai(base_url: str, messages: list[dict], max_tokens: int, model: str | None) -> Answer:
    import httpx
    import openai

    # trust_env=False: a proxy from the environment must not see traffic meant for 127.0.0.1.
    http = httpx.Client(trust_env=False, timeout=TIMEOUT_S)
    client = openai.OpenAI(base_url=base_url, api_key=API_KEY, http_client=http, max_retries=0)
    try:
        model = model or pick_model([entry.id for entry in client.models.list()])
        response = client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0
        )
    except openai.APIConnectionError as error:
        raise StageError(f"no server at {base_url}: start one with `make serve`") from error
    except openai.APIStatusError as error:
        raise StageError(f"the server answered {error.status_code}: {error.message}") from error
    choice = response.choices[0]
    return Answer(choice.message.content or "", str(choice.finish_reason), model)


def http_json(url: str, body: dict | None = None) -> dict:
    """GET (or POST `body` as JSON) and decode the JSON answer, bypassing any proxy."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:500]
        raise StageError(f"the server answered {error.code}: {detail}") from error
    except urllib.error.URLError as error:
        raise StageError(f"no server at {url}: start one with `make serve`") from error


def ask_urllib(base_url: str, messages: list[dict], max_tokens: int, model: str | None) -> Answer:
    model = model or pick_model([entry["id"] for entry in http_json(f"{base_url}/models")["data"]])
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    choice = http_json(f"{base_url}/chat/completions", body)["choices"][0]
    return Answer(choice["message"]["content"] or "", str(choice["finish_reason"]), model)


def ask(
    prompt: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    system: str | None = None,
    max_tokens: int = 256,
    model: str | None = None,
    client: str = "auto",
) -> Answer:
    """One chat completion from the server at host:port."""
    if client == "auto":
        try:
            import openai  # noqa: F401
        except ImportError:
            client = "urllib"
        else:
            client = "openai"
    ask_with = ask_openai if client == "openai" else ask_urllib
    return ask_with(f"http://{host}:{port}/v1", messages_for(prompt, system), max_tokens, model)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--system", default=None, help="a system message (default: none)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--model", default=None, help="served model name (default: the listed)")
    parser.add_argument("--client", choices=CLIENTS, default="auto")
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per HTTP request
    answer = ask(
        args.prompt, args.host, args.port, args.system, args.max_tokens, args.model, args.client
    )
    print(answer.content)
    if answer.finish_reason == "length":
        print(f"(cut at --max-tokens {args.max_tokens})", file=sys.stderr)


if __name__ == "__main__":
    run_stage("chat", main)
