"""Finish a freshly generated project: prune preset data, write the training preset's values
into params.yaml, write LICENSE and .cruft.json, git init + dvc init.

Cookiecutter renders this file with Jinja and runs it with the generated project directory as
the working directory. Unrendered, it is still valid Python (the answers are string literals).
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# The macro escapes backslashes and double quotes so any answer yields a valid Python string.
# {% macro py(value) %}{{ value | replace("\\", "\\\\") | replace('"', '\\"') }}{% endmacro %}
PROJECT_SLUG = """{{ py(cookiecutter.project_slug) }}"""
AUTHOR_NAME = """{{ py(cookiecutter.author_name) }}"""
AUTHOR_EMAIL = """{{ py(cookiecutter.author_email) }}"""
METHOD = """{{ py(cookiecutter.method) }}"""
TASK_PRESET = """{{ py(cookiecutter.task_preset) }}"""
TRAINING_PRESET = """{{ py(cookiecutter.training_preset) }}"""
MODULE_NAME = """{{ py(cookiecutter.module_name) }}"""
LICENSE = """{{ py(cookiecutter.license) }}"""
DVC_REMOTE = """{{ py(cookiecutter.dvc_remote) }}"""
DVC_REMOTE_URL = """{{ py(cookiecutter.dvc_remote_url) }}"""
# Where the template came from, for .cruft.json. `cookiecutter` sets _template (as typed),
# _repo_dir (the checkout it rendered) and _checkout; `cruft create` and `cruft update` set
# _template (resolved) and _commit instead. A missing key renders as "".
TEMPLATE = """{{ py(cookiecutter._template | default("", true)) }}"""
REPO_DIR = """{{ py(cookiecutter._repo_dir | default("", true)) }}"""
CHECKOUT = """{{ py(cookiecutter._checkout | default("", true)) }}"""
CRUFT_COMMIT = """{{ py(cookiecutter._commit | default("", true)) }}"""
# The answers in cookiecutter.json order (jsonify sorts keys), then all of them as JSON.
CONTEXT_KEYS = """{% for key in cookiecutter %}{{ key }} {% endfor %}"""
CONTEXT_JSON = """{{ py(cookiecutter | jsonify) }}"""

COMMIT_MESSAGE = "Initial commit from cookiecutter-llm-finetune"
CRUFT_FILE = ".cruft.json"
# What cookiecutter adds to the context for one bake; cruft's context does not carry them.
BAKE_ONLY_KEYS = ("_output_dir", "_repo_dir", "_checkout")
PRESET_DATA = (
    Path("data/raw/support_tickets.jsonl"),
    Path("data/raw/support_preferences.jsonl"),
)

MIT_TEXT = """MIT License

Copyright (c) {year} {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

APACHE_TEXT = """Copyright {year} {holder}

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
"""

BSD3_TEXT = """BSD 3-Clause License

Copyright (c) {year}, {holder}

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

PROPRIETARY_TEXT = """Copyright (c) {year} {holder}. All rights reserved.

This software and its documentation are proprietary and confidential.
No part of it may be copied, modified, distributed or used without the
prior written permission of the copyright holder.
"""

LICENSE_TEXTS: dict[str, str] = {
    "MIT": MIT_TEXT,
    "Apache-2.0": APACHE_TEXT,
    "BSD-3-Clause": BSD3_TEXT,
    "Proprietary": PROPRIETARY_TEXT,
}


class HookError(RuntimeError):
    """A post-generation step failed; the message is meant for the user."""


def warn(message: str) -> None:
    """Print a warning to stderr."""
    print(f"WARNING: {message}", file=sys.stderr)


def prune_preset_data(task_preset: str, project_dir: Path) -> None:
    """Remove the bundled support-triage data (tickets and preference pairs) when the user
    chose a custom task."""
    if task_preset == "custom":
        for path in PRESET_DATA:
            (project_dir / path).unlink(missing_ok=True)


def preset_table(params_py: Path) -> dict[str, dict[str, float]]:
    """The `PRESETS` table of the generated params.py (its one home), read without importing
    it: the hook runs in cookiecutter's interpreter, which need not have pydantic."""
    tree = ast.parse(params_py.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(isinstance(t, ast.Name) and t.id == "PRESETS" for t in targets) and node.value:
            return ast.literal_eval(node.value)
    raise HookError(f"{params_py} has no literal PRESETS table")


def write_preset_values(params_yaml: Path, values: dict[str, float]) -> None:
    """Replace `<key>: null` in params.yaml's train section by the preset's values, so
    `dvc exp show` shows the learning rate and rank the run uses."""
    lines = params_yaml.read_text(encoding="utf-8").splitlines(keepends=True)
    section, missing = None, set(values)
    for i, line in enumerate(lines):
        if line[:1].isalpha():
            section = line.split(":")[0]
        key, sep, rest = line.strip().partition(":")
        if section == "train" and sep and key in values and rest.split("#")[0].strip() == "null":
            indent = line[: len(line) - len(line.lstrip())]
            comment = rest[rest.index("#") :].rstrip("\n") if "#" in rest else ""
            value = f"{key}: {values[key]!r}"
            lines[i] = f"{indent}{value:<31}{comment}".rstrip() + "\n"
            missing.discard(key)
    if missing:
        raise HookError(f"{params_yaml}: train.{', train.'.join(sorted(missing))}: null not found")
    params_yaml.write_text("".join(lines), encoding="utf-8")


def fill_training_preset(preset: str, module_name: str, project_dir: Path) -> None:
    table = preset_table(project_dir / "src" / module_name / "params.py")
    if preset not in table:
        raise HookError(f"training_preset {preset!r} is not in params.py PRESETS: {sorted(table)}")
    write_preset_values(project_dir / "params.yaml", table[preset])


def license_text(license_name: str, holder: str, year: int | None = None) -> str:
    """Return the LICENSE file content for ``license_name``."""
    if license_name not in LICENSE_TEXTS:
        raise HookError(
            f"license '{license_name}' is not supported. Choose one of: {', '.join(LICENSE_TEXTS)}."
        )
    year = year if year is not None else dt.date.today().year
    return LICENSE_TEXTS[license_name].format(year=year, holder=holder)


def write_license(license_name: str, holder: str, project_dir: Path) -> None:
    """Write ``LICENSE`` into the project directory."""
    (project_dir / "LICENSE").write_text(license_text(license_name, holder), encoding="utf-8")


def run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` quietly; raise HookError with its output if it fails."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise HookError(f"{what} failed (`{' '.join(cmd)}` exited {result.returncode}):\n{output}")
    return result


def find_dvc() -> list[str] | None:
    """Return the command that runs DVC, or None if DVC is not installed.

    The DVC installed next to cookiecutter (this interpreter) wins over one found on PATH.
    """
    if importlib.util.find_spec("dvc") is not None:
        return [sys.executable, "-m", "dvc"]
    exe = shutil.which("dvc")
    return [exe] if exe else None


def git_identity_args(git: str, project_dir: Path) -> list[str]:
    """Return ``-c user.name=.. -c user.email=..`` only if git has no identity configured."""
    for key in ("user.name", "user.email"):
        probe = subprocess.run(
            [git, "config", "--get", key], cwd=project_dir, capture_output=True, check=False
        )
        if probe.returncode != 0 or not probe.stdout.strip():
            return ["-c", f"user.name={AUTHOR_NAME}", "-c", f"user.email={AUTHOR_EMAIL}"]
    return []


def git_output(git: str, cwd: Path, *args: str) -> str | None:
    """Stripped stdout of ``git args`` in ``cwd``, or None if git fails (not a repo, no HEAD)."""
    result = subprocess.run([git, *args], cwd=cwd, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def cruft_context(context_json: str, keys: str, template: str, commit: str) -> dict[str, Any]:
    """The context cruft keeps: the answers in cookiecutter.json order, then _template and
    _commit; without the keys cookiecutter adds for one bake (output and checkout dirs)."""
    answers = json.loads(context_json)
    context = {key: answers[key] for key in keys.split() if key not in BAKE_ONLY_KEYS}
    context.update(_template=template, _commit=commit)
    return {"cookiecutter": context}


def cruft_json(template: str, commit: str, checkout: str, context: dict, directory: str) -> str:
    """.cruft.json as `cruft create` writes it (same keys, order and formatting)."""
    state = {
        "template": template,
        "commit": commit,
        "checkout": checkout or None,
        "context": context,
        "directory": directory or None,
    }
    return json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": ")) + "\n"


def find_repo_dir(repo_dir: str) -> Path | None:
    """The template directory cookiecutter rendered, as an absolute path, or None.

    ``_repo_dir`` is relative when the template was given as a relative path, and this hook
    runs in the new project: cookiecutter itself runs in the template directory while its
    hooks run (/proc/<parent>/cwd on Linux), which is $PWD joined with the relative path.
    """
    if not repo_dir:
        return None
    if Path(repo_dir).is_absolute():
        candidates = [Path(repo_dir)]
    else:
        candidates = [Path(f"/proc/{os.getppid()}/cwd"), Path(os.environ.get("PWD", "/"), repo_dir)]
    for path in candidates:
        if (path / "cookiecutter.json").is_file():
            return path.resolve()
    return None


def template_origin(git: str, repo_dir: Path, in_place: bool) -> tuple[str, str, str] | None:
    """(template URL or path, commit, directory in the repository) for .cruft.json, or None
    when ``repo_dir`` is not in a git repository with a commit.

    A template cookiecutter rendered in place (given as a path) is recorded as its repository's
    top level; one it cloned (a URL, gh:..., a name under cookiecutters_dir) as the clone's
    origin URL.
    """
    top = git_output(git, repo_dir, "rev-parse", "--show-toplevel")
    commit = git_output(git, repo_dir, "rev-parse", "HEAD")
    if not top or not commit:
        return None
    url = top if in_place else git_output(git, repo_dir, "remote", "get-url", "origin")
    if not url:
        return None
    directory = (git_output(git, repo_dir, "rev-parse", "--show-prefix") or "").rstrip("/")
    if url == top and git_output(git, repo_dir, "status", "--porcelain", "--", "."):
        warn(
            f"the template checkout {top} has uncommitted changes: {CRUFT_FILE} records its "
            f"last commit {commit[:12]}, and `cruft update` diffs from that commit."
        )
    return url, commit, directory


def link_template(project_dir: Path) -> None:
    """Write .cruft.json so `cruft check` and `cruft update` can bring template changes in
    (the project's docs/teams-and-scale.md, "Keeping up with the template"); skip it, with a
    hint, when the template is not a git checkout. Under `cruft create` this writes what cruft
    writes after the hook, so the initial commit already holds it."""
    if CRUFT_COMMIT:  # cruft create or cruft update rendering
        context = cruft_context(CONTEXT_JSON, CONTEXT_KEYS, TEMPLATE, CRUFT_COMMIT)
        text = cruft_json(TEMPLATE, CRUFT_COMMIT, "", context, "")
    else:
        git = shutil.which("git")
        repo_dir = find_repo_dir(REPO_DIR)
        # cookiecutter renders a template path in place: _repo_dir is _template (+ directory)
        in_place = Path(TEMPLATE) == Path(REPO_DIR) or Path(TEMPLATE) in Path(REPO_DIR).parents
        origin = template_origin(git, repo_dir, in_place) if git and repo_dir else None
        if origin is None:
            print(
                f"Note: the template ({TEMPLATE}) is not a git checkout with a commit (or git "
                f"is missing), so no {CRUFT_FILE} was written and `cruft update` cannot follow "
                "it. To link "
                "the project later: `cruft link <template git URL or path>`."
            )
            return
        url, commit, directory = origin
        context = cruft_context(CONTEXT_JSON, CONTEXT_KEYS, url, commit)
        text = cruft_json(url, commit, CHECKOUT, context, directory)
    (project_dir / CRUFT_FILE).write_text(text, encoding="utf-8")


def init_repositories(project_dir: Path) -> None:
    """``git init``, ``dvc init`` and make the initial commit (skipping missing tools)."""
    git = shutil.which("git")
    if git is None:
        warn(
            "git was not found on PATH: skipped `git init`, `dvc init` and the initial commit. "
            "Install git, then run `git init -b main && dvc init` in the project."
        )
        return
    run([git, "init", "-q", "-b", "main"], project_dir, "git init")

    dvc = find_dvc()
    if dvc is None:
        warn(
            "DVC is not installed: skipped `dvc init`. "
            "Run `dvc init` in the project after `make setup`."
        )
    else:
        run([*dvc, "init", "-q"], project_dir, "dvc init")
        if DVC_REMOTE != "none":  # the default remote, in .dvc/config (credentials: never)
            run(
                [*dvc, "remote", "add", "-d", "storage", DVC_REMOTE_URL],
                project_dir,
                "dvc remote add",
            )

    run([git, "add", "-A"], project_dir, "git add")
    identity = git_identity_args(git, project_dir)
    run([git, *identity, "commit", "-q", "-m", COMMIT_MESSAGE], project_dir, "git commit")


def main() -> int:
    """Run every post-generation step in the current (generated project) directory."""
    project_dir = Path.cwd()
    try:
        prune_preset_data(TASK_PRESET, project_dir)
        fill_training_preset(TRAINING_PRESET, MODULE_NAME, project_dir)
        # METHOD needs no file changes: params.yaml selects LoRA, QLoRA or full fine-tuning.
        write_license(LICENSE, AUTHOR_NAME, project_dir)
        link_template(project_dir)  # before the initial commit, so that commit holds it
        init_repositories(project_dir)
    except HookError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"ERROR: post-generation step failed: {err}", file=sys.stderr)
        return 1
    print(f"Created {PROJECT_SLUG} ({METHOD}, {TASK_PRESET}, {LICENSE}).")
    print(f"Next: cd {PROJECT_SLUG} && make setup && dvc repro")
    return 0


if __name__ == "__main__":
    sys.exit(main())
