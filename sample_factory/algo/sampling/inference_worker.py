"""Inference worker: one forward pass over every request that has arrived, outputs written in place.

Requests name slots and a step; observations and RNN states are read from the trajectory
buffers, and actions, log-probs, values, logits, the behaviour policy version and the next
RNN state are written back into the same slots. An `ActionsReady` (split, epoch, policy) goes back to the worker.

`null_policy=True` (the benchmark's overhead phase) replaces the model's forward pass with
zeros, so that what remains is the framework's own cost.
"""

from __future__ import annotations

import logging

import torch

from sample_factory.algo import protocol, roles
from sample_factory.algo.shared_buffers import step_rows
from sample_factory.algo.utils.host_staging import HostStaging
from sample_factory.model.actor_critic import create_actor_critic
from sample_factory.model.model_factory import set_global_model_factory
from sample_factory.signal_slot.loop import EventLoopObject, Timer
from sample_factory.utils.device import policy_device

log = logging.getLogger(__name__)

WRITTEN_FIELDS = ("actions", "log_prob_actions", "values", "action_logits", "rnn_states", "policy_version")


class InferenceWorker(EventLoopObject):
    def __init__(
        self,
        event_loop,
        policy_id: int,
        worker_idx: int,
        cfg,
        env_info,
        shared,
        model_factory,
        *,
        null_policy: bool = False,
    ):
        self.role = roles.inference_worker(policy_id, worker_idx)
        super().__init__(event_loop, self.role.name)
        self.policy_id = policy_id
        self.worker_idx = worker_idx  # among the policy's --policy_workers_per_policy
        self.cfg = cfg
        self.env_info = env_info
        self.shared = shared
        self.model_factory = model_factory
        self.null_policy = null_policy
        self.model = None
        self.staging: HostStaging | None = None
        self.version = 0
        self._weights_seq = 0
        self._retry_timer = None
        self._requests: list[protocol.InferenceRequest] = []
        self._answer_signals: dict = {}  # worker_idx -> its actions_ready signal, made once
        self._last_request: dict[tuple[int, int], tuple[int, int]] = {}  # (worker, split) -> (epoch, seq)
        self.num_batches = 0
        self.num_samples = 0

    def on_loop_started(self):
        set_global_model_factory(self.model_factory)
        self.device = policy_device(self.cfg)
        if self.event_loop.owned_by_process:
            # One batch at a time; with a GPU the CPU side only gathers and scatters rows.
            torch.set_num_threads(1)
        self.model = create_actor_critic(self.cfg, self.env_info.obs_space, self.env_info.action_space).to(self.device)
        self.model.eval()
        self.staging = HostStaging(self.device)
        self._outputs = self._null_outputs if self.null_policy else self._policy_outputs
        buffers = self.shared.buffers
        self._obs_rows = {key: step_rows(field) for key, field in buffers.obs.items()}
        self._field_rows = {name: step_rows(getattr(buffers, name)) for name in WRITTEN_FIELDS}
        if self.device.type == "cpu":
            self.model.store_bf16_weights()
        self.event_loop.add_idle_callback(self._infer_pending)

    def _retry_after_wait(self):
        self._retry_timer.cancel()
        self._infer_pending()

    def on_inference_requested(self, request: protocol.InferenceRequest):
        # After this process was started anew, a rollout worker asks again what it may have lost in
        # the dead process's queue; a request that did reach this one is answered once.
        split = (request.worker_idx, request.split_idx)
        request_id = (request.epoch, request.request_seq)
        if self._last_request.get(split, (-1, -1)) >= request_id:
            return
        self._last_request[split] = request_id
        self._requests.append(request)

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

        steps_per_slot = self.shared.buffers.rollout + 1
        rows = []  # of the buffers' step_rows views
        for request in requests:
            t = request.t
            rows.extend([slot * steps_per_slot + t for slot in request.slots])
        self._forward_and_write(torch.tensor(rows, dtype=torch.int64))

        for request in requests:
            answer = self._answer_signals.get(request.worker_idx)
            if answer is None:
                answer = self._answer_signals[request.worker_idx] = self.named_signal(
                    protocol.actions_ready(request.worker_idx)
                )
            answer.emit(protocol.ActionsReady(request.split_idx, request.epoch, self.policy_id))
        self.num_batches += 1
        self.num_samples += len(rows)

    @torch.no_grad()
    def _forward_and_write(self, rows: torch.Tensor):
        staging, fields = self.staging, self._field_rows
        obs = {key: staging.gather_to_device(f"obs.{key}", field, rows) for key, field in self._obs_rows.items()}
        rnn_states = staging.gather_to_device("rnn_states", fields["rnn_states"], rows)
        try:
            results = self._outputs(obs, rnn_states)
        except RuntimeError as e:  # torch.multinomial on NaN probabilities: some env returned NaN or inf
            non_finite = [k for k, v in obs.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
            if not non_finite:
                raise
            # The learner drops the trajectories that hold them; sampling goes on with zeros in their place.
            log.warning(
                "%s: observations %s from an env hold NaN or inf (%s); replaced by 0 for acting, their trajectories"
                " are not trained on",
                self.object_id,
                non_finite,
                str(e).splitlines()[0][:120],
            )
            obs = {
                k: torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0) if k in non_finite else v
                for k, v in obs.items()
            }
            results = self._outputs(obs, rnn_states)
        # Named apart from the uploads' buffers: no download ever lands where an upload reads.
        on_host = {name: staging.to_host(f"out.{name}", value) for name, value in results.items()}
        staging.wait()

        next_rows = rows + 1  # the RNN state is the one the next step starts from
        for name, value in on_host.items():
            field = fields[name]
            field.index_copy_(
                0, next_rows if name == "rnn_states" else rows, value.reshape((len(rows),) + field.shape[1:])
            )
        fields["policy_version"].index_fill_(0, rows, self.version)
        if "rnn_states" not in on_host:
            fields["rnn_states"].index_fill_(0, next_rows, 0.0)

    def _policy_outputs(self, obs, rnn_states) -> dict:
        out = self.model.act(obs, rnn_states)
        results = {
            "actions": out["actions"].to(self._field_rows["actions"].dtype),
            "log_prob_actions": out["log_prob_actions"],
            "values": out["values"],
            "action_logits": out["action_logits"],
        }
        new_rnn = out.get("new_rnn_states")
        if new_rnn is not None and new_rnn.shape[-1] > 0:
            results["rnn_states"] = new_rnn
        return results

    def _null_outputs(self, obs, rnn_states) -> dict:
        """Zeros shaped like the policy's outputs (action 0 is valid in every supported space)."""
        n = len(rnn_states)
        names = ("actions", "log_prob_actions", "values", "action_logits")
        return {
            name: torch.zeros(
                (n,) + self._field_rows[name].shape[1:], dtype=self._field_rows[name].dtype, device=self.device
            )
            for name in names
        }

    def on_stop(self):
        self._requests = []
        self.stop_own_loop()
