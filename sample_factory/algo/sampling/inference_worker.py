"""Inference worker: one forward pass over every request that has arrived, outputs written in place.

Requests name slots and a step; observations and RNN states are read from the trajectory
buffers, and actions, log-probs, values, logits, the behaviour policy version and the next
RNN state are written back into the same slots. Only `(split_idx,)` goes back to the worker.
"""

from __future__ import annotations

import logging

import torch

from sample_factory.algo.utils.context import set_global_model_factory
from sample_factory.model.actor_critic import create_actor_critic
from sample_factory.signal_slot.signal_slot import EventLoopObject, Timer
from sample_factory.utils.device import policy_device

log = logging.getLogger(__name__)


class InferenceWorker(EventLoopObject):
    def __init__(self, event_loop, policy_id: int, worker_idx: int, cfg, env_info, shared, model_factory):
        super().__init__(event_loop, f"inference_worker_p{policy_id}_{worker_idx}")
        self.policy_id = policy_id
        self.cfg = cfg
        self.env_info = env_info
        self.shared = shared
        self.model_factory = model_factory
        self.model = None
        self.version = 0
        self._weights_seq = 0
        self._retry_timer = None
        self._requests: list[tuple[int, int, int, list[int]]] = []
        self.num_batches = 0
        self.num_samples = 0

    def on_loop_started(self):
        set_global_model_factory(self.model_factory)
        self.device = policy_device(self.cfg)
        if self.device.type == "cpu" and not self.cfg.serial_mode:
            torch.set_num_threads(1)
        self.model = create_actor_critic(self.cfg, self.env_info.obs_space, self.env_info.action_space).to(self.device)
        self.model.eval()
        if self.device.type == "cpu":
            self.model.store_bf16_weights()
        self.event_loop.add_idle_callback(self._infer_pending)

    def _retry_after_wait(self):
        self._retry_timer.cancel()
        self._infer_pending()

    def on_inference_requested(self, worker_idx: int, split_idx: int, t: int, slots: list[int]):
        self._requests.append((worker_idx, split_idx, t, slots))

    def _infer_pending(self):
        if not self._requests or self.model is None:
            return
        policy_state = self.shared.policy_states[self.policy_id]
        if not policy_state.is_published:
            # The learner has not published its first weights yet (start-up): look again soon.
            if self._retry_timer is None or self._retry_timer.cancelled:
                self._retry_timer = Timer(self.event_loop, 0.01, self._retry_after_wait, periodic=False)
            return
        loaded = policy_state.load_into(self.model, self._weights_seq)
        if loaded is not None:
            self._weights_seq, self.version = loaded
        requests, self._requests = self._requests, []

        slot_list, step_list = [], []
        for _, _, t, slots in requests:
            slot_list.extend(slots)
            step_list.extend([t] * len(slots))
        slots = torch.tensor(slot_list, dtype=torch.int64)
        steps = torch.tensor(step_list, dtype=torch.int64)
        self._forward_and_write(slots, steps)

        for worker_idx, split_idx, _, _ in requests:
            self.named_signal(f"actions_ready_w{worker_idx}").emit(split_idx)
        self.num_batches += 1
        self.num_samples += len(slot_list)

    @torch.no_grad()
    def _forward_and_write(self, slots: torch.Tensor, steps: torch.Tensor):
        buffers = self.shared.buffers
        device = self.device
        obs = {key: tensor[slots, steps].to(device, non_blocking=True) for key, tensor in buffers.obs.items()}
        rnn_states = buffers.rnn_states[slots, steps].to(device, non_blocking=True)
        normalized = self.model.normalize_obs(obs)
        out = self.model(normalized, rnn_states)

        buffers.actions[slots, steps] = out["actions"].to("cpu").to(buffers.actions.dtype)
        buffers.log_prob_actions[slots, steps] = out["log_prob_actions"].cpu()
        buffers.values[slots, steps] = self.model.denormalize_values(out["values"]).cpu()
        buffers.action_logits[slots, steps] = out["action_logits"].cpu()
        buffers.policy_version[slots, steps] = self.version
        new_rnn = out.get("new_rnn_states")
        if new_rnn is not None and new_rnn.shape[-1] > 0:
            buffers.rnn_states[slots, steps + 1] = new_rnn.cpu()
        else:
            buffers.rnn_states[slots, steps + 1] = 0.0

    def on_stop(self):
        self._requests = []
        if not self.cfg.serial_mode:
            self.event_loop.stop()
