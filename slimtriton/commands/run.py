"""slimtriton run NET: build a net, load or initialize weights, run it once, print top-5.

Input: `--input X.npy` (a float NHWC array [N, H, W, 3] or [H, W, 3], already preprocessed:
used as given), `--image PHOTO.jpg` (the net's eval preprocessing, or `--preprocessing`), or
a random uniform(-1, 1) image (`--seed`). Without `--weights` the weights are random
(`init_weights(seed)`) and the run says so. `--out OUT.npz` writes `output` and every end
point under its TF-Slim key. `--dtype` is the compute dtype of the triton and torch backends;
the reference backend always computes in float64 and takes no `--dtype`.

The triton backend compiles the net, then runs it once (a per-kernel progress bar on stderr
when a run takes more than a second, as in the Triton interpreter). `--iterations N` then
times N more runs after `--warmup W` untimed ones and prints a latency summary (median, p90,
min, max, mean in ms; on a GPU the input stays on the device and each run is synchronized).
Flags and files (--out's directory, --labels' length, --input's dtype and layout) are
checked before anything long runs.

`--engine DIR` runs an engine written by `slimtriton compile` (st.load_compiled: no fusion
pass, the saved parameters); NET may be omitted (the engine names its net), and the input is
--input, --image (the engine's net's preprocessing at its image size) or a random image of
the engine's input shape. Flags that define the net or its weights (--weights, --backend,
--dtype, --num-classes, --image-size, --batch) belong to `slimtriton compile` then; an engine
compiled with --max-batch N takes --batch B (the random image's batch, any B <= N) and an
--input of any batch <= N.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import slimtriton as st

from ..ir.node import COMPUTE_DTYPES
from ..nets.build import EMBEDDING_NETS, build_net, main_output
from ..preprocessing import format_top_k, preprocess_for, preprocessing_name, top_k
from ._netbuild import check_at_least, load_or_init_weights
from .errors import UsageError

PROGRESS_AFTER_S = 1.0  # a run shorter than this shows no progress bar


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run a net (triton, reference or torch backend)",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("net", metavar="NET", nargs="?", default=None,
                        help="a name from `slimtriton nets` (optional with --engine)")
    parser.add_argument("--engine", metavar="DIR", default=None,
                        help="run an engine written by `slimtriton compile` instead of compiling NET")
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help=".npz, .safetensors or TF checkpoint (default: random, initialized with --seed)")
    parser.add_argument("--input", metavar="X.npy", default=None,
                        help="a float NHWC array [N, H, W, 3] or [H, W, 3], used as given (no preprocessing)")
    parser.add_argument("--image", metavar="PHOTO", default=None, help="a photo, preprocessed for NET")
    parser.add_argument("--preprocessing", default=None, choices=("inception", "vgg", "cifarnet", "lenet"),
                        help="eval preprocessing of --image (default: TF-Slim's preprocessing_factory "
                             "choice for NET; the MobileNet v1 multiplier variants use mobilenet_v1's)")
    parser.add_argument("--labels", metavar="FILE", default=None,
                        help="one label per class (or TF-Slim's labels.txt `N:label` lines)")
    parser.add_argument("--image-size", type=int, default=None, metavar="SIZE",
                        help="input height/width (default: the net's; `slimtriton nets` lists the minimum)")
    parser.add_argument("--batch", type=int, default=None, metavar="N", help="batch of the random image (default 1)")
    parser.add_argument("--num-classes", type=int, default=None, metavar="N",
                        help="logits width (default: the net's checkpoint)")
    parser.add_argument("--dtype", default=None, choices=COMPUTE_DTYPES,
                        help="compute dtype of the triton and torch backends (default float32)")
    parser.add_argument("--backend", default="triton", choices=("triton", "reference", "torch"))
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the random weights and image (default 0)")
    parser.add_argument("--out", metavar="OUT.npz", default=None, help="write the output and every end point")
    parser.add_argument("--iterations", type=int, default=None, metavar="N",
                        help="after the first run, time N more runs and print a latency summary")
    parser.add_argument("--warmup", type=int, default=None, metavar="W",
                        help="untimed runs before the --iterations (default 1)")
    parser.set_defaults(func=main)


def check_flags(args) -> None:
    """Every flag error that needs no file and no net, before anything is built."""
    check_at_least(args, 1, "--image-size", "--batch", "--num-classes", "--iterations")
    check_at_least(args, 0, "--seed", "--warmup")
    if args.image and args.input:
        raise UsageError("give --image or --input, not both")
    if args.preprocessing and not args.image:
        raise UsageError("--preprocessing applies to --image only (--input is used as given, "
                         "already preprocessed)" if args.input else "--preprocessing applies to --image only")
    if args.backend == "reference" and args.dtype is not None:
        raise UsageError(f"--dtype {args.dtype}: the reference backend always computes in float64; "
                         f"--dtype applies to the triton and torch backends")
    if args.warmup is not None and args.iterations is None:
        raise UsageError("--warmup applies to --iterations N only")
    if args.out is not None:
        check_out_path(args.out)
    if args.image and os.path.isdir(args.image):
        raise UsageError(f"--image {args.image} is a directory; give one image file")
    if args.input and os.path.isdir(args.input):
        raise UsageError(f"--input {args.input} is a directory; give one .npy file")


def check_out_path(path: str) -> None:
    """--out must end in .npz (np.savez would add it) and its directory must be writable."""
    if not path.endswith(".npz"):
        raise UsageError(f"--out {path}: the file is written as .npz; give a name ending in .npz")
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--out {path} is a directory")
    if not os.path.isdir(directory):
        raise UsageError(f"--out {path}: {directory} " + ("is not a directory" if os.path.exists(directory)
                                                           else "does not exist"))
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"--out {path}: not writable (permission denied)")


def load_input(path: str, image_size: int | None):
    """--input as float32 [N, H, W, 3], with errors that name the flag, the file and the layout."""
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--input {path} does not exist") from None
    except (ValueError, OSError) as err:
        raise UsageError(f"--input {path}: not a .npy array ({err})") from None
    if not isinstance(x, np.ndarray):
        raise UsageError(f"--input {path}: expected one .npy array, got a {type(x).__name__} (.npz archive?)")
    if x.dtype.kind != "f":
        raise UsageError(f"--input {path} holds {x.dtype} values; the net takes float images, already "
                         f"preprocessed (as st.compile and Session do: they reject {x.dtype} too); "
                         f"convert it, or pass the photo with --image to preprocess it")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        nchw = x.ndim == 4 and x.shape[1] == 3
        hint = (f"; it looks like NCHW: transpose it with x.transpose(0, 2, 3, 1)" if nchw else "")
        raise UsageError(f"--input {path} has shape {list(x.shape)}; the net takes NHWC images "
                         f"[N, H, W, 3] (or one [H, W, 3]){hint}")
    if x.shape[1] != x.shape[2]:
        raise UsageError(f"--input {path} has shape {list(x.shape)}; the nets take square images (H == W)")
    if image_size is not None and image_size != x.shape[1]:
        raise UsageError(f"--image-size {image_size} does not match --input {path} of shape {list(x.shape)}")
    return x.astype(np.float32)


def _check_labels(path: str, num_outputs: int, kind: str) -> None:
    """--labels is read and its length checked against the net's outputs before running."""
    if kind == "embedding":
        raise UsageError("--labels: this net outputs a face embedding, not class scores")
    if not os.path.isfile(path):
        raise UsageError(f"--labels {path} " + ("is a directory" if os.path.isdir(path) else "does not exist"))
    try:
        top_k(np.zeros(num_outputs), 1, labels=path)
    except ValueError as err:
        raise UsageError(f"--labels {path}: {str(err).removeprefix('top_k: ')}") from None


def main(args) -> int:

    if args.engine is not None:
        return run_engine(args)
    if args.net is None:
        raise UsageError("give a NET (see `slimtriton nets`), or --engine DIR")
    check_flags(args)
    x = None
    image_size = args.image_size
    if args.input:
        x = load_input(args.input, image_size)
        image_size = x.shape[1]
    elif args.image:
        x = preprocess_for(args.net, args.image, image_size, preprocessing_name(args.net, args.preprocessing))
        image_size = x.shape[1]
    if x is not None and args.batch is not None and args.batch != x.shape[0]:
        raise UsageError(f"--batch {args.batch} does not match the {'--input' if args.input else '--image'} "
                         f"batch of {x.shape[0]}")
    batch = x.shape[0] if x is not None else (args.batch or 1)
    g, images, logits, end_points = build_net(args.net, image_size, batch, args.num_classes)
    output = main_output(logits, end_points)
    # What the output is: the predictions end point, else (VGG, AlexNet: TF-Slim gives them no
    # softmax) the logits, ranked by their softmax; FaceNet's net outputs a face embedding.
    kind = "embedding" if args.net in EMBEDDING_NETS else "predictions" if output is not logits else "logits"
    if args.labels:
        _check_labels(args.labels, int(np.prod(output.shape[1:])), kind)
    if x is None:
        x = np.random.default_rng(args.seed).uniform(-1, 1, images.shape).astype(np.float32)
    if tuple(x.shape) != tuple(images.shape):
        raise UsageError(f"--input shape {list(x.shape)} does not match the net's input {list(images.shape)}")
    weights = load_or_init_weights(g, args.weights, args.net, args.seed)
    fetches = {"output": output, **end_points} if args.out else {"output": output}
    dtype = "float64" if args.backend == "reference" else (args.dtype or "float32")
    options = {} if args.backend == "reference" else {"dtype": dtype}
    sess = st.Session(g, weights, backend=args.backend, **options)  # checks the weights (one error)

    if args.weights:
        print(f"weights: {args.weights} ({len(weights)} tensors)")
    else:
        print(f"weights: RANDOM (init_weights seed {args.seed}; no --weights given): "
              f"the scores below mean nothing")
    if args.backend == "triton":
        t0 = time.perf_counter()
        model = st.compile(g, fetches, weights, dtype=dtype)
        t1 = time.perf_counter()
        print(f"compiled {len(model.kernels)} kernels in {t1 - t0:.2f} s "
              f"({'GPU' if model.device.type == 'cuda' else 'Triton interpreter on the CPU'})", flush=True)
        result = _run_with_progress(model, x)
        t2 = time.perf_counter()
        first = f"first run {t2 - t1:.3f} s"
        call = _timed_call(model, x)
    else:
        t1 = time.perf_counter()
        result = sess.run(fetches, {images: x})
        first = f"run {time.perf_counter() - t1:.3f} s"
        call = lambda: sess.run(fetches, {images: x})  # noqa: E731
    probs = result["output"]
    print(f"{args.net} on {args.backend} ({dtype}): input {list(x.shape)} -> output {list(probs.shape)}; {first}")
    if args.iterations:
        print(latency_summary(call, args.iterations, 1 if args.warmup is None else args.warmup, batch))
    print_scores(probs, kind, args.labels)
    if args.out:
        np.savez(args.out, **result)
        print(f"wrote {args.out} ({len(result)} arrays)")
    return 0


def print_scores(probs, kind: str, labels) -> None:
    """Per image: the top-5 classes (softmax of logits when `kind` is 'logits') or the
    embedding's norm."""
    for i in range(probs.shape[0]):
        row = probs[i].reshape(-1).astype(np.float64)
        if kind == "embedding":
            print(f"image {i}: {row.size}-d embedding, L2 norm {np.linalg.norm(row):.4f}")
            continue
        if kind == "logits":
            row = np.exp(row - row.max())
            row /= row.sum()
        print(f"image {i}:" + (" (softmax of the logits)" if kind == "logits" else ""))
        print(format_top_k(top_k(row, min(5, row.size), labels=labels)))


ENGINE_EXCLUDES = ("weights", "num_classes", "image_size", "batch", "dtype")


def run_engine(args) -> int:
    """`run --engine DIR`: load the engine, run it once on the input, print the scores."""
    from slimtriton.engine import read_manifest  # lazy: when the command runs

    manifest = read_manifest(args.engine, verify_files=False)  # load_compiled hashes the files
    dynamic = "batch_sizes" in manifest  # a dynamic-batch engine takes --batch (any batch in its range)
    excluded = [name for name in ENGINE_EXCLUDES if not (dynamic and name == "batch")]
    given = [f"--{name.replace('_', '-')}" for name in excluded if getattr(args, name) is not None]
    if args.backend != "triton":
        given.append(f"--backend {args.backend}")
    if given:
        raise UsageError(f"{', '.join(given)}: an engine's net, weights, dtype and input shape were fixed by "
                         f"`slimtriton compile`; run --engine takes only the input and output flags"
                         + (" (and --batch for a dynamic-batch engine)" if dynamic else ""))
    check_flags(args)
    meta = manifest.get("meta", {})
    net = meta.get("net")
    if args.net is not None and net is not None and args.net != net:
        raise UsageError(f"NET {args.net}: the engine {args.engine} was compiled from {net}")
    args.net = args.net or net
    if dynamic and args.batch is not None and args.batch > manifest["batch_range"][1]:
        raise UsageError(f"--batch {args.batch}: the engine {args.engine} takes batches 1..{manifest['batch_range'][1]} "
                         f"(batch buckets {manifest['batch_sizes']})")
    t0 = time.perf_counter()
    model = st.load_compiled(args.engine)
    t1 = time.perf_counter()
    (shape,) = [tuple(i["shape"]) for i in manifest["inputs"]]  # [None, ...] for a dynamic-batch engine
    buckets = f", any batch 1..{model.max_batch} (buckets {model.batch_sizes})" if model.plans else ""
    print(f"loaded engine {args.engine} ({net or 'net not recorded'}: {len(model.kernels)} kernels, "
          f"{model.dtype}, input {list(shape)}{buckets}) in {t1 - t0:.2f} s", flush=True)
    if args.input:
        x = load_input(args.input, shape[1])
    elif args.image:
        if args.net is None:
            raise UsageError("--image needs the engine's net to preprocess it; give NET")
        x = preprocess_for(args.net, args.image, shape[1], preprocessing_name(args.net, args.preprocessing))
    else:
        random_shape = ((args.batch or 1), *shape[1:]) if dynamic else shape
        x = np.random.default_rng(args.seed).uniform(-1, 1, random_shape).astype(np.float32)
    if dynamic and args.batch is not None and x.shape[0] != args.batch:
        raise UsageError(f"--batch {args.batch} does not match the {'--input' if args.input else '--image'} "
                         f"batch of {x.shape[0]}")
    if dynamic and not 1 <= x.shape[0] <= model.max_batch:
        raise UsageError(f"input batch {x.shape[0]}: the engine {args.engine} takes batches 1..{model.max_batch}")
    if tuple(x.shape[1 if dynamic else 0:]) != shape[1 if dynamic else 0:]:
        raise UsageError(f"input shape {list(x.shape)} does not match the engine's input {list(shape)}")
    kind = "embedding" if args.net in EMBEDDING_NETS else meta.get("output", "predictions")
    if args.labels:  # checked before the run, as `run NET` does
        _check_labels(args.labels, int(np.prod(model.plan.outputs[0].shape[1:])), kind)
    probs = _run_with_progress(model, x)
    print(f"engine run: input {list(x.shape)} -> output {list(probs.shape)}; first run "
          f"{time.perf_counter() - t1:.3f} s")
    if args.iterations:
        print(latency_summary(_timed_call(model, x), args.iterations, 1 if args.warmup is None else args.warmup,
                              x.shape[0]))
    print_scores(probs, kind, args.labels)
    if args.out:
        np.savez(args.out, output=probs)
        print(f"wrote {args.out} (1 array)")
    return 0


def _run_with_progress(model, x):
    """One call of the compiled model; in the interpreter, a tqdm bar over the plan's kernel
    steps (shown once the run has taken PROGRESS_AFTER_S), fed by the model's after_step
    hook. On a GPU the model is called as is (CUDA graph; a run takes milliseconds)."""
    if model.device.type == "cuda":
        return model(x)
    try:
        from tqdm.auto import tqdm  # lazy: optional here (no bar without it)
    except ImportError:
        return model(x)
    bar = tqdm(total=len(model.kernels), desc="running", unit="kernel", delay=PROGRESS_AFTER_S, leave=False)

    def after_step(step):
        if step.launches_kernel:
            tail = "/".join(step.node.name.split("/")[-3:])  # the layer's end: where the run is
            bar.set_postfix_str(f"{step.kernel} {tail}", refresh=False)
            bar.update(1)

    try:
        return model.call(x, after_step=after_step)
    finally:
        bar.close()


def _timed_call(model, x):
    """A call of the compiled model on a device-resident input, synchronized: what the
    latency summary times (the input copy is not timed; on the CPU the output stays a tensor)."""
    import torch  # lazy: when the command runs
    inp = torch.from_numpy(x).to(model.device)

    def call():
        out = model(inp)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        return out
    return call


def latency_summary(call, iterations: int, warmup: int, batch: int = 1) -> str:
    """trtexec-style: W untimed warm-up calls, then N timed calls; median/p90/min/max/mean ms
    and the throughput at the median (images per second)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    ms = np.asarray(times)
    return (f"latency: {warmup} warm-up, {iterations} iterations: median {np.median(ms):.3f} ms, "
            f"p90 {np.percentile(ms, 90):.3f} ms, min {ms.min():.3f} ms, max {ms.max():.3f} ms, "
            f"mean {ms.mean():.3f} ms; throughput {batch * 1e3 / np.median(ms):.2f} images/s (batch {batch})")
