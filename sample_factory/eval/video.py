"""The mp4 recorder of `--save_video` (OpenCV)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sample_factory.eval import EvalError
from sample_factory.utils.experiment_folder import temporary_path


def import_cv2():
    try:
        import cv2
    except ImportError:
        raise EvalError("--save_video needs OpenCV: pip install opencv-python-headless") from None
    return cv2


class VideoRecorder:
    """Writes RGB frames into an mp4 (OpenCV, fourcc mp4v), at most `max_frames` of them.

    Frames go to a temporary file in the same folder that replaces `path` on `close()`, so an
    interrupted run never leaves a half-written video under the final name.
    """

    def __init__(self, path: Path, fps: float, max_frames: int):
        self.cv2 = import_cv2()
        self.path = Path(path)
        self.tmp_path = temporary_path(self.path, keep_suffix=True)  # OpenCV picks the format by suffix
        self.fps = float(fps)
        self.max_frames = int(max_frames)
        self.num_frames = 0
        self.size: tuple[int, int] | None = None  # (width, height), from the first frame
        self._writer = None

    @property
    def full(self) -> bool:
        return self.num_frames >= self.max_frames

    def add(self, frame) -> None:
        if self.full or frame is None:
            return
        cv2 = self.cv2
        frame = np.asarray(frame)
        if frame.ndim == 4:  # a vector env renders a batch: record the first env
            frame = frame[0]
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        if frame.ndim == 2 or frame.shape[-1] == 1:
            frame = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
        else:
            frame = np.ascontiguousarray(frame[..., 2::-1])  # RGB(A) -> BGR
        height, width = frame.shape[:2]
        if self._writer is None:
            self.size = (width, height)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.tmp_path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self._writer.isOpened():
                self._writer = None
                raise EvalError(f"OpenCV cannot write an mp4v video to {self.tmp_path}")
        elif (width, height) != self.size:
            frame = cv2.resize(frame, self.size)
        self._writer.write(frame)
        self.num_frames += 1

    def close(self) -> Path | None:
        """Finishes the file; returns its path, or None when no frame was recorded."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.tmp_path.unlink(missing_ok=True)
