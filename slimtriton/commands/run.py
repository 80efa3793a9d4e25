"""slimtriton run NET: build a net, load or initialize weights, run it, print top-5.

Input: `--input X.npy` (an NHWC float array), `--image PHOTO.jpg` (eval preprocessing of
the net), or a random image (`--seed`). `--out OUT.npz` writes `output` and every end
point under its TF-Slim key. The triton backend compiles the net first (tqdm progress).
"""
from __future__ import annotations

import time

# Nets whose output is an embedding, not class scores (FaceNet's; num_classes is its size).
EMBEDDING_NETS = ("inception_resnet_v1",)


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run a net (triton, reference or torch backend)",
                                   description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("net", metavar="NET", help="a name from `slimtriton nets`")
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help=".npz, .safetensors or TF checkpoint (default: initialized with --seed)")
    parser.add_argument("--input", metavar="X.npy", default=None)
    parser.add_argument("--image", metavar="PHOTO", default=None)
    parser.add_argument("--preprocessing", default=None, choices=("inception", "vgg", "cifarnet", "lenet"),
                        help="eval preprocessing of --image (default: TF-Slim's preprocessing_factory "
                             "choice for NET; the MobileNet v1 multiplier variants use mobilenet_v1's)")
    parser.add_argument("--labels", metavar="FILE", default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--backend", default="triton", choices=("triton", "reference", "torch"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", metavar="OUT.npz", default=None)
    parser.set_defaults(func=main)


def main(args) -> int:
    import numpy as np
    import slimtriton as st
    from slimtriton.preprocessing import format_top_k, preprocess_for, top_k
    from ._netbuild import build_net, main_output

    if args.image and args.input:
        raise ValueError("give --image or --input, not both")
    x = None
    image_size = args.image_size
    if args.input:
        x = np.load(args.input).astype(np.float32)
        if x.ndim == 3:
            x = x[None]
        image_size = image_size or x.shape[1]
    elif args.image:
        x = preprocess_for(args.net, args.image, image_size, _preprocessing_name(args))
        image_size = x.shape[1]
    if x is not None and args.batch != 1 and args.batch != x.shape[0]:
        raise ValueError(f"--batch {args.batch} does not match the {'--input' if args.input else '--image'} "
                         f"batch of {x.shape[0]}")
    batch = x.shape[0] if x is not None else args.batch
    g, images, logits, end_points = build_net(args.net, image_size, batch, args.num_classes)
    if x is None:
        x = np.random.default_rng(args.seed).uniform(-1, 1, images.shape).astype(np.float32)
    if tuple(x.shape) != tuple(images.shape):
        raise ValueError(f"--input shape {list(x.shape)} does not match the net's input {list(images.shape)}")
    weights = st.load_weights(args.weights) if args.weights else st.init_weights(g, seed=args.seed)
    if args.weights and not set(weights) & set(g.variables):
        raise ValueError(f"{args.weights}: none of its {len(weights)} variables is a variable of {args.net} "
                         f"(its scopes: {_top_scopes(weights)}; the net's: {_top_scopes(g.variables)}); "
                         f"are these the weights of another net?")
    output = main_output(logits, end_points)
    fetches = {"output": output, **{k: v for k, v in end_points.items()}} if args.out else {"output": output}
    t0 = time.perf_counter()
    options = {} if args.backend == "reference" else {"dtype": args.dtype}
    sess = st.Session(g, weights, backend=args.backend, **options)
    result = sess.run(fetches, {images: x})
    t1 = time.perf_counter()
    if args.backend == "triton":  # the first run compiled; time a second one
        result = sess.run(fetches, {images: x})
    t2 = time.perf_counter()
    probs = result["output"]
    # What the output is: the predictions end point, else (VGG, AlexNet: TF-Slim gives them no
    # softmax) the logits, ranked by their softmax; FaceNet's net outputs a face embedding.
    kind = "embedding" if args.net in EMBEDDING_NETS else "predictions" if output is not logits else "logits"
    dtype = "float64" if args.backend == "reference" else args.dtype  # the reference computes in float64
    print(f"{args.net} on {args.backend} ({dtype}): input {list(x.shape)} -> output {list(probs.shape)}")
    if args.backend == "triton":
        print(f"compile + first run {t1 - t0:.2f} s, run {t2 - t1:.3f} s")
    else:
        print(f"run {t1 - t0:.3f} s")
    for i in range(probs.shape[0]):
        row = probs[i].reshape(-1).astype(np.float64)
        if kind == "embedding":
            print(f"image {i}: {row.size}-d embedding, L2 norm {np.linalg.norm(row):.4f}")
            continue
        if kind == "logits":
            row = np.exp(row - row.max())
            row /= row.sum()
        print(f"image {i}:" + (" (softmax of the logits)" if kind == "logits" else ""))
        print(format_top_k(top_k(row, min(5, row.size), labels=args.labels)))
    if args.out:
        np.savez(args.out, **result)
        print(f"wrote {args.out} ({len(result)} arrays)")
    return 0


def _top_scopes(names, limit: int = 3) -> str:
    scopes = sorted({name.split("/", 1)[0] + "/" for name in names})
    return ", ".join(scopes[:limit]) + (f" (+{len(scopes) - limit} more)" if len(scopes) > limit else "")


def _preprocessing_name(args) -> str:
    """--preprocessing, else preprocessing_factory's entry for the net (or for the net it is a
    width variant of: mobilenet_v1_075 is mobilenet_v1 with a depth multiplier)."""
    from slimtriton.preprocessing import PREPROCESSING_BY_NET
    if args.preprocessing:
        return args.preprocessing
    family = args.net.rsplit("_", 1)[0] if args.net.startswith("mobilenet_v1_") else args.net
    if family not in PREPROCESSING_BY_NET:
        raise ValueError(f"TF-Slim's preprocessing_factory has no preprocessing for {args.net}; "
                         f"choose one with --preprocessing (inception, vgg, cifarnet, lenet)")
    return PREPROCESSING_BY_NET[family]
