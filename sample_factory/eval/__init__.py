"""Evaluation: load a trained policy from an experiment, play episodes with it, report returns.

    config.py    the eval config (saved config + flags typed now) and the settings derived from it
    policy.py    a checkpoint -> LoadedPolicy (model in eval mode, its spaces, its RNN width)
    episodes.py  play episodes with a LoadedPolicy and report their returns; reads no config, so
                 evaluation during training can drive it with its own settings
    video.py     the mp4 recorder of `--save_video`

`enjoy`, the match and league commands and `export_onnx` stand on these modules.
"""


class EvalError(RuntimeError):
    """A failure the user can fix; its message is one line and names what to do."""
