"""`export_onnx(cfg, path)`: the experiment's policy as an ONNX model, for inference without sample_factory.

The graph (batch dim B dynamic everywhere):
  inputs   one per observation key, by the key's name, float32 [B, *obs_shape]
           (raw observations: the input normalization of training is part of the graph;
           an "action_mask" key is an input too, 0 = forbidden);
           "rnn_states" float32 [B, S] only when the model is recurrent (zeros at episode start)
  outputs  "actions"        the most likely action, in buffer format: argmax index (int64 [B]) for
                            Discrete, per-component argmax for MultiDiscrete, the Gaussian mean for
                            Box (unclipped: clip it to the action bounds yourself)
           "values"         float32 [B], in return units (returns normalization undone)
           "action_logits"  float32 [B, P], the distribution parameters (sample from these for a
                            stochastic policy)
           "new_rnn_states" float32 [B, S] only when recurrent: feed back as "rnn_states"

Needs the `onnx` and `onnxscript` packages (torch's exporter); `onnxruntime` to run the result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from sample_factory.envs.env_utils import UnknownEnvError
from sample_factory.eval import EvalError
from sample_factory.eval.policy import LoadedPolicy, load_policy_for_eval
from sample_factory.model.encoder import ACTION_MASK_KEY
from sample_factory.utils.experiment_folder import ExperimentFolder, atomic_target
from sample_factory.utils.logging_setup import setup_logging
from sample_factory.utils.status import ExitStatus

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("actions", "values", "action_logits")
RNN_STATES_INPUT = "rnn_states"
RNN_STATES_OUTPUT = "new_rnn_states"
_EXAMPLE_BATCH = 2  # not 1: a batch of one invites the exporter to specialize the dim


class OnnxPolicy(nn.Module):
    """The actor-critic as a plain function of tensors: normalize -> head -> core -> tail (argmax)."""

    def __init__(self, model: nn.Module, obs_keys: list[str], rnn_state_size: int):
        super().__init__()
        self.model = model
        self.obs_keys = list(obs_keys)
        self.recurrent = rnn_state_size > 0

    def forward(self, *inputs: Tensor):
        obs = dict(zip(self.obs_keys, inputs))
        rnn_states = inputs[len(self.obs_keys)] if self.recurrent else None
        out = self.model.act(obs, rnn_states, deterministic=True)
        outputs = (out["actions"], out["values"], out["action_logits"])
        if self.recurrent:
            outputs = outputs + (out["new_rnn_states"],)
        return outputs


def example_inputs(policy: LoadedPolicy, batch: int = _EXAMPLE_BATCH) -> dict[str, Tensor]:
    """Random float inputs in the exported graph's order (observation keys, then rnn_states)."""
    inputs = {}
    for key, space in policy.obs_space.spaces.items():
        if key == ACTION_MASK_KEY:
            inputs[key] = torch.ones((batch,) + tuple(space.shape), dtype=torch.float32)
        else:
            inputs[key] = torch.rand((batch,) + tuple(space.shape), dtype=torch.float32)
    if policy.rnn_state_size > 0:
        inputs[RNN_STATES_INPUT] = torch.zeros(batch, policy.rnn_state_size)
    return inputs


def _import_onnx_deps():
    missing = []
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise EvalError(f"exporting to ONNX needs {' and '.join(missing)}: pip install {' '.join(missing)}")


@contextlib.contextmanager
def _quiet_loggers(*names: str, level: int = logging.ERROR):
    loggers = [logging.getLogger(name) for name in names]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old_level in zip(loggers, previous):
            logger.setLevel(old_level)


def write_onnx(policy: LoadedPolicy, path: str | os.PathLike) -> Path:
    """Exports the loaded policy; the file is written next to `path` first, then renamed."""
    _import_onnx_deps()
    path = Path(path)
    model = policy.model.to("cpu").eval()
    model.use_reference_ops()  # ONNX gets the plain float32 graph
    wrapper = OnnxPolicy(model, list(policy.obs_space.spaces.keys()), policy.rnn_state_size).eval()
    inputs = example_inputs(policy)
    input_names = list(inputs.keys())
    output_names = list(OUTPUT_NAMES) + ([RNN_STATES_OUTPUT] if wrapper.recurrent else [])
    batch = torch.export.Dim("batch")
    # forward(*inputs): the varargs parameter gets one spec per tensor
    dynamic_shapes = (tuple({0: batch} for _ in input_names),)

    with atomic_target(path, keep_suffix=True) as tmp_path:
        with warnings.catch_warnings(), _quiet_loggers("torch.onnx", "onnxscript", "onnx_ir"), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter is chatty about its internals
            program = torch.onnx.export(
                wrapper,
                tuple(inputs.values()),
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=dynamic_shapes,
                dynamo=True,
                external_data=False,  # one self-contained file; policies are small
                verbose=False,
            )
        program.save(str(tmp_path), external_data=False)
    return path


def export_onnx(cfg, path: str | os.PathLike) -> int:
    """Writes the experiment's policy (`--policy_index`, `--load_checkpoint_kind`) to `path`; 0 on success."""
    setup_logging()
    try:
        policy = load_policy_for_eval(cfg)
        written = write_onnx(policy, path)
    except (EvalError, UnknownEnvError) as e:
        print(f"error: {e}", file=sys.stderr)
        return ExitStatus.FAILURE
    log.info("Exported %s to %s", policy.checkpoint_path, written)
    print(f"ONNX model saved to {written}", flush=True)
    return ExitStatus.SUCCESS


def add_export_args(parser):
    parser.add_argument(
        "--onnx_path",
        type=str,
        default=None,
        help="Where to write the ONNX model (default: <experiment folder>/policy_p<policy_index>.onnx)",
    )


def onnx_path_for(cfg) -> Path:
    """`--onnx_path`, else the experiment's default (a config parsed with `add_export_args`)."""
    if cfg.onnx_path:
        return Path(cfg.onnx_path)
    return ExperimentFolder.from_cfg(cfg).default_onnx(cfg.policy_index)


def main() -> int:
    """`python -m sample_factory.export_onnx --env=NAME --experiment=... [--onnx_path=...]`."""
    from sample_factory.cfg.arguments import parse_full_cfg, parse_sf_args
    from sample_factory.envs.env_families import setup_env_family

    parser, partial_cfg = parse_sf_args(evaluation=True)
    setup_env_family(parser, partial_cfg)
    add_export_args(parser)
    cfg = parse_full_cfg(parser)
    return export_onnx(cfg, onnx_path_for(cfg))


if __name__ == "__main__":
    sys.exit(main())
