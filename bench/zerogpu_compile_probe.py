"""Where ahead-of-time compiling crashes, and whether inductor's portable caches can stand in for it on ZeroGPU.

Loading an AOTInductor package segfaults with torch 2.11 on the lent GPUs (docs/AOTI_LOAD_CRASH.md), in `spaces`'
worker and in a plain process alike. Each step here runs in a fresh Python process (faulthandler on, a timeout, its
own empty inductor cache), so a crash ends only that step, and each step's row (its result, or its exit status, last
lines and any backtrace) is added to --json as soon as it ends:

- aoti: the simplest package (no weights, one Triton kernel), compiled (`aoti_compile_and_package`) in one process
  and loaded (`aoti_load_package`) and run in another, as inductor links it and, side by side, with each of LINKS
  (the fixes docs/AOTI_LOAD_CRASH.md proposes); then a 2-block Lite transformer with the first fix that loaded,
  checked against its eager output. Where none loaded, the plain load runs again under cuda-gdb (a native
  backtrace, where a debugger exists).
- cache: FlashHead Lite's transformer compiled with torch.compile in one process with an empty cache, its
  artifacts saved (`torch.compiler.save_cache_artifacts`), then loaded in a second process with another empty
  cache (`torch.compiler.load_cache_artifacts`), there in a child forked as `spaces` forks its workers: the time to
  a compiled first output either way, the cache hits, and compiled against eager speed and output.

    python bench/zerogpu_compile_probe.py [--device cuda] [--tiny] [--steps aoti,cache] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULT = "RESULT "
JOURNAL_LOCK = threading.Lock()  # steps run side by side add their rows to one journal
# Blocks of the aoti step's Lite transformer (a 2-block one crashed on load before).
LADDER_LAYERS = 2


def build(model: str, device: str, tiny: bool, layers: int):
    """A seeded module ("pointwise": no weights, one Triton kernel; "lite": the Lite transformer) and arguments for
    it, on `device`."""
    import torch

    from avatar.engines.flashhead.transformer import WanModelAudioProject
    from bench.flashhead_speed import transformer_config

    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = transformer_config("lite", tiny)
    dim = config["dim"]
    side = 2 if tiny else 16
    tokens = 5 * side * side

    class Pointwise(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.gelu(x * 2 + 1, approximate="tanh")

    with torch.device(device):
        x = torch.randn(1, tokens, dim)
        if model == "pointwise":
            module, args = Pointwise(), (x,)
        else:
            module = WanModelAudioProject(**dict(config, num_layers=layers))
            module.fuse_qkv()
            latents = torch.randn(1, config["out_dim"], 5, side, side)
            args = (latents, torch.full((1,), 999.0), torch.randn(1, 33, 5, 12, 768), latents)
    module = module.to(dtype).eval().requires_grad_(False)
    return module, tuple(a.to(dtype) if a.is_floating_point() and a.dim() > 1 else a for a in args)


def relative_error(output, expected) -> float:
    import torch

    expected = expected.float()
    return float(torch.linalg.vector_norm(output.float() - expected) / torch.linalg.vector_norm(expected))


def report(**values: object) -> None:
    """The step's result, as the last line its parent reads."""
    print(RESULT + json.dumps(values), flush=True)


def step_aoti_compile(args: argparse.Namespace) -> None:
    import torch

    module, inputs = build(args.model, args.device, args.tiny, args.layers)
    started = time.perf_counter()
    with torch.no_grad():
        exported = torch.export.export(module, inputs)
        path = torch._inductor.aoti_compile_and_package(exported, package_path=args.package)
    report(compile_s=time.perf_counter() - started, package_mb=Path(path).stat().st_size / 2**20)


def step_aoti_load(args: argparse.Namespace) -> None:
    import torch

    module, inputs = build(args.model, args.device, args.tiny, args.layers)
    print("loading", args.package, flush=True)
    started = time.perf_counter()
    loaded = torch._inductor.aoti_load_package(args.package)
    print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
    with torch.no_grad():
        output = loaded(*inputs)
        error = relative_error(output, module(*inputs))
    report(load_s=time.perf_counter() - started, relative_error=error)


def compiled_lite(args: argparse.Namespace):
    """The Lite transformer, its eager output and step time, and its torch.compile'd callable (CUDA graphs on a GPU,
    as the engine runs it)."""
    import torch

    module, inputs = build("lite", args.device, args.tiny, args.layers)
    mode = "reduce-overhead" if args.device == "cuda" else None
    return module, inputs, torch.compile(module, dynamic=False, mode=mode)


def step_time(fn, device: str, runs: int = 10) -> float:
    import torch

    times = []
    for _ in range(runs):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def first_compiled_call(args: argparse.Namespace) -> dict:
    """Compile and run the Lite transformer: seconds to the first output, then compiled and eager step times, the
    compiled output's relative error, and inductor's cache counters."""
    import torch
    from torch._dynamo.utils import counters

    module, inputs, graph = compiled_lite(args)
    with torch.no_grad():
        started = time.perf_counter()
        output = graph(*inputs).clone()
        first_s = time.perf_counter() - started
        error = relative_error(output, module(*inputs))
        compiled_ms = step_time(lambda: graph(*inputs), args.device)
        eager_ms = step_time(lambda: module(*inputs), args.device)
    hits = {key: value for key, value in counters["inductor"].items() if "cache" in key}
    return {"first_s": first_s, "compiled_ms": compiled_ms, "eager_ms": eager_ms, "relative_error": error, **hits}


def step_cache_save(args: argparse.Namespace) -> None:
    import torch

    result = first_compiled_call(args)
    artifacts = torch.compiler.save_cache_artifacts()
    if artifacts is None:
        report(**result, saved=False)
        return
    Path(args.package).write_bytes(artifacts[0])
    report(**result, saved=True, artifacts_mb=len(artifacts[0]) / 2**20)


def step_cache_load(args: argparse.Namespace) -> None:
    """Load the saved artifacts, then compile, in a child forked from this process (as `spaces` forks a worker after
    the app loaded its models on the CPU)."""
    import torch

    blob = Path(args.package).read_bytes()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the worker
        os.close(read)
        started = time.perf_counter()
        torch.compiler.load_cache_artifacts(blob)
        loaded_s = time.perf_counter() - started
        result = first_compiled_call(args)
        os.write(write, json.dumps({"load_artifacts_s": loaded_s, **result}).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(child, 0)
    report(**(json.loads(text) if text else {}), worker_status=status)


STEPS = {
    "aoti-compile": step_aoti_compile,
    "aoti-load": step_aoti_load,
    "cache-save": step_cache_save,
    "cache-load": step_cache_load,
}


def run_step(
    args: argparse.Namespace, step: str, model: str, package: Path, cache: Path, cxx: Path | None = None, link: str = ""
) -> dict:
    """One step in a fresh process with its own empty inductor cache (and C++ compiler `cxx`, if given); its
    result, exit status and last lines. `link` names the package's link in the row."""
    layers = args.layers if step.startswith("cache") else LADDER_LAYERS
    command = [sys.executable, "-X", "faulthandler", __file__, "--step", step, "--model", model]
    command += ["--device", args.device, "--layers", str(layers), "--package", str(package)] + ["--tiny"] * args.tiny
    label = " ".join([step, model, *([f"linked {link}"] if link else [])])
    return run_command(command, cache, args.timeout, label, args.json, {"CXX": str(cxx)} if cxx else {})


def run_command(
    command: list[str], cache: Path, timeout: float, label: str, journal: Path, extra: dict[str, str] | None = None
) -> dict:
    """`command` with its own inductor and Triton caches: its result line, status and, if it gave none, its last
    lines and any backtrace; the row is printed and added to the `journal` JSON at once."""
    environment = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache), TRITON_CACHE_DIR=str(cache / "triton"))
    environment.update(extra or {})
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
        status, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        output = [part.decode(errors="replace") for part in (expired.stdout or b"", expired.stderr or b"")]
        status, text = "timeout", "".join(output)
    lines = text.splitlines()
    result = next((json.loads(line[len(RESULT) :]) for line in reversed(lines) if line.startswith(RESULT)), None)
    row = {"step": label, "status": status, "wall_s": round(time.perf_counter() - started, 1), "result": result}
    if result is None:
        row["last_lines"] = [line[:300] for line in lines[-25:]]
        # A debugger's backtrace, whole: its innermost frames come first, above what the last lines keep.
        row["backtrace"] = [line[:300] for line in lines if line.startswith("#")][:60]
    print(json.dumps(row), flush=True)
    # Every row as it ends: a probe cut short keeps what it found.
    with JOURNAL_LOCK:
        journal.write_text(json.dumps([*json.loads(journal.read_text()), row], indent=1))
    return row


def native_backtrace(args: argparse.Namespace, model: str, package: Path, cache: Path) -> dict | None:
    """The crashing load run again under cuda-gdb, which prints the native stack of the fault; None without it."""
    debugger = shutil.which("cuda-gdb") or shutil.which("gdb")
    if debugger is None:
        return None
    load = [sys.executable, __file__, "--step", "aoti-load", "--model", model, "--device", args.device]
    load += ["--layers", str(LADDER_LAYERS), "--package", str(package)] + ["--tiny"] * args.tiny
    command = [debugger, "-q", "-batch", "-ex", "set pagination off", "-ex", "run", "-ex", "bt 40", "--args", *load]
    return run_command(command, cache, args.timeout, f"aoti-load {model} under {Path(debugger).name}", args.json)


# Link flags tried on the wrapper library, each through a g++ that adds them to its shared-library link step alone:
# -Bsymbolic binds the library's own template instances (std::regex's) to itself, before torch's exported ones
# (docs/AOTI_LOAD_CRASH.md); a static libstdc++ gives it its own copy of the library those instances call into.
LINKS = {
    "bsymbolic": "-Wl,-Bsymbolic",
    "static-libstdc++": "-static-libstdc++ -static-libgcc",
    "bsymbolic+static-libstdc++": "-Wl,-Bsymbolic -static-libstdc++ -static-libgcc",
}


def linking_compiler(work: Path, name: str, flags: str) -> Path:
    """A g++ that links shared libraries with `flags` (the package's wrapper library), and compiles as g++ does."""
    script = work / f"g++-{name}"
    script.write_text(f'#!/bin/sh\ncase " $* " in *" -shared "*) exec g++ "$@" {flags} ;; *) exec g++ "$@" ;; esac\n')
    script.chmod(0o755)
    return script


def compile_and_load(args: argparse.Namespace, model: str, work: Path, link: str | None = None) -> dict:
    """`model` compiled (linked as LINKS[link] says, if given) and loaded in two fresh processes: the load's row."""
    name = f"{model}-{link}" if link else model
    package, cxx = work / f"{name}.pt2", linking_compiler(work, link, LINKS[link]) if link else None
    compiled_row = run_step(args, "aoti-compile", model, package, work / f"cache-{name}", cxx, link or "")
    if compiled_row["result"] is None:
        return compiled_row
    return run_step(args, "aoti-load", model, package, work / f"cache-{name}-load", link=link or "")


def probe_aoti(args: argparse.Namespace, work: Path) -> None:
    """The simplest package built as inductor builds it and with each of LINKS, side by side (each compile is
    mostly one process's C++ build): which ones load. Then the 2-block Lite transformer with the first link that
    loaded, checked against its eager output; where none loaded, where the plain load crashes (a native backtrace).
    """
    links = [None, *LINKS]
    with ThreadPoolExecutor(len(links)) as pool:
        rows = dict(
            zip(links, pool.map(lambda link: compile_and_load(args, "pointwise", work, link), links), strict=True)
        )
    working = [link for link, row in rows.items() if link and row["result"] is not None]
    if working:
        compile_and_load(args, "lite", work, working[0])
    elif rows[None]["result"] is None:
        native_backtrace(args, "pointwise", work / "pointwise.pt2", work / "cache-pointwise-gdb")


def probe_cache(args: argparse.Namespace, work: Path) -> None:
    """Compile with an empty cache and save the artifacts; if saved, load them in a fresh process and compile again."""
    blob = work / "artifacts.bin"
    if (run_step(args, "cache-save", "lite", blob, work / "cache-save")["result"] or {}).get("saved"):
        run_step(args, "cache-load", "lite", blob, work / "cache-load")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models: checks the script, not the GPU")
    parser.add_argument("--layers", type=int, default=30, help="blocks of the Lite transformer of the cache step")
    parser.add_argument("--steps", default="aoti,cache")
    parser.add_argument("--timeout", type=float, default=240, help="seconds one step may take")
    parser.add_argument("--json", type=Path, default=Path("bench/out/zerogpu_compile_probe.json"))
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="lite", help=argparse.SUPPRESS)
    parser.add_argument("--package", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        STEPS[args.step](args)
        return
    work = Path(tempfile.mkdtemp(prefix="compile-probe-"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text("[]")
    for name in args.steps.split(","):
        (probe_aoti if name == "aoti" else probe_cache)(args, work)


if __name__ == "__main__":
    main()
