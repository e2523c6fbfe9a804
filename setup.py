from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="sample-factory",
    version="2.1.0",
    description="High-throughput asynchronous reinforcement learning on one machine",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["sample_factory*", "sf_examples*"]),
    install_requires=[
        "torch>=2.1",
        "numpy>=2",
        "gymnasium>=1.0",
        "faster-fifo>=1.4.4",
        "psutil",
        "tensorboardx",
        "matplotlib",
        "opencv-python-headless",
        "pygame-ce",  # gymnasium rendering; the same module vizdoom installs, so only one owns `pygame`
    ],
    entry_points={
        # Lets generic commands (e.g. python -m sample_factory.benchmark) find example env families.
        "sample_factory.env_families": [
            "gymnasium = sf_examples.train_gym_env:setup_gym_parser",
            "atari = sf_examples.atari.train_atari:setup_atari_parser",
            "mujoco = sf_examples.mujoco.train_mujoco:setup_mujoco_parser",
            "doom = sf_examples.vizdoom.train_vizdoom:setup_doom_parser",
            "coin = sf_examples.selfplay.train_coin_race:setup_coin_race_parser",
        ],
    },
    extras_require={
        "vizdoom": ["vizdoom>=1.2.3", "opencv-python-headless"],
        "atari": ["ale-py>=0.11", "opencv-python-headless"],
        "mujoco": ["mujoco>=3", "gymnasium[mujoco]>=1.0"],
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
        "wandb": ["wandb"],
        "pettingzoo": ["pettingzoo>=1.24"],
        "huggingface": ["huggingface_hub>=0.20"],
        "ray": ["ray>=2.9"],
        "dev": ["pytest", "pytest-timeout", "ruff==0.17.6", "onnx", "onnxscript", "onnxruntime"],
    },
)
