"""The subcommands: fit, predict, score, info, make-blobs and the legacy ``kmeans``.

Each is a class with ``help``, ``add_arguments(parser)`` and ``run(args) -> int``. Every
output is checked before any work starts; parameter errors are usage errors (exit 2), found
from the input's metadata before the first pass.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import ClassVar

import numpy as np

from bigclust import _persist
from bigclust._state import staging_directory
from bigclust.cli._options import add_estimator_arguments, estimator_from_args, supports
from bigclust.cli._outputs import (
    UsageError,
    check_distinct,
    check_output,
    parse_storage_options,
    write_npy,
    write_zarr_outputs,
)
from bigclust.cli._scheduler import add_scheduler_arguments, connect
from bigclust.datasets import CODECS, make_blobs, write_zarr

#: Threads that ``make-blobs`` uses by default: enough to keep a disk busy (each generates
#: about 0.2 GB/s), few enough that peak RSS stays under 600 MB on any machine (measured with
#: 64 MiB chunks, 10M x 32 float32: 2 threads 317 MB, 4 threads 467 MB, 8 threads 767 MB).
MAKE_BLOBS_THREADS = min(4, os.cpu_count() or 1)


def add_storage_arguments(p) -> None:
    p.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="fsspec option for every URL of the command (repeatable; VALUE as JSON where it "
        'parses), e.g. anon=true or client_kwargs=\'{"endpoint_url": "http://minio:9000"}\'',
    )


def open_input(path: str, storage_options: dict):
    """The input as a lazy Dask array, from metadata only."""
    from bigclust import as_dask_array

    return as_dask_array(path, storage_options=storage_options or None)


def check_params(estimator, n_samples: int, n_features: int) -> None:
    """The estimator's declared parameter checks and those that need only the data's shape,
    before any pass over the data: their errors are usage errors (exit 2)."""
    from bigclust._params import validate_params

    k_param = _persist.declaration(estimator).k_param
    k = getattr(estimator, k_param)
    try:
        validate_params(estimator)
        if n_samples < k:
            raise ValueError(f"n_samples={n_samples} should be >= {k_param}={k}.")
        if hasattr(estimator, "_check_init_array"):  # an explicit init of the wrong shape
            estimator._check_init_array(n_features)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None


def summary(model) -> str:
    """One line of fitted figures."""
    row = _persist.declaration(model)
    parts = [f"{type(model).__name__}({row.k_param}={getattr(model, row.k_param)})"]
    for name in ("n_iter_", "n_steps_", "inertia_", "lower_bound_", "converged_"):
        if hasattr(model, name):
            value = getattr(model, name)
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            parts.append(f"{name.rstrip('_')} {shown}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# fit


class Fit:
    help = "fit an estimator to a Zarr array or .npy file and save it as a model directory"

    @staticmethod
    def add_arguments(p, common):
        sub = p.add_subparsers(dest="estimator", required=True, metavar="ESTIMATOR")
        for name, row in _persist.ESTIMATORS.items():
            cls = row.estimator()
            ep = sub.add_parser(
                row.command,
                help=f"bigclust.{name}",
                description=f"Fit bigclust.{name} and save it with bigclust.save.",
                parents=[common],
                formatter_class=p.formatter_class,
            )
            ep.add_argument("--input", required=True, help="path or fsspec URL of the data")
            ep.add_argument("--model", required=True, help="the new model directory")
            Fit.add_output_arguments(ep, cls)
            add_estimator_arguments(ep, cls)
            ep.set_defaults(estimator_class=cls, run=Fit.run)

    @staticmethod
    def add_output_arguments(p, cls):
        p.add_argument(
            "--labels-output",
            metavar="ZARR",
            help="also write the fit's labels_ to this new Zarr array",
        )
        p.add_argument(
            "--save-labels",
            action="store_true",
            help="store labels_ in the model directory (labels_.zarr), loaded lazily",
        )
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        p.add_argument(
            "--persist",
            action="store_true",
            help="keep the data in worker memory between passes (when it fits)",
        )
        if not supports(cls, "checkpoint"):
            p.add_argument(
                "--checkpoint",
                metavar="DIR",
                help=f"resume from / write checkpoints (not supported yet by {cls.__name__})",
            )
        add_storage_arguments(p)
        add_scheduler_arguments(p)

    @staticmethod
    def run(args) -> int:
        cls = args.estimator_class
        if getattr(args, "checkpoint", None) and not supports(cls, "checkpoint"):
            raise UsageError(
                f"--checkpoint is not supported yet: {cls.__name__} cannot checkpoint its fit."
            )
        options = parse_storage_options(args.storage_option)
        estimator = estimator_from_args(cls, args)
        labels_output = getattr(args, "labels_output", None)
        wants_labels = labels_output or getattr(args, "save_labels", False)
        if wants_labels and not _persist.declaration(cls).has_labels:
            raise UsageError(f"--labels-output/--save-labels: {cls.__name__} has no labels_.")
        if wants_labels and getattr(estimator, "compute_labels", True) is False:
            raise UsageError("--labels-output/--save-labels need labels: drop --no-compute-labels.")
        outputs = {
            "--model": args.model,
            "--labels-output": labels_output,
            "--centers-out": getattr(args, "centers_out", None),
        }
        check_distinct(outputs)
        for what, path in outputs.items():
            if path is not None:
                check_output(path, overwrite=args.overwrite, storage_options=options, what=what)
        data = open_input(args.input, options)
        check_params(estimator, *data.shape)

        with connect(args) as client:
            X = client.persist(data) if (args.persist and client is not None) else data
            start = time.perf_counter()
            estimator.fit(X)
            seconds = time.perf_counter() - start
            print(f"{summary(estimator)}; {seconds:.1f} s on {_shape(data)}")
            if args.model is not None:
                fingerprint = _persist.data_fingerprint(args.input, storage_options=options or None)
                _persist.save(
                    estimator,
                    args.model,
                    labels="zarr" if args.save_labels else "omit",
                    overwrite=args.overwrite,
                    fingerprint=fingerprint,
                    storage_options=options or None,
                )
                print(f"model saved to {args.model}")
            if labels_output:
                write_zarr_outputs(
                    {labels_output: estimator.labels_},
                    overwrite=args.overwrite,
                    storage_options=options,
                )
                print(f"labels written to {labels_output}")
            if outputs["--centers-out"]:
                write_npy(
                    outputs["--centers-out"], estimator.cluster_centers_, storage_options=options
                )
                print(f"centers written to {outputs['--centers-out']}")
        return 0


def _shape(data) -> str:
    return f"{data.shape[0]} x {data.shape[1]} {data.dtype}"


class KMeansAlias:
    help = "(legacy) fit KMeans and write centers and labels; prefer `bigclust fit kmeans`"

    @staticmethod
    def add_arguments(p, common):
        from bigclust import KMeans

        p.add_argument("input", help="path or fsspec URL of a Zarr array, or a .npy file")
        p.add_argument("--model", help="also save the model to this new directory")
        p.add_argument("--centers-out", metavar="NPY", help="write the centers to this .npy file")
        p.add_argument(
            "--labels-out",
            dest="labels_output",
            metavar="ZARR",
            help="write the labels to this new Zarr array",
        )
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        p.add_argument("--persist", action="store_true", help="keep the data in worker memory")
        add_storage_arguments(p)
        add_scheduler_arguments(p)
        add_estimator_arguments(p, KMeans)
        p.set_defaults(estimator_class=KMeans, run=Fit.run, save_labels=False)


# --------------------------------------------------------------------------------------------
# predict, score, info


def _load(args, options):
    return _persist.load(args.model, storage_options=options or None)


class Predict:
    help = "apply a saved model to data: labels (and distances, probabilities, densities) to Zarr"

    @staticmethod
    def add_arguments(p, common):
        p.add_argument("--model", required=True, help="a model directory from `bigclust fit`")
        p.add_argument("--input", required=True, help="path or fsspec URL of the data")
        p.add_argument("--output", metavar="ZARR", help="new Zarr array of labels (predict)")
        p.add_argument(
            "--transform-output", metavar="ZARR", help="new Zarr array of distances to each center"
        )
        p.add_argument(
            "--proba-output", metavar="ZARR", help="mixtures: new Zarr array of predict_proba"
        )
        p.add_argument(
            "--score-samples-output",
            metavar="ZARR",
            help="mixtures: new Zarr array of score_samples (log-density of each row)",
        )
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        add_storage_arguments(p)
        add_scheduler_arguments(p)
        p.set_defaults(run=Predict.run)

    METHODS: ClassVar[dict[str, tuple[str, str]]] = {
        "output": ("--output", "predict"),
        "transform_output": ("--transform-output", "transform"),
        "proba_output": ("--proba-output", "predict_proba"),
        "score_samples_output": ("--score-samples-output", "score_samples"),
    }

    @staticmethod
    def run(args) -> int:
        options = parse_storage_options(args.storage_option)
        wanted = {
            dest: getattr(args, dest) for dest in Predict.METHODS if getattr(args, dest) is not None
        }
        if not wanted:
            raise UsageError(
                "nothing to write: give --output and/or --transform-output, --proba-output, "
                "--score-samples-output."
            )
        check_distinct({Predict.METHODS[d][0]: path for d, path in wanted.items()})
        model = _load(args, options)
        for dest, path in wanted.items():
            option, method = Predict.METHODS[dest]
            if not hasattr(model, method):
                raise UsageError(f"{option}: {type(model).__name__} has no {method}().")
            check_output(path, overwrite=args.overwrite, storage_options=options, what=option)
        data = open_input(args.input, options)
        if data.shape[1] != model.n_features_in_:
            raise ValueError(
                f"{args.input} has {data.shape[1]} features, but the model was fitted on "
                f"{model.n_features_in_}."
            )
        with connect(args):
            lazy = {path: getattr(model, Predict.METHODS[d][1])(data) for d, path in wanted.items()}
            start = time.perf_counter()
            write_zarr_outputs(lazy, overwrite=args.overwrite, storage_options=options)
            seconds = time.perf_counter() - start
        for dest, path in wanted.items():
            print(f"{Predict.METHODS[dest][1]} written to {path}")
        print(f"{_shape(data)} in {seconds:.1f} s")
        return 0


class Score:
    help = "score data under a saved model (KMeans: -inertia; mixtures: log-likelihood, BIC, AIC)"

    @staticmethod
    def add_arguments(p, common):
        p.add_argument("--model", required=True, help="a model directory from `bigclust fit`")
        p.add_argument("--input", required=True, help="path or fsspec URL of the data")
        p.add_argument("--json", action="store_true", help="print the figures as JSON")
        add_storage_arguments(p)
        add_scheduler_arguments(p)
        p.set_defaults(run=Score.run)

    @staticmethod
    def run(args) -> int:
        options = parse_storage_options(args.storage_option)
        model = _load(args, options)
        data = open_input(args.input, options)
        if data.shape[1] != model.n_features_in_:
            raise ValueError(
                f"{args.input} has {data.shape[1]} features, but the model was fitted on "
                f"{model.n_features_in_}."
            )
        n = data.shape[0]
        with connect(args):
            score = float(model.score(data))
        figures = {"n_samples": n, "score": score}
        if hasattr(model, "bic"):  # one pass: the criteria from the score
            p = model._n_parameters()
            figures["bic"] = -2 * score * n + p * float(np.log(n))
            figures["aic"] = -2 * score * n + 2 * p
        if args.json:
            print(json.dumps(figures))
        else:
            print(
                ", ".join(
                    f"{k} {v:.8g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in figures.items()
                )
            )
        return 0


class Info:
    help = "describe a model directory: estimator, parameters, fitted figures, data, versions"

    @staticmethod
    def add_arguments(p, common):
        p.add_argument("--model", required=True, help="a model directory")
        p.add_argument("--json", action="store_true", help="print model.json's content as JSON")
        add_storage_arguments(p)
        p.set_defaults(run=Info.run)

    @staticmethod
    def run(args) -> int:
        options = parse_storage_options(args.storage_option)
        doc = _persist.describe(args.model, storage_options=options or None)
        if args.json:
            print(json.dumps(doc, indent=1))
            return 0
        out = [f"{doc['estimator']} ({doc['format']} v{doc['format_version']}, {doc['dtype']})"]
        params = {
            k: ("<array>" if isinstance(v, dict) and "array" in v else v)
            for k, v in doc["params"].items()
        }
        out.append("parameters: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
        out.append(
            "fitted: "
            + ", ".join(
                f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in doc["scalars"].items()
                if not isinstance(v, list)
            )
        )
        arrays = {k: v for k, v in doc["arrays"].items() if not k.startswith(("state.", "param."))}
        out.append(
            "arrays: "
            + ", ".join(f"{k} {tuple(v['shape'])} {v['dtype']}" for k, v in arrays.items())
        )
        labels = doc.get("labels")
        if labels is None:
            out.append("labels_: not saved")
        elif "zarr" in labels:
            out.append(f"labels_: {labels['zarr']} {tuple(labels['shape'])}")
        else:
            out.append(f"labels_: labels_.npy {tuple(arrays['labels_']['shape'])}")
        data = doc.get("data")
        if data:
            chunks = ", ".join(f"{n} x {size}" for size, n in data.get("chunks", []))
            out.append(
                f"data: {data.get('store') or 'in memory'}, {' x '.join(map(str, data['shape']))} "
                f"{data['dtype']}, row chunks {chunks}"
            )
        else:
            out.append("data: not recorded")
        out.append("versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()))
        print("\n".join(out))
        return 0


# --------------------------------------------------------------------------------------------
# make-blobs


class MakeBlobs:
    help = "write Gaussian blobs of any size to a Zarr store, chunk by chunk"

    @staticmethod
    def add_arguments(p, common):
        p.add_argument("out", help="path or fsspec URL of the new Zarr array")
        p.add_argument("--n-samples", type=int, default=1_000_000, help="rows")
        p.add_argument("--n-features", type=int, default=32, help="columns")
        p.add_argument("--centers", type=int, default=8, help="number of blobs")
        p.add_argument(
            "--cluster-std", type=float, default=1.0, help="standard deviation of each blob"
        )
        p.add_argument("--seed", type=int, default=0, help="random seed")
        p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="dtype")
        p.add_argument("--codec", choices=CODECS, default="none", help="compression")
        p.add_argument("--chunk-rows", type=int, default=None, help="rows per Zarr chunk")
        p.add_argument("--overwrite", action="store_true", help="replace an existing array")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument(
            "--threads",
            type=int,
            default=MAKE_BLOBS_THREADS,
            help="threads of the 'threads' scheduler; each holds about two chunks, so peak "
            "memory is about 150 MB + threads x 2 x chunk bytes",
        )
        add_storage_arguments(p)
        add_scheduler_arguments(p, default="threads")
        p.set_defaults(run=MakeBlobs.run)

    @staticmethod
    def run(args) -> int:
        options = parse_storage_options(args.storage_option)
        check_output(args.out, overwrite=args.overwrite, storage_options=options, what="output")
        try:  # make_blobs checks its arguments before building anything
            X, _, centers = make_blobs(
                args.n_samples,
                args.n_features,
                centers=args.centers,
                cluster_std=args.cluster_std,
                random_state=args.seed,
                dtype=np.dtype(args.dtype),
                chunk_rows=args.chunk_rows,
                return_centers=True,
            )
        except (ValueError, TypeError) as err:
            raise UsageError(str(err)) from None
        attributes = {
            "generator": "bigclust.datasets.make_blobs",
            "seed": args.seed,
            "centers": centers.tolist(),
            "cluster_std": args.cluster_std,
        }
        start = time.perf_counter()
        with (
            connect(args),
            staging_directory(
                args.out, overwrite=args.overwrite, marker="zarr.json", storage_options=options
            ) as (fs, tmp),
        ):
            write_zarr(
                X,
                fs.unstrip_protocol(tmp) if "://" in args.out else tmp,
                codec=args.codec,
                overwrite=True,  # the fresh temporary directory
                progress=not args.no_progress,
                attributes=attributes,
                storage_options=options or None,
            )
        seconds = time.perf_counter() - start
        gb = X.nbytes / 1e9
        print(
            f"wrote {X.shape[0]} x {X.shape[1]} {X.dtype} ({gb:.2f} GB) to {args.out} "
            f"in {seconds:.1f} s ({gb / seconds:.2f} GB/s)"
        )
        sys.stdout.flush()
        return 0
