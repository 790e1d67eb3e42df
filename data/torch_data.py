"""Torch datasets: tensors loaded once (on the device), patches cut there.

A task describes what a network sees and predicts with :class:`data.tasks.NetworkIO`:
input fields and the time offsets around a sample time ``t``, and the target offsets.
:class:`TaskTensors` holds them normalised (zero where missing) with their availability
masks, so that the inputs of any batch of sample times are a gather, never a copy of the
record. On a CUDA device the fields go up once through small pinned staging buffers with
asynchronous copies (:func:`upload`), and the few random indices of each batch with one
asynchronous copy (:func:`to_device`): cutting a batch never waits for the GPU to finish the
previous step. Channels come in blocks: each source's values at every input offset, then (if
asked) its availability at every offset. For interpolation this is the window of
observations then their masks (``2·window`` channels); inputs that run past the record's
ends see zeros; targets past them weigh zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from data.tasks import InterpolationTask, NetworkIO, Task

#: Bytes of one pinned staging buffer of :func:`upload` (two are used in turn).
STAGE_BYTES = 64 << 20


def upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` as a tensor on ``device``. On CUDA the copy goes through two pinned staging
    buffers of :data:`STAGE_BYTES` used in turn, each copy asynchronous: pinned host memory
    stays bounded whatever the field's size, and filling one buffer overlaps the transfer of
    the other. Elsewhere a plain copy (no copy at all on the CPU)."""
    src = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return src.to(device)
    out = torch.empty(src.shape, dtype=src.dtype, device=device)
    n = src.numel()
    if n == 0:
        return out
    flat_src, flat_out = src.reshape(-1), out.view(-1)
    step = max(1, STAGE_BYTES // src.element_size())
    stream = torch.cuda.current_stream(device)
    buffers = [torch.empty(min(step, n), dtype=src.dtype, pin_memory=True)
               for _ in range(min(2, -(-n // step)))]
    done: list[torch.cuda.Event | None] = [None] * len(buffers)
    for k, start in enumerate(range(0, n, step)):
        b, m = k % len(buffers), min(step, n - start)
        if done[b] is not None:
            done[b].synchronize()  # the copy out of this buffer has finished: refill it
        buffers[b][:m].copy_(flat_src[start:start + m])
        flat_out[start:start + m].copy_(buffers[b][:m], non_blocking=True)
        done[b] = torch.cuda.Event()
        done[b].record(stream)
    # The buffers return to PyTorch's pinned-memory cache, which reuses them only once the
    # copies recorded on the stream have completed.
    return out


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on ``device``: pinned and copied asynchronously to a CUDA device
    (a plain ``.to`` would wait for the GPU's queued work), unchanged on the CPU."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


@dataclass
class Normalisation:
    """``z = (x − mean) / std``, statistics from the training split's truth only."""

    mean: float
    std: float

    @classmethod
    def from_task(cls, task: Task) -> Normalisation:
        values = task.truth.isel(time=task.index("train")).values
        values = values[np.isfinite(values)]
        std = float(values.std()) if values.size else 1.0
        return cls(mean=float(values.mean()) if values.size else 0.0, std=std if std > 0 else 1.0)


class TaskTensors:
    """A task's inputs, targets and weights as tensors on ``device`` (see the module doc)."""

    def __init__(self, task: Task, io: NetworkIO, norm: Normalisation, device: torch.device):
        self.io = io
        self.device = device
        offsets = np.asarray(io.in_offsets, dtype=np.int64)
        self.pad_before = int(max(0, -offsets.min()))
        self.pad_after = int(max(0, offsets.max()))
        pad = ((self.pad_before, self.pad_after), (0, 0), (0, 0))
        blocks = []
        for k, (source, with_mask) in enumerate(zip(io.sources, io.masks, strict=True)):
            values = np.asarray(source.transpose("time", "lat", "lon").values, dtype=np.float32)
            seen = np.isfinite(values)
            offset, scale = io.scale_of(k) or (norm.mean, norm.std)
            z = np.where(seen, (values - offset) / scale, 0.0).astype(np.float32)
            blocks.append(upload(np.pad(z, pad), device))
            del z
            if with_mask:
                blocks.append(upload(np.pad(seen.astype(np.float32), pad), device))
        #: one (T + pads, H, W) tensor per channel block
        self.blocks = blocks
        #: per source with a clean field: (value block, mask block, clean field normalised
        #: like the source and zero where unusable, its usability, normalised noise)
        self.resamplable = []
        block = 0
        for k, with_mask in enumerate(io.masks):
            spec = io.clean[k] if io.clean else None
            if spec is not None and with_mask:
                field, noise = spec
                values = np.asarray(field.transpose("time", "lat", "lon").values, dtype=np.float32)
                usable = np.isfinite(values)
                offset, scale = io.scale_of(k) or (norm.mean, norm.std)
                z = np.where(usable, (values - offset) / scale, 0.0).astype(np.float32)
                self.resamplable.append((
                    block, block + 1, upload(np.pad(z, pad), device),
                    upload(np.pad(usable.astype(np.float32), pad), device),
                    noise / scale))
            block += 2 if with_mask else 1
        #: static channels (1, n_static, H, W), normalised like the truth, zero where NaN
        self.static = None
        if io.static:
            maps = np.stack([np.asarray(f.transpose("lat", "lon").values, dtype=np.float32)
                             for f in io.static])
            maps = np.where(np.isfinite(maps), (maps - norm.mean) / norm.std, 0.0)
            self.static = upload(maps.astype(np.float32)[None], device)
        truth = task.truth.values.astype(np.float32)
        ocean = task.mask.values.astype(bool)
        valid = np.isfinite(truth) & ocean[None]
        self.truth = upload(np.where(valid, (truth - norm.mean) / norm.std, 0.0)
                            .astype(np.float32), device)
        self.valid = upload(valid.astype(np.float32), device)
        self.ocean = upload(ocean.astype(np.float32), device)
        self.n_time = truth.shape[0]
        self._in = torch.as_tensor(offsets + self.pad_before, device=device)
        self._out = torch.as_tensor(np.asarray(io.out_offsets, dtype=np.int64), device=device)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.ocean.shape)

    @classmethod
    def shared(cls, task: Task, io: NetworkIO, norm: Normalisation,
               device: torch.device) -> TaskTensors:
        """The task's tensors for ``io``, ``norm`` and ``device``, built once and kept on the
        task (the latest set only). A long-lived worker keeps built tasks between its jobs
        (:mod:`backend.cache`), so a second run on the same data finds its normalised tensors
        already on the device, and a run's predict reuses what its fit uploaded.

        The key holds the identity of every field ``io`` reads (the task's own arrays, or a
        model's new ones such as an OI first guess, which then miss), the time offsets, the
        scales, ``norm`` and the device; the entry keeps ``io`` alive, so an identity is
        never reused by another array while the entry exists.
        """
        key = (tuple(id(f) for f in io.sources), tuple(io.masks), tuple(io.in_offsets),
               tuple(io.out_offsets), repr(io.scales), tuple(id(f) for f in io.static),
               tuple(None if c is None else (id(c[0]), float(c[1])) for c in io.clean or ()),
               id(task.truth), id(task.mask), float(norm.mean), float(norm.std), str(device))
        entry = task.__dict__.get("_shared_tensors")
        if entry is not None and entry[0] == key and entry[2].truth is not None:
            cls.reused += 1
            return entry[2]
        task.__dict__["_shared_tensors"] = None  # free the old set before building the new
        tensors = cls(task, io, norm, device)
        tensors.keep = True
        task.__dict__["_shared_tensors"] = (key, io, tensors)
        return tensors

    #: How many times :meth:`shared` returned tensors already built (for tests and benches).
    reused = 0
    #: True for tensors kept on their task (:meth:`shared`): :meth:`release` leaves them.
    keep = False

    def release(self) -> None:
        """Drop the tensors now (the object is unusable afterwards). Objects that keep a
        reference to this one in reference cycles (Lightning's trainer ↔ module ↔ loaders)
        then hold nothing large, without a full garbage collection. Tensors kept on their
        task (:meth:`shared`) are left as they are."""
        if self.keep:
            return
        self.blocks, self.resamplable, self.static = [], [], None
        self.truth = self.valid = self.ocean = None

    def inputs(self, t: torch.Tensor, i0: torch.Tensor | None = None, j0: torch.Tensor | None = None,
               size: tuple[int, int] | None = None) -> torch.Tensor:
        """Inputs ``(B, in_channels, h, w)`` for sample times ``t`` (B,), cropped at (i0, j0)."""
        steps = t[:, None] + self._in[None, :]  # positions in the padded time axis
        if size is None:
            parts = [block[steps] for block in self.blocks]
            if self.static is not None:
                parts.append(self.static.expand(len(t), -1, -1, -1))
            return torch.cat(parts, dim=1)
        # Gather the patches directly: never the whole domain of every sample.
        index = _patch_index(steps, i0, j0, size)
        parts = [block[index] for block in self.blocks]
        if self.static is not None:
            h, w = size
            ii = i0[:, None] + torch.arange(h, device=t.device)[None]
            jj = j0[:, None] + torch.arange(w, device=t.device)[None]
            static = self.static[0]
            parts.append(static[:, ii[:, :, None], jj[:, None, :]].transpose(0, 1))
        return torch.cat(parts, dim=1)

    def targets(self, t: torch.Tensor, i0=None, j0=None, size=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets and weights ``(B, out_channels, h, w)``; zero weight past the record."""
        steps = t[:, None] + self._out[None, :]
        inside = (steps >= 0) & (steps < self.n_time)
        steps = steps.clamp(0, self.n_time - 1)
        index = (steps,) if size is None else _patch_index(steps, i0, j0, size)
        y = self.truth[index]
        w = self.valid[index] * inside[:, :, None, None].to(self.valid.dtype)
        return y, w


class WindowTensors(TaskTensors):
    """The interpolation inputs with an explicit window (kept for scripts and tests)."""

    def __init__(self, task: InterpolationTask, norm: Normalisation, window: int, device: torch.device):
        super().__init__(task, task.network_io(window), norm, device)


def _patch_index(steps: torch.Tensor, i0: torch.Tensor, j0: torch.Tensor,
                 size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Advanced index of ``(B, S, h, w)`` patches: time ``steps[b, s]``, rows from ``i0[b]``,
    columns from ``j0[b]``; indexing a ``(T, H, W)`` tensor with it copies only the patches."""
    h, w = size
    ii = i0[:, None] + torch.arange(h, device=steps.device)[None]  # (B, h)
    jj = j0[:, None] + torch.arange(w, device=steps.device)[None]  # (B, w)
    return steps[:, :, None, None], ii[:, None, :, None], jj[:, None, None, :]


class RandomPatchBatches(Dataset):
    """``steps`` random batches of patches from the days ``days`` (one item = one batch).

    Each batch is drawn from a generator seeded by (seed, epoch, step) so runs are
    reproducible; use with ``DataLoader(batch_size=None)``. Random flips (and, for square
    patches, transposes) augment the data. ``rank`` is the process's rank in a distributed
    (DDP) training: each rank draws its own batches (seeded by (seed, epoch, step, rank));
    rank 0 draws exactly the batches of a single-process run.
    """

    def __init__(self, tensors: WindowTensors, days: np.ndarray, patch: int, batch_size: int,
                 steps: int, seed: int = 0, flips: bool = False, transposes: bool = False,
                 resample: float = 0.0, rank: int = 0):
        self.t = tensors
        self.days = torch.as_tensor(days, dtype=torch.long, device=tensors.device)
        H, W = tensors.shape
        self.size = (min(patch, H), min(patch, W))
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed
        self.flips = flips
        self.transposes = transposes and self.size[0] == self.size[1]
        self.resample = resample if tensors.resamplable else 0.0
        self.rank = int(rank)
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, k: int):
        if not 0 <= k < self.steps:
            raise IndexError(k)
        if k == 0:
            self.epoch += 1
        key = (self.seed, self.epoch, k) if self.rank == 0 else (self.seed, self.epoch, k, self.rank)
        g = torch.Generator().manual_seed(hash(key) % (2**63))
        H, W = self.t.shape
        n = self.batch_size
        # Drawn on the host (the same batches on every device), sent in one asynchronous copy.
        pick = torch.randint(len(self.days), (n,), generator=g)
        i0 = torch.randint(H - self.size[0] + 1, (n,), generator=g)
        j0 = torch.randint(W - self.size[1] + 1, (n,), generator=g)
        pick, i0, j0 = to_device(torch.stack([pick, i0, j0]), self.days.device).unbind(0)
        day = self.days[pick]
        x = self.t.inputs(day, i0, j0, self.size)
        y, w = self.t.targets(day, i0, j0, self.size)
        if self.resample > 0:
            x = self._resample(x, day, i0, j0, g)
        if self.flips:
            if bool(torch.rand((), generator=g) < 0.5):
                x, y, w = x.flip(-1), y.flip(-1), w.flip(-1)
            if bool(torch.rand((), generator=g) < 0.5):
                x, y, w = x.flip(-2), y.flip(-2), w.flip(-2)
        if self.transposes and bool(torch.rand((), generator=g) < 0.5):
            x, y, w = x.transpose(-1, -2), y.transpose(-1, -2), w.transpose(-1, -2)
        return x, y, w


    def _resample(self, x: torch.Tensor, day: torch.Tensor, i0: torch.Tensor, j0: torch.Tensor,
                  g: torch.Generator) -> torch.Tensor:
        """Replace, for a random ``self.resample`` share of the samples, the observations of
        each resamplable source by new ones: the sampling pattern (mask window) of another
        random step of the record at the same place, applied to the sample's own clean
        field (training truth only) with fresh noise. The same truth is then seen through
        many track patterns, which is what a network must generalise over."""
        n = len(day)
        pick = torch.rand(n, generator=g) < self.resample
        if not bool(pick.any()):
            return x
        t = self.t
        steps = len(t.io.in_offsets)
        other = to_device(torch.randint(t.n_time, (n,), generator=g), day.device)
        x = x.clone()
        rows = to_device(pick.nonzero()[:, 0], day.device)
        for b_val, b_mask, clean, usable, noise in t.resamplable:
            own = _patch_index(day[rows, None] + t._in[None, :], i0[rows], j0[rows], self.size)
            far = _patch_index(other[rows, None] + t._in[None, :], i0[rows], j0[rows], self.size)
            mask = t.blocks[b_mask][far] * usable[own]
            values = clean[own]
            if noise > 0:
                values = values + noise * to_device(torch.randn(values.shape, generator=g),
                                                    values.device)
            x[rows, b_val * steps:(b_val + 1) * steps] = values * mask
            x[rows, b_mask * steps:(b_mask + 1) * steps] = mask
        return x


class FullFieldBatches(Dataset):
    """Whole-domain batches of the days ``days`` in order (validation and prediction)."""

    def __init__(self, tensors: WindowTensors, days: np.ndarray, batch_size: int):
        self.t = tensors
        self.days = torch.as_tensor(days, dtype=torch.long, device=tensors.device)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return max(1, -(-len(self.days) // self.batch_size))

    def __getitem__(self, k: int):
        if not 0 <= k < len(self):
            raise IndexError(k)
        day = self.days[k * self.batch_size:(k + 1) * self.batch_size]
        x = self.t.inputs(day)
        y, w = self.t.targets(day)
        return x, y, w
