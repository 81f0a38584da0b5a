"""The llm proposer through the real loop, against real HTTP servers on 127.0.0.1.

The servers (tests/llm_servers.py) speak OpenAI's chat-completions protocol
and Anthropic's Messages API with scripted answers; the proposer talks to
them through the official SDKs, exactly as it would to a real endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FAST_TOML, git, make_repo, ratchet
from llm_servers import Answer, Fail, Hang, ScriptedLLM, last_user_text

from ratchet import ConfigError, RunOptions, load_study, run_study
from ratchet.decide.judge import StrictJudge
from ratchet.proposers import make_proposer
from ratchet.proposers.llm import resolve_settings
from ratchet.store.ledger import Ledger

KEY = "sk-test-proposer-key-0123456789"
LLM = 'kind = "llm"\nmodel = "test-model"\nretries = 2\ntimeout = 30\nmax_failures = 3\n'


def sr(old: str, new: str, description: str = "change the score", path: str = "value.txt") -> str:
    return f"{description}\n\n{path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


def score(old: int, new: int) -> Answer:
    return Answer(sr(f"score: {old}", f"score: {new}", f"score {old} -> {new}"))


def _study(tmp_path: Path, extra: str = "", command: str = "cat value.txt", **files: str) -> Path:
    toml = FAST_TOML.replace('kind = "replay"\n', LLM + extra)
    toml = toml.replace('command = "cat value.txt"', f"command = {json.dumps(command)}")
    return make_repo(
        tmp_path / "study",
        {
            "ratchet.toml": toml,
            "program.md": "Lower the score. PROGRAM-MARKER\n",
            "value.txt": "score: 5\n",
            "check.sh": "echo protected\n",
            **files,
        },
    )


@pytest.fixture
def llm_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The proposer's key is in Ratchet's environment; backoff is short; no stray config."""
    for name in ("RATCHET_MODEL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("RATCHET_LLM_BACKOFF", "0.01")
    return monkeypatch


def _run(
    root: Path,
    server: ScriptedLLM,
    env: pytest.MonkeyPatch,
    max_experiments: int = 1,
    **variables: str,
):
    env.setenv("OPENAI_BASE_URL", server.url + "/v1")
    for name, value in variables.items():
        env.setenv(name, value)
    study = load_study(root)
    proposer = make_proposer(study, "llm")
    summary = run_study(study, proposer, StrictJudge(), RunOptions(max_experiments=max_experiments))
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        return summary, ledger.experiments()
    finally:
        ledger.close()


def _cli_env(server: ScriptedLLM, env: pytest.MonkeyPatch) -> None:
    """Point the `ratchet` subprocesses (they inherit os.environ) at ``server``."""
    env.setenv("OPENAI_BASE_URL", server.url + "/v1")


# --- answers that work ------------------------------------------------------------------


def test_good_edits_are_kept_or_discarded_as_the_metric_says(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([score(5, 3), score(3, 4)]) as server:
        summary, exps = _run(root, server, llm_env, max_experiments=2)
    assert [e.status for e in exps] == ["baseline", "keep", "discard"]
    assert [e.description for e in exps[1:]] == ["score 5 -> 3", "score 3 -> 4"]
    assert git(root, "show", "ratchet/main:value.txt") == "score: 3"
    assert exps[1].usage.input_tokens == 100 and exps[1].usage.output_tokens == 20
    assert exps[1].meta["model"] == "test-model" and exps[1].meta["format"] == "search-replace"
    assert server.chats[0]["model"] == "test-model"
    assert server.headers[-1]["authorization"] == f"Bearer {KEY}"
    assert summary.kept == 1


def test_the_prompt_carries_program_numbered_files_history_and_the_failure(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path, command="sh value.txt", **{"value.txt": "echo score: 5\n"})
    crash = Answer(sr("echo score: 5", "echo FAILURE-MARKER; exit 3", "break it"))
    with ScriptedLLM([crash, Answer(sr("echo score: 5", "echo score: 4"))]) as server:
        _, exps = _run(root, server, llm_env, max_experiments=2)
    assert [e.status for e in exps] == ["baseline", "crash", "keep"]
    system = server.chats[1]["messages"][0]["content"]
    prompt = last_user_text(server.chats[1])
    assert "<<<<<<< SEARCH" in system
    assert "Lower the score. PROGRAM-MARKER" in prompt
    assert "## value.txt" in prompt and "   1 | echo score: 5\n" in prompt
    assert "| 1 | baseline | 5 | +0 | baseline |" in prompt
    assert "| 2 | crash | — |  | break it — " in prompt
    failure = prompt[prompt.index("# The last failure") :]
    assert "FAILURE-MARKER" in failure.split("# Your turn")[0]


def test_an_unusable_answer_gets_one_repair_round_with_the_exact_reason(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([score(9, 3), score(5, 3)]) as server:
        _, exps = _run(root, server, llm_env)
    assert [e.status for e in exps] == ["baseline", "keep"]
    repair = server.chats[1]["messages"]
    assert repair[-2] == {
        "role": "assistant",
        "content": sr("score: 9", "score: 3", "score 9 -> 3"),
    }
    assert repair[-1]["content"].startswith(
        "Your answer could not be applied: the SEARCH block at line 4 (value.txt) does not"
        " match value.txt: the SEARCH lines must be copied exactly; the closest lines are"
        " 1-1:\nscore: 5"
    )
    assert exps[1].meta["repaired"] is True
    assert (exps[1].usage.input_tokens, exps[1].usage.output_tokens) == (200, 40)


def test_still_unusable_is_rejected_and_the_next_prompt_shows_why(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([score(9, 3), score(8, 3), score(5, 3)]) as server:
        _, exps = _run(root, server, llm_env, max_experiments=2)
    assert [e.status for e in exps] == ["baseline", "rejected", "keep"]
    reason = exps[1].reason
    assert reason.startswith(
        "proposal: the answer could not be applied, even after a repair round:"
        " the SEARCH block at line 4 (value.txt) does not match value.txt"
    )
    assert exps[1].usage.input_tokens == 200  # both answers are paid for and recorded
    assert "| 2 | rejected | — |  | (no proposal) — proposal: the answer could not" in (
        last_user_text(server.chats[2])
    )


def test_unusable_answers_in_a_row_end_the_run_and_a_good_one_resets_the_count(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path, extra="")
    toml = (root / "ratchet.toml").read_text().replace("max_failures = 3", "max_failures = 2")
    (root / "ratchet.toml").write_text(toml)
    git(root, "commit", "-qam", "two unusable answers in a row stop")
    none = [Answer("no edit at all"), Answer("still none")]  # an answer and its repair round
    with ScriptedLLM([*none, score(5, 4), *none, *none, score(3, 5)]) as server:
        summary, exps = _run(root, server, llm_env, max_experiments=10)
    assert [e.status for e in exps] == ["baseline", "rejected", "keep", "rejected", "rejected"]
    assert "the answer contains no edit" in exps[1].reason
    assert summary.stopped.startswith("the llm proposer gave 2 unusable answers in a row")
    assert "ratchet doctor" not in summary.stopped


def test_an_edit_to_a_protected_file_is_rejected_by_verify(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    cheat = Answer("rewrite the check\n\ncheck.sh\n```sh\necho score: 0\n```\n")
    with ScriptedLLM([cheat]) as server:
        _, exps = _run(root, server, llm_env)
    assert exps[1].status == "rejected"
    assert exps[1].reason == "policy: check.sh is protected (the evaluation must stay fixed)"
    assert len(server.chats) == 1  # verify's refusal is final: no repair round
    assert (root / "check.sh").read_text() == "echo protected\n"


# --- failures of the endpoint -------------------------------------------------------------


def test_429_and_503_are_retried_until_success(tmp_path: Path, llm_env: pytest.MonkeyPatch) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([Fail(429, "slow down"), Fail(503), score(5, 2)]) as server:
        _, exps = _run(root, server, llm_env)
    assert [e.status for e in exps] == ["baseline", "keep"]
    assert len(server.chats) == 3


def test_500s_until_the_retries_run_out_are_a_rejected_experiment(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([Fail(500, "upstream exploded")]) as server:
        summary, exps = _run(root, server, llm_env)
    assert [e.status for e in exps] == ["baseline", "rejected"]
    assert exps[1].reason == (
        f"proposal: the openai request to {server.url}/v1 failed after 3 attempts:"
        " HTTP 500: upstream exploded"
    )
    assert len(server.chats) == 3  # retries = 2
    assert summary.ran == 1


def test_a_request_refused_for_good_is_not_retried(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([Fail(404, "model not found")]) as server:
        _, exps = _run(root, server, llm_env)
    assert exps[1].reason == (
        f"proposal: {server.url}/v1 refused the request (HTTP 404: model not found)"
        " — check the model name (--model) and the base URL"
    )
    assert len(server.chats) == 1


def test_a_hang_past_the_client_timeout_is_retried_then_rejected(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path, extra="")
    toml = (root / "ratchet.toml").read_text()
    toml = toml.replace("timeout = 30", "timeout = 1").replace("retries = 2", "retries = 1")
    (root / "ratchet.toml").write_text(toml)
    git(root, "commit", "-qam", "short timeout")
    with ScriptedLLM([Hang()]) as server:
        _, exps = _run(root, server, llm_env)
    assert exps[1].status == "rejected"
    assert exps[1].reason.endswith(
        "failed after 2 attempts: no answer within 1 s ([proposer] timeout)"
    )


def test_consecutive_failures_stop_the_run_with_a_message_and_keep_results(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([score(5, 4), Fail(500, "down")]) as server:
        _cli_env(server, llm_env)
        done = ratchet("run", str(root), "--max-experiments", "10")
    assert done.returncode == 0, done.stderr
    assert "stopped: the llm proposer failed 3 times in a row (last: proposal: the openai" in (
        done.stdout
    )
    assert "HTTP 500: down) — check it with `ratchet doctor`" in done.stdout
    log = json.loads(ratchet("log", str(root), "--json").stdout)
    assert [e["status"] for e in log] == ["baseline", "keep", "rejected", "rejected", "rejected"]
    assert git(root, "show", "ratchet/main:value.txt") == "score: 4"


# --- usage, cost and caps --------------------------------------------------------------------


def test_cost_cap_ends_the_run_cleanly_and_status_and_log_show_the_spend(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    prices = 'max_cost_usd = 0.003\nprices = { "other-model" = [10.0, 30.0] }\n'
    root = _study(tmp_path, extra=prices)
    with ScriptedLLM([score(5, 4), score(4, 3), score(3, 2)], model="other-model") as server:
        _cli_env(server, llm_env)
        done = ratchet("run", str(root), "--model", "other-model", "--max-experiments", "10")
    assert done.returncode == 0, done.stderr
    assert (
        "stopped: the cost cap is reached: $0.0032 spent of [proposer] max_cost_usd = $0.003"
        " on tag main — raise it in ratchet.toml or start a new --tag"
    ) in done.stdout
    assert [c["model"] for c in server.chats] == ["other-model", "other-model"]
    status = ratchet("status", str(root)).stdout
    assert "proposer  240 tokens (200 in, 40 out), $0.0032 of max $0.003" in status
    rows = json.loads(ratchet("log", str(root), "--json").stdout)
    assert [(r["input_tokens"], r["output_tokens"], r["cost_usd"]) for r in rows] == [
        (0, 0, 0.0),
        (100, 20, 0.0016),
        (100, 20, 0.0016),
    ]
    table = ratchet("log", str(root)).stdout
    assert "tokens" in table and "$0.0016" in table and "120" in table


def test_token_cap_ends_the_run_cleanly(tmp_path: Path, llm_env: pytest.MonkeyPatch) -> None:
    root = _study(tmp_path, extra="max_total_tokens = 150\n")
    with ScriptedLLM([score(5, 4), score(4, 3), score(3, 2)]) as server:
        summary, exps = _run(root, server, llm_env, max_experiments=10)
    assert len(exps) == 3 and summary.ran == 2
    assert summary.stopped.startswith(
        "the token cap is reached: 240 tokens spent of [proposer] max_total_tokens = 150"
    )


def test_files_too_big_for_the_prompt_budget_stop_the_run_before_any_request(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    big = "score: 5\n" + "# padding line\n" * 400
    root = _study(tmp_path, extra="prompt_tokens = 1000\n", **{"value.txt": big})
    with ScriptedLLM([score(5, 4)]) as server:
        summary, exps = _run(root, server, llm_env, max_experiments=3)
    assert [e.status for e in exps] == ["baseline"]
    assert summary.stopped.startswith("the prompt needs about")
    assert "value.txt ~" in summary.stopped and "files are never cut" in summary.stopped
    assert server.chats == []


# --- secrets, protocols, configuration -----------------------------------------------------


def test_the_candidate_environment_never_holds_the_proposer_key(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path, command="env; cat value.txt")
    with ScriptedLLM([score(5, 4)]) as server:
        _cli_env(server, llm_env)
        done = ratchet("run", str(root), "--max-experiments", "1")
    assert done.returncode == 0, done.stderr
    shown = ratchet("show", "2", str(root), "--log").stdout
    assert "RATCHET_SEED=" in shown  # the candidate did print its environment
    assert "OPENAI_API_KEY" not in shown and KEY not in shown
    assert KEY not in done.stdout + done.stderr


def test_anthropic_messages_protocol_end_to_end(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([score(5, 1)], model="claude-test") as server:
        _, exps = _run(
            root,
            server,
            llm_env,
            RATCHET_MODEL="claude-test",
            ANTHROPIC_BASE_URL=server.url,
            ANTHROPIC_API_KEY="sk-ant-test",
        )
    assert [e.status for e in exps] == ["baseline", "keep"]
    assert server.paths == ["/v1/messages"]
    body = server.chats[0]
    assert body["model"] == "claude-test" and "<<<<<<< SEARCH" in body["system"]
    assert body["max_tokens"] == 4096
    sent = server.headers[0]
    assert "sk-ant-test" in sent.get("x-api-key", "") + sent.get("authorization", "")
    assert exps[1].usage.input_tokens == 100


def test_doctor_says_whether_the_endpoint_answers(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([score(5, 4)]) as server:
        _cli_env(server, llm_env)
        up = ratchet("doctor", str(root))
    assert up.returncode == 0, up.stdout
    assert (
        f"ok  proposer   llm: openai model test-model at {server.url}/v1 answers"
        " (key from OPENAI_API_KEY)"
    ) in up.stdout
    down = ratchet("doctor", str(root))
    assert down.returncode == 1
    assert f"BAD proposer   openai endpoint {server.url}/v1 does not answer" in down.stdout
    assert "start the server or fix [proposer] base_url / OPENAI_BASE_URL" in down.stdout
    assert KEY not in up.stdout + down.stdout


def test_model_precedence_flag_then_environment_then_file(tmp_path: Path) -> None:
    study = load_study(_study(tmp_path))
    env = {"OPENAI_API_KEY": KEY}
    assert resolve_settings(study, None, env).model == "test-model"
    env["RATCHET_MODEL"] = "env-model"
    assert resolve_settings(study, None, env).model == "env-model"
    assert resolve_settings(study, "flag-model", env).model == "flag-model"
    assert resolve_settings(study, "claude-x", env | {"ANTHROPIC_API_KEY": "k"}).provider == (
        "anthropic"
    )
    assert KEY not in repr(resolve_settings(study, None, env))


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        ("", {}, "No key found for model test-model — set OPENAI_API_KEY, point OPENAI_BASE_URL"),
        (
            'api_key_env = "MY_KEY"\n',
            {"MY_KEY": "k"},
            "[proposer] api_key_env = 'MY_KEY' would reach the experiments' environment",
        ),
        (
            'api_key_env = "GROQ_API_KEY"\n',
            {},
            "[proposer] api_key_env names GROQ_API_KEY, which is not set",
        ),
        (
            "max_cost_usd = 1.0\n",
            {"OPENAI_API_KEY": "k"},
            "[proposer] max_cost_usd needs the price of model test-model",
        ),
    ],
)
def test_configuration_errors_are_one_sentence(
    tmp_path: Path, extra: str, env: dict[str, str], message: str
) -> None:
    study = load_study(_study(tmp_path, extra=extra))
    with pytest.raises(ConfigError) as caught:
        resolve_settings(study, None, env)
    assert str(caught.value).startswith(message)


def test_env_allow_may_not_hand_the_key_to_experiments(tmp_path: Path) -> None:
    root = _study(tmp_path)
    toml = (
        (root / "ratchet.toml")
        .read_text()
        .replace("grace = 1", 'grace = 1\nenv_allow = ["OPENAI_API_KEY"]')
    )
    (root / "ratchet.toml").write_text(toml)
    with pytest.raises(ConfigError, match="env_allow lets OPENAI_API_KEY, the llm proposer's key"):
        resolve_settings(load_study(root), None, {"OPENAI_API_KEY": KEY})


def test_cli_errors_without_a_key_or_with_model_for_another_proposer(
    tmp_path: Path, llm_env: pytest.MonkeyPatch
) -> None:
    root = _study(tmp_path)
    llm_env.delenv("OPENAI_API_KEY")
    done = ratchet("run", str(root))
    assert done.returncode == 2
    assert "No key found for model test-model — set OPENAI_API_KEY" in done.stderr + done.stdout
    done = ratchet("run", str(root), "--proposer", "mutate", "--model", "x")
    assert done.returncode == 2
    assert "--model applies to the llm proposer, not mutate" in done.stderr + done.stdout
