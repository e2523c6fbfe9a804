"""Every flag is true: each parsed flag is read by the code, or refused when set to what it can't do."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sample_factory.cfg.arguments import default_cfg, make_parser
from sample_factory.cfg.experiment import merge_with_saved_cfg, save_cfg
from sample_factory.cfg.validate import NOT_SUPPORTED, config_errors

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _source_that_reads_flags() -> str:
    files = [*(ROOT / "sample_factory").rglob("*.py"), *(ROOT / "sf_examples").rglob("*.py")]
    definitions = ROOT / "sample_factory" / "cfg" / "cfg.py"
    return "\n".join(f.read_text() for f in files if f != definitions)


def _is_read(name: str, source: str) -> bool:
    quoted = rf"[\"']{name}[\"']"
    patterns = (
        rf"\bcfg\.{name}\b",
        rf"cfg\[{quoted}\]",
        rf"cfg\.get\({quoted}",
        rf"getattr\(cfg, {quoted}",
        rf"_cfg_value\(cfg, {quoted}",
        rf"\bget\({quoted}",
    )
    return any(re.search(p, source) for p in patterns)


def test_every_parsed_flag_is_read_or_refused():
    source = _source_that_reads_flags()
    names = [a.dest for a in make_parser(evaluation=True)._actions if a.dest != "help"]
    unread = [n for n in names if n not in NOT_SUPPORTED and not _is_read(n, source)]
    assert not unread, f"parsed but never read (implement them or add them to NOT_SUPPORTED): {unread}"
    refused_but_read = [n for n in NOT_SUPPORTED if _is_read(n, source)]
    assert not refused_but_read, f"read by the code yet refused: {refused_but_read}"


def test_the_defaults_are_all_supported():
    assert config_errors(default_cfg("CartPole-v1")) == []
    parser = make_parser()
    for name, (supported, _) in NOT_SUPPORTED.items():
        assert parser.get_default(name) == supported, name


def _unsupported_value(supported):
    if isinstance(supported, bool):
        return not supported
    if isinstance(supported, (int, float)):
        return supported * 2 + 1
    return {"adam": "lamb", "entropy": "symmetric_kl"}.get(supported, supported + "_other")


@pytest.mark.parametrize("name", sorted(NOT_SUPPORTED))
def test_an_unsupported_value_is_a_one_line_error(name):
    cfg = default_cfg("CartPole-v1", ["--num_policies=2"])
    cfg[name] = _unsupported_value(NOT_SUPPORTED[name][0])
    errors = config_errors(cfg)
    assert len(errors) == 1 and errors[0].startswith(f"--{name}=") and "not supported" in errors[0], errors


def test_bad_pbt_flags_stop_the_run_before_anything_starts_one_line_each(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sf_examples.train_gym_env",
            "--env=CartPole-v1",
            f"--train_dir={tmp_path}",
            "--experiment=x",
            "--with_pbt=True",
            "--num_policies=2",
            "--pbt_replace_fraction=0.8",
            '--policy_hyperparams={"2": {"learning_rate": 0.1}}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --policy_hyperparams: policy 2 does not exist (--num_policies=2)",
        "error: --pbt_replace_fraction=0.8: must be in (0, 0.5] (the bottom and the top fraction of the"
        " population must not overlap)",
    ]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "value, error",
    [
        ('{"0": {"batch_size": 64}}', "['batch_size'] cannot differ per policy"),
        ('{"0": {"learning_rate": "fast"}}', "learning_rate='fast' is not a number"),
        ('{"zero": {}}', "'zero' is not a policy id"),
        ("{not json", "not valid JSON"),
        ("/no/such/file.json", "neither JSON nor an existing file"),
    ],
)
def test_policy_hyperparams_errors_name_what_is_wrong(value, error):
    errors = config_errors(default_cfg("CartPole-v1", ["--num_policies=2", f"--policy_hyperparams={value}"]))
    assert len(errors) == 1 and error in errors[0], errors


def test_a_saved_config_with_retired_defaults_resumes(tmp_path):
    """Configs saved before decorrelate_envs_on_one_worker and env_gpu_observations became False."""
    argv = [f"--train_dir={tmp_path}", "--experiment=old"]
    old = default_cfg("CartPole-v1", argv)
    old.update(decorrelate_envs_on_one_worker=True, env_gpu_observations=True)
    save_cfg(old, tmp_path / "old")
    assert json.loads((tmp_path / "old" / "config.json").read_text())["env_gpu_observations"] is True

    resumed = merge_with_saved_cfg(default_cfg("CartPole-v1", argv))
    assert config_errors(resumed) == []
    typed = merge_with_saved_cfg(default_cfg("CartPole-v1", argv + ["--env_gpu_observations=True"]))
    assert any("--env_gpu_observations=True" in e for e in config_errors(typed))


def test_force_envs_single_thread_and_niceness_reach_the_worker(monkeypatch):
    from sample_factory.utils import device

    for name in device._THREAD_LIMIT_VARS:
        monkeypatch.delenv(name, raising=False)
    device.limit_env_threads()
    assert all(device.os.environ[name] == "1" for name in device._THREAD_LIMIT_VARS)

    calls = []
    monkeypatch.setattr(device.os, "nice", lambda n: calls.append(n))
    device.set_niceness(5, "rollout_worker_0")
    assert calls == [5]


@pytest.mark.parametrize(
    "env, module, setup_name, extra",
    [
        ("CartPole-v1", "sf_examples.train_gym_env", "setup_gym_parser", "gymnasium"),
        ("doom_basic", "sf_examples.vizdoom.train_vizdoom", "setup_doom_parser", "vizdoom"),
        ("atari_breakout", "sf_examples.atari.train_atari", "setup_atari_parser", "ale_py"),
        ("mujoco_halfcheetah", "sf_examples.mujoco.train_mujoco", "setup_mujoco_parser", "mujoco"),
    ],
)
def test_every_flag_an_env_family_adds_is_read_or_refused(env, module, setup_name, extra):
    import importlib

    from sample_factory.cfg.arguments import parse_sf_args

    pytest.importorskip(extra)
    setup = getattr(importlib.import_module(module), setup_name)
    parser, partial_cfg = parse_sf_args([f"--env={env}"], evaluation=True)
    setup(parser, partial_cfg)
    source = _source_that_reads_flags()
    names = [a.dest for a in parser._actions if a.dest != "help"]
    unread = [n for n in names if n not in NOT_SUPPORTED and not _is_read(n, source)]
    assert not unread, f"{env}: parsed but never read: {unread}"


@pytest.mark.parametrize(
    "flags, error",
    [
        (
            ["--league_opponents=1"],
            "error: --league_opponents=1 play league snapshots: set --league_snapshot_every_env_steps",
        ),
        (
            ["--league_opponent_sampling=uniform"],
            "error: --league_opponent_prob and --league_opponent_sampling do nothing",
        ),
        (
            ["--league_opponents=1", "--league_snapshot_every_env_steps=1000"],
            "error: --league_opponents=1: frozen opponents need a multi-agent env",
        ),
    ],
)
def test_league_opponent_flags_that_cannot_work_are_refused(tmp_path, flags, error):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sf_examples.train_gym_env",
            "--env=CartPole-v1",
            f"--train_dir={tmp_path}",
            "--experiment=x",
        ]
        + flags,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.strip().startswith(error), result.stderr
    assert not (tmp_path / "x").exists()


SNAPSHOT = ROOT / "tests" / "data" / "flags_snapshot.json"


def _flags_snapshot() -> dict:
    """Every flag of the full parser as `--help` shows it: groups in order, and per flag its dest,
    default, type, choices, nargs, action and help. Regenerate with `python tests/test_flags.py`
    only when a flag is meant to change."""
    from sample_factory.cfg.arguments import parse_sf_args

    snapshot = {}
    for evaluation in (False, True):
        parser, _ = parse_sf_args(["--env=CartPole-v1"], evaluation=evaluation)
        groups = []
        for group in parser._action_groups:
            flags = []
            for action in group._group_actions:
                flags.append(
                    {
                        "flags": list(action.option_strings),
                        "dest": action.dest,
                        "default": action.default,
                        "type": getattr(action.type, "__name__", None),
                        "choices": list(action.choices) if action.choices is not None else None,
                        "nargs": action.nargs,
                        "action": type(action).__name__,
                        "const": action.const,
                        "required": action.required,
                        "help": action.help,
                    }
                )
            groups.append({"title": group.title, "flags": flags})
        snapshot[f"evaluation={evaluation}"] = groups
    return json.loads(json.dumps(snapshot))


def test_every_flag_name_default_type_and_help_is_as_recorded():
    recorded = json.loads(SNAPSHOT.read_text())
    current = _flags_snapshot()
    for mode in recorded:
        want = {(g["title"], f["dest"]): f for g in recorded[mode] for f in g["flags"]}
        have = {(g["title"], f["dest"]): f for g in current[mode] for f in g["flags"]}
        assert sorted(want.keys() - have.keys()) == [], f"{mode}: flags gone or moved to another group"
        assert sorted(have.keys() - want.keys()) == [], f"{mode}: new flags (update {SNAPSHOT.name})"
        changed = [key for key in want if want[key] != have[key]]
        assert changed == [], f"{mode}: changed: {[(k, want[k], have[k]) for k in changed]}"
    assert current == recorded, "the order of groups or flags (as --help shows them) changed"


def test_no_function_of_the_config_is_over_80_lines():
    import ast

    long = []
    for path in sorted((ROOT / "sample_factory" / "cfg").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    assert long == [], f"split these by topic: {long}"


def test_a_config_saved_without_some_flags_loads_with_their_defaults(tmp_path):
    """An earlier version's config.json (or sample-factory 2.x's) lacks the flags added since: they
    are filled in once, when it is loaded, with the parser's default or the value typed now."""
    from sample_factory.cfg.arguments import load_from_checkpoint, maybe_load_from_checkpoint

    argv = [f"--train_dir={tmp_path}", "--experiment=old"]
    old = default_cfg("CartPole-v1", argv + ["--num_workers=3"])
    missing = ["league_opponents", "league_opponent_prob", "model_bf16", "max_env_failures", "script_defaults"]
    for name in missing:
        del old[name]
    old.update(git_hash="0123abc", cli_args={"num_workers": 3})  # 2.x saves these too
    save_cfg(old, tmp_path / "old")
    assert not set(missing) & set(json.loads((tmp_path / "old" / "config.json").read_text()))

    now = default_cfg("CartPole-v1", argv + ["--max_env_failures=7"])
    flags = [a.dest for a in make_parser()._actions if a.dest != "help"]
    for load in (load_from_checkpoint, maybe_load_from_checkpoint, merge_with_saved_cfg):
        cfg = load(now)
        assert [name for name in flags if name not in cfg] == []
        assert cfg.num_workers == 3, "the saved value stays"
        assert (cfg.league_opponents, cfg.league_opponent_prob, cfg.model_bf16) == (0, 0.5, False)
        assert cfg.max_env_failures == 7, "typed now"
        assert cfg.cli_args == now.cli_args and "num_workers" not in cfg.cli_args, "this invocation's"
        assert cfg.script_defaults == [] and cfg.command_line == now.command_line
        assert config_errors(cfg) == []


def test_only_flags_and_the_invocation_keys_ride_in_the_config():
    from sample_factory.cfg.experiment import INVOCATION_KEYS

    cfg = default_cfg("CartPole-v1", evaluation=True)
    flags = {a.dest for a in make_parser(evaluation=True)._actions if a.dest != "help"}
    assert sorted(set(cfg) - flags) == sorted(INVOCATION_KEYS)


if __name__ == "__main__":
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(json.dumps(_flags_snapshot(), indent=1) + "\n")
