"""FlashHead's transformer compiled ahead of time at start-up, for ZeroGPU, where torch.compile cannot serve.

On ZeroGPU there is no GPU at start-up, and each run draws in a worker forked from the app, so whatever a worker
compiled would be lost with it. `spaces` compiles ahead of time instead (AOTInductor): in one GPU call at start-up
the transformer's arguments are captured from a chunk of a grey face, the transformer is exported on them and
compiled; the compiled package and its weights come back to the app by pickle and replace the transformer's
forward there, and every run's worker, forked later, runs them. Before any visitor's run, a second GPU call, in a
worker forked after that replacement as a run's is, loads the package and checks its output against the
uncompiled transformer's on the captured arguments.

The check is what keeps a package that cannot run away from visitors: on an H200 with torch 2.11 and spaces 0.51.3
loading the package crashed the worker (a segmentation fault inside AOTInductor's package loader), in the worker
that compiled it and in a fresh one alike (bench/RESULTS.md, "ZeroGPU rehearsal"). There the check's worker died,
the transformer was put back and FlashHead ran uncompiled, where every run would otherwise have crashed.

One shape serves every call: a ZeroGPU worker draws one run at a time, so one session (batch 1), and first and
later chunks share one forward (the sampler pins motion frames with a mask and the audio windows have a fixed
length). A failed compile or check puts the transformer back as it was: the app starts and runs uncompiled, and
says so.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from avatar import zerogpu
from avatar.engines.flashhead.engine import FlashHeadEngine
from avatar.engines.flashhead.pipeline import FlashHeadPipeline
from avatar.engines.handles import EngineHandle, handle_of
from avatar.engines.spec import Progress

log = logging.getLogger(__name__)

CompiledTransformer = Callable[..., torch.Tensor]
# A chunk's transformer arguments, as captured (then, for the check, with the uncompiled output after them).
Captured = tuple[torch.Tensor, ...]

# The C++ compiler inductor builds the package's wrapper library with: g++, linking that library -Bsymbolic, so that
# it calls its own instances of std::regex's templates rather than those torch's libraries export, built by another
# compiler (loading the package crashed in std::regex without it, docs/AOTI_LOAD_CRASH.md).
SYMBOLIC_GXX = '#!/bin/sh\ncase " $* " in *" -shared "*) exec g++ "$@" -Wl,-Bsymbolic ;; *) exec g++ "$@" ;; esac\n'
# The compiled transformer's output on the captured arguments, against the uncompiled one's (relative L2 error):
# rounding stays well below this (one bfloat16 forward against float32: 0.8-2%, bench/RESULTS.md "parity"; float32
# compiled: 1e-7), while a wrong package is off by about 100%.
LARGEST_ERROR = 0.25


class AheadOfTimeError(RuntimeError):
    """The compiled transformer does not compute what the uncompiled one does."""


def captured_arguments(pipeline: FlashHeadPipeline, aoti: ModuleType) -> Captured:
    """What the sampler hands the transformer in a chunk of one session (a grey face, silence): the shapes and
    dtypes of every later call. The chunk stops there; the session drawn for it is thrown away."""
    state = pipeline.start(pipeline.grey_crop(), seed=0)
    with aoti.aoti_capture(pipeline, "denoiser") as call:
        pipeline.render([state], [pipeline.layout.silence()])
    return call.args


def relative_error(output: torch.Tensor, expected: torch.Tensor) -> float:
    """|output - expected| / |expected| over all elements (L2), in float32."""
    expected = expected.float()
    return float(torch.linalg.vector_norm(output.float() - expected) / torch.linalg.vector_norm(expected))


@torch.no_grad()
def compile_transformer(pipeline: FlashHeadPipeline, aoti: ModuleType) -> tuple[CompiledTransformer, Captured]:
    """The transformer exported on a captured chunk's arguments and compiled ahead of time by `aoti`, with those
    arguments and the uncompiled transformer's output on them, on the CPU, for `check_transformer`. Raises
    whatever export or compile raised."""
    args = captured_arguments(pipeline, aoti)
    expected = pipeline.transformer(*args)  # before export: it also caches the rotary tables as plain tensors
    exported = torch.export.export(pipeline.transformer, args)
    with tempfile.TemporaryDirectory() as folder:
        compiled = aoti.aoti_compile(exported, inductor_configs(Path(folder)))
    return compiled, tuple(tensor.cpu() for tensor in (*args, expected))


def inductor_configs(folder: Path) -> dict[str, object]:
    """Inductor's settings for the package (`spaces` adds those its packaging needs): its C++ compiler SYMBOLIC_GXX,
    written into `folder`."""
    compiler = folder / "g++-symbolic"
    compiler.write_text(SYMBOLIC_GXX)
    compiler.chmod(0o755)
    return {"cpp.cxx": (None, str(compiler))}


@torch.no_grad()
def check_transformer(pipeline: FlashHeadPipeline, captured: Captured) -> float:
    """The relative error of the (compiled) transformer's output on the captured arguments, against the uncompiled
    transformer's output on them. Raises AheadOfTimeError past LARGEST_ERROR."""
    *args, expected = (tensor.to(pipeline.device) for tensor in captured)
    error = relative_error(pipeline.transformer(*args), expected)
    if not error <= LARGEST_ERROR:
        raise AheadOfTimeError(f"the compiled transformer is off by {error:.1%} against the uncompiled one")
    return error


@zerogpu.gpu_task(duration=zerogpu.startup_booking)
def compile_on_gpu(
    engine: EngineHandle[FlashHeadEngine], aoti: ModuleType | None = None
) -> tuple[CompiledTransformer, Captured]:
    """`compile_transformer` in one GPU call (on ZeroGPU, in a worker; the result travels back by pickle).

    `aoti` is `spaces` unless given: its AoTI functions import only with a CUDA build of torch, so the tests hand
    in the same functions loaded on the CPU (in process: a module does not pickle).
    """
    return compile_transformer(engine.engine.pipeline, aoti or zerogpu.spaces)


@zerogpu.gpu_task(duration=zerogpu.startup_booking)
def check_on_gpu(engine: EngineHandle[FlashHeadEngine], captured: Captured) -> float:
    """`check_transformer` in one GPU call: on ZeroGPU in a worker of its own, forked after the compiled package
    replaced the transformer's forward, as every run's worker is."""
    return check_transformer(engine.engine.pipeline, captured)


def compile_ahead(
    engine: FlashHeadEngine, title: str, progress: Progress | None = None, aoti: ModuleType | None = None
) -> bool:
    """Compile the engine's transformer ahead of time in one GPU call, check it in another and run it compiled
    from then on. Call it before any run's worker forks: a worker runs what the app held when it forked.

    Whatever fails (export, compile, loading the package, the check, ZeroGPU's booking or its time) leaves the
    transformer as it was; one log line, naming the engine by its `title`, says so in plain words, and False
    is returned.
    """
    if progress is not None:
        progress(0.0, f"Compiling {title} ahead of time on the GPU (a few minutes, once)")
    started = time.perf_counter()
    try:
        compiled, captured = compile_on_gpu(handle_of(engine), aoti)
    except Exception as error:  # any failure: the engine still works uncompiled
        return _uncompiled(title, "compiling its transformer ahead of time failed", error)
    transformer = engine.pipeline.transformer
    # `aoti_apply` swaps the transformer's weights for empty ones; the originals are kept until the check passes.
    weights = transformer.state_dict(keep_vars=True)
    try:
        (aoti or zerogpu.spaces).aoti_apply(compiled, transformer)
        error = check_on_gpu(handle_of(engine), captured)
    except Exception as failure:
        _put_back(transformer, weights)
        what = "loading and checking its transformer compiled ahead of time on the GPU failed"
        return _uncompiled(title, what, failure)
    log.info(
        "%s: transformer compiled ahead of time in %.0f s (off by %.2g%% against uncompiled).",
        title,
        time.perf_counter() - started,
        100 * error,
    )
    return True


def _put_back(transformer: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Undo `aoti_apply`: the module's own forward and its original parameters and buffers again."""
    transformer.__dict__.pop("forward", None)
    for name, tensor in weights.items():
        owner, _, attribute = name.rpartition(".")
        setattr(transformer.get_submodule(owner), attribute, tensor)


def _uncompiled(title: str, what: str, error: Exception) -> bool:
    log.warning("%s will run uncompiled, and slower: %s (%s).", title, what, zerogpu.failure(error))
    return False
