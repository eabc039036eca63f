"""Follow, in a CPU run, which tensors would stay on the host if the run's device were a GPU.

With :func:`spikeloom_torch.devices.host_paths` answering False the backend takes the paths it
takes on CUDA, but every tensor still lives on the CPU, so an operation that mixes a host tensor
with a device tensor, or reads a device tensor into NumPy, goes unnoticed. :class:`DeviceSpy`
marks the tensors that would be on the host (made by ``torch.from_numpy``, ``torch.as_tensor`` /
``torch.tensor`` without ``device=``, ``Tensor.cpu``, and whatever is computed from host tensors
only) and records, as :attr:`DeviceSpy.problems`:

- an operation with a host tensor of one or more dimensions among its arguments and a device
  tensor (CUDA accepts only 0-d CPU tensors there), other than indexing and copies;
- ``Tensor.numpy`` (or ``numpy.asarray``) of a device tensor.

``Tensor.to(device)`` and ``Tensor.cuda()`` make a device tensor.
"""

from __future__ import annotations

import traceback
import weakref
from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

#: operations that may take a host tensor next to device tensors (an index, a copy's source)
MIXING_ALLOWED = {"__getitem__", "__setitem__", "copy_", "to", "__get__", "__set__"}
#: factories that make a host tensor unless given ``device=``
FACTORIES = {torch.as_tensor, torch.tensor}


class _Marks:
    """Tensors marked by identity (tensors define ``==`` element-wise, so no WeakSet)."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref] = {}

    def add(self, t: torch.Tensor) -> None:
        key = id(t)
        self._refs[key] = weakref.ref(t, lambda _ref, key=key: self._refs.pop(key, None))

    def discard(self, t: torch.Tensor) -> None:
        self._refs.pop(id(t), None)

    def __contains__(self, t: torch.Tensor) -> bool:
        ref = self._refs.get(id(t))
        return ref is not None and ref() is t


def _where() -> str:
    """The innermost frame of the backend that led here."""
    frames = [f for f in traceback.extract_stack()[:-3] if "spikeloom_torch" in f.filename]
    if not frames:
        return "outside spikeloom_torch"
    f = frames[-1]
    return f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}: {f.line}"


class DeviceSpy(TorchFunctionMode):
    """A torch function mode (``with DeviceSpy() as spy: ...``); ``torch.from_numpy`` is wrapped
    while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.host = _Marks()
        self.problems: Counter[str] = Counter()
        self._from_numpy = None

    def __enter__(self):
        self._from_numpy = torch.from_numpy
        original = self._from_numpy

        def from_numpy(array):
            t = original(array)
            self.host.add(t)
            return t

        torch.from_numpy = from_numpy
        return super().__enter__()

    def __exit__(self, *exc):
        torch.from_numpy = self._from_numpy
        return super().__exit__(*exc)

    def _moved(self, source, out, host: bool):
        """``out``, the result of moving ``source`` to the host (``host``) or to the device. On
        the CPU a move returns its own argument, which on a GPU would stay where it was: then a
        copy is returned instead, so that each side keeps its own mark."""
        if out is source and (source in self.host) != host:
            out = out.clone()
        (self.host.add if host else self.host.discard)(out)
        return out

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        if func in (torch.Tensor.numpy, torch.Tensor.__array__):
            if tensors and tensors[0] not in self.host:
                self.problems[f"numpy of a device tensor at {_where()}"] += 1
        elif func is torch.Tensor.cpu or (func in FACTORIES and kwargs.get("device") is None):
            out = self._moved(args[0] if tensors else None, out, host=True)
        elif func in FACTORIES or func is torch.Tensor.cuda:
            out = self._moved(args[0] if tensors else None, out, host=False)
        elif func is torch.Tensor.to:
            target = kwargs.get("device", args[1] if len(args) > 1 else None)
            if isinstance(target, (str, torch.device)):
                out = self._moved(args[0], out, host=False)  # moved to the run's device
            elif args[0] in self.host:
                self.host.add(out)  # a change of dtype only
        elif tensors:
            on_host = [t in self.host for t in tensors]
            if all(on_host):
                for o in tree_flatten(out)[0]:
                    if isinstance(o, torch.Tensor):
                        self.host.add(o)
            elif name not in MIXING_ALLOWED and any(h and t.ndim > 0 for t, h in zip(tensors, on_host, strict=True)):
                self.problems[f"host tensor in {name} with device tensors at {_where()}"] += 1
        return out
